//! Esplora's JSON shapes, built from the chain state.
//!
//! Field names and types follow Blockstream's esplora/electrs REST API as parsed by
//! `esplora-client` 0.12 and 0.13 (`src/api.rs`): amounts are integer sats, hashes are hex in
//! display order, scripts and witness items are lower-case hex, optional fields Esplora omits
//! (e.g. `block_height` of an unconfirmed status) are omitted, and `prevout` of a coinbase input
//! is `null`.

use std::collections::BTreeMap;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{
    Address, BlockHash, Network, OutPoint, Script, Transaction, TxMerkleNode, TxOut, Txid,
};
use serde::Serialize;

use super::chain::{script_key, BlockEntry, ChainState, ScriptKey, TxPosition};

/// Confirmed transactions per page of `/scripthash/:h/txs[/chain/:last]`, as Esplora.
pub const CHAIN_TXS_PER_PAGE: usize = 25;
/// Mempool transactions in `/scripthash/:h/txs` and `/txs/mempool`, as Esplora.
pub const MEMPOOL_TXS_PER_PAGE: usize = 50;
/// Blocks per `/blocks[/:start]` page, as Esplora.
pub const BLOCKS_PER_PAGE: u32 = 10;
/// Transactions per `/block/:hash/txs[/:start]` page, as Esplora.
pub const BLOCK_TXS_PER_PAGE: usize = 25;

#[derive(Debug, Serialize)]
pub struct TxStatus {
    pub confirmed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_hash: Option<BlockHash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_time: Option<u64>,
}

impl TxStatus {
    pub fn unconfirmed() -> Self {
        TxStatus {
            confirmed: false,
            block_height: None,
            block_hash: None,
            block_time: None,
        }
    }

