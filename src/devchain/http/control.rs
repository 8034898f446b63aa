//! The `/dev/*` control routes, for scripts and people: mine, fund, invalidate, reorg,
//! congestion, faucet.
//!
//! Bad input is a 400 with one sentence and changes nothing; every change is written to the
//! devchain's file (when it has one) before the answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use bitcoin::{Address, Amount, Network, Txid};
use serde::Deserialize;
use serde_json::json;

use super::{parse_address, parse_txid, ApiError, ApiResult};
use crate::devchain::{unix_now, Shared};

/// Most blocks one `/dev/mine` or `/dev/invalidate` call may ask for.
pub const MAX_BLOCKS_PER_REQUEST: u32 = 10_000;

#[derive(Deserialize)]
struct BlocksRequest {
    blocks: u32,
}

#[derive(Deserialize)]
struct FundRequest {
    address: String,
    sats: u64,
}

#[derive(Deserialize)]
struct ReorgRequest {
    depth: u32,
    #[serde(default)]
    exclude_txids: Vec<String>,
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
pub(super) async fn dev_mine(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let blocks = parse_block_count(&body)?;
    let hashes = shared.change(|chain| chain.mine(blocks, unix_now()))?;
    Ok(Json(json!({ "hashes": hashes })))
}

/// `POST /dev/fund {"address": "...", "sats": n}` -> `{"txid": "..."}` (in the mempool).
pub(super) async fn dev_fund(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let request: FundRequest = parse_json(&body, r#"{"address": "bcrt1...", "sats": 100000}"#)?;
    let address = parse_address(&request.address)?;
    let txid = shared
        .change(|chain| chain.fund(address.script_pubkey(), Amount::from_sat(request.sats)))?
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    Ok(Json(json!({ "txid": txid })))
}

/// `POST /dev/invalidate {"blocks": n}` -> `{"height", "hash", "dropped": [...]}`.
pub(super) async fn dev_invalidate(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let blocks = parse_block_count(&body)?;
    let (dropped, (height, hash)) = shared
        .change(|chain| {
            chain
                .invalidate(blocks)
                .map(|dropped| (dropped, chain.tip()))
        })?
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    Ok(Json(
        json!({ "height": height, "hash": hash, "dropped": dropped }),
    ))
}

/// `POST /dev/reorg {"depth": n, "exclude_txids": [...]}` ->
/// `{"removed": [...], "added": [...], "dropped": [...]}`, hashes oldest first.
pub(super) async fn dev_reorg(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let request: ReorgRequest = parse_json(&body, r#"{"depth": 1, "exclude_txids": []}"#)?;
    let exclude = request
        .exclude_txids
        .iter()
        .map(|txid| parse_txid(txid))
        .collect::<ApiResult<Vec<Txid>>>()?;
    let outcome = shared
        .change(|chain| chain.reorg(request.depth, &exclude, unix_now()))?
        .map_err(|err| ApiError::BadRequest(err.to_string()))?;
    tracing::info!(
        depth = request.depth,
        tip = %outcome.added.last().expect("a reorg adds blocks"),
        dropped = outcome.dropped.len(),
        "devchain reorganised"
    );
    Ok(Json(json!({
        "removed": outcome.removed,
        "added": outcome.added,
        "dropped": outcome.dropped,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CongestionRequest {
    min_fee_rate_sat_per_vb: f64,
}

/// Highest congestion `/dev/congestion` accepts, in sat/vB.
const MAX_CONGESTION_SAT_PER_VB: f64 = 10_000.0;

/// `POST /dev/congestion {"min_fee_rate_sat_per_vb": x}` -> `{"min_fee_rate_sat_per_vb": x}`:
/// from now on blocks take only packages paying at least `x` sat/vB and `/fee-estimates`
/// reports no target below it; 0 ends the congestion.
pub(super) async fn dev_congestion(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let request: CongestionRequest = parse_json(&body, r#"{"min_fee_rate_sat_per_vb": 10}"#)?;
    let rate = request.min_fee_rate_sat_per_vb;
    if !(0.0..=MAX_CONGESTION_SAT_PER_VB).contains(&rate) {
        return Err(ApiError::BadRequest(format!(
            "min_fee_rate_sat_per_vb must be between 0 and {MAX_CONGESTION_SAT_PER_VB}."
        )));
    }
    shared.change(|chain| chain.set_block_min_fee_rate(rate))?;
    tracing::info!(min_fee_rate_sat_per_vb = rate, "devchain congestion set");
    Ok(Json(json!({ "min_fee_rate_sat_per_vb": rate })))
}

/// `GET /dev/faucet` -> `{"address", "spendable_sat"}`.
pub(super) async fn dev_faucet(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let chain = shared.lock();
    let address = Address::from_script(chain.faucet_script(), Network::Regtest)
        .map(|a| a.to_string())
        .unwrap_or_default();
    Json(json!({ "address": address, "spendable_sat": chain.faucet_balance().to_sat() }))
}
