//! The open LSP channel-request API (the `aljazceru/lsp` document in the seeds) at its own
//! paths on the public listener: `GET /node/info`, `POST /channel/buy`,
//! `POST /channel/manual_finalise` and `GET /channel/order?order_id=`. Its orders are
//! pay-first ([`crate::lsps1::claims`]): the buyer pays, then names the node.
//!
//! The `order_id` this API hands out is the order's claim token, a bearer secret (whoever holds
//! it names the node); it is not the order's id in the book and logs. Amounts are integers.
//! Where the document is silent (the request bodies) the fields come from its models:
//! - `/channel/buy`: `remote_balance` (required: the inbound liquidity, the LSP's side),
//!   `local_balance` (the buyer's side, pushed to it; default 0), `channel_expiry` (weeks of
//!   1 008 blocks, required), `private` (default true), `coupon_code`, and `refund_address`
//!   (or `refund_onchain_address`): the on-chain option (`btc_address`) exists only with one,
//!   and is otherwise an empty string. Unknown fields are refused.
//! - `/channel/manual_finalise`: `order_id` and `remote_id` (`node_key@ip:port`, or the node key
//!   alone when the node connects to us itself; `node_uri` and `node_connection_info` are read
//!   the same way).
//!
//! States ([`state_of`]): CREATED (unpaid), PAID (paid, no node yet), URI_SET (paid, node named,
//! channel not funded), OPENING (funded, funding unconfirmed), OPEN (the lease running or
//! ended), CLOSING, CLOSED (the lease book's), GIVE_UP (failed; the payment is returned).
//! An order named before it is paid is CREATED until paid.
//!
//! LNURL-channel (LUD-02): with a link base (`http.public_url`, or the listen address on
//! regtest) `lnurl_channel` is the bech32 LNURL (LUD-01) of `<base>/lnurl/channel?order_id=`;
//! `GET` on it answers the `channelRequest` (`uri`: this node, `callback`, `k1`: the claim
//! token), and the callback with `k1` and `remoteid` (LUD-02; the document's `remote_id`, which
//! may carry `@host:port`, too) claims the order for that node: the channel opens once the node
//! is connected. LNURL answers are HTTP 200 with `{"status": "ERROR", "reason"}` on failure, as
//! wallets expect. A `private` asked for in the callback does not change the order: its
//! channel is announced or not as it was bought (`private` of `/channel/buy`).

use std::collections::HashMap;
use std::str::FromStr;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use bitcoin::secp256k1::PublicKey;
use serde_json::{json, Value};

use super::error::HttpError;
use super::request::{
    json_object, minimal_order_params, refuse_unknown_fields, whole_number, RequestBody,
};
use super::PublicState;
use crate::config::lsps1::Lsps1Options;
use crate::lsps1::claims::{ClaimRefused, ClaimToken};
use crate::lsps1::leases::{LeaseState, SECS_PER_BLOCK};
use crate::lsps1::order::{Interface, Order, OrderState, PaymentState};
use crate::lsps1::rpc::{self, RpcError};
use crate::lsps1::service::{NewOrder, OrderService};

/// Blocks in one week of the document's `channel_expiry`.
pub const BLOCKS_PER_WEEK: u32 = 1_008;

const BUY_FIELDS: &[&str] = &[
    "remote_balance",
    "local_balance",
    "channel_expiry",
    "private",
    "coupon_code",
    "refund_address",
    "refund_onchain_address",
];

const FINALISE_FIELDS: &[&str] = &["order_id", "remote_id", "node_uri", "node_connection_info"];

pub fn routes() -> Router<PublicState> {
    Router::new()
        .route("/node/info", get(node_info))
        .route("/channel/buy", post(buy))
        .route("/channel/manual_finalise", post(manual_finalise))
        .route("/channel/order", get(order))
        .route("/lnurl/channel", get(lnurl_channel))
}

/// The LNURL-channel of the order `token` claims, and the URL it encodes.
pub(super) fn lnurl_of(state: &PublicState, token: &ClaimToken) -> Option<(String, String)> {
    use bitcoin::bech32::{self, Bech32, Hrp};
    let base = state.link_base.as_ref()?;
    let url = format!("{base}/lnurl/channel?order_id={}", token.reveal());
    let hrp = Hrp::parse("lnurl").expect("a valid human-readable part");
    let lnurl = bech32::encode::<Bech32>(hrp, url.as_bytes()).ok()?;
    Some((url, lnurl.to_uppercase()))
}

