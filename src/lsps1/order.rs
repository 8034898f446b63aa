//! The order: its data, its state machine and its bLIP-51 JSON rendering, as pure code.
//!
//! States (bLIP-51):
//! - `order_state`: CREATED -> COMPLETED (funding published; for an extension order, the
//!   extension recorded) | FAILED. Both ends are final.
//! - bolt11 payment: EXPECT_PAYMENT -> HOLD (HTLC arrived, not claimed) -> PAID (claimed after
//!   the funding transaction was broadcast) | REFUNDED (HTLC failed back). EXPECT_PAYMENT ->
//!   REFUNDED closes an option that was never paid (order failed or expired).
//! - onchain payment: EXPECT_PAYMENT -> PAID (confirmed, or 0-conf at a high enough fee rate) ->
//!   REFUNDED (refund confirmed); EXPECT_PAYMENT -> REFUNDED when the order fails with
//!   nothing, or too little, received (after the refund of any partial payment). PAID ->
//!   EXPECT_PAYMENT when the payment no longer counts before the channel is funded (a reorg
//!   took its confirmation, or a fee replacement took the 0-conf payment away).
//!
//! Orders change only through [`Order::apply`] with an [`OrderEvent`]; anything else is a
//! [`TransitionError`]. The order book persists the result and the event in one transaction.
//!
//! [`render`] produces the order exactly as bLIP-51 shows it (amounts as strings, RFC 3339
//! times, `channel` null until the funding transaction is published). It is the one renderer
//! for p2p and HTTP.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::PublicKey;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::lsps1::Lsps1Config;
use crate::lsps1::clock::rfc3339;
use crate::lsps1::pricing::PriceBreakdown;

/// Random bytes in a generated order id (128 bits, rendered as 32 hex characters).
const ORDER_ID_RANDOM_BYTES: usize = 16;

/// An order's identifier: unguessable, since knowing it is enough to read the order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(String);

