//! LSPS1 over Lightning p2p, end to end, against a client nobody here wrote: ldk-node 0.7.1's
//! LSPS1 client (lightning-liquidity 0.2) buys channels from our node on one devchain, over
//! real TCP on 127.0.0.1, and every failure ends with the client's money back.
//!
//! Every test is an end-to-end scenario (`e2e_` prefix); run them alone with
//! `cargo test --test lsps1_ldk_client`. ldk-node's API blocks on its own runtime, so its
//! calls go through `spawn_blocking`.

mod common;

use std::sync::Arc;

use common::*;
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::lightning_liquidity::lsps1::msgs::{LSPS1OrderId, LSPS1PaymentState};
use ldk_node::liquidity::LSPS1OrderStatus;
use ldk_node::Event;
use lsp_node::config::lsps1::Lsps1Config;
use lsp_node::config::Config;
use lsp_node::devchain::Devchain;
use lsp_node::lsps1::order::{Order, OrderId, OrderState, PaymentState};
use lsp_node::{App, Builder};
use tempfile::TempDir;

/// The LSP: our node, its operator client and its data directory.
struct Lsp {
    node: App,
    operator: Operator,
    _dir: TempDir,
}

impl Lsp {
    async fn start(devchain: &Devchain, edit: impl FnOnce(&mut Lsps1Config)) -> Lsp {
        let dir = tempfile::tempdir().unwrap();
        let node = Builder::new(lsp_config(dir.path(), devchain, edit))
            .start()
            .await
            .expect("LSP starts");
        let operator = Operator::for_node(&node);
        Lsp {
            node,
            operator,
            _dir: dir,
        }
    }

    fn order(&self, id: &str) -> Order {
        let service = self.node.order_service().expect("order service runs");
        let id = OrderId::parse(id).unwrap();
        service
            .order_book()
            .order(&id)
            .unwrap()
            .expect("order exists")
    }

    async fn wait_order(&self, id: &str, what: &str, done: impl Fn(&Order) -> bool) -> Order {
        wait_for(what, DEADLINE, || async {
            let order = self.order(id);
            done(&order).then_some(order)
        })
        .await
    }

    fn history(&self, id: &str) -> Vec<String> {
        let service = self.node.order_service().unwrap();
        service
            .order_book()
            .events(&OrderId::parse(id).unwrap())
            .unwrap()
            .into_iter()
            .map(|e| format!("{}: {}", e.event, e.to_state))
            .collect()
    }

    /// The order's history once LDK's report that its held HTLC went back is recorded; the
    /// row before it is the order's failure.
    async fn history_after_fail_back(&self, id: &str) -> Vec<String> {
        let history = wait_for("the failed-back HTLC in the history", DEADLINE, || async {
            let history = self.history(id);
            (history.last().map(String::as_str) == Some("htlc_failed_back: FAILED bolt11=REFUNDED"))
                .then_some(history)
        })
        .await;
        assert_eq!(
            history[history.len() - 2],
            "failed: FAILED bolt11=REFUNDED",
            "{history:?}"
        );
        history
    }
}

fn lsp_config(
    dir: &std::path::Path,
    devchain: &Devchain,
    edit: impl FnOnce(&mut Lsps1Config),
) -> Config {
    let mut config = config_for(dir, &devchain.base_url());
    // ldk-node 0.7.1 cannot parse HOLD (see `e2e_hold_is_spelled_paid_for_listed_clients`).
    config.lsps1.hold_as_paid_peers = vec!["*".to_string()];
    config.lsps1.open_timeout_secs = 30;
    edit(&mut config.lsps1);
    config
}

/// An ldk-node client on the devchain with `lsp` as its LSPS1 liquidity source.
fn start_client(
    devchain: &Devchain,
    lsp: &App,
    token: Option<String>,
    storage: &std::path::Path,
) -> Arc<ldk_node::Node> {
    let lsp_address: SocketAddress = lsp.p2p_listen_addr().to_string().parse().unwrap();
    Arc::new(start_ldk_node(devchain, storage, |builder| {
        builder.set_liquidity_source_lsps1(lsp.node_id(), lsp_address, token);
    }))
}

/// Runs a blocking ldk-node call off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking call")
}

async fn sync_client(client: &Arc<ldk_node::Node>) {
    let client = Arc::clone(client);
    blocking(move || client.sync_wallets().expect("client syncs")).await;
}

/// Faucet coins to the client, mined and visible in its wallet.
async fn fund_client(devchain: &Devchain, client: &Arc<ldk_node::Node>, sats: u64) {
    let address = client.onchain_payment().new_address().unwrap();
    devchain.fund(&address, sats).expect("faucet pays");
    devchain.mine(1);
    wait_for("the client's coins", DEADLINE, || async {
        sync_client(client).await;
        (client.list_balances().spendable_onchain_balance_sats >= sats).then_some(())
    })
    .await;
}

async fn request_channel(
    client: &Arc<ldk_node::Node>,
    lsp_balance_sat: u64,
    client_balance_sat: u64,
) -> Result<LSPS1OrderStatus, ldk_node::NodeError> {
    request_channel_announced(client, lsp_balance_sat, client_balance_sat, false).await
}

async fn request_channel_announced(
    client: &Arc<ldk_node::Node>,
    lsp_balance_sat: u64,
    client_balance_sat: u64,
    announce: bool,
) -> Result<LSPS1OrderStatus, ldk_node::NodeError> {
    let client = Arc::clone(client);
    blocking(move || {
        client.lsps1_liquidity().request_channel(
            lsp_balance_sat,
            client_balance_sat,
            1_000,
            announce,
        )
    })
    .await
}

async fn check_order_status(client: &Arc<ldk_node::Node>, id: &str) -> LSPS1OrderStatus {
    let client = Arc::clone(client);
    let id = LSPS1OrderId(id.to_string());
    blocking(move || client.lsps1_liquidity().check_order_status(id))
        .await
        .expect("check_order_status answers")
}

/// Waits until ldk-node's broadcaster (a background task) delivered `txid`.
async fn wait_for_mempool_tx(devchain: &Devchain, txid: bitcoin::Txid) {
    wait_for("the transaction in the mempool", DEADLINE, || async {
        devchain.mempool_txids().contains(&txid).then_some(())
    })
    .await;
}

/// Mines `txid` once ldk-node has broadcast it.
async fn mine_once_broadcast(devchain: &Devchain, txid: bitcoin::Txid) {
    wait_for_mempool_tx(devchain, txid).await;
    devchain.mine(1);
}

