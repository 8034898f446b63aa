//! Crashes of the real binary between two steps that move money (the `fault-points` feature
//! aborts the process at a named point, as SIGKILL would), then a restart on the same data:
//! the client must be made whole, checked from the client's side.

mod common;

use std::sync::Arc;

use common::process::{regtest_config, NodeProcess};
use common::*;
use lsp_node::api::*;
use lsp_node::fault_points::CRASH_AT_VAR;
use serde_json::{json, Value};

/// The client's balance in the channel the LSP opens to it, so it can pay the LSP.
const PUSH_MSAT: u64 = 150_000_000;

async fn order_detail(operator: &Operator, id: &str) -> OrderDetail {
    operator
        .get(&format!("/v1/orders/{id}"))
        .await
        .expect("the order is known")
}

/// A crash after FAILED is persisted and before the held HTLC is failed back (the order fails
/// because the client refuses every open of its channel): the restarted
/// node fails it back at start, and the client's payment fails within seconds instead of
/// staying locked until the HTLC's own deadline, hundreds of blocks away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_held_htlc_of_a_failed_order_is_failed_back_after_a_crash() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let config = regtest_config(&dir.path().join("data"), &devchain.base_url(), 1);
    let crash_at = [(CRASH_AT_VAR, "order_failed.before_htlc_failed_back")];
    let mut lsp = NodeProcess::spawn(dir.path(), &config, &crash_at);
    let operator = lsp.wait_running(DEADLINE).await;
    fund(&devchain, &operator, 2_000_000).await;

    let ldk_dir = tempfile::tempdir().unwrap();
    let client = Arc::new(start_ldk_node_on(
        &devchain.base_url(),
        ldk_dir.path(),
        |_| {},
    ));
    open_channel_to_ldk(&devchain, &operator, &client, 400_000, PUSH_MSAT).await;

    let order: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/create_order", lsp.public_api_url()))
        .json(&json!({
            "lsp_balance_sat": "100000",
            "client_balance_sat": "0",
            "required_channel_confirmations": 1,
            "funding_confirms_within_blocks": 6,
            "channel_expiry_blocks": 1000,
            // ldk-node refuses announced inbound channels: every open is refused, and after
            // the last attempt the order fails with its HTLC held.
            "announce_channel": true,
            "public_key": client.node_id().to_string(),
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = order["order_id"].as_str().expect("an order").to_string();
    let invoice: ldk_node::lightning_invoice::Bolt11Invoice = order["payment"]["bolt11"]["invoice"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let payer = Arc::clone(&client);
    let payment_id = blocking(move || payer.bolt11_payment().send(&invoice, None))
        .await
        .expect("payment sent");
    // The refused opens fail the order; the process dies between FAILED and failing the HTLC
    // back.
    let status = lsp.wait_exit(DEADLINE).await;
    assert!(!status.success(), "aborted at the crash point: {status:?}");
    assert_eq!(
        client.payment(&payment_id).unwrap().status,
        ldk_node::payment::PaymentStatus::Pending,
        "the HTLC is still held by the dead node"
    );

    let mut lsp = NodeProcess::spawn(dir.path(), &config, &[]);
    let operator = lsp.wait_running(DEADLINE).await;
    let detail = order_detail(&operator, &id).await;
    assert_eq!(detail.summary.state, "FAILED");
    wait_for("the client's payment to fail back", DEADLINE, || async {
        let status = client.payment(&payment_id).map(|p| p.status);
        (status == Some(ldk_node::payment::PaymentStatus::Failed)).then_some(())
    })
    .await;
    assert_eq!(detail.order["payment"]["bolt11"]["state"], "REFUNDED");
    lsp.terminate(DEADLINE).await;
    client.stop().unwrap();
}
