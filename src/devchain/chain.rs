//! The chain itself: blocks, the best chain, the mempool, and the indexes Esplora queries need.
//!
//! Everything here is synchronous and free of I/O so it can be unit-tested without a server; the
//! HTTP layer and the public [`super::Devchain`] handle hold it behind a mutex. Time is passed in
//! by the caller (`now`), never read here.
//!
//! Invariants kept by every method:
//! - every mempool transaction is valid for inclusion in the next block (so mining simply takes
//!   the whole mempool, in arrival order, which keeps parents before children);
//! - `spenders` holds exactly the inputs of best-chain and mempool transactions;
//! - blocks are never forgotten: a block disconnected by [`ChainState::invalidate`] stays
//!   queryable with `in_best_chain = false`, as Esplora reports stale blocks.

use std::collections::{BTreeMap, HashMap, HashSet};

use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::transaction::Version;
use bitcoin::{
    absolute, Amount, Block, BlockHash, CompactTarget, Network, OutPoint, Script, ScriptBuf,
    Sequence, Target, Transaction, TxIn, TxMerkleNode, TxOut, Txid, Witness,
};

use super::faucet::{Faucet, FaucetCoin, FaucetShortfall, DUST_LIMIT_SAT};
use super::policy::Rejection;
use super::DevchainError;

/// Blocks a coinbase output must be buried under before it can be spent.
pub const COINBASE_MATURITY: u32 = 100;
/// Blocks mined on top of genesis when a chain is created, so the first coinbases are mature.
pub const PREMINE_BLOCKS: u32 = COINBASE_MATURITY + 1;
/// Regtest's subsidy halving interval.
const REGTEST_HALVING_INTERVAL: u32 = 150;
/// Regtest's (and our) constant difficulty target.
pub const REGTEST_BITS: u32 = 0x207f_ffff;
/// BIP9 "top bits" block version, as Core's miner produces.
const BLOCK_VERSION: i32 = 0x2000_0000;
/// Number of blocks in the median-time-past window.
const MEDIAN_TIME_SPAN: usize = 11;
/// BIP141 witness reserved value used in every coinbase witness.
const WITNESS_RESERVED_VALUE: [u8; 32] = [0; 32];
/// BIP141 commitment header: OP_RETURN output data starts with these four bytes.
const WITNESS_COMMITMENT_HEADER: [u8; 4] = [0xaa, 0x21, 0xa9, 0xed];
/// Locktime values below this are heights, above are UNIX times.
const LOCKTIME_THRESHOLD: u32 = 500_000_000;
/// BIP68 flags and masks.
const SEQUENCE_DISABLE_FLAG: u32 = 1 << 31;
const SEQUENCE_TYPE_FLAG: u32 = 1 << 22;
const SEQUENCE_MASK: u32 = 0x0000_ffff;
const SEQUENCE_GRANULARITY: u32 = 9;

/// Esplora's "scripthash": the SHA256 of the script, hex-encoded in natural byte order.
pub type ScriptKey = sha256::Hash;

/// Computes a script's [`ScriptKey`].
pub fn script_key(script: &Script) -> ScriptKey {
    sha256::Hash::hash(script.as_bytes())
}

/// A block the devchain mined (or the genesis block), with what Esplora reports about it.
#[derive(Debug, Clone)]
pub struct BlockEntry {
    pub block: Block,
    pub height: u32,
    pub in_best_chain: bool,
    pub median_time_past: u32,
    pub txids: Vec<Txid>,
}

/// Where a known transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxPosition {
    Confirmed {
        height: u32,
        block_hash: BlockHash,
        block_time: u32,
        pos: usize,
    },
    Mempool,
}

/// BIP125 rule 5: a replacement may evict at most this many transactions.
pub const MAX_REPLACEMENT_EVICTIONS: usize = 100;

/// Core's default incremental relay fee, which a replacement must add on top of what it evicts.
pub const INCREMENTAL_RELAY_SAT_PER_VB: u64 = 1;

