//! The lease book, from the client's side (ldk-node) and the devchain: a channel bought over
//! Lightning is a lease PENDING until its funding confirms, ACTIVE from the confirming block for
//! the blocks bought, ENDED once the chain reaches its end height, and CLOSED with who closed
//! it and how; the operator lists it (`GET /v1/leases`, `lsp-node leases`) with totals.

mod common;

use std::process::Command;
use std::sync::Arc;

use common::client_scene::ClientScene;
use common::*;
use lsp_node::api::*;

/// Blocks the test lease lasts.
const LEASE_BLOCKS: u32 = 6;

async fn wait_lease_state(operator: &Operator, id: &str, state: &str) -> LeaseInfo {
    wait_for(&format!("the lease to be {state}"), DEADLINE, || async {
        operator
            .order(id)
            .await
            .lease
            .filter(|lease| lease.state == state)
    })
    .await
}

async fn leases(operator: &Operator, query: &str) -> LeaseList {
    operator
        .get(&format!("/v1/leases{query}"))
        .await
        .expect("the lease list")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_lease_runs_from_its_funding_to_the_clients_close_after_its_end() {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        operator,
        public_api,
        client,
    } = ClientScene::start(2_000_000).await;

    let mut body = olympus_order(&client.node_id().to_string(), false, None);
    body["channel_expiry_blocks"] = LEASE_BLOCKS.into();
    let order = create_olympus_order(&public_api, &body).await;
    let id = order["order_id"].as_str().unwrap().to_string();
    pay_order_over_lightning(&client, &order).await;
    let (funded, funding) = wait_order_funded(&operator, &id).await;
    let pending = wait_lease_state(&operator, &id, "PENDING").await;
    assert_eq!(pending.lease_blocks, LEASE_BLOCKS);
    assert_eq!((pending.start_height, pending.end_height), (None, None));
    assert_eq!(pending.lsp_balance_sat, funded.summary.lsp_balance_sat);
    assert_eq!(pending.client_node_id, client.node_id().to_string());
    assert!(pending.channel.starts_with(&funding.to_string()));
    assert_eq!(
        pending.revenue_sat,
        funded.price["fee_total_sat"].as_u64().unwrap()
    );

    wait_for_tx_in_mempool(&devchain, &funding, "the funding transaction").await;
    devchain.mine(1);
    let start = devchain.tip().0;
    let active = wait_lease_state(&operator, &id, "ACTIVE").await;
    assert_eq!(active.start_height, Some(start));
    assert_eq!(active.end_height, Some(start + LEASE_BLOCKS));
    let listed = leases(&operator, &format!("?ending_within_blocks={LEASE_BLOCKS}")).await;
    assert_eq!(listed.leases.len(), 1);
    assert_eq!(listed.leases[0].blocks_left, Some(LEASE_BLOCKS));
    let later = leases(
        &operator,
        &format!("?ending_within_blocks={}", LEASE_BLOCKS - 1),
    )
    .await;
    assert!(later.leases.is_empty(), "{later:?}");
    assert_eq!(
        (listed.leased_out_sat, listed.freed_sat),
        (pending.lsp_balance_sat, 0)
    );

    // The last block before the end leaves it ACTIVE; the end height ends it.
    devchain.mine(LEASE_BLOCKS - 1);
    operator.sync().await;
    let still = operator.order(&id).await.lease.unwrap();
    assert_eq!(
        (still.state.as_str(), still.blocks_left),
        ("ACTIVE", Some(1))
    );
    devchain.mine(1);
    let ended = wait_lease_state(&operator, &id, "ENDED").await;
    assert_eq!(ended.blocks_left, Some(0));

    // The client closes cooperatively after the end.
    let sold = wait_sold_channel_usable(&client, funding).await;
    let closer = Arc::clone(&client);
    blocking(move || closer.close_channel(&sold.user_channel_id, sold.counterparty_node_id))
        .await
        .expect("the client closes");
    let closed = wait_lease_state(&operator, &id, "CLOSED").await;
    assert_eq!(
        (closed.closed_by.as_deref(), closed.close_kind.as_deref()),
        (Some("client"), Some("cooperative"))
    );
    let totals = leases(&operator, "").await;
    assert_eq!(
        (totals.leased_out_sat, totals.freed_sat, totals.revenue_sat),
        (0, pending.lsp_balance_sat, pending.revenue_sat)
    );
    let history: Vec<String> = operator
        .order(&id)
        .await
        .events
        .into_iter()
        .map(|e| e.event)
        .filter(|e| e.starts_with("lease_"))
        .collect();
    assert_eq!(
        history,
        [
            "lease_pending",
            "lease_active",
            "lease_ended",
            "lease_closed"
        ]
    );

    // The operator's command shows it.
    let output = Command::new(env!("CARGO_BIN_EXE_lsp-node"))
        .args(["--admin-url", &operator.base, "leases", "--state", "closed"])
        .env("LSP_NODE_API_KEY", &operator.key)
        .output()
        .expect("the binary runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains(&id) && text.contains("client (cooperative)"),
        "{text}"
    );
    lsp.stop().await.unwrap();
}