    pub fn from_position(position: TxPosition) -> Self {
        match position {
            TxPosition::Mempool => Self::unconfirmed(),
            TxPosition::Confirmed {
                height,
                block_hash,
                block_time,
                ..
            } => TxStatus {
                confirmed: true,
                block_height: Some(height),
                block_hash: Some(block_hash),
                block_time: Some(u64::from(block_time)),
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Vout {
    pub scriptpubkey: String,
    pub scriptpubkey_asm: String,
    pub scriptpubkey_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scriptpubkey_address: Option<String>,
    pub value: u64,
}

impl Vout {
    pub fn from_txout(output: &TxOut) -> Self {
        let script = &output.script_pubkey;
        Vout {
            scriptpubkey: script.to_hex_string(),
            scriptpubkey_asm: script.to_asm_string(),
            scriptpubkey_type: script_type(script),
            scriptpubkey_address: Address::from_script(script, Network::Regtest)
                .ok()
                .map(|a| a.to_string()),
            value: output.value.to_sat(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Vin {
    pub txid: Txid,
    pub vout: u32,
    pub prevout: Option<Vout>,
    pub scriptsig: String,
    pub scriptsig_asm: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub witness: Vec<String>,
    pub is_coinbase: bool,
    pub sequence: u32,
}

#[derive(Debug, Serialize)]
pub struct Tx {
    pub txid: Txid,
    pub version: i32,
    pub locktime: u32,
    pub vin: Vec<Vin>,
    pub vout: Vec<Vout>,
    pub size: usize,
    pub weight: u64,
    pub fee: u64,
    pub status: TxStatus,
}

impl Tx {
    /// The Esplora view of a transaction known to `chain`.
    pub fn build(chain: &ChainState, tx: &Transaction, position: TxPosition) -> Self {
        let is_coinbase = tx.is_coinbase();
        let vin = tx
            .input
            .iter()
            .map(|input| Vin {
                txid: input.previous_output.txid,
                vout: input.previous_output.vout,
                prevout: if is_coinbase {
                    None
                } else {
                    chain.prevout(&input.previous_output).map(Vout::from_txout)
                },
                scriptsig: input.script_sig.to_hex_string(),
                scriptsig_asm: input.script_sig.to_asm_string(),
                witness: input.witness.iter().map(hex::encode).collect(),
                is_coinbase,
                sequence: input.sequence.0,
            })
            .collect();
        Tx {
            txid: tx.compute_txid(),
            version: tx.version.0,
            locktime: tx.lock_time.to_consensus_u32(),
            vin,
            vout: tx.output.iter().map(Vout::from_txout).collect(),
            size: tx.total_size(),
            weight: tx.weight().to_wu(),
            fee: chain.fee_of(tx).map_or(0, |fee| fee.to_sat()),
            status: TxStatus::from_position(position),
        }
    }
}

/// Looks a transaction up and renders it.
pub fn tx_by_id(chain: &ChainState, txid: &Txid) -> Option<Tx> {
    chain
        .transaction(txid)
        .map(|(tx, position)| Tx::build(chain, tx, position))
}

#[derive(Debug, Serialize)]
pub struct BlockStatus {
    pub in_best_chain: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_best: Option<BlockHash>,
}

impl BlockStatus {
    pub fn build(chain: &ChainState, entry: &BlockEntry) -> Self {
        BlockStatus {
            in_best_chain: entry.in_best_chain,
            height: entry.in_best_chain.then_some(entry.height),
            next_best: chain.next_best(entry),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BlockInfo {
    pub id: BlockHash,
    pub height: u32,
    pub version: i32,
    pub timestamp: u64,
    pub tx_count: u64,
    pub size: usize,
    pub weight: u64,
    pub merkle_root: TxMerkleNode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previousblockhash: Option<BlockHash>,
    pub mediantime: u64,
    pub nonce: u32,
    pub bits: u32,
    pub difficulty: f64,
}

impl BlockInfo {
    pub fn build(entry: &BlockEntry) -> Self {
        let header = &entry.block.header;
        BlockInfo {
            id: header.block_hash(),
            height: entry.height,
            version: header.version.to_consensus(),
            timestamp: u64::from(header.time),
            tx_count: entry.block.txdata.len() as u64,
            size: entry.block.total_size(),
            weight: entry.block.weight().to_wu(),
            merkle_root: header.merkle_root,
            previousblockhash: (entry.height > 0).then_some(header.prev_blockhash),
            mediantime: u64::from(entry.median_time_past),
            nonce: header.nonce,
            bits: header.bits.to_consensus(),
            difficulty: header.difficulty_float(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OutputStatus {
    pub spent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txid: Option<Txid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vin: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<TxStatus>,
}

impl OutputStatus {
    pub fn build(chain: &ChainState, outpoint: &OutPoint) -> Self {
        let Some(spender) = chain.spender(outpoint) else {
            return OutputStatus {
                spent: false,
                txid: None,
                vin: None,
                status: None,
            };
        };
        let status = chain
            .transaction(&spender.txid)
            .map(|(_, position)| TxStatus::from_position(position));
        OutputStatus {
            spent: true,
            txid: Some(spender.txid),
            vin: Some(u64::from(spender.vin)),
            status,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct MerkleProof {
    pub block_height: u32,
    pub merkle: Vec<Txid>,
    pub pos: usize,
}

#[derive(Debug, Serialize)]
pub struct Utxo {
    pub txid: Txid,
    pub vout: u32,
    pub status: TxStatus,
    pub value: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct TxoSummary {
    pub funded_txo_count: u32,
    pub funded_txo_sum: u64,
    pub spent_txo_count: u32,
    pub spent_txo_sum: u64,
    pub tx_count: u32,
}

#[derive(Debug, Serialize)]
pub struct ScriptStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scripthash: Option<String>,
    pub chain_stats: TxoSummary,
    pub mempool_stats: TxoSummary,
}

/// Funded/spent counts and sums of a script over the given transactions.
pub fn txo_summary(chain: &ChainState, key: &ScriptKey, txids: &[Txid]) -> TxoSummary {
    let mut summary = TxoSummary {
        tx_count: txids.len() as u32,
        ..TxoSummary::default()
    };
    for txid in txids {
        let Some((tx, _)) = chain.transaction(txid) else {
            continue;
        };
        for output in &tx.output {
            if script_key(&output.script_pubkey) == *key {
                summary.funded_txo_count += 1;
                summary.funded_txo_sum += output.value.to_sat();
            }
        }
        if tx.is_coinbase() {
            continue;
        }
        for input in &tx.input {
            if let Some(prev) = chain.prevout(&input.previous_output) {
                if script_key(&prev.script_pubkey) == *key {
                    summary.spent_txo_count += 1;
                    summary.spent_txo_sum += prev.value.to_sat();
                }
            }
        }
    }
    summary
}

#[derive(Debug, Serialize)]
pub struct MempoolStats {
    pub count: usize,
    pub vsize: usize,
    pub total_fee: u64,
    /// `[fee rate sat/vB, vsize]` pairs, highest fee rate first.
    pub fee_histogram: Vec<(f64, usize)>,
}

impl MempoolStats {
    pub fn build(chain: &ChainState) -> Self {
        let mut vsize = 0;
        let mut total_fee = 0;
        let mut by_rate: BTreeMap<u64, usize> = BTreeMap::new();
        for txid in chain.mempool_txids() {
            let (tx, _) = chain.transaction(&txid).expect("mempool txids are known");
            let fee = chain.mempool_fee(&txid).map_or(0, |fee| fee.to_sat());
            let tx_vsize = tx.vsize();
            vsize += tx_vsize;
            total_fee += fee;
            // Bucket by tenths of sat/vB.
            let tenths = fee * 10 / tx_vsize.max(1) as u64;
            *by_rate.entry(tenths).or_default() += tx_vsize;
        }
        let fee_histogram = by_rate
            .into_iter()
            .rev()
            .map(|(tenths, size)| (tenths as f64 / 10.0, size))
            .collect();
        MempoolStats {
            count: chain.mempool_txids().len(),
            vsize,
            total_fee,
            fee_histogram,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct MempoolRecentTx {
    pub txid: Txid,
    pub fee: u64,
    pub vsize: usize,
    pub value: u64,
}

/// The ten most recent mempool arrivals, newest first.
pub fn mempool_recent(chain: &ChainState) -> Vec<MempoolRecentTx> {
    chain
        .mempool_txids()
        .into_iter()
        .rev()
        .take(10)
        .filter_map(|txid| {
            let (tx, _) = chain.transaction(&txid)?;
            Some(MempoolRecentTx {
                txid,
                fee: chain.mempool_fee(&txid)?.to_sat(),
                vsize: tx.vsize(),
                value: tx.output.iter().map(|o| o.value.to_sat()).sum(),
            })
        })
        .collect()
}

/// Confirmation targets Esplora reports in `/fee-estimates`.
const FEE_ESTIMATE_TARGETS: [u16; 28] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 144,
    504, 1008,
];

/// Fee estimates in sat/vB keyed by confirmation target.
///
/// Uncongested, every block takes the whole mempool, so any fee confirms in the next block;
/// the estimates are then a fixed, sane schedule (2 sat/vB for the next six blocks, 1.5 up to
/// 25 blocks, 1 sat/vB — the relay floor — beyond), decreasing with the target as on a real
/// network, so code that picks rates per target sees distinct, plausible numbers. Under
/// congestion (`block_min_fee_rate` > 0, see `/dev/congestion`) no target is estimated below
/// the rate blocks take.
pub fn fee_estimates(block_min_fee_rate: f64) -> BTreeMap<String, f64> {
    FEE_ESTIMATE_TARGETS
        .iter()
        .map(|&target| {
            let rate: f64 = match target {
                0..=6 => 2.0,
                7..=25 => 1.5,
                _ => 1.0,
            };
            (target.to_string(), rate.max(block_min_fee_rate))
        })
        .collect()
}

/// Esplora's `scriptpubkey_type` names.
fn script_type(script: &Script) -> &'static str {
    if script.is_p2wpkh() {
        "v0_p2wpkh"
    } else if script.is_p2wsh() {
        "v0_p2wsh"
    } else if script.is_p2tr() {
        "v1_p2tr"
    } else if script.is_p2pkh() {
        "p2pkh"
    } else if script.is_p2sh() {
        "p2sh"
    } else if script.is_op_return() {
        "op_return"
    } else if script.is_p2pk() {
        "p2pk"
    } else if script.is_empty() {
        "empty"
    } else {
        "unknown"
    }
}

/// Hex of a consensus-encodable value.
pub fn consensus_hex<T: bitcoin::consensus::Encodable>(value: &T) -> String {
    serialize_hex(value)
}
