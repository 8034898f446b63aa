//! On-chain payments that must not buy a channel: one that a reorg takes away after the order
//! counted it PAID (the order goes back to waiting, counts a new payment, and refunds only what
//! exists), and one that reaches the LSP after the order expired (refunded, never used at the
//! stale price), the refund of a payment that a reorg then takes away (seen dead before the wallet syncs), a 0-conf payment
//! replaced by fee, a confirmed refund that a reorg takes out of the chain, and a payment to
//! an order address the wallet no longer watches (found by a rescan, then refunded). The
//! client is a key only, never online, so nothing opens while the chain moves.

mod common;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use common::fault_proxy::{Fault, FaultProxy};
use common::*;
use lsp_node::api::*;
use lsp_node::Builder;

async fn wait_onchain_state(operator: &Operator, id: &str, state: &str, what: &str) -> OrderDetail {
    wait_for(what, DEADLINE, || async {
        let detail = operator.order(id).await;
        (detail.order["payment"]["onchain"]["state"] == state).then_some(detail)
    })
    .await
}

/// An order over HTTP for a node that is never online, with a refund address of nobody's.
struct OnchainOrder {
    id: String,
    pay_to: bitcoin::Address,
    total: u64,
    refund: bitcoin::Address,
}

impl OnchainOrder {
    async fn create(lsp: &lsp_node::App) -> OnchainOrder {
        let secp = Secp256k1::new();
        let client = SecretKey::from_slice(&[7; 32]).unwrap().public_key(&secp);
        let refund = bitcoin::Address::p2wpkh(
            &bitcoin::CompressedPublicKey(
                SecretKey::from_slice(&[8; 32]).unwrap().public_key(&secp),
            ),
            bitcoin::Network::Regtest,
        );
        let public_api = format!("http://{}", lsp.http_listen_addr().unwrap());
        let order = create_olympus_order(
            &public_api,
            &olympus_order(&client.to_string(), false, Some(&refund)),
        )
        .await;
        let (pay_to, total) = onchain_payment_of(&order);
        OnchainOrder {
            id: order["order_id"].as_str().expect("an order").to_string(),
            pay_to,
            total,
            refund,
        }
    }
}

/// `order` paid in full (confirmed), then cancelled by the operator: returns the payment, the
/// refund as the operator sees it and its txid, once the refund is in the mempool.
async fn paid_then_cancelled(
    devchain: &lsp_node::devchain::Devchain,
    operator: &Operator,
    order: &OnchainOrder,
) -> (bitcoin::Txid, RefundInfo, bitcoin::Txid) {
    let payment = devchain
        .fund(&order.pay_to, order.total)
        .expect("faucet pays the order");
    devchain.mine(1);
    wait_onchain_state(operator, &order.id, "PAID", "the payment to count").await;
    operator.cancel(&order.id, "the client went away").await;
    let sent = wait_for("the refund", DEADLINE, || async {
        operator.order(&order.id).await.refunds.first().cloned()
    })
    .await;
    let refund_txid: bitcoin::Txid = sent.txid.parse().unwrap();
    wait_for_tx_in_mempool(devchain, &refund_txid, "the refund in the mempool").await;
    (payment, sent, refund_txid)
}

