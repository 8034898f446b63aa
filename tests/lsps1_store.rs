//! The order book on a real SQLite file: round trip, event history, coupon redemption under
//! concurrency, reservation accounting, limits, and reopening.

use std::sync::{Arc, Barrier};
use std::thread;

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use lsp_node::config::lsps1::PricingConfig;
use lsp_node::lsps1::clock::ManualClock;
use lsp_node::lsps1::coupons::{CouponError, Discount, NewCoupon};
use lsp_node::lsps1::liquidity::{reservation_for, LiquidityError, ReservationRequest};
use lsp_node::lsps1::new_orders::Admission;
use lsp_node::lsps1::order::{
    Bolt11Payment, ChannelInfo, Interface, OnchainPayment, Order, OrderEvent, OrderId, OrderParams,
    OrderState, PaymentState,
};
use lsp_node::lsps1::pricing::{price, PaymentMethod, PriceRequest};
use lsp_node::lsps1::store::{migrate, OrderBook, OrderFilter, StoreError, SCHEMA_VERSION};
use rand::rngs::StdRng;
use rand::SeedableRng;

const T0: u64 = 1_795_321_324;
const EXPIRY: u64 = 3_600;

fn key(byte: u8) -> PublicKey {
    PublicKey::from_secret_key(
        &Secp256k1::new(),
        &SecretKey::from_slice(&[byte; 32]).unwrap(),
    )
}

fn new_order(
    rng: &mut StdRng,
    client: PublicKey,
    now: u64,
    coupon: Option<(&str, Discount)>,
) -> Order {
    let params = OrderParams {
        lsp_balance_sat: 1_000_000,
        client_balance_sat: 100_000,
        required_channel_confirmations: 1,
        funding_confirms_within_blocks: 6,
        channel_expiry_blocks: 4_320,
        token: coupon.map(|(code, _)| code.to_string()),
        announce_channel: false,
    };
    let request = |payment| PriceRequest {
        lsp_balance_sat: params.lsp_balance_sat,
        client_balance_sat: params.client_balance_sat,
        channel_expiry_blocks: params.channel_expiry_blocks,
        fee_rate_sat_per_kwu: 2_500,
        payment,
        discount: coupon.map(|(_, d)| d),
    };
    let lightning = price(
        &PricingConfig::default(),
        &request(PaymentMethod::Lightning),
    )
    .unwrap();
    let onchain = price(&PricingConfig::default(), &request(PaymentMethod::Onchain)).unwrap();
    Order {
        id: OrderId::generate(std::time::SystemTime::now(), rng),
        client_node_id: Some(client),
        params,
        refund_onchain_address: Some("bcrt1qrefund".into()),
        created_at: now,
        expires_at: now + EXPIRY,
        state: OrderState::Created,
        bolt11: Some(Bolt11Payment {
            state: PaymentState::ExpectPayment,
            expires_at: now + EXPIRY,
            fee_total_sat: lightning.fee_total_sat,
            order_total_sat: lightning.order_total_sat,
            invoice: "lnbcrt1test".into(),
        }),
        onchain: Some(OnchainPayment {
            state: PaymentState::ExpectPayment,
            expires_at: now + EXPIRY,
            fee_total_sat: onchain.fee_total_sat,
            order_total_sat: onchain.order_total_sat,
            address: "bcrt1qpay".into(),
            min_onchain_payment_confirmations: 1,
            min_fee_for_0conf_sat_per_vb: 25,
            refund_onchain_address: "bcrt1qrefund".into(),
        }),
        channel: None,
        price: lightning,
        coupon_code: coupon.map(|(code, _)| code.to_string()),
        source: Interface::P2p,
        email: None,
        updated_at: now,
        extension: None,
        customer: None,
    }
}

#[test]
fn a_failed_order_owing_a_refund_keeps_its_reservation_until_the_refund_confirms() {
    let mut f = fixture();
    let order = new_order(&mut f.rng, key(1), T0, None);
    f.book
        .create_order(&order, &reservation(&order, 2_500_000))
        .unwrap();
    f.book
        .apply(
            &order.id,
            &OrderEvent::Failed {
                onchain_refund_pending: true,
            },
            "expired underpaid",
        )
        .unwrap();
    assert_eq!(
        f.book.reserved_sat().unwrap(),
        1_102_205,
        "the sats to send back are not sold again"
    );
    f.book
        .apply(&order.id, &OrderEvent::OnchainRefunded, "refund confirmed")
        .unwrap();
    assert_eq!(f.book.reserved_sat().unwrap(), 0);
    let released = f.book.reservation(&order.id).unwrap().unwrap();
    assert_eq!(released.release_reason.as_deref(), Some("onchain_refunded"));
}

