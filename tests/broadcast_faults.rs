//! A chain source that refuses broadcasts for longer than the broadcaster's own retries: the
//! funding transaction of a sold channel and the refund of a failed order must still reach the
//! chain once it takes them again, without a restart; the held HTLC is claimed only once the
//! funding transaction has confirmed, and an on-chain option is REFUNDED only once its
//! refund is `refund_confirmations` deep. Checked from the client's side (ldk-node) and on the devchain.

mod common;

use std::sync::Arc;

use axum::http::Method;
use common::fault_proxy::{Fault, FaultProxy};
use common::*;
use lsp_node::Builder;

/// The client's balance in the channel the LSP opens to it, so it can pay the LSP.
const PUSH_MSAT: u64 = 150_000_000;

/// `POST /tx` refusals that the broadcaster's own retries account for; more prove that the
/// transaction was sent again later.
const IMMEDIATE_ATTEMPTS: u64 = 5;

/// Waits until the proxy has refused `count` more posts than it had at `from`.
async fn wait_refusals(proxy: &FaultProxy, from: u64, count: u64, what: &str) {
    wait_for(what, DEADLINE, || async {
        (proxy.refused() >= from + count).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_funding_and_refund_reach_the_chain_after_broadcasts_were_refused_for_a_while() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let proxy = FaultProxy::start(&devchain.base_url()).await;
    let mut config = config_for(dir.path(), &proxy.url);
    config.lsps1.open_timeout_secs = 60;
    config.lsps1.refund_confirmations = 2;
    let lsp = Builder::new(config).start().await.expect("LSP starts");
    let operator = Operator::for_node(&lsp);
    let public_api = format!("http://{}", lsp.http_listen_addr().unwrap());
    fund(&devchain, &operator, 2_000_000).await;

    let client_dir = tempfile::tempdir().unwrap();
    let client = Arc::new(start_ldk_node(&devchain, client_dir.path(), |_| {}));
    open_channel_to_ldk(&devchain, &operator, &client, 400_000, PUSH_MSAT).await;

    // A bolt11 order, paid while the chain source refuses every broadcast.
    let wallet_before = operator.balance().await;
    proxy.set_faults(vec![Fault::refuse(Some(Method::POST), "/tx", 503)]);
    let refused_before = proxy.refused();
    let (bolt11_id, payment_id) = buy_over_lightning(&public_api, &client, false).await;
    let (_, funding) = wait_order_funded(&operator, &bolt11_id).await;
    wait_refusals(
        &proxy,
        refused_before,
        IMMEDIATE_ATTEMPTS + 2,
        "the funding transaction to be sent again after the broadcaster's own retries",
    )
    .await;
    assert!(!devchain.mempool_txids().contains(&funding));
    assert_eq!(
        client.payment(&payment_id).unwrap().status,
        ldk_node::payment::PaymentStatus::Pending,
        "the HTLC is not claimed while the chain source does not have the funding transaction"
    );
    // The operator sees it: a kept transaction the chain source does not have, an HTLC held.
    assert_eq!(
        operator
            .metric("lsp_broadcasts_open{state=\"sending\"}")
            .await,
        Some(1)
    );
    assert!(operator.metric("lsp_broadcast_failed_posts").await >= Some(IMMEDIATE_ATTEMPTS));
    assert_eq!(operator.metric("lsp_htlcs_held").await, Some(1));
    // The wallet synced many times meanwhile without finding the funding transaction on the
    // chain source; its inputs must still count as spent, or a refund or another open could
    // spend them again.
    let wallet_now = operator.balance().await;
    assert!(
        wallet_now.onchain_confirmed_sat + wallet_now.onchain_unconfirmed_sat + 100_000
            <= wallet_before.onchain_confirmed_sat + wallet_before.onchain_unconfirmed_sat,
        "before {wallet_before:?}, now {wallet_now:?}"
    );

    proxy.clear_faults();
    wait_for(
        "the funding transaction in the mempool",
        DEADLINE,
        || async { devchain.mempool_txids().contains(&funding).then_some(()) },
    )
    .await;
    assert_eq!(
        client.payment(&payment_id).unwrap().status,
        ldk_node::payment::PaymentStatus::Pending,
        "the HTLC is not claimed before the funding transaction confirms"
    );
    devchain.mine(1);
    wait_payment_status(
        &client,
        &payment_id,
        ldk_node::payment::PaymentStatus::Succeeded,
        "the client's payment to be claimed",
    )
    .await;
    devchain.mine(5);
    wait_sold_channel_usable(&client, funding).await;

    // An on-chain order that fails (ldk-node refuses announced channels), refunded while the
    // chain source refuses every broadcast.
    let refund_address = client.onchain_payment().new_address().unwrap();
    let order = create_olympus_order(
        &public_api,
        &olympus_order(&client.node_id().to_string(), true, Some(&refund_address)),
    )
    .await;
    let onchain_id = order["order_id"].as_str().unwrap().to_string();
    let (pay_to, total) = onchain_payment_of(&order);
    proxy.set_faults(vec![Fault::refuse(Some(Method::POST), "/tx", 503)]);
    devchain
        .fund(&pay_to, total)
        .expect("faucet pays the order");
    devchain.mine(1);
    let refund = wait_for("the refund to be signed and recorded", DEADLINE, || async {
        let detail = operator.order(&onchain_id).await;
        detail.refunds.first().cloned()
    })
    .await;
    let refund_txid: bitcoin::Txid = refund.txid.parse().unwrap();
    let refused_before = proxy.refused();
    wait_refusals(
        &proxy,
        refused_before,
        IMMEDIATE_ATTEMPTS + 2,
        "the refund to be sent again after the broadcaster's own retries",
    )
    .await;
    let detail = operator.order(&onchain_id).await;
    assert_eq!(detail.summary.state, "FAILED");
    assert_ne!(
        detail.order["payment"]["onchain"]["state"], "REFUNDED",
        "a refund that never reached the chain is not a refund"
    );
    assert!(!devchain.mempool_txids().contains(&refund_txid));

    proxy.clear_faults();
    wait_for_tx_in_mempool(&devchain, &refund_txid, "the refund in the mempool").await;
    devchain.mine(1);
    // One confirmation of the two `refund_confirmations` asks for: still owed. Two more chain
    // syncs after the one that saw the block leave the order passes time to get it wrong.
    let synced = wait_synced_to_tip(&operator, &devchain)
        .await
        .last_sync_at
        .unwrap();
    wait_for("two more chain syncs", DEADLINE, || async {
        let at = operator.info().await.last_sync_at.unwrap_or(0);
        (at >= synced + 2).then_some(())
    })
    .await;
    let detail = operator.order(&onchain_id).await;
    assert_ne!(detail.order["payment"]["onchain"]["state"], "REFUNDED");
    assert_eq!(operator.metric("lsp_refunds_pending").await, Some(1));
    devchain.mine(1);
    let refunded = wait_for("the on-chain option to be REFUNDED", DEADLINE, || async {
        let detail = operator.order(&onchain_id).await;
        (detail.order["payment"]["onchain"]["state"] == "REFUNDED").then_some(detail)
    })
    .await;
    assert_eq!(refunded.refunds.len(), 1, "{:?}", refunded.refunds);
    let refund_tx = devchain
        .get_transaction(&refund_txid)
        .expect("the refund is on the devchain");
    let to_client: u64 = refund_tx
        .output
        .iter()
        .filter(|o| o.script_pubkey == refund_address.script_pubkey())
        .map(|o| o.value.to_sat())
        .sum();
    assert_eq!(to_client, refund.amount_sat);
    assert_eq!(
        to_client + refund.fee_sat,
        total,
        "the client is made whole, less the refund fee"
    );
    assert_eq!(devchain.confirmations(&refund_txid), Some(2));
    assert_eq!(operator.metric("lsp_refunds_pending").await, Some(0));
    assert_eq!(
        operator.metric("lsp_orders{state=\"FAILED\"}").await,
        Some(1)
    );
    assert_eq!(
        operator.metric("lsp_orders{state=\"COMPLETED\"}").await,
        Some(1)
    );

    lsp.stop().await.unwrap();
    client.stop().unwrap();
}
