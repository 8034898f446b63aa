//! Force-close path: A force-closes an anchor channel with B, blocks are mined past A's
//! to_self_delay, and both sides' funds are swept back into their BDK wallets by the
//! OutputSweeper (SpendableOutputs handled).

mod common;

use common::*;
use lsp_node::api::*;

const FUNDING_SAT: u64 = 1_000_000;
const CAPACITY_SAT: u64 = 400_000;
const PUSH_SAT: u64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_force_close_sweeps_both_sides_into_their_wallets() {
    init_logging();
    let devchain = start_devchain().await;
    let url = devchain.base_url();
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let node_a = start_node(dir_a.path(), &url).await;
    let node_b = start_node(dir_b.path(), &url).await;
    let a = Operator::for_node(&node_a);
    let b = Operator::for_node(&node_b);
    fund(&devchain, &a, FUNDING_SAT).await;

    let request = OpenChannel {
        node_id: node_b.node_id().to_string(),
        address: Some(node_b.p2p_listen_addr().to_string()),
        capacity_sat: CAPACITY_SAT,
        push_msat: PUSH_SAT * 1000,
        announce: false,
    };
    let opened: OpenedChannel = a
        .post("/v1/channels", &request)
        .await
        .expect("open channel");
    wait_for_mempool(&devchain, "the funding transaction").await;
    mine_and_sync(&devchain, 6, &[&a, &b]).await;
    let channel = wait_for("the channel to be usable", DEADLINE, || async {
        a.sync().await;
        a.channels().await.into_iter().find(|c| c.is_usable)
    })
    .await;
    let a_onchain_before = a.balance().await.onchain_confirmed_sat;
    assert_eq!(b.balance().await.onchain_confirmed_sat, 0);

    assert_eq!(opened.channel_id.as_ref(), Some(&channel.channel_id));
    // Closing by the user channel id the open answered with, which never changes.
    let unknown = CloseChannel {
        channel_id: "12345".to_string(),
        counterparty_node_id: node_b.node_id().to_string(),
        force: true,
        override_lease: false,
    };
    let refused: Result<Empty, CallError> = a.post("/v1/channels/close", &unknown).await;
    assert_eq!(refused.unwrap_err().status, 404);
    let close = CloseChannel {
        channel_id: opened.user_channel_id.clone(),
        counterparty_node_id: node_b.node_id().to_string(),
        force: true,
        override_lease: false,
    };
    let _: Empty = a
        .post("/v1/channels/close", &close)
        .await
        .expect("force close");
    wait_for_mempool(&devchain, "the commitment transaction").await;
    mine_and_sync(&devchain, 1, &[&a, &b]).await;
    assert!(a.channels().await.is_empty());

    // B's output is not delayed for B beyond anchor's one block; A's waits for to_self_delay
    // (144 blocks by default). Mine past both and let the sweeps confirm.
    mine_and_sync(&devchain, 150, &[&a, &b]).await;
    wait_for(
        "both sweeps to confirm into the wallets",
        DEADLINE * 3,
        || async {
            a.sync().await;
            b.sync().await;
            if !devchain.mempool_txids().is_empty() {
                devchain.mine(1);
            }
            let a_balance = a.balance().await;
            let b_balance = b.balance().await;
            let a_back = a_balance
                .onchain_confirmed_sat
                .saturating_sub(a_onchain_before);
            let expected_a = CAPACITY_SAT - PUSH_SAT;
            let a_done =
                a_back > expected_a - 20_000 && a_back < expected_a && a_balance.lightning_sat == 0;
            let b_done = b_balance.onchain_confirmed_sat > PUSH_SAT - 10_000
                && b_balance.onchain_confirmed_sat < PUSH_SAT
                && b_balance.lightning_sat == 0;
            (a_done && b_done).then_some(())
        },
    )
    .await;

    node_a.stop().await.unwrap();
    node_b.stop().await.unwrap();
    devchain.shutdown().await;
}
