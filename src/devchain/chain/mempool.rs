//! Mempool acceptance: the checks Core applies to a broadcast transaction (scripts aside),
//! and full replace-by-fee.

use super::*;

impl ChainState {
    /// Validates `tx` against the chain and mempool and adds it to the mempool.
    ///
    /// Checks what Core's mempool checks except scripts and signatures (see the module doc of
    /// [`super`]): structure, finality, existence and spentness of inputs, coinbase maturity,
    /// BIP68 relative locks and `value in >= value out`. A transaction spending an output that
    /// a mempool transaction already spends replaces it under full-RBF rules
    /// ([`ChainState::replacement_check`]); the replaced transactions and their descendants
    /// leave the mempool.
    pub fn accept(&mut self, tx: Transaction) -> Result<Accepted, Rejection> {
        let txid = tx.compute_txid();
        if self.mempool.contains_key(&txid) {
            return Ok(Accepted::AlreadyInMempool);
        }
        let (fee, conflicts) = self.check(&tx, txid)?;
        let evicted = if conflicts.is_empty() {
            Vec::new()
        } else {
            self.replacement_check(&tx, txid, fee, &conflicts)?
        };
        for evicted_txid in &evicted {
            self.remove_from_mempool(evicted_txid);
        }
        for (vin, input) in tx.input.iter().enumerate() {
            self.spenders.insert(
                input.previous_output,
                Spender {
                    txid,
                    vin: vin as u32,
                },
            );
        }
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.mempool_order.insert(arrival, txid);
        self.mempool.insert(txid, MempoolEntry { tx, fee });
        Ok(Accepted::New { fee })
    }

    /// BIP125 as Bitcoin Core applies it with full-RBF: `tx` (paying `fee`) may replace the
    /// mempool transactions it conflicts with if it pays a higher fee rate than each of them,
    /// at least the fees of everything it evicts (conflicts and their descendants) plus its
    /// own size at the incremental relay fee (1 sat/vB), evicts at most
    /// [`MAX_REPLACEMENT_EVICTIONS`], spends no output of an evicted transaction and adds no
    /// unconfirmed input the conflicts did not already spend from. Returns what to evict.
    fn replacement_check(
        &self,
        tx: &Transaction,
        txid: Txid,
        fee: Amount,
        conflicts: &[Txid],
    ) -> Result<Vec<Txid>, Rejection> {
        let evicted = self.with_descendants(conflicts);
        if evicted.len() > MAX_REPLACEMENT_EVICTIONS {
            return Err(Rejection::too_many_replacements(txid, evicted.len()));
        }
        for input in &tx.input {
            if let Some(spent) = evicted.iter().find(|e| **e == input.previous_output.txid) {
                return Err(Rejection::spends_conflicting_tx(txid, *spent));
            }
        }
        let conflict_parents: HashSet<Txid> = conflicts
            .iter()
            .flat_map(|c| {
                self.mempool[c]
                    .tx
                    .input
                    .iter()
                    .map(|i| i.previous_output.txid)
            })
            .collect();
        for input in &tx.input {
            let parent = input.previous_output.txid;
            if self.mempool.contains_key(&parent) && !conflict_parents.contains(&parent) {
                return Err(Rejection::replacement_adds_unconfirmed(txid));
            }
        }
        let vsize = tx.vsize() as u64;
        for conflict in conflicts {
            let old = &self.mempool[conflict];
            let old_vsize = old.tx.vsize() as u64;
            // fee / vsize > old_fee / old_vsize, without division.
            if u128::from(fee.to_sat()) * u128::from(old_vsize)
                <= u128::from(old.fee.to_sat()) * u128::from(vsize)
            {
                return Err(Rejection::replacement_feerate_too_low(
                    txid, fee, vsize, old.fee, old_vsize,
                ));
            }
        }
        let evicted_fees: Amount = evicted.iter().map(|e| self.mempool[e].fee).sum();
        if fee < evicted_fees {
            return Err(Rejection::replacement_fee_below_evicted(
                txid,
                fee,
                evicted_fees,
            ));
        }
        let relay_fee = Amount::from_sat(vsize * INCREMENTAL_RELAY_SAT_PER_VB);
        if fee - evicted_fees < relay_fee {
            return Err(Rejection::replacement_adds_too_little(
                txid,
                fee - evicted_fees,
                relay_fee,
            ));
        }
        Ok(evicted)
    }

    /// `roots` and every mempool transaction spending their outputs, transitively.
    fn with_descendants(&self, roots: &[Txid]) -> Vec<Txid> {
        let mut found: Vec<Txid> = Vec::new();
        let mut queue: Vec<Txid> = roots.to_vec();
        while let Some(txid) = queue.pop() {
            if found.contains(&txid) {
                continue;
            }
            if let Some(entry) = self.mempool.get(&txid) {
                for vout in 0..entry.tx.output.len() {
                    let outpoint = OutPoint::new(txid, vout as u32);
                    if let Some(spender) = self.spenders.get(&outpoint) {
                        if self.mempool.contains_key(&spender.txid) {
                            queue.push(spender.txid);
                        }
                    }
                }
            }
            found.push(txid);
        }
        found
    }

    fn remove_from_mempool(&mut self, txid: &Txid) {
        let Some(entry) = self.mempool.remove(txid) else {
            return;
        };
        self.mempool_order.retain(|_, t| t != txid);
        for input in &entry.tx.input {
            if self
                .spenders
                .get(&input.previous_output)
                .is_some_and(|s| s.txid == *txid)
            {
                self.spenders.remove(&input.previous_output);
            }
        }
    }

