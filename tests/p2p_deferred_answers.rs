//! A p2p `create_order` is committed off the peer handler: while one peer's order waits on the
//! database (another connection holds SQLite's write lock on the node's real file), another
//! peer's `get_info` is answered; the order is answered, and stored, once the lock is let go.

mod common;

use std::time::{Duration, Instant};

use common::lsps0_peer::{create_order_request, Lsps0Peer};
use common::*;
use lsp_node::lsps1::order::OrderId;
use lsp_node::Builder;

/// How long `get_info` may take while the other peer's order waits on the database (the
/// node's busy timeout, 10 s, is longer: the order waits rather than fails).
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_waiting_on_the_database_does_not_hold_up_other_peers() {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let devchain = start_devchain().await;
    let config = config_for(dir.path(), &devchain.base_url());
    let lsp = Builder::new(config).start().await.expect("LSP starts");
    let operator = Operator::for_node(&lsp);
    fund(&devchain, &operator, 2_000_000).await;
    let node: bitcoin::secp256k1::PublicKey = operator.info().await.node_id.parse().unwrap();
    let p2p = lsp.p2p_listen_addr();
    let buyer = Lsps0Peer::connect(node, p2p, DEADLINE).await;
    let other = Lsps0Peer::connect(node, p2p, DEADLINE).await;
    let get_info = serde_json::json!({
        "jsonrpc": "2.0", "id": "info", "method": "lsps1.get_info", "params": {},
    });
    // Answered once before, so the wallet and fee estimate are warm.
    assert!(other
        .call(&get_info, DEADLINE)
        .await
        .get("result")
        .is_some());

    let blocker = rusqlite::Connection::open(lsp.node().database_path()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let held_at = Instant::now();
    buyer.send(&create_order_request("order", 100_000, 1));
    other.send(&get_info);
    let info = other.answer(ANSWER_WITHIN).await;
    let answered_after = held_at.elapsed();
    assert!(
        info.as_ref()
            .is_some_and(|info| info.get("result").is_some()),
        "get_info answered while an order waits on the database: {info:?}"
    );
    assert!(
        buyer.answer(Duration::from_millis(100)).await.is_none(),
        "the order cannot be answered before it is committed"
    );

    blocker.execute_batch("ROLLBACK").unwrap();
    let order = buyer.answer(DEADLINE).await.expect("the order is answered");
    let id = order["result"]["order_id"]
        .as_str()
        .unwrap_or_else(|| panic!("an order: {order}"))
        .to_string();
    let stored = lsp
        .order_service()
        .expect("the order service runs")
        .order_book()
        .order(&OrderId::parse(&id).unwrap())
        .unwrap();
    assert!(stored.is_some(), "the answered order {id} is stored");
    println!("get_info answered in {answered_after:?} while an order waited on the database");
    lsp.stop().await.unwrap();
}
