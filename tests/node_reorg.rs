//! Reorgs as our node meets them, on the devchain's `reorg`: a payment to our wallet that is
//! reorganised away, and channels to an ldk-node 0.7.1 node whose funding transaction is
//! reorganised out:
//! - and mined again before the channel is ready: the channel stays and becomes usable;
//! - and mined again after both sides sent `channel_ready`: LDK force-closes it at both ends,
//!   by design (HTLCs may have been accepted over a funding output that could be double spent;
//!   only 0-conf channels are exempt);
//! - and excluded, so it never existed: both sides drop the channel and our wallet gets its
//!   coins back.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bitcoin::Txid;
use common::*;
use lsp_node::api::*;
use lsp_node::devchain::Devchain;

const CHANNEL_SAT: u64 = 200_000;

async fn sync_ldk(ldk: &Arc<ldk_node::Node>) {
    let ldk = Arc::clone(ldk);
    blocking(move || ldk.sync_wallets().expect("ldk-node syncs")).await;
}

/// Syncs both nodes until each has seen the devchain's tip.
async fn sync_both(devchain: &Devchain, operator: &Operator, ldk: &Arc<ldk_node::Node>) {
    let (height, hash) = devchain.tip();
    wait_for("both nodes on the devchain tip", DEADLINE, || async {
        let ours = operator.sync().await;
        sync_ldk(ldk).await;
        let theirs = ldk.status().current_best_block;
        (ours.block_height == height && theirs.block_hash == hash).then_some(())
    })
    .await;
}

/// Our node opens a channel to `ldk` and waits for its funding in the mempool; returns the
/// channel id and the funding txid.
async fn open_channel(
    devchain: &Devchain,
    operator: &Operator,
    ldk: &Arc<ldk_node::Node>,
) -> (String, Txid) {
    let address = ldk.listening_addresses().expect("ldk-node listens")[0].to_string();
    let opened: OpenedChannel = operator
        .post(
            "/v1/channels",
            &OpenChannel {
                node_id: ldk.node_id().to_string(),
                address: Some(address),
                capacity_sat: CHANNEL_SAT,
                push_msat: 0,
                announce: false,
            },
        )
        .await
        .expect("our node opens a channel");
    let channel_id = opened.channel_id.expect("the channel id once funded");
    let funding = wait_for("the funding transaction", DEADLINE, || async {
        operator
            .channels()
            .await
            .into_iter()
            .find(|c| c.channel_id == channel_id)
            .and_then(|c| c.funding_txo)
    })
    .await;
    let txid: Txid = funding.split(':').next().unwrap().parse().unwrap();
    wait_for("the funding broadcast", DEADLINE, || {
        std::future::ready((devchain.confirmations(&txid) == Some(0)).then_some(()))
    })
    .await;
    (channel_id, txid)
}

/// [`open_channel`], six blocks, and the channel usable at both ends.
async fn open_confirmed_channel(
    devchain: &Devchain,
    operator: &Operator,
    ldk: &Arc<ldk_node::Node>,
) -> (String, Txid) {
    let (channel_id, txid) = open_channel(devchain, operator, ldk).await;
    devchain.mine(6);
    wait_channel_usable(operator, ldk, &channel_id).await;
    (channel_id, txid)
}

