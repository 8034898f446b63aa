//! The HTTP surface: Esplora's REST API at the root, plus `/dev/*` control routes.
//!
//! Handlers lock the chain, read or change it, and render; the lock is never held across an
//! `.await`. Path parameters are parsed here so bad input gets a one-sentence 400 (Esplora's
//! wording where it has one) instead of a framework rejection. Unknown routes answer 404 and are
//! logged, because a 404 on a route some client calls is a devchain bug.

use std::str::FromStr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bitcoin::address::NetworkUnchecked;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::{Address, Amount, BlockHash, Network, OutPoint, Transaction, Txid};
use serde::Deserialize;
use serde_json::json;

use super::chain::{script_key, Accepted, ChainState, ScriptKey, TxPosition};
use super::esplora::{
    self, BlockInfo, BlockStatus, MempoolStats, MerkleProof, OutputStatus, ScriptStats, Tx,
    TxStatus, Utxo, BLOCKS_PER_PAGE, BLOCK_TXS_PER_PAGE, CHAIN_TXS_PER_PAGE, MEMPOOL_TXS_PER_PAGE,
};
use super::merkle::{merkle_block, merkle_branch};
use super::policy::Rejection;
use super::{unix_now, Shared};

/// Most blocks one `/dev/mine` call may ask for.
pub const MAX_BLOCKS_PER_REQUEST: u32 = 10_000;

/// Builds the router serving `shared`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        // Chain tip and blocks.
        .route("/blocks/tip/height", get(tip_height))
        .route("/blocks/tip/hash", get(tip_hash))
        .route("/blocks", get(blocks_from_tip))
        .route("/blocks/{start_height}", get(blocks_from_height))
        .route("/block-height/{height}", get(block_hash_at_height))
        .route("/block/{hash}", get(block_info))
        .route("/block/{hash}/header", get(block_header))
        .route("/block/{hash}/status", get(block_status))
        .route("/block/{hash}/raw", get(block_raw))
        .route("/block/{hash}/txids", get(block_txids))
        .route("/block/{hash}/txid/{index}", get(block_txid_at))
        .route("/block/{hash}/txs", get(block_txs_first))
        .route("/block/{hash}/txs/{start_index}", get(block_txs_from))
        // Transactions.
        .route("/tx", post(broadcast))
        .route("/txs/package", post(submit_package))
        .route("/tx/{txid}", get(tx_info))
        .route("/tx/{txid}/raw", get(tx_raw))
        .route("/tx/{txid}/hex", get(tx_hex))
        .route("/tx/{txid}/status", get(tx_status))
        .route("/tx/{txid}/merkle-proof", get(tx_merkle_proof))
        .route("/tx/{txid}/merkleblock-proof", get(tx_merkleblock_proof))
        .route("/tx/{txid}/outspend/{vout}", get(tx_outspend))
        .route("/tx/{txid}/outspends", get(tx_outspends))
        // Scripts and addresses.
        .route("/scripthash/{hash}", get(scripthash_stats))
        .route("/scripthash/{hash}/txs", get(scripthash_txs))
        .route(
            "/scripthash/{hash}/txs/chain",
            get(scripthash_chain_txs_first),
        )
        .route(
            "/scripthash/{hash}/txs/chain/{last_seen}",
            get(scripthash_chain_txs_after),
        )
        .route(
            "/scripthash/{hash}/txs/mempool",
            get(scripthash_mempool_txs),
        )
        .route("/scripthash/{hash}/utxo", get(scripthash_utxo))
        .route("/address/{address}", get(address_stats))
        .route("/address/{address}/txs", get(address_txs))
        .route("/address/{address}/txs/chain", get(address_chain_txs_first))
        .route(
            "/address/{address}/txs/chain/{last_seen}",
            get(address_chain_txs_after),
        )
        .route("/address/{address}/txs/mempool", get(address_mempool_txs))
        .route("/address/{address}/utxo", get(address_utxo))
        // Mempool and fees.
        .route("/mempool", get(mempool_stats))
        .route("/mempool/txids", get(mempool_txids))
        .route("/mempool/recent", get(mempool_recent))
        .route("/fee-estimates", get(fee_estimates))
        // Control routes for scripts and people.
        .route("/dev/mine", post(dev_mine))
        .route("/dev/fund", post(dev_fund))
        .route("/dev/invalidate", post(dev_invalidate))
        .route("/dev/faucet", get(dev_faucet))
        .fallback(unknown_route)
        .layer(middleware::from_fn(log_request))
        .with_state(shared)
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "devchain request");
    response
}

