//! The operator API router over real HTTP: key check before anything else, every route reaching
//! the API with the request as sent, errors as one-sentence JSON bodies, and the key file.

#[path = "admin_support/mod.rs"]
mod admin_support;

use admin_support::{serve, FakeApi, FAKE_ADDRESS, FAKE_NODE_ID, FAKE_TXID};
use lsp_node::api::keys::{self, load_or_create_api_key, AdminError};
use lsp_node::api::{OperatorError, API_KEY_HEADER};
use lsp_node::http::admin;
use serde_json::{json, Value};

const KEY: &str = "3f5c2a9e8d7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa998877";

/// Every route of the contract, with a valid request body where one is needed.
fn routes() -> Vec<(&'static str, &'static str, Option<Value>)> {
    vec![
        ("GET", "/v1/info", None),
        ("GET", "/v1/balance", None),
        ("POST", "/v1/address", None),
        (
            "POST",
            "/v1/send",
            Some(json!({"address": FAKE_ADDRESS, "amount_sat": 5000})),
        ),
        ("GET", "/v1/peers", None),
        (
            "POST",
            "/v1/peers",
            Some(json!({"node_id": FAKE_NODE_ID, "address": "127.0.0.1:9736"})),
        ),
        ("GET", "/v1/channels", None),
        (
            "POST",
            "/v1/channels",
            Some(json!({"node_id": FAKE_NODE_ID, "capacity_sat": 100000})),
        ),
        (
            "POST",
            "/v1/channels/close",
            Some(json!({"channel_id": "aa", "counterparty_node_id": FAKE_NODE_ID})),
        ),
        ("GET", "/v1/payments", None),
        (
            "POST",
            "/v1/invoices",
            Some(json!({"amount_msat": 1000, "description": "coffee"})),
        ),
        ("POST", "/v1/pay", Some(json!({"invoice": "lnbcrt1fake"}))),
        ("POST", "/v1/sync", None),
        ("GET", "/v1/orders?state=COMPLETED&limit=5", None),
        ("GET", "/v1/orders/a3a06afbd700e7b94c38c2f5a4b94a1d", None),
        (
            "POST",
            "/v1/orders/cancel",
            Some(json!({"order_id": "a3a06afbd700e7b94c38c2f5a4b94a1d"})),
        ),
        (
            "POST",
            "/v1/orders/rescan",
            Some(json!({"order_id": "a3a06afbd700e7b94c38c2f5a4b94a1d"})),
        ),
        (
            "GET",
            "/v1/leases?state=ACTIVE&ending_within_blocks=144",
            None,
        ),
        (
            "POST",
            "/v1/leases/close",
            Some(json!({"order_id": "a3a06afbd700e7b94c38c2f5a4b94a1d", "force": true})),
        ),
        (
            "POST",
            "/v1/leases/keep",
            Some(json!({"order_id": "a3a06afbd700e7b94c38c2f5a4b94a1d"})),
        ),
        ("GET", "/v1/coupons", None),
        (
            "POST",
            "/v1/coupons",
            Some(json!({"code": "FRIENDS", "percent": 50})),
        ),
        (
            "POST",
            "/v1/coupons/delete",
            Some(json!({"code": "FRIENDS"})),
        ),
        ("GET", "/v1/customers", None),
        (
            "POST",
            "/v1/customers",
            Some(json!({"name": "Acme wallet"})),
        ),
        (
            "POST",
            "/v1/customers/disable",
            Some(json!({"customer": "Acme wallet", "disabled": true})),
        ),
        (
            "POST",
            "/v1/customers/delete",
            Some(json!({"customer": "Acme wallet"})),
        ),
        (
            "POST",
            "/v1/customers/rotate-key",
            Some(json!({"customer": "Acme wallet"})),
        ),
        (
            "POST",
            "/v1/customers/terms",
            Some(json!({"customer": "Acme wallet", "requests_per_minute": 600})),
        ),
        ("GET", "/v1/customers/Acme%20wallet/credit", None),
        (
            "POST",
            "/v1/customers/credit",
            Some(
                json!({"customer": "Acme wallet", "amount_sat": -500, "reason": "refunded by hand"}),
            ),
        ),
        (
            "POST",
            "/v1/customers/coupons",
            Some(json!({"customer": "Acme wallet", "amount_sat": 5000})),
        ),
    ]
}

