//! The order service's customer-account side: quotes and orders for a customer
//! ([`crate::lsps1::customers`]), paid from its credit first, and the customer's cancel.
//!
//! - A customer's order is pay-first ([`crate::lsps1::claims`]): its claim ticket is derived
//!   from the node's ticket key and the order id ([`ClaimToken::derived`]), so the customer
//!   can be shown it whenever it asks while the book keeps only its hash.
//! - Credit pays first (`credit_used`, at most the Lightning total); the invoice asks for the
//!   rest. Credit that covers it all leaves the order without a payment option: it is paid
//!   at once. The debit is written with the order ([`OrderBook::create_customer_order`]); a
//!   balance spent meanwhile by another order refuses this one, so credit is never overdrawn.
//! - The customer's discount (percent of the service fee) applies when the order names no
//!   coupon.
//! - A failed order gives back the credit it used (in the transaction that fails it). A
//!   customer's cancel of an order whose payment is held keeps that payment as credit
//!   ([`CancelTo::Credit`]: the HTLC is taken, the order FAILED, payment and used credit
//!   credited, all in one transaction; the HTLC is claimed after it, and again on every pass
//!   until LDK reports it claimed), or returns it ([`CancelTo::Payment`]: the HTLC is failed
//!   back, the used credit credited). Either is refused once the channel's open is under way.

use crate::lsps1::claims::ClaimToken;
use crate::lsps1::coupons::Discount;
use crate::lsps1::customer_orders::CustomerOrder;
use crate::lsps1::customers::{Account, Customer};
use crate::lsps1::fulfil::{CancelRefused, Canceller};
use crate::lsps1::order::{Order, OrderEvent, OrderId, OrderParams, OrderState, PaymentState};
use crate::lsps1::pricing::{PaymentMethod, PriceBreakdown};
use crate::lsps1::rpc::{self, RpcError};
use crate::lsps1::service::{internal_error, NewOrder, OrderService};
#[cfg(doc)]
use crate::lsps1::store::OrderBook;

/// A price for a customer: the price, the credit that would pay first, and what is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountQuote {
    pub price: PriceBreakdown,
    pub credit_used_sat: u64,
    pub amount_due_sat: u64,
}

/// Where the payment of a cancelled customer order goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelTo {
    /// Kept as the customer's credit.
    Credit,
    /// Returned the way it came (the held HTLC failed back).
    Payment,
}

/// A cancelled customer order, and the credit the cancel gave.
#[derive(Debug, Clone)]
pub struct Cancelled {
    pub order: Order,
    pub credit_refund_sat: u64,
}

impl OrderService {
    /// What `customer`'s orders draw on now.
    fn account_of(&self, customer: &Customer) -> Result<Account, RpcError> {
        let credit_sat = self
            .book
            .credit_balance(&customer.id)
            .map_err(|e| internal_error("could not read the credit", &e))?;
        let discount = (customer.terms.discount_percent > 0)
            .then_some(Discount::Percent(customer.terms.discount_percent));
        Ok(Account {
            customer_id: customer.id.clone(),
            discount,
            credit_sat,
        })
    }

    /// The price of `params` for `customer` over Lightning, its credit applied.
    pub fn quote_for_customer(
        &self,
        customer: &Customer,
        params: &OrderParams,
    ) -> Result<AccountQuote, RpcError> {
        let account = self.account_of(customer)?;
        let price = self.price_with(params, PaymentMethod::Lightning, account.discount)?;
        let credit_used_sat = account.credit_sat.min(price.order_total_sat);
        Ok(AccountQuote {
            amount_due_sat: price.order_total_sat - credit_used_sat,
            credit_used_sat,
            price,
        })
    }

    /// Creates and persists `customer`'s order (pay-first: `request.client_node_id` is
    /// ignored); returns it with its claim ticket.
    pub fn create_customer_order(
        &self,
        customer: &Customer,
        request: NewOrder,
    ) -> Result<(Order, ClaimToken), RpcError> {
        let account = self.account_of(customer)?;
        let request = NewOrder {
            client_node_id: None,
            ..request
        };
        // The ticket is derived from the order id (`new_order` stores its hash).
        let order = self.new_order(request, None, Some(&account))?;
        let ticket = self.ticket_of(&order.id);
        Ok((order, ticket))
    }

