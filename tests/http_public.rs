//! The public LSPS1 HTTP API of a real, funded node over real HTTP: each dialect's documented
//! examples, quote and signed cancel (with the refund of a paid order observed on-chain), the
//! bad-input table with the store unchanged, the rate limit under a flood, CORS, and the
//! OpenAPI document against the routes actually served.

mod common;

use std::net::IpAddr;

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{Address, CompressedPublicKey, Network};
use common::openapi_conformance::check_answer;
use common::*;
use lightning::util::message_signing;
use lsp_node::config::Config;
use lsp_node::devchain::Devchain;
use lsp_node::http::public::openapi;
use lsp_node::http::public::orders::cancel_message;
use lsp_node::lsps1::order::{OrderId, OrderState, PaymentState};
use lsp_node::{App, Builder};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

/// A devchain and a funded node serving the public API.
struct Public {
    devchain: Devchain,
    node: App,
    base: String,
    http: reqwest::Client,
    _dir: TempDir,
}

impl Public {
    async fn start(edit: impl FnOnce(&mut Config)) -> Public {
        init_logging();
        let devchain = start_devchain().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_for(dir.path(), &devchain.base_url());
        config.http.listen = Some("127.0.0.1:0".parse().unwrap());
        edit(&mut config);
        let node = Builder::new(config).start().await.expect("node starts");
        fund(&devchain, &Operator::for_node(&node), 30_000_000).await;
        let base = format!(
            "http://{}",
            node.http_listen_addr().expect("[http] listen set")
        );
        Public {
            devchain,
            node,
            base,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Every answer read through `get` and `post` is checked against the OpenAPI document.
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(format!("{}{path}", self.base)).send().await;
        let (status, body) = read(response.expect("GET answered")).await;
        assert_documented("get", path, status, &body);
        (status, body)
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.post_raw(path, body.to_string()).await
    }

    async fn post_raw(&self, path: &str, body: String) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let (status, body) = read(response.expect("POST answered")).await;
        assert_documented("post", path, status, &body);
        (status, body)
    }

    fn store_snapshot(&self) -> (usize, u64) {
        let service = self.node.order_service().unwrap();
        let book = service.order_book();
        let orders = book.orders(&Default::default()).unwrap().len();
        (orders, book.reserved_sat().unwrap())
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body read");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("every answer is JSON; got {status}: {text}"));
    (status, body)
}

fn assert_documented(method: &str, path: &str, status: StatusCode, body: &Value) {
    if let Err(drift) = check_answer(&openapi::document(), method, path, status.as_u16(), body) {
        panic!("the answer is not what docs/openapi.json promises: {drift}\n{body}");
    }
}

/// A client node key (no node runs it: the LSP only needs its id) and its pubkey.
fn client_key(byte: u8) -> (SecretKey, PublicKey) {
    let secret = SecretKey::from_slice(&[byte; 32]).unwrap();
    (secret, secret.public_key(&Secp256k1::new()))
}

fn regtest_address(byte: u8) -> Address {
    let (_, public) = client_key(byte);
    Address::p2wpkh(&CompressedPublicKey(public), Network::Regtest)
}

/// Asserts the error body shape ZEUS and the other wallets read.
fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: i64, case: &str) {
    assert_eq!(status.as_u16(), want_status, "{case}: {body}");
    assert_eq!(body["code"], want_code, "{case}: {body}");
    assert!(body["error"].is_string(), "{case}: {body}");
    assert!(body["message"].is_string(), "{case}: {body}");
}

/// The bLIP-51 fields every order rendering carries.
fn assert_order_shape(order: &Value, sats: fn(&Value) -> bool) {
    for field in ["order_id", "created_at", "order_state"] {
        assert!(order[field].is_string(), "{field}: {order}");
    }
    for field in ["lsp_balance_sat", "client_balance_sat"] {
        assert!(sats(&order[field]), "{field}: {order}");
    }
    for field in [
        "required_channel_confirmations",
        "funding_confirms_within_blocks",
        "channel_expiry_blocks",
    ] {
        assert!(order[field].is_u64(), "{field}: {order}");
    }
    assert!(order["announce_channel"].is_boolean(), "{order}");
    assert!(
        order.get("channel").is_some(),
        "channel is null, not absent"
    );
    let bolt11 = &order["payment"]["bolt11"];
    assert_eq!(bolt11["state"], "EXPECT_PAYMENT", "{order}");
    assert!(bolt11["invoice"].as_str().unwrap().starts_with("lnbcrt"));
    assert!(sats(&bolt11["fee_total_sat"]) && sats(&bolt11["order_total_sat"]));
}

fn sats_string(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.parse::<u64>().is_ok())
}

