//! A devchain kept in a directory: restarts come back to the same chain, every change is on
//! disk when the call returns, and damaged files are refused with the path named.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::{
    absolute, transaction, Address, Amount, CompressedPublicKey, OutPoint, PrivateKey, ScriptBuf,
    Sequence, Transaction, TxIn, TxOut, Witness,
};

use super::*;
use crate::devchain::{unix_now, Devchain, DevchainOptions};

fn options(dir: &Path) -> DevchainOptions {
    DevchainOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        block_interval: None,
        data_dir: Some(dir.to_path_buf()),
    }
}

async fn start(dir: &Path) -> Devchain {
    Devchain::start(options(dir))
        .await
        .expect("devchain starts")
}

fn address(seed: u8) -> Address {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let key = PrivateKey::from_slice(&[seed; 32], Network::Regtest).unwrap();
    let public = CompressedPublicKey::from_private_key(&secp, &key).unwrap();
    Address::p2wpkh(&public, Network::Regtest)
}

/// An unsigned spend of `input` (scripts are not validated) paying `sats` to `to`.
fn spend(input: OutPoint, to: &Address, sats: u64) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: input,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(sats),
            script_pubkey: to.script_pubkey(),
        }],
    }
}

fn paying(devchain: &Devchain, txid: Txid, to: &Address) -> OutPoint {
    let tx = devchain.get_transaction(&txid).unwrap();
    let vout = tx
        .output
        .iter()
        .position(|output| output.script_pubkey == to.script_pubkey())
        .unwrap();
    OutPoint::new(txid, vout as u32)
}

/// Loads a consistent copy of the file of a devchain that keeps running: what a new process
/// would find if this one were killed now.
fn load_snapshot(dir: &Path) -> ChainState {
    let copy = tempfile::tempdir().unwrap();
    let reader = Connection::open(dir.join(FILE_NAME)).unwrap();
    reader
        .execute(
            "VACUUM INTO ?1",
            [copy.path().join(FILE_NAME).to_str().unwrap()],
        )
        .unwrap();
    let (chain, _store) = open(copy.path(), unix_now()).expect("the snapshot loads");
    chain
}

