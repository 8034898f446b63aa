//! The Kaleidoswap dialect under `/api/v1/lsps1/`: `GET get_info` (`lsp_connection_url` plus
//! `options`), `POST create_order` (LSPS1 params plus `client_pubkey`, optional `email` kept
//! with the order), `POST get_order` (`{order_id}`), `POST estimate_fees` and
//! `GET network_info` (network and chain height).
//!
//! The dialect writes sat amounts as JSON integers; requests may use integers or LSPS1's
//! strings, and responses use integers. An order is otherwise the same bLIP-51 object as on
//! every other interface (whose `payment.onchain` already carries the refund address, where
//! Kaleidoswap reads it), plus `client_pubkey` and the asset fields as null
//! (`asset_delivery_status`: `NOT_REQUIRED`).
//! RGB asset channels are not sold: a request with a non-null `asset_id`, `lsp_asset_amount`,
//! `client_asset_amount` or `rfq_id` is refused (-32602 naming the field), never ignored.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::error::HttpError;
use super::request::{
    check_order_request, json_object, order_id_of, refuse_unknown_fields, OrderRequest, Pubkey,
    RequestBody,
};
use super::PublicState;
use crate::lsps1::order::Order;
use crate::lsps1::pricing::PaymentMethod;
use crate::lsps1::rpc::RpcError;

pub const PREFIX: &str = "/api/v1/lsps1";

/// Request fields of RGB asset channels; accepted only as null or absent.
pub const ASSET_FIELDS: [&str; 4] = [
    "asset_id",
    "lsp_asset_amount",
    "client_asset_amount",
    "rfq_id",
];

/// Longest accepted `email` (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;

pub fn routes() -> Router<PublicState> {
    Router::new()
        .route(&format!("{PREFIX}/get_info"), get(get_info))
        .route(&format!("{PREFIX}/create_order"), post(create_order))
        .route(&format!("{PREFIX}/get_order"), post(get_order))
        .route(&format!("{PREFIX}/estimate_fees"), post(estimate_fees))
        .route(&format!("{PREFIX}/network_info"), get(network_info))
}

async fn get_info(State(state): State<PublicState>) -> Json<Value> {
    let mut options = state.service.config().options.get_info_json();
    sats_as_integers(&mut options);
    Json(json!({
        "lsp_connection_url": state.uris.first(),
        "options": options,
    }))
}

async fn create_order(
    State(state): State<PublicState>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let (request, email) = read_order_request(&state, &body, Pubkey::Required)?;
    let order = state.service.create_order(request.into_new_order(email))?;
    Ok(Json(render(&state, &order)))
}

async fn get_order(
    State(state): State<PublicState>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let fields = json_object(&body)?;
    refuse_unknown_fields(&fields, &["order_id"])?;
    let order = state.service.get_order(None, order_id_of(&fields)?)?;
    Ok(Json(render(&state, &order)))
}

/// The price of an order with these params paid over Lightning, without creating it.
async fn estimate_fees(
    State(state): State<PublicState>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let (request, _) = read_order_request(&state, &body, Pubkey::Optional)?;
    let price = state
        .service
        .quote(&request.params, PaymentMethod::Lightning)?;
    let discount_code = (price.discount_sat > 0)
        .then(|| request.params.token.clone())
        .flatten();
    Ok(Json(json!({
        "setup_fee": price.base_fee_sat,
        "capacity_fee": price.proportional_fee_sat + price.onchain_fee_sat,
        "duration_fee": price.lease_fee_sat,
        "total_fee": price.fee_total_sat,
        "applied_discount": price.discount_sat,
        "discount_code": discount_code,
    })))
}

async fn network_info(State(state): State<PublicState>) -> Json<Value> {
    Json(json!({
        "network": state.service.network().to_string(),
        "height": state.service.best_block_height(),
    }))
}

