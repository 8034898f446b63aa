//! `POST /dev/reorg` and [`Devchain::reorg`] over real HTTP: every Esplora route reflects the
//! new chain at once, excluded transactions and their spenders vanish, bad requests change
//! nothing.

use bitcoin::{BlockHash, Txid};
mod common;

use common::start_devchain as start;
use common::txs::{address, outpoint_paying, spend};
use lsp_node::devchain::{Devchain, DevchainError, MAX_REORG_DEPTH};
use serde_json::{json, Value};

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(devchain: &Devchain) -> Self {
        Api {
            base: devchain.base_url(),
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, route: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{route}", self.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn text(&self, route: &str) -> String {
        let (status, body) = self.get(route).await;
        assert_eq!(status, 200, "GET {route}: {body}");
        body
    }

    async fn json(&self, route: &str) -> Value {
        serde_json::from_str(&self.text(route).await).unwrap()
    }

    async fn reorg(&self, body: &str) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}/dev/reorg", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

fn hashes(value: &Value) -> Vec<BlockHash> {
    serde_json::from_value(value.clone()).unwrap()
}

fn txids(value: &Value) -> Vec<Txid> {
    serde_json::from_value(value.clone()).unwrap()
}

/// A chain where, in the top two blocks, `payment` pays alice, `spender` spends it to bob,
/// and `moved` (to carol) with its child `moved_child` (to dave) are unrelated; `waiting`
/// spends bob's coin in the mempool and `bystander` waits there too.
struct Scene {
    payment: Txid,
    spender: Txid,
    moved: Txid,
    moved_child: Txid,
    waiting: Txid,
    bystander: Txid,
    top: Vec<BlockHash>,
}

async fn scene(devchain: &Devchain) -> Scene {
    // Deep enough that faucet coins stay mature when the reorg moves their spends lower.
    devchain.mine(10);
    let (alice, bob, carol, dave) = (address(1), address(2), address(3), address(4));
    let payment = devchain.fund(&alice, 100_000).unwrap();
    let first = devchain.mine(1)[0];
    let spender = devchain
        .send_raw(spend(
            outpoint_paying(devchain, payment, &alice),
            &bob,
            90_000,
        ))
        .unwrap();
    let moved = devchain.fund(&carol, 60_000).unwrap();
    let moved_child = devchain
        .send_raw(spend(
            outpoint_paying(devchain, moved, &carol),
            &dave,
            50_000,
        ))
        .unwrap();
    let second = devchain.mine(1)[0];
    let waiting = devchain
        .send_raw(spend(
            outpoint_paying(devchain, spender, &bob),
            &address(5),
            80_000,
        ))
        .unwrap();
    let bystander = devchain.fund(&address(6), 30_000).unwrap();
    Scene {
        payment,
        spender,
        moved,
        moved_child,
        waiting,
        bystander,
        top: vec![first, second],
    }
}

