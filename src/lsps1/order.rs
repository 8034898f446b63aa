//! The order: its data, its state machine and its bLIP-51 JSON rendering, as pure code.
//!
//! States (bLIP-51):
//! - `order_state`: CREATED -> COMPLETED (funding published) | FAILED. Both ends are final.
//! - bolt11 payment: EXPECT_PAYMENT -> HOLD (HTLC arrived, not claimed) -> PAID (claimed after
//!   the funding transaction was broadcast) | REFUNDED (HTLC failed back). EXPECT_PAYMENT ->
//!   REFUNDED closes an option that was never paid (order failed or expired).
//! - onchain payment: EXPECT_PAYMENT -> PAID (confirmed, or 0-conf at a high enough fee rate) ->
//!   REFUNDED (refund transaction sent); EXPECT_PAYMENT -> REFUNDED when the order fails with
//!   nothing, or too little, received (after the refund of any partial payment).
//!
//! Orders change only through [`Order::apply`] with an [`OrderEvent`]; anything else is a
//! [`TransitionError`]. The order book persists the result and the event in one transaction.
//!
//! [`render`] produces the order exactly as bLIP-51 shows it (amounts as strings, RFC 3339
//! times, `channel` null until the funding transaction is published). It is the one renderer
//! for p2p and HTTP.

use std::fmt;

use bitcoin::secp256k1::PublicKey;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::lsps1::Lsps1Config;
use crate::lsps1::clock::rfc3339;
use crate::lsps1::pricing::PriceBreakdown;

/// Random bytes in a generated order id (128 bits, rendered as 32 hex characters).
const ORDER_ID_RANDOM_BYTES: usize = 16;

/// An order's identifier: random and unguessable, since knowing it is enough to read the order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(String);

impl OrderId {
    /// A fresh id from `rng` (production: a cryptographically secure generator such as
    /// `rand::rngs::OsRng`; tests: a seeded one).
    pub fn random<R: RngCore + ?Sized>(rng: &mut R) -> OrderId {
        let mut bytes = [0u8; ORDER_ID_RANDOM_BYTES];
        rng.fill_bytes(&mut bytes);
        OrderId(hex::encode(bytes))
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
                    (ExpectPayment, Paid) | (ExpectPayment, Refunded) | (Paid, Refunded)
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
    Http,
}

impl Interface {
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::P2p => "p2p",
            Interface::Http => "http",
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
    pub client_node_id: PublicKey,
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
}

/// Something that happened to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum OrderEvent {
    /// An HTLC paying the bolt11 invoice in full arrived and is held unclaimed.
    Bolt11HtlcHeld,
    /// The on-chain payment reached the required confirmations (or qualified for 0-conf).
    OnchainPaymentConfirmed,
    /// The funding transaction was broadcast. A held HTLC is claimed with it (bolt11 -> PAID).
    ChannelFunded(ChannelInfo),
    /// The order failed (open failed, expired, cancelled). A held HTLC is failed back at once
    /// (bolt11 -> REFUNDED). `onchain_refund_pending` is true when on-chain funds were received
    /// and still have to be sent back; the on-chain option then keeps its state until
    /// [`OrderEvent::OnchainRefunded`].
    Failed { onchain_refund_pending: bool },
    /// The refund of on-chain funds was broadcast.
    OnchainRefunded,
}