#[test]
fn stuck_orders_are_those_whose_money_step_is_late_and_each_says_why() {
    use lsp_node::lsps1::stuck::{EXPIRY_SECS, OPEN_SECS, REFUND_SECS};
    let mut f = fixture();
    let no_admission = Admission::default();
    let held = new_order(&mut f.rng, key(1), T0, None);
    let unpaid = new_order(&mut f.rng, key(2), T0, None);
    let refunding = new_order(&mut f.rng, key(3), T0, None);
    let fresh = new_order(&mut f.rng, key(4), T0 + EXPIRY, None);
    for order in [&held, &unpaid, &refunding, &fresh] {
        f.book.create_order(order, &no_admission).unwrap();
    }
    f.book
        .apply(&held.id, &OrderEvent::Bolt11HtlcHeld, "held")
        .unwrap();
    f.book
        .apply(&refunding.id, &OrderEvent::OnchainPaymentConfirmed, "paid")
        .unwrap();
    f.book
        .apply(
            &refunding.id,
            &OrderEvent::Failed {
                onchain_refund_pending: true,
            },
            "cancelled",
        )
        .unwrap();
    assert!(f.book.stuck_orders(T0 + 1).unwrap().is_empty());

    let why = |now: u64, id: &OrderId| {
        f.book
            .stuck_orders(now)
            .unwrap()
            .into_iter()
            .find(|s| &s.order.id == id)
            .map(|s| s.why)
    };
    // The held HTLC's order first: its channel should have been funded within minutes.
    let now = T0 + OPEN_SECS + 1;
    assert!(why(now, &held.id)
        .unwrap()
        .contains("channel is not funded"));
    for id in [&unpaid.id, &refunding.id, &fresh.id] {
        assert_eq!(why(now, id), None, "{id}");
    }
    // Then the refund that has not confirmed in an hour, and the order left unfailed past its
    // expiry; the fresh order is still in time.
    let now = T0 + EXPIRY + EXPIRY_SECS + 1;
    assert!(now > T0 + REFUND_SECS);
    assert!(why(now, &refunding.id)
        .unwrap()
        .contains("refund is not confirmed"));
    assert!(why(now, &unpaid.id).unwrap().contains("expired unpaid"));
    assert_eq!(why(now, &fresh.id), None);
}

/// A paid pay-first order waits for its claim (bounded by the claim timeout), which is not a
/// late open; once claimed it is as late as any paid order whose channel is not funded. A
/// claim is taken once, with the token only.
#[test]
fn a_paid_pay_first_order_is_not_stuck_until_it_names_its_node() {
    use lsp_node::lsps1::claims::{ClaimRefused, ClaimToken};
    use lsp_node::lsps1::stuck::OPEN_SECS;
    let mut f = fixture();
    let mut order = new_order(&mut f.rng, key(1), T0, None);
    order.client_node_id = None;
    let token = ClaimToken::random(&mut f.rng);
    f.book
        .create_pay_first_order(&order, &Admission::default(), &token)
        .unwrap();
    f.book
        .apply(&order.id, &OrderEvent::Bolt11HtlcHeld, "held")
        .unwrap();
    let later = T0 + OPEN_SECS + 1;
    assert!(f.book.stuck_orders(later).unwrap().is_empty());
    assert!(matches!(
        f.book
            .claim(&ClaimToken::from_client(order.id.as_str()), key(2)),
        Err(ClaimRefused::Unknown)
    ));
    f.clock.set(T0 + 10);
    let claimed = f.book.claim(&token, key(2)).unwrap();
    assert_eq!(claimed.client_node_id, Some(key(2)));
    assert!(matches!(
        f.book.claim(&token, key(3)),
        Err(ClaimRefused::AlreadyClaimed)
    ));
    let listed = f.book.stuck_orders(T0 + 10 + OPEN_SECS + 1).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].why.contains("channel is not funded"));
}

#[test]
fn channel_opens_and_their_fundings_are_counted_in_the_book() {
    let mut f = fixture();
    let order = new_order(&mut f.rng, key(1), T0, None);
    f.book.create_order(&order, &Admission::default()).unwrap();
    assert_eq!(f.book.open_attempts(&order.id).unwrap(), 0);
    let no_open = <bitcoin::Txid as bitcoin::hashes::Hash>::from_byte_array([1; 32]);
    assert!(
        f.book.record_funding(&order.id, &no_open, 100).is_err(),
        "a funding belongs to an open"
    );
    assert_eq!(f.book.record_open_attempt(&order.id).unwrap(), 1);
    assert_eq!(f.book.record_open_attempt(&order.id).unwrap(), 2);
    let funding = <bitcoin::Txid as bitcoin::hashes::Hash>::from_byte_array([2; 32]);
    f.book.record_funding(&order.id, &funding, 100).unwrap();
    drop(f.book);
    let book = OrderBook::open(&f.path, f.clock.clone()).unwrap();
    assert_eq!(
        book.open_attempts(&order.id).unwrap(),
        2,
        "counted across restarts"
    );
    assert_eq!(book.fundings(&order.id).unwrap(), vec![funding]);

    // A second order funded by the same (batch) transaction: settling the funding for one
    // order leaves it watched for the other.
    let other = new_order(&mut f.rng, key(2), T0, None);
    book.create_order(&other, &Admission::default()).unwrap();
    book.record_open_attempt(&other.id).unwrap();
    book.record_funding(&other.id, &funding, 101).unwrap();
    let mut unsettled = book.unsettled_fundings().unwrap();
    unsettled.sort_by_key(|f| f.2);
    assert_eq!(
        unsettled,
        vec![
            (order.id.clone(), funding, Some(100)),
            (other.id.clone(), funding, Some(101))
        ],
        "each funding leads back to its order and the height it was signed at"
    );
    book.settle_funding(&order.id, &funding).unwrap();
    assert_eq!(
        book.unsettled_fundings().unwrap(),
        vec![(other.id.clone(), funding, Some(101))]
    );
    book.settle_funding(&other.id, &funding).unwrap();
    assert!(book.unsettled_fundings().unwrap().is_empty());
}