/// A devchain and, on it, an LSP on `dir` with 1,000,000 sat, `edit` applied to its config.
async fn funded_lsp(
    dir: &std::path::Path,
    edit: impl FnOnce(&mut lsp_node::config::Config),
) -> (
    lsp_node::devchain::Devchain,
    lsp_node::App,
    Operator,
    lsp_node::config::Config,
) {
    init_logging();
    let devchain = start_devchain().await;
    let mut config = config_for(dir, &devchain.base_url());
    edit(&mut config);
    let lsp = Builder::new(config.clone())
        .start()
        .await
        .expect("LSP starts");
    let operator = Operator::for_node(&lsp);
    fund(&devchain, &operator, 1_000_000).await;
    (devchain, lsp, operator, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_payment_taken_back_by_the_chain_puts_the_order_back_to_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let (devchain, lsp, operator, _) = funded_lsp(dir.path(), |_| {}).await;

    let order = OnchainOrder::create(&lsp).await;
    let (id, pay_to, total, refund) = (
        order.id.clone(),
        order.pay_to.clone(),
        order.total,
        order.refund.clone(),
    );
    let payment = devchain
        .fund(&pay_to, total)
        .expect("faucet pays the order");
    devchain.mine(1);
    wait_onchain_state(&operator, &id, "PAID", "the payment to count").await;

    // A reorg replaces the payment's block with a chain that leaves the payment out (a double
    // spend of it confirmed instead, as far as the order can tell).
    let outcome = devchain.reorg(1, &[payment]).expect("reorg");
    assert!(outcome.dropped.contains(&payment), "{outcome:?}");
    let waiting = wait_onchain_state(
        &operator,
        &id,
        "EXPECT_PAYMENT",
        "the order to wait for payment again",
    )
    .await;
    assert_eq!(waiting.summary.state, "CREATED");
    assert!(
        waiting
            .events
            .iter()
            .any(|e| e.event == "onchain_payment_lost"),
        "{:?}",
        waiting.events
    );

    // Paid again, it counts again.
    // (A different amount: the faucet's coin is unspent again, and the same payment would be
    // the same transaction.)
    let second = devchain
        .fund(&pay_to, total + 1_000)
        .expect("faucet pays again");
    assert_ne!(second, payment);
    devchain.mine(1);
    wait_onchain_state(&operator, &id, "PAID", "the second payment to count").await;

    // Cancelled now, only the payment that exists is refunded.
    let cancelled = operator.cancel(&id, "the client went away").await;
    assert_eq!(cancelled.summary.state, "FAILED");
    let sent = wait_for("the refund", DEADLINE, || async {
        operator.order(&id).await.refunds.first().cloned()
    })
    .await;
    assert_eq!(
        sent.amount_sat + sent.fee_sat,
        total + 1_000,
        "the payment that exists comes back, and nothing of the vanished one"
    );
    let sent_txid: bitcoin::Txid = sent.txid.parse().unwrap();
    let refund_tx = wait_for("the refund on the devchain", DEADLINE, || async {
        devchain.get_transaction(&sent_txid)
    })
    .await;
    let spent: Vec<bitcoin::Txid> = refund_tx
        .input
        .iter()
        .map(|i| i.previous_output.txid)
        .collect();
    assert!(
        !spent.contains(&payment),
        "the vanished payment is not spent"
    );
    assert!(
        spent.contains(&second),
        "the refund returns the payment that exists"
    );
    let to_client: u64 = refund_tx
        .output
        .iter()
        .filter(|o| o.script_pubkey == refund.script_pubkey())
        .map(|o| o.value.to_sat())
        .sum();
    assert_eq!(to_client, sent.amount_sat);
    lsp.stop().await.unwrap();
}

/// Order expiry in the late-payment test.
const EXPIRY_SECS: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_payment_that_arrives_after_the_order_expired_is_refunded_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let (devchain, lsp, operator, config) = funded_lsp(dir.path(), |config| {
        config.lsps1.options.order_expiry_secs = EXPIRY_SECS;
        config.lsps1.options.invoice_expiry_secs = EXPIRY_SECS;
    })
    .await;
    let order = OnchainOrder::create(&lsp).await;
    let created_at = operator.order(&order.id).await.summary.created_at;

    // The LSP is down when the order expires and when the payment comes: on its return it
    // finds a full payment on an expired order.
    lsp.stop().await.unwrap();
    wait_for("the order's expiry to pass", DEADLINE, || async {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        (now > created_at + EXPIRY_SECS).then_some(())
    })
    .await;
    let payment = devchain
        .fund(&order.pay_to, order.total)
        .expect("faucet pays the order late");
    devchain.mine(1);
    let lsp = Builder::new(config).start().await.expect("LSP restarts");
    let operator = Operator::for_node(&lsp);

    let failed = wait_for("the expired order to fail", DEADLINE, || async {
        let detail = operator.order(&order.id).await;
        (detail.summary.state != "CREATED").then_some(detail)
    })
    .await;
    assert_eq!(failed.summary.state, "FAILED", "{:?}", failed.events);
    assert_ne!(failed.order["payment"]["onchain"]["state"], "PAID");
    let sent = wait_for("the refund of the late payment", DEADLINE, || async {
        operator.order(&order.id).await.refunds.first().cloned()
    })
    .await;
    assert_eq!(sent.amount_sat + sent.fee_sat, order.total);
    let sent_txid: bitcoin::Txid = sent.txid.parse().unwrap();
    let refund_tx = wait_for("the refund on the devchain", DEADLINE, || async {
        devchain.get_transaction(&sent_txid)
    })
    .await;
    assert!(refund_tx
        .input
        .iter()
        .any(|i| i.previous_output.txid == payment));
    assert!(refund_tx
        .output
        .iter()
        .any(|o| o.script_pubkey == order.refund.script_pubkey()
            && o.value.to_sat() == sent.amount_sat));
    lsp.stop().await.unwrap();
}

