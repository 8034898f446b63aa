//! A chain source that fails part of its API must not blind the Lightning node: when the
//! wallet's queries fail, LDK's channel manager and chain monitor still follow new blocks (HTLC
//! timeouts and justice transactions depend on it), and the failure is reported.

mod common;

use common::fault_proxy::{Fault, FaultProxy};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lightning_keeps_following_blocks_while_wallet_sync_fails() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let proxy = FaultProxy::start(&devchain.base_url()).await;
    let node = start_node(dir.path(), &proxy.url).await;
    let operator = Operator::for_node(&node);
    wait_synced_to_tip(&operator, &devchain).await;

    // The wallet asks for the histories of the addresses it handed out; LDK's sync never does.
    operator.address().await;
    proxy.set_faults(vec![Fault::refuse(None, "/scripthash/", 503)]);
    devchain.mine(3);
    let (height, _) = devchain.tip();
    let info = wait_for(
        "the channel manager to reach the new tip while the wallet cannot sync",
        DEADLINE,
        || async {
            let info = operator.info().await;
            (info.block_height == height).then_some(info)
        },
    )
    .await;
    assert!(proxy.refused() > 0, "the wallet's queries were refused");
    let failing = wait_for("the wallet failure to be reported", DEADLINE, || async {
        let info = operator.info().await;
        (info.chain_source.consecutive_failures > 0).then_some(info)
    })
    .await;
    assert!(
        failing
            .chain_source
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("wallet")),
        "{:?}",
        failing.chain_source
    );
    assert_eq!(info.block_height, height);

    // Once the source answers again, the failure clears.
    proxy.clear_faults();
    wait_for("the chain source to be healthy again", DEADLINE, || async {
        let info = operator.info().await;
        (info.chain_source.consecutive_failures == 0).then_some(())
    })
    .await;
    node.stop().await.unwrap();
}