fn reservation(order: &Order, spendable_sat: u64) -> Admission {
    let amount_sat = reservation_for(
        order.params.lsp_balance_sat,
        order.params.client_balance_sat,
        order.price.onchain_fee_sat,
    )
    .unwrap();
    Admission {
        reservation: Some(ReservationRequest {
            amount_sat,
            spendable_sat,
        }),
        max_unpaid_orders_per_peer: None,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    clock: Arc<ManualClock>,
    book: OrderBook,
    rng: StdRng,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sqlite");
    let clock = Arc::new(ManualClock::new(T0));
    let book = OrderBook::open(&path, clock.clone()).unwrap();
    Fixture {
        _dir: dir,
        path,
        clock,
        book,
        rng: StdRng::seed_from_u64(42),
    }
}

fn channel(now: u64) -> ChannelInfo {
    ChannelInfo {
        funded_at: now,
        funding_outpoint: format!("{}:0", "cd".repeat(32)),
        expires_at: now + 4_320 * 600,
    }
}

#[test]
fn round_trip_history_and_reservation_release() {
    let mut f = fixture();
    let order = new_order(&mut f.rng, key(1), T0, None);
    let admission = reservation(&order, 5_000_000);
    f.book.create_order(&order, &admission).unwrap();
    assert_eq!(f.book.order(&order.id).unwrap(), Some(order.clone()));
    assert_eq!(f.book.reserved_sat().unwrap(), 1_102_205);

    f.clock.advance(60);
    let held = f
        .book
        .apply(
            &order.id,
            &OrderEvent::Bolt11HtlcHeld,
            "HTLC for 104745 sat held",
        )
        .unwrap();
    assert_eq!(held.bolt11.as_ref().unwrap().state, PaymentState::Hold);
    assert_eq!(
        f.book.reserved_sat().unwrap(),
        1_102_205,
        "still reserved until the channel is funded"
    );

    f.clock.advance(60);
    let funded = f
        .book
        .apply(
            &order.id,
            &OrderEvent::ChannelFunded(channel(T0 + 120)),
            "funding broadcast",
        )
        .unwrap();
    assert_eq!(funded.state, OrderState::Completed);
    assert_eq!(f.book.order(&order.id).unwrap(), Some(funded.clone()));
    assert_eq!(f.book.reserved_sat().unwrap(), 0);
    let reservation = f.book.reservation(&order.id).unwrap().unwrap();
    assert_eq!(reservation.amount_sat, 1_102_205);
    assert_eq!(reservation.released_at, Some(T0 + 120));
    assert_eq!(
        reservation.release_reason.as_deref(),
        Some("channel_funded")
    );

    let events = f.book.events(&order.id).unwrap();
    let summary: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.at,
                e.event.as_str(),
                e.from_state.as_deref(),
                e.to_state.as_str(),
                e.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                T0,
                "created",
                None,
                "CREATED bolt11=EXPECT_PAYMENT onchain=EXPECT_PAYMENT",
                "order accepted"
            ),
            (
                T0 + 60,
                "bolt11_htlc_held",
                Some("CREATED bolt11=EXPECT_PAYMENT onchain=EXPECT_PAYMENT"),
                "CREATED bolt11=HOLD onchain=EXPECT_PAYMENT",
                "HTLC for 104745 sat held"
            ),
            (
                T0 + 120,
                "channel_funded",
                Some("CREATED bolt11=HOLD onchain=EXPECT_PAYMENT"),
                "COMPLETED bolt11=PAID onchain=EXPECT_PAYMENT",
                "funding broadcast"
            ),
        ]
    );
    assert!(events[2]
        .detail
        .as_deref()
        .unwrap()
        .contains("funding_outpoint"));

    // Everything survives closing and reopening the file.
    drop(f.book);
    let reopened = OrderBook::open(&f.path, f.clock.clone()).unwrap();
    assert_eq!(reopened.order(&order.id).unwrap(), Some(funded));
    assert_eq!(reopened.events(&order.id).unwrap(), events);
}

#[test]
fn illegal_transition_changes_nothing() {
    let mut f = fixture();
    let order = new_order(&mut f.rng, key(1), T0, None);
    f.book
        .create_order(&order, &reservation(&order, 5_000_000))
        .unwrap();
    let err = f
        .book
        .apply(
            &order.id,
            &OrderEvent::ChannelFunded(channel(T0)),
            "too early",
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::Transition(_)), "{err}");
    assert_eq!(f.book.order(&order.id).unwrap(), Some(order.clone()));
    assert_eq!(f.book.events(&order.id).unwrap().len(), 1);
    assert_eq!(f.book.reserved_sat().unwrap(), 1_102_205);

    let missing = OrderId::parse("nope").unwrap();
    let err = f
        .book
        .apply(&missing, &OrderEvent::Bolt11HtlcHeld, "x")
        .unwrap_err();
    assert!(matches!(err, StoreError::OrderNotFound(_)));
    assert_eq!(err.to_rpc_error().code, 101);

    // The same order cannot be stored twice, and a non-new order cannot be stored at all.
    assert!(matches!(
        f.book.create_order(&order, &Admission::default()),
        Err(StoreError::DuplicateOrder(_))
    ));
    let mut paid = new_order(&mut f.rng, key(1), T0, None);
    paid.bolt11.as_mut().unwrap().state = PaymentState::Hold;
    assert!(matches!(
        f.book.create_order(&paid, &Admission::default()),
        Err(StoreError::NotNew(_))
    ));
    assert_eq!(f.book.order(&paid.id).unwrap(), None);
}

