//! The sandbox: the real binary on its embedded devchain (`chain.source = "dev"`), whose
//! control and Esplora routes the tests reach over HTTP.

use std::path::Path;

use serde_json::{json, Value};

use super::free_local_address;
use super::process::regtest_config;

/// The embedded devchain's control and Esplora routes, over HTTP.
pub struct Sandbox {
    pub url: String,
    http: reqwest::Client,
}

impl Sandbox {
    /// A regtest config (as [`regtest_config`], data in `dir/data`) on the embedded devchain,
    /// and the sandbox it serves.
    pub fn config(dir: &Path) -> (String, Sandbox) {
        let dev_listen = free_local_address().to_string();
        let config = regtest_config(&dir.join("data"), "unused", 1).replace(
            "source = \"esplora\"\nesplora_url = \"unused\"",
            &format!("source = \"dev\"\ndev_listen = \"{dev_listen}\""),
        );
        let sandbox = Sandbox {
            url: format!("http://{dev_listen}"),
            http: reqwest::Client::new(),
        };
        (config, sandbox)
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("devchain reachable");
        assert!(response.status().is_success(), "{path}: {response:?}");
        response.json().await.expect("JSON answer")
    }

    pub async fn get(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("devchain reachable")
            .text()
            .await
            .expect("text answer")
    }

    pub async fn mine(&self, blocks: u32) {
        self.post("/dev/mine", json!({ "blocks": blocks })).await;
    }

    /// Pays `sats` to `address` from the faucet (unconfirmed).
    pub async fn fund(&self, address: &str, sats: u64) {
        self.post("/dev/fund", json!({ "address": address, "sats": sats }))
            .await;
    }

    /// The txids in the devchain's mempool.
    pub async fn mempool(&self) -> Vec<String> {
        serde_json::from_str(&self.get("/mempool/txids").await).expect("a txid list")
    }

    pub async fn tip(&self) -> (String, String) {
        (
            self.get("/blocks/tip/height").await,
            self.get("/blocks/tip/hash").await,
        )
    }
}