/// Handles client events until one matches `extract`.
async fn wait_client_event<T>(
    client: &Arc<ldk_node::Node>,
    what: &str,
    extract: impl Fn(&Event) -> Option<T>,
) -> T {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let event = client.next_event_async().await;
            let found = extract(&event);
            client.event_handled().expect("event handled");
            if let Some(found) = found {
                return found;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Mines (a block per round, until it is there) and waits until the client sees a usable
/// channel from the LSP of `capacity` sat. Funding transactions reach the devchain through
/// background broadcasters, so a fixed number of blocks mined at once could miss them.
async fn wait_usable_channel(
    devchain: &Devchain,
    lsp: &Lsp,
    client: &Arc<ldk_node::Node>,
    capacity: u64,
) -> ldk_node::ChannelDetails {
    wait_for("a usable channel at the client", DEADLINE, || async {
        lsp.operator.sync().await;
        sync_client(client).await;
        let found = client.list_channels().into_iter().find(|c| {
            c.counterparty_node_id == lsp.node.node_id()
                && c.channel_value_sats == capacity
                && c.is_usable
        });
        if found.is_none() {
            devchain.mine(1);
        }
        found
    })
    .await
}

/// A devchain, a funded LSP and a funded ldk-node client using it as LSPS1 source.
struct Scene {
    devchain: Devchain,
    lsp: Lsp,
    client: Arc<ldk_node::Node>,
    _client_dir: TempDir,
}

impl Scene {
    async fn new(
        edit: impl FnOnce(&mut Lsps1Config),
        lsp_sats: u64,
        client_sats: u64,
        token: Option<&str>,
    ) -> Scene {
        init_logging();
        let devchain = start_devchain().await;
        let lsp = Lsp::start(&devchain, edit).await;
        fund(&devchain, &lsp.operator, lsp_sats).await;
        let client_dir = tempfile::tempdir().unwrap();
        let client = start_client(
            &devchain,
            &lsp.node,
            token.map(str::to_string),
            client_dir.path(),
        );
        fund_client(&devchain, &client, client_sats).await;
        Scene {
            devchain,
            lsp,
            client,
            _client_dir: client_dir,
        }
    }

    /// A scene whose client has funded its own 400k channel to the LSP, to pay orders over
    /// Lightning, and the client's Lightning balance then.
    async fn paying_over_lightning(edit: impl FnOnce(&mut Lsps1Config)) -> (Scene, u64) {
        let scene = Scene::new(edit, 2_000_000, 1_000_000, None).await;
        client_opens_channel(&scene.devchain, &scene.lsp, &scene.client, 400_000).await;
        let balance = scene.client.list_balances().total_lightning_balance_sats;
        (scene, balance)
    }
}

/// The client funds a channel of `sats` to the LSP (outbound liquidity to pay with) and waits
/// until it is usable.
async fn client_opens_channel(
    devchain: &Devchain,
    lsp: &Lsp,
    client: &Arc<ldk_node::Node>,
    sats: u64,
) {
    let lsp_address: SocketAddress = lsp.node.p2p_listen_addr().to_string().parse().unwrap();
    let (opener, lsp_id) = (Arc::clone(client), lsp.node.node_id());
    blocking(move || opener.open_channel(lsp_id, lsp_address, sats, None, None))
        .await
        .expect("client opens its own channel");
    wait_usable_channel(devchain, lsp, client, sats).await;
}

/// The client pays the order's bolt11 invoice.
async fn pay_bolt11(client: &Arc<ldk_node::Node>, status: &LSPS1OrderStatus) {
    let invoice = status.payment_options.bolt11.clone().unwrap().invoice;
    let payer = Arc::clone(client);
    blocking(move || payer.bolt11_payment().send(&invoice, None))
        .await
        .expect("payment sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_client_buys_a_channel_paying_on_chain() {
    let Scene {
        devchain,
        lsp,
        client,
        _client_dir,
    } = Scene::new(|_| {}, 2_000_000, 500_000, None).await;

    let status = request_channel(&client, 100_000, 20_000)
        .await
        .expect("order created");
    let id = status.order_id.0.clone();
    let onchain = status
        .payment_options
        .onchain
        .clone()
        .expect("on-chain option offered (ldk-node sends a refund address)");
    let bolt11 = status
        .payment_options
        .bolt11
        .clone()
        .expect("bolt11 option");
    assert_eq!(onchain.state, LSPS1PaymentState::ExpectPayment);
    assert_eq!(
        bolt11.order_total_sat,
        bolt11.fee_total_sat + 20_000,
        "order_total = fee_total + client_balance"
    );
    assert!(
        onchain.order_total_sat > bolt11.order_total_sat,
        "on-chain adds the refund reserve"
    );
    let order = lsp.order(&id);
    assert_eq!(order.state, OrderState::Created);
    assert_eq!(order.client_node_id, Some(client.node_id()));

    let pay_to = onchain.address.clone();
    // 10 000 sat too much: the excess is refunded once the order completes.
    let amount = onchain.order_total_sat + 10_000;
    let payer = Arc::clone(&client);
    let txid = blocking(move || {
        payer
            .onchain_payment()
            .send_to_address(&pay_to, amount, None)
    })
    .await
    .expect("client pays on-chain");
    mine_once_broadcast(&devchain, txid).await;

    let completed = lsp
        .wait_order(&id, "the order to complete", |o| {
            o.state == OrderState::Completed
        })
        .await;
    assert_eq!(
        completed.onchain.as_ref().unwrap().state,
        PaymentState::Paid
    );
    let channel = completed.channel.clone().expect("channel recorded");
    assert!(channel.expires_at >= channel.funded_at + 1_000 * 600);
    let service = lsp.node.order_service().unwrap();
    let excess = wait_for("the excess to be refunded", DEADLINE, || async {
        let refunds = service.order_book().refunds(&completed.id).unwrap();
        refunds.first().cloned()
    })
    .await;
    assert_eq!(excess.amount_sat + excess.fee_sat, 10_000);
    assert_eq!(
        excess.address,
        onchain.refund_onchain_address.clone().unwrap().to_string()
    );

    let details = wait_usable_channel(&devchain, &lsp, &client, 120_000).await;
    assert!(!details.is_announced, "announce_channel=false respected");
    assert_eq!(
        details.funding_txo.map(|o| o.to_string()),
        Some(channel.funding_outpoint.clone())
    );
    // The pushed balance is the client's, less its channel reserve.
    assert!(details.outbound_capacity_msat <= 20_000_000);
    assert!(details.outbound_capacity_msat >= 18_000_000, "{details:?}");

    let seen = check_order_status(&client, &id).await;
    let seen_channel = seen.channel_state.expect("client sees the channel");
    assert_eq!(
        seen_channel.funding_outpoint.to_string(),
        channel.funding_outpoint
    );
    assert_eq!(
        seen.payment_options.onchain.unwrap().state,
        LSPS1PaymentState::Paid
    );
    let reservation = lsp
        .node
        .order_service()
        .unwrap()
        .order_book()
        .reservation(&completed.id)
        .unwrap()
        .expect("reservation recorded");
    assert!(
        reservation.released_at.is_some(),
        "reservation released on funding"
    );
    client.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_client_buys_inbound_over_lightning_with_a_hold_invoice() {
    let Scene {
        devchain,
        lsp,
        client,
        _client_dir,
    } = Scene::new(|_| {}, 2_000_000, 1_000_000, None).await;

    // The client first funds a channel to us, to have outbound liquidity to pay with.
    client_opens_channel(&devchain, &lsp, &client, 400_000).await;

    let status = request_channel(&client, 200_000, 0)
        .await
        .expect("order created");
    let id = status.order_id.0.clone();
    pay_bolt11(&client, &status).await;

    let completed = lsp
        .wait_order(&id, "the order to complete", |o| {
            o.state == OrderState::Completed
        })
        .await;
    assert_eq!(completed.bolt11.as_ref().unwrap().state, PaymentState::Paid);
    // The order's own transitions; the lease's rows follow (tests/leases.rs).
    let history: Vec<String> = lsp
        .history(&id)
        .into_iter()
        .filter(|row| !row.starts_with("lease_"))
        .collect();
    assert_eq!(
        history,
        vec![
            "created: CREATED bolt11=EXPECT_PAYMENT onchain=EXPECT_PAYMENT".to_string(),
            "bolt11_htlc_held: CREATED bolt11=HOLD onchain=EXPECT_PAYMENT".to_string(),
            "channel_funded: COMPLETED bolt11=PAID onchain=EXPECT_PAYMENT".to_string(),
        ],
        "HOLD before the channel, PAID only once it was funded"
    );
    wait_usable_channel(&devchain, &lsp, &client, 200_000).await;
    // The HTLC is claimed once the funding has confirmed.
    wait_for("the client's payment to be claimed", DEADLINE, || async {
        lsp.operator.sync().await;
        let claimed = client.list_payments().iter().any(|p| {
            matches!(p.kind, ldk_node::payment::PaymentKind::Bolt11 { .. })
                && p.status == ldk_node::payment::PaymentStatus::Succeeded
        });
        if !claimed {
            devchain.mine(1);
        }
        claimed.then_some(())
    })
    .await;
    client.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_refused_channel_fails_the_order_and_returns_the_htlc() {
    let Scene {
        devchain,
        lsp,
        client,
        _client_dir,
    } = Scene::new(|_| {}, 2_000_000, 500_000, None).await;
    client_opens_channel(&devchain, &lsp, &client, 300_000).await;
    // ldk-node refuses announced channels while it has no node alias: every open of this
    // order fails.
    let status = request_channel_announced(&client, 100_000, 0, true)
        .await
        .expect("order created");
    let id = status.order_id.0.clone();
    let lightning_before = client.list_balances().total_lightning_balance_sats;
    pay_bolt11(&client, &status).await;

    let failed = lsp
        .wait_order(&id, "the order to fail", |o| o.state == OrderState::Failed)
        .await;
    assert_eq!(
        failed.bolt11.as_ref().unwrap().state,
        PaymentState::Refunded
    );
    assert!(failed.channel.is_none());
    wait_client_event(&client, "PaymentFailed", |e| {
        matches!(e, Event::PaymentFailed { .. }).then_some(())
    })
    .await;
    let lightning_after = client.list_balances().total_lightning_balance_sats;
    assert_eq!(
        lightning_after, lightning_before,
        "the HTLC came back in full"
    );
    let history = lsp.history(&id);
    assert!(
        history.iter().any(|h| h.starts_with("bolt11_htlc_held")),
        "{history:?}"
    );
    client.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_unpaid_order_expires_and_underpayment_is_refunded() {
    let Scene {
        devchain,
        lsp,
        client,
        _client_dir,
    } = Scene::new(
        |c| {
            c.options.order_expiry_secs = 8;
            c.options.invoice_expiry_secs = 8;
            c.refund_bump_after_secs = 3;
        },
        2_000_000,
        500_000,
        None,
    )
    .await;

    // Two orders: one never paid, one paid too little on-chain.
    let unpaid = request_channel(&client, 50_000, 0)
        .await
        .expect("order created");
    let short = request_channel(&client, 60_000, 0)
        .await
        .expect("order created");
    let reserved = lsp
        .node
        .order_service()
        .unwrap()
        .order_book()
        .reserved_sat()
        .unwrap();
    assert!(
        reserved >= 110_000,
        "both orders hold liquidity: {reserved}"
    );
    let onchain = short.payment_options.onchain.clone().unwrap();
    let refund_address = onchain
        .refund_onchain_address
        .clone()
        .expect("refund address");
    let paid = onchain.order_total_sat / 2;
    let pay_to = onchain.address.clone();
    let payer = Arc::clone(&client);
    let txid = blocking(move || payer.onchain_payment().send_to_address(&pay_to, paid, None))
        .await
        .expect("client pays half");
    mine_once_broadcast(&devchain, txid).await;
    sync_client(&client).await;
    let after_paying = client.list_balances().spendable_onchain_balance_sats;

    let expired = lsp
        .wait_order(&unpaid.order_id.0, "the unpaid order to expire", |o| {
            o.state == OrderState::Failed
        })
        .await;
    assert_eq!(
        expired.bolt11.as_ref().unwrap().state,
        PaymentState::Refunded
    );
    assert_eq!(
        expired.onchain.as_ref().unwrap().state,
        PaymentState::Refunded
    );

    let refunded = lsp
        .wait_order(&short.order_id.0, "the underpaid order to fail", |o| {
            o.state == OrderState::Failed
        })
        .await;
    let service = lsp.node.order_service().unwrap();
    let refunds = wait_for("the underpaid order's refund", DEADLINE, || async {
        let refunds = service.order_book().refunds(&refunded.id).unwrap();
        (!refunds.is_empty()).then_some(refunds)
    })
    .await;
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_ne!(
        lsp.order(&short.order_id.0).onchain.unwrap().state,
        PaymentState::Refunded,
        "an unconfirmed refund is not yet a refund"
    );
    assert_eq!(refunds[0].amount_sat + refunds[0].fee_sat, paid);
    assert_eq!(refunds[0].address, refund_address.to_string());
    assert!(
        service.order_book().reserved_sat().unwrap() > 0,
        "the sats owed back stay reserved until the refund confirms"
    );

    // Left unconfirmed, the refund is replaced by one paying more, same amount to the client.
    let replacement = wait_for("the refund's fee bump", DEADLINE, || async {
        let refunds = service.order_book().refunds(&refunded.id).unwrap();
        let live: Vec<_> = refunds
            .iter()
            .filter(|r| r.replaced_by.is_none())
            .cloned()
            .collect();
        (refunds.len() >= 2 && live.len() == 1).then(|| live[0].clone())
    })
    .await;
    assert_eq!(replacement.amount_sat, refunds[0].amount_sat);
    wait_for_mempool_tx(&devchain, replacement.txid).await;
    assert!(
        !devchain.mempool_txids().contains(&refunds[0].txid),
        "the original refund left the mempool"
    );
    let refunds = [replacement];

    // The refund confirms and reaches the client's wallet; only then is the order REFUNDED.
    mine_once_broadcast(&devchain, refunds[0].txid).await;
    wait_for("the refund in the client's wallet", DEADLINE, || async {
        sync_client(&client).await;
        let now = client.list_balances().spendable_onchain_balance_sats;
        (now >= after_paying + refunds[0].amount_sat).then_some(())
    })
    .await;
    lsp.wait_order(
        &short.order_id.0,
        "the underpaid order to be REFUNDED",
        |o| o.onchain.as_ref().unwrap().state == PaymentState::Refunded,
    )
    .await;
    assert_eq!(
        service.order_book().reserved_sat().unwrap(),
        0,
        "reservations released"
    );
    client.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_bad_token_and_unfundable_orders_are_refused_without_side_effects() {
    let Scene {
        devchain: _devchain,
        lsp,
        client,
        _client_dir,
    } = Scene::new(
        |c| c.token_mode = lsp_node::config::lsps1::TokenMode::Required,
        300_000,
        100_000,
        Some("NOPE"),
    )
    .await;
    let service = lsp.node.order_service().unwrap();

    request_channel(&client, 100_000, 0)
        .await
        .expect_err("unknown token refused");
    let refused = service.create_order(lsp_node::lsps1::service::NewOrder {
        client_node_id: Some(client.node_id()),
        params: params(100_000, Some("NOPE")),
        refund_address: None,
        source: lsp_node::lsps1::order::Interface::P2p,
        email: None,
    });
    assert_eq!(refused.expect_err("bad token").code, 102);

    service
        .order_book()
        .create_coupon(&lsp_node::lsps1::coupons::NewCoupon {
            code: "FRIENDS".into(),
            discount: lsp_node::lsps1::coupons::Discount::Percent(100),
            max_uses: None,
            expires_at: None,
        })
        .unwrap();
    // More than the wallet can fund: error 1, nothing reserved.
    let unfundable = service
        .create_order(lsp_node::lsps1::service::NewOrder {
            client_node_id: Some(client.node_id()),
            params: params(1_000_000, Some("FRIENDS")),
            refund_address: None,
            source: lsp_node::lsps1::order::Interface::P2p,
            email: None,
        })
        .expect_err("cannot fund");
    assert_eq!(unfundable.code, 1);
    assert_eq!(service.order_book().reserved_sat().unwrap(), 0);
    let all = service
        .order_book()
        .orders(&lsp_node::lsps1::store::OrderFilter::default())
        .unwrap();
    assert!(all.is_empty(), "no order was stored: {all:?}");
    let coupon = service.order_book().coupon("FRIENDS").unwrap().unwrap();
    assert_eq!(coupon.uses, 0, "a refused order redeems nothing");
    client.stop().unwrap();
}

fn params(lsp_balance_sat: u64, token: Option<&str>) -> lsp_node::lsps1::order::OrderParams {
    lsp_node::lsps1::order::OrderParams {
        lsp_balance_sat,
        client_balance_sat: 0,
        required_channel_confirmations: 1,
        funding_confirms_within_blocks: 6,
        channel_expiry_blocks: 1_000,
        token: token.map(str::to_string),
        announce_channel: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_order_paid_while_lsp_crashes_completes_after_restart() {
    init_logging();
    let devchain = start_devchain().await;
    let dir = tempfile::tempdir().unwrap();
    let config = lsp_config(dir.path(), &devchain, |_| {});

    // Our node runs on a runtime of its own, so that it can be killed without its graceful
    // stop: dropping the runtime aborts every task mid-flight.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let node = runtime
        .spawn(Builder::new(config.clone()).start())
        .await
        .unwrap()
        .expect("LSP starts");
    let operator = Operator::for_node(&node);
    fund(&devchain, &operator, 2_000_000).await;

    let client_dir = tempfile::tempdir().unwrap();
    let client = start_client(&devchain, &node, None, client_dir.path());
    fund_client(&devchain, &client, 500_000).await;
    let status = request_channel(&client, 100_000, 0)
        .await
        .expect("order created");
    let id = OrderId::parse(&status.order_id.0).unwrap();
    let onchain = status.payment_options.onchain.clone().unwrap();
    let (pay_to, amount) = (onchain.address.clone(), onchain.order_total_sat);
    let payer = Arc::clone(&client);
    let txid = blocking(move || {
        payer
            .onchain_payment()
            .send_to_address(&pay_to, amount, None)
    })
    .await
    .expect("client pays on-chain");
    // The client goes away, so the open cannot start; the payment confirms.
    wait_for_mempool_tx(&devchain, txid).await;
    client.stop().unwrap();
    devchain.mine(1);
    let service = node.order_service().unwrap();
    wait_for("the payment to be detected", DEADLINE, || async {
        let order = service.order_book().order(&id).unwrap().unwrap();
        (order.onchain.unwrap().state == PaymentState::Paid).then_some(())
    })
    .await;
    assert!(service
        .order_book()
        .order(&id)
        .unwrap()
        .unwrap()
        .channel
        .is_none());
    drop(service);
    drop(node);
    runtime.shutdown_background();

    let restarted = Builder::new(config_with_fresh_ports(config))
        .start()
        .await
        .expect("LSP restarts on the same data directory");
    let lsp = Lsp {
        operator: Operator::for_node(&restarted),
        node: restarted,
        _dir: dir,
    };
    let client = start_client(&devchain, &lsp.node, None, client_dir.path());
    // The client only reconnects on its own when it has a channel with us; asking about its
    // order makes it connect.
    check_order_status(&client, id.as_str()).await;
    let completed = lsp
        .wait_order(
            id.as_str(),
            "the order to complete after the restart",
            |o| o.state == OrderState::Completed,
        )
        .await;
    assert!(completed.channel.is_some());
    wait_usable_channel(&devchain, &lsp, &client, 100_000).await;
    client.stop().unwrap();
}

/// The same configuration on new port-0 listeners (the old ones may linger for a moment).
fn config_with_fresh_ports(mut config: Config) -> Config {
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    config.node.p2p_listen = any;
    config.admin.listen = any;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_hold_is_spelled_paid_for_listed_clients() {
    // ldk-node 0.7.1's payment-state enum is EXPECT_PAYMENT | PAID | REFUNDED. This test shows
    // what its parser does with our rendering of an order whose HTLC is held, in both dialects.
    use ldk_node::lightning_liquidity::lsps1::msgs::LSPS1PaymentInfo;
    use lsp_node::lsps1::order::{render, PaymentStateDialect};

    let mut order = sample_held_order();
    order.bolt11.as_mut().unwrap().state = PaymentState::Hold;
    let blip51 = render(&order, PaymentStateDialect::Blip51);
    let parsed = serde_json::from_value::<LSPS1PaymentInfo>(blip51["payment"].clone());
    assert!(
        parsed.is_err(),
        "lightning-liquidity 0.2 cannot parse HOLD; such a client would ignore us until it reconnects"
    );
    let compat = render(&order, PaymentStateDialect::WithoutHold);
    let parsed = serde_json::from_value::<LSPS1PaymentInfo>(compat["payment"].clone())
        .expect("the compatible spelling parses");
    assert_eq!(parsed.bolt11.unwrap().state, LSPS1PaymentState::Paid);
    assert_eq!(blip51["payment"]["bolt11"]["state"], "HOLD");

    let config = Lsps1Config {
        hold_as_paid_peers: vec![order.client_node_id.unwrap().to_string()],
        ..Lsps1Config::default()
    };
    assert_eq!(
        PaymentStateDialect::for_peer(&config, &order.client_node_id.unwrap()),
        PaymentStateDialect::WithoutHold
    );
    let someone_else = bitcoin::secp256k1::PublicKey::from_secret_key(
        &bitcoin::secp256k1::Secp256k1::new(),
        &bitcoin::secp256k1::SecretKey::from_slice(&[44u8; 32]).unwrap(),
    );
    assert_eq!(
        PaymentStateDialect::for_peer(&config, &someone_else),
        PaymentStateDialect::Blip51
    );
}

fn devchain_address_key() -> bitcoin::secp256k1::PublicKey {
    bitcoin::secp256k1::PublicKey::from_secret_key(
        &bitcoin::secp256k1::Secp256k1::new(),
        &bitcoin::secp256k1::SecretKey::from_slice(&[43u8; 32]).unwrap(),
    )
}

fn sample_held_order() -> Order {
    use lsp_node::lsps1::order::{Bolt11Payment, Interface, OrderParams};
    use lsp_node::lsps1::pricing::PriceBreakdown;
    let invoice = {
        use ldk_node::bitcoin::hashes::{sha256, Hash};
        use ldk_node::bitcoin::secp256k1::{Secp256k1, SecretKey};
        use ldk_node::lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
        let secp = Secp256k1::new();
        let key = SecretKey::from_slice(&[9u8; 32]).unwrap();
        InvoiceBuilder::new(Currency::Regtest)
            .description("held".into())
            .payment_hash(sha256::Hash::hash(b"preimage"))
            .payment_secret(PaymentSecret([1u8; 32]))
            .duration_since_epoch(std::time::Duration::from_secs(1_700_000_000))
            .min_final_cltv_expiry_delta(144)
            .amount_milli_satoshis(21_000_000)
            .build_signed(|hash| secp.sign_ecdsa_recoverable(hash, &key))
            .unwrap()
            .to_string()
    };
    Order {
        id: OrderId::parse("held-order").unwrap(),
        client_node_id: Some(devchain_address_key()),
        params: OrderParams {
            lsp_balance_sat: 100_000,
            client_balance_sat: 20_000,
            required_channel_confirmations: 1,
            funding_confirms_within_blocks: 6,
            channel_expiry_blocks: 1_000,
            token: None,
            announce_channel: false,
        },
        refund_onchain_address: None,
        created_at: 1_700_000_000,
        expires_at: 1_700_003_600,
        state: OrderState::Created,
        bolt11: Some(Bolt11Payment {
            state: PaymentState::ExpectPayment,
            expires_at: 1_700_003_600,
            fee_total_sat: 1_000,
            order_total_sat: 21_000,
            invoice,
        }),
        onchain: None,
        channel: None,
        price: PriceBreakdown {
            base_fee_sat: 1_000,
            proportional_fee_sat: 0,
            lease_fee_sat: 0,
            onchain_fee_sat: 0,
            refund_reserve_sat: 0,
            discount_sat: 0,
            fee_total_sat: 1_000,
            order_total_sat: 21_000,
        },
        coupon_code: None,
        source: Interface::P2p,
        email: None,
        updated_at: 1_700_000_000,
        extension: None,
        customer: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_operator_cancels_orders_and_a_client_that_never_returns_is_refunded() {
    use lsp_node::api::{CancelOrder, CouponInfo, CreateCoupon, OrderDetail, OrderSummary};
    init_logging();
    let devchain = start_devchain().await;
    let lsp = Lsp::start(&devchain, |c| c.open_timeout_secs = 5).await;
    fund(&devchain, &lsp.operator, 2_000_000).await;
    let coupon: CouponInfo = lsp
        .operator
        .post(
            "/v1/coupons",
            &CreateCoupon {
                code: "FRIENDS".into(),
                percent: Some(50),
                fixed_sat: None,
                max_uses: Some(5),
                expires_at: None,
            },
        )
        .await
        .expect("coupon created");
    assert_eq!((coupon.kind.as_str(), coupon.value), ("percent", 50));
    let client_dir = tempfile::tempdir().unwrap();
    let client = start_client(
        &devchain,
        &lsp.node,
        Some("FRIENDS".into()),
        client_dir.path(),
    );
    fund_client(&devchain, &client, 500_000).await;

    // An unpaid order, cancelled by the operator.
    let unpaid = request_channel(&client, 50_000, 0)
        .await
        .expect("order created");
    let cancel = CancelOrder {
        order_id: unpaid.order_id.0.clone(),
        reason: Some("client asked".into()),
    };
    let cancelled: OrderDetail = lsp
        .operator
        .post("/v1/orders/cancel", &cancel)
        .await
        .expect("cancelled");
    assert_eq!(cancelled.summary.state, "FAILED");
    assert_eq!(cancelled.order["order_state"], "FAILED");
    assert!(
        cancelled
            .events
            .iter()
            .any(|e| e.reason == "cancelled by the operator: client asked"),
        "{:?}",
        cancelled.events
    );
    let again = lsp
        .operator
        .post::<_, OrderDetail>("/v1/orders/cancel", &cancel)
        .await
        .expect_err("a failed order cannot be cancelled");
    assert_eq!(again.status, 409, "{}", again.message);

    // A paid order whose client goes away for good: the open times out, the payment is
    // refunded on-chain.
    let paid = request_channel(&client, 80_000, 0)
        .await
        .expect("order created");
    let id = paid.order_id.0.clone();
    let detail: OrderDetail = lsp
        .operator
        .get(&format!("/v1/orders/{id}"))
        .await
        .expect("order shown");
    assert_eq!(detail.coupon_code.as_deref(), Some("FRIENDS"));
    assert!(
        detail.price["discount_sat"].as_u64().unwrap() > 0,
        "{}",
        detail.price
    );
    let onchain = paid.payment_options.onchain.clone().unwrap();
    let refund_address = onchain.refund_onchain_address.clone().unwrap();
    let (pay_to, amount) = (onchain.address.clone(), onchain.order_total_sat);
    let payer = Arc::clone(&client);
    let txid = blocking(move || {
        payer
            .onchain_payment()
            .send_to_address(&pay_to, amount, None)
    })
    .await
    .expect("client pays on-chain");
    wait_for_mempool_tx(&devchain, txid).await;
    client.stop().unwrap();
    devchain.mine(1);

    lsp.wait_order(&id, "the order to fail after the open timed out", |o| {
        o.state == OrderState::Failed
    })
    .await;
    let detail = wait_for("the refund", DEADLINE, || async {
        let detail: OrderDetail = lsp
            .operator
            .get(&format!("/v1/orders/{id}"))
            .await
            .expect("order shown");
        (!detail.refunds.is_empty()).then_some(detail)
    })
    .await;
    assert_eq!(detail.refunds.len(), 1, "{:?}", detail.refunds);
    let refund = &detail.refunds[0];
    assert_eq!(refund.address, refund_address.to_string());
    assert_eq!(refund.amount_sat + refund.fee_sat, amount);
    let refund_txid: bitcoin::Txid = refund.txid.parse().unwrap();
    mine_once_broadcast(&devchain, refund_txid).await;
    assert_eq!(devchain.confirmations(&refund_txid), Some(1));
    lsp.wait_order(
        &id,
        "the order to be REFUNDED once its refund confirmed",
        |o| o.onchain.as_ref().unwrap().state == PaymentState::Refunded,
    )
    .await;

    let failed: Vec<OrderSummary> = lsp
        .operator
        .get(&format!(
            "/v1/orders?state=FAILED&client_node_id={}",
            client.node_id()
        ))
        .await
        .expect("orders listed");
    assert_eq!(failed.len(), 2, "{failed:?}");
    let missing = lsp
        .operator
        .get::<OrderDetail>("/v1/orders/no-such-order")
        .await
        .expect_err("unknown order");
    assert_eq!(missing.status, 404);
}

/// One call to the LSP's public HTTP API: the status and the JSON body, which must be what
/// the OpenAPI document promises for that call.
async fn http_call(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let (client, request) = request.build_split();
    let request = request.expect("a well-formed request");
    let (method, path) = (
        request.method().to_string(),
        request.url().path().to_string(),
    );
    let response = client.execute(request).await.expect("HTTP answered");
    let status = response.status().as_u16();
    let body = response.json().await.expect("JSON body");
    let document = lsp_node::http::public::openapi::document();
    if let Err(drift) = common::openapi_conformance::check_answer(
        &document,
        &method.to_ascii_lowercase(),
        &path,
        status,
        &body,
    ) {
        panic!("the answer is not what docs/openapi.json promises: {drift}\n{body}");
    }
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_http_order_for_an_ldk_node_client_opens_its_channel_and_agrees_with_p2p() {
    use ldk_node::lightning_liquidity::lsps0::ser::LSPSDateTime;
    use serde_json::json;

    let Scene {
        devchain,
        lsp,
        client,
        _client_dir,
    } = Scene::new(|_| {}, 2_000_000, 500_000, None).await;
    let base = format!(
        "http://{}",
        lsp.node.http_listen_addr().expect("public API")
    );
    let http = reqwest::Client::new();
    let refund = client.onchain_payment().new_address().unwrap();
    let order_body = json!({
        "lsp_balance_sat": "100000", "client_balance_sat": "0",
        "required_channel_confirmations": 1, "funding_confirms_within_blocks": 6,
        "channel_expiry_blocks": 1000, "announce_channel": false,
        "refund_onchain_address": refund.to_string(),
        "public_key": client.node_id().to_string(),
    });

    // An order the client cancels with its own node's signmessage signature.
    let (status, cancelled) = http_call(
        http.post(format!("{base}/api/v1/create_order"))
            .json(&order_body),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    let cancelled_id = cancelled["order_id"].as_str().unwrap().to_string();
    let message = lsp_node::http::public::orders::cancel_message(&cancelled_id);
    let signature = client.sign_message(message.as_bytes());
    let (status, body) = http_call(
        http.post(format!("{base}/api/v1/cancel_order"))
            .json(&json!({ "order_id": cancelled_id, "signature": signature })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["order_state"], "FAILED");
    let seen = check_order_status(&client, &cancelled_id).await;
    assert_eq!(
        seen.payment_options.bolt11.unwrap().state,
        LSPS1PaymentState::Refunded,
        "the client sees the cancel over p2p"
    );

    // An order made over HTTP, paid from the client's wallet.
    let (status, order) = http_call(
        http.post(format!("{base}/api/v1/create_order"))
            .json(&order_body),
    )
    .await;
    assert_eq!(status, 200, "{order}");
    let id = order["order_id"].as_str().unwrap().to_string();
    let pay_to = order["payment"]["onchain"]["address"]
        .as_str()
        .unwrap()
        .to_string();
    let pay_to: bitcoin::Address = pay_to
        .parse::<bitcoin::Address<bitcoin::address::NetworkUnchecked>>()
        .unwrap()
        .assume_checked();
    let amount: u64 = order["payment"]["onchain"]["order_total_sat"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let payer = Arc::clone(&client);
    let txid = blocking(move || {
        payer
            .onchain_payment()
            .send_to_address(&pay_to, amount, None)
    })
    .await
    .expect("client pays on-chain");
    mine_once_broadcast(&devchain, txid).await;
    lsp.wait_order(&id, "the HTTP order to complete", |o| {
        o.state == OrderState::Completed
    })
    .await;
    let details = wait_usable_channel(&devchain, &lsp, &client, 100_000).await;

    let (status, over_http) =
        http_call(http.get(format!("{base}/api/v1/get_order?order_id={id}"))).await;
    assert_eq!(status, 200);
    let over_p2p = check_order_status(&client, &id).await;
    assert_eq!(over_http["order_state"], "COMPLETED");
    assert_eq!(over_p2p.order_id.0, id);
    let params = &over_p2p.order_params;
    assert_eq!(
        over_http["lsp_balance_sat"],
        params.lsp_balance_sat.to_string()
    );
    assert_eq!(
        over_http["client_balance_sat"],
        params.client_balance_sat.to_string()
    );
    assert_eq!(
        over_http["channel_expiry_blocks"],
        params.channel_expiry_blocks
    );
    assert_eq!(over_http["announce_channel"], params.announce_channel);
    let http_onchain = &over_http["payment"]["onchain"];
    let p2p_onchain = over_p2p.payment_options.onchain.clone().unwrap();
    assert_eq!(http_onchain["state"], "PAID");
    assert_eq!(p2p_onchain.state, LSPS1PaymentState::Paid);
    assert_eq!(
        http_onchain["order_total_sat"],
        p2p_onchain.order_total_sat.to_string()
    );
    assert_eq!(http_onchain["address"], p2p_onchain.address.to_string());
    let p2p_bolt11 = over_p2p.payment_options.bolt11.clone().unwrap();
    assert_eq!(
        over_http["payment"]["bolt11"]["invoice"],
        p2p_bolt11.invoice.to_string()
    );
    // The unused option is left as it was; an HTLC paying it now would be failed back.
    assert_eq!(over_http["payment"]["bolt11"]["state"], "EXPECT_PAYMENT");
    assert_eq!(p2p_bolt11.state, LSPS1PaymentState::ExpectPayment);
    let p2p_channel = over_p2p.channel_state.expect("the client sees the channel");
    let http_channel = &over_http["channel"];
    assert_eq!(
        http_channel["funding_outpoint"],
        p2p_channel.funding_outpoint.to_string()
    );
    assert_eq!(
        details.funding_txo.map(|o| o.to_string()),
        Some(p2p_channel.funding_outpoint.to_string())
    );
    for (field, p2p_time) in [
        ("funded_at", &p2p_channel.funded_at),
        ("expires_at", &p2p_channel.expires_at),
    ] {
        let http_time: LSPSDateTime = http_channel[field].as_str().unwrap().parse().unwrap();
        assert_eq!(&http_time, p2p_time, "{field}");
    }
    client.stop().unwrap();
}

/// The client pays `amount` to `address` from its on-chain wallet and the payment is mined.
async fn pay_on_chain(
    devchain: &Devchain,
    client: &Arc<ldk_node::Node>,
    address: &str,
    amount: u64,
) {
    let address = address
        .parse::<bitcoin::Address<bitcoin::address::NetworkUnchecked>>()
        .unwrap()
        .assume_checked();
    let payer = Arc::clone(client);
    let txid = blocking(move || {
        payer
            .onchain_payment()
            .send_to_address(&address, amount, None)
    })
    .await
    .expect("client pays on-chain");
    mine_once_broadcast(devchain, txid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_kaleidoswap_order_completes_for_an_ldk_node_client() {
    use serde_json::json;

    let Scene {
        devchain,
        lsp,
        client,
        _client_dir,
    } = Scene::new(|_| {}, 2_000_000, 500_000, None).await;
    let base = format!(
        "http://{}/api/v1/lsps1",
        lsp.node.http_listen_addr().unwrap()
    );
    let http = reqwest::Client::new();
    let (status, info) = http_call(http.get(format!("{base}/get_info"))).await;
    assert_eq!(status, 200);
    // A Kaleidoswap client connects to `lsp_connection_url`: the LSP can only open a
    // channel to a connected peer.
    let url = info["lsp_connection_url"].as_str().unwrap().to_string();
    assert_eq!(
        url,
        format!("{}@{}", lsp.node.node_id(), lsp.node.p2p_listen_addr())
    );
    let (node_id, address) = url.split_once('@').unwrap();
    let (node_id, address) = (node_id.parse().unwrap(), address.parse().unwrap());
    let connector = Arc::clone(&client);
    blocking(move || connector.connect(node_id, address, true))
        .await
        .expect("client connects to the LSP");
    let refund = client.onchain_payment().new_address().unwrap();
    let (status, order) = http_call(http.post(format!("{base}/create_order")).json(&json!({
        "client_pubkey": client.node_id().to_string(),
        "lsp_balance_sat": 150000, "client_balance_sat": 0,
        "required_channel_confirmations": 1, "funding_confirms_within_blocks": 6,
        "channel_expiry_blocks": 1000, "token": null,
        "refund_onchain_address": refund.to_string(), "announce_channel": false,
        "asset_id": null, "lsp_asset_amount": null, "client_asset_amount": null, "rfq_id": null,
    })))
    .await;
    assert_eq!(status, 200, "{order}");
    let id = order["order_id"].as_str().unwrap().to_string();
    let onchain = &order["payment"]["onchain"];
    pay_on_chain(
        &devchain,
        &client,
        onchain["address"].as_str().unwrap(),
        onchain["order_total_sat"].as_u64().unwrap(),
    )
    .await;
    let details = wait_usable_channel(&devchain, &lsp, &client, 150_000).await;
    let (status, done) = http_call(
        http.post(format!("{base}/get_order"))
            .json(&json!({ "order_id": id })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(done["order_state"], "COMPLETED");
    assert_eq!(done["payment"]["onchain"]["state"], "PAID");
    assert_eq!(
        done["channel"]["funding_outpoint"],
        details.funding_txo.unwrap().to_string()
    );
    client.stop().unwrap();
}

/// An order made over HTTP for a node that is never online (only its key exists), paid by the
/// client over Lightning: the HTLC is held and no channel can open. Returns the order id and
/// the owner's key.
async fn order_held_for_an_offline_node(
    lsp: &Lsp,
    client: &Arc<ldk_node::Node>,
    owner_byte: u8,
) -> (String, bitcoin::secp256k1::SecretKey) {
    let owner_key = bitcoin::secp256k1::SecretKey::from_slice(&[owner_byte; 32]).unwrap();
    let owner = owner_key.public_key(&bitcoin::secp256k1::Secp256k1::new());
    (order_held_for(lsp, client, owner).await, owner_key)
}

/// An HTTP order for `owner`'s channel, paid over Lightning by `client`, its HTLC held.
async fn order_held_for(
    lsp: &Lsp,
    client: &Arc<ldk_node::Node>,
    owner: bitcoin::secp256k1::PublicKey,
) -> String {
    let url = format!(
        "http://{}/api/v1/create_order",
        lsp.node.http_listen_addr().unwrap()
    );
    let (status, order) = http_call(reqwest::Client::new().post(url).json(&serde_json::json!({
        "lsp_balance_sat": "200000", "client_balance_sat": "0",
        "required_channel_confirmations": 1, "funding_confirms_within_blocks": 6,
        "channel_expiry_blocks": 1000, "announce_channel": false,
        "public_key": owner.to_string(),
    })))
    .await;
    assert_eq!(status, 200, "{order}");
    let id = order["order_id"].as_str().unwrap().to_string();
    let invoice: ldk_node::lightning_invoice::Bolt11Invoice = order["payment"]["bolt11"]["invoice"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let payer = Arc::clone(client);
    blocking(move || payer.bolt11_payment().send(&invoice, None))
        .await
        .expect("payment sent");
    lsp.wait_order(&id, "the HTLC to be held", |o| {
        o.bolt11.as_ref().unwrap().state == PaymentState::Hold
    })
    .await;
    id
}

/// Length of the BOLT8 handshake's act two, the responder's only handshake message.
const BOLT8_ACT_TWO_LEN: usize = 50;

/// A TCP relay to `target` on 127.0.0.1 that passes everything the connecting side sends, but
/// of what `target` sends only the first `pass_bytes`. With [`BOLT8_ACT_TWO_LEN`], a node
/// connecting through it completes its handshake and sends its `init`, so `target` counts it
/// connected, and then hears nothing more from `target`: an open `target` starts towards it
/// stays under way. The relay lives until the test's runtime ends.
async fn relay_muting_replies_after(
    target: std::net::SocketAddr,
    pass_bytes: usize,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (mut from_node, mut to_node) = inbound.into_split();
            let (mut from_target, mut to_target) = outbound.into_split();
            tokio::spawn(async move { tokio::io::copy(&mut from_node, &mut to_target).await });
            tokio::spawn(async move {
                let (mut passed, mut buffer) = (0, [0u8; 4096]);
                while let Ok(read @ 1..) = from_target.read(&mut buffer).await {
                    let pass = read.min(pass_bytes - passed);
                    if pass > 0 && to_node.write_all(&buffer[..pass]).await.is_err() {
                        return;
                    }
                    passed += pass; // The rest is read and dropped, so `target` never blocks.
                }
                drop(to_node);
            });
        }
    });
    address
}

/// The client's failed payment came back whole: `PaymentFailed`, and its lightning balance is
/// `before` again.
async fn wait_payment_returned(client: &Arc<ldk_node::Node>, before: u64) {
    wait_client_event(client, "PaymentFailed", |e| {
        matches!(e, Event::PaymentFailed { .. }).then_some(())
    })
    .await;
    wait_for(
        "the client's balance to be whole again",
        DEADLINE,
        || async { (client.list_balances().total_lightning_balance_sats == before).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_http_order_held_over_lightning_is_cancelled_by_its_node_and_the_htlc_returned() {
    use serde_json::json;

    let (
        Scene {
            devchain: _devchain,
            lsp,
            client,
            _client_dir,
        },
        balance_before,
    ) = Scene::paying_over_lightning(|_| {}).await;

    let (id, owner_key) = order_held_for_an_offline_node(&lsp, &client, 42).await;
    let base = format!("http://{}/api/v1", lsp.node.http_listen_addr().unwrap());
    let http = reqwest::Client::new();

    let message = lsp_node::http::public::orders::cancel_message(&id);
    let signature = lightning::util::message_signing::sign(message.as_bytes(), &owner_key);
    let (status, cancelled) = http_call(
        http.post(format!("{base}/cancel_order"))
            .json(&json!({ "order_id": id, "signature": signature })),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["order_state"], "FAILED");
    assert_eq!(cancelled["payment"]["bolt11"]["state"], "REFUNDED");
    lsp.history_after_fail_back(&id).await;
    wait_payment_returned(&client, balance_before).await;
    client.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_held_htlc_is_failed_back_before_its_deadline_when_no_channel_opens() {
    // Only the HTLC deadline can end this order.
    let (
        Scene {
            devchain,
            lsp,
            client,
            _client_dir,
        },
        balance_before,
    ) = Scene::paying_over_lightning(|lsps1| lsps1.open_timeout_secs = 3_600).await;

    let (id, _) = order_held_for_an_offline_node(&lsp, &client, 43).await;
    let service = lsp.node.order_service().unwrap();
    let order_id = OrderId::parse(&id).unwrap();
    let deadline = service
        .order_book()
        .held_htlc(&order_id)
        .unwrap()
        .and_then(|htlc| htlc.claim_deadline)
        .expect("the claim deadline is recorded");

    // The chain reaches the safety margin before the deadline (LDK itself would fail the HTLC
    // back at the deadline): the order fails there, with no further block.
    let margin = service.config().htlc_safety_margin_blocks;
    let (height, _) = devchain.tip();
    devchain.mine(deadline - margin - height);
    lsp.operator.sync().await;
    let failed = lsp
        .wait_order(&id, "the order to fail at the margin", |o| {
            o.state == OrderState::Failed
        })
        .await;
    assert_eq!(devchain.tip().0, deadline - margin);
    assert_eq!(
        failed.bolt11.as_ref().unwrap().state,
        PaymentState::Refunded
    );
    lsp.history_after_fail_back(&id).await;
    let events = service.order_book().events(&order_id).unwrap();
    let failure = events.iter().rev().find(|e| e.event == "failed").unwrap();
    assert!(failure.reason.contains("deadline"), "{failure:?}");
    wait_payment_returned(&client, balance_before).await;
    let still_open = client
        .list_channels()
        .into_iter()
        .any(|c| c.counterparty_node_id == lsp.node.node_id() && c.is_usable);
    assert!(still_open, "the HTLC went back off-chain, no force close");
    client.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_client_cannot_cancel_an_open_under_way_and_the_operator_cancel_aborts_it() {
    use lsp_node::api::{CancelOrder, OrderDetail};
    use serde_json::json;

    let (
        Scene {
            devchain,
            lsp,
            client,
            _client_dir,
        },
        balance_before,
    ) = Scene::paying_over_lightning(|_| {}).await;
    let owner_dir = tempfile::tempdir().unwrap();
    let owner = Arc::new(start_ldk_node(&devchain, owner_dir.path(), |_| {}));
    let id = order_held_for(&lsp, &client, owner.node_id()).await;

    // The owner connects through a relay that lets no message of the LSP reach it: the LSP
    // starts the order's channel, and the open can get no further (as when a client holds
    // back `funding_signed`).
    let relay = relay_muting_replies_after(lsp.node.p2p_listen_addr(), BOLT8_ACT_TWO_LEN).await;
    let (connecting, lsp_id) = (Arc::clone(&owner), lsp.node.node_id());
    // Returns only when ldk-node gives up waiting for the LSP's `init`.
    let _connect = tokio::task::spawn_blocking(move || {
        connecting.connect(lsp_id, relay.to_string().parse().unwrap(), false)
    });
    let owner_id = owner.node_id().to_string();
    let underway = wait_for("the LSP to start the order's channel", DEADLINE, || async {
        let channels = lsp.operator.channels().await;
        channels
            .into_iter()
            .find(|c| c.counterparty_node_id == owner_id)
    })
    .await;
    assert!(!underway.is_channel_ready);

    let message = lsp_node::http::public::orders::cancel_message(&id);
    let cancel = json!({ "order_id": id, "signature": owner.sign_message(message.as_bytes()) });
    let base = format!("http://{}/api/v1", lsp.node.http_listen_addr().unwrap());
    let (status, refused) = http_call(
        reqwest::Client::new()
            .post(format!("{base}/cancel_order"))
            .json(&cancel),
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["code"], -32001);
    assert_eq!(refused["data"]["order_state"], "CREATED");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("being opened"),
        "{refused}"
    );
    let order = lsp.order(&id);
    assert_eq!(
        order.state,
        OrderState::Created,
        "the refusal changed nothing"
    );
    assert_eq!(order.bolt11.unwrap().state, PaymentState::Hold);

    // The operator may cancel: the open is aborted before any funding is broadcast.
    let cancelled: OrderDetail = lsp
        .operator
        .post(
            "/v1/orders/cancel",
            &CancelOrder {
                order_id: id.clone(),
                reason: Some("stuck open".into()),
            },
        )
        .await
        .expect("the operator cancels");
    assert_eq!(cancelled.order["order_state"], "FAILED");
    wait_for("the aborted channel to be gone", DEADLINE, || async {
        let channels = lsp.operator.channels().await;
        (!channels.iter().any(|c| c.counterparty_node_id == owner_id)).then_some(())
    })
    .await;
    let order = lsp.order(&id);
    assert_eq!(order.bolt11.unwrap().state, PaymentState::Refunded);
    wait_payment_returned(&client, balance_before).await;
    assert_eq!(
        devchain.mempool_txids(),
        vec![],
        "no funding transaction went out"
    );
    owner.stop().unwrap();
    client.stop().unwrap();
}
