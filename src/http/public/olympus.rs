//! The Olympus dialect (ZEUS, the BTCPay LSPS1 plugin): `GET /api/v1/get_info` (flat LSPS1
//! options plus `uris`), `POST /api/v1/create_order` (LSPS1 params plus `public_key`) and
//! `GET /api/v1/get_order?order_id=`.
//!
//! `create_order` bodies go through the same `RequestGuard` as p2p requests (wrapped as a
//! JSON-RPC `lsps1.create_order` with `public_key` taken out), so both interfaces refuse the
//! same input with the same code and data.

use std::collections::HashMap;
use std::str::FromStr;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use bitcoin::secp256k1::PublicKey;
use serde_json::{json, Map, Value};

use super::error::HttpError;
use super::PublicState;
use crate::lsps1::guard::{RequestGuard, Verdict};
use crate::lsps1::order::Interface;
use crate::lsps1::rpc::{self, RpcError};
use crate::lsps1::service::{order_params, NewOrder};

pub fn routes() -> Router<PublicState> {
    Router::new()
        .route("/api/v1/get_info", get(get_info))
        .route("/api/v1/create_order", post(create_order))
        .route("/api/v1/get_order", get(get_order))
}

async fn get_info(State(state): State<PublicState>) -> Json<Value> {
    let mut info = state.service.config().options.get_info_json();
    info["uris"] = json!(state.uris.as_slice());
    Json(info)
}

async fn create_order(
    State(state): State<PublicState>,
    body: String,
) -> Result<Json<Value>, HttpError> {
    let new_order = checked_new_order(&state.guard, &body, "public_key")?;
    let order = state.service.create_order(new_order)?;
    Ok(Json(state.service.render_http(&order)))
}

async fn get_order(
    State(state): State<PublicState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, HttpError> {
    let id = query
        .get("order_id")
        .ok_or_else(|| RpcError::invalid_property("order_id", "is required"))?;
    let order = state.service.get_order(None, id)?;
    Ok(Json(state.service.render_http(&order)))
}

/// Validates an HTTP `create_order` body exactly as the p2p guard would, taking the client's
/// node id from `pubkey_field`.
pub(crate) fn checked_new_order(
    guard: &RequestGuard,
    body: &str,
    pubkey_field: &str,
) -> Result<NewOrder, RpcError> {
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(body) else {
        return Err(RpcError::parse_error());
    };
    let client_node_id = match fields.remove(pubkey_field) {
        Some(Value::String(key)) => PublicKey::from_str(&key).map_err(|_| {
            RpcError::invalid_property(pubkey_field, "must be a hex-encoded node public key")
        })?,
        _ => {
            return Err(RpcError::invalid_property(
                pubkey_field,
                "is required: the node id of the client that will own the channel",
            ))
        }
    };
    let request = json!({
        "jsonrpc": "2.0",
        "id": "http",
        "method": "lsps1.create_order",
        "params": Value::Object(fields),
    });
    let params = match guard.check(&request.to_string()) {
        Verdict::Forward(payload) => forwarded_params(&payload)?,
        Verdict::Reply(response) => return Err(error_from_reply(&response)),
        Verdict::Drop(_) => return Err(RpcError::new(rpc::INVALID_REQUEST, "Invalid Request")),
    };
    Ok(NewOrder {
        client_node_id,
        params: order_params(&params)?,
        refund_onchain_address: params
            .get("refund_onchain_address")
            .and_then(Value::as_str)
            .map(str::to_string),
        source: Interface::Http,
        email: None,
    })
}

fn forwarded_params(payload: &str) -> Result<Map<String, Value>, RpcError> {
    match serde_json::from_str::<Value>(payload) {
        Ok(Value::Object(mut request)) => match request.remove("params") {
            Some(Value::Object(params)) => Ok(params),
            _ => Ok(Map::new()),
        },
        _ => Err(RpcError::parse_error()),
    }
}

/// The `RpcError` inside a guard's JSON-RPC error response.
fn error_from_reply(response: &str) -> RpcError {
    let error = serde_json::from_str::<Value>(response)
        .ok()
        .and_then(|mut value| value.get_mut("error").map(Value::take))
        .unwrap_or(Value::Null);
    let code = error
        .get("code")
        .and_then(Value::as_i64)
        .unwrap_or(rpc::INTERNAL_ERROR as i64);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("Internal error");
    let mut rpc_error = RpcError::new(i32::try_from(code).unwrap_or(rpc::INTERNAL_ERROR), message);
    if let Some(data) = error.get("data") {
        rpc_error = rpc_error.with_data(data.clone());
    }
    rpc_error
}