/// The input spending an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spender {
    pub txid: Txid,
    pub vin: u32,
}

/// Result of accepting a transaction into the mempool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Newly added, paying this fee.
    New { fee: Amount },
    /// The same txid already waits in the mempool; nothing changed (Core answers success).
    AlreadyInMempool,
}

#[derive(Debug, Clone)]
struct MempoolEntry {
    tx: Transaction,
    fee: Amount,
}

/// An output a transaction input refers to, with what maturity and BIP68 rules need.
struct Coin<'a> {
    output: &'a TxOut,
    /// `None` while the creating transaction is in the mempool.
    height: Option<u32>,
    is_coinbase: bool,
}

/// The whole chain state. See the module doc for invariants.
pub struct ChainState {
    blocks: HashMap<BlockHash, BlockEntry>,
    best_chain: Vec<BlockHash>,
    confirmed: HashMap<Txid, (u32, usize)>,
    mempool: HashMap<Txid, MempoolEntry>,
    mempool_order: BTreeMap<u64, Txid>,
    next_arrival: u64,
    spenders: HashMap<OutPoint, Spender>,
    /// Confirmed transactions touching each script, in chain order.
    script_history: HashMap<ScriptKey, Vec<Txid>>,
    last_block_time: u32,
    faucet: Faucet,
}

impl ChainState {
    /// A chain holding the regtest genesis block and [`PREMINE_BLOCKS`] blocks paying the
    /// faucet, timestamped one second apart and ending just before `now`.
    pub fn new(now: u32) -> Self {
        let mut chain = Self::genesis_only();
        let premine_start = now.saturating_sub(PREMINE_BLOCKS);
        for offset in 0..PREMINE_BLOCKS {
            chain.mine_block(premine_start + offset);
        }
        chain
    }

    /// A chain holding only the regtest genesis block.
    pub fn genesis_only() -> Self {
        let mut chain = ChainState {
            blocks: HashMap::new(),
            best_chain: Vec::new(),
            confirmed: HashMap::new(),
            mempool: HashMap::new(),
            mempool_order: BTreeMap::new(),
            next_arrival: 0,
            spenders: HashMap::new(),
            script_history: HashMap::new(),
            last_block_time: 0,
            faucet: Faucet::new(),
        };
        chain.connect(genesis_block(Network::Regtest));
        chain
    }

    // ----- chain queries -------------------------------------------------------------------

    /// Height and hash of the best block.
    pub fn tip(&self) -> (u32, BlockHash) {
        let height = self.best_chain.len() as u32 - 1;
        (height, self.best_chain[height as usize])
    }

    /// The best-chain block hash at `height`.
    pub fn block_hash_at(&self, height: u32) -> Option<BlockHash> {
        self.best_chain.get(height as usize).copied()
    }

    /// Any block ever mined, stale or not.
    pub fn block(&self, hash: &BlockHash) -> Option<&BlockEntry> {
        self.blocks.get(hash)
    }

    /// The best-chain block built on `entry`, if `entry` is in the best chain and not the tip.
    pub fn next_best(&self, entry: &BlockEntry) -> Option<BlockHash> {
        if !entry.in_best_chain {
            return None;
        }
        self.block_hash_at(entry.height + 1)
    }

    fn best_entry(&self, height: u32) -> &BlockEntry {
        &self.blocks[&self.best_chain[height as usize]]
    }

    fn median_time_past_at(&self, height: u32) -> u32 {
        self.best_entry(height).median_time_past
    }

    // ----- transaction queries -------------------------------------------------------------

    /// A transaction in the best chain or the mempool, with its position.
    pub fn transaction(&self, txid: &Txid) -> Option<(&Transaction, TxPosition)> {
        if let Some(&(height, pos)) = self.confirmed.get(txid) {
            let entry = self.best_entry(height);
            let position = TxPosition::Confirmed {
                height,
                block_hash: entry.block.block_hash(),
                block_time: entry.block.header.time,
                pos,
            };
            return Some((&entry.block.txdata[pos], position));
        }
        self.mempool
            .get(txid)
            .map(|entry| (&entry.tx, TxPosition::Mempool))
    }