/// A refund on its way when a reorg takes away the payment it returns (the refund spends it,
/// so both vanish), seen by the broadcaster while the wallet cannot sync: the wallet still
/// counts the vanished payment, and nothing is sent again on the strength of that stale view.
/// Once the wallet syncs, nothing is owed any more, the dead refund is not sent forever, and
/// the order settles as refunded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_refund_whose_payment_vanished_settles_with_nothing_owed() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let proxy = FaultProxy::start(&devchain.base_url()).await;
    let lsp = Builder::new(config_for(dir.path(), &proxy.url))
        .start()
        .await
        .expect("LSP starts");
    let operator = Operator::for_node(&lsp);
    fund(&devchain, &operator, 1_000_000).await;
    let order = OnchainOrder::create(&lsp).await;
    let (payment, _, refund_txid) = paid_then_cancelled(&devchain, &operator, &order).await;

    // The wallet asks for its addresses' histories; the broadcaster and LDK never do.
    proxy.set_faults(vec![Fault::refuse(None, "/scripthash/", 503)]);
    let outcome = devchain.reorg(1, &[payment]).expect("reorg");
    assert!(outcome.dropped.contains(&payment), "{outcome:?}");
    assert!(outcome.dropped.contains(&refund_txid), "{outcome:?}");
    let open_broadcasts = || async {
        let mut open = 0;
        for state in ["signed", "sending", "seen"] {
            let name = format!("lsp_broadcasts_open{{state=\"{state}\"}}");
            open += operator.metric(&name).await.unwrap_or(0);
        }
        open
    };
    wait_for(
        "the broadcaster to find the refund dead",
        DEADLINE,
        || async {
            let refunds = operator.order(&order.id).await.refunds.len();
            (open_broadcasts().await == 0 || refunds > 1).then_some(())
        },
    )
    .await;
    let failures = operator
        .metric("lsp_chain_sync_consecutive_failures")
        .await
        .unwrap_or(0);
    wait_for("three more failed wallet syncs", DEADLINE, || async {
        let now = operator.metric("lsp_chain_sync_consecutive_failures").await;
        (now >= Some(failures + 3)).then_some(())
    })
    .await;
    let stale = operator.order(&order.id).await;
    assert_eq!(
        stale.refunds.len(),
        1,
        "nothing is refunded again while the wallet still counts the vanished payment: {:?}",
        stale.refunds
    );

    proxy.clear_faults();
    let settled = wait_onchain_state(
        &operator,
        &order.id,
        "REFUNDED",
        "the order to settle with nothing owed",
    )
    .await;
    assert_eq!(
        settled.refunds.len(),
        1,
        "no second refund: {:?}",
        settled.refunds
    );
    wait_for("the dead refund to stop being sent", DEADLINE, || async {
        (open_broadcasts().await == 0).then_some(())
    })
    .await;
    assert!(!devchain.mempool_txids().contains(&refund_txid));
    lsp.stop().await.unwrap();
}

