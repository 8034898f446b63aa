//! `lsp-node leases` follows a lease bought in the sandbox (the real binary on its embedded
//! devchain) from purchase to close: an ldk-node client buys a channel paid on chain, and at
//! each step the operator's command lists the lease PENDING, ACTIVE, then (its end reached,
//! the client online) closing, and CLOSED by the LSP cooperatively, with the totals line.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::process::NodeProcess;
use common::sandbox::Sandbox;
use common::*;

/// Blocks the lease lasts: past the six confirmations ldk-node waits for before it takes the
/// channel as ready, so that the channel is usable (and cooperatively closable) at the end.
const LEASE_BLOCKS: u32 = 8;

/// `lsp-node leases` against the node behind `operator`: its output.
fn leases_command(operator: &Operator) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_lsp-node"))
        .args(["--admin-url", &operator.base, "leases"])
        .env("LSP_NODE_API_KEY", &operator.key)
        .output()
        .expect("the binary runs");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{text}");
    eprintln!("$ lsp-node leases\n{text}");
    text
}

/// The state column of order `id`'s line in `lsp-node leases`.
fn listed_state(operator: &Operator, id: &str) -> String {
    let text = leases_command(operator);
    let line = text
        .lines()
        .find(|line| line.contains(id))
        .unwrap_or_else(|| panic!("order {id} is listed: {text}"));
    ["PENDING", "ACTIVE", "ENDED", "CLOSING", "CLOSED"]
        .into_iter()
        .find(|state| line.contains(state))
        .unwrap_or_else(|| panic!("a state in {line}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_the_leases_command_shows_a_sandbox_lease_from_purchase_to_close() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let (config, sandbox) = Sandbox::config(dir.path());
    let mut node = NodeProcess::spawn(dir.path(), &config, &[]);
    let operator = node.wait_running(DEADLINE).await;
    sandbox.fund(&operator.address().await, 1_000_000).await;
    sandbox.mine(1).await;
    wait_for("the LSP's funds", DEADLINE, || async {
        operator.sync().await;
        (operator.balance().await.onchain_confirmed_sat == 1_000_000).then_some(())
    })
    .await;

    let client_dir = tempfile::tempdir().unwrap();
    let client = Arc::new(start_ldk_node_on(&sandbox.url, client_dir.path(), |_| {}));
    let info = operator.info().await;
    client
        .connect(
            info.node_id.parse().unwrap(),
            info.listening_addresses[0].parse().unwrap(),
            true,
        )
        .expect("the client connects to the LSP");
    let refund = client.onchain_payment().new_address().unwrap();
    let mut body = olympus_order(&client.node_id().to_string(), false, Some(&refund));
    body["channel_expiry_blocks"] = LEASE_BLOCKS.into();
    let order = create_olympus_order(&node.public_api_url(), &body).await;
    let id = order["order_id"].as_str().unwrap().to_string();
    let (address, total) = onchain_payment_of(&order);
    sandbox.fund(&address.to_string(), total).await;
    sandbox.mine(1).await;
    let (_, funding) = wait_order_funded(&operator, &id).await;
    assert_eq!(listed_state(&operator, &id), "PENDING");

    wait_for("the funding in the mempool", DEADLINE, || async {
        sandbox
            .mempool()
            .await
            .contains(&funding.to_string())
            .then_some(())
    })
    .await;
    sandbox.mine(1).await;
    wait_for("the lease to start", DEADLINE, || async {
        operator.sync().await;
        (listed_state(&operator, &id) == "ACTIVE").then_some(())
    })
    .await;
    sandbox.mine(5).await;
    wait_sold_channel_usable(&client, funding).await;

    // Five blocks after the confirming one; the end is the confirming height + LEASE_BLOCKS.
    sandbox.mine(LEASE_BLOCKS - 5).await;
    wait_for("the LSP to close the ended lease", DEADLINE, || async {
        operator.sync().await;
        let sync = Arc::clone(&client);
        blocking(move || sync.sync_wallets().expect("client syncs")).await;
        let closing = !sandbox.mempool().await.is_empty();
        closing.then_some(())
    })
    .await;
    let state = listed_state(&operator, &id);
    assert!(matches!(state.as_str(), "CLOSING" | "CLOSED"), "{state}");
    sandbox.mine(1).await;
    let text = wait_for("the lease to be closed", DEADLINE, || async {
        operator.sync().await;
        let text = leases_command(&operator);
        text.lines()
            .any(|line| line.contains(&id) && line.contains("CLOSED"))
            .then_some(text)
    })
    .await;
    assert!(text.contains("lsp (cooperative)"), "{text}");
    assert!(text.contains("freed"), "the totals line: {text}");
    node.terminate(DEADLINE).await;
    blocking(move || client.stop().expect("ldk-node stops")).await;
}