#[test]
fn listing_filters_and_attention_set() {
    let mut f = fixture();
    let a1 = new_order(&mut f.rng, key(1), T0, None);
    let a2 = new_order(&mut f.rng, key(1), T0 + 10, None);
    let b1 = new_order(&mut f.rng, key(2), T0 + 20, None);
    for order in [&a1, &a2, &b1] {
        f.clock.set(order.created_at);
        f.book.create_order(order, &Admission::default()).unwrap();
    }
    let ids = |orders: Vec<Order>| orders.into_iter().map(|o| o.id).collect::<Vec<_>>();
    assert_eq!(
        ids(f.book.orders(&OrderFilter::default()).unwrap()),
        vec![b1.id.clone(), a2.id.clone(), a1.id.clone()]
    );
    let by_peer = OrderFilter {
        client_node_id: Some(key(1)),
        ..Default::default()
    };
    assert_eq!(
        ids(f.book.orders(&by_peer).unwrap()),
        vec![a2.id.clone(), a1.id.clone()]
    );
    let window = OrderFilter {
        created_from: Some(T0 + 10),
        created_until: Some(T0 + 20),
        ..Default::default()
    };
    assert_eq!(ids(f.book.orders(&window).unwrap()), vec![a2.id.clone()]);
    let limited = OrderFilter {
        limit: Some(1),
        ..Default::default()
    };
    assert_eq!(ids(f.book.orders(&limited).unwrap()), vec![b1.id.clone()]);

    // a1 paid on-chain, then its open failed: FAILED but its funds still need a refund.
    f.book
        .apply(
            &a1.id,
            &OrderEvent::OnchainPaymentConfirmed,
            "1 confirmation",
        )
        .unwrap();
    f.book
        .apply(
            &a1.id,
            &OrderEvent::Failed {
                onchain_refund_pending: true,
            },
            "open failed",
        )
        .unwrap();
    // b1 expired unpaid.
    f.book
        .apply(
            &b1.id,
            &OrderEvent::Failed {
                onchain_refund_pending: false,
            },
            "expired",
        )
        .unwrap();
    let failed = OrderFilter {
        state: Some(OrderState::Failed),
        ..Default::default()
    };
    assert_eq!(
        ids(f.book.orders(&failed).unwrap()),
        vec![b1.id.clone(), a1.id.clone()]
    );
    assert_eq!(
        ids(f.book.orders_needing_attention().unwrap()),
        vec![a1.id.clone(), a2.id.clone()]
    );
    f.book
        .apply(&a1.id, &OrderEvent::OnchainRefunded, "refund confirmed")
        .unwrap();
    assert_eq!(
        ids(f.book.orders_needing_attention().unwrap()),
        vec![a2.id.clone()]
    );
}

#[test]
fn coupon_redemption_is_atomic_with_order_creation() {
    let mut f = fixture();
    f.book
        .create_coupon(&NewCoupon {
            code: "ONCE".into(),
            discount: Discount::Percent(50),
            max_uses: Some(1),
            expires_at: None,
        })
        .unwrap();
    let first = new_order(
        &mut f.rng,
        key(1),
        T0,
        Some(("ONCE", Discount::Percent(50))),
    );
    f.book.create_order(&first, &Admission::default()).unwrap();
    assert_eq!(f.book.coupon("ONCE").unwrap().unwrap().uses, 1);
    assert_eq!(first.price.discount_sat, 1_411);

    let second = new_order(
        &mut f.rng,
        key(2),
        T0,
        Some(("ONCE", Discount::Percent(50))),
    );
    let err = f
        .book
        .create_order(&second, &reservation(&second, 5_000_000))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Coupon(CouponError::UsedUp)),
        "{err}"
    );
    assert_eq!(err.to_rpc_error().code, 102);
    assert_eq!(f.book.order(&second.id).unwrap(), None);
    assert_eq!(
        f.book.reservation(&second.id).unwrap(),
        None,
        "a rejected order reserves nothing"
    );

    let unknown = new_order(
        &mut f.rng,
        key(2),
        T0,
        Some(("NEVER", Discount::Percent(50))),
    );
    let err = f
        .book
        .create_order(&unknown, &Admission::default())
        .unwrap_err();
    assert!(matches!(err, StoreError::Coupon(CouponError::Unknown)));
    assert_eq!(err.to_rpc_error().code, 102);

    f.book
        .create_coupon(&NewCoupon {
            code: "SOON".into(),
            discount: Discount::FixedSat(100),
            max_uses: None,
            expires_at: Some(T0 + 10),
        })
        .unwrap();
    f.clock.set(T0 + 10);
    let late = new_order(
        &mut f.rng,
        key(3),
        T0 + 10,
        Some(("SOON", Discount::FixedSat(100))),
    );
    assert!(matches!(
        f.book.create_order(&late, &Admission::default()),
        Err(StoreError::Coupon(CouponError::Expired))
    ));
    assert_eq!(f.book.coupon("SOON").unwrap().unwrap().uses, 0);

    // A liquidity rejection does not spend the coupon either.
    f.book
        .create_coupon(&NewCoupon {
            code: "TWICE".into(),
            discount: Discount::Percent(5),
            max_uses: Some(2),
            expires_at: None,
        })
        .unwrap();
    let poor = new_order(
        &mut f.rng,
        key(4),
        T0 + 10,
        Some(("TWICE", Discount::Percent(5))),
    );
    assert!(matches!(
        f.book.create_order(&poor, &reservation(&poor, 1_000)),
        Err(StoreError::Liquidity(_))
    ));
    assert_eq!(f.book.coupon("TWICE").unwrap().unwrap().uses, 0);

    assert_eq!(f.book.coupons().unwrap().len(), 3);
    assert!(f.book.delete_coupon("SOON").unwrap());
    assert_eq!(f.book.coupon("SOON").unwrap(), None);
}

