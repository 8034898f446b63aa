//! Customer accounts and their credit in the order book (a real SQLite file): API keys are
//! shown once and stored only as a hash, rotate and disable take effect at once; the credit
//! ledger never goes negative, also under two connections spending one balance at once, and
//! survives a reopen.

use std::sync::{Arc, Barrier};
use std::thread;

use lsp_node::lsps1::clock::ManualClock;
use lsp_node::lsps1::customers::{ApiKey, CreditKind, CustomerError};
use lsp_node::lsps1::order::OrderId;
use lsp_node::lsps1::store::OrderBook;

const T0: u64 = 1_795_321_324;

fn open(path: &std::path::Path) -> OrderBook {
    OrderBook::open(path, Arc::new(ManualClock::new(T0))).unwrap()
}

fn order_id(n: u8) -> OrderId {
    OrderId::parse(&format!("order-{n}")).unwrap()
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
