//! Batched funding end to end: an LSP with `node.funding_batch_window_ms` set and ldk-node
//! clients whose on-chain orders are paid in one block. Their channels are funded by one
//! transaction; a client that never signs its part is dropped from the batch, the others are
//! funded without it, and its own channel follows by a transaction of its own.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::process::{regtest_config, NodeProcess};
use common::*;
use lsp_node::config::FundingBatchConfig;
use lsp_node::devchain::Devchain;
use lsp_node::fault_points::CRASH_AT_VAR;
use lsp_node::Builder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const CHANNEL_SAT: u64 = 100_000;

/// The LSP as the tests reach it: in this process or a real `lsp-node` process.
struct Lsp {
    node_id: bitcoin::secp256k1::PublicKey,
    p2p: SocketAddr,
    operator: Operator,
    public_api: String,
}

struct Scene {
    dirs: Vec<tempfile::TempDir>,
    devchain: Devchain,
    lsp: Lsp,
}

impl Scene {
    /// A devchain and an in-process LSP batching fundings (3 s window) with `signing_timeout`.
    async fn in_process(signing_timeout: Duration) -> (Scene, lsp_node::App) {
        init_logging();
        let dir = tempfile::tempdir().unwrap();
        let devchain = start_devchain().await;
        let mut config = config_for(dir.path(), &devchain.base_url());
        config.node.funding_batch = Some(FundingBatchConfig {
            window: Duration::from_secs(3),
            signing_timeout,
        });
        let app = Builder::new(config).start().await.expect("LSP starts");
        let lsp = Lsp {
            node_id: app.node_id(),
            p2p: app.p2p_listen_addr(),
            operator: Operator::for_node(&app),
            public_api: format!("http://{}", app.http_listen_addr().unwrap()),
        };
        fund(&devchain, &lsp.operator, 3_000_000).await;
        let scene = Scene {
            dirs: vec![dir],
            devchain,
            lsp,
        };
        (scene, app)
    }

    /// An ldk-node client connected to the LSP at `via` (the LSP's own p2p address if `None`).
    async fn client(&mut self, via: Option<SocketAddr>) -> Arc<ldk_node::Node> {
        let dir = tempfile::tempdir().unwrap();
        let client = Arc::new(start_ldk_node(&self.devchain, dir.path(), |_| {}));
        self.dirs.push(dir);
        connect(&client, self.lsp.node_id, via.unwrap_or(self.lsp.p2p)).await;
        client
    }

    /// Orders a channel for each client, pays every order on chain and confirms the payments
    /// in one block; returns the order ids.
    async fn paid_orders(&self, clients: &[&Arc<ldk_node::Node>]) -> Vec<String> {
        let mut ids = Vec::new();
        for client in clients {
            let refund = client.onchain_payment().new_address().unwrap();
            let body = olympus_order(&client.node_id().to_string(), false, Some(&refund));
            let order = create_olympus_order(&self.lsp.public_api, &body).await;
            let (pay_to, total) = onchain_payment_of(&order);
            self.devchain
                .fund(&pay_to, total)
                .expect("faucet pays the order");
            ids.push(order["order_id"].as_str().unwrap().to_string());
        }
        self.devchain.mine(1);
        ids
    }

    /// The funding transaction (from the devchain) of completed order `id`.
    async fn funding_of(&self, id: &str) -> bitcoin::Transaction {
        let (_, txid) = wait_order_funded(&self.lsp.operator, id).await;
        wait_for_tx_in_mempool(&self.devchain, &txid, "the order's funding").await;
        self.devchain.get_transaction(&txid).unwrap()
    }

    /// Waits until the channels to `clients` share one funding transaction handed to LDK (the
    /// batch waits for signatures); returns its txid.
    async fn handed_batch(&self, clients: &[&Arc<ldk_node::Node>]) -> bitcoin::Txid {
        let members: HashSet<String> = clients.iter().map(|c| c.node_id().to_string()).collect();
        let txid = wait_for("the channels handed one funding", DEADLINE, || async {
            let fundings: Vec<String> = self
                .lsp
                .operator
                .channels()
                .await
                .into_iter()
                .filter(|c| members.contains(&c.counterparty_node_id))
                .filter_map(|c| c.funding_txo)
                .map(|outpoint| outpoint.split(':').next().unwrap().to_string())
                .collect();
            let txids: HashSet<&String> = fundings.iter().collect();
            (fundings.len() == members.len() && txids.len() == 1).then(|| fundings[0].clone())
        })
        .await;
        txid.parse().unwrap()
    }

