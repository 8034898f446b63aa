//! Calls every dialect shares, under `/api/v1/`: `POST quote` (the price of an order without
//! creating it) and `POST cancel_order` (by the ordering node, proven by a signature).
//!
//! `quote` takes the `create_order` params (`public_key` optional), checks them exactly as
//! `create_order` would, and answers the fee breakdown per payment method from the same
//! pricing function, with sats as strings as in LSPS1. `onchain` is present when on-chain
//! payment is enabled; `create_order` offers it only to a request with a refund address.
//!
//! `cancel_order` takes `{"order_id", "signature"}`, where `signature` is the Lightning
//! `signmessage` signature (zbase32, as `lncli signmessage` and ldk-node's `sign_message`
//! produce) of the text `cancel_order:<order_id>` by the order's node key. A CREATED order
//! becomes FAILED; a held HTLC is failed back at once and on-chain payments are refunded.
//! Once the channel is funded (COMPLETED) or the order FAILED, it cannot be cancelled (409).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use lightning::util::message_signing;
use serde_json::{json, Value};

use super::error::{HttpError, NOT_AUTHORIZED, ORDER_NOT_CANCELLABLE};
use super::request::{
    check_order_request, json_object, order_id_of, refuse_unknown_fields, Pubkey, RequestBody,
};
use super::PublicState;
use crate::lsps1::fulfil::{CancelRefused, Canceller};
use crate::lsps1::order::OrderState;
use crate::lsps1::pricing::{PaymentMethod, PriceBreakdown};
use crate::lsps1::rpc::{self, RpcError};

pub fn routes() -> Router<PublicState> {
    Router::new()
        .route("/api/v1/quote", post(quote))
        .route("/api/v1/cancel_order", post(cancel_order))
}

/// The text a client signs to cancel order `order_id`.
pub fn cancel_message(order_id: &str) -> String {
    format!("cancel_order:{order_id}")
}

async fn quote(
    State(state): State<PublicState>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let request = check_order_request(
        &state.guard,
        json_object(&body)?,
        "public_key",
        Pubkey::Optional,
    )?;
    let service = &state.service;
    let params = &request.params;
    let mut quote = json!({
        "lsp_balance_sat": params.lsp_balance_sat.to_string(),
        "client_balance_sat": params.client_balance_sat.to_string(),
        "channel_expiry_blocks": params.channel_expiry_blocks,
        "funding_confirms_within_blocks": params.funding_confirms_within_blocks,
        "bolt11": breakdown(&service.quote(params, PaymentMethod::Lightning)?),
    });
    if service.config().options.onchain_payment_enabled {
        quote["onchain"] = breakdown(&service.quote(params, PaymentMethod::Onchain)?);
    }
    Ok(Json(quote))
}

fn breakdown(price: &PriceBreakdown) -> Value {
    json!({
        "base_fee_sat": price.base_fee_sat.to_string(),
        "proportional_fee_sat": price.proportional_fee_sat.to_string(),
        "lease_fee_sat": price.lease_fee_sat.to_string(),
        "onchain_fee_sat": price.onchain_fee_sat.to_string(),
        "refund_reserve_sat": price.refund_reserve_sat.to_string(),
        "discount_sat": price.discount_sat.to_string(),
        "fee_total_sat": price.fee_total_sat.to_string(),
        "order_total_sat": price.order_total_sat.to_string(),
    })
}

async fn cancel_order(
    State(state): State<PublicState>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let fields = json_object(&body)?;
    refuse_unknown_fields(&fields, &["order_id", "signature"])?;
    let id = order_id_of(&fields)?;
    let signature = match fields.get("signature") {
        Some(Value::String(signature)) => signature.as_str(),
        Some(_) => return Err(RpcError::invalid_property("signature", "must be a string").into()),
        None => {
            return Err(RpcError::invalid_property(
                "signature",
                "is required: the ordering node's signmessage signature of cancel_order:<order_id>",
            )
            .into())
        }
    };
    let order = state.public_order(id).await?;
    // A pay-first order not claimed yet has no ordering node to sign.
    let signed = order.client_node_id.is_some_and(|node| {
        message_signing::verify(cancel_message(id).as_bytes(), signature, &node)
    });
    if !signed {
        return Err(RpcError::new(NOT_AUTHORIZED, "Not authorized")
            .with_data(json!({
                "message": "the signature is not the ordering node's signature of cancel_order:<order_id>"
            }))
            .into());
    }
    let order_id = order.id.clone();
    let cancelled = state
        .with_service(move |service| {
            service.cancel_order(&order_id, "cancelled by the client", Canceller::Client)
        })
        .await;
    let cancelled = match cancelled {
        Ok(cancelled) => cancelled,
        Err(CancelRefused::Unknown) => {
            return Err(RpcError::new(rpc::ORDER_NOT_FOUND, "Order not found").into())
        }
        Err(CancelRefused::TooLate(state)) => {
            let message = format!(
                "the order is {} and can no longer be cancelled",
                state.as_str()
            );
            return Err(not_cancellable(state, message).into());
        }
        Err(CancelRefused::OpenUnderway) => {
            let message = "the order's channel is being opened: the open completes the order, \
                               or fails it and returns the payment";
            return Err(not_cancellable(OrderState::Created, message.to_string()).into());
        }
        Err(CancelRefused::Store(error)) => {
            tracing::error!(order = %order.id, %error, "client cancel failed");
            return Err(RpcError::new(rpc::INTERNAL_ERROR, "Internal error").into());
        }
    };
    tracing::info!(order = %cancelled.id, "order cancelled by its client");
    Ok(Json(state.service.render_http(&cancelled)))
}

fn not_cancellable(state: OrderState, message: String) -> RpcError {
    RpcError::new(ORDER_NOT_CANCELLABLE, "Order cannot be cancelled").with_data(json!({
        "message": message,
        "order_state": state.as_str(),
    }))
}
