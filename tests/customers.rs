//! Customer accounts and their credit in the order book (a real SQLite file): API keys are
//! shown once and stored only as a hash, rotate and disable take effect at once; the credit
//! ledger never goes negative, also under two connections spending one balance at once, and
//! survives a reopen.

use std::sync::{Arc, Barrier};
use std::thread;

use lsp_node::lsps1::claims::ClaimToken;
use lsp_node::lsps1::clock::ManualClock;
use lsp_node::lsps1::credit::CreditError;
use lsp_node::lsps1::customers::{ApiKey, CreditKind, CustomerError};
use lsp_node::lsps1::new_orders::Admission;
use lsp_node::lsps1::order::{
    Bolt11Payment, Interface, Order, OrderCustomer, OrderEvent, OrderId, OrderParams, OrderState,
    PaymentState,
};
use lsp_node::lsps1::pricing::PriceBreakdown;
use lsp_node::lsps1::store::{OrderBook, StoreError};

const T0: u64 = 1_795_321_324;

fn open(path: &std::path::Path) -> OrderBook {
    OrderBook::open(path, Arc::new(ManualClock::new(T0))).unwrap()
}

fn order_id(n: u8) -> OrderId {
    OrderId::parse(&format!("order-{n}")).unwrap()
}

/// A customer's pay-first order of `total` sats, `credit_used` of it from credit (no payment
/// option when credit pays it all).
fn customer_order(n: u8, customer_id: &str, total: u64, credit_used: u64) -> Order {
    let price = PriceBreakdown {
        base_fee_sat: total,
        proportional_fee_sat: 0,
        lease_fee_sat: 0,
        onchain_fee_sat: 0,
        refund_reserve_sat: 0,
        discount_sat: 0,
        fee_total_sat: total,
        order_total_sat: total,
    };
    Order {
        id: order_id(n),
        client_node_id: None,
        params: OrderParams {
            lsp_balance_sat: 100_000,
            client_balance_sat: 0,
            required_channel_confirmations: 0,
            funding_confirms_within_blocks: 6,
            channel_expiry_blocks: 2_016,
            token: None,
            announce_channel: false,
        },
        refund_onchain_address: None,
        created_at: T0,
        expires_at: T0 + 3_600,
        state: OrderState::Created,
        bolt11: (credit_used < total).then(|| Bolt11Payment {
            state: PaymentState::ExpectPayment,
            expires_at: T0 + 3_600,
            fee_total_sat: total - credit_used,
            order_total_sat: total - credit_used,
            invoice: "lnbcrt1test".into(),
        }),
        onchain: None,
        channel: None,
        price,
        coupon_code: None,
        source: Interface::Flow,
        email: None,
        updated_at: T0,
        extension: None,
        customer: Some(OrderCustomer {
            customer_id: customer_id.to_string(),
            credit_used_sat: credit_used,
        }),
    }
}

fn ticket(n: u8) -> ClaimToken {
    ClaimToken::derived(&[7; 32], &order_id(n))
}

#[test]
fn keys_are_shown_once_stored_hashed_and_rotate_and_disable_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sqlite");
    let book = open(&path);
    let (acme, key) = book.add_customer("  Acme wallet ").unwrap();
    assert_eq!(acme.name, "Acme wallet");
    assert_eq!(key.reveal().len(), 64);
    assert_eq!(book.customer_by_key(&key).unwrap(), Some(acme.clone()));
    assert_eq!(
        book.customer_by_key(&ApiKey::from_client("guess")).unwrap(),
        None
    );
    assert!(matches!(
        book.add_customer("Acme wallet"),
        Err(CustomerError::NameTaken(_))
    ));
    for bad in ["", "   ", "tab\there", &"x".repeat(65)] {
        assert!(
            matches!(book.add_customer(bad), Err(CustomerError::BadName)),
            "{bad:?}"
        );
    }
    // Nowhere on disk in the clear: the database and its write-ahead log.
    drop(book);
    for file in ["node.sqlite", "node.sqlite-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(key.reveal()), "{file} holds the key");
        }
    }
    let book = open(&path);
    assert_eq!(
        book.customer_by_key(&key).unwrap(),
        Some(acme.clone()),
        "after a reopen"
    );

    let rotated = book.rotate_customer_key("Acme wallet").unwrap();
    assert_eq!(
        book.customer_by_key(&key).unwrap(),
        None,
        "the old key stops at once"
    );
    assert_eq!(book.customer_by_key(&rotated).unwrap().unwrap().id, acme.id);

    book.set_customer_disabled(&acme.id, true).unwrap();
    assert_eq!(book.customer_by_key(&rotated).unwrap(), None);
    book.set_customer_disabled(&acme.id, false).unwrap();
    assert!(book.customer_by_key(&rotated).unwrap().is_some());
    assert!(matches!(
        book.rotate_customer_key("nobody"),
        Err(CustomerError::Unknown(_))
    ));
}