/// With 0-conf payments accepted, a payment replaced by fee (full RBF, paying elsewhere) after
/// the order counted it: the order goes back to waiting for payment, and nothing is refunded or
/// opened for a payment that no longer exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_0conf_payment_replaced_by_fee_puts_the_order_back_to_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let (devchain, lsp, operator, _) = funded_lsp(dir.path(), |config| {
        config.lsps1.options.min_onchain_payment_confirmations = 0;
    })
    .await;
    let order = OnchainOrder::create(&lsp).await;
    // The payer's coin, confirmed; the payment spends it with change, paying 5,000 sat of fee
    // (over 25 sat/vB, which 0-conf needs).
    let payer = txs::address(3);
    let coin_tx = devchain.fund(&payer, order.total + 100_000).unwrap();
    devchain.mine(1);
    let coin = txs::outpoint_paying(&devchain, coin_tx, &payer);
    let mut payment_tx = txs::spend(coin, &order.pay_to, order.total);
    payment_tx.output.push(bitcoin::TxOut {
        value: bitcoin::Amount::from_sat(95_000),
        script_pubkey: payer.script_pubkey(),
    });
    let payment = devchain
        .send_raw(payment_tx)
        .expect("the payment enters the mempool");
    let paid =
        wait_onchain_state(&operator, &order.id, "PAID", "the 0-conf payment to count").await;
    assert_eq!(paid.summary.state, "CREATED");

    // The payer replaces it by a transaction paying itself a higher fee.
    let replacement = devchain
        .send_raw(txs::spend(coin, &txs::address(4), order.total + 90_000))
        .expect("full RBF replaces the payment");
    assert_eq!(
        devchain.confirmations(&payment),
        None,
        "the payment is gone"
    );
    let waiting = wait_onchain_state(
        &operator,
        &order.id,
        "EXPECT_PAYMENT",
        "the order to wait for payment again",
    )
    .await;
    assert_eq!(waiting.summary.state, "CREATED");
    assert!(waiting
        .events
        .iter()
        .any(|e| e.event == "onchain_payment_lost"));
    devchain.mine(1);
    assert_eq!(devchain.confirmations(&replacement), Some(1));
    wait_synced_to_tip(&operator, &devchain).await;
    let after = operator.order(&order.id).await;
    assert_eq!(after.order["payment"]["onchain"]["state"], "EXPECT_PAYMENT");
    assert!(
        after.refunds.is_empty(),
        "nothing to refund: {:?}",
        after.refunds
    );
    assert!(
        after.order["channel"].is_null(),
        "no channel for a vanished payment"
    );
    lsp.stop().await.unwrap();
}

/// A confirmed refund that a reorg takes out of the chain (and out of the mempool, as a miner
/// that never saw it would): the node sends the same refund again, never a second one, and
/// the client's address ends up paid once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_refund_reorganised_out_is_sent_again_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let (devchain, lsp, operator, _) = funded_lsp(dir.path(), |_| {}).await;
    let order = OnchainOrder::create(&lsp).await;
    let (_, sent, refund_txid) = paid_then_cancelled(&devchain, &operator, &order).await;
    devchain.mine(1);
    wait_onchain_state(&operator, &order.id, "REFUNDED", "the refund to confirm").await;

    let outcome = devchain.reorg(1, &[refund_txid]).expect("reorg");
    assert!(outcome.dropped.contains(&refund_txid), "{outcome:?}");
    assert_eq!(devchain.confirmations(&refund_txid), None);
    wait_for_tx_in_mempool(&devchain, &refund_txid, "the same refund sent again").await;
    devchain.mine(1);
    assert_eq!(devchain.confirmations(&refund_txid), Some(1));
    let refund = devchain.get_transaction(&refund_txid).unwrap();
    let paid: u64 = refund
        .output
        .iter()
        .filter(|o| o.script_pubkey == order.refund.script_pubkey())
        .map(|o| o.value.to_sat())
        .sum();
    assert_eq!(
        paid, sent.amount_sat,
        "the refund pays the client its amount"
    );
    wait_synced_to_tip(&operator, &devchain).await;
    let settled = operator.order(&order.id).await;
    assert_eq!(
        settled.refunds.len(),
        1,
        "no second refund: {:?}",
        settled.refunds
    );
    assert_eq!(settled.order["payment"]["onchain"]["state"], "REFUNDED");
    lsp.stop().await.unwrap();
}