#[tokio::test]
async fn every_route_reflects_a_reorg_that_excludes_a_payment() {
    let devchain = start().await;
    let api = Api::new(&devchain);
    let s = scene(&devchain).await;
    let (old_height, old_tip) = devchain.tip();
    let old_tip_time = api.json(&format!("/block/{old_tip}")).await["timestamp"]
        .as_u64()
        .unwrap();

    let (status, body) = api
        .reorg(&json!({"depth": 2, "exclude_txids": [s.payment]}).to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let removed = hashes(&answer["removed"]);
    let added = hashes(&answer["added"]);
    assert_eq!(removed, s.top);
    assert_eq!(added.len(), 3);
    assert_eq!(
        txids(&answer["dropped"]),
        vec![s.payment, s.spender, s.waiting],
        "the excluded payment, its spender and the mempool spend of that, in order"
    );
    // The first new block sits where the first replaced one did.
    let fork = old_height - 1;
    let new_tip = old_height + 1;

    // Tip and heights.
    assert_eq!(api.text("/blocks/tip/height").await, new_tip.to_string());
    assert_eq!(api.text("/blocks/tip/hash").await, added[2].to_string());
    for (offset, hash) in added.iter().enumerate() {
        let height = fork + offset as u32;
        assert_eq!(
            api.text(&format!("/block-height/{height}")).await,
            hash.to_string()
        );
    }
    // New blocks come later than every old one, so their coinbases and hashes differ.
    let first_time = api.json(&format!("/block/{}", added[0])).await["timestamp"]
        .as_u64()
        .unwrap();
    assert!(first_time > old_tip_time);
    for (old, new) in removed.iter().zip(&added) {
        assert_ne!(old, new);
        assert_ne!(
            api.text(&format!("/block/{old}/txid/0")).await,
            api.text(&format!("/block/{new}/txid/0")).await
        );
    }

    // Moved transactions are confirmed in the first new block, in their old order.
    let txids_of_first = txids(&api.json(&format!("/block/{}/txids", added[0])).await);
    assert_eq!(
        txids_of_first[1..],
        [s.moved, s.moved_child, s.bystander],
        "moved transactions first, then the mempool"
    );
    for txid in [s.moved, s.moved_child] {
        let status = api.json(&format!("/tx/{txid}/status")).await;
        assert_eq!(status["confirmed"], true);
        assert_eq!(status["block_height"], fork);
        assert_eq!(status["block_hash"], added[0].to_string());
        let tx = api.json(&format!("/tx/{txid}")).await;
        assert_eq!(tx["status"], status);
    }
    // Excluded ones are unknown: 404 for the transaction, unconfirmed status as electrs.
    for txid in [s.payment, s.spender, s.waiting] {
        assert_eq!(api.get(&format!("/tx/{txid}")).await.0, 404);
        assert_eq!(
            api.json(&format!("/tx/{txid}/status")).await,
            json!({"confirmed": false})
        );
        assert_eq!(api.get(&format!("/tx/{txid}/outspends")).await.0, 404);
    }
    assert!(api
        .json("/mempool/txids")
        .await
        .as_array()
        .unwrap()
        .is_empty());

    // Addresses: alice's payment and bob's spend are gone, carol's coin moved and is spent.
    for gone in [address(1), address(2), address(5)] {
        assert_eq!(api.json(&format!("/address/{gone}/txs")).await, json!([]));
        assert_eq!(api.json(&format!("/address/{gone}/utxo")).await, json!([]));
    }
    let carol_txs = api.json(&format!("/address/{}/txs", address(3))).await;
    let carol_txids: Vec<&str> = carol_txs
        .as_array()
        .unwrap()
        .iter()
        .map(|tx| tx["txid"].as_str().unwrap())
        .collect();
    assert_eq!(
        carol_txids,
        [s.moved_child.to_string(), s.moved.to_string()],
        "newest first"
    );
    assert_eq!(
        api.json(&format!("/address/{}/utxo", address(3))).await,
        json!([])
    );
    let dave_utxo = api.json(&format!("/address/{}/utxo", address(4))).await;
    assert_eq!(dave_utxo[0]["txid"], s.moved_child.to_string());
    assert_eq!(dave_utxo[0]["status"]["block_hash"], added[0].to_string());

    // Outspends follow: carol's coin spent in the new block.
    let outspends = api.json(&format!("/tx/{}/outspends", s.moved)).await;
    let carol_vout = outpoint_paying(&devchain, s.moved, &address(3)).vout as usize;
    assert_eq!(outspends[carol_vout]["spent"], true);
    assert_eq!(outspends[carol_vout]["txid"], s.moved_child.to_string());
    assert_eq!(
        outspends[carol_vout]["status"]["block_hash"],
        added[0].to_string()
    );

    // Old blocks are stale; the new ones link up.
    for old in &removed {
        let status = api.json(&format!("/block/{old}/status")).await;
        assert_eq!(status, json!({"in_best_chain": false}));
    }
    let status = api.json(&format!("/block/{}/status", added[0])).await;
    assert_eq!(status["in_best_chain"], true);
    assert_eq!(status["next_best"], added[1].to_string());
    devchain.shutdown().await;
}

#[tokio::test]
async fn a_reorg_without_exclusions_moves_everything_into_the_first_new_block() {
    let devchain = start().await;
    let s = scene(&devchain).await;
    let (old_height, _) = devchain.tip();
    let outcome = devchain.reorg(1, &[]).unwrap();
    assert_eq!(outcome.removed, s.top[1..]);
    assert_eq!(outcome.added.len(), 2);
    assert!(outcome.dropped.is_empty());
    assert_eq!(devchain.tip(), (old_height + 1, outcome.added[1]));
    for txid in [s.spender, s.moved, s.moved_child, s.waiting, s.bystander] {
        assert_eq!(devchain.confirmations(&txid), Some(2), "{txid}");
    }
    assert_eq!(devchain.confirmations(&s.payment), Some(3));
    assert!(devchain.mempool_txids().is_empty());
    devchain.shutdown().await;
}

#[tokio::test]
async fn bad_reorg_requests_are_400_and_change_nothing() {
    let devchain = start().await;
    let api = Api::new(&devchain);
    let s = scene(&devchain).await;
    let tip = devchain.tip();
    let mempool = devchain.mempool_txids();
    let too_deep = MAX_REORG_DEPTH + 1;

    let cases = [
        (json!({"depth": 0}).to_string(), "at least one block"),
        (
            json!({"depth": too_deep}).to_string(),
            "at most 100 can be replaced",
        ),
        (
            json!({"depth": 1, "exclude_txids": [s.payment]}).to_string(),
            "in none of the top 1 blocks",
        ),
        (
            json!({"depth": 2, "exclude_txids": [s.waiting]}).to_string(),
            "cannot exclude",
        ),
        (
            json!({"depth": 1, "exclude_txids": ["nope"]}).to_string(),
            "Invalid transaction id",
        ),
        ("{\"depth\": -1}".to_string(), "must be JSON like"),
        ("not json".to_string(), "must be JSON like"),
    ];
    for (body, expected) in cases {
        let (status, answer) = api.reorg(&body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.contains(expected), "{body}: {answer}");
        assert!(!answer.contains('\n'), "one sentence: {answer}");
        assert_eq!(devchain.tip(), tip, "{body} changed the tip");
        assert_eq!(
            devchain.mempool_txids(),
            mempool,
            "{body} changed the mempool"
        );
    }

    // Deeper than the chain: only possible after invalidating below the reorg limit.
    devchain.invalidate(tip.0 - 50).unwrap();
    let shallow = devchain.tip();
    let (status, answer) = api.reorg(&json!({"depth": 60}).to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(
        answer,
        "cannot reorg 60 blocks: only 50 blocks sit above genesis"
    );
    assert_eq!(devchain.tip(), shallow);
    assert!(matches!(
        devchain.reorg(0, &[]),
        Err(DevchainError::ReorgEmpty)
    ));
    assert!(matches!(
        devchain.reorg(51, &[]),
        Err(DevchainError::ReorgBeyondGenesis {
            requested: 51,
            height: 50
        })
    ));
    assert_eq!(devchain.tip(), shallow);
    devchain.shutdown().await;
}
