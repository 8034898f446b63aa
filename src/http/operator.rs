//! The operator API contract: what an operator can ask of the node, as JSON types and a trait.
//!
//! The admin router serves these calls over HTTP; the node implements [`OperatorApi`]; the CLI
//! sends the same request types and reads the same response types. Keeping the three on one set
//! of types means a field renamed here is renamed everywhere, or the build fails.
//!
//! Routes (all behind the `x-api-key` header):
//!
//! | method | path                  | request              | response                 |
//! |--------|-----------------------|----------------------|--------------------------|
//! | GET    | `/v1/info`            |                      | [`NodeInfo`]             |
//! | GET    | `/v1/balance`         |                      | [`Balances`]             |
//! | POST   | `/v1/address`         |                      | [`NewAddress`]           |
//! | POST   | `/v1/send`            | [`SendOnchain`]      | [`Txid`]                 |
//! | GET    | `/v1/peers`           |                      | `Vec<`[`PeerInfo`]`>`    |
//! | POST   | `/v1/peers`           | [`ConnectPeer`]      | [`Empty`]                |
//! | GET    | `/v1/channels`        |                      | `Vec<`[`ChannelInfo`]`>` |
//! | POST   | `/v1/channels`        | [`OpenChannel`]      | [`OpenedChannel`]        |
//! | POST   | `/v1/channels/close`  | [`CloseChannel`]     | [`Empty`]                |
//! | GET    | `/v1/payments`        |                      | `Vec<`[`PaymentInfo`]`>` |
//! | POST   | `/v1/invoices`        | [`CreateInvoice`]    | [`Invoice`]              |
//! | POST   | `/v1/pay`             | [`PayInvoice`]       | [`PaymentInfo`]          |
//! | POST   | `/v1/sync`            |                      | [`SyncStatus`]           |
//! | GET    | `/v1/orders`          | query [`OrderQuery`] | `Vec<`[`OrderSummary`]`>`|
//! | GET    | `/v1/orders/{id}`     |                      | [`OrderDetail`]          |
//! | POST   | `/v1/orders/cancel`   | [`CancelOrder`]      | [`OrderDetail`]          |
//! | GET    | `/v1/coupons`         |                      | `Vec<`[`CouponInfo`]`>`  |
//! | POST   | `/v1/coupons`         | [`CreateCoupon`]     | [`CouponInfo`]           |
//! | POST   | `/v1/coupons/delete`  | [`DeleteCoupon`]     | [`Empty`]                |
//!
//! Errors are `{"error": "<one sentence a person can act on>"}` with the status of
//! [`OperatorError::status`].

use std::future::Future;

use serde::{Deserialize, Serialize};

/// Header carrying the operator API key.
pub const API_KEY_HEADER: &str = "x-api-key";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    /// Hex-encoded compressed public key.
    pub node_id: String,
    /// `bitcoin`, `testnet`, `signet` or `regtest`.
    pub network: String,
    /// Height of the best block the node has synced to.
    pub block_height: u32,
    pub block_hash: String,
    /// Unix time (seconds) of the last completed chain sync, if any.
    pub last_sync_at: Option<u64>,
    /// `host:port` strings the p2p listener is reachable on.
    pub listening_addresses: Vec<String>,
    pub version: String,
    pub num_peers: usize,
    pub num_channels: usize,
    /// Whether the chain source is being reached, and why not.
    #[serde(default)]
    pub chain_source: ChainSourceStatus,
}

