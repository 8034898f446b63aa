//! The real `lsp-node devchain --data-dir DIR` process: SIGKILLed right after its answers, it
//! comes back from DIR with the same tip and the same transactions.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use bitcoin::{Address, CompressedPublicKey, Network, PrivateKey};
use common::process::NodeProcess;
use common::DEADLINE;
use serde_json::{json, Value};

/// Starts the standalone devchain on `dir`; its Esplora base URL, from its log.
async fn spawn_devchain(dir: &Path) -> (NodeProcess, String) {
    let args = [
        OsStr::new("devchain"),
        OsStr::new("--listen"),
        OsStr::new("127.0.0.1:0"),
        OsStr::new("--data-dir"),
        dir.as_os_str(),
    ];
    let mut process = NodeProcess::spawn_args(&args, &[("NO_COLOR", "1")]);
    let line = process.wait_log_line("devchain started", DEADLINE).await;
    let url = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("url="))
        .unwrap_or_else(|| panic!("no url in {line}"))
        .to_string();
    (process, url)
}

async fn get(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.text().await.unwrap()
}

async fn post(http: &reqwest::Client, url: &str, body: Value) -> Value {
    let response = http.post(url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200, "POST {url}");
    response.json().await.unwrap()
}

fn address(seed: u8) -> Address {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let key = PrivateKey::from_slice(&[seed; 32], Network::Regtest).unwrap();
    let public = CompressedPublicKey::from_private_key(&secp, &key).unwrap();
    Address::p2wpkh(&public, Network::Regtest)
}

#[tokio::test]
async fn a_killed_devchain_comes_back_with_its_tip_and_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let (mut process, url) = spawn_devchain(dir.path()).await;
    assert!(dir.path().join("devchain.sqlite").exists());

    let fund = |seed: u8| json!({"address": address(seed).to_string(), "sats": 50_000});
    let confirmed = post(&http, &format!("{url}/dev/fund"), fund(1)).await["txid"].clone();
    post(&http, &format!("{url}/dev/mine"), json!({"blocks": 3})).await;
    let stale =
        post(&http, &format!("{url}/dev/mine"), json!({"blocks": 1})).await["hashes"][0].clone();
    post(&http, &format!("{url}/dev/reorg"), json!({"depth": 1})).await;
    let waiting = post(&http, &format!("{url}/dev/fund"), fund(2)).await["txid"].clone();
    let height = get(&http, &format!("{url}/blocks/tip/height")).await;
    let hash = get(&http, &format!("{url}/blocks/tip/hash")).await;
    let confirmed_status = get(
        &http,
        &format!("{url}/tx/{}/status", confirmed.as_str().unwrap()),
    )
    .await;
    // No shutdown: SIGKILL right after the last answer.
    process.kill();

    let (_process, url) = spawn_devchain(dir.path()).await;
    assert_eq!(
        get(&http, &format!("{url}/blocks/tip/height")).await,
        height
    );
    assert_eq!(get(&http, &format!("{url}/blocks/tip/hash")).await, hash);
    assert_eq!(
        get(
            &http,
            &format!("{url}/tx/{}/status", confirmed.as_str().unwrap())
        )
        .await,
        confirmed_status
    );
    let mempool: Value =
        serde_json::from_str(&get(&http, &format!("{url}/mempool/txids")).await).unwrap();
    assert_eq!(mempool, json!([waiting]));
    let stale_status: Value = serde_json::from_str(
        &get(
            &http,
            &format!("{url}/block/{}/status", stale.as_str().unwrap()),
        )
        .await,
    )
    .unwrap();
    assert_eq!(stale_status, json!({"in_best_chain": false}));
}