impl OrderId {
    /// A fresh id for an order created at `at`: the time in milliseconds since the Unix epoch
    /// as 12 hex digits, then 128 bits from `rng` as 32 (production: a cryptographically secure
    /// generator such as `rand::rngs::OsRng`; tests: a seeded one).
    ///
    /// The random part makes the id unguessable. The time in front makes a new order's id sort
    /// after the ids before it, so every index keyed by order id (the orders', the events', the
    /// reservations') grows at its end: with random ids each new order dirtied one page of
    /// each such index anywhere in the file, written to the WAL and again at checkpoint.
    pub fn generate<R: RngCore + ?Sized>(at: SystemTime, rng: &mut R) -> OrderId {
        let millis = at
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_millis())
            .unwrap_or(0);
        let mut bytes = [0u8; ORDER_ID_RANDOM_BYTES];
        rng.fill_bytes(&mut bytes);
        OrderId(format!("{millis:012x}{}", hex::encode(bytes)))
    }

    /// Accepts an id received from a client: 1 to 64 characters of `[A-Za-z0-9_-]`.
    pub fn parse(id: &str) -> Result<OrderId, InvalidOrderId> {
        if crate::api::is_order_id(id) {
            Ok(OrderId(id.to_string()))
        } else {
            Err(InvalidOrderId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an order id is 1 to 64 letters, digits, '-' or '_'")]
pub struct InvalidOrderId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderState {
    Created,
    Completed,
    Failed,
}

impl OrderState {
    pub const ALL: [OrderState; 3] = [
        OrderState::Created,
        OrderState::Completed,
        OrderState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Created => "CREATED",
            OrderState::Completed => "COMPLETED",
            OrderState::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<OrderState> {
        OrderState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        self != OrderState::Created
    }

    /// The order-level transition table.
    pub fn may_become(self, to: OrderState) -> bool {
        matches!(
            (self, to),
            (OrderState::Created, OrderState::Completed)
                | (OrderState::Created, OrderState::Failed)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentState {
    ExpectPayment,
    Hold,
    Paid,
    Refunded,
}

impl PaymentState {
    pub const ALL: [PaymentState; 4] = [
        PaymentState::ExpectPayment,
        PaymentState::Hold,
        PaymentState::Paid,
        PaymentState::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::ExpectPayment => "EXPECT_PAYMENT",
            PaymentState::Hold => "HOLD",
            PaymentState::Paid => "PAID",
            PaymentState::Refunded => "REFUNDED",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentState> {
        PaymentState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// Which payment option a payment state belongs to; each has its own transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentKind {
    Bolt11,
    Onchain,
}

impl PaymentKind {
    /// The payment-level transition table (see the module doc).
    pub fn may_move(self, from: PaymentState, to: PaymentState) -> bool {
        use PaymentState::*;
        match self {
            PaymentKind::Bolt11 => matches!(
                (from, to),
                (ExpectPayment, Hold) | (ExpectPayment, Refunded) | (Hold, Paid) | (Hold, Refunded)
            ),
            PaymentKind::Onchain => {
                matches!(
                    (from, to),
                    (ExpectPayment, Paid)
                        | (ExpectPayment, Refunded)
                        | (Paid, Refunded)
                        | (Paid, ExpectPayment)
                )
            }
        }
    }
}

/// Where the order came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interface {
    P2p,
    /// The LSPS1 HTTP dialects (Olympus, Megalith, Kaleidoswap) and the LSPS7 mirror.
    Http,
    /// The open LSP API's `/channel/buy` (pay-first orders).
    OpenLsp,
    /// The Flow API's `/flow/create` (customer accounts).
    Flow,
}

impl Interface {
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::P2p => "p2p",
            Interface::Http => "http",
            Interface::OpenLsp => "open_lsp",
            Interface::Flow => "flow",
        }
    }
}

/// The client's request, echoed back verbatim in every rendering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderParams {
    pub lsp_balance_sat: u64,
    pub client_balance_sat: u64,
    pub required_channel_confirmations: u16,
    pub funding_confirms_within_blocks: u16,
    pub channel_expiry_blocks: u32,
    pub token: Option<String>,
    pub announce_channel: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bolt11Payment {
    pub state: PaymentState,
    /// Unix seconds.
    pub expires_at: u64,
    pub fee_total_sat: u64,
    pub order_total_sat: u64,
    pub invoice: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnchainPayment {
    pub state: PaymentState,
    /// Unix seconds.
    pub expires_at: u64,
    pub fee_total_sat: u64,
    pub order_total_sat: u64,
    pub address: String,
    pub min_onchain_payment_confirmations: u16,
    pub min_fee_for_0conf_sat_per_vb: u32,
    pub refund_onchain_address: String,
}

/// The channel, once its funding transaction is published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInfo {
    /// Unix seconds.
    pub funded_at: u64,
    /// `txid:vout`.
    pub funding_outpoint: String,
    /// Unix seconds; the earliest time the LSP may close the channel.
    pub expires_at: u64,
}

/// One order, everything the order book keeps about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    /// The node the channel goes to; `None` for a pay-first order until a claim names it
    /// ([`OrderEvent::Claimed`]). A channel is only ever opened to a named node.
    pub client_node_id: Option<PublicKey>,
    pub params: OrderParams,
    pub refund_onchain_address: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds after which an unpaid order fails.
    pub expires_at: u64,
    pub state: OrderState,
    pub bolt11: Option<Bolt11Payment>,
    pub onchain: Option<OnchainPayment>,
    pub channel: Option<ChannelInfo>,
    /// The price as computed for the bolt11 option (the on-chain option adds its refund
    /// reserve, shown in its own `fee_total_sat`).
    pub price: PriceBreakdown,
    pub coupon_code: Option<String>,
    pub source: Interface,
    pub email: Option<String>,
    /// Unix seconds of the last change.
    pub updated_at: u64,
    /// Set on an extension order (LSPS7): what it buys. Its `channel` is then the leased
    /// channel, filled in when the extension is recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<ExtensionTerms>,
    /// The customer account that bought the order (the Flow API), and the credit it used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<OrderCustomer>,
}

/// Whose account an order was bought with, and how much of its price came from the account's
/// credit ([`crate::lsps1::credit`]). The payment options ask for the rest; with none left the
/// order has no payment option and is paid from credit when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCustomer {
    pub customer_id: String,
    pub credit_used_sat: u64,
}

/// What an extension order (LSPS7) buys: more blocks for the lease of an earlier order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionTerms {
    /// The order whose lease is extended.
    pub lease_order_id: OrderId,
    /// The leased channel as the client named it (`BLOCKxTXxOUTPUT`).
    pub short_channel_id: String,
    /// Blocks bought.
    pub blocks: u32,
}

/// Something that happened to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum OrderEvent {
    /// An HTLC paying the bolt11 invoice in full arrived and is held unclaimed.
    Bolt11HtlcHeld,
    /// A pay-first order's buyer named the node its channel goes to. Once only, and only while
    /// the order is CREATED.
    Claimed { node_id: PublicKey },
    /// The on-chain payment reached the required confirmations (or qualified for 0-conf).
    OnchainPaymentConfirmed,
    /// The funding transaction was broadcast. A held HTLC is claimed with it (bolt11 -> PAID).
    ChannelFunded(ChannelInfo),
    /// An extension order's blocks were added to its lease (the leased channel given): the
    /// same transition as [`OrderEvent::ChannelFunded`].
    Extended(ChannelInfo),
    /// The order failed (open failed, expired, cancelled). A held HTLC is failed back at once
    /// (bolt11 -> REFUNDED). `onchain_refund_pending` is true when on-chain funds were received
    /// and still have to be sent back; the on-chain option then keeps its state until
    /// [`OrderEvent::OnchainRefunded`].
    Failed { onchain_refund_pending: bool },
    /// A customer cancelled its order before the channel opened and keeps what it paid as
    /// credit: FAILED, with the held HTLC taken (bolt11 HOLD -> PAID; an unpaid option ->
    /// REFUNDED). Only for an order bought with a customer account and not paid on-chain.
    CancelledToCredit,
    /// Every refund of on-chain funds is confirmed (or nothing was owed).
    OnchainRefunded,
    /// The on-chain payment no longer counts (reorganised out, or replaced) while the channel
    /// is not funded yet: the order waits for payment again.
    OnchainPaymentLost,
    /// The funding transaction of a completed order can no longer confirm (an input is gone),
    /// and its held HTLC was not claimed: the order fails after all (COMPLETED -> FAILED), the
    /// HTLC goes back (bolt11 PAID -> REFUNDED) and on-chain funds are refunded as for
    /// [`OrderEvent::Failed`].
    FundingLost { onchain_refund_pending: bool },
}

impl OrderEvent {
    pub fn name(&self) -> &'static str {
        match self {
            OrderEvent::Bolt11HtlcHeld => "bolt11_htlc_held",
            OrderEvent::Claimed { .. } => "claimed",
            OrderEvent::OnchainPaymentConfirmed => "onchain_payment_confirmed",
            OrderEvent::ChannelFunded(_) => "channel_funded",
            OrderEvent::Extended(_) => "extended",
            OrderEvent::Failed { .. } => "failed",
            OrderEvent::CancelledToCredit => "cancelled_to_credit",
            OrderEvent::OnchainRefunded => "onchain_refunded",
            OrderEvent::OnchainPaymentLost => "onchain_payment_lost",
            OrderEvent::FundingLost { .. } => "funding_lost",
        }
    }
}

/// An event that the order's current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("order {order} is {from} and cannot become {to}")]
    Order {
        order: OrderId,
        from: &'static str,
        to: &'static str,
    },
    #[error("the {kind} payment of order {order} is {from} and cannot become {to}")]
    Payment {
        order: OrderId,
        kind: &'static str,
        from: &'static str,
        to: &'static str,
    },
    #[error("order {order} has no {kind} payment option")]
    NoSuchOption { order: OrderId, kind: &'static str },
    #[error("order {order} cannot open its channel before it is paid")]
    NotPaid { order: OrderId },
    #[error("order {order} received on-chain funds that must be refunded before it can fail")]
    UnrefundedOnchainFunds { order: OrderId },
    #[error("order {order} is already paid by {by}; a second payment is returned, never taken")]
    AlreadyPaid { order: OrderId, by: &'static str },
    #[error("order {order} already names the node its channel goes to")]
    AlreadyClaimed { order: OrderId },
    #[error("order {order} was not bought with a customer account, so it has no credit to keep")]
    NoCustomer { order: OrderId },
}

impl Order {
    /// A compact description of all states, for the event history (`CREATED bolt11=HOLD ...`).
    pub fn state_summary(&self) -> String {
        let mut summary = self.state.as_str().to_string();
        if let Some(b) = &self.bolt11 {
            summary.push_str(" bolt11=");
            summary.push_str(b.state.as_str());
        }
        if let Some(o) = &self.onchain {
            summary.push_str(" onchain=");
            summary.push_str(o.state.as_str());
        }
        summary
    }

    /// Whether the order is unpaid and past its expiry at `now`.
    /// Whether the order's price came wholly from its customer's credit (no payment option).
    pub fn paid_by_credit(&self) -> bool {
        self.bolt11.is_none()
            && self.onchain.is_none()
            && self
                .customer
                .as_ref()
                .is_some_and(|c| c.credit_used_sat > 0)
    }

    /// The credit this order used (0 for an order without a customer).
    pub fn credit_used_sat(&self) -> u64 {
        self.customer.as_ref().map_or(0, |c| c.credit_used_sat)
    }

    pub fn is_expired_unpaid(&self, now: u64) -> bool {
        let paid = self.paid_by_credit()
            || self
                .bolt11
                .as_ref()
                .is_some_and(|b| b.state != PaymentState::ExpectPayment)
            || self
                .onchain
                .as_ref()
                .is_some_and(|o| o.state != PaymentState::ExpectPayment);
        self.state == OrderState::Created && !paid && now >= self.expires_at
    }

    /// Applies `event` at time `now`, returning the updated order. Pure: the order book
    /// persists the result; an error leaves nothing changed.
    pub fn apply(&self, event: &OrderEvent, now: u64) -> Result<Order, TransitionError> {
        let mut next = self.clone();
        match event {
            OrderEvent::Bolt11HtlcHeld => {
                next.require_order_state(OrderState::Created)?;
                next.require_unpaid_by(PaymentKind::Onchain)?;
                next.move_payment(PaymentKind::Bolt11, PaymentState::Hold)?;
            }
            OrderEvent::Claimed { node_id } => {
                next.require_order_state(OrderState::Created)?;
                if self.client_node_id.is_some() {
                    return Err(TransitionError::AlreadyClaimed {
                        order: self.id.clone(),
                    });
                }
                next.client_node_id = Some(*node_id);
            }
            OrderEvent::OnchainPaymentConfirmed => {
                next.require_order_state(OrderState::Created)?;
                next.require_unpaid_by(PaymentKind::Bolt11)?;
                next.move_payment(PaymentKind::Onchain, PaymentState::Paid)?;
            }
            OrderEvent::ChannelFunded(channel) | OrderEvent::Extended(channel) => {
                let held = self
                    .bolt11
                    .as_ref()
                    .is_some_and(|b| b.state == PaymentState::Hold);
                let paid_onchain = self
                    .onchain
                    .as_ref()
                    .is_some_and(|o| o.state == PaymentState::Paid);
                next.move_order(OrderState::Completed)?;
                if held {
                    next.move_payment(PaymentKind::Bolt11, PaymentState::Paid)?;
                } else if !paid_onchain && !self.paid_by_credit() {
                    return Err(TransitionError::NotPaid {
                        order: self.id.clone(),
                    });
                }
                next.channel = Some(channel.clone());
            }
            OrderEvent::Failed {
                onchain_refund_pending,
            } => {
                next.move_order(OrderState::Failed)?;
                if next.bolt11.is_some() {
                    next.move_payment(PaymentKind::Bolt11, PaymentState::Refunded)?;
                }
                if let Some(onchain) = &self.onchain {
                    if !onchain_refund_pending {
                        if onchain.state == PaymentState::Paid {
                            return Err(TransitionError::UnrefundedOnchainFunds {
                                order: self.id.clone(),
                            });
                        }
                        next.move_payment(PaymentKind::Onchain, PaymentState::Refunded)?;
                    }
                }
            }
            OrderEvent::CancelledToCredit => {
                next.require_order_state(OrderState::Created)?;
                if self.customer.is_none() {
                    return Err(TransitionError::NoCustomer {
                        order: self.id.clone(),
                    });
                }
                next.require_unpaid_by(PaymentKind::Onchain)?;
                next.move_order(OrderState::Failed)?;
                if let Some(bolt11) = &self.bolt11 {
                    let to = match bolt11.state {
                        PaymentState::Hold => PaymentState::Paid,
                        _ => PaymentState::Refunded,
                    };
                    next.move_payment(PaymentKind::Bolt11, to)?;
                }
                if next.onchain.is_some() {
                    next.move_payment(PaymentKind::Onchain, PaymentState::Refunded)?;
                }
            }
            OrderEvent::OnchainRefunded => {
                next.require_order_state(OrderState::Failed)?;
                next.move_payment(PaymentKind::Onchain, PaymentState::Refunded)?;
            }
            OrderEvent::OnchainPaymentLost => {
                next.require_order_state(OrderState::Created)?;
                next.move_payment(PaymentKind::Onchain, PaymentState::ExpectPayment)?;
            }
            OrderEvent::FundingLost {
                onchain_refund_pending,
            } => {
                // The one way out of COMPLETED; the caller has checked that no HTLC was claimed.
                next.require_order_state(OrderState::Completed)?;
                next.state = OrderState::Failed;
                if let Some(bolt11) = next.bolt11.as_mut() {
                    if matches!(bolt11.state, PaymentState::Paid | PaymentState::Hold) {
                        bolt11.state = PaymentState::Refunded;
                    } else {
                        next.move_payment(PaymentKind::Bolt11, PaymentState::Refunded)?;
                    }
                }
                if !onchain_refund_pending && next.onchain.is_some() {
                    next.move_payment(PaymentKind::Onchain, PaymentState::Refunded)?;
                }
            }
        }
        next.updated_at = now;
        Ok(next)
    }

    /// An order is paid once: refuses taking a payment when `other` has already been taken.
    fn require_unpaid_by(&self, other: PaymentKind) -> Result<(), TransitionError> {
        let (taken, by) = match other {
            PaymentKind::Bolt11 => (
                self.bolt11
                    .as_ref()
                    .is_some_and(|b| matches!(b.state, PaymentState::Hold | PaymentState::Paid)),
                "bolt11",
            ),
            PaymentKind::Onchain => (
                self.onchain
                    .as_ref()
                    .is_some_and(|o| o.state == PaymentState::Paid),
                "onchain",
            ),
        };
        match taken {
            true => Err(TransitionError::AlreadyPaid {
                order: self.id.clone(),
                by,
            }),
            false => Ok(()),
        }
    }

    fn require_order_state(&self, required: OrderState) -> Result<(), TransitionError> {
        if self.state == required {
            Ok(())
        } else {
            Err(TransitionError::Order {
                order: self.id.clone(),
                from: self.state.as_str(),
                to: required.as_str(),
            })
        }
    }

    fn move_order(&mut self, to: OrderState) -> Result<(), TransitionError> {
        if !self.state.may_become(to) {
            return Err(TransitionError::Order {
                order: self.id.clone(),
                from: self.state.as_str(),
                to: to.as_str(),
            });
        }
        self.state = to;
        Ok(())
    }

    fn move_payment(&mut self, kind: PaymentKind, to: PaymentState) -> Result<(), TransitionError> {
        let (state, kind_name) = match kind {
            PaymentKind::Bolt11 => (self.bolt11.as_mut().map(|b| &mut b.state), "bolt11"),
            PaymentKind::Onchain => (self.onchain.as_mut().map(|o| &mut o.state), "onchain"),
        };
        let Some(state) = state else {
            return Err(TransitionError::NoSuchOption {
                order: self.id.clone(),
                kind: kind_name,
            });
        };
        if !kind.may_move(*state, to) {
            return Err(TransitionError::Payment {
                order: self.id.clone(),
                kind: kind_name,
                from: state.as_str(),
                to: to.as_str(),
            });
        }
        *state = to;
        Ok(())
    }
}

/// How payment states are spelled for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PaymentStateDialect {
    /// bLIP-51 as written: EXPECT_PAYMENT, HOLD, PAID, REFUNDED.
    #[default]
    Blip51,
    /// For clients whose payment-state enum has no HOLD (lightning-liquidity 0.2.x, used by
    /// ldk-node 0.7.1): HOLD is spelled PAID, which that enum documents as "a sufficient
    /// payment has been received". An unknown variant would make such a client fail to parse
    /// the whole message and stop listening to us.
    WithoutHold,
}

impl PaymentStateDialect {
    /// How payment states are spelled in p2p answers to `peer`.
    pub fn for_peer(config: &Lsps1Config, peer: &PublicKey) -> Self {
        if config.spells_hold_as_paid(peer) {
            PaymentStateDialect::WithoutHold
        } else {
            PaymentStateDialect::Blip51
        }
    }

    /// The word this dialect uses for `state`.
    pub fn spell(self, state: PaymentState) -> &'static str {
        match (self, state) {
            (PaymentStateDialect::WithoutHold, PaymentState::Hold) => PaymentState::Paid.as_str(),
            _ => state.as_str(),
        }
    }
}