fn file_of(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

#[tokio::test]
async fn a_restarted_devchain_has_the_same_tip_transactions_mempool_and_stale_block() {
    let dir = tempfile::tempdir().unwrap();
    let devchain = start(dir.path()).await;
    assert!(
        file_of(dir.path()).exists(),
        "a fresh chain is stored at once"
    );
    let confirmed = devchain.fund(&address(1), 50_000).unwrap();
    let stale = devchain.mine(1)[0];
    let reorg = devchain.reorg(1, &[]).unwrap();
    assert_eq!(reorg.removed, vec![stale]);
    let first = devchain.fund(&address(2), 20_000).unwrap();
    let second = devchain.fund(&address(3), 30_000).unwrap();
    let tip = devchain.tip();
    assert_eq!(devchain.mempool_txids(), vec![first, second]);
    devchain.shutdown().await;

    let devchain = start(dir.path()).await;
    assert_eq!(devchain.tip(), tip);
    assert_eq!(devchain.mempool_txids(), vec![first, second]);
    assert_eq!(devchain.confirmations(&confirmed), Some(2));
    {
        let chain = devchain.inner.shared.lock();
        let entry = chain.block(&stale).expect("the stale block is still known");
        assert!(!entry.in_best_chain);
        assert_eq!(entry.height, tip.0 - 1);
        assert_eq!(chain.block_hash_at(tip.0 - 1), Some(reorg.added[0]));
    }
    // The chain goes on from there, and that is kept too.
    let next = devchain.mine(1)[0];
    assert_eq!(devchain.confirmations(&second), Some(1));
    devchain.shutdown().await;
    let devchain = start(dir.path()).await;
    assert_eq!(devchain.tip(), (tip.0 + 1, next));
    assert!(devchain.mempool_txids().is_empty());
}

#[tokio::test]
async fn every_change_is_on_disk_when_the_call_returns() {
    let dir = tempfile::tempdir().unwrap();
    let devchain = start(dir.path()).await;
    let on_disk = |devchain: &Devchain| {
        let chain = load_snapshot(dir.path());
        assert_eq!(chain.tip(), devchain.tip());
        assert_eq!(chain.mempool_txids(), devchain.mempool_txids());
        chain
    };
    on_disk(&devchain);

    let alice = address(1);
    let funding = devchain.fund(&alice, 100_000).unwrap();
    on_disk(&devchain);
    devchain.mine(2);
    on_disk(&devchain);
    let coin = paying(&devchain, funding, &alice);
    let low = devchain.send_raw(spend(coin, &address(2), 99_000)).unwrap();
    on_disk(&devchain);
    // A replacement paying more evicts the first spend; the file follows.
    let high = devchain.send_raw(spend(coin, &address(3), 95_000)).unwrap();
    let chain = on_disk(&devchain);
    assert_eq!(chain.mempool_txids(), vec![high]);
    assert!(chain.transaction(&low).is_none());
    devchain.invalidate(1).unwrap();
    on_disk(&devchain);
    let outcome = devchain.reorg(2, &[funding]).unwrap();
    let chain = on_disk(&devchain);
    assert!(chain.transaction(&funding).is_none());
    assert!(outcome.dropped.contains(&high));
    for hash in &outcome.removed {
        assert!(!chain.block(hash).unwrap().in_best_chain);
    }
}

#[tokio::test]
async fn http_control_routes_and_the_block_interval_miner_persist() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.block_interval = Some(Duration::from_millis(20));
    let devchain = Devchain::start(opts).await.unwrap();
    let start_height = devchain.tip().0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while devchain.tip().0 < start_height + 2 {
        assert!(tokio::time::Instant::now() < deadline, "no block was mined");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    devchain.shutdown().await;
    let after_miner = load_snapshot(dir.path()).tip();
    assert!(after_miner.0 >= start_height + 2);

    let devchain = start(dir.path()).await;
    assert_eq!(devchain.tip(), after_miner);
    let http = reqwest::Client::new();
    let post = |route: &str, body: serde_json::Value| {
        http.post(format!("{}{route}", devchain.base_url()))
            .json(&body)
            .send()
    };
    let funded: serde_json::Value = post(
        "/dev/fund",
        serde_json::json!({"address": address(4).to_string(), "sats": 10_000}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let txid: Txid = funded["txid"].as_str().unwrap().parse().unwrap();
    assert_eq!(load_snapshot(dir.path()).mempool_txids(), vec![txid]);
    let mined = post("/dev/mine", serde_json::json!({"blocks": 2}))
        .await
        .unwrap();
    assert_eq!(mined.status(), 200);
    assert_eq!(load_snapshot(dir.path()).confirmations(&txid), Some(2));
    let reorg = post("/dev/reorg", serde_json::json!({"depth": 2}))
        .await
        .unwrap();
    assert_eq!(reorg.status(), 200);
    assert_eq!(load_snapshot(dir.path()).tip(), devchain.tip());
    assert_eq!(load_snapshot(dir.path()).confirmations(&txid), Some(3));
}

#[tokio::test]
async fn a_stored_mempool_transaction_that_no_longer_validates_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let devchain = start(dir.path()).await;
    let kept = devchain.fund(&address(1), 10_000).unwrap();
    devchain.shutdown().await;
    // Spends an output that never existed: refused on the way back in.
    let invalid = spend(OutPoint::new(Txid::all_zeros(), 7), &address(2), 1_000);
    let conn = Connection::open(file_of(dir.path())).unwrap();
    conn.execute(
        "INSERT INTO devchain_mempool (arrival, txid, raw) VALUES (1000, ?1, ?2)",
        params![invalid.compute_txid().to_string(), serialize(&invalid)],
    )
    .unwrap();
    drop(conn);

    let devchain = start(dir.path()).await;
    assert_eq!(devchain.mempool_txids(), vec![kept]);
    devchain.shutdown().await;
    let conn = Connection::open(file_of(dir.path())).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM devchain_mempool", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(rows, 1, "the dropped transaction is gone from the file too");
}

/// A stored chain (premine plus a few blocks, one stale, one transaction waiting), closed.
async fn stored_chain(dir: &Path) {
    let devchain = start(dir).await;
    devchain.fund(&address(1), 10_000).unwrap();
    devchain.mine(3);
    devchain.reorg(1, &[]).unwrap();
    devchain.fund(&address(2), 10_000).unwrap();
    devchain.shutdown().await;
}

/// Starting on `dir` fails with an error naming the file; the file is left as it was.
async fn refused(dir: &Path) -> DevchainError {
    let path = file_of(dir);
    let before = std::fs::read(&path).unwrap();
    let err = match Devchain::start(options(dir)).await {
        Ok(_) => panic!("a damaged file must not start"),
        Err(err) => err,
    };
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "{message} names the file"
    );
    assert!(!message.contains('\n'), "{message} is one line");
    assert_eq!(std::fs::read(&path).unwrap(), before, "no fresh chain");
    err
}

fn edit(dir: &Path, sql: &str) {
    let conn = Connection::open(file_of(dir)).unwrap();
    conn.execute_batch(sql).unwrap();
}

#[tokio::test]
async fn garbage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(file_of(dir.path()), vec![0x5a; 8192]).unwrap();
    let err = refused(dir.path()).await;
    assert!(matches!(err, DevchainError::StoreDamaged { .. }), "{err}");
}