    /// Three clients whose paid orders are batched, one of them silent: its messages from the
    /// LSP pass through a relay that holds them from the moment it has offered its channel, so
    /// it never sees the batch's `funding_created` and cannot sign, while staying connected.
    async fn batch_with_silent_member(&mut self) -> SilentBatch {
        let relay = HoldingRelay::start(self.lsp.p2p).await;
        let silent = self.client(Some(relay.addr)).await;
        let a = self.client(None).await;
        let b = self.client(None).await;
        let ids = self.paid_orders(&[&silent, &a, &b]).await;
        wait_channel_offer(&silent).await;
        relay.hold(true);
        let first_batch = self.handed_batch(&[&silent, &a, &b]).await;
        SilentBatch {
            relay,
            silent,
            a,
            b,
            ids,
            first_batch,
        }
    }
}

/// What [`Scene::batch_with_silent_member`] set up: the order ids are the silent client's, a's
/// and b's, in that order.
struct SilentBatch {
    relay: HoldingRelay,
    silent: Arc<ldk_node::Node>,
    a: Arc<ldk_node::Node>,
    b: Arc<ldk_node::Node>,
    ids: Vec<String>,
    first_batch: bitcoin::Txid,
}

impl SilentBatch {
    fn stop_clients(self) {
        for client in [self.silent, self.a, self.b] {
            client.stop().unwrap();
        }
    }
}

async fn connect(client: &Arc<ldk_node::Node>, lsp: bitcoin::secp256k1::PublicKey, at: SocketAddr) {
    let connecting = Arc::clone(client);
    blocking(move || connecting.connect(lsp, at.to_string().parse().unwrap(), true))
        .await
        .expect("the client connects to the LSP");
}

/// Waits until `client` lists the LSP's offer of a channel (it has answered `open_channel`).
async fn wait_channel_offer(client: &ldk_node::Node) {
    wait_for(
        "the client to have the LSP's channel offer",
        DEADLINE,
        || async { (!client.list_channels().is_empty()).then_some(()) },
    )
    .await;
}