#[test]
fn the_credit_ledger_never_goes_negative_and_a_customer_with_credit_stays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sqlite");
    let book = open(&path);
    let (customer, _) = book.add_customer("Exchange").unwrap();
    let id = customer.id.as_str();
    assert_eq!(book.credit_balance(id).unwrap(), 0);
    assert_eq!(
        book.record_credit(id, 5_000, &CreditKind::Coupon("WELCOME".into()))
            .unwrap(),
        5_000
    );
    assert_eq!(
        book.record_credit(id, 3_000, &CreditKind::OrderDebit(order_id(1)))
            .unwrap(),
        2_000
    );
    assert!(matches!(
        book.record_credit(id, 2_001, &CreditKind::OrderDebit(order_id(2))),
        Err(CustomerError::InsufficientCredit {
            balance_sat: 2_000,
            needed_sat: 2_001
        })
    ));
    assert!(matches!(
        book.record_credit(id, 0, &CreditKind::Adjustment("nothing".into())),
        Err(CustomerError::ZeroAmount)
    ));
    book.record_credit(id, 500, &CreditKind::OrderCancelled(order_id(3)))
        .unwrap();
    book.record_credit(id, 100, &CreditKind::Adjustment("goodwill".into()))
        .unwrap();
    let entries = book.credit_entries(id).unwrap();
    let rows: Vec<(i64, &str, u64)> = entries
        .iter()
        .map(|e| (e.amount_sat, e.kind.as_str(), e.balance_after_sat))
        .collect();
    assert_eq!(
        rows,
        [
            (5_000, "coupon", 5_000),
            (-3_000, "order_debit", 2_000),
            (500, "order_cancelled", 2_500),
            (100, "adjustment", 2_600)
        ],
        "the refused debit wrote nothing"
    );
    assert_eq!(entries[1].order_id.as_deref(), Some("order-1"));
    assert_eq!(entries[0].coupon_code.as_deref(), Some("WELCOME"));
    assert_eq!(entries[3].reason, "goodwill");

    assert!(matches!(
        book.delete_customer("Exchange"),
        Err(CustomerError::HasCredit(_, 2_600))
    ));
    drop(book);
    let book = open(&path);
    assert_eq!(book.credit_balance(id).unwrap(), 2_600, "after a reopen");
    book.record_credit(id, 2_600, &CreditKind::OrderDebit(order_id(4)))
        .unwrap();
    book.delete_customer("Exchange").unwrap();
    assert_eq!(book.customer("Exchange").unwrap(), None);
}

/// Two connections (two books on one file, as two processes would be) spend one balance at
/// once: exactly as many debits as the balance covers succeed.
#[test]
fn two_connections_spending_one_balance_cannot_overdraw_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sqlite");
    let book = open(&path);
    let (customer, _) = book.add_customer("Wallet").unwrap();
    book.record_credit(
        &customer.id,
        1_000,
        &CreditKind::Adjustment("top up".into()),
    )
    .unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let spenders: Vec<_> = (0..2u8)
        .map(|side| {
            let (path, id, barrier) = (path.clone(), customer.id.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                let book = open(&path);
                barrier.wait();
                (0..20u8)
                    .filter(|n| {
                        let order = order_id(side * 100 + n);
                        match book.record_credit(&id, 100, &CreditKind::OrderDebit(order)) {
                            Ok(_) => true,
                            Err(CustomerError::InsufficientCredit { .. }) => false,
                            Err(other) => panic!("{other}"),
                        }
                    })
                    .count()
            })
        })
        .collect();
    let spent: usize = spenders.into_iter().map(|s| s.join().unwrap()).sum();
    assert_eq!(spent, 10, "1 000 sat pay for ten debits of 100");
    assert_eq!(book.credit_balance(&customer.id).unwrap(), 0);
    let entries = book.credit_entries(&customer.id).unwrap();
    assert!(entries.iter().all(|e| e.balance_after_sat <= 1_000));
    assert_eq!(entries.len(), 11);
}