/// The order's history rows named `event`.
async fn events_named(operator: &Operator, id: &str, event: &str) -> usize {
    let detail = operator.order(id).await;
    detail.events.iter().filter(|e| e.event == event).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_retired_order_address_is_not_synced_until_a_rescan_finds_a_late_payment_and_refunds_it(
) {
    let dir = tempfile::tempdir().unwrap();
    let (devchain, lsp, operator, _) = funded_lsp(dir.path(), |config| {
        config.lsps1.address_watch_secs = 0;
        config.lsps1.options.order_expiry_secs = EXPIRY_SECS;
        config.lsps1.options.invoice_expiry_secs = EXPIRY_SECS;
    })
    .await;
    let order = OnchainOrder::create(&lsp).await;
    let watched = operator
        .metric("lsp_wallet_watched_scripts")
        .await
        .expect("the figure");
    operator.cancel(&order.id, "the client went away").await;
    wait_onchain_state(&operator, &order.id, "REFUNDED", "nothing to return").await;
    wait_for("the address to be retired", DEADLINE, || async {
        (events_named(&operator, &order.id, "address_retired").await == 1).then_some(())
    })
    .await;
    assert_eq!(
        operator.metric("lsp_wallet_watched_scripts").await,
        Some(watched - 1)
    );

    // Paid after retirement: a sync past the payment's block does not see it.
    let before = operator.balance().await;
    let payment = devchain
        .fund(&order.pay_to, order.total)
        .expect("faucet pays the retired address");
    devchain.mine(1);
    let synced = operator.sync().await;
    assert_eq!(synced.block_height, devchain.tip().0);
    assert_eq!(
        operator.balance().await,
        before,
        "the wallet does not know the payment"
    );
    assert!(operator.order(&order.id).await.refunds.is_empty());

    let rescan: RescanResult = operator
        .post(
            "/v1/orders/rescan",
            &RescanOrder {
                order_id: order.id.clone(),
            },
        )
        .await
        .expect("rescan");
    assert_eq!(rescan.address, order.pay_to.to_string());
    assert_eq!(
        (rescan.received_sat, rescan.confirmed_sat),
        (order.total, order.total)
    );
    assert_eq!(rescan.sync_error, None);
    assert_eq!(
        operator.metric("lsp_wallet_watched_scripts").await,
        Some(watched)
    );
    assert_eq!(
        events_named(&operator, &order.id, "address_watched").await,
        1
    );

    let sent = wait_for("the refund of the late payment", DEADLINE, || async {
        operator.order(&order.id).await.refunds.first().cloned()
    })
    .await;
    assert_eq!(sent.amount_sat + sent.fee_sat, order.total);
    let sent_txid: bitcoin::Txid = sent.txid.parse().unwrap();
    wait_for_tx_in_mempool(&devchain, &sent_txid, "the refund in the mempool").await;
    let refund_tx = devchain.get_transaction(&sent_txid).expect("the refund");
    assert!(refund_tx
        .input
        .iter()
        .any(|i| i.previous_output.txid == payment));
    assert!(refund_tx
        .output
        .iter()
        .any(|o| o.script_pubkey == order.refund.script_pubkey()
            && o.value.to_sat() == sent.amount_sat));

    // Retired again only once the refund is confirmed.
    assert_eq!(
        events_named(&operator, &order.id, "address_retired").await,
        1
    );
    devchain.mine(1);
    wait_for("the address to be retired again", DEADLINE, || async {
        (events_named(&operator, &order.id, "address_retired").await == 2).then_some(())
    })
    .await;
    assert_eq!(operator.order(&order.id).await.refunds.len(), 1);
    lsp.stop().await.unwrap();
}
