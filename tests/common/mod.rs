//! Shared helpers for node tests: a devchain, nodes on temp dirs, an operator API client over
//! real HTTP, and deadline-bounded polling of real conditions.
#![allow(dead_code)]

pub mod client_scene;
pub mod fault_proxy;
pub mod lsps0_peer;
pub mod openapi_conformance;
pub mod process;
pub mod python;
pub mod quiet_channels;
pub mod sandbox;
pub mod tcp_proxy;
pub mod tls_proxy;
pub mod txs;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use lsp_node::api::*;
use lsp_node::config::{ChainSource, Config};
use lsp_node::devchain::{Devchain, DevchainOptions};
use lsp_node::{App, Builder};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Generous bound for anything that needs a few sync rounds.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Logs to the test output when `RUST_LOG` is set; harmless when called repeatedly.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub async fn start_devchain() -> Devchain {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Devchain::start(DevchainOptions {
        listen,
        block_interval: None,
        data_dir: None,
    })
    .await
    .expect("devchain starts")
}

/// A regtest config on `dir` that syncs from an Esplora at `esplora_url`, every listener on
/// 127.0.0.1 port 0.
pub fn config_for(dir: &Path, esplora_url: &str) -> Config {
    let mut config = Config::regtest_ephemeral(dir.to_path_buf());
    config.chain.source = ChainSource::Esplora {
        url: esplora_url.to_string(),
    };
    config.chain.sync_interval_secs = 1;
    config
}

pub async fn start_node(dir: &Path, esplora_url: &str) -> App {
    Builder::new(config_for(dir, esplora_url))
        .start()
        .await
        .expect("node starts")
}

/// Polls `check` every 100 ms until it yields `Some`, failing the test after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= give_up {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An operator API client speaking real HTTP with the contract types.
#[derive(Clone)]
pub struct Operator {
    pub base: String,
    pub key: String,
    http: reqwest::Client,
}

/// A failed operator call: the HTTP status and the error body.
#[derive(Debug)]
pub struct CallError {
    pub status: u16,
    pub message: String,
}

impl Operator {
    /// A client for the operator API at `base` (`http://IP:PORT`) with `key`.
    pub fn new(base: String, key: String) -> Self {
        Operator {
            base,
            key,
            http: reqwest::Client::new(),
        }
    }

    pub fn for_node(node: &App) -> Self {
        Operator {
            base: format!("http://{}", node.admin_listen_addr()),
            key: node.admin_api_key(),
            http: reqwest::Client::new(),
        }
    }

    async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, CallError> {
        let status = response.status().as_u16();
        let body = response.text().await.expect("response body");
        if (200..300).contains(&status) {
            Ok(serde_json::from_str(&body).unwrap_or_else(|e| panic!("bad JSON {body}: {e}")))
        } else {
            let message = serde_json::from_str::<ErrorBody>(&body)
                .map(|b| b.error)
                .unwrap_or(body);
            Err(CallError { status, message })
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CallError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(API_KEY_HEADER, &self.key)
            .send()
            .await
            .expect("operator API reachable");
        Self::decode(response).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CallError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(API_KEY_HEADER, &self.key)
            .json(body)
            .send()
            .await
            .expect("operator API reachable");
        Self::decode(response).await
    }

    pub async fn info(&self) -> NodeInfo {
        self.get("/v1/info").await.expect("info")
    }

    pub async fn balance(&self) -> Balances {
        self.get("/v1/balance").await.expect("balance")
    }

    pub async fn sync(&self) -> SyncStatus {
        self.post("/v1/sync", &Empty {}).await.expect("sync")
    }

    pub async fn address(&self) -> String {
        let address: NewAddress = self.post("/v1/address", &Empty {}).await.expect("address");
        address.address
    }

    pub async fn channels(&self) -> Vec<ChannelInfo> {
        self.get("/v1/channels").await.expect("channels")
    }

    pub async fn payments(&self) -> Vec<PaymentInfo> {
        self.get("/v1/payments").await.expect("payments")
    }

    /// `GET /metrics`: the value of the metric line `name` (with its labels, as in
    /// `lsp_orders{state="FAILED"}`), if the node reports it.
    pub async fn metric(&self, name: &str) -> Option<u64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter_map(|line| line.rsplit_once(' '))
            .find(|(metric, _)| *metric == name)
            .map(|(_, value)| value.parse().expect("a whole number"))
    }