/// Waits until neither end lists `channel_id` any more.
async fn wait_dropped(
    devchain: &Devchain,
    operator: &Operator,
    ldk: &Arc<ldk_node::Node>,
    channel_id: &str,
) {
    wait_for("both sides to drop the channel", DEADLINE, || async {
        sync_both(devchain, operator, ldk).await;
        let ours = operator
            .channels()
            .await
            .into_iter()
            .any(|c| c.channel_id == channel_id);
        let theirs = ldk
            .list_channels()
            .into_iter()
            .any(|c| c.channel_id.to_string() == channel_id);
        (!ours && !theirs).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_wallet_balance_follows_a_reorg_that_removes_a_payment() {
    let devchain = start_devchain().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), &devchain.base_url()).await;
    let operator = Operator::for_node(&node);
    fund(&devchain, &operator, 300_000).await;
    let address: bitcoin::Address<bitcoin::address::NetworkUnchecked> =
        operator.address().await.parse().unwrap();
    let payment = devchain.fund(&address.assume_checked(), 200_000).unwrap();
    devchain.mine(1);
    wait_for("both payments confirmed", DEADLINE, || async {
        operator.sync().await;
        (operator.balance().await.onchain_confirmed_sat == 500_000).then_some(())
    })
    .await;

    let outcome = devchain.reorg(1, &[payment]).expect("reorg");
    assert_eq!(outcome.dropped, vec![payment]);
    let balance = wait_for("the reorganised payment gone", DEADLINE, || async {
        operator.sync().await;
        let balance = operator.balance().await;
        (balance.onchain_confirmed_sat == 300_000).then_some(balance)
    })
    .await;
    assert_eq!(balance.onchain_unconfirmed_sat, 0, "{balance:?}");
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_channel_survives_its_funding_reorged_and_closes_when_it_vanishes() {
    init_logging();
    let devchain = start_devchain().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(dir.path(), &devchain.base_url()).await;
    let operator = Operator::for_node(&node);
    fund(&devchain, &operator, 1_000_000).await;
    let ldk_dir = tempfile::tempdir().unwrap();
    let ldk = Arc::new(start_ldk_node(&devchain, ldk_dir.path(), |_| {}));

    // Reorganised out at one confirmation and mined again: the channel stays.
    let (kept, kept_funding) = open_channel(&devchain, &operator, &ldk).await;
    devchain.mine(1);
    sync_both(&devchain, &operator, &ldk).await;
    let outcome = devchain.reorg(1, &[]).expect("reorg of the funding block");
    assert!(outcome.dropped.is_empty(), "{outcome:?}");
    // One block replaced by two, the first of which holds the funding again.
    assert_eq!(devchain.confirmations(&kept_funding), Some(2));
    sync_both(&devchain, &operator, &ldk).await;
    devchain.mine(4);
    wait_channel_usable(&operator, &ldk, &kept).await;
    pay_ldk(&operator, &ldk, 10_000_000).await;

    // Reorganised out once ready, and mined again: LDK closes it at both ends.
    let (closed, closed_funding) = open_confirmed_channel(&devchain, &operator, &ldk).await;
    devchain.reorg(6, &[]).expect("reorg of the funding block");
    assert!(devchain.confirmations(&closed_funding).unwrap() >= 1);
    wait_dropped(&devchain, &operator, &ldk, &closed).await;

    // Reorganised out and excluded: the funding never happened.
    let balance_before = wait_for("the wallet settled", DEADLINE, || async {
        operator.sync().await;
        let balance = operator.balance().await;
        (balance.onchain_unconfirmed_sat == 0).then_some(balance)
    })
    .await;
    let (gone, gone_funding) = open_confirmed_channel(&devchain, &operator, &ldk).await;
    let outcome = devchain
        .reorg(6, &[gone_funding])
        .expect("reorg without the funding");
    assert!(outcome.dropped.contains(&gone_funding), "{outcome:?}");
    wait_dropped(&devchain, &operator, &ldk, &gone).await;
    let balance = wait_for("our coins back in the wallet", DEADLINE, || async {
        operator.sync().await;
        let balance = operator.balance().await;
        (balance.onchain_confirmed_sat == balance_before.onchain_confirmed_sat).then_some(balance)
    })
    .await;
    assert_eq!(balance.onchain_unconfirmed_sat, 0, "{balance:?}");
    // The other channel is untouched by the second reorg.
    wait_channel_usable(&operator, &ldk, &kept).await;
    pay_ldk(&operator, &ldk, 5_000_000).await;

    let ldk_stop = Arc::clone(&ldk);
    blocking(move || ldk_stop.stop().expect("ldk-node stops")).await;
    tokio::time::timeout(Duration::from_secs(30), node.stop())
        .await
        .expect("node stops in time")
        .unwrap();
}
