//! The public LSPS1 HTTP API (Olympus dialect) of a real node over real HTTP: `get_info`
//! advertises the node's URI and options; bad input gets the documented status and body.

mod common;

use common::*;
use lsp_node::Builder;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn olympus_get_info_and_bad_input_over_http() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let mut config = lsp_node::config::Config::regtest_ephemeral(dir.path().to_path_buf());
    config.http.listen = Some("127.0.0.1:0".parse().unwrap());
    let node = Builder::new(config).start().await.expect("node starts");
    let addr = node.http_listen_addr().expect("[http] listen was set");
    assert_ne!(
        addr.port(),
        0,
        "the bound port is reported, not the configured 0"
    );
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    let info: Value = http
        .get(format!("{base}/api/v1/get_info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info["uris"],
        json!([format!("{}@{}", node.node_id(), node.p2p_listen_addr())])
    );
    assert!(info["min_initial_lsp_balance_sat"].is_string(), "{info}");

    let malformed = http
        .post(format!("{base}/api/v1/create_order"))
        .body("{\"lsp_balance_sat\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["code"], -32700);
    assert!(body["error"].is_string() && body["message"].is_string());

    let bad_key = http
        .post(format!("{base}/api/v1/create_order"))
        .json(&json!({
            "lsp_balance_sat": "100000", "client_balance_sat": "0",
            "required_channel_confirmations": 1, "funding_confirms_within_blocks": 6,
            "channel_expiry_blocks": 13000, "announce_channel": false, "public_key": "02zz"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 400);
    let body: Value = bad_key.json().await.unwrap();
    assert_eq!(body["code"], -32602);
    assert_eq!(body["data"]["property"], "public_key");

    let unknown = http
        .get(format!("{base}/api/v1/get_order?order_id=nosuchorder"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["code"], 101);

    let oversized = http
        .post(format!("{base}/api/v1/create_order"))
        .header("content-type", "application/json")
        .body(format!("{{\"pad\": \"{}\"}}", "x".repeat(64 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 413);
    let orders = node
        .order_service()
        .unwrap()
        .order_book()
        .orders(&Default::default())
        .unwrap();
    assert!(orders.is_empty(), "no refused request stored an order");

    node.stop().await.unwrap();
}