/// The chain source as the node sees it. Until `synced` is true the node sells no channels.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChainSourceStatus {
    /// Esplora base URL.
    pub url: String,
    /// A sync has completed since the node started.
    pub synced: bool,
    /// Failed syncs in a row; 0 when the last sync succeeded.
    pub consecutive_failures: u32,
    /// Unix time (seconds) of the first failure in the current run of failures.
    pub failing_since: Option<u64>,
    /// The last failure, as one sentence.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Balances {
    pub onchain_confirmed_sat: u64,
    /// Unconfirmed and immature on-chain funds.
    pub onchain_unconfirmed_sat: u64,
    /// Sum of our balances in open channels, rounded down to whole sats.
    pub lightning_sat: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NewAddress {
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SendOnchain {
    pub address: String,
    /// Amount to send; omit and set `send_all` to sweep the wallet.
    #[serde(default)]
    pub amount_sat: Option<u64>,
    #[serde(default)]
    pub send_all: bool,
    /// Fee rate; defaults to the node's estimate for a normal-priority transaction.
    #[serde(default)]
    pub fee_rate_sat_per_vb: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Txid {
    pub txid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeerInfo {
    pub node_id: String,
    /// Last known address, if any.
    pub address: Option<String>,
    pub connected: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConnectPeer {
    pub node_id: String,
    /// `host:port`.
    pub address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Empty {}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChannelInfo {
    /// Hex channel id (the temporary id until funding is known).
    pub channel_id: String,
    pub user_channel_id: String,
    pub counterparty_node_id: String,
    /// `txid:vout` once the funding transaction exists.
    pub funding_txo: Option<String>,
    pub capacity_sat: u64,
    pub outbound_msat: u64,
    pub inbound_msat: u64,
    pub is_channel_ready: bool,
    pub is_usable: bool,
    pub is_announced: bool,
    pub is_outbound: bool,
    pub confirmations: Option<u32>,
    /// HTLCs not yet settled in both parties' commitments (in flight, being added or removed).
    /// The balances above can still move by their on-chain fee until this is 0.
    pub pending_htlcs: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenChannel {
    pub node_id: String,
    /// Connect to this `host:port` first, when not already connected.
    #[serde(default)]
    pub address: Option<String>,
    pub capacity_sat: u64,
    #[serde(default)]
    pub push_msat: u64,
    #[serde(default)]
    pub announce: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OpenedChannel {
    /// The channel's id, as `channels` and `close-channel` know it: the answer waits (up to
    /// 30 s) until the peer accepted and the funding transaction exists. `None` when the peer
    /// has not answered by then; the open goes on, and `user_channel_id` finds the channel.
    pub channel_id: Option<String>,
    /// Ours from the start, never changes; `close-channel` accepts it too.
    pub user_channel_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CloseChannel {
    /// The channel id (64 hex characters) or its `user_channel_id` (decimal).
    pub channel_id: String,
    pub counterparty_node_id: String,
    /// Broadcast our latest commitment instead of negotiating a cooperative close.
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PaymentDirection {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaymentInfo {
    pub payment_hash: String,
    pub direction: PaymentDirection,
    pub amount_msat: Option<u64>,
    pub fee_paid_msat: Option<u64>,
    pub status: PaymentStatus,
    /// Unix time (seconds) the payment was first recorded.
    pub created_at: u64,
    pub updated_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CreateInvoice {
    /// Omit for an any-amount invoice.
    #[serde(default)]
    pub amount_msat: Option<u64>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub expiry_secs: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Invoice {
    pub invoice: String,
    pub payment_hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PayInvoice {
    pub invoice: String,
    /// Required for any-amount invoices, refused otherwise.
    #[serde(default)]
    pub amount_msat: Option<u64>,
    /// How long to wait for the outcome before answering with `pending`.
    #[serde(default)]
    pub wait_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SyncStatus {
    pub block_height: u32,
    pub last_sync_at: Option<u64>,
}

/// The error body of every failed operator call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
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
}

/// One LSPS1 order in a list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OrderSummary {
    pub order_id: String,
    pub client_node_id: String,
    /// `CREATED`, `COMPLETED` or `FAILED`.
    pub state: String,
    pub bolt11_state: Option<String>,
    pub onchain_state: Option<String>,
    pub lsp_balance_sat: u64,
    pub client_balance_sat: u64,
    /// What the client pays over Lightning (fee + client balance).
    pub order_total_sat: u64,
    /// `p2p` or `http`.
    pub source: String,
    pub created_at: u64,
    pub updated_at: u64,
    pub funding_outpoint: Option<String>,
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

/// Why an operator call failed; the message is one sentence a person can act on.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OperatorError {
    /// The request was understood but its content is wrong (bad address, amount, id...).
    #[error("{0}")]
    InvalidRequest(String),
    /// The thing named does not exist (unknown channel, peer...).
    #[error("{0}")]
    NotFound(String),
    /// The request is valid but cannot be carried out now (not enough funds, peer offline...).
    #[error("{0}")]
    Unavailable(String),
    /// Something failed inside the node.
    #[error("{0}")]
    Internal(String),
}

impl OperatorError {
    /// The HTTP status this error is served with.
    pub fn status(&self) -> u16 {
        match self {
            OperatorError::InvalidRequest(_) => 400,
            OperatorError::NotFound(_) => 404,
            OperatorError::Unavailable(_) => 409,
            OperatorError::Internal(_) => 500,
        }
    }
}

pub type OperatorResult<T> = Result<T, OperatorError>;

/// Everything the operator API can ask of a node. Implemented by [`crate::node::Node`].
pub trait OperatorApi: Send + Sync + 'static {
    fn info(&self) -> impl Future<Output = OperatorResult<NodeInfo>> + Send;
    fn balances(&self) -> impl Future<Output = OperatorResult<Balances>> + Send;
    fn new_address(&self) -> impl Future<Output = OperatorResult<NewAddress>> + Send;
    fn send_onchain(&self, req: SendOnchain) -> impl Future<Output = OperatorResult<Txid>> + Send;
    fn peers(&self) -> impl Future<Output = OperatorResult<Vec<PeerInfo>>> + Send;
    fn connect_peer(&self, req: ConnectPeer) -> impl Future<Output = OperatorResult<Empty>> + Send;
    fn channels(&self) -> impl Future<Output = OperatorResult<Vec<ChannelInfo>>> + Send;
    fn open_channel(
        &self,
        req: OpenChannel,
    ) -> impl Future<Output = OperatorResult<OpenedChannel>> + Send;
    fn close_channel(
        &self,
        req: CloseChannel,
    ) -> impl Future<Output = OperatorResult<Empty>> + Send;
    fn payments(&self) -> impl Future<Output = OperatorResult<Vec<PaymentInfo>>> + Send;
    fn create_invoice(
        &self,
        req: CreateInvoice,
    ) -> impl Future<Output = OperatorResult<Invoice>> + Send;
    fn pay_invoice(
        &self,
        req: PayInvoice,
    ) -> impl Future<Output = OperatorResult<PaymentInfo>> + Send;
    fn sync(&self) -> impl Future<Output = OperatorResult<SyncStatus>> + Send;
    fn orders(
        &self,
        query: OrderQuery,
    ) -> impl Future<Output = OperatorResult<Vec<OrderSummary>>> + Send;
    fn order(&self, order_id: String) -> impl Future<Output = OperatorResult<OrderDetail>> + Send;
    fn cancel_order(
        &self,
        req: CancelOrder,
    ) -> impl Future<Output = OperatorResult<OrderDetail>> + Send;
    fn coupons(&self) -> impl Future<Output = OperatorResult<Vec<CouponInfo>>> + Send;
    fn create_coupon(
        &self,
        req: CreateCoupon,
    ) -> impl Future<Output = OperatorResult<CouponInfo>> + Send;
    fn delete_coupon(
        &self,
        req: DeleteCoupon,
    ) -> impl Future<Output = OperatorResult<Empty>> + Send;
}