async fn unknown_route(request: Request) -> ApiError {
    tracing::warn!(method = %request.method(), path = %request.uri().path(), "devchain has no such route");
    ApiError::NotFound("Not found")
}

/// A failed request: status plus a one-sentence plain-text body.
#[derive(Debug)]
enum ApiError {
    NotFound(&'static str),
    BadRequest(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, message).into_response(),
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, message).into_response(),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        ApiError::BadRequest(rejection.esplora_body())
    }
}

type ApiResult<T> = Result<T, ApiError>;

// ----- parameter parsing ---------------------------------------------------------------------

fn parse_txid(raw: &str) -> ApiResult<Txid> {
    Txid::from_str(raw).map_err(|_| ApiError::BadRequest(format!("Invalid transaction id: {raw}")))
}

fn parse_block_hash(raw: &str) -> ApiResult<BlockHash> {
    BlockHash::from_str(raw).map_err(|_| ApiError::BadRequest(format!("Invalid block hash: {raw}")))
}

fn parse_number<T: FromStr>(raw: &str, what: &str) -> ApiResult<T> {
    raw.parse()
        .map_err(|_| ApiError::BadRequest(format!("Invalid {what}: {raw}")))
}

fn parse_script_hash(raw: &str) -> ApiResult<ScriptKey> {
    ScriptKey::from_str(raw).map_err(|_| ApiError::BadRequest(format!("Invalid scripthash: {raw}")))
}

fn parse_address(raw: &str) -> ApiResult<Address> {
    raw.parse::<Address<NetworkUnchecked>>()
        .ok()
        .and_then(|address| address.require_network(Network::Regtest).ok())
        .ok_or_else(|| ApiError::BadRequest(format!("Invalid regtest Bitcoin address: {raw}")))
}

fn hex_response(hex: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], hex).into_response()
}

