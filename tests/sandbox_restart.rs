//! The sandbox survives restarts: the real `lsp-node run` on the embedded devchain
//! (`chain.source = "dev"`), with a wallet balance and a channel to an ldk-node 0.7.1 node, is
//! stopped with SIGTERM and then with SIGKILL and started again on the same data directory. Each
//! time it comes back on the same chain tip with the same balance and the same channel, which
//! still carries payments.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::process::NodeProcess;
use common::sandbox::Sandbox;
use common::*;
use lsp_node::api::*;
use serde_json::json;

const CHANNEL_SAT: u64 = 300_000;

/// What must be the same after a restart.
#[derive(Debug, PartialEq)]
struct Snapshot {
    tip: (String, String),
    balance: Balances,
    channels: Vec<(String, u64, u64)>,
}

async fn snapshot(sandbox: &Sandbox, operator: &Operator) -> Snapshot {
    let tip = sandbox.tip().await;
    wait_for("the node on the devchain tip", DEADLINE, || async {
        operator.sync().await;
        let info = operator.info().await;
        (info.block_height.to_string() == tip.0 && info.block_hash == tip.1).then_some(())
    })
    .await;
    let mut channels: Vec<_> = operator
        .channels()
        .await
        .into_iter()
        .map(|c| (c.channel_id, c.capacity_sat, c.outbound_msat))
        .collect();
    channels.sort();
    Snapshot {
        tip,
        balance: operator.balance().await,
        channels,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_sandbox_keeps_chain_balance_and_channels_across_sigterm_and_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (config, sandbox) = Sandbox::config(dir.path());

    let mut node = NodeProcess::spawn(dir.path(), &config, &[]);
    let operator = node.wait_running(DEADLINE).await;
    let address = operator.address().await;
    sandbox
        .post(
            "/dev/fund",
            json!({ "address": address, "sats": 1_000_000 }),
        )
        .await;
    sandbox.mine(1).await;
    wait_for("the funds confirmed", DEADLINE, || async {
        operator.sync().await;
        (operator.balance().await.onchain_confirmed_sat == 1_000_000).then_some(())
    })
    .await;

    let ldk_dir = tempfile::tempdir().unwrap();
    let ldk = Arc::new(start_ldk_node_on(&sandbox.url, ldk_dir.path(), |_| {}));
    let opened: OpenedChannel = operator
        .post(
            "/v1/channels",
            &OpenChannel {
                node_id: ldk.node_id().to_string(),
                address: Some(ldk.listening_addresses().unwrap()[0].to_string()),
                capacity_sat: CHANNEL_SAT,
                push_msat: 0,
                announce: false,
            },
        )
        .await
        .expect("our node opens a channel");
    let channel_id = opened.channel_id.expect("channel id");
    wait_for("the funding in the mempool", DEADLINE, || async {
        let mempool: Vec<String> =
            serde_json::from_str(&sandbox.get("/mempool/txids").await).unwrap();
        (!mempool.is_empty()).then_some(())
    })
    .await;
    sandbox.mine(6).await;
    wait_channel_usable(&operator, &ldk, &channel_id).await;
    pay_ldk(&operator, &ldk, 20_000_000).await;

    let mut before = snapshot(&sandbox, &operator).await;
    assert_eq!(before.channels.len(), 1);
    for (how, graceful) in [("SIGTERM", true), ("SIGKILL", false)] {
        if graceful {
            let status = node.terminate(Duration::from_secs(30)).await;
            assert!(status.success(), "{how}: {status}");
        } else {
            node.kill();
        }
        node = NodeProcess::spawn(dir.path(), &config, &[]);
        let operator = node.wait_running(DEADLINE).await;
        let after = snapshot(&sandbox, &operator).await;
        assert_eq!(after, before, "after {how}");

        // The chain goes on from the same tip, and the channel carries payments again.
        sandbox.mine(1).await;
        wait_channel_usable(&operator, &ldk, &channel_id).await;
        pay_ldk(&operator, &ldk, 5_000_000).await;
        before = snapshot(&sandbox, &operator).await;
    }

    blocking(move || ldk.stop().expect("ldk-node stops")).await;
}