/// Translates a Kaleidoswap order body into LSPS1 terms and checks it like any other.
fn read_order_request(
    state: &PublicState,
    body: &str,
    pubkey: Pubkey,
) -> Result<(OrderRequest, Option<String>), RpcError> {
    let mut fields = json_object(body)?;
    for field in ASSET_FIELDS {
        match fields.remove(field) {
            None | Some(Value::Null) => {}
            Some(_) => {
                return Err(RpcError::invalid_property(
                    field,
                    "RGB asset channels are not sold by this LSP; send null or leave it out",
                ))
            }
        }
    }
    let email = read_email(&mut fields)?;
    for amount in ["lsp_balance_sat", "client_balance_sat"] {
        if let Some(Value::Number(n)) = fields.get(amount) {
            let sats = n.as_u64().ok_or_else(|| {
                RpcError::invalid_property(amount, "must be a whole number of sats, 0 or more")
            })?;
            fields.insert(amount.to_string(), Value::String(sats.to_string()));
        }
    }
    // Documented default of this dialect.
    fields
        .entry("announce_channel")
        .or_insert(Value::Bool(true));
    let request = check_order_request(&state.guard, fields, "client_pubkey", pubkey)?;
    Ok((request, email))
}

fn read_email(fields: &mut Map<String, Value>) -> Result<Option<String>, RpcError> {
    match fields.remove("email") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(email)) => {
            let email = email.trim();
            if email.is_empty() {
                return Ok(None);
            }
            let plausible = email.len() <= MAX_EMAIL_LEN
                && email.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty() && !domain.is_empty() && !domain.contains('@')
                })
                && !email.chars().any(|c| c.is_whitespace() || c.is_control());
            if !plausible {
                return Err(RpcError::invalid_property(
                    "email",
                    "must be an email address (name@domain)",
                ));
            }
            Ok(Some(email.to_string()))
        }
        Some(_) => Err(RpcError::invalid_property(
            "email",
            "must be a string or null",
        )),
    }
}

/// An order in this dialect's spelling.
fn render(state: &PublicState, order: &Order) -> Value {
    let mut rendered = state.service.render_http(order);
    sats_as_integers(&mut rendered);
    rendered["client_pubkey"] = json!(order.client_node_id.to_string());
    for field in ASSET_FIELDS.iter().chain(&["asset_price_sat"]) {
        rendered[*field] = Value::Null;
    }
    rendered["asset_delivery_status"] = json!("NOT_REQUIRED");
    rendered
}

/// Rewrites every `*_sat` field holding a decimal string as a JSON integer, at any depth.
fn sats_as_integers(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if name.ends_with("_sat") {
                    if let Some(sats) = field.as_str().and_then(|s| s.parse::<u64>().ok()) {
                        *field = json!(sats);
                        continue;
                    }
                }
                sats_as_integers(field);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(sats_as_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sat_strings_become_integers_at_any_depth_and_nothing_else_changes() {
        let mut value = json!({
            "lsp_balance_sat": "100000",
            "order_id": "123",
            "payment": {"bolt11": {"fee_total_sat": "42", "invoice": "lnbcrt1"}},
            "token": "7",
        });
        sats_as_integers(&mut value);
        assert_eq!(
            value,
            json!({
                "lsp_balance_sat": 100000,
                "order_id": "123",
                "payment": {"bolt11": {"fee_total_sat": 42, "invoice": "lnbcrt1"}},
                "token": "7",
            })
        );
    }

    #[test]
    fn email_must_be_plausible_or_absent() {
        let read = |value: Value| {
            let mut fields = Map::new();
            fields.insert("email".into(), value);
            read_email(&mut fields)
        };
        assert_eq!(
            read(json!("a@b.example")).unwrap().as_deref(),
            Some("a@b.example")
        );
        assert_eq!(read(Value::Null).unwrap(), None);
        assert_eq!(read(json!("  ")).unwrap(), None);
        for bad in [
            json!("no-at-sign"),
            json!("a@b@c"),
            json!("a b@c"),
            json!(5),
        ] {
            let error = read(bad.clone()).unwrap_err();
            assert_eq!(error.data.unwrap()["property"], "email", "{bad}");
        }
    }
}