    /// Cancels order `id` as the operator, which must succeed.
    pub async fn cancel(&self, id: &str, reason: &str) -> OrderDetail {
        self.post(
            "/v1/orders/cancel",
            &CancelOrder {
                order_id: id.to_string(),
                reason: Some(reason.to_string()),
            },
        )
        .await
        .expect("the operator cancels the order")
    }

    /// The operator's view of order `id`, which must exist.
    pub async fn order(&self, id: &str) -> OrderDetail {
        self.get(&format!("/v1/orders/{id}"))
            .await
            .expect("the order is known")
    }

    pub async fn invoice(&self, amount_msat: u64) -> Invoice {
        let request = CreateInvoice {
            amount_msat: Some(amount_msat),
            description: "test".into(),
            expiry_secs: None,
        };
        self.post("/v1/invoices", &request).await.expect("invoice")
    }

    pub async fn pay(&self, invoice: &str) -> PaymentInfo {
        let request = PayInvoice {
            invoice: invoice.to_string(),
            amount_msat: None,
            wait_secs: Some(30),
        };
        self.post("/v1/pay", &request).await.expect("pay")
    }
}

/// Funds the node's wallet from the devchain faucet, mines it in and waits until the wallet
/// shows it confirmed.
pub async fn fund(devchain: &Devchain, operator: &Operator, sats: u64) {
    let before = operator.balance().await.onchain_confirmed_sat;
    let address: bitcoin::Address<bitcoin::address::NetworkUnchecked> =
        operator.address().await.parse().expect("address parses");
    devchain
        .fund(&address.assume_checked(), sats)
        .expect("faucet pays");
    devchain.mine(1);
    wait_for("funds to confirm in the wallet", DEADLINE, || async {
        operator.sync().await;
        (operator.balance().await.onchain_confirmed_sat >= before + sats).then_some(())
    })
    .await;
}

/// Waits until the node behind `operator` has synced to the devchain's tip, block hash and all.
pub async fn wait_synced_to_tip(operator: &Operator, devchain: &Devchain) -> NodeInfo {
    let (height, hash) = devchain.tip();
    wait_for("the node to sync to the devchain tip", DEADLINE, || async {
        let info = operator.info().await;
        (info.chain_source.synced
            && info.block_height == height
            && info.block_hash == hash.to_string())
        .then_some(info)
    })
    .await
}

/// Mines `blocks` and syncs every operator until each reports the new height.
pub async fn mine_and_sync(devchain: &Devchain, blocks: u32, operators: &[&Operator]) {
    devchain.mine(blocks);
    let (height, _) = devchain.tip();
    for operator in operators {
        wait_for("node to reach the devchain tip", DEADLINE, || async {
            (operator.sync().await.block_height >= height).then_some(())
        })
        .await;
    }
}

/// Waits until a transaction is in the devchain mempool and returns the mempool.
pub async fn wait_for_mempool(devchain: &Devchain, what: &str) -> Vec<bitcoin::Txid> {
    wait_for(what, DEADLINE, || async {
        let mempool = devchain.mempool_txids();
        (!mempool.is_empty()).then_some(mempool)
    })
    .await
}

/// Waits until `txid` is in the devchain's mempool.
pub async fn wait_for_tx_in_mempool(devchain: &Devchain, txid: &bitcoin::Txid, what: &str) {
    wait_for(what, DEADLINE, || async {
        devchain.mempool_txids().contains(txid).then_some(())
    })
    .await
}

/// Runs a blocking ldk-node call off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking call")
}

/// Syncs the node behind `operator` and `ldk` until both can use the channel `channel_id`.
pub async fn wait_channel_usable(
    operator: &Operator,
    ldk: &std::sync::Arc<ldk_node::Node>,
    channel_id: &str,
) {
    wait_for("the channel usable at both ends", DEADLINE, || async {
        operator.sync().await;
        let syncing = std::sync::Arc::clone(ldk);
        blocking(move || syncing.sync_wallets().expect("ldk-node syncs")).await;
        let ours = operator
            .channels()
            .await
            .into_iter()
            .any(|c| c.channel_id == channel_id && c.is_usable);
        let theirs = ldk
            .list_channels()
            .into_iter()
            .any(|c| c.channel_id.to_string() == channel_id && c.is_usable);
        (ours && theirs).then_some(())
    })
    .await;
}

