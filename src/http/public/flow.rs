//! The Flow API (the Voltage Flow document in the seeds) for customer accounts, under
//! `/flow/` on the public listener: `POST /flow/quote`, `/flow/create`, `/flow/status`,
//! `/flow/cancel`, `/flow/redeem` and `GET /flow/coupons`. Every route needs the customer's
//! API key ([`super::customer_auth`]); a customer sees only its own orders and coupons (another
//! customer's order is "not found", as an unknown one).
//!
//! Orders are the customer's pay-first orders ([`crate::lsps1::accounts`]): the channel goes
//! to whichever node redeems the order's `sidecar_ticket` (Flow's Pool ticket, replaced here by
//! the LUD-02 LNURL-channel of the order's claim, or the bare claim token for
//! `/channel/manual_finalise` when the listener hands out no links). Paid over Lightning, or
//! from credit first. The on-chain option is not offered to Flow orders: `onchain_address` is
//! "".
//!
//! Request fields (`/flow/quote`, `/flow/create`): `capacity` (the inbound liquidity, required),
//! `self_chan_balance` (the customer's side, pushed to its node; default 0),
//! `lease_duration_blocks` (default 2016, or the longest lease offered if shorter) and
//! `announce_channel` (default false). Unknown fields are refused. `/flow/cancel` takes
//! `order_id` and `refund`: `"credit"` (default: what was paid becomes credit) or `"payment"`
//! (the held payment goes back to the payer; credit used goes back to credit either way).
//!
//! Fee fields, from [`crate::lsps1::pricing`]: `pool_fee` is the lease term's part and
//! `voltage_fee` the rest of the fee (base, proportional and the funding's on-chain fee, less
//! any discount), so `total_fee = voltage_fee + pool_fee`; `self_chan_balance_fee` is 0 (the
//! `self_chan_balance` itself is in `amount_due`: it is pushed to the buyer's node);
//! `amount_due` is the order total less `credit_used`. `rate_fixed` is the lease fee in parts
//! per billion of capacity per block (Pool's unit), `rate_bps` the total fee in basis points
//! of capacity. With no meaning here: `order_nonce` "" and `node_tier` "best".
//!
//! Statuses ([`status_of`]): `waiting_payment` (unpaid, not expired), `expired` (ended or past
//! its expiry unpaid), `created` (paid, the ticket ready to redeem), `submitted` (a node
//! redeemed the ticket; the channel is being opened), `filled` (the channel is funded),
//! `failed` (paid but not opened: the payment went back), `cancelled` (by the customer).
//! `creating` is never shown: the ticket exists as soon as the payment is held.

use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};

use super::customer_auth::authenticate;
use super::error::{HttpError, ORDER_NOT_CANCELLABLE};
use super::open_lsp::lnurl_of;
use super::request::{
    json_object, minimal_order_params, order_id_of, refuse_unknown_fields, whole_number,
    RequestBody,
};
use super::PublicState;
use crate::lsps1::accounts::{AccountQuote, CancelTo};
use crate::lsps1::clock::rfc3339;
use crate::lsps1::customer_orders::CustomerOrder;
use crate::lsps1::customers::{Customer, CustomerError};
use crate::lsps1::fulfil::CancelRefused;
use crate::lsps1::order::{Interface, Order, OrderState, PaymentState};
use crate::lsps1::pricing::PriceBreakdown;
use crate::lsps1::rpc::{self, RpcError};
use crate::lsps1::service::{internal_error, NewOrder, OrderService};

/// Flow's default lease: two weeks of blocks.
pub const DEFAULT_LEASE_BLOCKS: u32 = 2_016;

const ORDER_FIELDS: &[&str] = &[
    "capacity",
    "self_chan_balance",
    "lease_duration_blocks",
    "announce_channel",
];

pub fn routes(state: PublicState) -> Router<PublicState> {
    Router::new()
        .route("/flow/quote", post(quote))
        .route("/flow/create", post(create))
        .route("/flow/status", post(status))
        .route("/flow/cancel", post(cancel))
        .route("/flow/coupons", get(coupons))
        .route("/flow/redeem", post(redeem))
        .layer(middleware::from_fn_with_state(state, authenticate))
}

