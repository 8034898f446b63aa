//! Kaleidoswap's own Python SDK (kaleidoswap-sdk 0.5.6, pinned, from PyPI, through
//! `scripts/kaleidoswap-sdk`; its pydantic models validate every answer) against a real node
//! on the devchain: every LSPS1 call the SDK has, and every state an order reaches, read by the
//! SDK: created, held, completed with a channel opened to an ldk-node client that paid over
//! Lightning, and failed with its HTLC returned; errors too. Without PyPI (and no environment
//! installed before) the test fails, saying so.
//!
//! An end-to-end scenario (`e2e_` prefix). ldk-node's API blocks on its own runtime, so its
//! calls go through `spawn_blocking`.

mod common;

use std::sync::Arc;

use bitcoin::secp256k1::{Secp256k1, SecretKey};
use common::openapi_conformance::check_answer;
use common::python::run_script;
use common::*;
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::lightning_invoice::Bolt11Invoice;
use lightning::util::message_signing;
use lsp_node::devchain::Devchain;
use lsp_node::http::public::openapi;
use lsp_node::http::public::orders::cancel_message;
use lsp_node::lsps1::order::{Order, OrderId, OrderState, PaymentState};
use lsp_node::{App, Builder};
use serde_json::{json, Value};

/// The SDK, pointed at one node's public listener.
struct Sdk {
    base: String,
}

impl Sdk {
    /// The SDK's answer to `call` with `body`: `{"ok": model}` or `{"error": {...}}`.
    async fn call(&self, call: &str, body: &Value) -> Value {
        let out = run_script("kaleidoswap-sdk", [&self.base, call, &body.to_string()]).await;
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("the SDK driver printed no JSON ({e}): {out}"))
    }

    /// What the SDK parsed; fails the test if it raised an error instead.
    async fn ok(&self, call: &str, body: &Value) -> Value {
        let mut answer = self.call(call, body).await;
        match answer.get_mut("ok") {
            Some(parsed) => parsed.take(),
            None => panic!("{call} raised in the SDK: {answer}"),
        }
    }

    /// The error the SDK raised; fails the test if the call succeeded.
    async fn error(&self, call: &str, body: &Value) -> Value {
        let mut answer = self.call(call, body).await;
        match answer.get_mut("error") {
            Some(error) => error.take(),
            None => panic!("{call} was expected to fail in the SDK: {answer}"),
        }
    }
}

/// The raw get_order answer, checked against the OpenAPI document, as the SDK read it.
async fn documented_order(base: &str, id: &str) -> Value {
    let path = "/api/v1/lsps1/get_order";
    let response = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&json!({ "order_id": id, "access_token": "" }))
        .send()
        .await
        .expect("get_order answered");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON body");
    if let Err(drift) = check_answer(&openapi::document(), "post", path, status, &body) {
        panic!("the answer is not what docs/openapi.json promises: {drift}\n{body}");
    }
    body
}

fn order_of(node: &App, id: &str) -> Order {
    let service = node.order_service().expect("order service runs");
    service
        .order_book()
        .order(&OrderId::parse(id).unwrap())
        .unwrap()
        .expect("order exists")
}

fn order_count(node: &App) -> usize {
    let service = node.order_service().unwrap();
    service
        .order_book()
        .orders(&Default::default())
        .unwrap()
        .len()
}

async fn wait_order(node: &App, id: &str, what: &str, done: impl Fn(&Order) -> bool) {
    wait_for(what, DEADLINE, || async {
        done(&order_of(node, id)).then_some(())
    })
    .await;
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking call")
}

async fn sync_client(client: &Arc<ldk_node::Node>) {
    let client = Arc::clone(client);
    blocking(move || client.sync_wallets().expect("client syncs")).await;
}

