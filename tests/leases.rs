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
use lsp_node::lsps1::clock::rfc3339;

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

/// The lease rows of order `id`'s history, oldest first.
async fn lease_history(operator: &Operator, id: &str) -> Vec<String> {
    let events = operator.order(id).await.events.into_iter().map(|e| e.event);
    events.filter(|e| e.starts_with("lease_")).collect()
}

/// The most inbound liquidity the LSP's `get_info` offers now.
async fn max_lsp_balance(public_api: &str) -> u64 {
    let info: serde_json::Value = reqwest::get(format!("{public_api}/api/v1/get_info"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    info["max_initial_lsp_balance_sat"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn leases(operator: &Operator, query: &str) -> LeaseList {
    operator
        .get(&format!("/v1/leases{query}"))
        .await
        .expect("the lease list")
}

/// Buys a lease of `blocks` over Lightning for `client`, `client_balance_sat` pushed to it;
/// returns the order id and the order.
async fn buy_lease(
    public_api: &str,
    client: &Arc<ldk_node::Node>,
    client_balance_sat: u64,
    blocks: u32,
) -> (String, serde_json::Value) {
    let mut body = olympus_order(&client.node_id().to_string(), false, None);
    body["channel_expiry_blocks"] = blocks.into();
    body["client_balance_sat"] = client_balance_sat.to_string().into();
    let order = create_olympus_order(public_api, &body).await;
    pay_order_over_lightning(client, &order).await;
    (order["order_id"].as_str().unwrap().to_string(), order)
}

/// Mines a block once the funding of order `id` is in the mempool and waits for the lease to
/// start; mines on to its end height. Returns the end height.
async fn run_lease_to_its_end(
    devchain: &lsp_node::devchain::Devchain,
    operator: &Operator,
    id: &str,
    funding: &bitcoin::Txid,
) -> u32 {
    wait_for_tx_in_mempool(devchain, funding, "the funding transaction").await;
    devchain.mine(1);
    let active = wait_lease_state(operator, id, "ACTIVE").await;
    let end = active.end_height.unwrap();
    devchain.mine(end - devchain.tip().0);
    end
}

/// The LSP is down while the lease runs to its end: on its return it ends the lease and closes
/// the channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_an_ended_lease_is_closed_cooperatively_and_the_client_gets_its_balance_on_chain() {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        config,
        operator,
        public_api,
        client,
    } = ClientScene::start(2_000_000).await;
    const PUSHED_SAT: u64 = 20_000;
    let sellable_before = max_lsp_balance(&public_api).await;
    let (id, order) = buy_lease(&public_api, &client, PUSHED_SAT, LEASE_BLOCKS).await;
    let (_, funding) = wait_order_funded(&operator, &id).await;
    let capacity: u64 = order["lsp_balance_sat"].as_str().unwrap().parse().unwrap();
    let capacity = capacity + PUSHED_SAT;
    let sellable_leased = max_lsp_balance(&public_api).await;
    assert!(
        sellable_leased <= sellable_before - capacity,
        "the leased capacity is no longer offered: {sellable_before} -> {sellable_leased}"
    );
    let onchain_before = client.list_balances().total_onchain_balance_sats;
    wait_for_tx_in_mempool(&devchain, &funding, "the funding transaction").await;
    devchain.mine(1);
    let end = wait_lease_state(&operator, &id, "ACTIVE")
        .await
        .end_height
        .unwrap();
    lsp.stop().await.unwrap();
    devchain.mine(end - devchain.tip().0);
    let lsp = lsp_node::Builder::new(config)
        .start()
        .await
        .expect("the LSP starts again");
    let operator = Operator::for_node(&lsp);

    // The client needs to see the funding confirmed before the channel is usable, and the LSP
    // closes only a usable channel.
    let closing = wait_for("the LSP to close the ended lease", DEADLINE, || async {
        let sync = Arc::clone(&client);
        blocking(move || sync.sync_wallets().expect("client syncs")).await;
        let lease = operator.order(&id).await.lease?;
        matches!(lease.state.as_str(), "CLOSING" | "CLOSED").then_some(lease)
    })
    .await;
    assert_eq!(closing.end_height, Some(end));
    let closed = wait_lease_state(&operator, &id, "CLOSED").await;
    assert_eq!(
        (closed.closed_by.as_deref(), closed.close_kind.as_deref()),
        (Some("lsp"), Some("cooperative"))
    );
    let close = wait_mempool_spender(&devchain, &funding, "the closing transaction").await;
    devchain.mine(1);
    let syncing = Arc::clone(&client);
    let onchain_after = wait_for("the client's balance on chain", DEADLINE, || async {
        let sync = Arc::clone(&syncing);
        blocking(move || sync.sync_wallets().expect("client syncs")).await;
        let balance = syncing.list_balances().total_onchain_balance_sats;
        (balance > onchain_before).then_some(balance)
    })
    .await;
    assert_eq!(
        onchain_after - onchain_before,
        PUSHED_SAT,
        "the cooperative close {close} pays the client its whole balance"
    );
    // The LSP's side of the channel is spendable again, and offered again.
    let public_api = format!("http://{}", lsp.http_listen_addr().unwrap());
    let freed = capacity - PUSHED_SAT;
    let sellable_after = wait_for("the freed capital to be offered", DEADLINE, || async {
        operator.sync().await;
        let sellable = max_lsp_balance(&public_api).await;
        (sellable + 5_000 >= sellable_leased + freed).then_some(sellable)
    })
    .await;
    assert!(
        sellable_after <= sellable_leased + freed,
        "no more than the channel's own side comes back: {sellable_leased} -> {sellable_after}"
    );
    let events = lease_history(&operator, &id).await;
    assert_eq!(
        events,
        [
            "lease_pending",
            "lease_active",
            "lease_ended",
            "lease_closing",
            "lease_closed"
        ]
    );
    lsp.stop().await.unwrap();
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
        ..
    } = ClientScene::start_with(2_000_000, |config| {
        config.lsps1.leases.at_end = lsp_node::config::lsps1::LeaseEnd::Keep;
    })
    .await;

    let (id, _) = buy_lease(&public_api, &client, 0, LEASE_BLOCKS).await;
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
    // bLIP-51's `expires_at`, re-estimated from the start: blocks of ten minutes from then.
    let started = operator.order(&id).await;
    let started_at = started
        .events
        .iter()
        .find(|e| e.event == "lease_active")
        .unwrap()
        .at;
    let expires_at = started.order["channel"]["expires_at"].as_str().unwrap();
    assert_eq!(
        expires_at,
        rfc3339(started_at + u64::from(LEASE_BLOCKS) * 600),
        "{}",
        started.order
    );
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

    // The operator's plain close of the running lease is refused, with why; nothing closes.
    let sold = operator
        .channels()
        .await
        .into_iter()
        .find(|c| c.funding_txo.as_deref() == Some(active.channel.as_str()))
        .expect("the sold channel");
    for force in [false, true] {
        let refused: Result<Empty, CallError> = operator
            .post(
                "/v1/channels/close",
                &CloseChannel {
                    channel_id: sold.channel_id.clone(),
                    counterparty_node_id: sold.counterparty_node_id.clone(),
                    force,
                    override_lease: false,
                },
            )
            .await;
        let refused = refused.expect_err("a running lease is not closed");
        assert_eq!(refused.status, 409);
        assert!(
            refused.message.contains("leased to") && refused.message.contains(&id),
            "{}",
            refused.message
        );
    }
    assert!(operator
        .channels()
        .await
        .iter()
        .any(|c| c.channel_id == sold.channel_id));

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
    let history = lease_history(&operator, &id).await;
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

/// Syncs `client` until its on-chain balance passes `above`, mining a block between tries
/// (sweeps wait for their own confirmations).
async fn wait_client_onchain_above(
    devchain: &lsp_node::devchain::Devchain,
    client: &Arc<ldk_node::Node>,
    above: u64,
) -> u64 {
    wait_for("the client's funds on chain", DEADLINE, || async {
        let sync = Arc::clone(client);
        blocking(move || sync.sync_wallets().expect("client syncs")).await;
        let balance = client.list_balances().total_onchain_balance_sats;
        if balance <= above {
            devchain.mine(1);
        }
        (balance > above).then_some(balance)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_client_away_at_the_lease_end_is_force_closed_after_the_grace_and_both_sides_get_their_funds(
) {
    const GRACE_BLOCKS: u32 = 3;
    const PUSHED_SAT: u64 = 20_000;
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        operator,
        public_api,
        client,
        ..
    } = ClientScene::start_with(2_000_000, |config| {
        config.lsps1.leases.force_close_after_blocks = GRACE_BLOCKS;
    })
    .await;
    let (id, _) = buy_lease(&public_api, &client, PUSHED_SAT, LEASE_BLOCKS).await;
    let (_, funding) = wait_order_funded(&operator, &id).await;
    let client_onchain = client.list_balances().total_onchain_balance_sats;
    client.stop().unwrap();
    let end = run_lease_to_its_end(&devchain, &operator, &id, &funding).await;
    wait_lease_state(&operator, &id, "ENDED").await;

    // Within the grace the channel stays open: the client is away, nothing closes it.
    devchain.mine(GRACE_BLOCKS - 1);
    operator.sync().await;
    assert_eq!(devchain.tip().0, end + GRACE_BLOCKS - 1);
    assert_eq!(operator.order(&id).await.lease.unwrap().state, "ENDED");
    let open = operator.channels().await.into_iter().any(|c| {
        c.funding_txo
            .as_deref()
            .is_some_and(|o| o.starts_with(&funding.to_string()))
    });
    assert!(open, "the channel is still open within the grace");
    devchain.mine(1);
    let closed = wait_lease_state(&operator, &id, "CLOSED").await;
    assert_eq!(
        (closed.closed_by.as_deref(), closed.close_kind.as_deref()),
        (Some("lsp"), Some("force"))
    );
    let commitment = wait_mempool_spender(&devchain, &funding, "the LSP's commitment").await;
    let lsp_before_sweep = operator.balance().await.onchain_confirmed_sat;
    devchain.mine(1);

    // The client comes back and takes its balance; the LSP sweeps its own after the delay.
    let client = Arc::new(start_ldk_node(&devchain, _dirs.1.path(), |_| {}));
    let client_after = wait_client_onchain_above(&devchain, &client, client_onchain).await;
    assert!(
        client_after >= client_onchain + PUSHED_SAT - 1_000,
        "the client got its {PUSHED_SAT} sat (less a sweep fee) from {commitment}: {client_onchain} -> {client_after}"
    );
    let lsp_after = wait_for("the LSP to sweep its side", DEADLINE, || async {
        let balance = operator.balance().await.onchain_confirmed_sat;
        if balance < lsp_before_sweep + 90_000 {
            devchain.mine(6);
            operator.sync().await;
        }
        (balance >= lsp_before_sweep + 90_000).then_some(balance)
    })
    .await;
    assert!(lsp_after <= lsp_before_sweep + closed.lsp_balance_sat);
    client.stop().unwrap();
    lsp.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_the_operator_closes_a_running_lease_with_the_override_and_the_lease_says_so() {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        operator,
        public_api,
        client,
        ..
    } = ClientScene::start(2_000_000).await;
    // Long enough for the client to take the channel as usable well before the end.
    let (id, _) = buy_lease(&public_api, &client, 0, 10 * LEASE_BLOCKS).await;
    let (_, funding) = wait_order_funded(&operator, &id).await;
    wait_for_tx_in_mempool(&devchain, &funding, "the funding transaction").await;
    devchain.mine(LEASE_BLOCKS);
    let active = wait_lease_state(&operator, &id, "ACTIVE").await;
    wait_sold_channel_usable(&client, funding).await;
    let sold = operator
        .channels()
        .await
        .into_iter()
        .find(|c| c.funding_txo.as_deref() == Some(active.channel.as_str()))
        .expect("the sold channel");
    let _: Empty = operator
        .post(
            "/v1/channels/close",
            &CloseChannel {
                channel_id: sold.user_channel_id.clone(),
                counterparty_node_id: sold.counterparty_node_id.clone(),
                force: false,
                override_lease: true,
            },
        )
        .await
        .expect("the override closes it");
    let closed = wait_lease_state(&operator, &id, "CLOSED").await;
    assert_eq!(
        (closed.closed_by.as_deref(), closed.close_kind.as_deref()),
        (Some("lsp"), Some("cooperative"))
    );
    assert!(devchain.tip().0 < active.end_height.unwrap());
    let history = operator.order(&id).await.events;
    let close = history.iter().find(|e| e.event == "lease_closed").unwrap();
    assert!(close.reason.contains("before the lease ended"), "{close:?}");
    lsp.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_kept_lease_stays_open_past_its_end_until_the_operator_closes_it() {
    const GRACE_BLOCKS: u32 = 2;
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        operator,
        public_api,
        client,
        ..
    } = ClientScene::start_with(2_000_000, |config| {
        config.lsps1.leases.force_close_after_blocks = GRACE_BLOCKS;
    })
    .await;
    let (id, _) = buy_lease(&public_api, &client, 0, LEASE_BLOCKS).await;
    let (_, funding) = wait_order_funded(&operator, &id).await;
    wait_lease_state(&operator, &id, "PENDING").await;
    let kept: LeaseInfo = operator
        .post(
            "/v1/leases/keep",
            &KeepLease {
                order_id: id.clone(),
            },
        )
        .await
        .expect("keep");
    assert!(kept.keep_open);
    let end = run_lease_to_its_end(&devchain, &operator, &id, &funding).await;
    devchain.mine(GRACE_BLOCKS);
    wait_lease_state(&operator, &id, "ENDED").await;
    assert_eq!(devchain.tip().0, end + GRACE_BLOCKS);

    // Past the end and the grace, the lease is still the operator's to close.
    wait_sold_channel_usable(&client, funding).await;
    let closing: LeaseInfo = operator
        .post(
            "/v1/leases/close",
            &CloseLease {
                order_id: id.clone(),
                force: false,
            },
        )
        .await
        .expect("the operator closes the kept lease");
    assert!(
        matches!(closing.state.as_str(), "CLOSING" | "CLOSED"),
        "{closing:?}"
    );
    let closed = wait_lease_state(&operator, &id, "CLOSED").await;
    assert_eq!(
        (closed.closed_by.as_deref(), closed.close_kind.as_deref()),
        (Some("lsp"), Some("cooperative"))
    );
    let again: Result<LeaseInfo, CallError> = operator
        .post(
            "/v1/leases/close",
            &CloseLease {
                order_id: id.clone(),
                force: true,
            },
        )
        .await;
    assert_eq!(again.unwrap_err().status, 409);
    let events = lease_history(&operator, &id).await;
    assert_eq!(
        events,
        [
            "lease_pending",
            "lease_kept",
            "lease_active",
            "lease_ended",
            "lease_closing",
            "lease_closed"
        ]
    );
    lsp.stop().await.unwrap();
}
