//! Mining, connecting blocks to the best chain, and disconnecting them again (invalidate, reorg).

use super::*;

impl ChainState {
    /// Mines `count` blocks; the first one takes the whole mempool, or under congestion
    /// ([`ChainState::set_block_min_fee_rate`]) every package paying the minimum. Block times are
    /// `max(now, previous block time + 1)`, so they strictly increase even when mining faster
    /// than one block per second.
    pub fn mine(&mut self, count: u32, now: u32) -> Vec<BlockHash> {
        (0..count).map(|_| self.mine_block(now)).collect()
    }

    pub(super) fn mine_block(&mut self, now: u32) -> BlockHash {
        let (tip_height, tip_hash) = self.tip();
        let height = tip_height + 1;
        let time = now.max(self.last_block_time + 1);
        let included = self.block_template();
        let transactions: Vec<Transaction> = included
            .iter()
            .map(|txid| self.mempool[txid].tx.clone())
            .collect();
        let fees: Amount = included.iter().map(|txid| self.mempool[txid].fee).sum();
        let has_witness = transactions
            .iter()
            .any(|tx| tx.input.iter().any(|input| !input.witness.is_empty()));

        let coinbase = self.coinbase(height, time, block_subsidy(height) + fees, has_witness);
        let mut txdata = Vec::with_capacity(transactions.len() + 1);
        txdata.push(coinbase);
        txdata.extend(transactions);
        let mut block = Block {
            header: Header {
                version: BlockVersion::from_consensus(BLOCK_VERSION),
                prev_blockhash: tip_hash,
                merkle_root: TxMerkleNode::all_zeros(),
                time,
                bits: CompactTarget::from_consensus(REGTEST_BITS),
                nonce: 0,
            },
            txdata,
        };
        if has_witness {
            let witness_root = block.witness_root().expect("block has a coinbase");
            let commitment =
                Block::compute_witness_commitment(&witness_root, &WITNESS_RESERVED_VALUE);
            let mut data = PushBytesBuf::from(WITNESS_COMMITMENT_HEADER);
            data.extend_from_slice(commitment.as_byte_array())
                .expect("36 bytes fit a push");
            block.txdata[0].output.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: ScriptBuf::new_op_return(data),
            });
        }
        block.header.merkle_root = block.compute_merkle_root().expect("block has a coinbase");
        let target = Target::from_compact(block.header.bits);
        while !target.is_met_by(block.header.block_hash()) {
            block.header.nonce = block.header.nonce.wrapping_add(1);
        }
        if included.len() == self.mempool.len() {
            self.mempool.clear();
            self.mempool_order.clear();
        } else {
            // Their inputs stay in `spenders`: they are spent in the chain now.
            for txid in &included {
                self.mempool.remove(txid);
            }
            self.mempool_order
                .retain(|_, txid| self.mempool.contains_key(txid));
        }
        self.connect(block)
    }

    /// The mempool transactions the next block takes, in arrival order (parents before
    /// children): all of them, or under congestion each one whose package (it and its
    /// unconfirmed ancestors not yet taken) pays at least the minimum rate, with that package.
    /// So a child paying enough carries its parent (CPFP), as with Core's ancestor-feerate
    /// block assembly.
    fn block_template(&self) -> Vec<Txid> {
        let arrival_order = self.mempool_order.values().copied();
        if self.block_min_fee_rate <= 0.0 {
            return arrival_order.collect();
        }
        let mut taken: HashSet<Txid> = HashSet::new();
        for txid in self.mempool_order.values() {
            if taken.contains(txid) {
                continue;
            }
            let package = self.untaken_ancestors(*txid, &taken);
            let fee: u64 = package.iter().map(|t| self.mempool[t].fee.to_sat()).sum();
            let vsize: usize = package.iter().map(|t| self.mempool[t].tx.vsize()).sum();
            if fee as f64 >= self.block_min_fee_rate * vsize as f64 {
                taken.extend(package);
            }
        }
        arrival_order.filter(|txid| taken.contains(txid)).collect()
    }

    /// `txid` and its mempool ancestors that are not in `taken`.
    fn untaken_ancestors(&self, txid: Txid, taken: &HashSet<Txid>) -> Vec<Txid> {
        let mut found = Vec::new();
        let mut queue = vec![txid];
        while let Some(next) = queue.pop() {
            if found.contains(&next) || taken.contains(&next) {
                continue;
            }
            let Some(entry) = self.mempool.get(&next) else {
                continue;
            };
            queue.extend(entry.tx.input.iter().map(|i| i.previous_output.txid));
            found.push(next);
        }
        found
    }

    /// A coinbase paying `value` to the faucet. Its scriptSig carries the BIP34 height and the
    /// block time as extra nonce, so coinbases of competing blocks at one height differ.
    fn coinbase(&self, height: u32, time: u32, value: Amount, has_witness: bool) -> Transaction {
        let script_sig = Builder::new()
            .push_int(i64::from(height))
            .push_slice(time.to_le_bytes())
            .into_script();
        let witness = if has_witness {
            Witness::from_slice(&[WITNESS_RESERVED_VALUE])
        } else {
            Witness::new()
        };
        Transaction {
            version: Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig,
                sequence: Sequence::MAX,
                witness,
            }],
            output: vec![TxOut {
                value,
                script_pubkey: self.faucet.script_pubkey().clone(),
            }],
        }
    }

    /// Appends `block` to the best chain and indexes it.
    pub(super) fn connect(&mut self, block: Block) -> BlockHash {
        let hash = block.block_hash();
        let height = self.best_chain.len() as u32;
        self.insert_block(block, height, true);
        self.best_chain.push(hash);
        self.index_block(height);
        hash
    }

    /// Stores `block` at `height` with its median time past (of it and its ten ancestors).
    fn insert_block(&mut self, block: Block, height: u32, in_best_chain: bool) {
        let hash = block.block_hash();
        let mut times = vec![block.header.time];
        let mut ancestor = block.header.prev_blockhash;
        while times.len() < MEDIAN_TIME_SPAN {
            let Some(entry) = self.blocks.get(&ancestor) else {
                break;
            };
            times.push(entry.block.header.time);
            ancestor = entry.block.header.prev_blockhash;
        }
        times.sort_unstable();
        let median_time_past = times[times.len() / 2];
        let txids = block.txdata.iter().map(Transaction::compute_txid).collect();
        self.last_block_time = self.last_block_time.max(block.header.time);
        self.blocks.insert(
            hash,
            BlockEntry {
                block,
                height,
                in_best_chain,
                median_time_past,
                txids,
            },
        );
        self.block_order.push(hash);
    }

    /// Adds a best-chain block's transactions to the confirmed, spender and script indexes.
    fn index_block(&mut self, height: u32) {
        let hash = self.best_chain[height as usize];
        let entry = &self.blocks[&hash];
        let mut script_updates: Vec<(ScriptKey, Txid)> = Vec::new();
        for (pos, (tx, txid)) in entry.block.txdata.iter().zip(&entry.txids).enumerate() {
            self.confirmed.insert(*txid, (height, pos));
            let mut keys: Vec<ScriptKey> = tx
                .output
                .iter()
                .map(|o| script_key(&o.script_pubkey))
                .collect();
            if !tx.is_coinbase() {
                for (vin, input) in tx.input.iter().enumerate() {
                    self.spenders.insert(
                        input.previous_output,
                        Spender {
                            txid: *txid,
                            vin: vin as u32,
                        },
                    );
                    if let Some(prev) = self.prevout(&input.previous_output) {
                        keys.push(script_key(&prev.script_pubkey));
                    }
                }
            }
            keys.sort_unstable();
            keys.dedup();
            script_updates.extend(keys.into_iter().map(|key| (key, *txid)));
        }
        for (key, txid) in script_updates {
            self.script_history.entry(key).or_default().push(txid);
        }
    }

    /// Disconnects the last `count` blocks. Their transactions, followed by the previous
    /// mempool, are offered to the mempool again in order; those no longer valid (spends of
    /// vanished coinbases, premature coinbase spends, conflicts) are dropped and returned.
    pub fn invalidate(&mut self, count: u32) -> Result<Vec<Txid>, DevchainError> {
        let (tip_height, _) = self.tip();
        if count > tip_height {
            return Err(DevchainError::InvalidateTooDeep {
                requested: count,
                height: tip_height,
            });
        }
        Ok(self.disconnect(count, HashSet::new()))
    }

    /// Replaces the last `depth` blocks with `depth + 1` new ones, as a competing miner would.
    ///
    /// The transactions of the replaced blocks return to the mempool ahead of it, so the first
    /// new block confirms them again, except those in `exclude` and everything spending them
    /// (in the replaced blocks or the mempool, transitively), which vanish. New block times
    /// are later than every earlier block's, so the new coinbases, which carry the time, and
    /// hence the new block hashes differ from the replaced ones. Checks everything before
    /// changing anything: `depth` in `1..=`[`MAX_REORG_DEPTH`] and at most the height, and
    /// every excluded txid a non-coinbase transaction of the replaced blocks.
    pub fn reorg(
        &mut self,
        depth: u32,
        exclude: &[Txid],
        now: u32,
    ) -> Result<ReorgOutcome, DevchainError> {
        let (tip_height, _) = self.tip();
        if depth == 0 {
            return Err(DevchainError::ReorgEmpty);
        }
        if depth > MAX_REORG_DEPTH {
            return Err(DevchainError::ReorgTooDeep { requested: depth });
        }
        if depth > tip_height {
            return Err(DevchainError::ReorgBeyondGenesis {
                requested: depth,
                height: tip_height,
            });
        }
        let removed = self.best_chain[self.best_chain.len() - depth as usize..].to_vec();
        let replaced: HashSet<Txid> = removed
            .iter()
            .flat_map(|hash| self.blocks[hash].txids.iter().skip(1).copied())
            .collect();
        if let Some(txid) = exclude.iter().find(|txid| !replaced.contains(*txid)) {
            return Err(DevchainError::ReorgExcludeUnknown { txid: *txid, depth });
        }
        let dropped = self.disconnect(depth, exclude.iter().copied().collect());
        let added = self.mine(depth + 1, now);
        Ok(ReorgOutcome {
            removed,
            added,
            dropped,
        })
    }

    /// Disconnects the last `count` blocks (at most the height) and re-offers their
    /// transactions, then the mempool, to the mempool in order. Those in `vanish`, those
    /// spending one that vanished, and those no longer valid are dropped and returned.
    fn disconnect(&mut self, count: u32, mut vanish: HashSet<Txid>) -> Vec<Txid> {
        let keep = self.best_chain.len() - count as usize;
        let disconnected = self.best_chain.split_off(keep);
        let mut candidates: Vec<Transaction> = Vec::new();
        for hash in &disconnected {
            let entry = self
                .blocks
                .get_mut(hash)
                .expect("best-chain blocks are stored");
            entry.in_best_chain = false;
            candidates.extend(entry.block.txdata.iter().skip(1).cloned());
        }
        candidates.extend(
            self.mempool_order
                .values()
                .map(|txid| self.mempool[txid].tx.clone()),
        );

        self.mempool.clear();
        self.mempool_order.clear();
        self.confirmed.clear();
        self.spenders.clear();
        self.script_history.clear();
        for height in 0..self.best_chain.len() as u32 {
            self.index_block(height);
        }
        let mut dropped = Vec::new();
        // Candidates come parents first, so one pass finds every descendant of what vanishes.
        for tx in candidates {
            let txid = tx.compute_txid();
            let spends_vanished = tx
                .input
                .iter()
                .any(|input| vanish.contains(&input.previous_output.txid));
            if spends_vanished || vanish.contains(&txid) {
                tracing::debug!(%txid, "reorg excluded transaction");
                vanish.insert(txid);
                dropped.push(txid);
            } else if let Err(rejection) = self.accept(tx) {
                tracing::debug!(%txid, %rejection, "reorg dropped transaction");
                dropped.push(txid);
            }
        }
        dropped
    }

    /// Adds a block read back from disk, after checking what the chain relies on: regtest
    /// proof of work, the merkle root, and the link to its parent (the tip for a best-chain
    /// block, any known block for a stale one). Blocks must come parents first.
    pub fn restore_block(&mut self, block: Block, in_best_chain: bool) -> Result<(), String> {
        let hash = block.block_hash();
        if block.header.bits != CompactTarget::from_consensus(REGTEST_BITS)
            || block
                .header
                .validate_pow(Target::from_compact(block.header.bits))
                .is_err()
        {
            return Err(format!("block {hash} does not meet regtest proof of work"));
        }
        if !block.check_merkle_root() {
            return Err(format!("block {hash} does not match its merkle root"));
        }
        if self.blocks.contains_key(&hash) {
            return Err(format!("block {hash} is stored twice"));
        }
        let parent = block.header.prev_blockhash;
        if in_best_chain {
            if parent != self.tip().1 {
                return Err(format!(
                    "best-chain block {hash} does not build on the block before it"
                ));
            }
            self.connect(block);
        } else {
            let height = match self.blocks.get(&parent) {
                Some(entry) => entry.height + 1,
                None => return Err(format!("stale block {hash} has no known parent")),
            };
            self.insert_block(block, height, false);
        }
        Ok(())
    }
}

/// Regtest block subsidy: 50 BTC halving every 150 blocks.
fn block_subsidy(height: u32) -> Amount {
    let halvings = height / REGTEST_HALVING_INTERVAL;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat(Amount::from_int_btc(50).to_sat() >> halvings)
}
