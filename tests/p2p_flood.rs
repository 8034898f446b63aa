//! A flood of LSPS1 `create_order` over real Lightning connections, each from a fresh node id
//! (node ids cost nothing), while blocks keep coming: the node serves at most what its global
//! p2p order limit allows and refuses the rest at the gate with -32003, its best block keeps
//! up with the chain, and other clients are served while it goes on (an HTTP order, and
//! `get_info` from yet another fresh peer). The test prints the figures.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::lsps0_peer::{create_order_request, Lsps0Peer};
use common::*;
use lsp_node::Builder;

/// Fresh node ids in the flood.
const FLOOD: usize = 3_000;
/// Peers connecting and asking at the same time.
const CONCURRENCY: usize = 16;
/// The node's global p2p order limit in this test, per minute.
const PER_MINUTE: u32 = 60;

#[derive(Debug, Default)]
struct Tally {
    served: usize,
    rate_limited: usize,
    other: Vec<serde_json::Value>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_a_flood_of_p2p_orders_from_fresh_node_ids_is_refused_at_the_gate_while_the_node_keeps_working(
) {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let mut config = config_for(dir.path(), &devchain.base_url());
    config.lsps1.limits.p2p_orders_per_minute = PER_MINUTE;
    let lsp = Builder::new(config).start().await.expect("LSP starts");
    let operator = Operator::for_node(&lsp);
    // Enough for every order the limit lets through, and the HTTP order after the flood.
    fund(&devchain, &operator, 20_000_000).await;
    let node: bitcoin::secp256k1::PublicKey = operator.info().await.node_id.parse().unwrap();
    let p2p = lsp.p2p_listen_addr();
    let start_height = devchain.tip().0;

    // Blocks keep coming during the flood.
    let mining = Arc::new(AtomicBool::new(true));
    let miner = {
        let (devchain, mining) = (devchain.clone(), Arc::clone(&mining));
        tokio::spawn(async move {
            while mining.load(Ordering::Relaxed) {
                devchain.mine(1);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    let started = Instant::now();
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (tally, next) = (Arc::clone(&tally), Arc::clone(&next));
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= FLOOD {
                    return;
                }
                let peer = Lsps0Peer::connect(node, p2p, DEADLINE).await;
                let answer = peer
                    .call(&create_order_request(&i.to_string(), 100_000, 1), DEADLINE)
                    .await;
                peer.disconnect();
                let mut tally = tally.lock().unwrap();
                if answer.get("result").is_some() {
                    tally.served += 1;
                } else if answer["error"]["code"] == -32003 {
                    tally.rate_limited += 1;
                } else {
                    tally.other.push(answer);
                }
            }
        });
    }
    // Halfway through, other clients are served: an HTTP order, and `get_info` from yet
    // another fresh peer.
    wait_for("the flood to be halfway", DEADLINE, || async {
        (next.load(Ordering::Relaxed) >= FLOOD / 2).then_some(())
    })
    .await;
    let public_api = format!("http://{}", lsp.http_listen_addr().unwrap());
    let secp = bitcoin::secp256k1::Secp256k1::new();
    let client = bitcoin::secp256k1::SecretKey::from_slice(&[5; 32])
        .unwrap()
        .public_key(&secp);
    let order = create_olympus_order(
        &public_api,
        &olympus_order(&client.to_string(), false, None),
    )
    .await;
    assert_eq!(order["order_state"], "CREATED");
    let peer = Lsps0Peer::connect(node, p2p, DEADLINE).await;
    let info = peer
        .call(
            &serde_json::json!({"jsonrpc": "2.0", "id": "info", "method": "lsps1.get_info", "params": {}}),
            DEADLINE,
        )
        .await;
    assert!(
        info["result"]["min_initial_lsp_balance_sat"].is_string(),
        "{info}"
    );
    peer.disconnect();
    assert!(
        next.load(Ordering::Relaxed) < FLOOD,
        "the other clients were served while the flood went on"
    );
    while let Some(done) = workers.join_next().await {
        done.expect("a flood worker");
    }
    let elapsed = started.elapsed();
    mining.store(false, Ordering::Relaxed);
    miner.await.unwrap();

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    let refill = (f64::from(PER_MINUTE) * elapsed.as_secs_f64() / 60.0).ceil() as usize;
    let allowed = PER_MINUTE as usize + refill;
    println!(
        "flood: {FLOOD} create_order from fresh node ids in {:.1} s ({:.0}/s): {} served, {} rate limited, {} other answers; {} blocks mined meanwhile",
        elapsed.as_secs_f64(),
        FLOOD as f64 / elapsed.as_secs_f64(),
        tally.served,
        tally.rate_limited,
        tally.other.len(),
        devchain.tip().0 - start_height,
    );
    assert!(
        tally.other.is_empty(),
        "unexpected answers: {:?}",
        &tally.other[..tally.other.len().min(3)]
    );
    assert_eq!(tally.served + tally.rate_limited, FLOOD);
    assert!(
        tally.served <= allowed,
        "at most {allowed} served under a {PER_MINUTE}/min limit in {elapsed:?}, got {}",
        tally.served
    );
    assert!(
        tally.served >= PER_MINUTE as usize / 2,
        "the limit serves up to its burst: {tally:?}"
    );
    assert!(
        devchain.tip().0 > start_height + 2,
        "blocks came during the flood"
    );

    // The node kept following the chain.
    wait_synced_to_tip(&operator, &devchain).await;
    lsp.stop().await.unwrap();
}
