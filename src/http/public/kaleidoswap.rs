//! The Kaleidoswap dialect under `/api/v1/lsps1/`, as the Kaleidoswap SDK (kaleidoswap-sdk
//! 0.5.6, whose pydantic models validate every answer) reads it: `GET get_info`
//! (`lsp_connection_url`, `options`, `assets`), `POST create_order` (LSPS1 params plus
//! `client_pubkey`, optional `email` kept with the order), `POST get_order`
//! (`{order_id, access_token}`), `POST estimate_fees`, `GET network_info` (network and chain
//! height), and the asset calls `POST rate_decision` and `POST retry_delivery`.
//!
//! The dialect writes sat amounts as JSON integers; requests may use integers or LSPS1's
//! strings, and responses use integers. An order is otherwise the same bLIP-51 object as on
//! every other interface, plus `client_pubkey` and the asset fields as null
//! (`asset_delivery_status`: `NOT_REQUIRED`).
//!
//! The SDK's order model requires `payment.onchain` as well as `payment.bolt11`, and bLIP-51
//! offers on-chain payment only with a refund address (an on-chain payment that must be
//! returned needs somewhere to go). So `create_order` here requires `refund_onchain_address`,
//! and is refused when the node takes no on-chain payment: every order made in this dialect
//! carries both payment options. An order made elsewhere without a refund address has no
//! `payment.onchain`, here as on every interface.
//!
//! RGB asset channels are not sold: a request with a non-null `asset_id`, `lsp_asset_amount`,
//! `client_asset_amount` or `rfq_id` is refused (-32602 naming the field), never ignored;
//! `assets` is empty; no order ever awaits a rate decision (-32004) or an asset delivery.
//! No access tokens are issued: `access_token` may only be empty.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use bitcoin::Network;
use serde_json::{json, Map, Value};

use super::error::{HttpError, NO_RATE_DECISION};
use super::info::set_draft_onchain_options;
use super::request::{
    check_order_request, json_object, order_id_of, refuse_unknown_fields, OrderRequest, Pubkey,
    RequestBody,
};
use super::PublicState;
use crate::lsps1::order::Order;
use crate::lsps1::pricing::PaymentMethod;
use crate::lsps1::rpc::{self, RpcError};

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
        .route(&format!("{PREFIX}/rate_decision"), post(rate_decision))
        .route(&format!("{PREFIX}/retry_delivery"), post(retry_delivery))
}

async fn get_info(State(state): State<PublicState>) -> Response {
    let config = &state.service.config().options;
    state
        .info_body("kaleidoswap", |info| {
            let mut options = info.clone();
            set_draft_onchain_options(&mut options, config);
            sats_as_integers(&mut options);
            json!({
                "lsp_connection_url": state.uris.first(),
                "options": options,
                "assets": [],
            })
        })
        .await
}

async fn create_order(
    State(state): State<PublicState>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let (request, email) = read_order_request(&state, &body, Pubkey::Required)?;
    if !state.service.config().options.onchain_payment_enabled {
        return Err(RpcError::new(
            rpc::CLIENT_REJECTED,
            "Kaleidoswap clients need an on-chain payment option in every order, and this LSP \
             takes no on-chain payment; order over /api/v1/create_order or Lightning p2p instead",
        )
        .into());
    }
    if request.refund_address.is_none() {
        return Err(RpcError::invalid_property(
            "refund_onchain_address",
            "is required by this dialect: its orders always offer on-chain payment, which is \
             only taken with an address to return it to",
        )
        .into());
    }
    let order = state
        .service
        .create_order_async(request.into_new_order(email))
        .await?;
    Ok(Json(render(&state, &order)))
}

async fn get_order(
    State(state): State<PublicState>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let fields = json_object(&body)?;
    refuse_unknown_fields(&fields, &["order_id", "access_token"])?;
    check_access_token(&fields)?;
    let order = stored_order(&state, order_id_of(&fields)?).await?;
    Ok(Json(render(&state, &order)))
}

/// A decision on an asset order whose price moved; no order here is ever waiting for one.
async fn rate_decision(
    State(state): State<PublicState>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let fields = json_object(&body)?;
    refuse_unknown_fields(&fields, &["order_id", "access_token", "accept_new_rate"])?;
    check_access_token(&fields)?;
    if !fields.get("accept_new_rate").is_some_and(Value::is_boolean) {
        return Err(
            RpcError::invalid_property("accept_new_rate", "is required: true or false").into(),
        );
    }
    let order = stored_order(&state, order_id_of(&fields)?).await?;
    Err(RpcError::new(NO_RATE_DECISION, "No rate decision pending")
        .with_data(json!({
            "message": "this order awaits no rate decision: this LSP sells no RGB assets, so an \
                        order's price never changes after it is made",
            "order_state": order.state.as_str(),
        }))
        .into())
}

/// The asset delivery of an order, retried; no order here has one.
async fn retry_delivery(
    State(state): State<PublicState>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let fields = json_object(&body)?;
    refuse_unknown_fields(&fields, &["order_id"])?;
    stored_order(&state, order_id_of(&fields)?).await?;
    Ok(Json(json!({
        "status": "no_pending_delivery",
        "message": "this order has no asset delivery: this LSP sells no RGB assets",
    })))
}

/// The order `id`, as any client may read it.
async fn stored_order(state: &PublicState, id: &str) -> Result<Order, RpcError> {
    state.public_order(id).await
}

/// `access_token` may be absent, null or empty: this LSP issues none.
fn check_access_token(fields: &Map<String, Value>) -> Result<(), RpcError> {
    match fields.get("access_token") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(token)) if token.is_empty() => Ok(()),
        Some(_) => Err(RpcError::invalid_property(
            "access_token",
            "this LSP issues no access tokens: send an empty string or leave it out",
        )),
    }
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
        "network": network_name(state.service.network()),
        "height": state.service.best_block_height(),
    }))
}

/// The network as the SDK's `BitcoinNetwork` spells it. That enum has no testnet4, whose
/// addresses and clients are testnet's; a client on the other test chain fails to open a
/// channel (its chain hash differs), which costs it nothing.
pub fn network_name(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "Mainnet",
        Network::Testnet | Network::Testnet4 => "Testnet",
        Network::Signet => "Signet",
        Network::Regtest => "Regtest",
    }
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
    rendered["client_pubkey"] = json!(order.client_node_id.map(|node| node.to_string()));
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
