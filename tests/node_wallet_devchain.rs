//! The on-chain wallet against a real devchain over HTTP: funding, sync, sends, restart,
//! insufficient funds, channel funding transactions and the inputs LDK gets for fee bumping.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::HashSet;

use bitcoin::{Amount, FeeRate, Network, ScriptBuf, Transaction, Txid};
use lightning::util::wallet_utils::WalletSourceSync;
use lsp_node::devchain::{Devchain, DevchainOptions};
use lsp_node::node::chain::KeepBroadcasting;
use lsp_node::node::keys::NodeSeed;
use lsp_node::node::store::Store;
use lsp_node::node::wallet::{SendAmount, Wallet, WalletError};

/// Records what the wallet hands to the broadcaster; the test decides what reaches the chain.
/// Like the node's broadcaster, it keeps every transaction the wallet signed until it is
/// abandoned.
#[derive(Default)]
struct RecordingBroadcaster {
    sent: Mutex<Vec<Transaction>>,
    kept: Mutex<HashSet<Txid>>,
    /// Held since signed, never handed over for broadcast.
    unsent: Mutex<HashSet<Txid>>,
}

impl RecordingBroadcaster {
    fn take(&self) -> Vec<Transaction> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

impl KeepBroadcasting for RecordingBroadcaster {
    fn hold(&self, tx: &Transaction) {
        self.kept.lock().unwrap().insert(tx.compute_txid());
        self.unsent.lock().unwrap().insert(tx.compute_txid());
    }
    fn broadcast_kept(&self, tx: &Transaction) {
        self.kept.lock().unwrap().insert(tx.compute_txid());
        self.unsent.lock().unwrap().remove(&tx.compute_txid());
        self.sent.lock().unwrap().push(tx.clone());
    }
    fn abandon(&self, txid: &Txid) {
        self.kept.lock().unwrap().remove(txid);
        self.unsent.lock().unwrap().remove(txid);
    }
    fn replaced(&self, original: &Txid, _by: &Txid) {
        self.abandon(original);
    }
    fn open_txids(&self) -> HashSet<Txid> {
        self.kept.lock().unwrap().clone()
    }
    fn unsent_txids(&self) -> HashSet<Txid> {
        self.unsent.lock().unwrap().clone()
    }
}

async fn start_devchain() -> Devchain {
    let opts = DevchainOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        block_interval: None,
        data_dir: None,
    };
    Devchain::start(opts).await.expect("devchain starts")
}

fn open_wallet(
    seed: &NodeSeed,
    db: &Path,
    chain: &Devchain,
) -> (Wallet, Arc<RecordingBroadcaster>) {
    let broadcaster = Arc::new(RecordingBroadcaster::default());
    let wallet = Wallet::load_or_create(
        seed,
        Network::Regtest,
        db,
        &chain.base_url(),
        broadcaster.clone(),
    )
    .expect("wallet opens");
    (wallet, broadcaster)
}

/// A wallet on a new seed in a temporary directory (kept alive by the returned guard).
fn fresh_wallet(chain: &Devchain) -> (tempfile::TempDir, Wallet, Arc<RecordingBroadcaster>) {
    let dir = tempfile::tempdir().unwrap();
    let seed = NodeSeed::load_or_create(&dir.path().join("seed"))
        .unwrap()
        .0;
    let (wallet, broadcaster) = open_wallet(&seed, &dir.path().join("node.sqlite"), chain);
    (dir, wallet, broadcaster)
}

/// Posts a transaction to the devchain's Esplora API, as the node's broadcaster would.
async fn broadcast(chain: &Devchain, tx: &Transaction) {
    let client = esplora_client::Builder::new(&chain.base_url())
        .build_async()
        .unwrap();
    client
        .broadcast(tx)
        .await
        .expect("devchain accepts the transaction");
}

