//! The order service: takes orders (over p2p through the guard, and from the HTTP mirror) and
//! answers for them. Carrying a paid order through to its channel or its refund is
//! [`crate::lsps1::fulfil`]'s part of the same [`OrderService`].
//!
//! How it takes a new order is [`crate::lsps1::intake`].

use std::sync::{Arc, Mutex};

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Address, Network};
use serde_json::Value;
use tokio::sync::Notify;

use crate::config::lsps1::Lsps1Config;
use crate::lsps1::clock::Clock;
use crate::lsps1::coupons::Discount;
use crate::lsps1::gate::Lsps1Server;
use crate::lsps1::guard::{Lsps1Request, Lsps7Request, RequestGuard};
use crate::lsps1::hold_spelling::{hold_spelling, HoldSpellingWarnings};
use crate::lsps1::kept::Kept;
use crate::lsps1::order::{self, Interface, Order, OrderId, OrderParams, PaymentStateDialect};
use crate::lsps1::pricing::{self, PaymentMethod, PriceBreakdown, PriceRequest};
use crate::lsps1::rpc::{self, RpcError};
use crate::lsps1::store::{OrderBook, StoreError};
use crate::node::chain::{ChainSync, EsploraBroadcaster, EsploraFeeEstimator};
use crate::node::invoice::InvoiceMaker;
use crate::node::peers::PeerConnector;
use crate::node::types::{ChainMonitor, ChannelManager};
use crate::node::wallet::Wallet;
use crate::node::Node;

/// A request to create an order, from any interface, after its parameters were checked
/// against the options.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// `None` for a pay-first order ([`OrderService::create_pay_first_order`]).
    pub client_node_id: Option<PublicKey>,
    pub params: OrderParams,
    /// Checked by the guard: valid on our network.
    pub refund_address: Option<Address>,
    pub source: Interface,
    pub email: Option<String>,
}

/// The node parts the order service drives.
pub struct ServiceNode {
    pub network: Network,
    pub channel_manager: Arc<ChannelManager>,
    /// Makes the orders' invoices.
    pub invoices: Arc<InvoiceMaker>,
    /// Which channels are funded: a channel has a monitor once its `funding_signed` arrived.
    pub chain_monitor: Arc<ChainMonitor>,
    pub wallet: Arc<Wallet>,
    /// Where our kept transactions stand (a funding transaction known to the chain source, a
    /// refund confirmed).
    pub broadcasts: Arc<EsploraBroadcaster>,
    pub fee_estimator: Arc<EsploraFeeEstimator>,
    pub peers: Arc<PeerConnector>,
    /// Esplora base URL, to read the fee rate of unconfirmed payments.
    pub esplora_url: String,
    pub http: reqwest::Client,
    /// No order is taken before the node has synced with the chain since it started: prices,
    /// liquidity and heights would all be guesses.
    pub chain_sync: Arc<ChainSync>,
    /// Keys the claim tickets of customers' orders.
    pub ticket_key: [u8; 32],
}

impl ServiceNode {
    /// The parts of `node` the service drives.
    pub fn of(node: &Node) -> ServiceNode {
        let inner = &node.inner;
        ServiceNode {
            network: inner.config.network,
            channel_manager: Arc::clone(&inner.channel_manager),
            invoices: Arc::clone(&inner.invoices),
            chain_monitor: Arc::clone(&inner.chain_monitor),
            wallet: Arc::clone(&inner.wallet),
            broadcasts: Arc::clone(&inner.broadcaster),
            fee_estimator: Arc::clone(&inner.fee_estimator),
            peers: Arc::clone(&inner.peers),
            esplora_url: inner.esplora_url.clone(),
            http: inner.http.clone(),
            chain_sync: Arc::clone(&inner.chain_sync),
            ticket_key: inner.ticket_key,
        }
    }
}

/// Sells channels. One per node; shared as `Arc<OrderService>`.
pub struct OrderService {
    pub(crate) config: Lsps1Config,
    pub(crate) book: OrderBook,
    pub(crate) node: ServiceNode,
    /// Held while an open starts, an order fails or a funded channel is recorded: an order is
    /// either failed or funded, never both. (The opens themselves are in the order book.)
    pub(crate) opening: Mutex<()>,
    /// Wakes the fulfilment loop when something happened (a payment held, a peer connected).
    pub(crate) wake: Notify,
    pub(crate) hold_warnings: HoldSpellingWarnings,
    /// The best block height the fundings in flight were last checked for a fee bump at.
    pub(crate) fundings_checked_at: std::sync::atomic::AtomicU32,
    /// The one check of order requests, for p2p and every HTTP dialect.
    guard: Arc<RequestGuard>,
    /// The last `get_info` answer and the change counts it was computed from
    /// ([`crate::lsps1::info`]).
    pub(crate) info: Kept<[u64; 3], Arc<Value>>,
}