fn lnurl_error(reason: impl std::fmt::Display) -> Json<Value> {
    Json(json!({ "status": "ERROR", "reason": reason.to_string() }))
}

/// `GET /lnurl/channel`: the channel request (`order_id`), or its callback (`k1`).
async fn lnurl_channel(
    State(state): State<PublicState>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    let Some(base) = state.link_base.clone() else {
        return lnurl_error("this LSP has no public URL configured (http.public_url)");
    };
    if let Some(k1) = query.get("k1") {
        return lnurl_callback(&state, ClaimToken::from_client(k1), &query).await;
    }
    let Some(token) = query.get("order_id").map(|t| ClaimToken::from_client(t)) else {
        return lnurl_error("order_id (or k1 for the callback) is required");
    };
    let order = {
        let token = token.clone();
        state
            .with_service(move |service| service.pay_first_order(&token))
            .await
    };
    match order {
        Ok(Some(order)) if order.client_node_id.is_none() && !order.state.is_final() => {
            Json(json!({
                "tag": "channelRequest",
                "uri": state.uris.first(),
                "callback": format!("{base}/lnurl/channel"),
                "k1": token.reveal(),
            }))
        }
        Ok(Some(order)) if order.client_node_id.is_some() => {
            lnurl_error("this channel has already been claimed for a node")
        }
        Ok(Some(order)) => lnurl_error(format!("the order has ended ({})", order.state.as_str())),
        Ok(None) => lnurl_error("no such order"),
        Err(error) => lnurl_error(error.message),
    }
}

async fn lnurl_callback(
    state: &PublicState,
    token: ClaimToken,
    query: &HashMap<String, String>,
) -> Json<Value> {
    let Some(remote) = query.get("remoteid").or_else(|| query.get("remote_id")) else {
        return lnurl_error("remoteid is required");
    };
    let (key, address) = match remote.split_once('@') {
        Some((key, address)) => (key, Some(address.to_string())),
        None => (remote.as_str(), None),
    };
    let Ok(node) = PublicKey::from_str(key) else {
        return lnurl_error("remoteid is not a node public key");
    };
    let claimed = state
        .with_service(move |service| service.claim_order(&token, node))
        .await;
    match claimed {
        Ok(order) => {
            if let Some(address) = address {
                if let Err(error) = state.service.connect_client(node, &address).await {
                    tracing::info!(order = %order.id, %node, %error, "could not reach the claimed node yet");
                }
            }
            Json(json!({ "status": "OK" }))
        }
        Err(refused) => lnurl_error(refused),
    }
}

async fn node_info(State(state): State<PublicState>) -> Response {
    let options = &state.service.config().options;
    state
        .info_body("open_lsp", |info| node_info_body(&state, options, info))
        .await
}

fn node_info_body(state: &PublicState, options: &Lsps1Options, info: &Value) -> Value {
    let integer = |key: &str| {
        info[key]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    json!({
        "node_id": state.uris.first().and_then(|uri| uri.split('@').next()),
        "uris": state.uris.as_slice(),
        "min_remote_balance": integer("min_initial_lsp_balance_sat"),
        "max_remote_balance": integer("max_initial_lsp_balance_sat"),
        "min_local_balance": integer("min_initial_client_balance_sat"),
        "max_local_balance": integer("max_initial_client_balance_sat"),
        "min_channel_balance": integer("min_channel_balance_sat"),
        "max_channel_balance": integer("max_channel_balance_sat"),
        "max_channel_expiry": options.max_channel_expiry_blocks / BLOCKS_PER_WEEK,
        "onchain_payment": options.onchain_payment_enabled,
    })
}

async fn buy(
    State(state): State<PublicState>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let fields = json_object(&body)?;
    refuse_unknown_fields(&fields, BUY_FIELDS)?;
    let remote = whole_number(&fields, "remote_balance")?
        .ok_or_else(|| RpcError::invalid_property("remote_balance", "is required"))?;
    let local = whole_number(&fields, "local_balance")?.unwrap_or(0);
    let weeks = whole_number(&fields, "channel_expiry")?
        .ok_or_else(|| RpcError::invalid_property("channel_expiry", "is required (weeks)"))?;
    let blocks = u32::try_from(weeks)
        .ok()
        .and_then(|w| w.checked_mul(BLOCKS_PER_WEEK))
        .filter(|blocks| *blocks > 0)
        .ok_or_else(|| {
            RpcError::invalid_property("channel_expiry", "must be at least 1 week, and not absurd")
        })?;
    let private = match fields.get("private") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(private)) => *private,
        Some(_) => {
            return Err(RpcError::invalid_property("private", "must be true or false").into())
        }
    };
    let options = &state.service.config().options;
    let mut params = minimal_order_params(options, remote, local, u64::from(blocks), !private);
    if let Some(code) = fields.get("coupon_code").filter(|c| !c.is_null()) {
        params.insert("token".into(), code.clone());
    }
    let refund = ["refund_address", "refund_onchain_address"]
        .iter()
        .find_map(|name| fields.get(*name).filter(|v| !v.is_null() && *v != ""));
    if let Some(refund) = refund {
        params.insert("refund_onchain_address".into(), refund.clone());
    }
    let checked = state
        .guard
        .create_order(params)
        .map_err(with_this_apis_names)?;
    let (order, token) = state
        .with_service(move |service| {
            let (order, token) = service.create_pay_first_order(NewOrder {
                client_node_id: None,
                params: checked.params,
                refund_address: checked.refund_address,
                source: Interface::OpenLsp,
                email: None,
            })?;
            Ok::<_, RpcError>((order, token))
        })
        .await?;
    Ok(Json(quote(&state, &order, &token)))
}