/// The LSPS1 params of a quote or create body, checked by the order service's guard.
fn checked_params(
    state: &PublicState,
    body: &str,
) -> Result<crate::lsps1::guard::CreateOrderRequest, RpcError> {
    let fields = json_object(body)?;
    refuse_unknown_fields(&fields, ORDER_FIELDS)?;
    let capacity = whole_number(&fields, "capacity")?
        .ok_or_else(|| RpcError::invalid_property("capacity", "is required (sats of inbound)"))?;
    let own = whole_number(&fields, "self_chan_balance")?.unwrap_or(0);
    let options = &state.service.config().options;
    let blocks = match whole_number(&fields, "lease_duration_blocks")? {
        Some(blocks) => blocks,
        None => u64::from(DEFAULT_LEASE_BLOCKS.min(options.max_channel_expiry_blocks)),
    };
    let announce = match fields.get("announce_channel") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(announce)) => *announce,
        Some(_) => {
            return Err(RpcError::invalid_property(
                "announce_channel",
                "must be true or false",
            ))
        }
    };
    let params = minimal_order_params(options, capacity, own, blocks, announce);
    state.guard.create_order(params).map_err(with_flow_names)
}

/// The LSPS1 names the guard reports, in Flow's words.
fn with_flow_names(mut error: RpcError) -> RpcError {
    let renamed = match error.data.as_ref().and_then(|d| d["property"].as_str()) {
        Some(
            "lsp_balance_sat"
            | "min_initial_lsp_balance_sat"
            | "max_initial_lsp_balance_sat"
            | "min_channel_balance_sat"
            | "max_channel_balance_sat",
        ) => "capacity",
        Some(
            "client_balance_sat"
            | "min_initial_client_balance_sat"
            | "max_initial_client_balance_sat",
        ) => "self_chan_balance",
        Some("channel_expiry_blocks" | "max_channel_expiry_blocks") => "lease_duration_blocks",
        _ => return error,
    };
    if let Some(data) = error.data.as_mut() {
        data["property"] = json!(renamed);
    }
    error
}

/// Flow's fee fields for `price` with `credit_used` applied.
fn fee_fields(price: &PriceBreakdown, capacity: u64, blocks: u32, credit_used: u64) -> Value {
    let voltage_fee = price.fee_total_sat.saturating_sub(price.lease_fee_sat);
    let pool_fee = price.fee_total_sat - voltage_fee;
    let per_billion_block = u128::from(capacity) * u128::from(blocks.max(1));
    let rate_fixed = match per_billion_block {
        0 => 0,
        n => u128::from(pool_fee) * 1_000_000_000 / n,
    };
    let rate_bps = match capacity {
        0 => 0,
        c => u128::from(price.fee_total_sat) * 10_000 / u128::from(c),
    };
    json!({
        "voltage_fee": voltage_fee,
        "pool_fee": pool_fee,
        "self_chan_balance_fee": 0,
        "total_fee": price.fee_total_sat,
        "amount_due": price.order_total_sat.saturating_sub(credit_used),
        "credit_used": credit_used,
        "rate_fixed": u64::try_from(rate_fixed).unwrap_or(u64::MAX),
        "rate_bps": u64::try_from(rate_bps).unwrap_or(u64::MAX),
    })
}

fn merge(mut into: Value, from: Value) -> Value {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
    into
}

async fn quote(
    State(state): State<PublicState>,
    Extension(customer): Extension<Customer>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let checked = checked_params(&state, &body)?;
    let params = checked.params;
    let quote: AccountQuote = {
        let params = params.clone();
        state
            .with_service(move |service| service.quote_for_customer(&customer, &params))
            .await?
    };
    let fees = fee_fields(
        &quote.price,
        params.lsp_balance_sat,
        params.channel_expiry_blocks,
        quote.credit_used_sat,
    );
    Ok(Json(merge(
        json!({
            "capacity": params.lsp_balance_sat,
            "self_chan_balance": params.client_balance_sat,
            "lease_duration_blocks": params.channel_expiry_blocks,
        }),
        fees,
    )))
}