    /// The claim ticket of customer order `id`.
    pub fn ticket_of(&self, id: &OrderId) -> ClaimToken {
        ClaimToken::derived(&self.node.ticket_key, id)
    }

    /// Order `id` of customer `customer_id`: another customer's is "not found", as is an
    /// unknown or malformed id.
    pub fn customer_order(&self, customer_id: &str, id: &str) -> Result<CustomerOrder, RpcError> {
        let not_found = || RpcError::new(rpc::ORDER_NOT_FOUND, "Order not found");
        let id = OrderId::parse(id).map_err(|_| not_found())?;
        self.book
            .customer_order(customer_id, &id)
            .map_err(|e| internal_error("could not read the order", &e))?
            .ok_or_else(not_found)
    }

    /// The credit order `id` gave back to its customer (a cancel or a failure).
    pub fn credit_returned_sat(&self, customer_id: &str, id: &OrderId) -> u64 {
        self.book
            .credit_entries(customer_id)
            .map(|entries| {
                entries
                    .iter()
                    .filter(|e| e.amount_sat > 0 && e.order_id.as_deref() == Some(id.as_str()))
                    .map(|e| e.amount_sat.unsigned_abs())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Cancels customer `customer_id`'s order `id` before its channel opens; what was paid
    /// goes per `to`.
    pub fn cancel_customer_order(
        &self,
        customer_id: &str,
        id: &str,
        to: CancelTo,
    ) -> Result<Cancelled, CancelRefused> {
        let found = self
            .customer_order(customer_id, id)
            .map_err(|e| match e.code {
                rpc::ORDER_NOT_FOUND => CancelRefused::Unknown,
                _ => CancelRefused::Store(e.message),
            })?;
        let order = found.order;
        if order.state != OrderState::Created {
            return Err(CancelRefused::TooLate(order.state));
        }
        let held = order
            .bolt11
            .as_ref()
            .is_some_and(|b| b.state == PaymentState::Hold);
        let reason = "cancelled by the customer";
        let cancelled = if held && to == CancelTo::Credit {
            // Marked cancelled in the transaction that fails it.
            self.cancel_to_credit(&order.id, reason)?
        } else {
            // Marked first: a crash before the order fails leaves it CREATED, shown by its
            // state, and the customer may cancel again.
            let mark = |cancelled| {
                self.book
                    .mark_customer_order_cancelled(&order.id, cancelled)
                    .map_err(|e| CancelRefused::Store(e.to_string()))
            };
            mark(true)?;
            match self.cancel_order(&order.id, reason, Canceller::Client) {
                Ok(cancelled) => cancelled,
                Err(refused) => {
                    mark(false)?;
                    return Err(refused);
                }
            }
        };
        tracing::info!(order = %order.id, to = ?to, "order cancelled by its customer");
        Ok(Cancelled {
            credit_refund_sat: self.credit_returned_sat(customer_id, &order.id),
            order: cancelled,
        })
    }

    /// FAILED with the held HTLC taken and credited, unless the open has started.
    fn cancel_to_credit(&self, id: &OrderId, reason: &str) -> Result<Order, CancelRefused> {
        let opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        let current = self
            .book
            .order(id)
            .map_err(|e| CancelRefused::Store(e.to_string()))?
            .ok_or(CancelRefused::Unknown)?;
        if current.state != OrderState::Created {
            return Err(CancelRefused::TooLate(current.state));
        }
        if !self.order_channels(id).is_empty() {
            return Err(CancelRefused::OpenUnderway);
        }
        let cancelled = self
            .book
            .apply(id, &OrderEvent::CancelledToCredit, reason)
            .map_err(|e| CancelRefused::Store(e.to_string()))?;
        drop(opening);
        crate::fault_points::crash_point("cancelled_to_credit.before_htlc_claimed");
        self.claim_order_htlc(&cancelled);
        Ok(cancelled)
    }

    /// Claims the HTLC of every order cancelled to credit that LDK has not reported claimed
    /// (a crash between the cancel and the claim).
    pub(crate) fn claim_cancelled_to_credit(&self) {
        let awaiting = match self.book.failed_orders_awaiting_claim() {
            Ok(awaiting) => awaiting,
            Err(error) => {
                tracing::error!(%error, "cannot read the cancelled orders awaiting their claim");
                return;
            }
        };
        for id in awaiting {
            if let Ok(Some(order)) = self.book.order(&id) {
                self.claim_order_htlc(&order);
            }
        }
    }
}