fn sats_integer(value: &Value) -> bool {
    value.is_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn olympus_and_megalith_seed_examples_complete_an_order() {
    let public = Public::start(|_| {}).await;
    let node_uri = format!(
        "{}@{}",
        public.node.node_id(),
        public.node.p2p_listen_addr()
    );

    let (status, info) = public.get("/api/v1/get_info").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["uris"], json!([node_uri]));
    // Every option of the document's get_info example that has a value there.
    for key in [
        "max_channel_balance_sat",
        "max_initial_client_balance_sat",
        "max_initial_lsp_balance_sat",
        "min_channel_balance_sat",
        "min_initial_client_balance_sat",
        "min_initial_lsp_balance_sat",
    ] {
        assert!(sats_string(&info[key]), "{key}: {info}");
    }
    for key in [
        "max_channel_expiry_blocks",
        "min_funding_confirms_within_blocks",
        "min_required_channel_confirmations",
    ] {
        assert!(info[key].is_u64(), "{key}: {info}");
    }
    assert!(info["supports_zero_channel_reserve"].is_boolean());
    assert_eq!(info["min_onchain_payment_confirmations"], 1);
    assert_eq!(info["min_onchain_payment_size_sat"], Value::Null);
    let (_, megalith_info) = public.get("/api/lsps1/v1/get_info").await;
    assert_eq!(megalith_info, info);

    // The document's create_order example, verbatim but for the public key.
    let (_, client) = client_key(7);
    let seed = json!({
        "lsp_balance_sat": "10000000",
        "client_balance_sat": "0",
        "required_channel_confirmations": 8,
        "funding_confirms_within_blocks": 6,
        "channel_expiry_blocks": 13000,
        "token": "",
        "refund_onchain_address": "",
        "announce_channel": false,
        "public_key": client.to_string()
    });
    let (status, order) = public.post("/api/v1/create_order", &seed).await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_order_shape(&order, sats_string);
    assert_eq!(order["lsp_balance_sat"], "10000000");
    assert_eq!(order["token"], "");
    assert_eq!(order["order_state"], "CREATED");
    assert_eq!(order["channel"], Value::Null);
    assert!(
        order["payment"].get("onchain").is_none(),
        "no refund address, no on-chain option"
    );
    let id = order["order_id"].as_str().unwrap();
    let stored = public
        .node
        .order_service()
        .unwrap()
        .order_book()
        .order(&OrderId::parse(id).unwrap())
        .unwrap()
        .expect("the order is in the one order book");
    assert_eq!(stored.client_node_id, Some(client));

    let (status, fetched) = public
        .get(&format!("/api/v1/get_order?order_id={id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        fetched, order,
        "get_order answers the created order, field for field"
    );
    let (_, megalith) = public
        .get(&format!("/api/lsps1/v1/get_order?order_id={id}"))
        .await;
    assert_eq!(megalith, order);

    // A quote for the same params prices exactly what the order asks.
    let mut quote_request = seed.clone();
    quote_request.as_object_mut().unwrap().remove("public_key");
    let (status, quote) = public.post("/api/v1/quote", &quote_request).await;
    assert_eq!(status, StatusCode::OK, "{quote}");
    assert_eq!(
        quote["bolt11"]["order_total_sat"],
        order["payment"]["bolt11"]["order_total_sat"]
    );
    assert_eq!(
        quote["bolt11"]["fee_total_sat"],
        order["payment"]["bolt11"]["fee_total_sat"]
    );
    assert!(
        sats_string(&quote["onchain"]["refund_reserve_sat"]),
        "{quote}"
    );
    public.node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kaleidoswap_seed_example_is_refused_for_assets_and_completes_without_them() {
    let public = Public::start(|_| {}).await;
    let (_, client) = client_key(9);

    let (status, info) = public.get("/api/v1/lsps1/get_info").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        info["lsp_connection_url"],
        format!(
            "{}@{}",
            public.node.node_id(),
            public.node.p2p_listen_addr()
        )
    );
    assert!(
        info["options"]["max_initial_lsp_balance_sat"].is_u64(),
        "{info}"
    );
    assert_eq!(info["assets"], json!([]), "no RGB assets are sold");
    assert!(info["options"]["min_onchain_payment_confirmations"].is_u64());

    // The document's example, verbatim but for the public key: it asks for an RGB asset.
    let verbatim = json!({
        "client_pubkey": client.to_string(),
        "lsp_balance_sat": 1,
        "client_balance_sat": 1,
        "required_channel_confirmations": 1,
        "funding_confirms_within_blocks": 2,
        "channel_expiry_blocks": 2,
        "token": "<string>",
        "refund_onchain_address": "<string>",
        "announce_channel": true,
        "asset_id": "<string>",
        "lsp_asset_amount": 123,
        "client_asset_amount": 123,
        "rfq_id": "<string>",
        "email": "<string>"
    });
    let before = public.store_snapshot();
    let (status, body) = public.post("/api/v1/lsps1/create_order", &verbatim).await;
    assert_error(status, &body, 400, -32602, "asset order");
    assert_eq!(body["data"]["property"], "asset_id");
    assert!(
        body["message"].as_str().unwrap().contains("asset"),
        "{body}"
    );
    assert_eq!(public.store_snapshot(), before);

    // What a client of that document sends when it wants a plain channel.
    let refund = regtest_address(10).to_string();
    let plain = json!({
        "client_pubkey": client.to_string(),
        "lsp_balance_sat": 500000,
        "client_balance_sat": 0,
        "required_channel_confirmations": 1,
        "funding_confirms_within_blocks": 6,
        "channel_expiry_blocks": 4320,
        "token": null,
        "refund_onchain_address": refund,
        "announce_channel": false,
        "asset_id": null,
        "lsp_asset_amount": null,
        "client_asset_amount": null,
        "rfq_id": null,
        "email": "owner@wallet.example"
    });
    let (status, order) = public.post("/api/v1/lsps1/create_order", &plain).await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_order_shape(&order, sats_integer);
    assert_eq!(order["client_pubkey"], client.to_string());
    assert_eq!(order["lsp_balance_sat"], 500000);
    assert_eq!(order["asset_id"], Value::Null);
    assert_eq!(order["asset_delivery_status"], "NOT_REQUIRED");
    let onchain = &order["payment"]["onchain"];
    assert_eq!(onchain["refund_onchain_address"], refund);
    assert!(onchain["address"].is_string() && onchain["order_total_sat"].is_u64());
    let id = order["order_id"].as_str().unwrap().to_string();
    let stored = public
        .node
        .order_service()
        .unwrap()
        .order_book()
        .order(&OrderId::parse(&id).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(stored.email.as_deref(), Some("owner@wallet.example"));

    let (status, fetched) = public
        .post("/api/v1/lsps1/get_order", &json!({ "order_id": id }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, order);
    // What the Kaleidoswap SDK sends: an empty access token.
    let (status, fetched) = public
        .post(
            "/api/v1/lsps1/get_order",
            &json!({ "order_id": id, "access_token": "" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, order);
    let decision = json!({ "order_id": id, "access_token": "", "accept_new_rate": true });
    let (status, body) = public.post("/api/v1/lsps1/rate_decision", &decision).await;
    assert_error(status, &body, 409, -32004, "no rate decision pending");
    assert_eq!(body["data"]["order_state"], "CREATED");
    let (status, body) = public
        .post("/api/v1/lsps1/retry_delivery", &json!({ "order_id": id }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "no_pending_delivery");
    // The same order in the Olympus dialect: the same values, sats as strings.
    let (_, olympus) = public
        .get(&format!("/api/v1/get_order?order_id={id}"))
        .await;
    for path in [
        "/lsp_balance_sat",
        "/payment/bolt11/order_total_sat",
        "/payment/onchain/order_total_sat",
    ] {
        let as_string = olympus.pointer(path).unwrap().as_str().unwrap();
        assert_eq!(
            as_string,
            order.pointer(path).unwrap().to_string(),
            "{path}"
        );
    }
    assert_eq!(
        olympus["payment"]["bolt11"]["invoice"],
        order["payment"]["bolt11"]["invoice"]
    );

    let mut estimate_request = plain.clone();
    estimate_request
        .as_object_mut()
        .unwrap()
        .remove("client_pubkey");
    let (status, estimate) = public
        .post("/api/v1/lsps1/estimate_fees", &estimate_request)
        .await;
    assert_eq!(status, StatusCode::OK, "{estimate}");
    assert_eq!(
        estimate["total_fee"],
        order["payment"]["bolt11"]["fee_total_sat"]
    );
    let parts = ["setup_fee", "capacity_fee", "duration_fee"]
        .iter()
        .map(|k| estimate[*k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(parts, estimate["total_fee"].as_u64().unwrap(), "{estimate}");

    let (status, network) = public.get("/api/v1/lsps1/network_info").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(network["network"], "Regtest");
    let tip = public.devchain.tip().0;
    assert!(
        network["height"].as_u64().unwrap() <= u64::from(tip)
            && network["height"].as_u64().unwrap() >= 1,
        "{network}"
    );
    public.node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_cancel_before_and_after_payment_refunds_on_chain() {
    let public = Public::start(|_| {}).await;
    let (secret, client) = client_key(11);
    let (other_secret, _) = client_key(12);
    let refund = regtest_address(13);
    let order_body = json!({
        "lsp_balance_sat": "300000", "client_balance_sat": "0",
        "required_channel_confirmations": 1, "funding_confirms_within_blocks": 6,
        "channel_expiry_blocks": 4320, "announce_channel": false,
        "refund_onchain_address": refund.to_string(), "public_key": client.to_string(),
    });
    let sign =
        |id: &str, key: &SecretKey| message_signing::sign(cancel_message(id).as_bytes(), key);

    // Unpaid: only the ordering node's signature cancels it.
    let (_, unpaid) = public.post("/api/v1/create_order", &order_body).await;
    let unpaid_id = unpaid["order_id"].as_str().unwrap().to_string();
    for (case, signature) in [
        ("another node's signature", sign(&unpaid_id, &other_secret)),
        (
            "a signature of another order",
            sign("someotherorder", &secret),
        ),
        ("not a signature", "zzzz".to_string()),
    ] {
        let (status, body) = public
            .post(
                "/api/v1/cancel_order",
                &json!({ "order_id": unpaid_id, "signature": signature }),
            )
            .await;
        assert_error(status, &body, 403, -32002, case);
    }
    let (_, still) = public
        .get(&format!("/api/v1/get_order?order_id={unpaid_id}"))
        .await;
    assert_eq!(
        still["order_state"], "CREATED",
        "refused cancels change nothing"
    );

    let cancel = json!({ "order_id": unpaid_id, "signature": sign(&unpaid_id, &secret) });
    let (status, cancelled) = public.post("/api/v1/cancel_order", &cancel).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["order_state"], "FAILED");
    let (status, again) = public.post("/api/v1/cancel_order", &cancel).await;
    assert_error(status, &again, 409, -32001, "second cancel");
    assert_eq!(again["data"]["order_state"], "FAILED");
    let (status, unknown) = public
        .post(
            "/api/v1/cancel_order",
            &json!({ "order_id": "nosuchorder", "signature": sign("nosuchorder", &secret) }),
        )
        .await;
    assert_error(status, &unknown, 404, 101, "unknown order");

    // Paid on-chain, but the client never connects, so no channel opens: cancelling refunds.
    let (_, paid) = public.post("/api/v1/create_order", &order_body).await;
    let paid_id = paid["order_id"].as_str().unwrap().to_string();
    let pay_to: Address<bitcoin::address::NetworkUnchecked> = paid["payment"]["onchain"]["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let amount: u64 = paid["payment"]["onchain"]["order_total_sat"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    public
        .devchain
        .fund(&pay_to.assume_checked(), amount)
        .unwrap();
    public.devchain.mine(1);
    let service = public.node.order_service().unwrap();
    let order_id = OrderId::parse(&paid_id).unwrap();
    wait_for("the on-chain payment to count", DEADLINE, || async {
        let order = service.order_book().order(&order_id).unwrap().unwrap();
        (order.onchain.as_ref().unwrap().state == PaymentState::Paid).then_some(())
    })
    .await;
    let cancel = json!({ "order_id": paid_id, "signature": sign(&paid_id, &secret) });
    let (status, cancelled) = public.post("/api/v1/cancel_order", &cancel).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["order_state"], "FAILED");
    let refund_sent = wait_for("the refund", DEADLINE, || async {
        service
            .order_book()
            .refunds(&order_id)
            .unwrap()
            .first()
            .cloned()
    })
    .await;
    assert_eq!(refund_sent.address, refund.to_string());
    assert_eq!(refund_sent.amount_sat + refund_sent.fee_sat, amount);
    wait_for("the refund in the mempool", DEADLINE, || async {
        public
            .devchain
            .mempool_txids()
            .contains(&refund_sent.txid)
            .then_some(())
    })
    .await;
    let order = service.order_book().order(&order_id).unwrap().unwrap();
    assert_eq!(order.state, OrderState::Failed);
    assert_ne!(
        order.onchain.unwrap().state,
        PaymentState::Refunded,
        "a refund in the mempool is not yet a refund"
    );
    public.devchain.mine(1);
    wait_for(
        "the refund to confirm and the order to say so",
        DEADLINE,
        || async {
            let order = service.order_book().order(&order_id).unwrap().unwrap();
            (order.onchain.unwrap().state == PaymentState::Refunded).then_some(())
        },
    )
    .await;
    public.node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_documented_status_and_body_and_changes_nothing() {
    let public = Public::start(|config| {
        // Two dozen requests from one address: above the default budgets.
        config.http.limits.rate_limit_burst = 1_000;
        config.http.limits.orders_per_hour = 1_000;
    })
    .await;
    let (_, client) = client_key(21);
    let valid = json!({
        "lsp_balance_sat": "100000", "client_balance_sat": "0",
        "required_channel_confirmations": 1, "funding_confirms_within_blocks": 6,
        "channel_expiry_blocks": 4320, "announce_channel": false,
        "public_key": client.to_string(),
    });
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body.to_string()
    };
    let kaleido = |field: &str, value: Value| {
        let mut body = valid.clone();
        let fields = body.as_object_mut().unwrap();
        fields.remove("public_key");
        fields.insert("client_pubkey".into(), json!(client.to_string()));
        fields.insert(field.into(), value);
        body.to_string()
    };
    let before = public.store_snapshot();
    // (case, path, body, status, code, data.property)
    let cases: Vec<(&str, &str, String, u16, i64, &str)> = vec![
        (
            "malformed json",
            "/api/v1/create_order",
            "{\"lsp_balance_sat\": ".into(),
            400,
            -32700,
            "",
        ),
        (
            "not an object",
            "/api/v1/create_order",
            "[]".into(),
            400,
            -32600,
            "",
        ),
        (
            "amount as number",
            "/api/v1/create_order",
            with("lsp_balance_sat", json!(100000)),
            400,
            -32602,
            "lsp_balance_sat",
        ),
        (
            "negative amount",
            "/api/v1/create_order",
            with("lsp_balance_sat", json!("-5")),
            400,
            -32602,
            "lsp_balance_sat",
        ),
        (
            "huge amount",
            "/api/v1/create_order",
            with("lsp_balance_sat", json!("184467440737095516160")),
            400,
            -32602,
            "lsp_balance_sat",
        ),
        (
            "above the maximum",
            "/api/v1/create_order",
            with("lsp_balance_sat", json!("10000001")),
            400,
            100,
            "max_initial_lsp_balance_sat",
        ),
        (
            "bool as string",
            "/api/v1/create_order",
            with("announce_channel", json!("no")),
            400,
            -32602,
            "announce_channel",
        ),
        (
            "bad pubkey",
            "/api/v1/create_order",
            with("public_key", json!("02abc")),
            400,
            -32602,
            "public_key",
        ),
        (
            "wrong network address",
            "/api/v1/create_order",
            with(
                "refund_onchain_address",
                json!("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
            ),
            400,
            -32602,
            "refund_onchain_address",
        ),
        (
            "megalith too",
            "/api/lsps1/v1/create_order",
            with("channel_expiry_blocks", json!(0)),
            400,
            -32602,
            "channel_expiry_blocks",
        ),
        (
            "kaleidoswap negative",
            "/api/v1/lsps1/create_order",
            kaleido("lsp_balance_sat", json!(-1)),
            400,
            -32602,
            "lsp_balance_sat",
        ),
        (
            "kaleidoswap fraction",
            "/api/v1/lsps1/create_order",
            kaleido("lsp_balance_sat", json!(1.5)),
            400,
            -32602,
            "lsp_balance_sat",
        ),
        (
            "kaleidoswap asset",
            "/api/v1/lsps1/create_order",
            kaleido("rfq_id", json!("q")),
            400,
            -32602,
            "rfq_id",
        ),
        (
            "kaleidoswap email",
            "/api/v1/lsps1/create_order",
            kaleido("email", json!(42)),
            400,
            -32602,
            "email",
        ),
        (
            "kaleidoswap without a refund address",
            "/api/v1/lsps1/create_order",
            kaleido("refund_onchain_address", Value::Null),
            400,
            -32602,
            "refund_onchain_address",
        ),
        (
            "kaleidoswap empty refund address",
            "/api/v1/lsps1/create_order",
            kaleido("refund_onchain_address", json!("")),
            400,
            -32602,
            "refund_onchain_address",
        ),
        (
            "kaleidoswap access token",
            "/api/v1/lsps1/get_order",
            json!({"order_id": "nope", "access_token": "t"}).to_string(),
            400,
            -32602,
            "access_token",
        ),
        (
            "kaleidoswap rate decision without a decision",
            "/api/v1/lsps1/rate_decision",
            json!({"order_id": "nope"}).to_string(),
            400,
            -32602,
            "accept_new_rate",
        ),
        (
            "kaleidoswap rate decision for an unknown order",
            "/api/v1/lsps1/rate_decision",
            json!({"order_id": "nope", "access_token": "", "accept_new_rate": false}).to_string(),
            404,
            101,
            "",
        ),
        (
            "kaleidoswap delivery of an unknown order",
            "/api/v1/lsps1/retry_delivery",
            json!({"order_id": "nope"}).to_string(),
            404,
            101,
            "",
        ),
        (
            "kaleidoswap unknown id",
            "/api/v1/lsps1/get_order",
            json!({"order_id": "nope"}).to_string(),
            404,
            101,
            "",
        ),
        (
            "kaleidoswap id type",
            "/api/v1/lsps1/get_order",
            json!({"order_id": 5}).to_string(),
            400,
            -32602,
            "order_id",
        ),
        (
            "quote above maximum",
            "/api/v1/quote",
            with("lsp_balance_sat", json!("10000001")),
            400,
            100,
            "max_initial_lsp_balance_sat",
        ),
        (
            "cancel without signature",
            "/api/v1/cancel_order",
            json!({"order_id": "x"}).to_string(),
            400,
            -32602,
            "signature",
        ),
    ];
    for (case, path, body, status, code, property) in cases {
        let (got_status, got) = public.post_raw(path, body).await;
        assert_error(got_status, &got, status, code, case);
        if !property.is_empty() {
            assert_eq!(got["data"]["property"], property, "{case}: {got}");
        }
    }
    let (status, body) = public
        .post_raw("/api/v1/create_order", with("surprise", json!(1)))
        .await;
    assert_error(status, &body, 400, -32602, "unknown field");
    assert_eq!(body["data"]["unrecognized"], json!(["surprise"]));

    let (status, body) = public.get("/api/v1/get_order?order_id=nosuchorder").await;
    assert_error(status, &body, 404, 101, "unknown order id");
    let (status, body) = public.get("/api/v1/get_order").await;
    assert_error(status, &body, 400, -32602, "no order id");
    let (status, body) = public
        .post_raw(
            "/api/v1/create_order",
            format!("{{\"pad\": \"{}\"}}", "x".repeat(64 * 1024)),
        )
        .await;
    assert_error(status, &body, 413, -32600, "oversized body");
    let (status, body) = public.get("/api/v2/nothing").await;
    assert_error(status, &body, 404, -32601, "unknown path");
    let (status, body) = public.get("/api/v1/create_order").await;
    assert_error(status, &body, 405, -32600, "wrong method");
    assert_eq!(
        public.store_snapshot(),
        before,
        "no refused request stored anything"
    );

    // The same node takes the valid request, so the refusals were about the input.
    let (status, order) = public.post("/api/v1/create_order", &valid).await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(public.store_snapshot().0, before.0 + 1);
    public.node.stop().await.unwrap();
}

/// A client bound to its own loopback address (Linux routes all of 127/8 to `lo`), so the
/// node sees distinct client addresses.
fn client_from(address: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(address.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_is_refused_while_others_are_served() {
    let public = Public::start(|config| {
        config.http.limits.rate_limit_burst = 10;
        config.http.limits.orders_per_hour = 1_000;
        // One token a minute: no refill can blur the counts while the flood runs.
        config.http.limits.rate_limit_per_minute = 1;
    })
    .await;
    let (_, flooder_key) = client_key(31);
    let (_, other_key) = client_key(32);
    let order = |key: &PublicKey| {
        json!({
            "lsp_balance_sat": "100000", "client_balance_sat": "0",
            "required_channel_confirmations": 1, "funding_confirms_within_blocks": 6,
            "channel_expiry_blocks": 4320, "announce_channel": false,
            "public_key": key.to_string(),
        })
    };
    let url = format!("{}/api/v1/create_order", public.base);
    let flooder = client_from("127.0.0.2");
    let flood: Vec<_> = (0..200)
        .map(|_| {
            let (client, url, body) = (flooder.clone(), url.clone(), order(&flooder_key));
            tokio::spawn(async move {
                let response = client.post(url).json(&body).send().await.unwrap();
                let retry_after = response.headers().get("retry-after").cloned();
                let (status, body) = read(response).await;
                (status, body, retry_after)
            })
        })
        .collect();

    // While the flood runs, another address creates orders and reads them.
    let other = client_from("127.0.0.3");
    for _ in 0..3 {
        let response = other
            .post(&url)
            .json(&order(&other_key))
            .send()
            .await
            .unwrap();
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::OK, "another address is served: {body}");
        let id = body["order_id"].as_str().unwrap();
        let response = other
            .get(format!("{}/api/v1/get_order?order_id={id}", public.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    let (mut created, mut per_node_limit, mut rate_limited) = (0, 0, 0);
    for task in flood {
        let (status, body, retry_after) = task.await.unwrap();
        match (status.as_u16(), body["code"].as_i64()) {
            (200, _) => created += 1,
            (403, Some(1)) => per_node_limit += 1,
            (429, Some(-32003)) => {
                rate_limited += 1;
                let seconds: u64 = retry_after
                    .expect("429 carries Retry-After")
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=60).contains(&seconds), "{seconds}");
            }
            other => panic!("unexpected answer to the flood: {other:?} {body}"),
        }
    }
    // The burst (10) got through the rate limit; of those, the open-order limit let
    // `max_unpaid_orders_per_peer` (3) become orders.
    assert_eq!(created, 3, "per-node open-order limit");
    assert_eq!(
        created + per_node_limit,
        10,
        "the burst passes the rate limit"
    );
    assert_eq!(rate_limited, 190);
    let (orders, _) = public.store_snapshot();
    assert_eq!(orders, 3 + 3, "the flooder's 3 and the other address's 3");
    public.node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_creates_at_most_its_hourly_orders_and_may_still_read() {
    let public = Public::start(|config| config.http.limits.orders_per_hour = 2).await;
    let order = |byte: u8| {
        json!({
            "lsp_balance_sat": "100000", "client_balance_sat": "0",
            "required_channel_confirmations": 1, "funding_confirms_within_blocks": 6,
            "channel_expiry_blocks": 4320, "announce_channel": false,
            "public_key": client_key(byte).1.to_string(),
        })
    };
    let url = |path: &str| format!("{}{path}", public.base);
    let busy = client_from("127.0.0.4");
    for (byte, path) in [
        (41, "/api/v1/create_order"),
        (42, "/api/lsps1/v1/create_order"),
    ] {
        let response = busy
            .post(url(path))
            .json(&order(byte))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    // A third order, for yet another node and in another dialect: over the budget.
    let mut kaleidoswap = order(43);
    let fields = kaleidoswap.as_object_mut().unwrap();
    let key = fields.remove("public_key").unwrap();
    fields.insert("client_pubkey".into(), key);
    let response = busy
        .post(url("/api/v1/lsps1/create_order"))
        .json(&kaleidoswap)
        .send()
        .await
        .unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, body) = read(response).await;
    assert_error(status, &body, 429, -32003, "third order in the hour");
    assert!(
        body["message"].as_str().unwrap().contains("orders"),
        "{body}"
    );
    assert!((1..=1_800).contains(&retry_after), "{retry_after}");
    let (orders, _) = public.store_snapshot();
    assert_eq!(orders, 2);

    let response = busy.get(url("/api/v1/get_info")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "reading is not an order");
    let other = client_from("127.0.0.5");
    let response = other
        .post(url("/api/v1/create_order"))
        .json(&order(44))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "another address has its own budget"
    );
    public.node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let public = Public::start(|config| {
        config.http.limits.rate_limit_burst = 2;
        config.http.limits.rate_limit_per_minute = 1;
        config.http.limits.trusted_proxies = vec!["127.0.0.6".parse().unwrap()];
    })
    .await;
    let url = format!("{}/api/v1/get_info", public.base);
    let status_from = |client: reqwest::Client, forwarded_for: &'static str| {
        let url = url.clone();
        async move {
            let response = client
                .get(url)
                .header("x-forwarded-for", forwarded_for)
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    };
    let proxy = client_from("127.0.0.6");
    let statuses = [
        status_from(proxy.clone(), "198.51.100.1").await,
        status_from(proxy.clone(), "203.0.113.9, 198.51.100.1").await,
        status_from(proxy.clone(), "198.51.100.1").await,
    ];
    assert_eq!(
        statuses,
        [200, 200, 429],
        "one forwarded client, whatever it claims on the left"
    );
    assert_eq!(
        status_from(proxy.clone(), "198.51.100.2").await,
        200,
        "another client behind the same proxy has its own bucket"
    );

    // An address that is not a trusted proxy cannot pick its bucket by claiming one.
    let direct = client_from("127.0.0.7");
    let statuses = [
        status_from(direct.clone(), "198.51.100.3").await,
        status_from(direct.clone(), "198.51.100.4").await,
        status_from(direct.clone(), "198.51.100.5").await,
    ];
    assert_eq!(statuses, [200, 200, 429]);
    public.node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_by_default_and_follows_the_configured_origins() {
    init_logging();
    let devchain = start_devchain().await;
    let (default_dir, cors_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut config = config_for(default_dir.path(), &devchain.base_url());
    config.http.listen = Some("127.0.0.1:0".parse().unwrap());
    let plain = Builder::new(config).start().await.unwrap();
    let mut config = config_for(cors_dir.path(), &devchain.base_url());
    config.http.listen = Some("127.0.0.1:0".parse().unwrap());
    config.http.limits.cors_allowed_origins = vec!["https://wallet.example".to_string()];
    let cors = Builder::new(config).start().await.unwrap();
    let http = reqwest::Client::new();
    let preflight = |node: &App, origin: &str| {
        http.request(
            reqwest::Method::OPTIONS,
            format!(
                "http://{}/api/v1/create_order",
                node.http_listen_addr().unwrap()
            ),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .send()
    };
    let allow_origin = |response: &reqwest::Response| {
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string())
    };

    let response = preflight(&plain, "https://wallet.example").await.unwrap();
    assert_eq!(allow_origin(&response), None, "CORS is off by default");
    let response = preflight(&cors, "https://wallet.example").await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        allow_origin(&response).as_deref(),
        Some("https://wallet.example")
    );
    let response = preflight(&cors, "https://other.example").await.unwrap();
    assert_eq!(allow_origin(&response), None);
    let response = http
        .get(format!(
            "http://{}/api/v1/get_info",
            cors.http_listen_addr().unwrap()
        ))
        .header("origin", "https://wallet.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        allow_origin(&response).as_deref(),
        Some("https://wallet.example")
    );
    plain.stop().await.unwrap();
    cors.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_is_served_and_lists_exactly_the_served_routes() {
    init_logging();
    let devchain = start_devchain().await;
    let dir = tempfile::tempdir().unwrap();
    // `config_for` serves the public API on 127.0.0.1 port 0.
    let node = start_node(dir.path(), &devchain.base_url()).await;
    let base = format!("http://{}", node.http_listen_addr().unwrap());
    let http = reqwest::Client::new();

    let served: Value = http
        .get(format!("{base}{}", openapi::PATH))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, openapi::document());
    for operation in openapi::OPERATIONS {
        let url = format!("{base}{}", operation.path);
        let response = match operation.method {
            "get" => http.get(url).send().await.unwrap(),
            "post" => http.post(url).body("{}").send().await.unwrap(),
            other => panic!("undocumented method {other}"),
        };
        let (status, body) = read(response).await;
        let unrouted = status == StatusCode::METHOD_NOT_ALLOWED
            || (status == StatusCode::NOT_FOUND && body["code"] == -32601);
        assert!(
            !unrouted,
            "{} {} is documented but not served: {status} {body}",
            operation.method, operation.path
        );
    }
    let paths = served["paths"].as_object().unwrap();
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(operations, openapi::OPERATIONS.len());
    node.stop().await.unwrap();
}

#[test]
fn the_conformance_check_refuses_answers_the_document_does_not_describe() {
    let document = openapi::document();
    let check =
        |method, path, status, body: Value| check_answer(&document, method, path, status, &body);
    let info = json!({ "network": "Regtest", "height": 7 });
    assert_eq!(
        check("get", "/api/v1/lsps1/network_info", 200, info),
        Ok(())
    );
    for (case, body) in [
        ("missing field", json!({ "network": "Regtest" })),
        ("wrong type", json!({ "network": "Regtest", "height": "7" })),
        (
            "outside the enum",
            json!({ "network": "moon", "height": 7 }),
        ),
        (
            "undocumented field",
            json!({ "network": "Regtest", "height": 7, "tip": "00" }),
        ),
        (
            "below the minimum",
            json!({ "network": "Regtest", "height": -1 }),
        ),
    ] {
        assert!(
            check("get", "/api/v1/lsps1/network_info", 200, body).is_err(),
            "{case}"
        );
    }
    let error = json!({ "error": "x", "code": 101, "message": "Not found" });
    assert_eq!(check("get", "/api/v2/nothing", 404, error.clone()), Ok(()));
    assert!(check("get", "/api/v2/nothing", 200, error).is_err());
    assert!(check("post", "/api/v1/quote", 400, json!({ "code": 1 })).is_err());
    let price_fields = &document["components"]["schemas"]["Quote"]["properties"]["bolt11"];
    let price: serde_json::Map<String, Value> = price_fields["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|name| (name.as_str().unwrap().to_string(), json!("10")))
        .collect();
    let quote = json!({
        "lsp_balance_sat": "100000", "client_balance_sat": "0", "channel_expiry_blocks": 4320,
        "funding_confirms_within_blocks": 6, "bolt11": price,
    });
    assert_eq!(check("post", "/api/v1/quote", 200, quote.clone()), Ok(()));
    for (field, value) in [
        ("funding_confirms_within_blocks", json!(70_000)),
        ("channel_expiry_blocks", json!(0)),
        ("lsp_balance_sat", json!("12a")),
    ] {
        let mut wrong = quote.clone();
        wrong[field] = value;
        assert!(
            check("post", "/api/v1/quote", 200, wrong).is_err(),
            "{field}"
        );
    }
    // OpenAPI 3.0.3's `nullable` adds null only to a stated type, and not past an enum
    // that leaves null out.
    let tiny = |field: Value| {
        json!({
            "paths": { "/x": { "get": { "responses": { "200": { "content": {
                "application/json": { "schema": { "$ref": "#/components/schemas/X" } } } } } } } },
            "components": { "schemas": { "X": {
                "type": "object", "properties": { "f": field } } } },
        })
    };
    let null_field = json!({ "f": null });
    for (field, allowed) in [
        (json!({ "type": "string", "nullable": true }), true),
        (
            json!({ "type": "string", "nullable": true, "enum": [null] }),
            true,
        ),
        (json!({ "nullable": true, "enum": [null] }), false),
        (
            json!({ "type": "string", "nullable": true, "enum": ["a"] }),
            false,
        ),
        (json!({ "type": "string" }), false),
    ] {
        let verdict = check_answer(&tiny(field.clone()), "get", "/x", 200, &null_field);
        assert_eq!(
            verdict.is_ok(),
            allowed,
            "null against {field}: {verdict:?}"
        );
    }
    let order_without_channel = json!({ "order_id": "a", "order_state": "CREATED" });
    assert!(check(
        "get",
        "/api/v1/get_order?order_id=a",
        200,
        order_without_channel
    )
    .is_err());
}

/// A refund address of the LSP's own wallet would send a refund back to the LSP: refused, and
/// nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_address_of_the_lsps_own_wallet_is_refused() {
    let public = Public::start(|_| {}).await;
    let own = Operator::for_node(&public.node).address().await;
    let (_, client) = client_key(11);
    let body = |refund: &str| {
        json!({
            "public_key": client.to_string(),
            "lsp_balance_sat": "500000",
            "client_balance_sat": "0",
            "required_channel_confirmations": 1,
            "funding_confirms_within_blocks": 6,
            "channel_expiry_blocks": 4320,
            "announce_channel": false,
            "refund_onchain_address": refund,
        })
    };
    let before = public.store_snapshot();
    let (status, refused) = public.post("/api/v1/create_order", &body(&own)).await;
    assert_error(status, &refused, 400, -32602, "own refund address");
    assert_eq!(refused["data"]["property"], "refund_onchain_address");
    assert!(
        refused["data"]["message"]
            .as_str()
            .unwrap()
            .contains("own wallet"),
        "{refused}"
    );
    assert_eq!(public.store_snapshot(), before);

    let foreign = regtest_address(12).to_string();
    let (status, order) = public.post("/api/v1/create_order", &body(&foreign)).await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(
        order["payment"]["onchain"]["refund_onchain_address"],
        foreign
    );
}