async fn create(
    State(state): State<PublicState>,
    Extension(customer): Extension<Customer>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let checked = checked_params(&state, &body)?;
    let customer_id = customer.id.clone();
    let order = state
        .with_service(move |service| {
            let (order, _) = service.create_customer_order(
                &customer,
                NewOrder {
                    client_node_id: None,
                    params: checked.params,
                    refund_address: None,
                    source: Interface::Flow,
                    email: None,
                },
            )?;
            Ok::<_, RpcError>(order)
        })
        .await?;
    let found = CustomerOrder {
        order,
        cancelled_at: None,
    };
    Ok(Json(
        state
            .with_service({
                let state = state.clone();
                move |service| flow_order(&state, service, &customer_id, &found)
            })
            .await,
    ))
}

/// The `order_id` of a status or cancel body.
fn order_id_in(body: &str, known: &[&str]) -> Result<(String, Map<String, Value>), RpcError> {
    let fields = json_object(body)?;
    refuse_unknown_fields(&fields, known)?;
    Ok((order_id_of(&fields)?.to_string(), fields))
}

async fn status(
    State(state): State<PublicState>,
    Extension(customer): Extension<Customer>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let (id, _) = order_id_in(&body, &["order_id"])?;
    let rendered = state
        .with_service({
            let state = state.clone();
            move |service| {
                let found = service.customer_order(&customer.id, &id)?;
                Ok::<_, RpcError>(flow_order(&state, service, &customer.id, &found))
            }
        })
        .await?;
    Ok(Json(rendered))
}

async fn cancel(
    State(state): State<PublicState>,
    Extension(customer): Extension<Customer>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let (id, fields) = order_id_in(&body, &["order_id", "refund"])?;
    let to = match fields.get("refund") {
        None | Some(Value::Null) => CancelTo::Credit,
        Some(Value::String(to)) if to == "credit" => CancelTo::Credit,
        Some(Value::String(to)) if to == "payment" => CancelTo::Payment,
        Some(_) => {
            return Err(RpcError::invalid_property(
                "refund",
                "is \"credit\" (keep what was paid as credit) or \"payment\" (return it)",
            )
            .into())
        }
    };
    let rendered = state
        .with_service({
            let state = state.clone();
            move |service| {
                let cancelled = service
                    .cancel_customer_order(&customer.id, &id, to)
                    .map_err(cancel_refused)?;
                let found = service.customer_order(&customer.id, cancelled.order.id.as_str())?;
                let mut rendered = flow_order(&state, service, &customer.id, &found);
                rendered["credit_refund"] = json!(cancelled.credit_refund_sat);
                Ok::<_, RpcError>(rendered)
            }
        })
        .await?;
    Ok(Json(rendered))
}

fn cancel_refused(refused: CancelRefused) -> RpcError {
    let not_cancellable = |message: &str| {
        RpcError::new(ORDER_NOT_CANCELLABLE, "Order cannot be cancelled")
            .with_data(json!({ "message": message }))
    };
    match refused {
        CancelRefused::Unknown => RpcError::new(rpc::ORDER_NOT_FOUND, "Order not found"),
        CancelRefused::TooLate(state) => not_cancellable(&format!(
            "the order has ended ({}) and can no longer be cancelled",
            state.as_str()
        )),
        CancelRefused::OpenUnderway => not_cancellable(
            "the order's channel is being opened: the open completes the order, or fails it and returns the payment",
        ),
        CancelRefused::Store(error) => internal_error("customer cancel failed", &error),
    }
}

async fn coupons(
    State(state): State<PublicState>,
    Extension(customer): Extension<Customer>,
) -> Result<Json<Value>, HttpError> {
    let coupons = state
        .with_service(move |service| service.order_book().credit_coupons(&customer.id))
        .await
        .map_err(customer_error)?;
    let coupons: Vec<Value> = coupons
        .iter()
        .map(|c| {
            json!({
                "coupon": c.code,
                "order_id": c.code,
                "amount": c.amount_sat,
                "claimed": c.redeemed_at.is_some(),
            })
        })
        .collect();
    Ok(Json(json!({ "coupons": coupons })))
}