/// The LSPS1 names the guard reports, in this API's words.
fn with_this_apis_names(mut error: RpcError) -> RpcError {
    let renamed = match error.data.as_ref().and_then(|d| d["property"].as_str()) {
        Some("lsp_balance_sat" | "min_initial_lsp_balance_sat" | "max_initial_lsp_balance_sat") => {
            "remote_balance"
        }
        Some(
            "client_balance_sat"
            | "min_initial_client_balance_sat"
            | "max_initial_client_balance_sat",
        ) => "local_balance",
        Some("channel_expiry_blocks" | "max_channel_expiry_blocks") => "channel_expiry",
        Some("refund_onchain_address") => "refund_address",
        Some("min_channel_balance_sat" | "max_channel_balance_sat") => "remote_balance",
        _ => return error,
    };
    if let Some(data) = error.data.as_mut() {
        data["property"] = json!(renamed);
    }
    error
}

/// The document's ChannelQuote.
fn quote(state: &PublicState, order: &Order, token: &ClaimToken) -> Value {
    json!({
        "order_id": token.reveal(),
        "ln_invoice": order.bolt11.as_ref().map(|b| b.invoice.clone()).unwrap_or_default(),
        "total_amount": order.bolt11.as_ref().map_or(0, |b| b.order_total_sat),
        "btc_address": order.onchain.as_ref().map(|o| o.address.clone()).unwrap_or_default(),
        "onchain_total_amount": order.onchain.as_ref().map(|o| o.order_total_sat),
        "lnurl_channel": lnurl_of(state, token).map(|(_, lnurl)| lnurl),
    })
}

async fn manual_finalise(
    State(state): State<PublicState>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let fields = json_object(&body)?;
    refuse_unknown_fields(&fields, FINALISE_FIELDS)?;
    let token = match fields.get("order_id") {
        Some(Value::String(token)) => ClaimToken::from_client(token),
        _ => return Err(RpcError::invalid_property("order_id", "is required").into()),
    };
    let (field, uri) = ["remote_id", "node_uri", "node_connection_info"]
        .iter()
        .find_map(|name| {
            fields
                .get(*name)
                .and_then(Value::as_str)
                .map(|v| (*name, v))
        })
        .ok_or_else(|| RpcError::invalid_property("remote_id", "is required: node_key@ip:port"))?;
    let (key, address) = match uri.split_once('@') {
        Some((key, address)) => (key, Some(address.to_string())),
        None => (uri, None),
    };
    let node = PublicKey::from_str(key)
        .map_err(|_| RpcError::invalid_property(field, "must start with a hex node public key"))?;
    let order = {
        let token = token.clone();
        state
            .with_service(move |service| service.claim_order(&token, node).map_err(claim_error))
            .await?
    };
    if let Some(address) = address {
        // The claim stands either way: the node may still connect to us before the timeout.
        if let Err(error) = state.service.connect_client(node, &address).await {
            tracing::info!(order = %order.id, %node, %error, "could not reach the claimed node yet");
        }
    }
    let lnurl = lnurl_of(&state, &token);
    let rendered = state
        .with_service(move |service| channel_order(service, &order, &token, lnurl))
        .await;
    Ok(Json(rendered))
}

