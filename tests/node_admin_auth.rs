//! The operator API of a real node (embedded devchain) rejects missing and wrong API keys with
//! 401 and changes nothing.

mod common;

use common::*;
use lsp_node::api::*;
use lsp_node::Builder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_api_rejects_missing_and_wrong_keys_without_side_effects() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let node = Builder::new(lsp_node::config::Config::regtest_ephemeral(
        dir.path().to_path_buf(),
    ))
    .start()
    .await
    .expect("node starts");
    assert!(
        node.devchain().is_some(),
        "chain.source = dev starts the embedded devchain"
    );
    let base = format!("http://{}", node.admin_listen_addr());
    let http = reqwest::Client::new();
    let other = tempfile::tempdir().unwrap();
    let peer = Builder::new(lsp_node::config::Config::regtest_ephemeral(
        other.path().to_path_buf(),
    ))
    .start()
    .await
    .expect("peer starts");
    let connect = ConnectPeer {
        node_id: peer.node_id().to_string(),
        address: peer.p2p_listen_addr().to_string(),
    };

    let missing = http.get(format!("{base}/v1/info")).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 401);
    let wrong = http
        .get(format!("{base}/v1/info"))
        .header(API_KEY_HEADER, "not-the-key")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let body: ErrorBody = wrong.json().await.expect("401 carries a JSON error body");
    assert!(!body.error.is_empty());

    let wrong_connect = http
        .post(format!("{base}/v1/peers"))
        .header(API_KEY_HEADER, format!("{}x", node.admin_api_key()))
        .json(&connect)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_connect.status().as_u16(), 401);
    let unkeyed_connect = http
        .post(format!("{base}/v1/peers"))
        .json(&connect)
        .send()
        .await
        .unwrap();
    assert_eq!(unkeyed_connect.status().as_u16(), 401);

    // Nothing happened: no peer, and the right key works.
    let operator = Operator::for_node(&node);
    let peers: Vec<PeerInfo> = operator.get("/v1/peers").await.expect("peers with the key");
    assert!(
        peers.is_empty(),
        "a rejected call must not connect: {peers:?}"
    );
    let info = operator.info().await;
    assert_eq!(info.node_id, node.node_id().to_string());
    assert_eq!(info.network, "regtest");

    // And the same call with the key does connect.
    let _: Empty = operator
        .post("/v1/peers", &connect)
        .await
        .expect("connect with the key");
    let peers: Vec<PeerInfo> = operator.get("/v1/peers").await.unwrap();
    assert!(peers
        .iter()
        .any(|p| p.node_id == connect.node_id && p.connected));

    node.stop().await.unwrap();
    peer.stop().await.unwrap();
}
