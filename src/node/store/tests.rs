//! Tests of the node store.

use super::*;
use bitcoin::secp256k1::{Secp256k1, SecretKey};

fn node_id(byte: u8) -> PublicKey {
    PublicKey::from_secret_key(
        &Secp256k1::new(),
        &SecretKey::from_slice(&[byte; 32]).unwrap(),
    )
}

fn payment(byte: u8, created_at: u64) -> PaymentRecord {
    PaymentRecord {
        payment_hash: PaymentHash([byte; 32]),
        preimage: None,
        direction: PaymentDirection::Inbound,
        amount_msat: Some(1_000 * byte as u64),
        fee_paid_msat: None,
        status: PaymentStatus::Pending,
        created_at,
        updated_at: created_at,
    }
}

fn open_temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("node.sqlite")).unwrap();
    (dir, store)
}

#[test]
fn kv_round_trip_overwrite_and_not_found() {
    let (_dir, store) = open_temp();
    let err = store.read("monitors", "", "abc").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);

    store.write("monitors", "", "abc", vec![1, 2, 3]).unwrap();
    assert_eq!(store.read("monitors", "", "abc").unwrap(), vec![1, 2, 3]);
    store.write("monitors", "", "abc", vec![9]).unwrap();
    assert_eq!(store.read("monitors", "", "abc").unwrap(), vec![9]);
    // The same key in another namespace is a different entry.
    store.write("monitors", "sub", "abc", vec![7]).unwrap();
    store.write("", "", "manager", vec![]).unwrap();
    assert_eq!(store.read("monitors", "", "abc").unwrap(), vec![9]);
    assert_eq!(store.read("monitors", "sub", "abc").unwrap(), vec![7]);
    assert_eq!(store.read("", "", "manager").unwrap(), Vec::<u8>::new());
}

