//! Crashes of the real binary between two steps that move money (the `fault-points` feature
//! aborts the process at a named point, as SIGKILL would), then a restart on the same data:
//! the client must be made whole, checked from the client's side.

mod common;

use std::sync::Arc;

use common::process::{regtest_config, NodeProcess};
use common::*;
use lsp_node::fault_points::CRASH_AT_VAR;

/// The client's balance in the channel the LSP opens to it, so it can pay the LSP.
const PUSH_MSAT: u64 = 150_000_000;

/// A bolt11 order paid by an ldk-node client while the LSP runs with `crash_point`, up to the
/// LSP's crash at that point (with `confirm_funding`, a block is mined once the funding is in the
/// mempool); the client's payment is still pending.
struct CrashedBolt11Order {
    _dir: tempfile::TempDir,
    _ldk_dir: tempfile::TempDir,
    data: std::path::PathBuf,
    devchain: lsp_node::devchain::Devchain,
    config: String,
    client: Arc<ldk_node::Node>,
    id: String,
    payment_id: ldk_node::lightning::ln::channelmanager::PaymentId,
}

impl CrashedBolt11Order {
    async fn run(
        crash_point: &str,
        announce_channel: bool,
        confirm_funding: bool,
    ) -> CrashedBolt11Order {
        init_logging();
        let dir = tempfile::tempdir().unwrap();
        let devchain = start_devchain().await;
        let config = regtest_config(&dir.path().join("data"), &devchain.base_url(), 1);
        let mut lsp = NodeProcess::spawn(dir.path(), &config, &[(CRASH_AT_VAR, crash_point)]);
        let operator = lsp.wait_running(DEADLINE).await;
        fund(&devchain, &operator, 2_000_000).await;
        let ldk_dir = tempfile::tempdir().unwrap();
        let client = Arc::new(start_ldk_node_on(
            &devchain.base_url(),
            ldk_dir.path(),
            |_| {},
        ));
        open_channel_to_ldk(&devchain, &operator, &client, 400_000, PUSH_MSAT).await;

        let (id, payment_id) =
            buy_over_lightning(&lsp.public_api_url(), &client, announce_channel).await;
        if confirm_funding {
            wait_for_mempool(&devchain, "the order's funding transaction").await;
            devchain.mine(1);
        }
        let status = lsp.wait_exit(DEADLINE).await;
        assert!(!status.success(), "aborted at the crash point: {status:?}");
        assert_eq!(
            client.payment(&payment_id).unwrap().status,
            ldk_node::payment::PaymentStatus::Pending,
            "the HTLC is still held by the dead node"
        );
        CrashedBolt11Order {
            data: dir.path().to_path_buf(),
            _dir: dir,
            _ldk_dir: ldk_dir,
            devchain,
            config,
            client,
            id,
            payment_id,
        }
    }

    /// The LSP started again on the same data, without a crash point.
    async fn restart(&self) -> (NodeProcess, Operator) {
        let mut lsp = NodeProcess::spawn(&self.data, &self.config, &[]);
        let operator = lsp.wait_running(DEADLINE).await;
        (lsp, operator)
    }

    async fn wait_payment(&self, status: ldk_node::payment::PaymentStatus, what: &str) {
        wait_payment_status(&self.client, &self.payment_id, status, what).await;
    }
}

/// A crash after FAILED is persisted and before the held HTLC is failed back (the order fails
/// because the client refuses every open of its channel: ldk-node refuses announced inbound
/// channels): the restarted node fails it back at start, and the client's payment fails within
/// seconds instead of staying locked until the HTLC's own deadline, hundreds of blocks away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_held_htlc_of_a_failed_order_is_failed_back_after_a_crash() {
    let crashed =
        CrashedBolt11Order::run("order_failed.before_htlc_failed_back", true, false).await;
    let (mut lsp, operator) = crashed.restart().await;
    let detail = operator.order(&crashed.id).await;
    assert_eq!(detail.summary.state, "FAILED");
    crashed
        .wait_payment(
            ldk_node::payment::PaymentStatus::Failed,
            "the client's payment to fail back",
        )
        .await;
    assert_eq!(detail.order["payment"]["bolt11"]["state"], "REFUNDED");
    lsp.terminate(DEADLINE).await;
    crashed.client.stop().unwrap();
}

/// A crash once the order's channel is funded and the chain source has its funding
/// transaction, before the held HTLC is claimed: the restarted node claims it, and the client
/// ends with its payment made and its channel usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_the_htlc_of_a_funded_order_is_claimed_after_a_crash() {
    let crashed = CrashedBolt11Order::run("order_completed.before_htlc_claimed", false, true).await;
    let (mut lsp, operator) = crashed.restart().await;
    let detail = operator.order(&crashed.id).await;
    assert_eq!(detail.summary.state, "COMPLETED");
    crashed
        .wait_payment(
            ldk_node::payment::PaymentStatus::Succeeded,
            "the client's payment to be claimed",
        )
        .await;
    let funding: bitcoin::OutPoint = detail.order["channel"]["funding_outpoint"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (devchain, client) = (&crashed.devchain, &crashed.client);
    assert_eq!(devchain.confirmations(&funding.txid), Some(1));
    devchain.mine(5);
    wait_sold_channel_usable(client, funding.txid).await;
    lsp.terminate(DEADLINE).await;
    client.stop().unwrap();
}