/// A customer's order debits the credit it uses with the order, all or nothing; a failed
/// order gives it back; a cancel to credit keeps it; another customer cannot see the order.
#[test]
fn a_customer_order_debits_its_credit_with_the_order_and_failure_returns_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sqlite");
    let book = open(&path);
    let (acme, _) = book.add_customer("Acme").unwrap();
    let (other, _) = book.add_customer("Other").unwrap();
    book.record_credit(&acme.id, 1_000, &CreditKind::Adjustment("top up".into()))
        .unwrap();

    let partly = customer_order(1, &acme.id, 1_500, 600);
    book.create_customer_order(&partly, &Admission::default(), &ticket(1))
        .unwrap();
    assert_eq!(book.credit_balance(&acme.id).unwrap(), 400);
    assert!(book.customer_order(&acme.id, &partly.id).unwrap().is_some());
    assert!(
        book.customer_order(&other.id, &partly.id)
            .unwrap()
            .is_none(),
        "another customer's order is not found"
    );
    assert_eq!(
        book.order_by_token(&ticket(1)).unwrap().unwrap().id,
        partly.id,
        "the ticket claims it"
    );

    // More credit than is left: refused, and neither the order nor a debit is written.
    let greedy = customer_order(2, &acme.id, 1_000, 500);
    assert!(matches!(
        book.create_customer_order(&greedy, &Admission::default(), &ticket(2)),
        Err(StoreError::Credit(CreditError::Insufficient {
            balance_sat: 400,
            needed_sat: 500
        }))
    ));
    assert_eq!(book.order(&greedy.id).unwrap(), None);
    assert_eq!(book.order_by_token(&ticket(2)).unwrap(), None);
    assert_eq!(book.credit_balance(&acme.id).unwrap(), 400);

    // The order fails (it expired unpaid): its credit comes back.
    book.apply(
        &partly.id,
        &OrderEvent::Failed {
            onchain_refund_pending: false,
        },
        "the order expired unpaid",
    )
    .unwrap();
    assert_eq!(book.credit_balance(&acme.id).unwrap(), 1_000);

    // Wholly paid by credit: no payment option, and paid at once.
    let covered = customer_order(3, &acme.id, 700, 700);
    assert!(covered.paid_by_credit() && !covered.is_expired_unpaid(T0 + 7_200));
    book.create_customer_order(&covered, &Admission::default(), &ticket(3))
        .unwrap();
    assert_eq!(book.credit_balance(&acme.id).unwrap(), 300);
    assert!(matches!(
        book.delete_customer("Acme"),
        Err(CustomerError::HasCredit(..))
    ));
    let cancelled = book
        .apply(&covered.id, &OrderEvent::CancelledToCredit, "cancelled")
        .unwrap();
    assert_eq!(cancelled.state, OrderState::Failed);
    assert_eq!(book.credit_balance(&acme.id).unwrap(), 1_000);
    let kinds: Vec<(i64, String)> = book
        .credit_entries(&acme.id)
        .unwrap()
        .into_iter()
        .map(|e| (e.amount_sat, e.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            (1_000, "adjustment".to_string()),
            (-600, "order_debit".to_string()),
            (600, "order_cancelled".to_string()),
            (-700, "order_debit".to_string()),
            (700, "order_cancelled".to_string())
        ]
    );
    assert!(
        book.apply(&covered.id, &OrderEvent::CancelledToCredit, "again")
            .is_err(),
        "a failed order is not cancelled twice"
    );
    assert_eq!(
        book.credit_balance(&acme.id).unwrap(),
        1_000,
        "credited once"
    );

    drop(book);
    let book = open(&path);
    assert_eq!(
        book.credit_balance(&acme.id).unwrap(),
        1_000,
        "after a reopen"
    );
    assert_eq!(
        book.customer_order_ids(&acme.id).unwrap().len(),
        2,
        "the refused order was never written"
    );
}

/// Two connections create orders on one balance at once: only one gets the credit.
#[test]
fn two_orders_at_once_cannot_both_spend_one_credit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sqlite");
    let book = open(&path);
    let (customer, _) = book.add_customer("Wallet").unwrap();
    book.record_credit(
        &customer.id,
        1_000,
        &CreditKind::Adjustment("top up".into()),
    )
    .unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let creators: Vec<_> = (0..2u8)
        .map(|n| {
            let barrier = Arc::clone(&barrier);
            let path = path.clone();
            let customer_id = customer.id.clone();
            thread::spawn(move || {
                let book = open(&path);
                let order = customer_order(10 + n, &customer_id, 800, 800);
                barrier.wait();
                book.create_customer_order(&order, &Admission::default(), &ticket(10 + n))
                    .is_ok()
            })
        })
        .collect();
    let created: Vec<bool> = creators.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(created.iter().filter(|ok| **ok).count(), 1, "{created:?}");
    assert_eq!(book.credit_balance(&customer.id).unwrap(), 200);
    assert_eq!(book.customer_order_ids(&customer.id).unwrap().len(), 1);
}

#[test]
fn a_credit_coupon_is_redeemed_once_by_its_own_customer() {
    let dir = tempfile::tempdir().unwrap();
    let book = open(&dir.path().join("node.sqlite"));
    let (acme, _) = book.add_customer("Acme").unwrap();
    let (other, _) = book.add_customer("Other").unwrap();
    let coupon = book.issue_credit_coupon("Acme", 2_000).unwrap();
    assert!(matches!(
        book.issue_credit_coupon("Acme", 0),
        Err(CustomerError::BadCouponAmount)
    ));
    assert!(matches!(
        book.redeem_credit_coupon(&other.id, &coupon.code),
        Err(CustomerError::UnknownCoupon(_))
    ));
    let (redeemed, balance) = book.redeem_credit_coupon(&acme.id, &coupon.code).unwrap();
    assert_eq!((redeemed.amount_sat, balance), (2_000, 2_000));
    assert!(redeemed.redeemed_at.is_some());
    assert!(matches!(
        book.redeem_credit_coupon(&acme.id, &coupon.code),
        Err(CustomerError::CouponRedeemed(_))
    ));
    assert_eq!(
        book.credit_balance(&acme.id).unwrap(),
        2_000,
        "credited once"
    );
    assert_eq!(book.credit_balance(&other.id).unwrap(), 0);
    let listed = book.credit_coupons(&acme.id).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].redeemed_at.is_some());
    assert!(book.credit_coupons(&other.id).unwrap().is_empty());
}