#[test]
fn kv_list_and_remove() {
    let (_dir, store) = open_temp();
    assert!(store.list("monitors", "").unwrap().is_empty());
    for key in ["b", "a", "c"] {
        store
            .write("monitors", "", key, key.as_bytes().to_vec())
            .unwrap();
    }
    store.write("monitors", "updates", "x", vec![1]).unwrap();
    store.write("other", "", "a", vec![1]).unwrap();
    let mut keys = store.list("monitors", "").unwrap();
    keys.sort();
    assert_eq!(keys, vec!["a", "b", "c"]);
    assert_eq!(store.list("monitors", "updates").unwrap(), vec!["x"]);

    store.remove("monitors", "", "b", false).unwrap();
    store.remove("monitors", "", "c", true).unwrap();
    // Removing what is not there succeeds and changes nothing.
    store.remove("monitors", "", "missing", false).unwrap();
    assert_eq!(store.list("monitors", "").unwrap(), vec!["a"]);
    assert_eq!(
        store.read("monitors", "", "b").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(store.read("other", "", "a").unwrap(), vec![1]);
}

#[test]
fn kv_rejects_invalid_namespaces_and_keys_without_writing() {
    let (_dir, store) = open_temp();
    let too_long = "a".repeat(KVSTORE_NAMESPACE_KEY_MAX_LEN + 1);
    let longest = "a".repeat(KVSTORE_NAMESPACE_KEY_MAX_LEN);
    let bad: &[(&str, &str, &str)] = &[
        ("", "secondary", "key"),
        ("ns", "", ""),
        ("ns/slash", "", "key"),
        ("ns", "sp ace", "key"),
        ("ns", "", "dot.key"),
        ("ns", "", "ü"),
        (&too_long, "", "key"),
        ("ns", "", &too_long),
    ];
    for (p, s, k) in bad {
        let write = store.write(p, s, k, vec![1]).unwrap_err();
        assert_eq!(
            write.kind(),
            io::ErrorKind::InvalidInput,
            "{p:?}/{s:?}/{k:?}"
        );
        assert_eq!(
            store.read(p, s, k).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            store.remove(p, s, k, false).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
    assert_eq!(
        store.list("", "secondary").unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(store.list("a-b", "c_d").unwrap(), Vec::<String>::new());
    let count: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM kv_store", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 0);
    // The limits themselves are fine.
    store.write(&longest, &longest, &longest, vec![1]).unwrap();
    store.write("A-z_09", "", "K-y_1", vec![2]).unwrap();
    assert_eq!(store.read("A-z_09", "", "K-y_1").unwrap(), vec![2]);
}

#[test]
fn everything_survives_reopen_and_settings_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sqlite");
    {
        let store = Store::open(&path).unwrap();
        store.write("monitors", "", "chan", vec![4, 5, 6]).unwrap();
        store.upsert_peer(&node_id(1), "127.0.0.1:9735").unwrap();
        store.upsert_payment(&payment(1, 100)).unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.path(), path);
    assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as u32);
    assert_eq!(store.read("monitors", "", "chan").unwrap(), vec![4, 5, 6]);
    assert_eq!(
        store.peers().unwrap(),
        vec![(node_id(1), "127.0.0.1:9735".to_string())]
    );
    assert_eq!(
        store.payment(&PaymentHash([1; 32])).unwrap(),
        Some(payment(1, 100))
    );

    let conn = store.conn();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let synchronous: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(synchronous, 2, "synchronous must be FULL");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sqlite");
    drop(Store::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    drop(conn);
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn unopenable_path_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("node.sqlite");
    let err = Store::open(&path).unwrap_err();
    assert!(err.to_string().contains("missing-dir"), "{err}");
}

#[test]
fn peers_upsert_replace_and_remove() {
    let (_dir, store) = open_temp();
    store.upsert_peer(&node_id(2), "10.0.0.2:9735").unwrap();
    store.upsert_peer(&node_id(1), "10.0.0.1:9735").unwrap();
    store.upsert_peer(&node_id(2), "[::1]:9736").unwrap();
    let mut expected = vec![
        (node_id(1), "10.0.0.1:9735".to_string()),
        (node_id(2), "[::1]:9736".to_string()),
    ];
    expected.sort_by_key(|(id, _)| id.to_string());
    assert_eq!(store.peers().unwrap(), expected);

    assert!(matches!(
        store.upsert_peer(&node_id(3), " "),
        Err(StoreError::InvalidInput(_))
    ));
    store.remove_peer(&node_id(2)).unwrap();
    store.remove_peer(&node_id(9)).unwrap();
    assert_eq!(
        store.peers().unwrap(),
        vec![(node_id(1), "10.0.0.1:9735".to_string())]
    );
}

#[test]
fn payments_upsert_keeps_creation_time_and_lists_oldest_first() {
    let (_dir, store) = open_temp();
    assert_eq!(store.payment(&PaymentHash([5; 32])).unwrap(), None);
    store.upsert_payment(&payment(2, 200)).unwrap();
    store.upsert_payment(&payment(1, 100)).unwrap();

    let mut done = payment(2, 999);
    done.updated_at = 300;
    done.status = PaymentStatus::Succeeded;
    done.preimage = Some(PaymentPreimage([0xab; 32]));
    done.direction = PaymentDirection::Outbound;
    done.fee_paid_msat = Some(12);
    done.amount_msat = Some(u64::MAX >> 1);
    store.upsert_payment(&done).unwrap();

    let stored = store.payment(&PaymentHash([2; 32])).unwrap().unwrap();
    assert_eq!(
        stored,
        PaymentRecord {
            created_at: 200,
            ..done.clone()
        }
    );
    let all = store.payments().unwrap();
    assert_eq!(
        all.iter().map(|p| p.payment_hash).collect::<Vec<_>>(),
        vec![PaymentHash([1; 32]), PaymentHash([2; 32])]
    );

    let info = PaymentInfo::from(&stored);
    assert_eq!(info.payment_hash, "02".repeat(32));
    assert_eq!(info.status, PaymentStatus::Succeeded);
    assert_eq!(info.created_at, 200);
    assert_eq!(info.updated_at, 300);

    let mut too_big = payment(3, 1);
    too_big.amount_msat = Some(u64::MAX);
    assert!(matches!(
        store.upsert_payment(&too_big),
        Err(StoreError::InvalidInput(_))
    ));
    assert_eq!(store.payment(&PaymentHash([3; 32])).unwrap(), None);
}

/// The parent re-runs this test binary (only this test) as a child process that writes,
/// acknowledges on stdout, then aborts without any cleanup. The parent then reopens the
/// database and must find everything the child acknowledged.
#[test]
fn data_acknowledged_before_a_crash_is_readable_after_reopen() {
    const CHILD_ENV: &str = "LSP_NODE_STORE_CRASH_CHILD_DB";
    if let Ok(path) = std::env::var(CHILD_ENV) {
        let store = Store::open(Path::new(&path)).unwrap();
        for i in 0..50u8 {
            store
                .write("monitors", "", &format!("m{i}"), vec![i; 1000])
                .unwrap();
        }
        store.upsert_peer(&node_id(7), "127.0.0.1:1").unwrap();
        store.upsert_payment(&payment(7, 7)).unwrap();
        // Hold the connection open (no checkpoint, no close) while dying.
        println!("ACKNOWLEDGED");
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        std::process::abort();
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.sqlite");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "node::store::tests::data_acknowledged_before_a_crash_is_readable_after_reopen",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ACKNOWLEDGED"),
        "child did not reach its acknowledgement: {stdout}"
    );
    assert!(
        !output.status.success(),
        "the child must have died abruptly"
    );
    // The write-ahead log is still there: nothing was checkpointed on a clean close.
    assert!(dir.path().join("node.sqlite-wal").exists());

    let store = Store::open(&path).unwrap();
    for i in 0..50u8 {
        assert_eq!(
            store.read("monitors", "", &format!("m{i}")).unwrap(),
            vec![i; 1000]
        );
    }
    assert_eq!(
        store.peers().unwrap(),
        vec![(node_id(7), "127.0.0.1:1".to_string())]
    );
    assert_eq!(
        store.payment(&PaymentHash([7; 32])).unwrap(),
        Some(payment(7, 7))
    );
}

fn dummy_tx(lock_time: u32) -> bitcoin::Transaction {
    bitcoin::Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::from_consensus(lock_time),
        input: Vec::new(),
        output: vec![bitcoin::TxOut {
            value: bitcoin::Amount::from_sat(10_000),
            script_pubkey: bitcoin::ScriptBuf::new(),
        }],
    }
}

#[test]
fn kept_broadcasts_move_from_signed_to_settled_and_settled_ones_stay_settled() {
    let (dir, store) = open_temp();
    let funding = dummy_tx(1);
    let refund = dummy_tx(2);
    assert!(!store
        .keep_broadcast(&funding, BroadcastState::Signed, 100)
        .unwrap());
    assert!(store
        .keep_broadcast(&refund, BroadcastState::Sending, 100)
        .unwrap());
    // LDK broadcasting the funding transaction we signed: from signed to sending, post now.
    assert!(store
        .keep_broadcast(&funding, BroadcastState::Sending, 101)
        .unwrap());
    // A second `Signed` (a replayed hold) does not take it back.
    store
        .keep_broadcast(&funding, BroadcastState::Signed, 102)
        .unwrap();
    let funding_id = funding.compute_txid();
    let kept = store.kept_broadcast(&funding_id).unwrap().unwrap();
    assert_eq!(kept.state, BroadcastState::Sending);
    assert_eq!(kept.tx, funding);

    store
        .update_broadcast(&funding_id, BroadcastState::Sending, None, Some("503"), 103)
        .unwrap();
    store
        .update_broadcast(&funding_id, BroadcastState::Seen, Some(7), None, 104)
        .unwrap();
    let kept = store.kept_broadcast(&funding_id).unwrap().unwrap();
    assert_eq!(
        (kept.state, kept.failed_posts, kept.confirmed_height),
        (BroadcastState::Seen, 1, Some(7))
    );
    assert_eq!(kept.last_error.as_deref(), Some("503"));
    // Reorganised out of its block: seen again without a height.
    store
        .update_broadcast(&funding_id, BroadcastState::Seen, None, None, 105)
        .unwrap();
    let kept = store.kept_broadcast(&funding_id).unwrap().unwrap();
    assert_eq!(kept.confirmed_height, None);

    store
        .update_broadcast(&funding_id, BroadcastState::Final, Some(8), None, 106)
        .unwrap();
    store
        .update_broadcast(
            &funding_id,
            BroadcastState::Sending,
            None,
            Some("late"),
            107,
        )
        .unwrap();
    assert!(!store
        .keep_broadcast(&funding, BroadcastState::Sending, 108)
        .unwrap());
    let kept = store.kept_broadcast(&funding_id).unwrap().unwrap();
    assert_eq!(
        kept.state,
        BroadcastState::Final,
        "a settled one stays settled"
    );

    let open: Vec<_> = store
        .open_broadcasts()
        .unwrap()
        .into_iter()
        .map(|k| k.txid)
        .collect();
    assert_eq!(open, vec![refund.compute_txid()]);
    drop(store);
    let reopened = Store::open(&dir.path().join("node.sqlite")).unwrap();
    assert_eq!(reopened.open_broadcasts().unwrap().len(), 1);
    assert!(reopened
        .kept_broadcast(&dummy_tx(3).compute_txid())
        .unwrap()
        .is_none());
}