/// Syncs until the wallet's confirmed balance is `expected` (the devchain's indexing is
/// asynchronous to `mine`), failing after a deadline.
async fn sync_until_confirmed(wallet: &Wallet, expected: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        wallet.sync().await.expect("sync");
        let confirmed = wallet.balances().confirmed_sat;
        if confirmed == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "confirmed balance stayed {confirmed} sat, expected {expected} sat"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fee_of_single_input_tx(tx: &Transaction, input_value: u64) -> u64 {
    let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    input_value - outputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_wallet_fund_send_restart_and_fund_channel() {
    let chain = start_devchain().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("node.sqlite");
    let _store = Store::open(&db).unwrap(); // the wallet shares the node's database file
    let (seed, _) = NodeSeed::load_or_create(&dir.path().join("seed")).unwrap();
    let (wallet, broadcaster) = open_wallet(&seed, &db, &chain);

    // Fund, mine, sync: the coins are confirmed.
    wallet.sync().await.expect("first sync (full scan)");
    assert_eq!(wallet.balances().confirmed_sat, 0);
    let address = wallet.new_address().unwrap();
    chain.fund(&address, 100_000).expect("faucet pays");
    chain.mine(1);
    sync_until_confirmed(&wallet, 100_000).await;
    assert_eq!(wallet.balances().unconfirmed_sat, 0);
    assert_eq!(wallet.last_sync().unwrap().height, chain.tip().0);

    // Too much: a clear error and nothing broadcast.
    let other_dir = tempfile::tempdir().unwrap();
    let other_seed = NodeSeed::load_or_create(&other_dir.path().join("seed"))
        .unwrap()
        .0;
    let (recipient, _) = open_wallet(&other_seed, &other_dir.path().join("node.sqlite"), &chain);
    let to = recipient.new_address().unwrap();
    let rate = FeeRate::from_sat_per_vb(2).unwrap();
    let err = wallet
        .send(&to, SendAmount::Exact(100_001), rate)
        .unwrap_err();
    assert!(
        matches!(
            err,
            WalletError::InsufficientFunds {
                needed: 100_001,
                available: 100_000
            }
        ),
        "{err}"
    );
    // Affordable amount, unaffordable once the fee is added.
    let err = wallet
        .send(&to, SendAmount::Exact(100_000), rate)
        .unwrap_err();
    assert!(
        matches!(err, WalletError::InsufficientFunds { .. }),
        "{err}"
    );
    assert!(broadcaster.take().is_empty());

    // Send: the balance drops by amount + fee once mined.
    let txid = wallet.send(&to, SendAmount::Exact(30_000), rate).unwrap();
    let sent = broadcaster.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].compute_txid(), txid);
    let fee = fee_of_single_input_tx(&sent[0], 100_000);
    // 2 sat/vB is 500 sat per 1000 weight units; BDK rounds the fee up from the weight.
    let weight = sent[0].weight().to_wu();
    assert!(
        fee * 1000 >= 500 * weight && fee <= 3 * sent[0].vsize() as u64,
        "fee {fee} for {weight} WU at 2 sat/vB"
    );
    // Before confirmation our own change is spendable and the spent coin is gone.
    assert_eq!(wallet.balances().spendable_sat, 100_000 - 30_000 - fee);
    broadcast(&chain, &sent[0]).await;
    chain.mine(1);
    sync_until_confirmed(&wallet, 100_000 - 30_000 - fee).await;
    sync_until_confirmed(&recipient, 30_000).await;
    let after_send = wallet.balances();

    // Restart: balances and revealed addresses survive, no address is handed out twice.
    let revealed_before = wallet.new_address().unwrap();
    drop(wallet);
    let (wallet, broadcaster) = open_wallet(&seed, &db, &chain);
    assert_eq!(wallet.balances(), after_send);
    let revealed_after = wallet.new_address().unwrap();
    assert_ne!(revealed_after, revealed_before);
    assert_ne!(revealed_after, address);
    wallet.sync().await.unwrap();
    assert_eq!(wallet.balances(), after_send);

    // LDK's view for anchor fee bumping: confirmed UTXOs with their parents.
    let utxos = wallet.list_confirmed_utxos().unwrap();
    let utxo_total: u64 = utxos.iter().map(|u| u.output.value.to_sat()).sum();
    assert_eq!(utxo_total, after_send.confirmed_sat);
    for utxo in &utxos {
        let prev = wallet.get_prevtx(utxo.outpoint).unwrap();
        assert_eq!(prev.compute_txid(), utxo.outpoint.txid);
        assert_eq!(prev.output[utxo.outpoint.vout as usize], utxo.output);
    }

    // Channel funding: exactly the requested script and value, change back to us, inputs
    // reserved until it confirms, and a valid signed transaction the chain accepts.
    let channel_script = ScriptBuf::new_p2wsh(&ScriptBuf::from_bytes(vec![0x51]).wscript_hash());
    let funding = wallet
        .create_funding_transaction(channel_script.clone(), Amount::from_sat(50_000), rate)
        .unwrap();
    assert!(
        broadcaster.take().is_empty(),
        "a funding transaction is not broadcast by the wallet"
    );
    let to_channel: Vec<_> = funding
        .output
        .iter()
        .filter(|o| o.script_pubkey == channel_script)
        .collect();
    assert_eq!(to_channel.len(), 1);
    assert_eq!(to_channel[0].value, Amount::from_sat(50_000));
    assert_eq!(funding.output.len(), 2, "channel output plus change");
    let funding_fee = fee_of_single_input_tx(&funding, after_send.confirmed_sat);
    assert_eq!(
        wallet.balances().spendable_sat,
        after_send.confirmed_sat - 50_000 - funding_fee
    );
    // The reserved inputs cannot fund a second channel, even after syncs that do not find the
    // funding transaction on the chain source (it waits for the peer's `funding_signed`).
    for _ in 0..2 {
        wallet.sync().await.unwrap();
        assert_eq!(
            wallet.balances().spendable_sat,
            after_send.confirmed_sat - 50_000 - funding_fee,
            "a kept transaction is not evicted"
        );
    }
    let err = wallet
        .create_funding_transaction(channel_script.clone(), Amount::from_sat(50_000), rate)
        .unwrap_err();
    assert!(
        matches!(err, WalletError::InsufficientFunds { .. }),
        "{err}"
    );

    broadcast(&chain, &funding).await;
    chain.mine(1);
    sync_until_confirmed(&wallet, after_send.confirmed_sat - 50_000 - funding_fee).await;
    assert_eq!(chain.confirmations(&funding.compute_txid()), Some(1));

    chain.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_wallet_send_all_empties_the_wallet() {
    let chain = start_devchain().await;
    let (_dir, wallet, broadcaster) = fresh_wallet(&chain);
    wallet.sync().await.unwrap();
    chain.fund(&wallet.new_address().unwrap(), 40_000).unwrap();
    chain.fund(&wallet.new_address().unwrap(), 25_000).unwrap();
    chain.mine(1);
    sync_until_confirmed(&wallet, 65_000).await;

    let (_other, recipient, _) = fresh_wallet(&chain);
    let rate = FeeRate::from_sat_per_vb(1).unwrap();
    wallet
        .send(&recipient.new_address().unwrap(), SendAmount::All, rate)
        .unwrap();
    let sent = broadcaster.take();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].input.len(), 2);
    assert_eq!(sent[0].output.len(), 1, "no change when sending everything");
    let received = sent[0].output[0].value.to_sat();
    assert!(received < 65_000 && received > 64_000, "{received}");
    assert_eq!(wallet.balances().spendable_sat, 0);
    broadcast(&chain, &sent[0]).await;
    chain.mine(1);
    sync_until_confirmed(&recipient, received).await;
    wallet.sync().await.unwrap();
    assert_eq!(
        wallet.balances().confirmed_sat + wallet.balances().unconfirmed_sat,
        0
    );
    assert!(wallet.list_confirmed_utxos().unwrap().is_empty());
    chain.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_wallet_restored_from_mnemonic_finds_funds_by_full_scan() {
    let chain = start_devchain().await;
    let dir = tempfile::tempdir().unwrap();
    let seed = NodeSeed::load_or_create(&dir.path().join("seed"))
        .unwrap()
        .0;
    let (wallet, _) = open_wallet(&seed, &dir.path().join("first.sqlite"), &chain);
    // Funds on the fifth address: a fresh wallet must look past unused ones.
    let mut address = wallet.new_address().unwrap();
    for _ in 0..4 {
        address = wallet.new_address().unwrap();
    }
    chain.fund(&address, 21_000).unwrap();
    chain.mine(1);
    sync_until_confirmed(&wallet, 21_000).await;

    // Same mnemonic, new database: the first sync is a full scan.
    let restored_seed = NodeSeed::from_mnemonic(&seed.mnemonic_phrase()).unwrap();
    let (restored, _) = open_wallet(&restored_seed, &dir.path().join("restored.sqlite"), &chain);
    sync_until_confirmed(&restored, 21_000).await;
    chain.shutdown().await;
}