impl OrderEvent {
    pub fn name(&self) -> &'static str {
        match self {
            OrderEvent::Bolt11HtlcHeld => "bolt11_htlc_held",
            OrderEvent::OnchainPaymentConfirmed => "onchain_payment_confirmed",
            OrderEvent::ChannelFunded(_) => "channel_funded",
            OrderEvent::Failed { .. } => "failed",
            OrderEvent::OnchainRefunded => "onchain_refunded",
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
    pub fn is_expired_unpaid(&self, now: u64) -> bool {
        let paid = self
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
                next.move_payment(PaymentKind::Bolt11, PaymentState::Hold)?;
            }
            OrderEvent::OnchainPaymentConfirmed => {
                next.require_order_state(OrderState::Created)?;
                next.move_payment(PaymentKind::Onchain, PaymentState::Paid)?;
            }
            OrderEvent::ChannelFunded(channel) => {
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
                } else if !paid_onchain {
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
            OrderEvent::OnchainRefunded => {
                next.require_order_state(OrderState::Failed)?;
                next.move_payment(PaymentKind::Onchain, PaymentState::Refunded)?;
            }
        }
        next.updated_at = now;
        Ok(next)
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
        "payment": Value::Object(payment),
        "channel": channel,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    pub(crate) fn client_key() -> PublicKey {
        let secp = bitcoin::secp256k1::Secp256k1::new();
        let secret = bitcoin::secp256k1::SecretKey::from_slice(&[7u8; 32]).unwrap();
        PublicKey::from_secret_key(&secp, &secret)
    }

    pub(crate) fn sample_order(with_bolt11: bool, with_onchain: bool) -> Order {
        Order {
            id: OrderId::parse("order-1").unwrap(),
            client_node_id: client_key(),
            params: OrderParams {
                lsp_balance_sat: 1_000_000,
                client_balance_sat: 100_000,
                required_channel_confirmations: 0,
                funding_confirms_within_blocks: 6,
                channel_expiry_blocks: 4_320,
                token: None,
                announce_channel: true,
            },
            refund_onchain_address: with_onchain.then(|| "bcrt1qrefund".to_string()),
            created_at: 1_795_321_324,
            expires_at: 1_795_324_924,
            state: OrderState::Created,
            bolt11: with_bolt11.then(|| Bolt11Payment {
                state: PaymentState::ExpectPayment,
                expires_at: 1_795_324_924,
                fee_total_sat: 4_745,
                order_total_sat: 104_745,
                invoice: "lnbcrt1invoice".into(),
            }),
            onchain: with_onchain.then(|| OnchainPayment {
                state: PaymentState::ExpectPayment,
                expires_at: 1_795_324_924,
                fee_total_sat: 5_960,
                order_total_sat: 105_960,
                address: "bcrt1qpayhere".into(),
                min_onchain_payment_confirmations: 1,
                min_fee_for_0conf_sat_per_vb: 25,
                refund_onchain_address: "bcrt1qrefund".into(),
            }),
            channel: None,
            price: PriceBreakdown {
                base_fee_sat: 1_000,
                proportional_fee_sat: 1_000,
                lease_fee_sat: 822,
                onchain_fee_sat: 2_205,
                refund_reserve_sat: 0,
                discount_sat: 282,
                fee_total_sat: 4_745,
                order_total_sat: 104_745,
            },
            coupon_code: None,
            source: Interface::P2p,
            email: None,
            updated_at: 1_795_321_324,
        }
    }

    fn channel() -> ChannelInfo {
        ChannelInfo {
            funded_at: 1_795_322_000,
            funding_outpoint: format!("{}:1", "ab".repeat(32)),
            expires_at: 1_795_322_000 + 4_320 * 600,
        }
    }

    #[test]
    fn order_ids_are_random_bounded_and_reproducible_with_a_seed() {
        let a = OrderId::random(&mut StdRng::seed_from_u64(1));
        let b = OrderId::random(&mut StdRng::seed_from_u64(1));
        let c = OrderId::random(&mut StdRng::seed_from_u64(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.as_str().len(), 32);
        assert!(OrderId::parse(a.as_str()).is_ok());
        let mut rng = rand::rngs::OsRng;
        let ids: std::collections::HashSet<_> =
            (0..1000).map(|_| OrderId::random(&mut rng)).collect();
        assert_eq!(ids.len(), 1000);
        assert!(OrderId::parse("").is_err());
        assert!(OrderId::parse(&"a".repeat(65)).is_err());
        assert!(OrderId::parse(&"a".repeat(64)).is_ok());
        assert!(OrderId::parse("../etc").is_err());
    }

    #[test]
    fn order_state_table_is_exactly_the_documented_one() {
        for from in OrderState::ALL {
            for to in OrderState::ALL {
                let expected = from == OrderState::Created && to != OrderState::Created;
                assert_eq!(from.may_become(to), expected, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn payment_state_tables_are_exactly_the_documented_ones() {
        use PaymentState::*;
        let bolt11 = [
            (ExpectPayment, Hold),
            (ExpectPayment, Refunded),
            (Hold, Paid),
            (Hold, Refunded),
        ];
        let onchain = [
            (ExpectPayment, Paid),
            (ExpectPayment, Refunded),
            (Paid, Refunded),
        ];
        for (kind, allowed) in [
            (PaymentKind::Bolt11, &bolt11[..]),
            (PaymentKind::Onchain, &onchain[..]),
        ] {
            for from in PaymentState::ALL {
                for to in PaymentState::ALL {
                    assert_eq!(
                        kind.may_move(from, to),
                        allowed.contains(&(from, to)),
                        "{kind:?}: {from:?} -> {to:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn state_names_round_trip() {
        for s in OrderState::ALL {
            assert_eq!(OrderState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        for s in PaymentState::ALL {
            assert_eq!(PaymentState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        assert_eq!(OrderState::parse("created"), None);
    }

    #[test]
    fn lightning_happy_path() {
        let order = sample_order(true, true);
        let held = order.apply(&OrderEvent::Bolt11HtlcHeld, 10).unwrap();
        assert_eq!(held.bolt11.as_ref().unwrap().state, PaymentState::Hold);
        assert_eq!(held.updated_at, 10);
        assert_eq!(
            held.state_summary(),
            "CREATED bolt11=HOLD onchain=EXPECT_PAYMENT"
        );
        let done = held
            .apply(&OrderEvent::ChannelFunded(channel()), 11)
            .unwrap();
        assert_eq!(done.state, OrderState::Completed);
        assert_eq!(done.bolt11.as_ref().unwrap().state, PaymentState::Paid);
        assert_eq!(done.channel, Some(channel()));
    }

    #[test]
    fn onchain_happy_path_and_refund_path() {
        let order = sample_order(true, true);
        let paid = order
            .apply(&OrderEvent::OnchainPaymentConfirmed, 1)
            .unwrap();
        let done = paid
            .apply(&OrderEvent::ChannelFunded(channel()), 2)
            .unwrap();
        assert_eq!(done.state, OrderState::Completed);
        // The unused bolt11 option stays as it was; it was never paid.
        assert_eq!(
            done.bolt11.as_ref().unwrap().state,
            PaymentState::ExpectPayment
        );

        // Open failed after the on-chain payment: fail first, refund later.
        let failed = paid
            .apply(
                &OrderEvent::Failed {
                    onchain_refund_pending: true,
                },
                3,
            )
            .unwrap();
        assert_eq!(failed.state, OrderState::Failed);
        assert_eq!(failed.onchain.as_ref().unwrap().state, PaymentState::Paid);
        assert_eq!(
            failed.bolt11.as_ref().unwrap().state,
            PaymentState::Refunded
        );
        let refunded = failed.apply(&OrderEvent::OnchainRefunded, 4).unwrap();
        assert_eq!(
            refunded.onchain.as_ref().unwrap().state,
            PaymentState::Refunded
        );
        // Forgetting paid on-chain funds is refused.
        assert!(matches!(
            paid.apply(
                &OrderEvent::Failed {
                    onchain_refund_pending: false
                },
                3
            ),
            Err(TransitionError::UnrefundedOnchainFunds { .. })
        ));
    }

    #[test]
    fn expiry_with_nothing_paid_closes_both_options() {
        let order = sample_order(true, true);
        assert!(!order.is_expired_unpaid(order.expires_at - 1));
        assert!(order.is_expired_unpaid(order.expires_at));
        let failed = order
            .apply(
                &OrderEvent::Failed {
                    onchain_refund_pending: false,
                },
                5,
            )
            .unwrap();
        assert_eq!(
            failed.state_summary(),
            "FAILED bolt11=REFUNDED onchain=REFUNDED"
        );
        let held = order.apply(&OrderEvent::Bolt11HtlcHeld, 1).unwrap();
        assert!(
            !held.is_expired_unpaid(held.expires_at + 1),
            "a held HTLC is a payment"
        );
    }

    #[test]
    fn every_event_is_checked_against_every_reachable_state() {
        // Enumerate reachable orders by breadth-first application of all events, then check
        // that every (state, event) pair either succeeds with a legal move or fails leaving
        // nothing changed.
        let events = vec![
            OrderEvent::Bolt11HtlcHeld,
            OrderEvent::OnchainPaymentConfirmed,
            OrderEvent::ChannelFunded(channel()),
            OrderEvent::Failed {
                onchain_refund_pending: false,
            },
            OrderEvent::Failed {
                onchain_refund_pending: true,
            },
            OrderEvent::OnchainRefunded,
        ];
        let mut seen: Vec<Order> = Vec::new();
        let mut queue: Vec<Order> = vec![
            sample_order(true, true),
            sample_order(true, false),
            sample_order(false, true),
        ];
        let mut legal = 0;
        let mut illegal = 0;
        while let Some(order) = queue.pop() {
            if seen.contains(&order) {
                continue;
            }
            for event in &events {
                match order.apply(event, order.updated_at) {
                    Ok(next) => {
                        legal += 1;
                        assert!(order.state == next.state || order.state.may_become(next.state));
                        for (kind, before, after) in [
                            (
                                PaymentKind::Bolt11,
                                order.bolt11.as_ref().map(|b| b.state),
                                next.bolt11.as_ref().map(|b| b.state),
                            ),
                            (
                                PaymentKind::Onchain,
                                order.onchain.as_ref().map(|o| o.state),
                                next.onchain.as_ref().map(|o| o.state),
                            ),
                        ] {
                            if let (Some(b), Some(a)) = (before, after) {
                                assert!(
                                    a == b || kind.may_move(b, a),
                                    "{kind:?} {b:?}->{a:?} via {event:?}"
                                );
                            }
                        }
                        if next.state == OrderState::Completed {
                            assert!(next.channel.is_some());
                        }
                        queue.push(next);
                    }
                    Err(e) => {
                        illegal += 1;
                        assert!(!e.to_string().is_empty());
                    }
                }
            }
            seen.push(order);
        }
        // Final orders accept no further order-level event except the on-chain refund.
        for order in &seen {
            if order.state == OrderState::Completed {
                for event in &events {
                    assert!(
                        order.apply(event, 0).is_err(),
                        "{event:?} on a completed order"
                    );
                }
            }
        }
        assert!(
            legal >= 10 && illegal >= 20,
            "legal {legal}, illegal {illegal}"
        );
    }

    #[test]
    fn specific_illegal_moves_are_refused() {
        let order = sample_order(true, false);
        assert!(matches!(
            order.apply(&OrderEvent::OnchainPaymentConfirmed, 0),
            Err(TransitionError::NoSuchOption { .. })
        ));
        assert!(matches!(
            order.apply(&OrderEvent::ChannelFunded(channel()), 0),
            Err(TransitionError::NotPaid { .. })
        ));
        assert!(matches!(
            order.apply(&OrderEvent::OnchainRefunded, 0),
            Err(TransitionError::Order { .. })
        ));
        let held = order.apply(&OrderEvent::Bolt11HtlcHeld, 0).unwrap();
        let err = held.apply(&OrderEvent::Bolt11HtlcHeld, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the bolt11 payment of order order-1 is HOLD and cannot become HOLD"
        );
        let failed = held
            .apply(
                &OrderEvent::Failed {
                    onchain_refund_pending: false,
                },
                0,
            )
            .unwrap();
        assert_eq!(
            failed.bolt11.as_ref().unwrap().state,
            PaymentState::Refunded
        );
        let err = failed
            .apply(&OrderEvent::ChannelFunded(channel()), 0)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "order order-1 is FAILED and cannot become COMPLETED"
        );
    }

    #[test]
    fn rendering_matches_blip51_field_names_and_types() {
        let order = sample_order(true, true);
        let json = render(&order, PaymentStateDialect::Blip51);
        let expected = json!({
            "order_id": "order-1",
            "lsp_balance_sat": "1000000",
            "client_balance_sat": "100000",
            "required_channel_confirmations": 0,
            "funding_confirms_within_blocks": 6,
            "channel_expiry_blocks": 4320,
            "token": null,
            "created_at": "2026-11-22T04:22:04Z",
            "announce_channel": true,
            "order_state": "CREATED",
            "payment": {
                "bolt11": {
                    "state": "EXPECT_PAYMENT",
                    "expires_at": "2026-11-22T05:22:04Z",
                    "fee_total_sat": "4745",
                    "order_total_sat": "104745",
                    "invoice": "lnbcrt1invoice"
                },
                "onchain": {
                    "state": "EXPECT_PAYMENT",
                    "expires_at": "2026-11-22T05:22:04Z",
                    "fee_total_sat": "5960",
                    "order_total_sat": "105960",
                    "address": "bcrt1qpayhere",
                    "min_onchain_payment_confirmations": 1,
                    "min_fee_for_0conf": 25,
                    "refund_onchain_address": "bcrt1qrefund"
                }
            },
            "channel": null
        });
        assert_eq!(json, expected);

        let without_onchain = render(&sample_order(true, false), PaymentStateDialect::Blip51);
        assert!(
            without_onchain["payment"].get("onchain").is_none(),
            "no refund address, no onchain option"
        );

        let done = order
            .apply(&OrderEvent::Bolt11HtlcHeld, 0)
            .unwrap()
            .apply(&OrderEvent::ChannelFunded(channel()), 0)
            .unwrap();
        let json = render(&done, PaymentStateDialect::Blip51);
        assert_eq!(json["order_state"], "COMPLETED");
        assert_eq!(json["payment"]["bolt11"]["state"], "PAID");
        assert_eq!(
            json["channel"],
            json!({
                "funded_at": "2026-11-22T04:33:20Z",
                "funding_outpoint": format!("{}:1", "ab".repeat(32)),
                "expires_at": "2026-12-22T04:33:20Z",
            })
        );
    }

    #[test]
    fn without_hold_dialect_spells_hold_as_paid_and_nothing_else_changes() {
        let held = sample_order(true, true)
            .apply(&OrderEvent::Bolt11HtlcHeld, 0)
            .unwrap();
        let spec = render(&held, PaymentStateDialect::Blip51);
        let legacy = render(&held, PaymentStateDialect::WithoutHold);
        assert_eq!(spec["payment"]["bolt11"]["state"], "HOLD");
        assert_eq!(legacy["payment"]["bolt11"]["state"], "PAID");
        let mut patched = spec.clone();
        patched["payment"]["bolt11"]["state"] = json!("PAID");
        assert_eq!(patched, legacy);
    }

    #[test]
    fn rendering_parses_as_lightning_liquidity_order_response() {
        use lightning_liquidity::lsps1::msgs::{
            LSPS1CreateOrderResponse, LSPS1OrderState, LSPS1PaymentState,
        };
        let invoice = crate::lsps1::order::tests::regtest_invoice();
        let mut order = sample_order(true, true);
        order.bolt11.as_mut().unwrap().invoice = invoice;
        let address = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".to_string();
        order.refund_onchain_address = Some(address.clone());
        let onchain = order.onchain.as_mut().unwrap();
        onchain.address = address.clone();
        onchain.refund_onchain_address = address;
        order.params.token = Some("SAVE10".into());
        let held = order.apply(&OrderEvent::Bolt11HtlcHeld, 0).unwrap();
        let parsed: LSPS1CreateOrderResponse =
            serde_json::from_value(render(&held, PaymentStateDialect::Blip51)).expect("parses");
        assert_eq!(parsed.order_id.0, "order-1");
        assert_eq!(parsed.order.lsp_balance_sat, 1_000_000);
        assert_eq!(parsed.order.token.as_deref(), Some("SAVE10"));
        assert_eq!(parsed.order_state, LSPS1OrderState::Created);
        assert_eq!(
            parsed.payment.bolt11.unwrap().state,
            LSPS1PaymentState::Hold
        );
        assert_eq!(parsed.payment.onchain.unwrap().order_total_sat, 105_960);
        assert!(parsed.channel.is_none());
    }

    pub(crate) fn regtest_invoice() -> String {
        use bitcoin::hashes::{sha256, Hash};
        use bitcoin::secp256k1::{Secp256k1, SecretKey};
        use lightning_invoice::{Currency, InvoiceBuilder, PaymentHash, PaymentSecret};
        let secp = Secp256k1::new();
        let key = SecretKey::from_slice(&[9u8; 32]).unwrap();
        InvoiceBuilder::new(Currency::Regtest)
            .description("lsps1 order".into())
            .payment_hash(PaymentHash(sha256::Hash::hash(b"preimage").to_byte_array()))
            .payment_secret(PaymentSecret([3u8; 32]))
            .duration_since_epoch(std::time::Duration::from_secs(1_795_321_324))
            .min_final_cltv_expiry_delta(144)
            .amount_milli_satoshis(104_745_000)
            .build_signed(|hash| secp.sign_ecdsa_recoverable(hash, &key))
            .unwrap()
            .to_string()
    }
}
