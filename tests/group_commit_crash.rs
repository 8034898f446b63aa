//! New orders are written in groups (one transaction for all orders queued meanwhile) and
//! answered only after their group's COMMIT. The real binary is killed at a group's commit,
//! with orders arriving concurrently: a group killed before its COMMIT left nothing; killed
//! after it, every order that was answered is there after the restart, and the killed group is
//! stored whole though nobody heard of it (unpaid, it expires like any other).

mod common;

use std::collections::HashSet;

use common::process::{regtest_config, NodeProcess};
use common::*;
use lsp_node::fault_points::CRASH_AT_VAR;

/// Orders sent at once, each by its own client key.
const CONCURRENT: u8 = 48;

fn config(dir: &std::path::Path, esplora_url: &str) -> String {
    regtest_config(&dir.join("data"), esplora_url, 1).replace(
        "[http]\nlisten = \"127.0.0.1:0\"\n",
        "[http]\nlisten = \"127.0.0.1:0\"\nrate_limit_per_minute = 100000\nrate_limit_burst = 100000\norders_per_hour = 100000\n",
    )
}

/// Sends `CONCURRENT` orders at once, each for a client key made from `round`, `wave` and its
/// index; returns the ids of those that were answered.
async fn send_wave(public_api: &str, round: u8, wave: u8) -> HashSet<String> {
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let mut sending = tokio::task::JoinSet::new();
    for i in 0..CONCURRENT {
        let key = bitcoin::secp256k1::SecretKey::from_slice(&[round, wave, i + 1, 7].repeat(8))
            .unwrap()
            .public_key(&secp)
            .to_string();
        let url = format!("{public_api}/api/v1/create_order");
        sending.spawn(async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&olympus_order(&key, false, None))
                .send()
                .await
                .ok()?;
            let order: serde_json::Value = response.json().await.ok()?;
            order["order_id"].as_str().map(str::to_string)
        });
    }
    let mut answered = HashSet::new();
    while let Some(outcome) = sending.join_next().await {
        answered.extend(outcome.unwrap());
    }
    answered
}

/// Waves of orders until one is cut short by the node's death; all the answered ids, and how
/// many of the last wave went unanswered.
async fn send_until_killed(public_api: &str, round: u8) -> (HashSet<String>, u64) {
    let mut answered = HashSet::new();
    for wave in 0..20 {
        let ids = send_wave(public_api, round, wave).await;
        let unanswered = u64::from(CONCURRENT) - ids.len() as u64;
        answered.extend(ids);
        if unanswered > 0 {
            return (answered, unanswered);
        }
    }
    panic!("the node was not killed at its crash point");
}

async fn stored_orders(operator: &Operator) -> u64 {
    operator
        .metric("lsp_orders{state=\"CREATED\"}")
        .await
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_kill_at_a_group_commit_loses_no_answered_order_and_keeps_no_half_group() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let config = config(dir.path(), &devchain.base_url());

    // Killed before the first group's COMMIT: none of its orders is stored, none answered.
    let crash_at = [(CRASH_AT_VAR, "group_commit.before_commit#1")];
    let mut process = NodeProcess::spawn(dir.path(), &config, &crash_at);
    let operator = process.wait_running(DEADLINE).await;
    fund(&devchain, &operator, 50_000_000).await;
    let (answered, _) = send_until_killed(&process.public_api_url(), 1).await;
    let status = process.wait_exit(DEADLINE).await;
    assert!(!status.success(), "aborted at the crash point: {status:?}");
    assert!(answered.is_empty(), "{answered:?}");

    let mut process = NodeProcess::spawn(dir.path(), &config, &[]);
    let operator = process.wait_running(DEADLINE).await;
    let stored = stored_orders(&operator).await;
    assert_eq!(
        stored, 0,
        "a group killed before its COMMIT left none of its orders"
    );
    process.terminate(DEADLINE).await;

    // Killed after the third group's COMMIT, before its answers.
    let crash_at = [(CRASH_AT_VAR, "group_commit.before_answers#3")];
    let mut process = NodeProcess::spawn(dir.path(), &config, &crash_at);
    process.wait_running(DEADLINE).await;
    let (answered_again, cut_short) = send_until_killed(&process.public_api_url(), 2).await;
    let status = process.wait_exit(DEADLINE).await;
    assert!(!status.success(), "aborted at the crash point: {status:?}");

    let mut process = NodeProcess::spawn(dir.path(), &config, &[]);
    let operator = process.wait_running(DEADLINE).await;
    for id in &answered_again {
        assert_eq!(operator.order(id).await.summary.state, "CREATED");
    }
    let unanswered = stored_orders(&operator).await - stored - answered_again.len() as u64;
    assert!(
        unanswered >= 1,
        "the group committed before the kill is stored whole, unanswered"
    );
    assert!(
        unanswered <= cut_short,
        "{unanswered} stored unanswered, {cut_short} cut short"
    );
    process.terminate(DEADLINE).await;
}
