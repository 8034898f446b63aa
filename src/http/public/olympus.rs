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
    // ZEUS sends `"refund_onchain_address": ""` when it has none: that means absent.
    if fields.get("refund_onchain_address") == Some(&Value::String(String::new())) {
        fields.remove("refund_onchain_address");
    }
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

#[cfg(test)]
mod tests {
    use bitcoin::Network;

    use super::*;
    use crate::lsps1::options::Lsps1Options;

    const SEED_PUBKEY: &str = "025b7a68b4cd85668e65db6a343a4c607a462cdd010daa793f82be561a3316c5b1";

    fn guard() -> RequestGuard {
        RequestGuard::new(Lsps1Options::default(), Network::Regtest)
    }

    /// The create_order example of the Olympus document, verbatim.
    fn seed_body() -> Value {
        json!({
            "lsp_balance_sat": "10000000",
            "client_balance_sat": "0",
            "required_channel_confirmations": 8,
            "funding_confirms_within_blocks": 6,
            "channel_expiry_blocks": 13000,
            "token": "",
            "refund_onchain_address": "",
            "announce_channel": false,
            "public_key": SEED_PUBKEY
        })
    }

    #[test]
    fn seed_example_becomes_an_http_order_for_its_public_key() {
        let order = checked_new_order(&guard(), &seed_body().to_string(), "public_key").unwrap();
        assert_eq!(order.client_node_id.to_string(), SEED_PUBKEY);
        assert_eq!(order.params.lsp_balance_sat, 10_000_000);
        assert_eq!(order.params.channel_expiry_blocks, 13_000);
        assert_eq!(order.refund_onchain_address, None);
        assert!(matches!(order.source, Interface::Http));
    }

    #[test]
    fn bad_input_table() {
        let with = |field: &str, value: Value| {
            let mut body = seed_body();
            body[field] = value;
            body.to_string()
        };
        let mut no_key = seed_body();
        no_key.as_object_mut().unwrap().remove("public_key");
        let cases: Vec<(&str, String, i32, &str)> = vec![
            (
                "malformed json",
                "{\"lsp_balance_sat\": ".to_string(),
                rpc::PARSE_ERROR,
                "",
            ),
            (
                "missing pubkey",
                no_key.to_string(),
                rpc::INVALID_PARAMS,
                "public_key",
            ),
            (
                "bad pubkey",
                with("public_key", json!("02zz")),
                rpc::INVALID_PARAMS,
                "public_key",
            ),
            (
                "negative amount",
                with("lsp_balance_sat", json!("-1")),
                rpc::INVALID_PARAMS,
                "lsp_balance_sat",
            ),
            (
                "amount as number",
                with("lsp_balance_sat", json!(10)),
                rpc::INVALID_PARAMS,
                "lsp_balance_sat",
            ),
            (
                "huge amount",
                with("lsp_balance_sat", json!("99999999999999999999")),
                rpc::INVALID_PARAMS,
                "lsp_balance_sat",
            ),
            (
                "too much liquidity",
                with("lsp_balance_sat", json!("10000001")),
                rpc::OPTION_MISMATCH,
                "max_initial_lsp_balance_sat",
            ),
        ];
        for (name, body, code, property) in cases {
            let error = checked_new_order(&guard(), &body, "public_key").unwrap_err();
            assert_eq!(error.code, code, "{name}: {error:?}");
            if !property.is_empty() {
                let data = error.data.clone().unwrap_or(Value::Null);
                assert_eq!(data["property"], property, "{name}: {error:?}");
            }
        }
        let error =
            checked_new_order(&guard(), &with("surprise", json!(1)), "public_key").unwrap_err();
        assert_eq!(error.code, rpc::INVALID_PARAMS);
        assert_eq!(error.data.unwrap()["unrecognized"], json!(["surprise"]));
    }
}