fn bytes_response(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

// ----- blocks ----------------------------------------------------------------------------

async fn tip_height(State(shared): State<Arc<Shared>>) -> String {
    shared.lock().tip().0.to_string()
}

async fn tip_hash(State(shared): State<Arc<Shared>>) -> String {
    shared.lock().tip().1.to_string()
}

async fn blocks_from_tip(State(shared): State<Arc<Shared>>) -> Json<Vec<BlockInfo>> {
    let chain = shared.lock();
    Json(block_page(&chain, chain.tip().0))
}

async fn blocks_from_height(
    State(shared): State<Arc<Shared>>,
    Path(start): Path<String>,
) -> ApiResult<Json<Vec<BlockInfo>>> {
    let start: u32 = parse_number(&start, "block height")?;
    Ok(Json(block_page(&shared.lock(), start)))
}

/// Up to [`BLOCKS_PER_PAGE`] best-chain blocks at `start` and below, highest first; heights
/// above the tip are skipped, as electrs does.
fn block_page(chain: &ChainState, start: u32) -> Vec<BlockInfo> {
    (start.saturating_sub(BLOCKS_PER_PAGE - 1)..=start)
        .rev()
        .filter_map(|height| chain.block_hash_at(height))
        .filter_map(|hash| chain.block(&hash).map(BlockInfo::build))
        .collect()
}

async fn block_hash_at_height(
    State(shared): State<Arc<Shared>>,
    Path(height): Path<String>,
) -> ApiResult<String> {
    let height: u32 = parse_number(&height, "block height")?;
    shared
        .lock()
        .block_hash_at(height)
        .map(|hash| hash.to_string())
        .ok_or(ApiError::NotFound("Block not found"))
}

/// Runs `render` on the block named by the `hash` path parameter.
fn with_block<T>(
    shared: &Shared,
    hash: &str,
    render: impl FnOnce(&ChainState, &super::chain::BlockEntry) -> ApiResult<T>,
) -> ApiResult<T> {
    let hash = parse_block_hash(hash)?;
    let chain = shared.lock();
    let entry = chain
        .block(&hash)
        .ok_or(ApiError::NotFound("Block not found"))?;
    render(&chain, entry)
}

async fn block_info(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Json<BlockInfo>> {
    with_block(&shared, &hash, |_, entry| Ok(Json(BlockInfo::build(entry))))
}

async fn block_header(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Response> {
    with_block(&shared, &hash, |_, entry| {
        Ok(hex_response(esplora::consensus_hex(&entry.block.header)))
    })
}

async fn block_status(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Json<BlockStatus>> {
    with_block(&shared, &hash, |chain, entry| {
        Ok(Json(BlockStatus::build(chain, entry)))
    })
}

async fn block_raw(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Response> {
    with_block(&shared, &hash, |_, entry| {
        Ok(bytes_response(serialize(&entry.block)))
    })
}

async fn block_txids(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Json<Vec<Txid>>> {
    with_block(&shared, &hash, |_, entry| Ok(Json(entry.txids.clone())))
}

async fn block_txid_at(
    State(shared): State<Arc<Shared>>,
    Path((hash, index)): Path<(String, String)>,
) -> ApiResult<String> {
    let index: usize = parse_number(&index, "transaction index")?;
    with_block(&shared, &hash, |_, entry| {
        entry
            .txids
            .get(index)
            .map(|txid| txid.to_string())
            .ok_or(ApiError::NotFound("Transaction index out of range"))
    })
}

async fn block_txs_first(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Json<Vec<Tx>>> {
    block_txs(&shared, &hash, 0)
}

async fn block_txs_from(
    State(shared): State<Arc<Shared>>,
    Path((hash, start)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Tx>>> {
    let start: usize = parse_number(&start, "start index")?;
    block_txs(&shared, &hash, start)
}

fn block_txs(shared: &Shared, hash: &str, start: usize) -> ApiResult<Json<Vec<Tx>>> {
    if start % BLOCK_TXS_PER_PAGE != 0 {
        return Err(ApiError::BadRequest(format!(
            "start index must be a multiple of {BLOCK_TXS_PER_PAGE}"
        )));
    }
    with_block(shared, hash, |chain, entry| {
        if start >= entry.txids.len() {
            return Err(ApiError::BadRequest("start index out of range".to_string()));
        }
        // Transactions of a stale block report where they are now (mempool or nowhere).
        let txs = entry
            .block
            .txdata
            .iter()
            .zip(&entry.txids)
            .skip(start)
            .take(BLOCK_TXS_PER_PAGE)
            .map(|(tx, txid)| {
                let position = chain
                    .transaction(txid)
                    .map_or(TxPosition::Mempool, |(_, p)| p);
                Tx::build(chain, tx, position)
            })
            .collect();
        Ok(Json(txs))
    })
}

// ----- transactions ------------------------------------------------------------------------

async fn broadcast(State(shared): State<Arc<Shared>>, body: Bytes) -> ApiResult<String> {
    let tx = decode_tx_hex(&body)?;
    let txid = tx.compute_txid();
    match shared.lock().accept(tx)? {
        Accepted::New { fee } => {
            tracing::debug!(%txid, fee_sat = fee.to_sat(), "devchain accepted transaction")
        }
        Accepted::AlreadyInMempool => tracing::debug!(%txid, "devchain already had transaction"),
    }
    Ok(txid.to_string())
}

fn decode_tx_hex(body: &[u8]) -> ApiResult<Transaction> {
    let text = std::str::from_utf8(body).map_err(|_| Rejection::decode_failed())?;
    let bytes = hex::decode(text.trim()).map_err(|_| Rejection::decode_failed())?;
    Ok(deserialize::<Transaction>(&bytes).map_err(|_| Rejection::decode_failed())?)
}

/// `POST /txs/package`: a JSON array of transaction hex, accepted in order. The answer follows
/// Core's `submitpackage` result (`package_msg`, `tx-results` keyed by wtxid).
async fn submit_package(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let hexes: Vec<String> = serde_json::from_slice(&body).map_err(|_| {
        ApiError::BadRequest(
            "The body must be a JSON array of transaction hex strings.".to_string(),
        )
    })?;
    let txs = hexes
        .iter()
        .map(|hex| decode_tx_hex(hex.as_bytes()))
        .collect::<ApiResult<Vec<Transaction>>>()?;
    let mut chain = shared.lock();
    let mut results = serde_json::Map::new();
    let mut all_accepted = true;
    for tx in txs {
        let txid = tx.compute_txid();
        let wtxid = tx.compute_wtxid();
        let vsize = tx.vsize();
        let result = match chain.accept(tx) {
            Ok(Accepted::New { fee }) => json!({
                "txid": txid,
                "vsize": vsize,
                "fees": { "base": fee.to_btc(), "effective-feerate": fee_rate_btc_per_kvb(fee, vsize), "effective-includes": [wtxid] },
            }),
            Ok(Accepted::AlreadyInMempool) => json!({
                "txid": txid,
                "vsize": vsize,
                "fees": { "base": chain.mempool_fee(&txid).unwrap_or(Amount::ZERO).to_btc() },
            }),
            Err(rejection) => {
                all_accepted = false;
                json!({ "txid": txid, "error": rejection.reason })
            }
        };
        results.insert(wtxid.to_string(), result);
    }
    let package_msg = if all_accepted {
        "success"
    } else {
        "transaction failed"
    };
    Ok(Json(json!({
        "package_msg": package_msg,
        "tx-results": results,
        "replaced-transactions": [],
    })))
}

fn fee_rate_btc_per_kvb(fee: Amount, vsize: usize) -> f64 {
    fee.to_btc() * 1000.0 / vsize.max(1) as f64
}

/// Runs `render` on the transaction named by the `txid` path parameter (404 when unknown).
fn with_tx<T>(
    shared: &Shared,
    txid: &str,
    render: impl FnOnce(&ChainState, &Transaction, TxPosition) -> ApiResult<T>,
) -> ApiResult<T> {
    let txid = parse_txid(txid)?;
    let chain = shared.lock();
    let (tx, position) = chain
        .transaction(&txid)
        .ok_or(ApiError::NotFound("Transaction not found"))?;
    render(&chain, tx, position)
}

async fn tx_info(
    State(shared): State<Arc<Shared>>,
    Path(txid): Path<String>,
) -> ApiResult<Json<Tx>> {
    with_tx(&shared, &txid, |chain, tx, position| {
        Ok(Json(Tx::build(chain, tx, position)))
    })
}

async fn tx_raw(
    State(shared): State<Arc<Shared>>,
    Path(txid): Path<String>,
) -> ApiResult<Response> {
    with_tx(&shared, &txid, |_, tx, _| Ok(bytes_response(serialize(tx))))
}

async fn tx_hex(
    State(shared): State<Arc<Shared>>,
    Path(txid): Path<String>,
) -> ApiResult<Response> {
    with_tx(&shared, &txid, |_, tx, _| {
        Ok(hex_response(esplora::consensus_hex(tx)))
    })
}

/// Unknown transactions report `{"confirmed": false}`, as electrs does.
async fn tx_status(
    State(shared): State<Arc<Shared>>,
    Path(txid): Path<String>,
) -> ApiResult<Json<TxStatus>> {
    let txid = parse_txid(&txid)?;
    let chain = shared.lock();
    let status = chain
        .transaction(&txid)
        .map_or_else(TxStatus::unconfirmed, |(_, position)| {
            TxStatus::from_position(position)
        });
    Ok(Json(status))
}

/// The confirming block and position of a confirmed transaction (404 otherwise).
fn confirmed_position(position: TxPosition) -> ApiResult<(u32, BlockHash, usize)> {
    match position {
        TxPosition::Confirmed {
            height,
            block_hash,
            pos,
            ..
        } => Ok((height, block_hash, pos)),
        TxPosition::Mempool => Err(ApiError::NotFound(
            "Transaction not found or is unconfirmed",
        )),
    }
}

async fn tx_merkle_proof(
    State(shared): State<Arc<Shared>>,
    Path(txid): Path<String>,
) -> ApiResult<Json<MerkleProof>> {
    with_tx(&shared, &txid, |chain, _, position| {
        let (block_height, block_hash, pos) = confirmed_position(position)?;
        let entry = chain
            .block(&block_hash)
            .expect("confirming blocks are stored");
        Ok(Json(MerkleProof {
            block_height,
            merkle: merkle_branch(&entry.txids, pos),
            pos,
        }))
    })
}

async fn tx_merkleblock_proof(
    State(shared): State<Arc<Shared>>,
    Path(txid): Path<String>,
) -> ApiResult<Response> {
    with_tx(&shared, &txid, |chain, tx, position| {
        let (_, block_hash, _) = confirmed_position(position)?;
        let entry = chain
            .block(&block_hash)
            .expect("confirming blocks are stored");
        let proof = merkle_block(&entry.block, &tx.compute_txid());
        Ok(hex_response(esplora::consensus_hex(&proof)))
    })
}

/// Unknown outputs report `{"spent": false}`, as electrs does.
async fn tx_outspend(
    State(shared): State<Arc<Shared>>,
    Path((txid, vout)): Path<(String, String)>,
) -> ApiResult<Json<OutputStatus>> {
    let txid = parse_txid(&txid)?;
    let vout: u32 = parse_number(&vout, "output index")?;
    Ok(Json(OutputStatus::build(
        &shared.lock(),
        &OutPoint { txid, vout },
    )))
}

async fn tx_outspends(
    State(shared): State<Arc<Shared>>,
    Path(txid): Path<String>,
) -> ApiResult<Json<Vec<OutputStatus>>> {
    with_tx(&shared, &txid, |chain, tx, _| {
        let txid = tx.compute_txid();
        let statuses = (0..tx.output.len() as u32)
            .map(|vout| OutputStatus::build(chain, &OutPoint { txid, vout }))
            .collect();
        Ok(Json(statuses))
    })
}

// ----- scripts and addresses ---------------------------------------------------------------

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

async fn scripthash_stats(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Json<ScriptStats>> {
    let key = parse_script_hash(&hash)?;
    let mut stats = script_stats(&shared.lock(), &key);
    stats.scripthash = Some(key.to_string());
    Ok(Json(stats))
}

async fn scripthash_txs(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Json<Vec<Tx>>> {
    let key = parse_script_hash(&hash)?;
    Ok(Json(history_first_page(&shared.lock(), &key)))
}

async fn scripthash_chain_txs_first(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Json<Vec<Tx>>> {
    let key = parse_script_hash(&hash)?;
    Ok(Json(history_chain_page(&shared.lock(), &key, None)))
}

async fn scripthash_chain_txs_after(
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

async fn scripthash_mempool_txs(
    State(shared): State<Arc<Shared>>,
    Path(hash): Path<String>,
) -> ApiResult<Json<Vec<Tx>>> {
    let key = parse_script_hash(&hash)?;
    Ok(Json(history_mempool_page(&shared.lock(), &key)))
}

async fn scripthash_utxo(
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

async fn address_stats(
    State(shared): State<Arc<Shared>>,
    Path(address): Path<String>,
) -> ApiResult<Json<ScriptStats>> {
    let (address, key) = address_key(&address)?;
    let mut stats = script_stats(&shared.lock(), &key);
    stats.address = Some(address.to_string());
    Ok(Json(stats))
}

async fn address_txs(
    State(shared): State<Arc<Shared>>,
    Path(address): Path<String>,
) -> ApiResult<Json<Vec<Tx>>> {
    let (_, key) = address_key(&address)?;
    Ok(Json(history_first_page(&shared.lock(), &key)))
}

async fn address_chain_txs_first(
    State(shared): State<Arc<Shared>>,
    Path(address): Path<String>,
) -> ApiResult<Json<Vec<Tx>>> {
    let (_, key) = address_key(&address)?;
    Ok(Json(history_chain_page(&shared.lock(), &key, None)))
}

async fn address_chain_txs_after(
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

async fn address_mempool_txs(
    State(shared): State<Arc<Shared>>,
    Path(address): Path<String>,
) -> ApiResult<Json<Vec<Tx>>> {
    let (_, key) = address_key(&address)?;
    Ok(Json(history_mempool_page(&shared.lock(), &key)))
}

async fn address_utxo(
    State(shared): State<Arc<Shared>>,
    Path(address): Path<String>,
) -> ApiResult<Json<Vec<Utxo>>> {
    let (_, key) = address_key(&address)?;
    Ok(Json(script_utxos(&shared.lock(), &key)))
}

// ----- mempool and fees --------------------------------------------------------------------

async fn mempool_stats(State(shared): State<Arc<Shared>>) -> Json<MempoolStats> {
    Json(MempoolStats::build(&shared.lock()))
}

async fn mempool_txids(State(shared): State<Arc<Shared>>) -> Json<Vec<Txid>> {
    Json(shared.lock().mempool_txids())
}

async fn mempool_recent(State(shared): State<Arc<Shared>>) -> Json<Vec<esplora::MempoolRecentTx>> {
    Json(esplora::mempool_recent(&shared.lock()))
}

async fn fee_estimates() -> Json<std::collections::BTreeMap<String, f64>> {
    Json(esplora::fee_estimates())
}

// ----- control routes ----------------------------------------------------------------------

#[derive(Deserialize)]
struct BlocksRequest {
    blocks: u32,
}

#[derive(Deserialize)]
struct FundRequest {
    address: String,
    sats: u64,
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], expected: &str) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|_| ApiError::BadRequest(format!("The body must be JSON like {expected}.")))
}

fn parse_block_count(body: &[u8]) -> ApiResult<u32> {
    let request: BlocksRequest = parse_json(body, r#"{"blocks": 1}"#)?;
    if request.blocks == 0 || request.blocks > MAX_BLOCKS_PER_REQUEST {
        return Err(ApiError::BadRequest(format!(
            "blocks must be between 1 and {MAX_BLOCKS_PER_REQUEST}."
        )));
    }
    Ok(request.blocks)
}

/// `POST /dev/mine {"blocks": n}` -> `{"hashes": [...]}`, oldest first.
async fn dev_mine(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let blocks = parse_block_count(&body)?;
    let hashes = shared.lock().mine(blocks, unix_now());
    Ok(Json(json!({ "hashes": hashes })))
}

/// `POST /dev/fund {"address": "...", "sats": n}` -> `{"txid": "..."}` (in the mempool).
async fn dev_fund(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let request: FundRequest = parse_json(&body, r#"{"address": "bcrt1...", "sats": 100000}"#)?;
    let address = parse_address(&request.address)?;
    let txid = shared
        .lock()
        .fund(address.script_pubkey(), Amount::from_sat(request.sats))
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    Ok(Json(json!({ "txid": txid })))
}

/// `POST /dev/invalidate {"blocks": n}` -> `{"height", "hash", "dropped": [...]}`.
async fn dev_invalidate(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let blocks = parse_block_count(&body)?;
    let mut chain = shared.lock();
    let dropped = chain
        .invalidate(blocks)
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    let (height, hash) = chain.tip();
    Ok(Json(
        json!({ "height": height, "hash": hash, "dropped": dropped }),
    ))
}

/// `GET /dev/faucet` -> `{"address", "spendable_sat"}`.
async fn dev_faucet(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let chain = shared.lock();
    let address = Address::from_script(chain.faucet_script(), Network::Regtest)
        .map(|a| a.to_string())
        .unwrap_or_default();
    Json(json!({ "address": address, "spendable_sat": chain.faucet_balance().to_sat() }))
}
