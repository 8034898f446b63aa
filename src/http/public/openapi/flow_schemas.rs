//! The component schemas of the Flow API ([`crate::http::public::flow`]): amounts are integer
//! sats, as the Flow document writes them.

use serde_json::{json, Value};

use super::schemas::{node_id, nullable, object, request, sats_integer};

/// The Flow statuses, as [`crate::http::public::flow::status_of`] gives them.
pub const FLOW_STATUSES: [&str; 8] = [
    "waiting_payment",
    "expired",
    "creating",
    "created",
    "submitted",
    "filled",
    "failed",
    "cancelled",
];

/// The fee fields every quote and order carries.
fn fee_properties() -> Value {
    json!({
        "voltage_fee": sats_integer(),
        "pool_fee": sats_integer(),
        "self_chan_balance_fee": sats_integer(),
        "total_fee": sats_integer(),
        "amount_due": sats_integer(),
        "credit_used": sats_integer(),
        "rate_fixed": { "type": "integer", "minimum": 0, "description": "lease fee, parts per billion of capacity per block" },
        "rate_bps": { "type": "integer", "minimum": 0, "description": "total fee, basis points of capacity" },
    })
}

const FEE_FIELDS: [&str; 8] = [
    "voltage_fee",
    "pool_fee",
    "self_chan_balance_fee",
    "total_fee",
    "amount_due",
    "credit_used",
    "rate_fixed",
    "rate_bps",
];

fn with_fees(required: &[&str], mut properties: Value) -> Value {
    if let (Some(into), Value::Object(fees)) = (properties.as_object_mut(), fee_properties()) {
        into.extend(fees);
    }
    let mut all: Vec<&str> = required.to_vec();
    all.extend(FEE_FIELDS);
    object(&all, properties)
}

pub(super) fn flow_schemas() -> Vec<(&'static str, Value)> {
    let string = json!({ "type": "string" });
    let blocks = json!({ "type": "integer", "minimum": 1, "description": "blocks" });
    let order_id = json!({ "type": "string", "maxLength": 64 });
    vec![
        (
            "FlowOrderRequest",
            request(
                &["capacity"],
                json!({
                    "capacity": sats_integer(),
                    "self_chan_balance": sats_integer(),
                    "lease_duration_blocks": blocks,
                    "announce_channel": { "type": "boolean" },
                }),
            ),
        ),
        (
            "FlowQuote",
            with_fees(
                &["capacity", "self_chan_balance", "lease_duration_blocks"],
                json!({
                    "capacity": sats_integer(),
                    "self_chan_balance": sats_integer(),
                    "lease_duration_blocks": blocks,
                }),
            ),
        ),
        (
            "FlowOrder",
            with_fees(
                &[
                    "order_id",
                    "creation_date",
                    "status",
                    "paid",
                    "order_nonce",
                    "capacity",
                    "self_chan_balance",
                    "lease_duration_blocks",
                    "node_tier",
                    "sidecar_ticket",
                    "onchain_address",
                    "lightning_invoice",
                    "expires_at",
                ],
                json!({
                    "order_id": order_id,
                    "creation_date": { "type": "string", "format": "date-time" },
                    "status": { "type": "string", "enum": FLOW_STATUSES },
                    "paid": { "type": "boolean" },
                    "order_nonce": string,
                    "capacity": sats_integer(),
                    "self_chan_balance": sats_integer(),
                    "lease_duration_blocks": blocks,
                    "node_tier": string,
                    "sidecar_ticket": {
                        "type": "string",
                        "description": "the LNURL-channel (LUD-02) that claims the channel for the node that redeems it (the bare claim token for /channel/manual_finalise when the LSP hands out no links); \"\" unless status is created",
                    },
                    "onchain_address": { "type": "string", "description": "always \"\": Flow orders are paid over Lightning or from credit" },
                    "lightning_invoice": { "type": "string", "description": "\"\" when credit pays the whole order" },
                    "expires_at": { "type": "string", "format": "date-time" },
                    "node_id": nullable(node_id()),
                    "channel_funding_outpoint": nullable(string.clone()),
                    "credit_refund": sats_integer(),
                }),
            ),
        ),
        (
            "FlowOrderIdRequest",
            request(&["order_id"], json!({ "order_id": order_id })),
        ),
        (
            "FlowCancelRequest",
            request(
                &["order_id"],
                json!({
                    "order_id": order_id,
                    "refund": {
                        "type": "string",
                        "enum": ["credit", "payment"],
                        "description": "credit (default): what was paid becomes credit; payment: it goes back to the payer",
                    },
                }),
            ),
        ),
        (
            "FlowCoupons",
            object(
                &["coupons"],
                json!({
                    "coupons": {
                        "type": "array",
                        "items": object(
                            &["coupon", "order_id", "amount", "claimed"],
                            json!({
                                "coupon": string,
                                "order_id": { "type": "string", "description": "the coupon code, as the Flow document names it" },
                                "amount": sats_integer(),
                                "claimed": { "type": "boolean" },
                            }),
                        ),
                    },
                }),
            ),
        ),
        (
            "FlowRedeemRequest",
            request(
                &["coupon"],
                json!({ "coupon": { "type": "string", "maxLength": 64 } }),
            ),
        ),
        (
            "FlowRedeemed",
            object(
                &["coupon", "credit", "coupon_amount"],
                json!({
                    "coupon": string,
                    "credit": { "type": "integer", "minimum": 0, "description": "the credit after the coupon, sats" },
                    "coupon_amount": sats_integer(),
                }),
            ),
        ),
    ]
}