/// Fee bumps of chained unconfirmed payments: the parent is never replaced while a child of
/// ours spends its change (the replacement would kill the child); the child itself can be
/// replaced; and a child paying for the parent (CPFP) makes the package pay the rate asked,
/// replaced by a richer one when asked for more. The devchain's congestion only takes packages
/// paying that rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_wallet_never_replaces_a_parent_of_its_own_child_and_pays_for_parents_by_child() {
    use lsp_node::node::wallet::ChildBump;
    let chain = start_devchain().await;
    let (_dir, wallet, broadcaster) = fresh_wallet(&chain);
    wallet.sync().await.unwrap();
    chain.fund(&wallet.new_address().unwrap(), 100_000).unwrap();
    chain.mine(1);
    sync_until_confirmed(&wallet, 100_000).await;
    let (_other, recipient, _) = fresh_wallet(&chain);
    let slow = FeeRate::from_sat_per_vb(1).unwrap();

    // A pays 20k; B spends A's unconfirmed change.
    let a = wallet
        .send(
            &recipient.new_address().unwrap(),
            SendAmount::Exact(20_000),
            slow,
        )
        .unwrap();
    let b = wallet
        .send(
            &recipient.new_address().unwrap(),
            SendAmount::Exact(20_000),
            slow,
        )
        .unwrap();
    let sent = broadcaster.take();
    assert!(
        sent[1].input.iter().any(|i| i.previous_output.txid == a),
        "B spends A's change"
    );
    for tx in &sent {
        broadcast(&chain, tx).await;
    }
    let faster = FeeRate::from_sat_per_vb(5).unwrap();
    match wallet.sign_fee_bump(&a, faster) {
        Err(WalletError::HasDescendants { txid, child }) => {
            assert_eq!((txid, child), (a, b));
        }
        other => panic!("replacing A would kill B: {other:?}"),
    }
    assert!(broadcaster.take().is_empty(), "nothing signed");

    // A's change is B's input, and B pays a recipient: B is not a child to replace, and A has
    // no change left to pay for it with.
    let refused = wallet.bump_by_child(&a, FeeRate::from_sat_per_vb(10).unwrap());
    assert!(refused.is_err(), "{refused:?}");
    assert!(broadcaster.take().is_empty(), "B keeps its recipient");

    // Blocks now take 10 sat/vB packages only: a child of B pays for A, B and itself.
    chain.set_congestion(10.0);
    let rate = FeeRate::from_sat_per_vb(10).unwrap();
    let ChildBump::Sent(child) = wallet.bump_by_child(&b, rate).unwrap() else {
        panic!("the 1 sat/vB package needs a child");
    };
    let sent = broadcaster.take();
    assert_eq!(sent.len(), 1);
    broadcast(&chain, &sent[0]).await;
    assert_eq!(
        wallet.bump_by_child(&b, rate).unwrap(),
        ChildBump::NotNeeded,
        "the package pays the rate now"
    );
    // Asked for more, the child is replaced by one paying more.
    let richer = FeeRate::from_sat_per_vb(15).unwrap();
    let ChildBump::Sent(replacement) = wallet.bump_by_child(&b, richer).unwrap() else {
        panic!("15 sat/vB needs a richer child");
    };
    assert_ne!(replacement, child);
    let sent = broadcaster.take();
    broadcast(&chain, &sent[0]).await;
    assert_eq!(
        chain.confirmations(&child),
        None,
        "the first child was replaced"
    );
    let package = [a, b, replacement];
    let fee: u64 = package.iter().map(|t| chain.fee_of(t).unwrap()).sum();
    let vsize: usize = package
        .iter()
        .map(|t| chain.get_transaction(t).unwrap().vsize())
        .sum();
    assert!(
        fee as f64 / vsize as f64 >= 15.0,
        "{fee} sat for {vsize} vB"
    );
    chain.mine(1);
    for txid in package {
        assert_eq!(chain.confirmations(&txid), Some(1), "{txid} confirmed");
    }
    chain.shutdown().await;
}