/// The node behind `operator` opens a `capacity_sat` channel to `ldk`, pushing `push_msat` to
/// it (so it can pay the node over Lightning), and waits until both can use it.
pub async fn open_channel_to_ldk(
    devchain: &Devchain,
    operator: &Operator,
    ldk: &std::sync::Arc<ldk_node::Node>,
    capacity_sat: u64,
    push_msat: u64,
) {
    let opened: OpenedChannel = operator
        .post(
            "/v1/channels",
            &OpenChannel {
                node_id: ldk.node_id().to_string(),
                address: Some(ldk.listening_addresses().unwrap()[0].to_string()),
                capacity_sat,
                push_msat,
                announce: false,
            },
        )
        .await
        .expect("the node opens a channel to the ldk-node");
    wait_for_mempool(devchain, "the channel funding").await;
    devchain.mine(6);
    wait_channel_usable(operator, ldk, &opened.channel_id.unwrap()).await;
}

/// An order request in the Olympus dialect (`POST /api/v1/create_order`): a 100k-sat channel
/// for `public_key`, with a refund address when given.
pub fn olympus_order(
    public_key: &str,
    announce_channel: bool,
    refund_address: Option<&bitcoin::Address>,
) -> serde_json::Value {
    let mut body = serde_json::json!({
        "lsp_balance_sat": "100000",
        "client_balance_sat": "0",
        "required_channel_confirmations": 1,
        "funding_confirms_within_blocks": 6,
        "channel_expiry_blocks": 1000,
        "announce_channel": announce_channel,
        "public_key": public_key,
    });
    if let Some(address) = refund_address {
        body["refund_onchain_address"] = serde_json::json!(address.to_string());
    }
    body
}

/// The address to pay and the total of a bLIP-51 order's on-chain payment option.
pub fn onchain_payment_of(order: &serde_json::Value) -> (bitcoin::Address, u64) {
    let onchain = &order["payment"]["onchain"];
    let address = onchain["address"]
        .as_str()
        .expect("an on-chain payment option")
        .parse::<bitcoin::Address<bitcoin::address::NetworkUnchecked>>()
        .unwrap()
        .assume_checked();
    let total = onchain["order_total_sat"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (address, total)
}

/// Posts `body` to the public API at `public_api` (`http://host:port`) and returns the order.
pub async fn create_olympus_order(public_api: &str, body: &serde_json::Value) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(format!("{public_api}/api/v1/create_order"))
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    response.json().await.unwrap()
}

/// Buys a channel for `client` over Lightning: a bolt11 order in the Olympus dialect at
/// `public_api` (`http://host:port`), paid by `client`. Returns the order id and the client's
/// payment id; the payment stays pending while the LSP holds it.
pub async fn buy_over_lightning(
    public_api: &str,
    client: &std::sync::Arc<ldk_node::Node>,
    announce_channel: bool,
) -> (String, ldk_node::lightning::ln::channelmanager::PaymentId) {
    let body = olympus_order(&client.node_id().to_string(), announce_channel, None);
    let order = create_olympus_order(public_api, &body).await;
    let payment_id = pay_order_over_lightning(client, &order).await;
    (
        order["order_id"].as_str().expect("an order").to_string(),
        payment_id,
    )
}

/// `client` pays the bolt11 invoice of bLIP-51 `order`; returns its payment id.
pub async fn pay_order_over_lightning(
    client: &std::sync::Arc<ldk_node::Node>,
    order: &serde_json::Value,
) -> ldk_node::lightning::ln::channelmanager::PaymentId {
    let invoice: ldk_node::lightning_invoice::Bolt11Invoice = order["payment"]["bolt11"]["invoice"]
        .as_str()
        .expect("a bolt11 option")
        .parse()
        .unwrap();
    let payer = std::sync::Arc::clone(client);
    blocking(move || payer.bolt11_payment().send(&invoice, None))
        .await
        .expect("payment sent")
}

/// Waits until `client`'s payment `payment_id` has `status`.
pub async fn wait_payment_status(
    client: &ldk_node::Node,
    payment_id: &ldk_node::lightning::ln::channelmanager::PaymentId,
    status: ldk_node::payment::PaymentStatus,
    what: &str,
) {
    wait_for(what, DEADLINE, || async {
        (client.payment(payment_id).map(|p| p.status) == Some(status)).then_some(())
    })
    .await;
}