fn claim_error(refused: ClaimRefused) -> RpcError {
    match refused {
        ClaimRefused::Unknown => RpcError::new(rpc::ORDER_NOT_FOUND, "Order not found"),
        ClaimRefused::AlreadyClaimed | ClaimRefused::Ended(_) => {
            RpcError::new(rpc::CLIENT_REJECTED, refused.to_string())
        }
        ClaimRefused::Store(error) => crate::lsps1::service::internal_error("claim failed", &error),
    }
}

async fn order(
    State(state): State<PublicState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, HttpError> {
    let token = query
        .get("order_id")
        .map(|t| ClaimToken::from_client(t))
        .ok_or_else(|| RpcError::invalid_property("order_id", "is required"))?;
    let lnurl = lnurl_of(&state, &token);
    let rendered = state
        .with_service(move |service| {
            let order = service
                .pay_first_order(&token)?
                .ok_or_else(|| RpcError::new(rpc::ORDER_NOT_FOUND, "Order not found"))?;
            Ok::<_, RpcError>(channel_order(service, &order, &token, lnurl))
        })
        .await?;
    Ok(Json(rendered))
}

/// The document's ChannelOrder.
fn channel_order(
    service: &OrderService,
    order: &Order,
    token: &ClaimToken,
    lnurl: Option<(String, String)>,
) -> Value {
    let lease = service.order_book().lease(&order.id).ok().flatten();
    let received = service.received_onchain(order);
    let held = order
        .bolt11
        .as_ref()
        .filter(|b| matches!(b.state, PaymentState::Hold | PaymentState::Paid))
        .map_or(0, |b| b.order_total_sat);
    let onchain: u64 = received.iter().map(|o| o.value_sat).sum();
    let p = &order.params;
    let expiry_ts = order.channel.as_ref().map_or_else(
        || {
            order
                .created_at
                .saturating_add(u64::from(p.channel_expiry_blocks) * SECS_PER_BLOCK)
        },
        |c| c.expires_at,
    );
    json!({
        "_id": token.reveal(),
        "local_balance": p.client_balance_sat,
        "remote_balance": p.lsp_balance_sat,
        "channel_expiry": p.channel_expiry_blocks / BLOCKS_PER_WEEK,
        "channel_expiry_ts": expiry_ts,
        "order_expiry": order.expires_at,
        "total_amount": order.bolt11.as_ref().map_or(0, |b| b.order_total_sat),
        "btc_address": order.onchain.as_ref().map(|o| o.address.clone()).unwrap_or_default(),
        "created_at": order.created_at,
        "amount_received": held + onchain,
        "remote_node": order.client_node_id.map(|node| json!({ "pubkey": node.to_string() })),
        "channel_open_tx": order.channel.as_ref().map(|c| {
            let (txid, vout) = c.funding_outpoint.split_once(':').unwrap_or((&c.funding_outpoint, "0"));
            json!({ "transaction_id": txid, "transaction_vout": vout.parse::<u32>().unwrap_or(0) })
        }),
        "purchase_invoice": order.bolt11.as_ref().map(|b| b.invoice.clone()).unwrap_or_default(),
        "lnurl": lnurl.map(|(url, lnurl)| json!({ "url": url, "lnurl": lnurl })),
        "state": state_of(order, lease.map(|l| l.state)),
        "onchain_payments": received.iter().map(|o| json!({
            "tx_id": o.outpoint.txid.to_string(),
            "vout": o.outpoint.vout,
            "amount_base": o.value_sat,
            "confirmed": o.confirmation_height.is_some(),
        })).collect::<Vec<_>>(),
    })
}

/// The document's order state (see the module doc).
pub fn state_of(order: &Order, lease: Option<LeaseState>) -> &'static str {
    let paid = order
        .bolt11
        .as_ref()
        .is_some_and(|b| matches!(b.state, PaymentState::Hold | PaymentState::Paid))
        || order
            .onchain
            .as_ref()
            .is_some_and(|o| o.state == PaymentState::Paid);
    match (order.state, lease) {
        (OrderState::Failed, _) => "GIVE_UP",
        (OrderState::Created, _) if !paid => "CREATED",
        (OrderState::Created, _) if order.client_node_id.is_none() => "PAID",
        (OrderState::Created, _) => "URI_SET",
        (OrderState::Completed, None | Some(LeaseState::Pending)) => "OPENING",
        (OrderState::Completed, Some(LeaseState::Active | LeaseState::Ended)) => "OPEN",
        (OrderState::Completed, Some(LeaseState::Closing)) => "CLOSING",
        (OrderState::Completed, Some(LeaseState::Closed)) => "CLOSED",
    }
}
