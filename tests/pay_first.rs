//! Pay first, name the node later: a pay-first order is paid by one node and claimed, with its
//! bearer token, for another (after a restart of the LSP in between), whose channel then
//! opens; an order no one claims in time is given up and its payment goes back (a held HTLC to
//! its payer, on-chain funds to the refund address).
//! Over HTTP: the open LSP API sells, finalises and reports such an order, and LNURL-channel
//! (LUD-02) claims one for the wallet that calls back.

mod common;

use std::sync::Arc;

use common::client_scene::{ClientScene, PUSH_MSAT};
use common::process::{regtest_config, NodeProcess};
use common::*;
use lsp_node::lsps1::claims::{ClaimRefused, ClaimToken};
use lsp_node::lsps1::order::{Interface, Order, OrderParams, PaymentState};
use lsp_node::lsps1::service::{NewOrder, OrderService};

fn pay_first_order(
    service: &OrderService,
    refund: Option<bitcoin::Address>,
) -> (Order, ClaimToken) {
    service
        .create_pay_first_order(NewOrder {
            client_node_id: None,
            params: OrderParams {
                lsp_balance_sat: 100_000,
                client_balance_sat: 0,
                required_channel_confirmations: 1,
                funding_confirms_within_blocks: 6,
                channel_expiry_blocks: 1_000,
                token: None,
                announce_channel: false,
            },
            refund_address: refund,
            source: Interface::Http,
            email: None,
        })
        .expect("a pay-first order")
}