/// Waits until a devchain mempool transaction spends an output of `parent`; returns its txid.
pub async fn wait_mempool_spender(
    devchain: &Devchain,
    parent: &bitcoin::Txid,
    what: &str,
) -> bitcoin::Txid {
    wait_for(what, DEADLINE, || async {
        devchain.mempool_txids().into_iter().find(|txid| {
            devchain.get_transaction(txid).is_some_and(|tx| {
                tx.input
                    .iter()
                    .any(|input| input.previous_output.txid == *parent)
            })
        })
    })
    .await
}

/// Waits until order `id` is COMPLETED; returns it and its funding transaction's txid.
pub async fn wait_order_funded(operator: &Operator, id: &str) -> (OrderDetail, bitcoin::Txid) {
    let detail = wait_for("the order's channel to be funded", DEADLINE, || async {
        let detail = operator.order(id).await;
        (detail.summary.state == "COMPLETED").then_some(detail)
    })
    .await;
    let funding: bitcoin::OutPoint = detail.order["channel"]["funding_outpoint"]
        .as_str()
        .expect("a funded order names its funding outpoint")
        .parse()
        .unwrap();
    (detail, funding.txid)
}

/// Waits until `client` sees a usable channel funded by `funding` (syncing it meanwhile).
pub async fn wait_sold_channel_usable(
    client: &std::sync::Arc<ldk_node::Node>,
    funding: bitcoin::Txid,
) -> ldk_node::ChannelDetails {
    wait_for(
        "the sold channel to be usable at the client",
        DEADLINE,
        || async {
            let syncing = std::sync::Arc::clone(client);
            blocking(move || syncing.sync_wallets().expect("client syncs")).await;
            client
                .list_channels()
                .into_iter()
                .find(|c| c.funding_txo.map(|o| o.txid) == Some(funding) && c.is_usable)
        },
    )
    .await
}

/// The node behind `operator` pays an invoice of `ldk` and waits until the payment is settled
/// in its channels.
pub async fn pay_ldk(operator: &Operator, ldk: &ldk_node::Node, amount_msat: u64) {
    use ldk_node::lightning_invoice::{Bolt11InvoiceDescription, Description};
    let invoice = ldk
        .bolt11_payment()
        .receive(
            amount_msat,
            &Bolt11InvoiceDescription::Direct(Description::new("test".into()).unwrap()),
            3600,
        )
        .expect("ldk-node invoice");
    let paid = operator.pay(&invoice.to_string()).await;
    assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
    wait_for("the payment settled in the channels", DEADLINE, || async {
        let settled = operator
            .channels()
            .await
            .iter()
            .all(|c| c.pending_htlcs == 0);
        settled.then_some(())
    })
    .await;
}

/// A free 127.0.0.1 port: ldk-node needs an explicit one, so bind port 0, read it, release it.
pub fn free_local_address() -> ldk_node::lightning::ln::msgs::SocketAddress {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// An ldk-node node on regtest, listening on a free 127.0.0.1 port, whose only chain source is
/// the devchain, without background syncing (tests sync explicitly after mining).
/// `configure` adds to the builder, e.g. an LSPS1 liquidity source.
pub fn start_ldk_node(
    devchain: &Devchain,
    storage: &Path,
    configure: impl FnOnce(&mut ldk_node::Builder),
) -> ldk_node::Node {
    start_ldk_node_on(&devchain.base_url(), storage, configure)
}

/// [`start_ldk_node`] on the Esplora API at `esplora_url` (a devchain in another process).
pub fn start_ldk_node_on(
    esplora_url: &str,
    storage: &Path,
    configure: impl FnOnce(&mut ldk_node::Builder),
) -> ldk_node::Node {
    let mut builder = ldk_node::Builder::new();
    builder.set_network(bitcoin::Network::Regtest);
    builder.set_storage_dir_path(storage.to_str().unwrap().to_string());
    builder
        .set_listening_addresses(vec![free_local_address()])
        .unwrap();
    builder.set_chain_source_esplora(
        esplora_url.to_string(),
        Some(ldk_node::config::EsploraSyncConfig {
            background_sync_config: None,
        }),
    );
    configure(&mut builder);
    let node = builder.build().expect("ldk-node builds");
    node.start().expect("ldk-node starts against the devchain");
    node
}
