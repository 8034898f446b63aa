//! The operator contract for channel sales: listing and inspecting LSPS1 orders, cancelling
//! one, rescanning an order's address, and coupons, as request and response types.

use serde::{Deserialize, Serialize};

/// Longest order id bLIP-51 allows.
pub const MAX_ORDER_ID_LEN: usize = 64;

/// The one order-id rule, for the order service and its clients alike: 1 to
/// [`MAX_ORDER_ID_LEN`] characters of `[A-Za-z0-9_-]` (URL-safe, as bLIP-51 asks).
pub fn is_order_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_ORDER_ID_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Which LSPS1 orders to list (all fields optional; newest first).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    /// `CREATED`, `COMPLETED` or `FAILED`.
    pub state: Option<String>,
    /// Hex node id of the client.
    pub client_node_id: Option<String>,
    /// Unix seconds, inclusive.
    pub created_from: Option<u64>,
    /// Unix seconds, exclusive.
    pub created_until: Option<u64>,
    /// At most this many orders (default 100).
    pub limit: Option<u32>,
    /// Only orders with a money step pending longer than it should take, oldest first, each
    /// with [`OrderSummary::stuck`] saying why.
    #[serde(default)]
    pub stuck: Option<bool>,
}

/// One LSPS1 order in a list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderSummary {
    pub order_id: String,
    /// `None` while a pay-first order has not named its node.
    pub client_node_id: Option<String>,
    /// `CREATED`, `COMPLETED` or `FAILED`.
    pub state: String,
    pub bolt11_state: Option<String>,
    pub onchain_state: Option<String>,
    pub lsp_balance_sat: u64,
    pub client_balance_sat: u64,
    /// What the client pays over Lightning (fee + client balance).
    pub order_total_sat: u64,
    /// `p2p`, `http` or `open_lsp` (the open LSP API's pay-first orders).
    pub source: String,
    pub created_at: u64,
    pub updated_at: u64,
    pub funding_outpoint: Option<String>,
    /// Why the order is stuck, in a `stuck` listing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck: Option<String>,
}

/// One transition in an order's history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderEventInfo {
    pub at: u64,
    pub event: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub reason: String,
    /// The event's data as JSON text.
    pub detail: Option<String>,
}

/// An on-chain refund sent for an order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefundInfo {
    pub txid: String,
    pub address: String,
    pub amount_sat: u64,
    pub fee_sat: u64,
    pub created_at: u64,
}

/// Everything about one order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderDetail {
    pub summary: OrderSummary,
    /// The order exactly as bLIP-51 clients see it.
    pub order: serde_json::Value,
    /// The fee breakdown (base, proportional, lease, on-chain, discount, totals).
    pub price: serde_json::Value,
    pub coupon_code: Option<String>,
    pub email: Option<String>,
    pub events: Vec<OrderEventInfo>,
    pub refunds: Vec<RefundInfo>,
    /// How p2p answers spelled the order's held payment (empty if none was sent while held).
    #[serde(default)]
    pub hold_answers: Vec<HoldAnswerInfo>,
    /// The lease of the order's channel, once funded.
    #[serde(default)]
    pub lease: Option<super::LeaseInfo>,
}

/// The p2p answers that told a client its payment was held, under one spelling: `HOLD`
/// (bLIP-51) or `PAID` (a peer in `lsps1.hold_as_paid_peers`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HoldAnswerInfo {
    pub spelling: String,
    pub answers: u64,
    pub first_at: u64,
    pub last_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CancelOrder {
    pub order_id: String,
    /// Recorded in the order's history.
    pub reason: Option<String>,
}

/// Watch an order's on-chain address again and read its whole history from the chain source
/// (for a payment that arrived after the address was retired).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RescanOrder {
    pub order_id: String,
}

/// What a rescan found on the order's address.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RescanResult {
    pub order_id: String,
    pub address: String,
    /// Everything the address received, in the mempool or in blocks.
    pub received_sat: u64,
    pub confirmed_sat: u64,
    /// Unix seconds: the address stays watched at least until then; what it received beyond
    /// what the order used is refunded once deep enough.
    pub watched_until: u64,
    /// Why the wallet sync after the rescan failed, if it did: the next periodic sync reads
    /// the address then.
    pub sync_error: Option<String>,
}

/// A coupon, as LSPS1 clients present it in the `token` field.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CouponInfo {
    pub code: String,
    /// `percent` or `fixed_sat`.
    pub kind: String,
    /// Percent (0-100) or sats, per `kind`.
    pub value: u64,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub expires_at: Option<u64>,
    pub created_at: u64,
}

/// A new coupon: exactly one of `percent` and `fixed_sat`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateCoupon {
    pub code: String,
    pub percent: Option<u8>,
    pub fixed_sat: Option<u64>,
    /// None: unlimited.
    pub max_uses: Option<u32>,
    /// Unix seconds; None: never.
    pub expires_at: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeleteCoupon {
    pub code: String,
}
