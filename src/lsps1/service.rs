//! The order service: takes orders (over p2p through the guard, and from the HTTP mirror) and
//! answers for them. Carrying a paid order through to its channel or its refund is
//! [`crate::lsps1::fulfil`]'s part of the same [`OrderService`].
//!
//! Creating an order, in order (its params already checked by the guard, the refund address
//! valid on our network): the token is
//! checked per [`TokenMode`] (error 102); both prices come from [`pricing::price`] at the fee
//! rate that confirms the funding within `funding_confirms_within_blocks`; the liquidity guard
//! refuses what the wallet cannot fund (error 1, nothing reserved); then the HOLD invoice (an
//! LDK invoice whose HTLC the service holds instead of claiming) and a fresh wallet address per
//! order are made, and [`OrderBook::create_order`] commits the order with its coupon
//! redemption and reservation. Only then is the order returned to be answered.

use std::sync::{Arc, Mutex};

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Address, Network};
use lightning_invoice::Description;
use serde_json::Value;
use tokio::sync::Notify;

use crate::config::lsps1::{Lsps1Config, TokenMode};
use crate::lsps1::claims::ClaimToken;
use crate::lsps1::clock::Clock;
use crate::lsps1::coupons::Discount;
use crate::lsps1::customers::Account;
use crate::lsps1::gate::Lsps1Server;
use crate::lsps1::guard::{Lsps1Request, Lsps7Request, RequestGuard};
use crate::lsps1::hold_spelling::{hold_spelling, HoldSpellingWarnings};
use crate::lsps1::kept::Kept;
use crate::lsps1::liquidity::{self, ReservationRequest};
use crate::lsps1::new_orders::Admission;
use crate::lsps1::order::{
    self, Bolt11Payment, Interface, OnchainPayment, Order, OrderCustomer, OrderId, OrderParams,
    OrderState, PaymentState, PaymentStateDialect,
};
use crate::lsps1::pricing::{self, PaymentMethod, PriceBreakdown, PriceRequest};
use crate::lsps1::rpc::{self, RpcError};
use crate::lsps1::store::{OrderBook, StoreError};
use crate::node::chain::{ChainSync, EsploraBroadcaster, EsploraFeeEstimator};
use crate::node::invoice::{InvoiceMaker, InvoiceRequest};
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

    /// The coupon a token names, per the token mode; error 102 when the token is required and
    /// missing, or names no redeemable coupon.
    pub(crate) fn coupon_for(
        &self,
        token: Option<&str>,
    ) -> Result<Option<crate::lsps1::coupons::Coupon>, RpcError> {
        let bad_token = |message: &str| RpcError::new(rpc::UNRECOGNIZED_TOKEN, message);
        // Wallets without a token send "" (the Olympus document does): no token.
        let token = token.filter(|t| !t.is_empty());
        let token = match (self.config.token_mode, token) {
            (TokenMode::Ignore, _) | (TokenMode::Coupon, None) => return Ok(None),
            (TokenMode::Required, None) => {
                return Err(bad_token("this LSP sells channels only with a token"))
            }
            (_, Some(token)) => token,
        };
        let coupon = self
            .book
            .coupon(token)
            .map_err(|e| internal_error("could not read coupons", &e))?
            .ok_or_else(|| bad_token("the token is not a known coupon"))?;
        coupon
            .check_redeemable(self.now())
            .map_err(|e| bad_token(&e.to_string()))?;
        Ok(Some(coupon))
    }

    /// Whether orders are taken now (the chain is synced and trusted), and `refund_address`
    /// is one the client controls: the checks every new order, of any kind, passes first.
    pub(crate) fn admit_new_order(&self, refund_address: Option<&Address>) -> Result<(), RpcError> {
        if !self.node.chain_sync.has_synced() {
            return Err(RpcError::new(
                rpc::CLIENT_REJECTED,
                "the LSP has not synced with the chain yet and takes no orders until it has; try again shortly",
            ));
        }
        if !self.node.chain_sync.is_following() {
            return Err(RpcError::new(
                rpc::CLIENT_REJECTED,
                "the LSP does not trust its chain source right now and takes no orders",
            ));
        }
        if refund_address.is_some_and(|a| self.node.wallet.is_mine(&a.script_pubkey())) {
            return Err(RpcError::invalid_property(
                "refund_onchain_address",
                "is an address of this LSP's own wallet: a refund there would never reach you; give an address you control",
            ));
        }
        Ok(())
    }

    /// The payment options of new order `id`: the HOLD invoice at `bolt11_price`, and the
    /// on-chain option at `onchain_price` (with a fresh wallet address) when there is one.
    pub(crate) fn payment_options(
        &self,
        id: &OrderId,
        description: String,
        bolt11_price: &PriceBreakdown,
        onchain: Option<(&PriceBreakdown, &Address)>,
    ) -> Result<(Bolt11Payment, Option<OnchainPayment>), RpcError> {
        let now = self.now();
        let options = &self.config.options;
        let invoice = self.order_invoice(id, description, bolt11_price.order_total_sat)?;
        let bolt11 = Bolt11Payment {
            state: PaymentState::ExpectPayment,
            expires_at: now + options.invoice_expiry_secs,
            fee_total_sat: bolt11_price.fee_total_sat,
            order_total_sat: bolt11_price.order_total_sat,
            invoice,
        };
        let onchain = match onchain {
            Some((price, refund)) => {
                let address = self
                    .node
                    .wallet
                    .new_address()
                    .map_err(|e| internal_error("could not make a payment address", &e))?;
                Some(OnchainPayment {
                    state: PaymentState::ExpectPayment,
                    expires_at: now + options.order_expiry_secs,
                    fee_total_sat: price.fee_total_sat,
                    order_total_sat: price.order_total_sat,
                    address: address.to_string(),
                    min_onchain_payment_confirmations: options.min_onchain_payment_confirmations,
                    min_fee_for_0conf_sat_per_vb: options.min_fee_for_0conf_sat_per_vb,
                    refund_onchain_address: refund.to_string(),
                })
            }
            None => None,
        };
        Ok((bolt11, onchain))
    }

    /// Creates and persists an order; the returned order is what the client is told.
    pub fn create_order(&self, request: NewOrder) -> Result<Order, RpcError> {
        self.new_order(request, None, None)
    }

    /// Creates an order (a pay-first one with `token`; a customer's with `account`, pay-first
    /// with the ticket derived from its id).
    pub(crate) fn new_order(
        &self,
        request: NewOrder,
        token: Option<&ClaimToken>,
        account: Option<&Account>,
    ) -> Result<Order, RpcError> {
        let params = &request.params;
        let refund_address = request.refund_address.as_ref();
        self.admit_new_order(refund_address)?;
        let coupon = self.coupon_for(params.token.as_deref())?;
        let discount = coupon
            .as_ref()
            .map(|c| c.discount)
            .or(account.and_then(|a| a.discount));
        let bolt11_price = self.price_with(params, PaymentMethod::Lightning, discount)?;
        let onchain_price = match refund_address {
            Some(_) if self.config.options.onchain_payment_enabled => {
                Some(self.price_with(params, PaymentMethod::Onchain, discount)?)
            }
            _ => None,
        };
        let credit_used = account.map_or(0, |a| a.credit_sat.min(bolt11_price.order_total_sat));

        let reservation = liquidity::reservation_for(
            params.lsp_balance_sat,
            params.client_balance_sat,
            bolt11_price.onchain_fee_sat,
        )
        .map_err(|e| RpcError::new(rpc::CLIENT_REJECTED, e.to_string()))?;
        let spendable_sat = self.node.wallet.balances().spendable_sat;
        // Checked again atomically by the order book; this early check avoids making an
        // invoice and revealing an address for an order that cannot be funded.
        let reserved = self
            .book
            .reserved_sat()
            .map_err(|e| internal_error("could not read reservations", &e))?;
        liquidity::check(spendable_sat, reserved, reservation)
            .map_err(|e| RpcError::new(rpc::CLIENT_REJECTED, e.to_string()))?;

        let id = OrderId::generate(std::time::SystemTime::now(), &mut rand::rngs::OsRng);
        let now = self.now();
        // Credit pays first; the payment options ask for the rest, and there are none when
        // credit pays it all.
        let (bolt11, onchain) = if credit_used == bolt11_price.order_total_sat && account.is_some()
        {
            (None, None)
        } else {
            let due = |price: &PriceBreakdown| PriceBreakdown {
                order_total_sat: price.order_total_sat.saturating_sub(credit_used),
                fee_total_sat: price.fee_total_sat.saturating_sub(credit_used),
                ..*price
            };
            let onchain_due = onchain_price.as_ref().map(due);
            let (bolt11, onchain) = self.payment_options(
                &id,
                format!("LSPS1 channel order {id}"),
                &due(&bolt11_price),
                onchain_due.as_ref().zip(refund_address),
            )?;
            (Some(bolt11), onchain)
        };
        let order = Order {
            id,
            client_node_id: request.client_node_id,
            params: request.params.clone(),
            refund_onchain_address: request.refund_address.as_ref().map(Address::to_string),
            created_at: now,
            expires_at: now + self.config.options.order_expiry_secs,
            state: OrderState::Created,
            bolt11,
            onchain,
            channel: None,
            price: bolt11_price,
            coupon_code: coupon.map(|c| c.code),
            source: request.source,
            email: request.email,
            updated_at: now,
            extension: None,
            customer: account.map(|a| OrderCustomer {
                customer_id: a.customer_id.clone(),
                credit_used_sat: credit_used,
            }),
        };
        let admission = Admission {
            reservation: Some(ReservationRequest {
                amount_sat: reservation,
                spendable_sat,
            }),
            max_unpaid_orders_per_peer: Some(self.config.limits.max_unpaid_orders_per_peer),
        };
        let created = match (token, account) {
            (_, Some(_)) => {
                let ticket = self.ticket_of(&order.id);
                self.book.create_customer_order(&order, &admission, &ticket)
            }
            (Some(token), None) => self.book.create_pay_first_order(&order, &admission, token),
            (None, None) => self.book.create_order(&order, &admission),
        };
        created.map_err(|e| store_error_to_rpc(&e))?;
        tracing::info!(
            order = %order.id,
            client = ?order.client_node_id,
            lsp_balance_sat = params.lsp_balance_sat,
            client_balance_sat = params.client_balance_sat,
            order_total_sat = order.price.order_total_sat,
            credit_used_sat = credit_used,
            onchain = order.onchain.is_some(),
            "order created"
        );
        Ok(order)
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

    fn order_invoice(
        &self,
        id: &OrderId,
        description: String,
        amount_sat: u64,
    ) -> Result<String, RpcError> {
        let description = Description::new(description)
            .map_err(|_| RpcError::new(rpc::INTERNAL_ERROR, "Internal error"))?;
        let options = &self.config.options;
        let invoice = self
            .node
            .invoices
            .create(InvoiceRequest {
                amount_msat: Some(amount_sat.saturating_mul(1_000)),
                description,
                expiry_secs: u32::try_from(options.invoice_expiry_secs).unwrap_or(u32::MAX),
                min_final_cltv_expiry_delta: Some(self.config.invoice_min_final_cltv_expiry_delta),
            })
            .map_err(|e| {
                tracing::error!(order = %id, error = %e, "could not create the order invoice");
                RpcError::new(rpc::INTERNAL_ERROR, "Internal error")
            })?;
        Ok(invoice.text)
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