#[test]
fn single_use_coupon_cannot_be_redeemed_twice_concurrently() {
    let f = fixture();
    const ROUNDS: usize = 20;
    for round in 0..ROUNDS {
        f.book
            .create_coupon(&NewCoupon {
                code: format!("RACE{round}"),
                discount: Discount::FixedSat(500),
                max_uses: Some(1),
                expires_at: None,
            })
            .unwrap();
    }
    // Two separate connections to the same file, as two processes or two services would have.
    let books: Vec<Arc<OrderBook>> = (0..2)
        .map(|_| Arc::new(OrderBook::open(&f.path, f.clock.clone()).unwrap()))
        .collect();
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = books
        .iter()
        .enumerate()
        .map(|(thread_index, book)| {
            let book = book.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(1_000 + thread_index as u64);
                let mut outcomes = Vec::new();
                for round in 0..ROUNDS {
                    let code = format!("RACE{round}");
                    let order = new_order(
                        &mut rng,
                        key(10 + thread_index as u8),
                        T0,
                        Some((&code, Discount::FixedSat(500))),
                    );
                    barrier.wait();
                    outcomes.push(match book.create_order(&order, &Admission::default()) {
                        Ok(()) => Ok(order.id),
                        Err(StoreError::Coupon(CouponError::UsedUp)) => Err(()),
                        Err(other) => panic!("unexpected error: {other}"),
                    });
                }
                outcomes
            })
        })
        .collect();
    let results: Vec<Vec<Result<OrderId, ()>>> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    for round in 0..ROUNDS {
        let winners: Vec<&OrderId> = results
            .iter()
            .filter_map(|r| r[round].as_ref().ok())
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one order gets the coupon"
        );
        let coupon = f.book.coupon(&format!("RACE{round}")).unwrap().unwrap();
        assert_eq!(coupon.uses, 1);
        let stored = f.book.order(winners[0]).unwrap().unwrap();
        assert_eq!(
            stored.coupon_code.as_deref(),
            Some(format!("RACE{round}").as_str())
        );
    }
    assert_eq!(
        f.book.orders(&OrderFilter::default()).unwrap().len(),
        ROUNDS
    );
}

#[test]
fn reservations_bound_what_is_sold() {
    let mut f = fixture();
    let spendable = 2_500_000; // room for two orders of 1 102 205 sat, not three
    let first = new_order(&mut f.rng, key(1), T0, None);
    let second = new_order(&mut f.rng, key(2), T0, None);
    let third = new_order(&mut f.rng, key(3), T0, None);
    f.book
        .create_order(&first, &reservation(&first, spendable))
        .unwrap();
    f.book
        .create_order(&second, &reservation(&second, spendable))
        .unwrap();
    assert_eq!(f.book.reserved_sat().unwrap(), 2_204_410);
    let err = f
        .book
        .create_order(&third, &reservation(&third, spendable))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Liquidity(LiquidityError::Insufficient {
                needed_sat: 1_102_205,
                available_sat: 295_590
            })
        ),
        "{err:?}"
    );
    let rpc = err.to_rpc_error();
    assert_eq!(rpc.code, 1);
    assert!(
        !rpc.message.contains("295590"),
        "our balance is not disclosed"
    );
    assert_eq!(f.book.order(&third.id).unwrap(), None);
    assert_eq!(
        f.book.reserved_sat().unwrap(),
        2_204_410,
        "a rejected request reserves nothing"
    );

    // Failing an order releases its reservation; the third order now fits.
    f.book
        .apply(
            &first.id,
            &OrderEvent::Failed {
                onchain_refund_pending: false,
            },
            "expired",
        )
        .unwrap();
    assert_eq!(f.book.reserved_sat().unwrap(), 1_102_205);
    assert_eq!(
        f.book
            .reservation(&first.id)
            .unwrap()
            .unwrap()
            .release_reason
            .as_deref(),
        Some("failed")
    );
    f.book
        .create_order(&third, &reservation(&third, spendable))
        .unwrap();
    assert_eq!(f.book.reserved_sat().unwrap(), 2_204_410);
}

#[test]
fn concurrent_orders_cannot_share_the_same_sats() {
    let f = fixture();
    let spendable = 1_500_000; // room for one order only
    let books: Vec<Arc<OrderBook>> = (0..2)
        .map(|_| Arc::new(OrderBook::open(&f.path, f.clock.clone()).unwrap()))
        .collect();
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = books
        .into_iter()
        .enumerate()
        .map(|(i, book)| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let order = new_order(
                    &mut StdRng::seed_from_u64(7 + i as u64),
                    key(20 + i as u8),
                    T0,
                    None,
                );
                barrier.wait();
                book.create_order(&order, &reservation(&order, spendable))
                    .is_ok()
            })
        })
        .collect();
    let accepted = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|ok| *ok)
        .count();
    assert_eq!(accepted, 1);
    assert_eq!(f.book.reserved_sat().unwrap(), 1_102_205);
}