fn rendered(service: &OrderService, order: &Order) -> serde_json::Value {
    service.render_http(order)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_third_node_pays_and_the_claim_names_the_node_whose_channel_opens() {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        config,
        operator,
        client: payer,
        ..
    } = ClientScene::start(2_000_000).await;
    let service = lsp.order_service().expect("the LSP sells channels");
    let receiver_dir = tempfile::tempdir().unwrap();
    let receiver = Arc::new(start_ldk_node(&devchain, receiver_dir.path(), |_| {}));
    receiver
        .connect(
            lsp.node_id(),
            lsp.p2p_listen_addr().to_string().parse().unwrap(),
            true,
        )
        .expect("the receiver connects to the LSP");

    let (order, token) = pay_first_order(&service, None);
    assert_eq!(order.client_node_id, None);
    assert_eq!(token.reveal().len(), 64, "a 256-bit bearer token");
    assert_ne!(
        token.reveal(),
        order.id.as_str(),
        "the order id claims nothing"
    );
    let id = order.id.to_string();
    let payment = pay_order_over_lightning(&payer, &rendered(&service, &order)).await;
    wait_for("the payment to be held", DEADLINE, || async {
        let detail = operator.order(&id).await;
        (detail.summary.bolt11_state.as_deref() == Some("HOLD")).then_some(())
    })
    .await;
    // Paid and unclaimed: nothing opens.
    operator.sync().await;
    assert_eq!(operator.order(&id).await.summary.state, "CREATED");
    assert_eq!(operator.order(&id).await.summary.client_node_id, None);

    let stranger = ClaimToken::from_client(&"ab".repeat(32));
    assert!(matches!(
        service.claim_order(&stranger, receiver.node_id()),
        Err(ClaimRefused::Unknown)
    ));
    let by_id = ClaimToken::from_client(order.id.as_str());
    assert!(
        matches!(
            service.claim_order(&by_id, receiver.node_id()),
            Err(ClaimRefused::Unknown)
        ),
        "the order id is no claim token"
    );

    // The LSP restarts between the payment and the claim.
    drop(service);
    lsp.stop().await.unwrap();
    let lsp = lsp_node::Builder::new(config)
        .start()
        .await
        .expect("the LSP starts again");
    let operator = Operator::for_node(&lsp);
    let service = lsp.order_service().expect("the LSP sells channels");
    receiver
        .connect(
            lsp.node_id(),
            lsp.p2p_listen_addr().to_string().parse().unwrap(),
            true,
        )
        .expect("the receiver connects to the LSP again");
    assert_eq!(
        operator.order(&id).await.summary.bolt11_state.as_deref(),
        Some("HOLD")
    );

    let claimed = service
        .claim_order(&token, receiver.node_id())
        .expect("the holder of the token claims the order");
    assert_eq!(claimed.client_node_id, Some(receiver.node_id()));
    assert!(matches!(
        service.claim_order(&token, payer.node_id()),
        Err(ClaimRefused::AlreadyClaimed)
    ));

    let (detail, funding) = wait_order_funded(&operator, &id).await;
    assert_eq!(
        detail.summary.client_node_id,
        Some(receiver.node_id().to_string())
    );
    wait_for_tx_in_mempool(&devchain, &funding, "the funding transaction").await;
    devchain.mine(6);
    wait_payment_status(
        &payer,
        &payment,
        ldk_node::payment::PaymentStatus::Succeeded,
        "the payer's HTLC to be claimed once the channel is funded",
    )
    .await;
    wait_sold_channel_usable(&receiver, funding).await;
    let events: Vec<String> = operator
        .order(&id)
        .await
        .events
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert!(events.contains(&"claimed".to_string()), "{events:?}");
    receiver.stop().unwrap();
    payer.stop().unwrap();
    lsp.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_paid_orders_no_one_claims_are_given_up_and_their_payments_go_back() {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        operator,
        client: payer,
        ..
    } = ClientScene::start_with(2_000_000, |config| {
        config.lsps1.claim_timeout_secs = 3;
    })
    .await;
    let service = lsp.order_service().expect("the LSP sells channels");

    // Over Lightning: the held HTLC goes back to its payer.
    let (order, token) = pay_first_order(&service, None);
    let payment = pay_order_over_lightning(&payer, &rendered(&service, &order)).await;
    wait_payment_status(
        &payer,
        &payment,
        ldk_node::payment::PaymentStatus::Failed,
        "the unclaimed order's HTLC to go back",
    )
    .await;
    let failed = service.order_book().order(&order.id).unwrap().unwrap();
    assert_eq!(failed.bolt11.unwrap().state, PaymentState::Refunded);
    assert!(
        matches!(
            service.claim_order(&token, payer.node_id()),
            Err(ClaimRefused::Ended("FAILED"))
        ),
        "a failed order can no longer be claimed"
    );

    // On chain: the funds go back to the refund address.
    let refund = payer.onchain_payment().new_address().unwrap();
    let (order, _token) = pay_first_order(&service, Some(refund.clone()));
    let (address, total) = onchain_payment_of(&rendered(&service, &order));
    devchain.fund(&address, total).unwrap();
    devchain.mine(1);
    let id = order.id.to_string();
    let detail = wait_for(
        "the unclaimed on-chain order to be refunded",
        DEADLINE,
        || async {
            operator.sync().await;
            let detail = operator.order(&id).await;
            let refunded = detail.summary.onchain_state.as_deref() == Some("REFUNDED");
            if !refunded && !detail.refunds.is_empty() {
                devchain.mine(1);
            }
            refunded.then_some(detail)
        },
    )
    .await;
    assert_eq!(detail.summary.state, "FAILED");
    assert_eq!(detail.refunds[0].address, refund.to_string());
    payer.stop().unwrap();
    lsp.stop().await.unwrap();
}

/// One call to the open LSP API; the status and the JSON answer.
async fn call(
    public_api: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let http = reqwest::Client::new();
    let url = format!("{public_api}{path}");
    let body_sent = body.is_some();
    let request = match body {
        Some(body) => http.post(url).json(&body),
        None => http.get(url),
    };
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    let answer: serde_json::Value = response.json().await.expect("a JSON answer");
    let document = lsp_node::http::public::openapi::document();
    let method = if body_sent { "POST" } else { "GET" };
    if let Err(drift) =
        common::openapi_conformance::check_answer(&document, method, path, status, &answer)
    {
        panic!("the answer is not what docs/openapi.json promises: {drift}\n{answer}");
    }
    (status, answer)
}