async fn call(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{base}{path}");
    let mut request = match method {
        "GET" => client.get(url),
        "POST" => client.post(url),
        other => panic!("unexpected method {other}"),
    };
    if let Some(key) = key {
        request = request.header(API_KEY_HEADER, key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request reaches the router");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("every answer is JSON");
    (status, body)
}

async fn raw_post(
    base: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("{base}{path}"))
        .header(API_KEY_HEADER, KEY)
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("request reaches the router");
    let status = response.status().as_u16();
    (status, response.json().await.expect("every answer is JSON"))
}

fn error_sentence(body: &Value) -> &str {
    let object = body.as_object().expect("error body is an object");
    assert_eq!(object.len(), 1, "error body has exactly one field: {body}");
    object["error"].as_str().expect("error is a string")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_key_are_refused_and_reach_nothing() {
    let served = serve(FakeApi::new(), KEY);
    let base = served.url();
    for (method, path, body) in routes() {
        let (status, answer) = call(&base, method, path, body.as_ref(), None).await;
        assert_eq!(status, 401, "{method} {path} without a key");
        assert!(error_sentence(&answer).contains("missing"), "{answer}");
    }
    assert!(
        served.api.calls().is_empty(),
        "no call may reach the API: {:?}",
        served.api.calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_a_wrong_key_are_refused_and_reach_nothing() {
    let served = serve(FakeApi::new(), KEY);
    let base = served.url();
    let same_length_wrong = format!("{}0", &KEY[..KEY.len() - 1]);
    assert_ne!(same_length_wrong, KEY);
    for wrong in [same_length_wrong.as_str(), "short", "", &format!("{KEY}x")] {
        for (method, path, body) in routes() {
            let (status, answer) = call(&base, method, path, body.as_ref(), Some(wrong)).await;
            assert_eq!(status, 401, "{method} {path} with key {wrong:?}");
            assert!(error_sentence(&answer).contains("wrong"), "{answer}");
        }
    }
    // A malformed body with a wrong key is refused for the key, before the body is looked at.
    let (status, _) = call(
        &base,
        "POST",
        "/v1/send",
        Some(&json!("garbage")),
        Some("nope"),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        served.api.calls().is_empty(),
        "no call may reach the API: {:?}",
        served.api.calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_reaches_the_api_with_the_request_as_sent() {
    let served = serve(FakeApi::new(), KEY);
    let base = served.url();
    let expected_methods = [
        "info",
        "balances",
        "new_address",
        "send_onchain",
        "peers",
        "connect_peer",
        "channels",
        "open_channel",
        "close_channel",
        "payments",
        "create_invoice",
        "pay_invoice",
        "sync",
        "orders",
        "order",
        "cancel_order",
        "rescan_order",
        "leases",
        "close_lease",
        "keep_lease",
        "coupons",
        "create_coupon",
        "delete_coupon",
        "customers",
        "add_customer",
        "disable_customer",
        "delete_customer",
        "rotate_customer_key",
        "set_customer_terms",
        "customer_credit",
        "adjust_credit",
        "issue_credit_coupon",
    ];
    for (method, path, body) in routes() {
        let (status, _) = call(&base, method, path, body.as_ref(), Some(KEY)).await;
        assert_eq!(status, 200, "{method} {path}");
    }
    let calls = served.api.calls();
    let names: Vec<&str> = calls.iter().map(|c| c.method).collect();
    assert_eq!(names, expected_methods);

    // Requests arrive with the fields sent and the contract's defaults for the rest.
    assert_eq!(
        calls[3].request,
        json!({"address": FAKE_ADDRESS, "amount_sat": 5000, "send_all": false,
               "fee_rate_sat_per_vb": null})
    );
    assert_eq!(
        calls[7].request,
        json!({"node_id": FAKE_NODE_ID, "address": null, "capacity_sat": 100000,
               "push_msat": 0, "announce": false})
    );
    assert_eq!(calls[8].request["force"], json!(false));
    assert_eq!(
        calls[13].request,
        json!({"state": "COMPLETED", "client_node_id": null, "created_from": null,
               "created_until": null, "limit": 5, "stuck": null})
    );
    assert_eq!(calls[14].request, json!("a3a06afbd700e7b94c38c2f5a4b94a1d"));
    assert_eq!(
        calls[16].request,
        json!({"order_id": "a3a06afbd700e7b94c38c2f5a4b94a1d"})
    );
    assert_eq!(
        calls[17].request,
        json!({"state": "ACTIVE", "ending_within_blocks": 144})
    );
    assert_eq!(calls[18].request["force"], json!(true));
    assert_eq!(
        calls[21].request,
        json!({"code": "FRIENDS", "percent": 50, "fixed_sat": null, "max_uses": null,
               "expires_at": null})
    );

    // Answers are the API's values, serialized with the contract's field names.
    let (_, info) = call(&base, "GET", "/v1/info", None, Some(KEY)).await;
    assert_eq!(info["node_id"], FAKE_NODE_ID);
    assert_eq!(info["block_height"], 144);
    let (_, sent) = call(&base, "POST", "/v1/send", routes()[3].2.as_ref(), Some(KEY)).await;
    assert_eq!(sent, json!({"txid": FAKE_TXID}));
    let (_, balance) = call(&base, "GET", "/v1/balance", None, Some(KEY)).await;
    assert_eq!(
        balance,
        json!({"onchain_confirmed_sat": 1_500_000, "onchain_unconfirmed_sat": 20_000,
               "lightning_sat": 300_000})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_errors_keep_their_status_and_sentence() {
    let cases = [
        (
            OperatorError::InvalidRequest("The address is not a regtest address.".into()),
            400,
        ),
        (
            OperatorError::NotFound("No channel with that id exists.".into()),
            404,
        ),
        (
            OperatorError::Unavailable("The wallet holds only 1000 sats.".into()),
            409,
        ),
        (
            OperatorError::Internal("The store could not be written.".into()),
            500,
        ),
    ];
    for (error, status) in cases {
        let served = serve(FakeApi::new(), KEY);
        served.api.fail_with(error.clone());
        for (method, path, body) in routes() {
            let (got, answer) = call(&served.url(), method, path, body.as_ref(), Some(KEY)).await;
            assert_eq!(got, status, "{method} {path} failing with {error:?}");
            assert_eq!(error_sentence(&answer), error.to_string());
        }
        assert_eq!(served.api.calls().len(), routes().len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_one_sentence_and_reach_nothing() {
    let served = serve(FakeApi::new(), KEY);
    let base = served.url();
    let json_type = Some("application/json");

    let (status, answer) = raw_post(&base, "/v1/send", json_type, b"{\"address\": ".to_vec()).await;
    assert_eq!(status, 400);
    assert!(
        error_sentence(&answer).starts_with("The request body is not valid JSON"),
        "{answer}"
    );

    let wrong_type = br#"{"address": "x", "amount_sat": "lots"}"#.to_vec();
    let (status, answer) = raw_post(&base, "/v1/send", json_type, wrong_type).await;
    assert_eq!(status, 400);
    let sentence = error_sentence(&answer);
    assert!(
        sentence.starts_with("The request body does not have the expected fields"),
        "{sentence}"
    );
    assert!(
        sentence.contains("amount_sat"),
        "names the field: {sentence}"
    );

    let missing = br#"{"capacity_sat": 100000}"#.to_vec();
    let (status, answer) = raw_post(&base, "/v1/channels", json_type, missing).await;
    assert_eq!(status, 400);
    assert!(error_sentence(&answer).contains("node_id"), "{answer}");

    let (status, answer) = raw_post(&base, "/v1/pay", None, br#"{"invoice": "x"}"#.to_vec()).await;
    assert_eq!(status, 415);
    assert!(
        error_sentence(&answer).contains("content-type: application/json"),
        "{answer}"
    );

    let huge = serde_json::to_vec(&json!({"invoice": "l".repeat(admin::MAX_BODY_BYTES)})).unwrap();
    let (status, answer) = raw_post(&base, "/v1/pay", json_type, huge).await;
    assert_eq!(status, 413);
    assert!(error_sentence(&answer).contains("larger than"), "{answer}");

    assert!(
        served.api.calls().is_empty(),
        "no call may reach the API: {:?}",
        served.api.calls()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_answer_in_json() {
    let served = serve(FakeApi::new(), KEY);
    let (status, answer) = call(&served.url(), "GET", "/v1/nothing", None, Some(KEY)).await;
    assert_eq!(status, 404);
    error_sentence(&answer);
    let (status, answer) = call(&served.url(), "GET", "/v1/send", None, Some(KEY)).await;
    assert_eq!(status, 405);
    error_sentence(&answer);
    assert!(served.api.calls().is_empty());
}

#[test]
fn a_missing_key_file_is_created_private_and_then_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let key = load_or_create_api_key(&data_dir, None).unwrap();
    assert_eq!(key.len(), 64);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    let path = data_dir.join(keys::API_KEY_FILE);
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Nothing but the key file is left behind (no temp file).
    let entries: Vec<_> = std::fs::read_dir(&data_dir).unwrap().collect();
    assert_eq!(entries.len(), 1);

    assert_eq!(
        load_or_create_api_key(&data_dir, None).unwrap(),
        key,
        "the same key next start"
    );
    let other = load_or_create_api_key(&tempfile::tempdir().unwrap().path().join("d"), None);
    assert_ne!(other.unwrap(), key, "keys are random");
}

#[test]
fn a_configured_key_is_used_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let key = load_or_create_api_key(dir.path(), Some("operator-chosen-key")).unwrap();
    assert_eq!(key, "operator-chosen-key");
    assert!(!dir.path().join(keys::API_KEY_FILE).exists());
    assert!(matches!(
        load_or_create_api_key(dir.path(), Some("")),
        Err(AdminError::InvalidConfiguredKey(_))
    ));
    assert!(matches!(
        load_or_create_api_key(dir.path(), Some("has space")),
        Err(AdminError::InvalidConfiguredKey(_))
    ));
}

#[test]
fn an_existing_bad_key_file_is_an_error_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(keys::API_KEY_FILE);

    std::fs::write(&path, "  \n").unwrap();
    let err = load_or_create_api_key(dir.path(), None).unwrap_err();
    assert!(matches!(err, AdminError::KeyFileInvalid { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "  \n",
        "file untouched"
    );

    std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
    let err = load_or_create_api_key(dir.path(), None).unwrap_err();
    assert!(matches!(err, AdminError::KeyFileUnreadable { .. }), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        [0xff, 0xfe, 0x00],
        "file untouched"
    );

    // A path that cannot be read as a file (here a directory) is refused, not replaced.
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    let err = load_or_create_api_key(dir.path(), None).unwrap_err();
    assert!(matches!(err, AdminError::KeyFileUnreadable { .. }), "{err}");
    assert!(
        err.to_string().contains(keys::API_KEY_FILE),
        "names the file: {err}"
    );
    assert!(path.is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_behind_the_key_given_either_way() {
    let served = serve(FakeApi::new(), KEY);
    let url = format!("{}/metrics", served.url());
    let client = reqwest::Client::new();

    let (status, answer) = call(&served.url(), "GET", "/metrics", None, None).await;
    assert_eq!(status, 401);
    assert!(error_sentence(&answer).contains("missing"), "{answer}");
    let wrong = client
        .get(&url)
        .bearer_auth("not-the-key")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(served.api.calls().is_empty(), "{:?}", served.api.calls());

    for request in [
        client.get(&url).header(API_KEY_HEADER, KEY),
        client.get(&url).bearer_auth(KEY),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let text = response.text().await.unwrap();
        for line in [
            "lsp_block_height 144",
            "lsp_broadcasts_open{state=\"sending\"} 1",
            "lsp_orders{state=\"CREATED\"} 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
    }
    let names: Vec<&str> = served.api.calls().iter().map(|c| c.method).collect();
    assert_eq!(names, ["metrics", "metrics"]);
}
