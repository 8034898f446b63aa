//! Taking new orders: the checks every new order passes first, its price and payment options
//! (the HOLD invoice, an on-chain address), and its write, through the order book's group
//! commit, answered once durable.
//!
//! In order (its params already checked by the guard, the refund address valid on our
//! network): the token is checked per [`TokenMode`] (error 102); both prices come from
//! [`crate::lsps1::pricing::price`] at the fee rate that confirms the funding within
//! `funding_confirms_within_blocks`; the liquidity guard refuses what the wallet cannot fund
//! (error 1, nothing reserved); then the HOLD invoice (an LDK invoice whose
//! HTLC the service holds instead of claiming) and a fresh wallet address per order are made,
//! and [`OrderBook::create_order`](crate::lsps1::store::OrderBook::create_order) commits the
//! order with its coupon redemption and reservation. Only then is the order returned to be
//! answered.

use std::sync::Arc;

use bitcoin::Address;
use lightning_invoice::Description;

use crate::config::lsps1::TokenMode;
use crate::lsps1::claims::ClaimToken;
use crate::lsps1::customers::Account;
use crate::lsps1::liquidity::{self, ReservationRequest};
use crate::lsps1::new_orders::Admission;
use crate::lsps1::order::{
    Bolt11Payment, OnchainPayment, Order, OrderCustomer, OrderId, OrderState, PaymentState,
};
use crate::lsps1::pricing::{PaymentMethod, PriceBreakdown};
use crate::lsps1::rpc::{self, RpcError};
use crate::lsps1::service::{internal_error, store_error_to_rpc, NewOrder, OrderService};
use crate::node::invoice::InvoiceRequest;

impl OrderService {
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

    /// [`Self::create_order`] for an async caller: the order is made on the blocking pool,
    /// and its write then waits for the group commit without holding a thread.
    pub async fn create_order_async(
        self: &Arc<Self>,
        request: NewOrder,
    ) -> Result<Order, RpcError> {
        let service = Arc::clone(self);
        let drafted = tokio::task::spawn_blocking(move || {
            let (order, admission) = service.draft_order(request, None)?;
            let write = service
                .book
                .new_order_write(&order, &admission, |_| Ok(()))
                .map_err(|e| store_error_to_rpc(&e))?;
            Ok::<_, RpcError>((order, write))
        })
        .await;
        let (order, write) = match drafted {
            Ok(drafted) => drafted?,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        };
        self.book
            .write_in_group_async(write)
            .await
            .map_err(|e| store_error_to_rpc(&e))?;
        log_created(&order);
        Ok(order)
    }

    /// Creates an order (a pay-first one with `token`; a customer's with `account`, pay-first
    /// with the ticket derived from its id).
    pub(crate) fn new_order(
        &self,
        request: NewOrder,
        token: Option<&ClaimToken>,
        account: Option<&Account>,
    ) -> Result<Order, RpcError> {
        let (order, admission) = self.draft_order(request, account)?;
        let created = match (token, account) {
            (_, Some(_)) => {
                let ticket = self.ticket_of(&order.id);
                self.book.create_customer_order(&order, &admission, &ticket)
            }
            (Some(token), None) => self.book.create_pay_first_order(&order, &admission, token),
            (None, None) => self.book.create_order(&order, &admission),
        };
        created.map_err(|e| store_error_to_rpc(&e))?;
        log_created(&order);
        Ok(order)
    }

    /// The order `request` asks for (a customer's with `account`), priced and with its
    /// payment options made, and the checks its write must pass; nothing is stored.
    fn draft_order(
        &self,
        request: NewOrder,
        account: Option<&Account>,
    ) -> Result<(Order, Admission), RpcError> {
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
        Ok((order, admission))
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
}

fn log_created(order: &Order) {
    tracing::info!(
        order = %order.id,
        client = ?order.client_node_id,
        lsp_balance_sat = order.params.lsp_balance_sat,
        client_balance_sat = order.params.client_balance_sat,
        order_total_sat = order.price.order_total_sat,
        credit_used_sat = order.customer.as_ref().map_or(0, |c| c.credit_used_sat),
        onchain = order.onchain.is_some(),
        "order created"
    );
}