/// Mines a block per round until the client sees a usable channel from `lsp` of `capacity`.
async fn wait_usable_channel(
    devchain: &Devchain,
    lsp: &App,
    client: &Arc<ldk_node::Node>,
    capacity: u64,
) -> ldk_node::ChannelDetails {
    let operator = Operator::for_node(lsp);
    wait_for("a usable channel at the client", DEADLINE, || async {
        operator.sync().await;
        sync_client(client).await;
        let found = client.list_channels().into_iter().find(|c| {
            c.counterparty_node_id == lsp.node_id()
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

/// The client pays `invoice` over Lightning (the HTLC may then be held by the LSP).
async fn pay(client: &Arc<ldk_node::Node>, invoice: &Value) {
    let invoice: Bolt11Invoice = invoice.as_str().unwrap().parse().unwrap();
    let payer = Arc::clone(client);
    blocking(move || payer.bolt11_payment().send(&invoice, None))
        .await
        .expect("payment sent");
}

/// A create_order body for `owner`'s channel, refunds to `refund`.
fn order_body(owner: &str, lsp_balance_sat: u64, refund: Option<&str>) -> Value {
    let mut body = json!({
        "client_pubkey": owner,
        "lsp_balance_sat": lsp_balance_sat, "client_balance_sat": 0,
        "required_channel_confirmations": 1, "funding_confirms_within_blocks": 6,
        "channel_expiry_blocks": 1000, "announce_channel": false,
    });
    if let Some(refund) = refund {
        body["refund_onchain_address"] = json!(refund);
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_kaleidoswap_sdk_reads_every_state_of_an_order() {
    init_logging();
    let devchain = start_devchain().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_for(dir.path(), &devchain.base_url());
    config.http.listen = Some("127.0.0.1:0".parse().unwrap());
    config.lsps1.open_timeout_secs = 30;
    config.http.limits.rate_limit_burst = 1_000;
    let lsp = Builder::new(config).start().await.expect("LSP starts");
    let operator = Operator::for_node(&lsp);
    fund(&devchain, &operator, 2_000_000).await;
    let sdk = Sdk {
        base: format!("http://{}", lsp.http_listen_addr().unwrap()),
    };

    // The client funds its own channel to the LSP first, to have outbound liquidity to pay.
    let client_dir = tempfile::tempdir().unwrap();
    let client = Arc::new(start_ldk_node(&devchain, client_dir.path(), |_| {}));
    let address = client.onchain_payment().new_address().unwrap();
    devchain.fund(&address, 1_000_000).expect("faucet pays");
    devchain.mine(1);
    wait_for("the client's coins", DEADLINE, || async {
        sync_client(&client).await;
        (client.list_balances().spendable_onchain_balance_sats >= 1_000_000).then_some(())
    })
    .await;

    let info = sdk.ok("get_lsp_info", &json!({})).await;
    assert_eq!(info["assets"], json!([]), "{info}");
    let url = info["lsp_connection_url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("{}@{}", lsp.node_id(), lsp.p2p_listen_addr()));
    assert!(
        info["options"]["max_channel_balance_sat"].is_u64(),
        "{info}"
    );
    let lsp_address: SocketAddress = url.split_once('@').unwrap().1.parse().unwrap();
    let (opener, lsp_id) = (Arc::clone(&client), lsp.node_id());
    blocking(move || opener.open_channel(lsp_id, lsp_address, 400_000, None, None))
        .await
        .expect("client opens its own channel");
    wait_usable_channel(&devchain, &lsp, &client, 400_000).await;

    let network = sdk.ok("get_lsp_network_info", &json!({})).await;
    assert_eq!(network["network"], "Regtest");
    assert!(network["height"].as_u64().unwrap() >= 1, "{network}");

    let me = client.node_id().to_string();
    let refund = client.onchain_payment().new_address().unwrap().to_string();
    let fees = sdk
        .ok("estimate_lsp_fees", &order_body(&me, 150_000, None))
        .await;
    let total_fee = fees["total_fee"].as_u64().unwrap();
    assert!(total_fee > 0, "{fees}");

    // Without a refund address: refused, naming the field, and nothing is stored.
    let before = order_count(&lsp);
    let refused = sdk
        .error("create_lsp_order", &order_body(&me, 150_000, None))
        .await;
    assert_eq!(refused["class"], "ValidationError", "{refused}");
    assert_eq!(refused["status"], 400);
    assert_eq!(
        refused["body"]["data"]["property"], "refund_onchain_address",
        "{refused}"
    );
    let sentence = refused["message"].as_str().unwrap();
    assert!(
        sentence.contains("is required by this dialect"),
        "{sentence}"
    );
    assert_eq!(order_count(&lsp), before);

    // Created: both payment options, nothing paid.
    let created = sdk
        .ok("create_lsp_order", &order_body(&me, 150_000, Some(&refund)))
        .await;
    let id = created["order_id"].as_str().unwrap().to_string();
    assert_eq!(created["order_state"], "CREATED");
    assert_eq!(created["client_pubkey"], me);
    assert_eq!(created["channel"], Value::Null);
    let payment = &created["payment"];
    assert_eq!(payment["bolt11"]["state"], "EXPECT_PAYMENT");
    assert_eq!(payment["bolt11"]["fee_total_sat"], total_fee);
    assert_eq!(payment["onchain"]["state"], "EXPECT_PAYMENT");
    assert_eq!(payment["onchain"]["refund_onchain_address"], refund);
    assert_eq!(created["asset_delivery_status"], "NOT_REQUIRED");
    let read = sdk.ok("get_lsp_order", &json!({ "order_id": id })).await;
    assert_eq!(read, created);
    documented_order(&sdk.base, &id).await;

    // The asset calls: no order here awaits a rate decision or an asset delivery.
    let decision = sdk
        .error(
            "submit_lsp_rate_decision",
            &json!({ "order_id": id, "accept_new_rate": true }),
        )
        .await;
    assert_eq!(
        (decision["class"].as_str(), decision["status"].as_u64()),
        (Some("APIError"), Some(409)),
        "{decision}"
    );
    assert!(decision["message"]
        .as_str()
        .unwrap()
        .contains("no rate decision"));
    let delivery = sdk
        .ok("retry_asset_delivery", &json!({ "order_id": id }))
        .await;
    assert_eq!(delivery["status"], "no_pending_delivery");
    let unknown = sdk
        .error("get_lsp_order", &json!({ "order_id": "no-such-order" }))
        .await;
    assert_eq!(unknown["class"], "NotFoundError", "{unknown}");

    // Held, then failed: an order for a node that never comes online, paid by the client; the
    // HTLC is held (no channel can open), then the owner cancels and the HTLC goes back.
    let owner_key = SecretKey::from_slice(&[0x51; 32]).unwrap();
    let owner = owner_key.public_key(&Secp256k1::new()).to_string();
    let held = sdk
        .ok(
            "create_lsp_order",
            &order_body(&owner, 100_000, Some(&refund)),
        )
        .await;
    let held_id = held["order_id"].as_str().unwrap().to_string();
    let lightning_before = client.list_balances().total_lightning_balance_sats;
    pay(&client, &held["payment"]["bolt11"]["invoice"]).await;
    wait_order(&lsp, &held_id, "the HTLC to be held", |o| {
        o.bolt11.as_ref().unwrap().state == PaymentState::Hold
    })
    .await;
    let holding = sdk
        .ok("get_lsp_order", &json!({ "order_id": held_id }))
        .await;
    assert_eq!(holding["order_state"], "CREATED");
    assert_eq!(holding["payment"]["bolt11"]["state"], "HOLD");
    documented_order(&sdk.base, &held_id).await;
    let signature = message_signing::sign(cancel_message(&held_id).as_bytes(), &owner_key);
    let cancelled = reqwest::Client::new()
        .post(format!("{}/api/v1/cancel_order", sdk.base))
        .json(&json!({ "order_id": held_id, "signature": signature }))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let failed = sdk
        .ok("get_lsp_order", &json!({ "order_id": held_id }))
        .await;
    assert_eq!(failed["order_state"], "FAILED");
    assert_eq!(failed["payment"]["bolt11"]["state"], "REFUNDED");
    assert_eq!(failed["channel"], Value::Null);
    documented_order(&sdk.base, &held_id).await;
    wait_for("the held HTLC back at the client", DEADLINE, || async {
        (client.list_balances().total_lightning_balance_sats == lightning_before).then_some(())
    })
    .await;

    // Completed: the client pays its own order; the LSP opens the channel, then claims.
    pay(&client, &created["payment"]["bolt11"]["invoice"]).await;
    let channel = wait_usable_channel(&devchain, &lsp, &client, 150_000).await;
    wait_order(&lsp, &id, "the order to complete", |o| {
        o.state == OrderState::Completed
    })
    .await;
    let completed = sdk.ok("get_lsp_order", &json!({ "order_id": id })).await;
    assert_eq!(completed["order_state"], "COMPLETED");
    assert_eq!(completed["payment"]["bolt11"]["state"], "PAID");
    assert_eq!(
        completed["channel"]["funding_outpoint"],
        channel.funding_txo.unwrap().to_string()
    );
    assert!(
        completed["channel"]["expires_at"].is_string(),
        "{completed}"
    );
    let raw = documented_order(&sdk.base, &id).await;
    assert_eq!(raw["payment"]["onchain"]["state"], "EXPECT_PAYMENT");

    client.stop().unwrap();
    lsp.stop().await.unwrap();
}