/// One funding transaction for several channels pays each exactly, shares one input set and
/// change, and costs far fewer vbytes per channel than a transaction per channel: the figures
/// the batched-funding target is stated in (printed with `--nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_batch_funding_costs_fewer_vbytes_per_channel() {
    let chain = start_devchain().await;
    let (_dir, wallet, broadcaster) = fresh_wallet(&chain);
    wallet.sync().await.unwrap();
    chain
        .fund(&wallet.new_address().unwrap(), 10_000_000)
        .expect("faucet pays");
    chain.mine(1);
    sync_until_confirmed(&wallet, 10_000_000).await;
    let rate = FeeRate::from_sat_per_vb(2).unwrap();
    let channel_script =
        |i: u8| ScriptBuf::new_p2wsh(&ScriptBuf::from_bytes(vec![0x51, i]).wscript_hash());
    let mut per_channel = Vec::new();
    let mut last = None;
    for channels in [1u8, 5, 10] {
        let outputs: Vec<(ScriptBuf, Amount)> = (0..channels)
            .map(|i| (channel_script(i), Amount::from_sat(100_000 + u64::from(i))))
            .collect();
        let funding = wallet
            .create_batch_funding_transaction(&outputs, rate)
            .unwrap();
        assert!(broadcaster.take().is_empty(), "not broadcast by the wallet");
        for (script, value) in &outputs {
            let paid: Vec<Amount> = funding
                .output
                .iter()
                .filter(|o| o.script_pubkey == *script)
                .map(|o| o.value)
                .collect();
            assert_eq!(paid, vec![*value], "each channel is paid exactly once");
        }
        assert_eq!(funding.input.len(), 1, "one input serves every channel");
        assert_eq!(
            funding.output.len(),
            usize::from(channels) + 1,
            "channels plus change"
        );
        let vbytes = funding.vsize() as f64 / f64::from(channels);
        println!(
            "funding {channels:>2} channel(s): {} vB, {vbytes:.1} vB per channel",
            funding.vsize()
        );
        per_channel.push(vbytes);
        if channels == 10 {
            last = Some(funding);
        } else {
            wallet.abandon_transaction(&funding).unwrap();
        }
    }
    let saving = 1.0 - per_channel[2] / per_channel[0];
    println!(
        "10 channels in one transaction: {:.0}% fewer vbytes per channel",
        saving * 100.0
    );
    assert!(
        saving >= 0.4,
        "vbytes per channel at 10: {per_channel:?} (saving {saving:.2})"
    );
    let batch = last.unwrap();
    broadcast(&chain, &batch).await;
    chain.mine(1);
    assert_eq!(chain.confirmations(&batch.compute_txid()), Some(1));
    chain.shutdown().await;
}

