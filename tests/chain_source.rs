//! The chain source as the released binary meets it: HTTPS Esplora trusted through
//! `SSL_CERT_FILE`, a chain source that is down at start, and one that serves another chain.
//! Every node here is the real `lsp-node` process.

mod common;

use std::time::Duration;

use common::process::{regtest_config, NodeProcess};
use common::tls_proxy::TlsProxy;
use common::*;
use lsp_node::api::*;
use lsp_node::devchain::{Devchain, DevchainOptions};
use serde_json::{json, Value};

/// A valid compressed public key (the secp256k1 generator) to order a channel for.
const CLIENT_NODE_ID: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

fn order_request() -> Value {
    json!({
        "lsp_balance_sat": "100000",
        "client_balance_sat": "0",
        "required_channel_confirmations": 1,
        "funding_confirms_within_blocks": 6,
        "channel_expiry_blocks": 4320,
        "announce_channel": false,
        "public_key": CLIENT_NODE_ID,
    })
}

async fn create_order(public_api: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{public_api}/api/v1/create_order"))
        .json(&order_request())
        .send()
        .await
        .expect("public API reachable");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_https_esplora_is_used_only_when_its_ca_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let proxy = TlsProxy::start(devchain.local_addr(), dir.path()).await;
    let ca_file = proxy.ca_file.to_str().unwrap().to_string();

    let trusting_dir = dir.path().join("trusting");
    std::fs::create_dir_all(&trusting_dir).unwrap();
    let mut trusting = NodeProcess::spawn(
        &trusting_dir,
        &regtest_config(&trusting_dir.join("data"), &proxy.url, 1),
        &[("SSL_CERT_FILE", ca_file.as_str())],
    );
    let operator = trusting.wait_running(DEADLINE).await;

    // LDK's chain sync (its own HTTP client), the wallet's Esplora client and the node's
    // fee/broadcast client all cross the proxy: follow new blocks, see a payment, broadcast.
    let info = wait_synced_to_tip(&operator, &devchain).await;
    assert_eq!(info.chain_source.url, proxy.url);
    assert_eq!(info.chain_source.last_error, None);
    devchain.mine(3);
    wait_synced_to_tip(&operator, &devchain).await;
    fund(&devchain, &operator, 200_000).await;
    let to: String = operator.address().await;
    let sent: Txid = operator
        .post(
            "/v1/send",
            &SendOnchain {
                address: to,
                amount_sat: Some(50_000),
                send_all: false,
                fee_rate_sat_per_vb: None,
            },
        )
        .await
        .expect("send on-chain through the HTTPS chain source");
    let mempool = wait_for_mempool(&devchain, "the payment to reach the devchain").await;
    assert_eq!(mempool, vec![sent.txid.parse().unwrap()]);

    // The same binary without the CA refuses the proxy's certificate: it runs, syncs nothing,
    // says why, and sells nothing.
    let refusing_dir = dir.path().join("refusing");
    std::fs::create_dir_all(&refusing_dir).unwrap();
    let mut refusing = NodeProcess::spawn(
        &refusing_dir,
        &regtest_config(&refusing_dir.join("data"), &proxy.url, 1),
        &[],
    );
    let refused = refusing.wait_running(DEADLINE).await;
    let info = wait_for("the refused sync to be reported", DEADLINE, || async {
        let info = refused.info().await;
        info.chain_source.last_error.is_some().then_some(info)
    })
    .await;
    let error = info.chain_source.last_error.unwrap();
    assert!(error.contains("certificate"), "{error}");
    assert!(!info.chain_source.synced);
    let (status, body) = create_order(&refusing.public_api_url()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("not synced"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_node_started_without_its_chain_source_serves_then_syncs_and_sells() {
    let dir = tempfile::tempdir().unwrap();
    let chain_addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("http://{chain_addr}");
    let mut node = NodeProcess::spawn(
        dir.path(),
        &regtest_config(&dir.path().join("data"), &url, 4),
        &[],
    );
    let operator = node.wait_running(DEADLINE).await;

    let info = wait_for("failed syncs to be counted", DEADLINE, || async {
        let info = operator.info().await;
        (info.chain_source.consecutive_failures >= 2).then_some(info)
    })
    .await;
    assert!(!info.chain_source.synced);
    assert!(info.chain_source.failing_since.is_some());
    let error = info.chain_source.last_error.unwrap();
    assert!(error.contains("could not be reached"), "{error}");
    assert!(node
        .log_text()
        .contains("chain source unreachable at start"));
    let (status, body) = create_order(&node.public_api_url()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("not synced"), "{body}");
    // Its peers can still reach it.
    let p2p = info.listening_addresses[0].clone();
    tokio::net::TcpStream::connect(&p2p)
        .await
        .expect("the p2p listener accepts while the chain source is down");

    let devchain = Devchain::start(DevchainOptions {
        listen: chain_addr,
        block_interval: None,
        data_dir: None,
    })
    .await
    .expect("the devchain takes the chain source's address");
    let info = wait_synced_to_tip(&operator, &devchain).await;
    assert_eq!(info.chain_source.consecutive_failures, 0);
    assert_eq!(info.chain_source.last_error, None);
    assert!(node.log_text().contains("chain source reachable again"));

    fund(&devchain, &operator, 1_000_000).await;
    let (status, body) = create_order(&node.public_api_url()).await;
    assert!((200..300).contains(&status), "{status} {body}");
    assert_eq!(body["lsp_balance_sat"], "100000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_source_serving_another_network_stops_run_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let config = regtest_config(&dir.path().join("data"), &devchain.base_url(), 1)
        .replace("network = \"regtest\"", "network = \"signet\"")
        .replace("[http]\nlisten = \"127.0.0.1:0\"\n", "");
    let mut node = NodeProcess::spawn(dir.path(), &config, &[]);
    let status = node.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(2), "{}", node.log_text());
    let log = node.log_text();
    assert!(log.contains("serves another chain"), "{log}");
    assert!(log.contains("signet starts at"), "{log}");
}