/// The outputs of `tx` that fund a channel (the LSP's change is the other one).
fn channel_outputs(tx: &bitcoin::Transaction) -> usize {
    tx.output
        .iter()
        .filter(|o| o.value.to_sat() == CHANNEL_SAT && o.script_pubkey.is_p2wsh())
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_three_orders_paid_together_are_funded_by_one_transaction() {
    let (mut scene, app) = Scene::in_process(Duration::from_secs(30)).await;
    let clients = [
        scene.client(None).await,
        scene.client(None).await,
        scene.client(None).await,
    ];
    let ids = scene.paid_orders(&clients.iter().collect::<Vec<_>>()).await;

    let mut fundings = Vec::new();
    for id in &ids {
        fundings.push(scene.funding_of(id).await);
    }
    let txids: HashSet<_> = fundings.iter().map(|tx| tx.compute_txid()).collect();
    assert_eq!(
        txids.len(),
        1,
        "one funding transaction for all three: {txids:?}"
    );
    let batch = &fundings[0];
    assert_eq!(channel_outputs(batch), 3, "{batch:?}");
    assert_eq!(batch.output.len(), 4, "three channels and the LSP's change");

    let txid = batch.compute_txid();
    scene.devchain.mine(1);
    assert_eq!(scene.devchain.confirmations(&txid), Some(1));

    // One client force-closes its channel, then a reorg takes the shared funding away: it is
    // still the funding of the two other channels, so the LSP sends it again.
    let closing = &clients[0];
    let channel = closing.list_channels().remove(0);
    closing
        .force_close_channel(&channel.user_channel_id, scene.lsp.node_id, None)
        .unwrap();
    let closer = closing.node_id().to_string();
    wait_for("the LSP to see the channel closed", DEADLINE, || async {
        let channels = scene.lsp.operator.channels().await;
        (!channels.iter().any(|c| c.counterparty_node_id == closer)).then_some(())
    })
    .await;
    scene.devchain.reorg(1, &[txid]).unwrap();
    assert_eq!(scene.devchain.confirmations(&txid), None);
    wait_for_tx_in_mempool(&scene.devchain, &txid, "the shared funding sent again").await;
    scene.devchain.mine(6);
    for client in &clients[1..] {
        wait_sold_channel_usable(client, txid).await;
    }
    for id in &ids {
        assert_eq!(
            scene.lsp.operator.order(id).await.summary.state,
            "COMPLETED"
        );
    }
    app.stop().await.unwrap();
    for client in clients {
        client.stop().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_batch_member_that_never_signs_does_not_hold_the_others() {
    let (mut scene, app) = Scene::in_process(Duration::from_secs(4)).await;
    let batch = scene.batch_with_silent_member().await;

    // The two that signed are funded together again, without the silent one.
    let funded_a = scene.funding_of(&batch.ids[1]).await;
    let funded_b = scene.funding_of(&batch.ids[2]).await;
    assert_eq!(funded_a.compute_txid(), funded_b.compute_txid());
    assert_ne!(funded_a.compute_txid(), batch.first_batch);
    assert_eq!(channel_outputs(&funded_a), 2, "{funded_a:?}");
    let silent_order = scene.lsp.operator.order(&batch.ids[0]).await;
    assert_eq!(silent_order.summary.state, "CREATED");
    assert!(
        scene.devchain.get_transaction(&batch.first_batch).is_none(),
        "the batch the silent client held up never reached the chain"
    );

    // Let through what the silent client missed: its order is funded alone.
    batch.relay.hold(false);
    let alone = scene.funding_of(&batch.ids[0]).await;
    assert_eq!(channel_outputs(&alone), 1, "{alone:?}");
    assert_ne!(alone.compute_txid(), batch.first_batch);
    assert_ne!(alone.compute_txid(), funded_a.compute_txid());

    scene.devchain.mine(6);
    wait_sold_channel_usable(&batch.a, funded_a.compute_txid()).await;
    wait_sold_channel_usable(&batch.b, funded_a.compute_txid()).await;
    wait_sold_channel_usable(&batch.silent, alone.compute_txid()).await;
    assert!(scene.devchain.get_transaction(&batch.first_batch).is_none());
    app.stop().await.unwrap();
    batch.stop_clients();
}

/// The real binary killed right after it dropped a silent member from a batch (LDK has
/// closed the whole batch and updated the signed members' monitors; the ChannelManager is not
/// persisted yet): it starts again on the same data, and every order still ends funded, none by
/// the abandoned batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_kill_after_a_batch_is_dropped_leaves_every_order_funded_after_restart() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let p2p = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let config = regtest_config(&dir.path().join("data"), &devchain.base_url(), 1).replace(
        "p2p_listen = \"127.0.0.1:0\"",
        &format!(
            "p2p_listen = \"{p2p}\"\nfunding_batch_window_ms = 3000\nfunding_batch_signing_timeout_secs = 4"
        ),
    );
    let crash_at = [(CRASH_AT_VAR, "funding.batch_member_dropped")];
    let mut process = NodeProcess::spawn(dir.path(), &config, &crash_at);
    let operator = process.wait_running(DEADLINE).await;
    fund(&devchain, &operator, 3_000_000).await;
    let node_id = operator.info().await.node_id.parse().unwrap();
    let lsp = Lsp {
        node_id,
        p2p,
        operator,
        public_api: process.public_api_url(),
    };
    let mut scene = Scene {
        dirs: Vec::new(),
        devchain,
        lsp,
    };
    let batch = scene.batch_with_silent_member().await;
    let status = process.wait_exit(DEADLINE).await;
    assert!(!status.success(), "aborted at the crash point: {status:?}");

    let mut process = NodeProcess::spawn(dir.path(), &config, &[]);
    scene.lsp.operator = process.wait_running(DEADLINE).await;
    scene.lsp.public_api = process.public_api_url();
    batch.relay.hold(false);
    for (client, via) in [
        (&batch.silent, batch.relay.addr),
        (&batch.a, p2p),
        (&batch.b, p2p),
    ] {
        connect(client, node_id, via).await;
    }
    let mut fundings = Vec::new();
    for id in &batch.ids {
        let funding = scene.funding_of(id).await;
        assert_ne!(funding.compute_txid(), batch.first_batch);
        fundings.push(funding.compute_txid());
    }
    scene.devchain.mine(6);
    for (client, funding) in [&batch.silent, &batch.a, &batch.b]
        .into_iter()
        .zip(fundings)
    {
        wait_sold_channel_usable(client, funding).await;
    }
    assert!(scene.devchain.get_transaction(&batch.first_batch).is_none());
    process.terminate(DEADLINE).await;
    batch.stop_clients();
}

/// A TCP relay to `upstream` whose upstream-to-client bytes can be held back (kept in order,
/// delivered when let go), for every connection through it.
struct HoldingRelay {
    addr: SocketAddr,
    held: watch::Sender<bool>,
}

impl HoldingRelay {
    async fn start(upstream: SocketAddr) -> HoldingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (held, _) = watch::channel(false);
        let holding = held.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (mut client_read, client_write) = client.into_split();
                let (server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                tokio::spawn(pipe_holding(server_read, client_write, holding.subscribe()));
            }
        });
        HoldingRelay { addr, held }
    }

    fn hold(&self, hold: bool) {
        self.held.send_replace(hold);
    }
}

async fn pipe_holding(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut held: watch::Receiver<bool>,
) {
    let mut kept = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = from.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => kept.extend_from_slice(&chunk[..n]),
            },
            changed = held.changed() => if changed.is_err() { return },
        }
        if !*held.borrow() && !kept.is_empty() {
            if to.write_all(&kept).await.is_err() {
                return;
            }
            kept.clear();
        }
    }
}