/// Orders made at once on one book share commits (group commit): each is still checked
/// against the ones committed or written before it, so the sats are never sold twice, and
/// every order answered Ok is in the book.
#[test]
fn orders_made_together_on_one_book_are_each_checked_and_all_durable() {
    let f = fixture();
    let book = Arc::new(f.book);
    let per_order = {
        let order = new_order(&mut StdRng::seed_from_u64(1), key(1), T0, None);
        reservation(&order, 0).reservation.unwrap().amount_sat
    };
    const ROOM: u64 = 5;
    let spendable = per_order * ROOM + per_order / 2;
    let threads = 24;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (book, barrier) = (book.clone(), barrier.clone());
            thread::spawn(move || {
                let order = new_order(
                    &mut StdRng::seed_from_u64(100 + i as u64),
                    key(30 + i as u8),
                    T0,
                    None,
                );
                barrier.wait();
                book.create_order(&order, &reservation(&order, spendable))
                    .map(|()| order.id)
            })
        })
        .collect();
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let accepted: Vec<OrderId> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok().cloned())
        .collect();
    assert_eq!(accepted.len() as u64, ROOM, "{outcomes:?}");
    for refused in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        assert!(matches!(refused, StoreError::Liquidity(_)), "{refused}");
    }
    assert_eq!(book.reserved_sat().unwrap(), per_order * ROOM);
    drop(book);
    let reopened = OrderBook::open(&f.path, f.clock.clone()).unwrap();
    for id in &accepted {
        assert!(
            reopened.order(id).unwrap().is_some(),
            "{id} was answered Ok"
        );
    }
    assert_eq!(
        sorted_ids(reopened.orders(&OrderFilter::default()).unwrap()),
        sorted(accepted)
    );
}

/// An order is read by key without waiting for a read connection while one is free, and
/// sees every committed write.
#[test]
fn an_order_is_read_without_waiting_while_a_reader_is_free() {
    let mut f = fixture();
    let order = new_order(&mut f.rng, key(3), T0, None);
    assert!(matches!(
        f.book.order_without_waiting(&order.id),
        Some(Ok(None))
    ));
    f.book
        .create_order(&order, &reservation(&order, 10_000_000))
        .unwrap();
    let read = f.book.order_without_waiting(&order.id).unwrap().unwrap();
    assert_eq!(read.map(|o| o.id), Some(order.id.clone()));
}

/// The book's change count moves with every write and stays put on reads, which go through
/// read-only connections of their own: what is kept beside it (get_info) is dropped on every
/// write and only then.
#[test]
fn writes_change_the_book_and_reads_do_not() {
    let mut f = fixture();
    assert!(f.book.read_connections() > 0, "a WAL file gets readers");
    let order = new_order(&mut f.rng, key(2), T0, None);
    let before = f.book.changes();
    f.book
        .create_order(&order, &reservation(&order, 10_000_000))
        .unwrap();
    let created = f.book.changes();
    assert!(created > before, "a new order is a change");
    f.book.order(&order.id).unwrap().unwrap();
    f.book.reserved_sat().unwrap();
    f.book.orders(&OrderFilter::default()).unwrap();
    f.book.events(&order.id).unwrap();
    assert_eq!(f.book.changes(), created, "reads are not changes");
    f.book
        .apply(
            &order.id,
            &OrderEvent::Failed {
                onchain_refund_pending: false,
            },
            "test",
        )
        .unwrap();
    assert!(f.book.changes() > created, "a transition is a change");
    assert_eq!(f.book.reserved_sat().unwrap(), 0);
}

#[test]
fn unpaid_order_limit_per_peer() {
    let mut f = fixture();
    let limit = Admission {
        reservation: None,
        max_unpaid_orders_per_peer: Some(1),
    };
    let first = new_order(&mut f.rng, key(1), T0, None);
    f.book.create_order(&first, &limit).unwrap();
    let second = new_order(&mut f.rng, key(1), T0, None);
    let err = f.book.create_order(&second, &limit).unwrap_err();
    assert!(matches!(err, StoreError::TooManyUnpaidOrders(1)));
    assert_eq!(err.to_rpc_error().code, 1);
    // Another peer is not affected.
    f.book
        .create_order(&new_order(&mut f.rng, key(2), T0, None), &limit)
        .unwrap();
    // Orders made over HTTP for key 2 (by anyone) count among themselves, not against the
    // node's own p2p orders.
    let mut over_http = new_order(&mut f.rng, key(2), T0, None);
    over_http.source = Interface::Http;
    f.book.create_order(&over_http, &limit).unwrap();
    let mut again_over_http = new_order(&mut f.rng, key(2), T0, None);
    again_over_http.source = Interface::Http;
    let err = f.book.create_order(&again_over_http, &limit).unwrap_err();
    assert!(matches!(err, StoreError::TooManyUnpaidOrders(1)));
    // A paid order no longer counts.
    f.book
        .apply(&first.id, &OrderEvent::Bolt11HtlcHeld, "held")
        .unwrap();
    f.book.create_order(&second, &limit).unwrap();
    // An expired unpaid order no longer counts either.
    f.clock.set(T0 + EXPIRY);
    let third = new_order(&mut f.rng, key(1), T0 + EXPIRY, None);
    f.book.create_order(&third, &limit).unwrap();
}