#[tokio::test]
async fn a_truncated_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    stored_chain(dir.path()).await;
    let path = file_of(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let err = refused(dir.path()).await;
    assert!(matches!(err, DevchainError::StoreDamaged { .. }), "{err}");
}

#[tokio::test]
async fn another_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    stored_chain(dir.path()).await;
    edit(
        dir.path(),
        "UPDATE devchain_meta SET value = '2' WHERE key = 'format_version'",
    );
    let err = refused(dir.path()).await;
    assert!(
        matches!(&err, DevchainError::StoreVersion { found, .. } if found == "2"),
        "{err}"
    );
}

#[tokio::test]
async fn another_genesis_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    stored_chain(dir.path()).await;
    let signet = genesis_block(Network::Signet).block_hash();
    edit(
        dir.path(),
        &format!("UPDATE devchain_meta SET value = '{signet}' WHERE key = 'genesis_hash'"),
    );
    let err = refused(dir.path()).await;
    assert!(
        matches!(err, DevchainError::StoreOtherChain { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn bad_block_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    stored_chain(dir.path()).await;
    edit(
        dir.path(),
        "UPDATE devchain_blocks SET raw = x'00112233' WHERE seq = 50",
    );
    let err = refused(dir.path()).await;
    assert!(
        err.to_string()
            .contains("block number 50 cannot be decoded"),
        "{err}"
    );
}

#[tokio::test]
async fn a_broken_link_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    stored_chain(dir.path()).await;
    edit(dir.path(), "DELETE FROM devchain_blocks WHERE seq = 50");
    let err = refused(dir.path()).await;
    assert!(
        err.to_string()
            .contains("does not build on the block before it"),
        "{err}"
    );
}

#[tokio::test]
async fn a_block_swapped_for_another_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    stored_chain(dir.path()).await;
    // Block 60's bytes under block 50's row: a valid block, but not the one stored there.
    edit(
        dir.path(),
        "UPDATE devchain_blocks SET raw = (SELECT raw FROM devchain_blocks WHERE seq = 60) WHERE seq = 50",
    );
    let err = refused(dir.path()).await;
    assert!(err.to_string().contains("hashes to"), "{err}");
}