    /// `None` for unknown transactions, `Some(0)` in the mempool, else the confirmation count.
    pub fn confirmations(&self, txid: &Txid) -> Option<u32> {
        match self.transaction(txid)?.1 {
            TxPosition::Mempool => Some(0),
            TxPosition::Confirmed { height, .. } => Some(self.tip().0 - height + 1),
        }
    }

    /// The output `outpoint` refers to, if its transaction is known.
    pub fn prevout(&self, outpoint: &OutPoint) -> Option<&TxOut> {
        let (tx, _) = self.transaction(&outpoint.txid)?;
        tx.output.get(outpoint.vout as usize)
    }

    /// Fee paid by a known (or candidate) transaction; zero for coinbases, `None` when an input
    /// is unknown.
    pub fn fee_of(&self, tx: &Transaction) -> Option<Amount> {
        if tx.is_coinbase() {
            return Some(Amount::ZERO);
        }
        let mut value_in = Amount::ZERO;
        for input in &tx.input {
            value_in += self.prevout(&input.previous_output)?.value;
        }
        let value_out: Amount = tx.output.iter().map(|o| o.value).sum();
        value_in.checked_sub(value_out)
    }

    /// The input (best chain or mempool) spending `outpoint`, if any.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<Spender> {
        self.spenders.get(outpoint).copied()
    }

    /// Mempool txids in arrival order.
    pub fn mempool_txids(&self) -> Vec<Txid> {
        self.mempool_order.values().copied().collect()
    }

    /// Fee of a mempool transaction.
    pub fn mempool_fee(&self, txid: &Txid) -> Option<Amount> {
        self.mempool.get(txid).map(|entry| entry.fee)
    }

    /// Transactions touching the script (paying to it or spending from it): mempool ones newest
    /// first, then confirmed ones newest first.
    pub fn script_history(&self, key: &ScriptKey) -> (Vec<Txid>, Vec<Txid>) {
        let mempool = self
            .mempool_order
            .values()
            .rev()
            .filter(|txid| self.touches_script(&self.mempool[*txid].tx, key))
            .copied()
            .collect();
        let confirmed = self
            .script_history
            .get(key)
            .map(|txids| txids.iter().rev().copied().collect())
            .unwrap_or_default();
        (mempool, confirmed)
    }

    /// Unspent outputs paying to the script (best chain and mempool), oldest first.
    pub fn script_utxos(&self, key: &ScriptKey) -> Vec<(OutPoint, TxOut, TxPosition)> {
        let (mut mempool, mut confirmed) = self.script_history(key);
        confirmed.reverse();
        mempool.reverse();
        let mut utxos = Vec::new();
        for txid in confirmed.into_iter().chain(mempool) {
            let (tx, position) = self
                .transaction(&txid)
                .expect("indexed transactions are known");
            for (vout, output) in tx.output.iter().enumerate() {
                let outpoint = OutPoint {
                    txid,
                    vout: vout as u32,
                };
                if script_key(&output.script_pubkey) == *key
                    && !self.spenders.contains_key(&outpoint)
                {
                    utxos.push((outpoint, output.clone(), position));
                }
            }
        }
        utxos
    }

    fn touches_script(&self, tx: &Transaction, key: &ScriptKey) -> bool {
        tx.output
            .iter()
            .any(|o| script_key(&o.script_pubkey) == *key)
            || tx.input.iter().any(|input| {
                self.prevout(&input.previous_output)
                    .is_some_and(|prev| script_key(&prev.script_pubkey) == *key)
            })
    }

    // ----- mempool acceptance --------------------------------------------------------------

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

    // ----- faucet ----------------------------------------------------------------------------

    /// Pays `amount` to `destination` from the faucet's coins; the transaction enters the
    /// mempool.
    pub fn fund(&mut self, destination: ScriptBuf, amount: Amount) -> Result<Txid, DevchainError> {
        if amount.to_sat() < DUST_LIMIT_SAT {
            return Err(DevchainError::BelowDust {
                sats: amount.to_sat(),
            });
        }
        if amount > Amount::MAX_MONEY {
            return Err(DevchainError::FaucetTooPoor {
                requested: amount.to_sat(),
                available: self.faucet_balance().to_sat(),
            });
        }
        let coins = self.spendable_faucet_coins();
        let tx = self
            .faucet
            .build_funding(&coins, destination, amount)
            .map_err(|FaucetShortfall::Insufficient { available }| {
                DevchainError::FaucetTooPoor {
                    requested: amount.to_sat(),
                    available: available.to_sat(),
                }
            })?;
        let txid = tx.compute_txid();
        self.accept(tx).map_err(DevchainError::Rejected)?;
        Ok(txid)
    }

    /// Sum of the faucet's currently spendable coins.
    pub fn faucet_balance(&self) -> Amount {
        self.spendable_faucet_coins()
            .iter()
            .map(|coin| coin.value)
            .sum()
    }

    /// The faucet's script (every coinbase pays to it).
    pub fn faucet_script(&self) -> &ScriptBuf {
        self.faucet.script_pubkey()
    }

    /// Confirmed coins first (oldest first), then unconfirmed change; immature coinbases left out.
    fn spendable_faucet_coins(&self) -> Vec<FaucetCoin> {
        let next_height = self.tip().0 + 1;
        let key = script_key(self.faucet.script_pubkey());
        self.script_utxos(&key)
            .into_iter()
            .filter(|(_, _, position)| match position {
                TxPosition::Confirmed { height, pos: 0, .. } => {
                    *height > 0 && next_height - height >= COINBASE_MATURITY
                }
                _ => true,
            })
            .map(|(outpoint, output, _)| FaucetCoin {
                outpoint,
                value: output.value,
            })
            .collect()
    }

    // ----- mining and reorgs -----------------------------------------------------------------

    /// Mines `count` blocks; the first one takes the whole mempool. Block times are
    /// `max(now, previous block time + 1)`, so they strictly increase even when mining faster
    /// than one block per second.
    pub fn mine(&mut self, count: u32, now: u32) -> Vec<BlockHash> {
        (0..count).map(|_| self.mine_block(now)).collect()
    }

    fn mine_block(&mut self, now: u32) -> BlockHash {
        let (tip_height, tip_hash) = self.tip();
        let height = tip_height + 1;
        let time = now.max(self.last_block_time + 1);
        let transactions: Vec<Transaction> = self
            .mempool_order
            .values()
            .map(|txid| self.mempool[txid].tx.clone())
            .collect();
        let fees: Amount = self.mempool.values().map(|entry| entry.fee).sum();
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
        self.mempool.clear();
        self.mempool_order.clear();
        self.connect(block)
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
    fn connect(&mut self, block: Block) -> BlockHash {
        let hash = block.block_hash();
        let height = self.best_chain.len() as u32;
        let mut times: Vec<u32> = self
            .best_chain
            .iter()
            .rev()
            .take(MEDIAN_TIME_SPAN - 1)
            .map(|h| self.blocks[h].block.header.time)
            .collect();
        times.push(block.header.time);
        times.sort_unstable();
        let median_time_past = times[times.len() / 2];
        let txids = block.txdata.iter().map(Transaction::compute_txid).collect();
        self.last_block_time = self.last_block_time.max(block.header.time);
        self.blocks.insert(
            hash,
            BlockEntry {
                block,
                height,
                in_best_chain: true,
                median_time_past,
                txids,
            },
        );
        self.best_chain.push(hash);
        self.index_block(height);
        hash
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
        for tx in candidates {
            let txid = tx.compute_txid();
            if let Err(rejection) = self.accept(tx) {
                tracing::debug!(%txid, %rejection, "reorg dropped transaction");
                dropped.push(txid);
            }
        }
        Ok(dropped)
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

#[cfg(test)]
mod tests;