/// The change of a funding transaction that is signed but not yet handed over for broadcast
/// (its channel's peer has not signed) is not spent: that funding may never be broadcast, and
/// whatever spent its change would never confirm. Once it is handed over, the change serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_an_unsent_funding_change_is_not_spent() {
    let chain = start_devchain().await;
    let (_dir, wallet, broadcaster) = fresh_wallet(&chain);
    wallet.sync().await.unwrap();
    chain
        .fund(&wallet.new_address().unwrap(), 200_000)
        .expect("faucet pays");
    chain.mine(1);
    sync_until_confirmed(&wallet, 200_000).await;
    let rate = FeeRate::from_sat_per_vb(2).unwrap();
    let channel_script = ScriptBuf::new_p2wsh(&ScriptBuf::from_bytes(vec![0x51]).wscript_hash());
    let funding = wallet
        .create_funding_transaction(channel_script, Amount::from_sat(50_000), rate)
        .unwrap();
    let elsewhere = wallet.new_address().unwrap();
    let refused = wallet
        .sign_payment(&elsewhere, SendAmount::Exact(10_000), rate)
        .unwrap_err();
    assert!(
        matches!(refused, WalletError::InsufficientFunds { .. }),
        "{refused}"
    );

    broadcaster.broadcast_kept(&funding);
    let payment = wallet
        .sign_payment(&elsewhere, SendAmount::Exact(10_000), rate)
        .expect("the change of a funding handed over for broadcast is spendable");
    assert_eq!(payment.input.len(), 1);
    assert_eq!(
        payment.input[0].previous_output.txid,
        funding.compute_txid()
    );
    chain.shutdown().await;
}