/// A crash after a refund is recorded and before it is broadcast: the restarted node sends
/// that same refund (never a second one), and the client's refund address receives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_recorded_refund_is_sent_after_a_crash_and_only_once() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let config = regtest_config(&dir.path().join("data"), &devchain.base_url(), 1);
    let crash_at = [(CRASH_AT_VAR, "refund.before_broadcast")];
    let mut lsp = NodeProcess::spawn(dir.path(), &config, &crash_at);
    let operator = lsp.wait_running(DEADLINE).await;
    fund(&devchain, &operator, 1_000_000).await;

    // A client that is a key only: the paid order waits for it, and the operator cancels.
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let key = |byte| bitcoin::secp256k1::SecretKey::from_slice(&[byte; 32]).unwrap();
    let client = key(7).public_key(&secp).to_string();
    let refund_address = bitcoin::Address::p2wpkh(
        &bitcoin::CompressedPublicKey(key(8).public_key(&secp)),
        bitcoin::Network::Regtest,
    );
    let order = create_olympus_order(
        &lsp.public_api_url(),
        &olympus_order(&client, false, Some(&refund_address)),
    )
    .await;
    let id = order["order_id"].as_str().expect("an order").to_string();
    let (pay_to, total) = onchain_payment_of(&order);
    devchain
        .fund(&pay_to, total)
        .expect("faucet pays the order");
    devchain.mine(1);
    wait_for("the payment to count", DEADLINE, || async {
        let detail = operator.order(&id).await;
        (detail.order["payment"]["onchain"]["state"] == "PAID").then_some(())
    })
    .await;
    operator.cancel(&id, "the client went away").await;
    let status = lsp.wait_exit(DEADLINE).await;
    assert!(!status.success(), "aborted at the crash point: {status:?}");
    let mempool_at_crash = devchain.mempool_txids();

    let mut lsp = NodeProcess::spawn(dir.path(), &config, &[]);
    let operator = lsp.wait_running(DEADLINE).await;
    let detail = operator.order(&id).await;
    assert_eq!(detail.refunds.len(), 1, "{:?}", detail.refunds);
    let refund = detail.refunds[0].clone();
    let refund_txid: bitcoin::Txid = refund.txid.parse().unwrap();
    assert!(
        !mempool_at_crash.contains(&refund_txid),
        "the refund had not left before the crash"
    );
    wait_for_tx_in_mempool(
        &devchain,
        &refund_txid,
        "the recorded refund in the mempool",
    )
    .await;
    devchain.mine(1);
    wait_for("the order to be REFUNDED", DEADLINE, || async {
        let detail = operator.order(&id).await;
        (detail.order["payment"]["onchain"]["state"] == "REFUNDED").then_some(())
    })
    .await;
    let detail = operator.order(&id).await;
    assert_eq!(detail.refunds.len(), 1, "one refund, never two");
    let paid_back: u64 = devchain
        .get_transaction(&refund_txid)
        .expect("the refund is on the devchain")
        .output
        .iter()
        .filter(|o| o.script_pubkey == refund_address.script_pubkey())
        .map(|o| o.value.to_sat())
        .sum();
    assert_eq!(paid_back, refund.amount_sat);
    assert_eq!(paid_back + refund.fee_sat, total);
    lsp.terminate(DEADLINE).await;
}

/// A crash when LDK hands over the funding transaction of an order's channel (on the peer's
/// `funding_signed`, before the ChannelManager that knows the channel is persisted; `#2`: the
/// first funding is the operator's own channel). The restarted node has lost that channel (its
/// monitor closes it): it must not open a second one and pay a second funding, but fail the
/// order and return the client's payment, and not send the lost channel's funding either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_crash_at_funding_never_opens_the_order_twice() {
    let crashed = CrashedBolt11Order::run("funding.kept_before_broadcast#2", false, false).await;
    let (mut lsp, operator) = crashed.restart().await;
    let failed = wait_for("the order to end", DEADLINE, || async {
        let detail = operator.order(&crashed.id).await;
        (detail.summary.state != "CREATED").then_some(detail)
    })
    .await;
    assert_eq!(failed.summary.state, "FAILED", "{:?}", failed.events);
    assert_eq!(failed.order["payment"]["bolt11"]["state"], "REFUNDED");
    crashed
        .wait_payment(
            ldk_node::payment::PaymentStatus::Failed,
            "the client's payment to fail back",
        )
        .await;
    let sold: Vec<_> = operator
        .channels()
        .await
        .into_iter()
        .filter(|c| c.capacity_sat == 100_000)
        .collect();
    assert!(sold.is_empty(), "no second channel: {sold:?}");
    assert_eq!(
        operator
            .metric("lsp_broadcasts_open{state=\"sending\"}")
            .await,
        Some(0),
        "the lost channel's funding is not sent"
    );
    assert!(crashed.devchain.mempool_txids().is_empty());
    lsp.terminate(DEADLINE).await;
    crashed.client.stop().unwrap();
}
