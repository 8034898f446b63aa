//! Tests of the order record, its state machine, ids and rendering, and order fixtures for
//! the other files' tests.

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
        client_node_id: Some(client_key()),
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
        extension: None,
        customer: None,
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
fn order_ids_are_random_bounded_reproducible_with_a_seed_and_sort_by_creation_time() {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_322_000_123);
    let a = OrderId::generate(at, &mut StdRng::seed_from_u64(1));
    let b = OrderId::generate(at, &mut StdRng::seed_from_u64(1));
    let c = OrderId::generate(at, &mut StdRng::seed_from_u64(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.as_str().len(), 44);
    assert!(a.as_str().starts_with("01a20187b2fb"), "{a}");
    assert!(OrderId::parse(a.as_str()).is_ok());
    let mut rng = rand::rngs::OsRng;
    let ids: std::collections::HashSet<_> =
        (0..1000).map(|_| OrderId::generate(at, &mut rng)).collect();
    assert_eq!(ids.len(), 1000);
    // A millisecond later sorts after, whatever the random part.
    let later = at + std::time::Duration::from_millis(1);
    for seed in 0..100 {
        let earlier = OrderId::generate(at, &mut StdRng::seed_from_u64(seed));
        let after = OrderId::generate(later, &mut StdRng::seed_from_u64(seed + 1));
        assert!(earlier.as_str() < after.as_str(), "{earlier} {after}");
    }
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
        (Paid, ExpectPayment),
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
        OrderEvent::OnchainPaymentLost,
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
fn an_order_is_paid_once_whichever_way_the_second_payment_comes() {
    let order = sample_order(true, true);
    let paid_onchain = order
        .apply(&OrderEvent::OnchainPaymentConfirmed, 0)
        .unwrap();
    assert_eq!(
        paid_onchain.apply(&OrderEvent::Bolt11HtlcHeld, 0),
        Err(TransitionError::AlreadyPaid {
            order: order.id.clone(),
            by: "onchain"
        }),
        "an HTLC after the on-chain payment is failed back, not held and claimed"
    );
    let held = order.apply(&OrderEvent::Bolt11HtlcHeld, 0).unwrap();
    assert_eq!(
        held.apply(&OrderEvent::OnchainPaymentConfirmed, 0),
        Err(TransitionError::AlreadyPaid {
            order: order.id.clone(),
            by: "bolt11"
        }),
        "an on-chain payment after the held HTLC is refunded, not taken"
    );
}

#[test]
fn a_lost_onchain_payment_reopens_the_option_until_the_channel_is_funded() {
    let order = sample_order(true, true);
    let paid = order
        .apply(&OrderEvent::OnchainPaymentConfirmed, 10)
        .unwrap();
    let lost = paid.apply(&OrderEvent::OnchainPaymentLost, 20).unwrap();
    assert_eq!(lost.state, OrderState::Created);
    assert_eq!(
        lost.onchain.as_ref().unwrap().state,
        PaymentState::ExpectPayment
    );
    assert_eq!(lost.updated_at, 20);
    // Waiting again, it may be paid either way, or fail with nothing to refund.
    assert!(lost.apply(&OrderEvent::OnchainPaymentConfirmed, 30).is_ok());
    assert!(lost.apply(&OrderEvent::Bolt11HtlcHeld, 30).is_ok());
    let failed = lost
        .apply(
            &OrderEvent::Failed {
                onchain_refund_pending: false,
            },
            30,
        )
        .unwrap();
    assert_eq!(
        failed.onchain.as_ref().unwrap().state,
        PaymentState::Refunded
    );
    // Nothing to lose before a payment, and nothing to take back once the channel is funded.
    assert!(order.apply(&OrderEvent::OnchainPaymentLost, 30).is_err());
    let completed = paid
        .apply(&OrderEvent::ChannelFunded(channel()), 30)
        .unwrap();
    assert!(completed
        .apply(&OrderEvent::OnchainPaymentLost, 40)
        .is_err());
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
