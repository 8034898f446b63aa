//! The operator API contract: what an operator can ask of the node, as JSON types and a trait,
//! and the API key that guards it ([`keys`]). serde and thiserror only: no web framework, no
//! node internals, so the server, the node, the order service and the CLI all share it.
//!
//! The admin router serves these calls over HTTP; the app implements [`OperatorApi`] (node calls
//! by the node, order calls by the order service); the CLI sends the same request types and
//! reads the same response types. Keeping the three on one set of types means a field renamed
//! here is renamed everywhere, or the build fails.
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
//! | POST   | `/v1/orders/rescan`   | [`RescanOrder`]      | [`RescanResult`]         |
//! | GET    | `/v1/leases`          | query [`LeaseQuery`] | [`LeaseList`]            |
//! | POST   | `/v1/leases/close`    | [`CloseLease`]       | [`LeaseInfo`]            |
//! | POST   | `/v1/leases/keep`     | [`KeepLease`]        | [`LeaseInfo`]            |
//! | GET    | `/v1/coupons`         |                      | `Vec<`[`CouponInfo`]`>`  |
//! | POST   | `/v1/coupons`         | [`CreateCoupon`]     | [`CouponInfo`]           |
//! | POST   | `/v1/coupons/delete`  | [`DeleteCoupon`]     | [`Empty`]                |
//! | GET    | `/v1/customers`       |                      | `Vec<`[`CustomerInfo`]`>`|
//! | POST   | `/v1/customers`       | [`AddCustomer`]      | [`CustomerKey`]          |
//! | POST   | `/v1/customers/disable` | [`DisableCustomer`] | [`CustomerInfo`]        |
//! | POST   | `/v1/customers/delete`  | [`CustomerRef`]   | [`Empty`]                |
//! | POST   | `/v1/customers/rotate-key` | [`CustomerRef`] | [`CustomerKey`]        |
//! | POST   | `/v1/customers/terms`  | [`SetCustomerTerms`] | [`CustomerInfo`]        |
//! | GET    | `/v1/customers/{customer}/credit` |          | [`CustomerCredit`]       |
//! | POST   | `/v1/customers/credit` | [`AdjustCredit`]    | [`CustomerCredit`]       |
//! | POST   | `/v1/customers/coupons` | [`IssueCreditCoupon`] | [`CreditCouponInfo`]  |
//! | GET    | `/metrics`            |                      | [`Metrics`], as Prometheus text |
//!
//! Errors are `{"error": "<one sentence a person can act on>"}` with the status of
//! [`OperatorError::status`].

use std::future::Future;

use serde::{Deserialize, Serialize};

mod customers;
pub mod keys;
mod leases;
mod metrics;
mod node;
mod orders;

pub use customers::*;
pub use leases::*;
pub use metrics::*;
pub use node::*;
pub use orders::*;

/// Header carrying the operator API key.
pub const API_KEY_HEADER: &str = "x-api-key";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Empty {}

/// The error body of every failed operator call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
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

/// Everything the operator API can ask of the program. Implemented by `lsp_node::App`, which
/// delegates node calls to the node and order calls to the order service.
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
    fn rescan_order(
        &self,
        req: RescanOrder,
    ) -> impl Future<Output = OperatorResult<RescanResult>> + Send;
    fn leases(&self, query: LeaseQuery) -> impl Future<Output = OperatorResult<LeaseList>> + Send;
    fn close_lease(
        &self,
        req: CloseLease,
    ) -> impl Future<Output = OperatorResult<LeaseInfo>> + Send;
    fn keep_lease(&self, req: KeepLease) -> impl Future<Output = OperatorResult<LeaseInfo>> + Send;
    fn coupons(&self) -> impl Future<Output = OperatorResult<Vec<CouponInfo>>> + Send;
    fn create_coupon(
        &self,
        req: CreateCoupon,
    ) -> impl Future<Output = OperatorResult<CouponInfo>> + Send;
    fn delete_coupon(
        &self,
        req: DeleteCoupon,
    ) -> impl Future<Output = OperatorResult<Empty>> + Send;
    fn customers(&self) -> impl Future<Output = OperatorResult<Vec<CustomerInfo>>> + Send;
    fn add_customer(
        &self,
        req: AddCustomer,
    ) -> impl Future<Output = OperatorResult<CustomerKey>> + Send;
    fn disable_customer(
        &self,
        req: DisableCustomer,
    ) -> impl Future<Output = OperatorResult<CustomerInfo>> + Send;
    fn delete_customer(
        &self,
        req: CustomerRef,
    ) -> impl Future<Output = OperatorResult<Empty>> + Send;
    fn rotate_customer_key(
        &self,
        req: CustomerRef,
    ) -> impl Future<Output = OperatorResult<CustomerKey>> + Send;
    fn set_customer_terms(
        &self,
        req: SetCustomerTerms,
    ) -> impl Future<Output = OperatorResult<CustomerInfo>> + Send;
    fn customer_credit(
        &self,
        customer: String,
    ) -> impl Future<Output = OperatorResult<CustomerCredit>> + Send;
    fn adjust_credit(
        &self,
        req: AdjustCredit,
    ) -> impl Future<Output = OperatorResult<CustomerCredit>> + Send;
    fn issue_credit_coupon(
        &self,
        req: IssueCreditCoupon,
    ) -> impl Future<Output = OperatorResult<CreditCouponInfo>> + Send;
    fn metrics(&self) -> impl Future<Output = OperatorResult<Metrics>> + Send;
}

/// An error with its causes: reqwest's top-level message is often just "error sending
/// request", and the TLS or TCP error is below it.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
