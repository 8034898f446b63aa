//! create_order over one Lightning connection: a bare LSPS0 peer (the tests' own, real TCP and
//! BOLT8) keeps a window of requests in flight and counts the answers, while a second peer
//! asks `get_info` every few milliseconds and times each answer, to show that orders being
//! committed do not hold up other peers' messages.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::PublicKey;
use serde_json::{json, Value};

use crate::lsps0_peer::{create_order_request, Lsps0Peer};

/// Requests in flight on the ordering connection.
const WINDOW: usize = 64;

/// How long one answer may take before the run counts it lost.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

pub struct P2pFigures {
    pub orders_per_sec: f64,
    pub orders: usize,
    pub failures: usize,
    /// One failed answer, to show what went wrong.
    pub failure: Option<Value>,
    pub other_peer_p50: Duration,
    pub other_peer_p99: Duration,
    pub other_peer_answers: usize,
}

/// Runs the load for `secs` against the node `node` listening at `address`.
pub async fn measure(node: PublicKey, address: SocketAddr, secs: u32) -> P2pFigures {
    let buyer = Lsps0Peer::connect(node, address, ANSWER_WITHIN).await;
    let other = Lsps0Peer::connect(node, address, ANSWER_WITHIN).await;
    let until = Instant::now() + Duration::from_secs(u64::from(secs));
    let ordering = async {
        let started = Instant::now();
        let (mut sent, mut orders, mut failures, mut failure) = (0, 0, 0, None);
        while sent < WINDOW {
            buyer.send(&create_order_request(&sent.to_string(), 20_000, 0));
            sent += 1;
        }
        while sent > orders + failures {
            let answer = buyer.answer(ANSWER_WITHIN).await.expect("an answer");
            if answer.get("result").is_some() {
                orders += 1;
            } else {
                failures += 1;
                failure.get_or_insert(answer);
            }
            if Instant::now() < until {
                buyer.send(&create_order_request(&sent.to_string(), 20_000, 0));
                sent += 1;
            }
        }
        (orders, failures, failure, started.elapsed())
    };
    let asking = async {
        let info =
            json!({"jsonrpc": "2.0", "id": "info", "method": "lsps1.get_info", "params": {}});
        let mut took = Vec::new();
        while Instant::now() < until {
            let asked = Instant::now();
            let answer = other.call(&info, ANSWER_WITHIN).await;
            assert!(answer.get("result").is_some(), "get_info: {answer}");
            took.push(asked.elapsed());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        took.sort();
        took
    };
    let ((orders, failures, failure, elapsed), took) = tokio::join!(ordering, asking);
    buyer.disconnect();
    other.disconnect();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    P2pFigures {
        orders_per_sec: orders as f64 / elapsed.as_secs_f64(),
        orders,
        failures,
        failure,
        other_peer_p50: at(0.50),
        other_peer_p99: at(0.99),
        other_peer_answers: took.len(),
    }
}