/// The order as bLIP-51 renders it (create_order and get_order results).
pub fn render(order: &Order, dialect: PaymentStateDialect) -> Value {
    let channel = match &order.channel {
        Some(c) => json!({
            "funded_at": rfc3339(c.funded_at),
            "funding_outpoint": c.funding_outpoint,
            "expires_at": rfc3339(c.expires_at),
        }),
        None => Value::Null,
    };
    let p = &order.params;
    json!({
        "order_id": order.id.as_str(),
        "lsp_balance_sat": p.lsp_balance_sat.to_string(),
        "client_balance_sat": p.client_balance_sat.to_string(),
        "required_channel_confirmations": p.required_channel_confirmations,
        "funding_confirms_within_blocks": p.funding_confirms_within_blocks,
        "channel_expiry_blocks": p.channel_expiry_blocks,
        "token": p.token,
        "created_at": rfc3339(order.created_at),
        "announce_channel": p.announce_channel,
        "order_state": order.state.as_str(),
        "payment": render_payment(order, dialect),
        "channel": channel,
    })
}

/// The bLIP-51 `payment` object of `order` (LSPS7 extension orders use the same one).
pub fn render_payment(order: &Order, dialect: PaymentStateDialect) -> Value {
    let mut payment = serde_json::Map::new();
    if let Some(b) = &order.bolt11 {
        payment.insert(
            "bolt11".into(),
            json!({
                "state": dialect.spell(b.state),
                "expires_at": rfc3339(b.expires_at),
                "fee_total_sat": b.fee_total_sat.to_string(),
                "order_total_sat": b.order_total_sat.to_string(),
                "invoice": b.invoice,
            }),
        );
    }
    if let Some(o) = &order.onchain {
        payment.insert(
            "onchain".into(),
            json!({
                "state": dialect.spell(o.state),
                "expires_at": rfc3339(o.expires_at),
                "fee_total_sat": o.fee_total_sat.to_string(),
                "order_total_sat": o.order_total_sat.to_string(),
                "address": o.address,
                "min_onchain_payment_confirmations": o.min_onchain_payment_confirmations,
                "min_fee_for_0conf": o.min_fee_for_0conf_sat_per_vb,
                "refund_onchain_address": o.refund_onchain_address,
            }),
        );
    }
    Value::Object(payment)
}

#[cfg(test)]
pub(crate) mod tests;
