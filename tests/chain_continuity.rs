//! A node never silently follows another chain: the real `lsp-node` process follows a reorg of
//! its chain source, but refuses, at start with exit code 2 and while running by not syncing, a
//! chain that no longer holds its blocks or one of another network.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::process::{regtest_config, NodeProcess};
use common::tcp_proxy::TcpProxy;
use common::*;
use lsp_node::api::NodeInfo;

const FOREIGN_CHAIN: &str = "no longer holds this node's blocks";

/// Replaces every block above genesis with a longer chain of new blocks: the same network, but
/// nothing of the node's chain after genesis survives.
fn replace_chain(devchain: &lsp_node::devchain::Devchain) {
    let (height, _) = devchain.tip();
    devchain.invalidate(height).expect("disconnect to genesis");
    devchain.mine(height + 2);
}

/// A server whose genesis block is signet's: a chain source repointed to another network.
async fn serve_signet_genesis() -> SocketAddr {
    let genesis = bitcoin::constants::genesis_block(bitcoin::Network::Signet)
        .block_hash()
        .to_string();
    let app = axum::Router::new().route(
        "/block-height/0",
        axum::routing::get(move || std::future::ready(genesis.clone())),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Waits until the node's syncs fail twice in a row with an error containing `needle`.
async fn wait_refusing(operator: &Operator, needle: &str) -> NodeInfo {
    wait_for("the node to refuse its chain source", DEADLINE, || async {
        let info = operator.info().await;
        let status = &info.chain_source;
        let refused = status.consecutive_failures >= 2
            && status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains(needle));
        refused.then_some(info)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_node_restarted_on_a_chain_without_its_blocks_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let devchain = start_devchain().await;
    let config = regtest_config(&data, &devchain.base_url(), 1);
    {
        let mut node = NodeProcess::spawn(dir.path(), &config, &[]);
        let operator = node.wait_running(DEADLINE).await;
        devchain.mine(3);
        wait_synced_to_tip(&operator, &devchain).await;
    } // SIGKILL

    replace_chain(&devchain);
    let mut node = NodeProcess::spawn(dir.path(), &config, &[]);
    let status = node.wait_exit(Duration::from_secs(60)).await;
    let log = node.log_text();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains(FOREIGN_CHAIN), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_running_node_follows_a_reorg_but_not_another_chain_or_network() {
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let proxy = TcpProxy::start(devchain.local_addr()).await;
    let config = regtest_config(&dir.path().join("data"), &proxy.url, 1);
    let mut node = NodeProcess::spawn(dir.path(), &config, &[]);
    let operator = node.wait_running(DEADLINE).await;
    devchain.mine(3);
    let before = wait_synced_to_tip(&operator, &devchain).await;

    // A reorg of two blocks is followed: the node ends on the new tip.
    devchain.invalidate(2).expect("disconnect two blocks");
    devchain.mine(3);
    let after = wait_synced_to_tip(&operator, &devchain).await;
    assert_eq!(after.block_height, before.block_height + 1);
    assert_eq!(after.chain_source.last_error, None);
    assert!(
        node.log_text().contains("reorganised the chain"),
        "{}",
        node.log_text()
    );

    // A chain sharing only genesis with ours is not followed.
    replace_chain(&devchain);
    let refused = wait_refusing(&operator, FOREIGN_CHAIN).await;
    assert_eq!(refused.block_height, after.block_height);
    assert_eq!(refused.block_hash, after.block_hash);
    assert!(
        node.log_text().contains("not following the chain source"),
        "{}",
        node.log_text()
    );

    // Nor is a chain source repointed at another network.
    let signet = serve_signet_genesis().await;
    proxy.repoint(signet);
    let signet_genesis = bitcoin::constants::genesis_block(bitcoin::Network::Signet).block_hash();
    let refused = wait_refusing(&operator, &format!("its genesis block is {signet_genesis}")).await;
    assert_eq!(refused.block_height, after.block_height);
}
