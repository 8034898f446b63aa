//! A sold channel's funding transaction after `ChannelPending`, checked from the client's side
//! (ldk-node) and on the devchain:
//! - fees rose past it: the devchain's blocks take only packages paying the congestion rate, so
//!   the funding (signed at the quiet rate) waits; the LSP pays for it by a child before the
//!   order's `funding_confirms_within_blocks` runs out, the next block confirms both, and the
//!   client's held HTLC is claimed only once the funding has confirmed;
//! - its input vanished in a reorg (the payment that funded the LSP's wallet was double spent):
//!   the funding can never confirm, so the completed order fails after all and the client's HTLC
//!   goes back;
//! - the client force-closed the channel before the funding confirmed: its close carries the
//!   funding into a block, so the client had the channel (and its pushed balance) and the HTLC is
//!   claimed, never failed back.

mod common;

use std::sync::Arc;

use common::client_scene::ClientScene;
use common::*;
use lsp_node::devchain::Devchain;

/// The devchain's congestion during the test, in sat/vB.
const CONGESTION_SAT_PER_VB: f64 = 20.0;

/// Fee rate in sat/vB of the devchain transactions `txids` together.
fn package_rate(devchain: &Devchain, txids: &[bitcoin::Txid]) -> f64 {
    let (mut fee, mut vsize) = (0u64, 0usize);
    for txid in txids {
        fee += devchain.fee_of(txid).expect("a known transaction");
        vsize += devchain.get_transaction(txid).unwrap().vsize();
    }
    fee as f64 / vsize as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_funding_outpaced_by_fees_is_carried_by_a_child_and_the_htlc_waits_for_its_confirmation(
) {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        operator,
        public_api,
        client,
        ..
    } = ClientScene::start(2_000_000).await;

    let (id, payment_id) = buy_over_lightning(&public_api, &client, false).await;
    let (_, funding) = wait_order_funded(&operator, &id).await;
    wait_for_tx_in_mempool(&devchain, &funding, "the funding transaction").await;
    let signed_rate = package_rate(&devchain, &[funding]);
    assert!(
        signed_rate < CONGESTION_SAT_PER_VB,
        "funded at the quiet rate: {signed_rate}"
    );

    // Fees rise: blocks now take only packages paying the congestion rate.
    let response = reqwest::Client::new()
        .post(format!("{}/dev/congestion", devchain.base_url()))
        .json(&serde_json::json!({ "min_fee_rate_sat_per_vb": CONGESTION_SAT_PER_VB }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    devchain.mine(1);
    assert_eq!(
        devchain.confirmations(&funding),
        Some(0),
        "the funding waits under congestion"
    );
    assert_eq!(
        client.payment(&payment_id).unwrap().status,
        ldk_node::payment::PaymentStatus::Pending,
        "the HTLC is not claimed while the funding is unconfirmed"
    );

    let child = wait_mempool_spender(
        &devchain,
        &funding,
        "a child paying for the funding transaction",
    )
    .await;
    let carried = package_rate(&devchain, &[funding, child]);
    assert!(
        carried >= CONGESTION_SAT_PER_VB,
        "the package pays the congestion rate: {carried}"
    );
    assert_eq!(
        devchain.get_transaction(&child).unwrap().output.len(),
        1,
        "the child pays the funding's change back to the LSP's wallet"
    );

    devchain.mine(1);
    assert_eq!(
        devchain.confirmations(&funding),
        Some(1),
        "the child carried it"
    );
    assert_eq!(devchain.confirmations(&child), Some(1));
    wait_payment_status(
        &client,
        &payment_id,
        ldk_node::payment::PaymentStatus::Succeeded,
        "the client's payment to be claimed after the confirmation",
    )
    .await;
    devchain.set_congestion(0.0);
    devchain.mine(6);
    wait_sold_channel_usable(&client, funding).await;
    let detail = operator.order(&id).await;
    assert_eq!(detail.summary.state, "COMPLETED");
    lsp.stop().await.unwrap();
    client.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_funding_whose_input_vanished_fails_the_order_and_returns_the_htlc() {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        operator,
        public_api,
        client,
        ..
    } = ClientScene::start(1_000_000).await;
    // The wallet is emptied, then holds one payment only, confirmed in the tip block.
    let _: serde_json::Value = operator
        .post(
            "/v1/send",
            &serde_json::json!({ "address": txs::address(9).to_string(), "send_all": true }),
        )
        .await
        .expect("the wallet is swept");
    wait_for_mempool(&devchain, "the sweep").await;
    devchain.mine(1);
    wait_for("the sweep to confirm in the wallet", DEADLINE, || async {
        operator.sync().await;
        let balance = operator.balance().await;
        (balance.onchain_confirmed_sat + balance.onchain_unconfirmed_sat == 0).then_some(())
    })
    .await;
    fund(&devchain, &operator, 500_000).await;

    let (id, payment_id) = buy_over_lightning(&public_api, &client, false).await;
    let (_, funding) = wait_order_funded(&operator, &id).await;
    wait_for_tx_in_mempool(&devchain, &funding, "the funding transaction").await;
    let parent = devchain.get_transaction(&funding).unwrap().input[0]
        .previous_output
        .txid;
    assert_eq!(
        devchain.confirmations(&parent),
        Some(1),
        "the funding spends the payment in the tip block"
    );

    // The block is replaced by a longer branch without that payment: the funding can never
    // confirm.
    devchain.reorg(1, &[parent]).expect("reorg");
    assert_eq!(devchain.confirmations(&parent), None);
    assert_eq!(devchain.confirmations(&funding), None);
    let failed = wait_for(
        "the order to fail for its lost funding",
        DEADLINE,
        || async {
            let detail = operator.order(&id).await;
            (detail.summary.state == "FAILED").then_some(detail)
        },
    )
    .await;
    assert_eq!(failed.order["payment"]["bolt11"]["state"], "REFUNDED");
    wait_payment_status(
        &client,
        &payment_id,
        ldk_node::payment::PaymentStatus::Failed,
        "the client's payment to fail back",
    )
    .await;
    devchain.mine(6);
    assert_eq!(
        devchain.confirmations(&funding),
        None,
        "the lost funding never reaches the chain"
    );
    lsp.stop().await.unwrap();
    client.stop().unwrap();
}

/// The client force-closes its new channel (with a balance the LSP pushed to it) before the
/// funding confirmed: the LSP stops sending the funding, but the client's close carries it
/// into a block, so the client had its channel and its balance: the HTLC is claimed, never
/// failed back as if the channel had not been delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_channel_closed_by_the_client_before_its_funding_confirmed_is_still_paid_for() {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        operator,
        public_api,
        client,
        ..
    } = ClientScene::start(2_000_000).await;
    let mut body = olympus_order(&client.node_id().to_string(), false, None);
    body["client_balance_sat"] = serde_json::json!("20000");
    let order = create_olympus_order(&public_api, &body).await;
    let id = order["order_id"].as_str().unwrap().to_string();
    let payment_id = pay_order_over_lightning(&client, &order).await;
    let (_, funding) = wait_order_funded(&operator, &id).await;
    wait_for_tx_in_mempool(&devchain, &funding, "the funding transaction").await;
    let sold = wait_for("the sold channel at the client", DEADLINE, || async {
        client
            .list_channels()
            .into_iter()
            .find(|c| c.funding_txo.map(|o| o.txid) == Some(funding))
    })
    .await;
    assert!(
        sold.outbound_capacity_msat + sold.unspendable_punishment_reserve.unwrap_or(0) * 1000
            >= 19_000_000,
        "the pushed balance is the client's: {sold:?}"
    );
    let closer = Arc::clone(&client);
    blocking(move || {
        closer.force_close_channel(&sold.user_channel_id, sold.counterparty_node_id, None)
    })
    .await
    .expect("the client force-closes");
    let close = wait_mempool_spender(
        &devchain,
        &funding,
        "the client's commitment in the mempool",
    )
    .await;
    wait_for("the LSP to see the channel closed", DEADLINE, || async {
        let open = operator.channels().await.into_iter().any(|c| {
            c.funding_txo
                .as_deref()
                .is_some_and(|o| o.starts_with(&funding.to_string()))
        });
        (!open).then_some(())
    })
    .await;
    assert_eq!(
        client.payment(&payment_id).unwrap().status,
        ldk_node::payment::PaymentStatus::Pending,
        "nothing claimed while the funding is unconfirmed"
    );

    devchain.mine(1);
    assert_eq!(devchain.confirmations(&funding), Some(1));
    assert_eq!(devchain.confirmations(&close), Some(1));
    wait_payment_status(
        &client,
        &payment_id,
        ldk_node::payment::PaymentStatus::Succeeded,
        "the client's payment to be claimed",
    )
    .await;
    let detail = operator.order(&id).await;
    assert_eq!(detail.summary.state, "COMPLETED");
    assert_eq!(detail.order["payment"]["bolt11"]["state"], "PAID");
    lsp.stop().await.unwrap();
    client.stop().unwrap();
}
