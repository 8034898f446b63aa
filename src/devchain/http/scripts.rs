//! Script and address routes: stats, history pages and unspent outputs, by Esplora
//! scripthash (`/scripthash/:h/...`) or by regtest address (`/address/:a/...`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use bitcoin::{Address, Txid};

use super::{parse_address, parse_script_hash, parse_txid, ApiResult};
use crate::devchain::chain::{script_key, ChainState, ScriptKey};
use crate::devchain::esplora::{
    self, ScriptStats, Tx, TxStatus, Utxo, CHAIN_TXS_PER_PAGE, MEMPOOL_TXS_PER_PAGE,
};
use crate::devchain::Shared;

fn render_txs(chain: &ChainState, txids: impl IntoIterator<Item = Txid>) -> Vec<Tx> {
    txids
        .into_iter()
        .filter_map(|txid| esplora::tx_by_id(chain, &txid))
        .collect()
}

/// First history page: up to 50 mempool transactions, then the 25 newest confirmed ones.
fn history_first_page(chain: &ChainState, key: &ScriptKey) -> Vec<Tx> {
    let (mempool, confirmed) = chain.script_history(key);
    let txids = mempool
        .into_iter()
        .take(MEMPOOL_TXS_PER_PAGE)
        .chain(confirmed.into_iter().take(CHAIN_TXS_PER_PAGE));
    render_txs(chain, txids)
}

/// Confirmed history, 25 per page, after `last_seen` (from the newest when `None`). A
/// `last_seen` that is not in the confirmed history yields an empty page, as electrs does.
fn history_chain_page(chain: &ChainState, key: &ScriptKey, last_seen: Option<Txid>) -> Vec<Tx> {
    let (_, confirmed) = chain.script_history(key);
    let start = match last_seen {
        None => 0,
        Some(last_seen) => match confirmed.iter().position(|txid| *txid == last_seen) {
            Some(index) => index + 1,
            None => confirmed.len(),
        },
    };
    render_txs(
        chain,
        confirmed.into_iter().skip(start).take(CHAIN_TXS_PER_PAGE),
    )
}

fn history_mempool_page(chain: &ChainState, key: &ScriptKey) -> Vec<Tx> {
    let (mempool, _) = chain.script_history(key);
    render_txs(chain, mempool.into_iter().take(MEMPOOL_TXS_PER_PAGE))
}

fn script_utxos(chain: &ChainState, key: &ScriptKey) -> Vec<Utxo> {
    chain
        .script_utxos(key)
        .into_iter()
        .map(|(outpoint, output, position)| Utxo {
            txid: outpoint.txid,
            vout: outpoint.vout,
            status: TxStatus::from_position(position),
            value: output.value.to_sat(),
        })
        .collect()
}

fn script_stats(chain: &ChainState, key: &ScriptKey) -> ScriptStats {
    let (mempool, confirmed) = chain.script_history(key);
    ScriptStats {
        address: None,
        scripthash: None,
        chain_stats: esplora::txo_summary(chain, key, &confirmed),
        mempool_stats: esplora::txo_summary(chain, key, &mempool),
    }
}

pub(super) async fn scripthash_stats(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Json<ScriptStats>> {
    let key = parse_script_hash(&hash)?;
    let mut stats = script_stats(&shared.lock(), &key);
    stats.scripthash = Some(key.to_string());
    Ok(Json(stats))
}

pub(super) async fn scripthash_txs(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Json<Vec<Tx>>> {
    let key = parse_script_hash(&hash)?;
    Ok(Json(history_first_page(&shared.lock(), &key)))
}

pub(super) async fn scripthash_chain_txs_first(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Json<Vec<Tx>>> {
    let key = parse_script_hash(&hash)?;
    Ok(Json(history_chain_page(&shared.lock(), &key, None)))
}

pub(super) async fn scripthash_chain_txs_after(
    State(shared): State<Arc<Shared>>,
    Path((hash, last_seen)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Tx>>> {
    let key = parse_script_hash(&hash)?;
    let last_seen = parse_txid(&last_seen)?;
    Ok(Json(history_chain_page(
        &shared.lock(),
        &key,
        Some(last_seen),
    )))
}

pub(super) async fn scripthash_mempool_txs(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Json<Vec<Tx>>> {
    let key = parse_script_hash(&hash)?;
    Ok(Json(history_mempool_page(&shared.lock(), &key)))
}

pub(super) async fn scripthash_utxo(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Json<Vec<Utxo>>> {
    let key = parse_script_hash(&hash)?;
    Ok(Json(script_utxos(&shared.lock(), &key)))
}

fn address_key(raw: &str) -> ApiResult<(Address, ScriptKey)> {
    let address = parse_address(raw)?;
    let key = script_key(&address.script_pubkey());
    Ok((address, key))
}

pub(super) async fn address_stats(
    State(shared): State<Arc<Shared>>,
    Path(address): Path<String>,
) -> ApiResult<Json<ScriptStats>> {
    let (address, key) = address_key(&address)?;
    let mut stats = script_stats(&shared.lock(), &key);
    stats.address = Some(address.to_string());
    Ok(Json(stats))
}

pub(super) async fn address_txs(
    State(shared): State<Arc<Shared>>,
    Path(address): Path<String>,
) -> ApiResult<Json<Vec<Tx>>> {
    let (_, key) = address_key(&address)?;
    Ok(Json(history_first_page(&shared.lock(), &key)))
}

pub(super) async fn address_chain_txs_first(
    State(shared): State<Arc<Shared>>,
    Path(address): Path<String>,
) -> ApiResult<Json<Vec<Tx>>> {
    let (_, key) = address_key(&address)?;
    Ok(Json(history_chain_page(&shared.lock(), &key, None)))
}

pub(super) async fn address_chain_txs_after(
    State(shared): State<Arc<Shared>>,
    Path((address, last_seen)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Tx>>> {
    let (_, key) = address_key(&address)?;
    let last_seen = parse_txid(&last_seen)?;
    Ok(Json(history_chain_page(
        &shared.lock(),
        &key,
        Some(last_seen),
    )))
}

pub(super) async fn address_mempool_txs(
    State(shared): State<Arc<Shared>>,
    Path(address): Path<String>,
) -> ApiResult<Json<Vec<Tx>>> {
    let (_, key) = address_key(&address)?;
    Ok(Json(history_mempool_page(&shared.lock(), &key)))
}

pub(super) async fn address_utxo(
    State(shared): State<Arc<Shared>>,
    Path(address): Path<String>,
) -> ApiResult<Json<Vec<Utxo>>> {
    let (_, key) = address_key(&address)?;
    Ok(Json(script_utxos(&shared.lock(), &key)))
}