async fn redeem(
    State(state): State<PublicState>,
    Extension(customer): Extension<Customer>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let fields = json_object(&body)?;
    refuse_unknown_fields(&fields, &["coupon"])?;
    let code = match fields.get("coupon") {
        Some(Value::String(code)) if !code.is_empty() && code.len() <= 64 => code.clone(),
        _ => {
            return Err(RpcError::invalid_property("coupon", "is required: the coupon code").into())
        }
    };
    let (coupon, balance) = state
        .with_service(move |service| {
            service
                .order_book()
                .redeem_credit_coupon(&customer.id, &code)
        })
        .await
        .map_err(customer_error)?;
    Ok(Json(json!({
        "coupon": coupon.code,
        "credit": balance,
        "coupon_amount": coupon.amount_sat,
    })))
}

fn customer_error(error: CustomerError) -> HttpError {
    match error {
        CustomerError::UnknownCoupon(_) => RpcError::new(rpc::ORDER_NOT_FOUND, "Not found")
            .with_data(json!({ "message": error.to_string() }))
            .into(),
        CustomerError::CouponRedeemed(_) => HttpError::with_status(
            RpcError::new(rpc::CLIENT_REJECTED, "Already redeemed")
                .with_data(json!({ "message": error.to_string() })),
            StatusCode::CONFLICT,
        ),
        error => internal_error("customer account failure", &error).into(),
    }
}

/// The Flow order document of a customer's order.
fn flow_order(
    state: &PublicState,
    service: &OrderService,
    customer_id: &str,
    found: &CustomerOrder,
) -> Value {
    let order = &found.order;
    let ever_paid = order.paid_by_credit()
        || service
            .order_book()
            .held_htlc(&order.id)
            .ok()
            .flatten()
            .is_some();
    let status = status_of(
        found,
        ever_paid,
        service.order_book().clock().now_unix_secs(),
    );
    let ticket = service.ticket_of(&order.id);
    let sidecar_ticket = match status {
        "created" => lnurl_of(state, &ticket)
            .map(|(_, lnurl)| lnurl)
            .unwrap_or_else(|| ticket.reveal().to_string()),
        _ => String::new(),
    };
    let p = &order.params;
    let mut rendered = json!({
        "order_id": order.id.as_str(),
        "creation_date": rfc3339(order.created_at),
        "status": status,
        "paid": ever_paid,
        "order_nonce": "",
        "capacity": p.lsp_balance_sat,
        "self_chan_balance": p.client_balance_sat,
        "lease_duration_blocks": p.channel_expiry_blocks,
        "node_tier": "best",
        "sidecar_ticket": sidecar_ticket,
        "onchain_address": "",
        "lightning_invoice": order.bolt11.as_ref().map(|b| b.invoice.clone()).unwrap_or_default(),
        "expires_at": rfc3339(order.expires_at),
        "node_id": order.client_node_id.map(|node| node.to_string()),
        "channel_funding_outpoint": order.channel.as_ref().map(|c| c.funding_outpoint.clone()),
    });
    rendered = merge(
        rendered,
        fee_fields(
            &order.price,
            p.lsp_balance_sat,
            p.channel_expiry_blocks,
            order.credit_used_sat(),
        ),
    );
    if found.cancelled_at.is_some() && order.state == OrderState::Failed {
        rendered["credit_refund"] = json!(service.credit_returned_sat(customer_id, &order.id));
    }
    rendered
}

/// The Flow status of a customer's order (see the module doc).
pub fn status_of(found: &CustomerOrder, ever_paid: bool, now: u64) -> &'static str {
    let order: &Order = &found.order;
    if found.cancelled_at.is_some() && order.state == OrderState::Failed {
        return "cancelled";
    }
    let held = order
        .bolt11
        .as_ref()
        .is_some_and(|b| b.state == PaymentState::Hold);
    match order.state {
        OrderState::Completed => "filled",
        OrderState::Failed if ever_paid => "failed",
        OrderState::Failed => "expired",
        OrderState::Created if !(held || order.paid_by_credit()) => match now >= order.expires_at {
            true => "expired",
            false => "waiting_payment",
        },
        OrderState::Created if order.client_node_id.is_none() => "created",
        OrderState::Created => "submitted",
    }
}
