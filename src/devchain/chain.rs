//! The chain itself: blocks, the best chain, the mempool, and the indexes Esplora queries need.
//!
//! Everything here is synchronous and free of I/O so it can be unit-tested without a server; the
//! HTTP layer and the public [`super::Devchain`] handle hold it behind a mutex, and
//! [`super::store`] writes what changed to disk. Time is passed in by the caller (`now`), never
//! read here.
//!
//! Split by concern: this file holds the state and its queries (and the faucet),
//! [`mempool`] the acceptance rules, [`mining`] mining, connecting, invalidating, reorgs and
//! restoring stored blocks.
//!
//! Invariants kept by every method:
//! - every mempool transaction is valid for inclusion in the next block (so mining takes the
//!   whole mempool, or under congestion every package paying enough, in arrival order, which
//!   keeps parents before children);
//! - `spenders` holds exactly the inputs of best-chain and mempool transactions;
//! - blocks are never forgotten: a block disconnected by [`ChainState::invalidate`] or
//!   [`ChainState::reorg`] stays queryable with `in_best_chain = false`, as Esplora reports
//!   stale blocks.

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

/// Most blocks one reorg may replace. With coinbases maturing after [`COINBASE_MATURITY`]
/// blocks, no transaction in the replaced blocks can spend a replaced coinbase.
pub const MAX_REORG_DEPTH: u32 = COINBASE_MATURITY;

/// What a reorg did; hashes and txids oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReorgOutcome {
    /// The blocks taken out of the best chain (they stay queryable as stale blocks).
    pub removed: Vec<BlockHash>,
    /// The blocks that replaced them, one more than were removed.
    pub added: Vec<BlockHash>,
    /// Transactions of the removed blocks or the mempool that vanished: the excluded ones,
    /// everything spending them, and any that no longer validate.
    pub dropped: Vec<Txid>,
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
    /// Every block in the order it was added: parents always before their children.
    block_order: Vec<BlockHash>,
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
    /// Congestion: the lowest package fee rate (sat/vB) a block takes; 0 takes the whole
    /// mempool. Not stored: a restarted devchain is uncongested.
    block_min_fee_rate: f64,
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
            block_order: Vec::new(),
            best_chain: Vec::new(),
            confirmed: HashMap::new(),
            mempool: HashMap::new(),
            mempool_order: BTreeMap::new(),
            next_arrival: 0,
            spenders: HashMap::new(),
            script_history: HashMap::new(),
            last_block_time: 0,
            faucet: Faucet::new(),
            block_min_fee_rate: 0.0,
        };
        chain.connect(genesis_block(Network::Regtest));
        chain
    }

    // ----- chain queries -------------------------------------------------------------------

    /// The lowest package fee rate (sat/vB) the next blocks take (0: everything).
    pub fn block_min_fee_rate(&self) -> f64 {
        self.block_min_fee_rate
    }

    /// Sets the congestion: blocks take only transactions whose package (with their
    /// unconfirmed ancestors) pays at least `sat_per_vb`; the rest wait in the mempool.
    pub fn set_block_min_fee_rate(&mut self, sat_per_vb: f64) {
        self.block_min_fee_rate = sat_per_vb.max(0.0);
    }

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

    /// Every block, stale or not, in the order it was added (parents first).
    pub fn blocks_in_order(&self) -> &[BlockHash] {
        &self.block_order
    }

    /// Best-chain block hashes, genesis first.
    pub fn best_chain(&self) -> &[BlockHash] {
        &self.best_chain
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

    /// Mempool txids by arrival number (ascending = arrival order).
    pub fn mempool_arrivals(&self) -> &BTreeMap<u64, Txid> {
        &self.mempool_order
    }

    /// Numbers the next mempool arrivals from `next` on (when refilling a mempool read back
    /// from disk, so the arrival numbers stay those that were stored).
    pub fn resume_arrivals(&mut self, next: u64) {
        self.next_arrival = self.next_arrival.max(next);
    }

    /// A mempool transaction.
    pub fn mempool_tx(&self, txid: &Txid) -> Option<&Transaction> {
        self.mempool.get(txid).map(|entry| &entry.tx)
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
}

mod mempool;
mod mining;

#[cfg(test)]
mod tests;
