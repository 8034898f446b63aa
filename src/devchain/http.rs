//! The HTTP surface: Esplora's REST API at the root, plus `/dev/*` control routes.
//!
//! Split by concern: this file holds the router, blocks, transactions and the mempool;
//! [`scripts`] the script and address routes, [`control`] the `/dev/*` routes.
//!
//! Handlers lock the chain, read or change it (changes through `Shared::change`, which writes
//! them to the devchain's file before the answer), and render; the lock is never held across an
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
use serde_json::json;

use super::chain::{Accepted, ChainState, ScriptKey, TxPosition};
use super::esplora::{
    self, BlockInfo, BlockStatus, MempoolStats, MerkleProof, OutputStatus, Tx, TxStatus,
    BLOCKS_PER_PAGE, BLOCK_TXS_PER_PAGE,
};
use super::merkle::{merkle_block, merkle_branch};
use super::policy::Rejection;
use super::{DevchainError, Shared};

mod control;
mod scripts;

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
        .route("/scripthash/{hash}", get(scripts::scripthash_stats))
        .route("/scripthash/{hash}/txs", get(scripts::scripthash_txs))
        .route(
            "/scripthash/{hash}/txs/chain",
            get(scripts::scripthash_chain_txs_first),
        )
        .route(
            "/scripthash/{hash}/txs/chain/{last_seen}",
            get(scripts::scripthash_chain_txs_after),
        )
        .route(
            "/scripthash/{hash}/txs/mempool",
            get(scripts::scripthash_mempool_txs),
        )
        .route("/scripthash/{hash}/utxo", get(scripts::scripthash_utxo))
        .route("/address/{address}", get(scripts::address_stats))
        .route("/address/{address}/txs", get(scripts::address_txs))
        .route(
            "/address/{address}/txs/chain",
            get(scripts::address_chain_txs_first),
        )
        .route(
            "/address/{address}/txs/chain/{last_seen}",
            get(scripts::address_chain_txs_after),
        )
        .route(
            "/address/{address}/txs/mempool",
            get(scripts::address_mempool_txs),
        )
        .route("/address/{address}/utxo", get(scripts::address_utxo))
        // Mempool and fees.
        .route("/mempool", get(mempool_stats))
        .route("/mempool/txids", get(mempool_txids))
        .route("/mempool/recent", get(mempool_recent))
        .route("/fee-estimates", get(fee_estimates))
        // Control routes for scripts and people.
        .route("/dev/mine", post(control::dev_mine))
        .route("/dev/fund", post(control::dev_fund))
        .route("/dev/invalidate", post(control::dev_invalidate))
        .route("/dev/reorg", post(control::dev_reorg))
        .route("/dev/congestion", post(control::dev_congestion))
        .route("/dev/faucet", get(control::dev_faucet))
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
    /// The change could not be written to the devchain's file (logged; nothing acknowledged).
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, message).into_response(),
            ApiError::BadRequest(message) => (StatusCode::BAD_REQUEST, message).into_response(),
            ApiError::Internal(message) => {
                tracing::error!("{message}");
                (StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
            }
        }
    }
}

/// What [`Shared::change`] fails with: the file could not be written.
impl From<DevchainError> for ApiError {
    fn from(err: DevchainError) -> Self {
        ApiError::Internal(err.to_string())
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
    if !start.is_multiple_of(BLOCK_TXS_PER_PAGE) {
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
    match shared.change(|chain| chain.accept(tx))?? {
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
    let results = shared.change(|chain| {
        txs.into_iter()
            .map(|tx| {
                let (txid, wtxid, vsize) = (tx.compute_txid(), tx.compute_wtxid(), tx.vsize());
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
                    Err(rejection) => json!({ "txid": txid, "error": rejection.reason }),
                };
                (wtxid.to_string(), result)
            })
            .collect::<serde_json::Map<_, _>>()
    })?;
    let all_accepted = results.values().all(|result| result.get("error").is_none());
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

async fn fee_estimates(
    State(shared): State<Arc<Shared>>,
) -> Json<std::collections::BTreeMap<String, f64>> {
    let block_min_fee_rate = shared.lock().block_min_fee_rate();
    Json(esplora::fee_estimates(block_min_fee_rate))
}