#[test]
fn migration_is_idempotent_and_refuses_newer_schemas() {
    let f = fixture();
    let conn = rusqlite::Connection::open(&f.path).unwrap();
    migrate(&conn).unwrap();
    migrate(&conn).unwrap();
    let version: i64 = conn
        .query_row("SELECT MAX(version) FROM lsps1_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        [
            "lsps1_address_watch",
            "lsps1_bolt11_payments",
            "lsps1_channel_opens",
            "lsps1_claim_tokens",
            "lsps1_coupons",
            "lsps1_credit",
            "lsps1_credit_coupons",
            "lsps1_customer_orders",
            "lsps1_customers",
            "lsps1_hold_answers",
            "lsps1_lease_extensions",
            "lsps1_leases",
            "lsps1_order_events",
            "lsps1_orders",
            "lsps1_refunds",
            "lsps1_reservations",
            "lsps1_reserved_total",
            "lsps1_schema"
        ]
    );

    // A version 6 database (before address retirement) watches its on-chain orders from their
    // expiry.
    let mut f = f;
    let order = new_order(&mut f.rng, key(9), T0, None);
    f.book.create_order(&order, &Admission::default()).unwrap();
    conn.execute_batch(
        "DROP TABLE lsps1_address_watch; DROP TABLE lsps1_lease_extensions; DROP TABLE lsps1_leases; DROP TABLE lsps1_claim_tokens; DROP TABLE lsps1_customer_orders; DROP TABLE lsps1_credit_coupons; DROP TABLE lsps1_credit; DROP TABLE lsps1_customers; DROP TABLE lsps1_reserved_total; DROP TRIGGER lsps1_reservation_taken; DROP TRIGGER lsps1_reservation_released; DROP TRIGGER lsps1_reservation_reopened; DROP TRIGGER lsps1_reservation_resized; DROP TRIGGER lsps1_reservation_deleted;
         DROP INDEX lsps1_bolt11_unclaimed;
         ALTER TABLE lsps1_bolt11_payments DROP COLUMN failed_back_at;
         DELETE FROM lsps1_schema; INSERT INTO lsps1_schema (version) VALUES (6);",
    )
    .unwrap();
    migrate(&conn).unwrap();
    let watched_from: i64 = conn
        .query_row(
            "SELECT watch_from FROM lsps1_address_watch WHERE order_id = ?1 AND retired_at IS NULL",
            [order.id.as_str()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(watched_from as u64, order.expires_at);

    // A version 2 database (before the HOLD spelling counts) is upgraded in place.
    conn.execute_batch(
        "DROP TABLE lsps1_hold_answers;
         DROP TABLE lsps1_channel_opens;
         DROP TABLE lsps1_address_watch; DROP TABLE lsps1_lease_extensions; DROP TABLE lsps1_leases; DROP TABLE lsps1_claim_tokens; DROP TABLE lsps1_customer_orders; DROP TABLE lsps1_credit_coupons; DROP TABLE lsps1_credit; DROP TABLE lsps1_customers; DROP TABLE lsps1_reserved_total; DROP TRIGGER lsps1_reservation_taken; DROP TRIGGER lsps1_reservation_released; DROP TRIGGER lsps1_reservation_reopened; DROP TRIGGER lsps1_reservation_resized; DROP TRIGGER lsps1_reservation_deleted;
         DROP INDEX lsps1_bolt11_unclaimed;
         ALTER TABLE lsps1_bolt11_payments DROP COLUMN failed_back_at;
         ALTER TABLE lsps1_bolt11_payments DROP COLUMN claimed_at;
         ALTER TABLE lsps1_bolt11_payments DROP COLUMN claim_requested_at;
         DELETE FROM lsps1_schema; INSERT INTO lsps1_schema (version) VALUES (2);",
    )
    .unwrap();
    migrate(&conn).unwrap();
    let hold_table: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'lsps1_hold_answers'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hold_table, 1);
    conn.prepare(
        "SELECT claimed_at, claim_requested_at, failed_back_at FROM lsps1_bolt11_payments",
    )
    .expect("the claim columns are added back");
    conn.prepare("SELECT funding_height, funding_settled_at FROM lsps1_channel_opens")
        .expect("the funding columns are added back");

    // A version 15 database loses its index of every order by client.
    conn.execute_batch(
        "CREATE INDEX lsps1_orders_by_client ON lsps1_orders (client_node_id, created_at);
         DELETE FROM lsps1_schema; INSERT INTO lsps1_schema (version) VALUES (15);",
    )
    .unwrap();
    migrate(&conn).unwrap();
    let by_client: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'lsps1_orders_by_client'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(by_client, 0);

    // A version 1 database (before the ledger tables) is upgraded in place.
    conn.execute_batch(
        "DROP TABLE lsps1_bolt11_payments; DROP TABLE lsps1_refunds; DROP TABLE lsps1_hold_answers;
         DROP TABLE lsps1_channel_opens; DROP TABLE lsps1_address_watch; DROP TABLE lsps1_lease_extensions; DROP TABLE lsps1_leases; DROP TABLE lsps1_claim_tokens; DROP TABLE lsps1_customer_orders; DROP TABLE lsps1_credit_coupons; DROP TABLE lsps1_credit; DROP TABLE lsps1_customers; DROP TABLE lsps1_reserved_total; DROP TRIGGER lsps1_reservation_taken; DROP TRIGGER lsps1_reservation_released; DROP TRIGGER lsps1_reservation_reopened; DROP TRIGGER lsps1_reservation_resized; DROP TRIGGER lsps1_reservation_deleted;
         DELETE FROM lsps1_schema; INSERT INTO lsps1_schema (version) VALUES (1);",
    )
    .unwrap();
    migrate(&conn).unwrap();
    let ledger_tables: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('lsps1_bolt11_payments', 'lsps1_refunds')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ledger_tables, 2);
    let version: i64 = conn
        .query_row("SELECT MAX(version) FROM lsps1_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);

    conn.execute(
        "INSERT INTO lsps1_schema (version) VALUES (?1)",
        [SCHEMA_VERSION + 1],
    )
    .unwrap();
    let err = OrderBook::open(&f.path, f.clock.clone())
        .err()
        .expect("newer schema refused");
    assert!(matches!(err, StoreError::NewerSchema { .. }));
    assert!(err.to_string().contains("upgrade lsp-node"));
}