impl OrderService {
    pub fn new(config: Lsps1Config, book: OrderBook, node: ServiceNode) -> OrderService {
        OrderService {
            guard: Arc::new(RequestGuard::new(config.options.clone(), node.network)),
            config,
            book,
            node,
            opening: Mutex::new(()),
            wake: Notify::new(),
            hold_warnings: HoldSpellingWarnings::default(),
            fundings_checked_at: std::sync::atomic::AtomicU32::new(0),
            info: Kept::default(),
        }
    }

    pub fn config(&self) -> &Lsps1Config {
        &self.config
    }

    /// The request check built from this service's options, shared by every interface.
    pub fn guard(&self) -> &Arc<RequestGuard> {
        &self.guard
    }

    pub fn order_book(&self) -> &OrderBook {
        &self.book
    }

    pub fn network(&self) -> Network {
        self.node.network
    }

    /// Height of the chain tip the node last synced to.
    pub fn best_block_height(&self) -> u32 {
        self.node.channel_manager.current_best_block().height
    }

    pub(crate) fn now(&self) -> u64 {
        self.book.clock().now_unix_secs()
    }

    /// The fee rate (sat per 1000 weight units) that confirms a funding transaction within
    /// `blocks`.
    pub fn funding_fee_rate_sat_per_kwu(&self, blocks: u16) -> u64 {
        self.node
            .fee_estimator
            .fee_rate_within_blocks(blocks)
            .to_sat_per_kwu()
    }

    /// The price of `params` paid by `method`, with the coupon named by `token` applied (if the
    /// token mode reads tokens and the coupon is redeemable).
    pub fn quote(
        &self,
        params: &OrderParams,
        method: PaymentMethod,
    ) -> Result<PriceBreakdown, RpcError> {
        let coupon = self.coupon_for(params.token.as_deref())?;
        self.price(params, method, coupon.as_ref())
    }

    fn price(
        &self,
        params: &OrderParams,
        method: PaymentMethod,
        coupon: Option<&crate::lsps1::coupons::Coupon>,
    ) -> Result<PriceBreakdown, RpcError> {
        self.price_with(params, method, coupon.map(|c| c.discount))
    }

    /// The price of `params` paid by `method`, less `discount` on its service part.
    pub(crate) fn price_with(
        &self,
        params: &OrderParams,
        method: PaymentMethod,
        discount: Option<Discount>,
    ) -> Result<PriceBreakdown, RpcError> {
        pricing::price(
            &self.config.pricing,
            &PriceRequest {
                lsp_balance_sat: params.lsp_balance_sat,
                client_balance_sat: params.client_balance_sat,
                channel_expiry_blocks: params.channel_expiry_blocks,
                fee_rate_sat_per_kwu: self
                    .funding_fee_rate_sat_per_kwu(params.funding_confirms_within_blocks),
                payment: method,
                discount,
            },
        )
        .map_err(|e| RpcError::new(rpc::CLIENT_REJECTED, e.to_string()))
    }

    /// Order `id` as its client may see it: another node's order is "not found" (101), as is
    /// an unknown or malformed id.
    pub fn get_order(&self, client: Option<&PublicKey>, id: &str) -> Result<Order, RpcError> {
        let id = OrderId::parse(id).map_err(|_| order_not_found())?;
        visible_order(client, self.book.order(&id))
    }

    /// [`OrderService::get_order`] without waiting for a read connection: `None` when none is
    /// free (ask [`OrderService::get_order`] on a blocking thread then).
    pub fn get_order_without_waiting(
        &self,
        client: Option<&PublicKey>,
        id: &str,
    ) -> Option<Result<Order, RpcError>> {
        let Ok(id) = OrderId::parse(id) else {
            return Some(Err(order_not_found()));
        };
        Some(visible_order(client, self.book.order_without_waiting(&id)?))
    }