/// Waits for the order `token` claims to be OPENING; returns it and its funding txid.
async fn wait_opening(public_api: &str, token: &str) -> (serde_json::Value, bitcoin::Txid) {
    let opening = wait_state(public_api, token, "OPENING").await;
    let funding = opening["channel_open_tx"]["transaction_id"]
        .as_str()
        .expect("a funding transaction")
        .parse()
        .expect("a txid");
    (opening, funding)
}

async fn wait_state(public_api: &str, token: &str, state: &str) -> serde_json::Value {
    wait_for(&format!("the order to be {state}"), DEADLINE, || async {
        let (_, order) = call(
            public_api,
            &format!("/channel/order?order_id={token}"),
            None,
        )
        .await;
        (order["state"] == state).then_some(order)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_the_open_lsp_api_sells_a_channel_paid_by_one_node_and_finalised_for_another() {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        operator,
        public_api,
        client: payer,
        ..
    } = ClientScene::start_with(2_000_000, |config| {
        // The test polls the order; the per-address limits are another test's subject.
        config.http.limits.rate_limit_burst = 10_000;
        config.http.limits.rate_limit_per_minute = 60_000;
    })
    .await;
    let receiver_dir = tempfile::tempdir().unwrap();
    let receiver = Arc::new(start_ldk_node(&devchain, receiver_dir.path(), |_| {}));
    let receiver_uri = format!(
        "{}@{}",
        receiver.node_id(),
        receiver.listening_addresses().unwrap()[0]
    );

    let (status, info) = call(&public_api, "/node/info", None).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["node_id"], lsp.node_id().to_string());
    assert!(info["max_remote_balance"].as_u64().unwrap() > 100_000);

    // Bad input: this API's fields named, nothing created.
    let buy = |body: serde_json::Value| call(&public_api, "/channel/buy", Some(body));
    for (body, status, code, property) in [
        (
            serde_json::json!({ "channel_expiry": 2 }),
            400,
            -32602,
            "remote_balance",
        ),
        (
            serde_json::json!({ "remote_balance": 100_000 }),
            400,
            -32602,
            "channel_expiry",
        ),
        (
            serde_json::json!({ "remote_balance": 100_000, "channel_expiry": 0 }),
            400,
            -32602,
            "channel_expiry",
        ),
        (
            serde_json::json!({ "remote_balance": "lots", "channel_expiry": 2 }),
            400,
            -32602,
            "remote_balance",
        ),
        (
            serde_json::json!({ "remote_balance": 10, "channel_expiry": 2 }),
            400,
            100,
            "remote_balance",
        ),
        (
            serde_json::json!({ "remote_balance": 100_000, "channel_expiry": 99_999 }),
            400,
            100,
            "channel_expiry",
        ),
        (
            serde_json::json!({ "remote_balance": 100_000, "channel_expiry": 2, "private": "yes" }),
            400,
            -32602,
            "private",
        ),
        (
            serde_json::json!({ "remote_balance": 100_000, "channel_expiry": 2, "refund_address": "bc1qnope" }),
            400,
            -32602,
            "refund_address",
        ),
    ] {
        let (got, answer) = buy(body.clone()).await;
        assert_eq!(
            (got, &answer["code"], &answer["data"]["property"]),
            (
                status,
                &serde_json::json!(code),
                &serde_json::json!(property)
            ),
            "{body} -> {answer}"
        );
    }
    let (got, unknown) =
        buy(serde_json::json!({ "remote_balance": 100_000, "channel_expiry": 2, "node": "x" }))
            .await;
    assert_eq!(
        (got, &unknown["data"]["unrecognized"]),
        (400, &serde_json::json!(["node"]))
    );

    let (status, quote) =
        buy(serde_json::json!({ "remote_balance": 100_000, "channel_expiry": 2 })).await;
    assert_eq!(status, 200, "{quote}");
    let token = quote["order_id"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 64);
    assert_eq!(
        quote["btc_address"], "",
        "no refund address, no on-chain payment"
    );
    let created = wait_state(&public_api, &token, "CREATED").await;
    let listed: Vec<lsp_node::api::OrderSummary> = operator.get("/v1/orders").await.unwrap();
    let summary = listed
        .iter()
        .find(|o| o.source == "open_lsp")
        .expect("listed with its source");
    assert_eq!(summary.client_node_id, None, "unclaimed");
    assert_eq!(created["remote_balance"], 100_000);
    assert_eq!(created["channel_expiry"], 2);
    assert_eq!(created["total_amount"], quote["total_amount"]);
    assert_eq!(created["remote_node"], serde_json::Value::Null);

    let invoice =
        serde_json::json!({ "payment": { "bolt11": { "invoice": quote["ln_invoice"] } } });
    let payment = pay_order_over_lightning(&payer, &invoice).await;
    let paid = wait_state(&public_api, &token, "PAID").await;
    assert_eq!(paid["amount_received"], quote["total_amount"]);

    let finalise =
        |body: serde_json::Value| call(&public_api, "/channel/manual_finalise", Some(body));
    let (status, refused) =
        finalise(serde_json::json!({ "order_id": "00".repeat(32), "remote_id": receiver_uri }))
            .await;
    assert_eq!((status, &refused["code"]), (404, &serde_json::json!(101)));
    let (status, refused) =
        finalise(serde_json::json!({ "order_id": token, "remote_id": "nobody@127.0.0.1:9" })).await;
    assert_eq!(
        (status, &refused["data"]["property"]),
        (400, &serde_json::json!("remote_id"))
    );
    let (status, finalised) =
        finalise(serde_json::json!({ "order_id": token, "remote_id": receiver_uri })).await;
    assert_eq!(status, 200, "{finalised}");
    assert_eq!(
        finalised["remote_node"]["pubkey"],
        receiver.node_id().to_string()
    );
    let (status, again) =
        finalise(serde_json::json!({ "order_id": token, "remote_id": receiver_uri })).await;
    assert_eq!(
        (status, &again["code"]),
        (403, &serde_json::json!(1)),
        "claimed once: {again}"
    );

    // The LSP dials the named node and opens its channel; the payer's HTLC is claimed.
    let (_, funding) = wait_opening(&public_api, &token).await;
    wait_for_tx_in_mempool(&devchain, &funding, "the funding transaction").await;
    devchain.mine(6);
    wait_state(&public_api, &token, "OPEN").await;
    wait_payment_status(
        &payer,
        &payment,
        ldk_node::payment::PaymentStatus::Succeeded,
        "the payer's HTLC to be claimed",
    )
    .await;
    wait_sold_channel_usable(&receiver, funding).await;
    receiver.stop().unwrap();
    payer.stop().unwrap();
    lsp.stop().await.unwrap();
}

/// A plain GET of `url`, as an LNURL wallet makes it.
async fn lnurl_get(url: &str) -> serde_json::Value {
    let response = reqwest::get(url).await.expect("the LNURL service answers");
    assert_eq!(response.status().as_u16(), 200, "LNURL answers are 200");
    response.json().await.expect("a JSON answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_lnurl_channel_opens_a_private_channel_to_the_wallet_that_calls_back() {
    let ClientScene {
        _dirs,
        devchain,
        lsp,
        public_api,
        client: payer,
        ..
    } = ClientScene::start(2_000_000).await;
    let (_, quote) = call(
        &public_api,
        "/channel/buy",
        Some(serde_json::json!({ "remote_balance": 100_000, "channel_expiry": 2 })),
    )
    .await;
    let lnurl = quote["lnurl_channel"]
        .as_str()
        .expect("an LNURL on regtest");
    let (hrp, data) = bitcoin::bech32::decode(lnurl).expect("a bech32 LNURL (LUD-01)");
    assert!(hrp.as_str().eq_ignore_ascii_case("lnurl"), "{hrp}");
    let url = String::from_utf8(data).unwrap();
    assert!(url.starts_with(&public_api), "{url}");
    let invoice =
        serde_json::json!({ "payment": { "bolt11": { "invoice": quote["ln_invoice"] } } });
    let payment = pay_order_over_lightning(&payer, &invoice).await;

    // The wallet reads the channel request, connects to the LSP, then calls back.
    let request = lnurl_get(&url).await;
    assert_eq!(request["tag"], "channelRequest");
    assert_eq!(request["k1"], quote["order_id"]);
    let uri = request["uri"].as_str().unwrap();
    let (node, address) = uri.split_once('@').unwrap();
    assert_eq!(node, lsp.node_id().to_string());
    let wallet_dir = tempfile::tempdir().unwrap();
    let wallet = Arc::new(start_ldk_node(&devchain, wallet_dir.path(), |_| {}));
    wallet
        .connect(node.parse().unwrap(), address.parse().unwrap(), true)
        .expect("the wallet connects to the uri");
    let callback = request["callback"].as_str().unwrap();
    let unknown = lnurl_get(&format!(
        "{callback}?k1={}&remoteid={}&private=1",
        "00".repeat(32),
        wallet.node_id()
    ))
    .await;
    assert_eq!(unknown["status"], "ERROR");
    let answer = lnurl_get(&format!(
        "{callback}?k1={}&remoteid={}&private=1",
        request["k1"].as_str().unwrap(),
        wallet.node_id()
    ))
    .await;
    assert_eq!(answer, serde_json::json!({ "status": "OK" }));
    let again = lnurl_get(&format!(
        "{callback}?k1={}&remoteid={}&private=1",
        request["k1"].as_str().unwrap(),
        payer.node_id()
    ))
    .await;
    assert_eq!(again["status"], "ERROR", "claimed once: {again}");
    assert_eq!(lnurl_get(&url).await["status"], "ERROR");

    let token = quote["order_id"].as_str().unwrap();
    let (opening, funding) = wait_opening(&public_api, token).await;
    assert_eq!(
        opening["remote_node"]["pubkey"],
        wallet.node_id().to_string()
    );
    assert_eq!(opening["lnurl"]["lnurl"], quote["lnurl_channel"]);
    wait_for_tx_in_mempool(&devchain, &funding, "the funding transaction").await;
    devchain.mine(6);
    let channel = wait_sold_channel_usable(&wallet, funding).await;
    assert!(!channel.is_announced, "a private channel");
    wait_payment_status(
        &payer,
        &payment,
        ldk_node::payment::PaymentStatus::Succeeded,
        "the payer's HTLC to be claimed",
    )
    .await;
    wallet.stop().unwrap();
    payer.stop().unwrap();
    lsp.stop().await.unwrap();
}

/// Buys a two-week pay-first channel over the open LSP API at `public_api` and pays it from
/// `payer`; returns the claim token and the payment, once the order reads PAID.
async fn buy_and_pay(
    public_api: &str,
    payer: &Arc<ldk_node::Node>,
) -> (String, ldk_node::lightning::ln::channelmanager::PaymentId) {
    let (status, quote) = call(
        public_api,
        "/channel/buy",
        Some(serde_json::json!({ "remote_balance": 100_000, "channel_expiry": 2 })),
    )
    .await;
    assert_eq!(status, 200, "{quote}");
    let token = quote["order_id"].as_str().unwrap().to_string();
    let invoice =
        serde_json::json!({ "payment": { "bolt11": { "invoice": quote["ln_invoice"] } } });
    let payment = pay_order_over_lightning(payer, &invoice).await;
    wait_state(public_api, &token, "PAID").await;
    (token, payment)
}

/// A claim naming a node that never connects: the order gives up after the open timeout,
/// counted from the claim, and the HTLC goes back to the payer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_claim_for_a_node_that_never_connects_gives_up_and_returns_the_payment() {
    let ClientScene {
        _dirs,
        devchain: _devchain,
        lsp,
        public_api,
        client: payer,
        ..
    } = ClientScene::start_with(2_000_000, |config| {
        config.lsps1.open_timeout_secs = 3;
        config.http.limits.rate_limit_burst = 10_000;
        config.http.limits.rate_limit_per_minute = 60_000;
    })
    .await;
    let (token, payment) = buy_and_pay(&public_api, &payer).await;
    let absent = bitcoin::secp256k1::PublicKey::from_secret_key(
        &bitcoin::secp256k1::Secp256k1::new(),
        &bitcoin::secp256k1::SecretKey::from_slice(&[9; 32]).unwrap(),
    );
    let (status, finalised) = call(
        &public_api,
        "/channel/manual_finalise",
        Some(serde_json::json!({ "order_id": token, "remote_id": absent.to_string() })),
    )
    .await;
    assert_eq!(
        (status, &finalised["state"]),
        (200, &serde_json::json!("URI_SET"))
    );
    wait_payment_status(
        &payer,
        &payment,
        ldk_node::payment::PaymentStatus::Failed,
        "the HTLC to go back after the open timeout",
    )
    .await;
    let (_, order) = call(
        &public_api,
        &format!("/channel/order?order_id={token}"),
        None,
    )
    .await;
    assert_eq!(order["state"], "GIVE_UP");
    let (status, missing) = call(&public_api, "/channel/order", None).await;
    assert_eq!(
        (status, &missing["data"]["property"]),
        (400, &serde_json::json!("order_id"))
    );
    payer.stop().unwrap();
    lsp.stop().await.unwrap();
}

/// The real binary is killed (SIGKILL) while a pay-first order is paid and unclaimed; started
/// again, the claim names the node, the channel opens and the held HTLC is claimed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_sigkill_between_payment_and_claim_loses_nothing() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let config = regtest_config(&dir.path().join("data"), &devchain.base_url(), 1);
    let mut lsp = NodeProcess::spawn(dir.path(), &config, &[]);
    let operator = lsp.wait_running(DEADLINE).await;
    fund(&devchain, &operator, 2_000_000).await;
    let payer_dir = tempfile::tempdir().unwrap();
    let payer = Arc::new(start_ldk_node(&devchain, payer_dir.path(), |_| {}));
    open_channel_to_ldk(&devchain, &operator, &payer, 400_000, PUSH_MSAT).await;
    let (token, payment) = buy_and_pay(&lsp.public_api_url(), &payer).await;

    lsp.kill();
    let mut lsp = NodeProcess::spawn(dir.path(), &config, &[]);
    let operator = lsp.wait_running(DEADLINE).await;
    let public_api = lsp.public_api_url();
    assert_eq!(
        payer.payment(&payment).unwrap().status,
        ldk_node::payment::PaymentStatus::Pending,
        "the HTLC is still held"
    );
    let receiver_dir = tempfile::tempdir().unwrap();
    let receiver = Arc::new(start_ldk_node(&devchain, receiver_dir.path(), |_| {}));
    let receiver_uri = format!(
        "{}@{}",
        receiver.node_id(),
        receiver.listening_addresses().unwrap()[0]
    );
    let (status, finalised) = call(
        &public_api,
        "/channel/manual_finalise",
        Some(serde_json::json!({ "order_id": token, "remote_id": receiver_uri })),
    )
    .await;
    assert_eq!(status, 200, "{finalised}");
    let (_, funding) = wait_opening(&public_api, &token).await;
    wait_for_tx_in_mempool(&devchain, &funding, "the funding transaction").await;
    devchain.mine(6);
    operator.sync().await;
    wait_payment_status(
        &payer,
        &payment,
        ldk_node::payment::PaymentStatus::Succeeded,
        "the held HTLC to be claimed after the restart",
    )
    .await;
    wait_sold_channel_usable(&receiver, funding).await;
    lsp.terminate(DEADLINE).await;
    receiver.stop().unwrap();
    payer.stop().unwrap();
}