    /// The checks of [`ChainState::accept`] that do not depend on replacement: returns the fee
    /// and the mempool transactions `tx` conflicts with.
    fn check(&self, tx: &Transaction, txid: Txid) -> Result<(Amount, Vec<Txid>), Rejection> {
        if tx.input.is_empty() {
            return Err(Rejection::no_inputs());
        }
        if tx.output.is_empty() {
            return Err(Rejection::no_outputs());
        }
        let mut value_out = Amount::ZERO;
        for output in &tx.output {
            if output.value > Amount::MAX_MONEY {
                return Err(Rejection::output_too_large());
            }
            value_out += output.value;
            if value_out > Amount::MAX_MONEY {
                return Err(Rejection::output_total_too_large());
            }
        }
        let mut seen = HashSet::with_capacity(tx.input.len());
        if !tx
            .input
            .iter()
            .all(|input| seen.insert(input.previous_output))
        {
            return Err(Rejection::duplicate_inputs());
        }
        if tx.is_coinbase() || tx.input.iter().any(|input| input.previous_output.is_null()) {
            return Err(Rejection::coinbase());
        }

        let (tip_height, _) = self.tip();
        let next_height = tip_height + 1;
        let tip_mtp = self.median_time_past_at(tip_height);
        if !is_final(tx, next_height, tip_mtp) {
            return Err(Rejection::non_final());
        }
        if self.confirmed.contains_key(&txid) {
            return Err(Rejection::already_in_chain());
        }
        let mut conflicts: Vec<Txid> = Vec::new();
        let mut coins = Vec::with_capacity(tx.input.len());
        for input in &tx.input {
            let coin = self
                .coin(&input.previous_output)
                .ok_or_else(Rejection::missing_or_spent)?;
            match self.spenders.get(&input.previous_output) {
                Some(spender)
                    if self.mempool.contains_key(&spender.txid)
                        && !conflicts.contains(&spender.txid) =>
                {
                    conflicts.push(spender.txid);
                }
                Some(spender) if self.mempool.contains_key(&spender.txid) => {}
                Some(_) => return Err(Rejection::missing_or_spent()),
                None => {}
            }
            coins.push(coin);
        }
        let mut value_in = Amount::ZERO;
        for coin in &coins {
            if coin.is_coinbase {
                let depth = next_height - coin.height.expect("coinbases are confirmed");
                if depth < COINBASE_MATURITY {
                    return Err(Rejection::premature_coinbase_spend(depth));
                }
            }
            value_in += coin.output.value;
        }
        if !self.sequence_locks_satisfied(tx, &coins, next_height, tip_mtp) {
            return Err(Rejection::non_bip68_final());
        }
        let fee = value_in
            .checked_sub(value_out)
            .ok_or_else(|| Rejection::inputs_below_outputs(value_in, value_out))?;
        Ok((fee, conflicts))
    }

    /// The output `outpoint` refers to, whether or not it is spent. The genesis coinbase is not
    /// spendable (as in Core, it never entered the UTXO set).
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin<'_>> {
        if let Some(&(height, pos)) = self.confirmed.get(&outpoint.txid) {
            if height == 0 {
                return None;
            }
            let tx = &self.best_entry(height).block.txdata[pos];
            return tx.output.get(outpoint.vout as usize).map(|output| Coin {
                output,
                height: Some(height),
                is_coinbase: pos == 0,
            });
        }
        let entry = self.mempool.get(&outpoint.txid)?;
        entry
            .tx
            .output
            .get(outpoint.vout as usize)
            .map(|output| Coin {
                output,
                height: None,
                is_coinbase: false,
            })
    }

    /// BIP68: relative lock-times of version >= 2 transactions, evaluated for the next block.
    fn sequence_locks_satisfied(
        &self,
        tx: &Transaction,
        coins: &[Coin<'_>],
        next_height: u32,
        tip_mtp: u32,
    ) -> bool {
        if tx.version.0 < 2 {
            return true;
        }
        for (input, coin) in tx.input.iter().zip(coins) {
            let sequence = input.sequence.0;
            if sequence & SEQUENCE_DISABLE_FLAG != 0 {
                continue;
            }
            let coin_height = coin.height.unwrap_or(next_height);
            let locked = i64::from(sequence & SEQUENCE_MASK);
            if sequence & SEQUENCE_TYPE_FLAG != 0 {
                let coin_time = i64::from(self.median_time_past_at(coin_height.saturating_sub(1)));
                let min_time = coin_time + (locked << SEQUENCE_GRANULARITY) - 1;
                if min_time >= i64::from(tip_mtp) {
                    return false;
                }
            } else {
                let min_height = i64::from(coin_height) + locked - 1;
                if min_height >= i64::from(next_height) {
                    return false;
                }
            }
        }
        true
    }
}

/// Core's `IsFinalTx` for a transaction to be included at `height` with median time `time`.
fn is_final(tx: &Transaction, height: u32, time: u32) -> bool {
    let lock_time = tx.lock_time.to_consensus_u32();
    if lock_time == 0 {
        return true;
    }
    let limit = if lock_time < LOCKTIME_THRESHOLD {
        height
    } else {
        time
    };
    lock_time < limit || tx.input.iter().all(|input| input.sequence == Sequence::MAX)
}