#[test]
fn side_tables_refuse_rows_for_orders_that_do_not_exist() {
    let f = fixture();
    let missing = OrderId::parse("no-such-order").unwrap();
    let err = f
        .book
        .record_hold_answer(&missing, "HOLD")
        .expect_err("the foreign key to lsps1_orders is enforced");
    assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
    assert!(f.book.hold_answers(&missing).unwrap().is_empty());
}

#[test]
fn the_walk_reads_paid_watched_and_expired_orders_and_skips_lightning_orders_waiting_for_payment() {
    let mut f = fixture();
    let lightning_only = |f: &mut Fixture, client| {
        let mut order = new_order(&mut f.rng, key(client), T0, None);
        order.onchain = None;
        order
    };
    let waiting = lightning_only(&mut f, 1);
    let held = lightning_only(&mut f, 2);
    let on_chain = new_order(&mut f.rng, key(3), T0, None);
    for order in [&waiting, &held, &on_chain] {
        f.book.create_order(order, &Admission::default()).unwrap();
    }
    f.book
        .apply(&held.id, &OrderEvent::Bolt11HtlcHeld, "HTLC held")
        .unwrap();
    assert_eq!(
        sorted_ids(f.book.orders_needing_attention().unwrap()),
        sorted(vec![held.id.clone(), on_chain.id.clone()]),
        "the unpaid Lightning order needs nothing until it expires"
    );
    f.clock.advance(EXPIRY);
    assert_eq!(
        sorted_ids(f.book.orders_needing_attention().unwrap()),
        sorted(vec![
            waiting.id.clone(),
            held.id.clone(),
            on_chain.id.clone()
        ]),
        "an expired one is read, to be failed"
    );
}

#[test]
fn the_reservation_total_follows_every_reservation_and_is_rebuilt_by_the_migration() {
    let mut f = fixture();
    let orders: Vec<Order> = (1..=4)
        .map(|client| new_order(&mut f.rng, key(client), T0, None))
        .collect();
    for order in &orders {
        f.book
            .create_order(order, &reservation(order, 100_000_000))
            .unwrap();
    }
    let failed = OrderEvent::Failed {
        onchain_refund_pending: false,
    };
    f.book.apply(&orders[0].id, &failed, "expired").unwrap();
    f.book
        .apply(&orders[1].id, &OrderEvent::Bolt11HtlcHeld, "held")
        .unwrap();
    f.book
        .apply(
            &orders[1].id,
            &OrderEvent::ChannelFunded(channel(T0)),
            "funded",
        )
        .unwrap();
    let conn = rusqlite::Connection::open(&f.path).unwrap();
    let summed = |conn: &rusqlite::Connection| -> u64 {
        conn.query_row(
            "SELECT COALESCE(SUM(amount_sat), 0) FROM lsps1_reservations WHERE released_at IS NULL",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap() as u64
    };
    assert_eq!(f.book.reserved_sat().unwrap(), summed(&conn));
    assert_eq!(f.book.reserved_sat().unwrap(), 2 * 1_102_205);

    // A book written before the total existed gets it from its open reservations.
    conn.execute_batch(
        "DROP TABLE lsps1_reserved_total; DROP TRIGGER lsps1_reservation_taken; DROP TRIGGER lsps1_reservation_released; DROP TRIGGER lsps1_reservation_reopened; DROP TRIGGER lsps1_reservation_resized; DROP TRIGGER lsps1_reservation_deleted;
         DELETE FROM lsps1_schema; INSERT INTO lsps1_schema (version) VALUES (13);",
    )
    .unwrap();
    migrate(&conn).unwrap();
    assert_eq!(f.book.reserved_sat().unwrap(), 2 * 1_102_205);
    f.book.apply(&orders[2].id, &failed, "expired").unwrap();
    assert_eq!(f.book.reserved_sat().unwrap(), 1_102_205);
    assert_eq!(f.book.reserved_sat().unwrap(), summed(&conn));
}

fn sorted(mut ids: Vec<OrderId>) -> Vec<OrderId> {
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids
}

fn sorted_ids(orders: Vec<Order>) -> Vec<OrderId> {
    sorted(orders.into_iter().map(|o| o.id).collect())
}