    /// Answers an `lsps1.*` request arriving over p2p.
    fn serve_p2p(&self, peer: PublicKey, request: Lsps1Request) -> Result<Value, RpcError> {
        let dialect = PaymentStateDialect::for_peer(&self.config, &peer);
        match request {
            Lsps1Request::GetInfo => Ok(self.get_info().as_ref().clone()),
            Lsps1Request::CreateOrder(checked) => {
                let order = self.create_order(NewOrder {
                    client_node_id: Some(peer),
                    params: checked.params,
                    refund_address: checked.refund_address,
                    source: Interface::P2p,
                    email: None,
                })?;
                Ok(self.render_p2p(&peer, &order, dialect))
            }
            Lsps1Request::GetOrder { order_id } => {
                let order = self.get_order(Some(&peer), &order_id)?;
                Ok(self.render_p2p(&peer, &order, dialect))
            }
        }
    }

    /// Renders `order` for a p2p answer to `peer`. A held payment's spelling is counted for
    /// `lsp-node order`, and the first bLIP-51 `HOLD` a peer is sent is logged as a warning:
    /// wallets on lightning-liquidity 0.2 cannot parse it.
    fn render_p2p(&self, peer: &PublicKey, order: &Order, dialect: PaymentStateDialect) -> Value {
        if let Some(spelling) = hold_spelling(order, dialect) {
            if let Err(error) = self.book.record_hold_answer(&order.id, spelling) {
                tracing::error!(order = %order.id, %error, "could not count a HOLD answer");
            }
            if dialect == PaymentStateDialect::Blip51 && self.hold_warnings.first_for(peer) {
                tracing::warn!(
                    %peer,
                    order = %order.id,
                    "sent HOLD (bLIP-51) to a peer not in lsps1.hold_as_paid_peers; wallets built on lightning-liquidity 0.2 (ldk-node 0.7) cannot parse it and stop listening until they reconnect: list this peer in lsps1.hold_as_paid_peers if it is one"
                );
            }
        }
        order::render(order, dialect)
    }

    /// How an order is rendered over HTTP (always bLIP-51).
    pub fn render_http(&self, order: &Order) -> Value {
        order::render(order, PaymentStateDialect::Blip51)
    }
}

impl Lsps1Server for OrderService {
    fn serve(&self, peer: PublicKey, request: Lsps1Request) -> Result<Value, RpcError> {
        let method = request.method();
        let answer = self.serve_p2p(peer, request);
        if let Err(error) = &answer {
            tracing::info!(%peer, method, code = error.code, message = %error.message, "LSPS1 request refused");
        }
        answer
    }

    fn serve_lsps7(&self, peer: PublicKey, request: Lsps7Request) -> Result<Value, RpcError> {
        let method = request.method();
        let answer = self.serve_lsps7_p2p(peer, request);
        if let Err(error) = &answer {
            tracing::info!(%peer, method, code = error.code, message = %error.message, "LSPS7 request refused");
        }
        answer
    }

    fn protocols(&self) -> Vec<u16> {
        match self.config.leases.extensions {
            true => vec![1, 7],
            false => vec![1],
        }
    }
}

pub(crate) fn store_error_to_rpc(error: &StoreError) -> RpcError {
    let rpc = error.to_rpc_error();
    if rpc.code == rpc::INTERNAL_ERROR {
        tracing::error!(%error, "order book failure");
    }
    rpc
}

pub(crate) fn internal_error(what: &str, error: &dyn std::fmt::Display) -> RpcError {
    tracing::error!(%error, "{what}");
    RpcError::new(rpc::INTERNAL_ERROR, "Internal error")
}

fn order_not_found() -> RpcError {
    RpcError::new(rpc::ORDER_NOT_FOUND, "Order not found")
}

/// The order read from the book, if `client` (when given) may see it: an extension order is
/// not an LSPS1 order, and another node's order is "not found" to a client.
fn visible_order(
    client: Option<&PublicKey>,
    read: Result<Option<Order>, crate::lsps1::store::StoreError>,
) -> Result<Order, RpcError> {
    let order = read
        .map_err(|e| internal_error("could not read the order", &e))?
        .filter(|order| order.extension.is_none())
        .ok_or_else(order_not_found)?;
    if client.is_some_and(|client| Some(*client) != order.client_node_id) {
        return Err(order_not_found());
    }
    Ok(order)
}
