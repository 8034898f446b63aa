//! How p2p answers spell a held payment, and what the operator sees of it: a running node on
//! the devchain answers `lsps1.*` requests from two peers, one listed in
//! `lsps1.hold_as_paid_peers` and one not, while their orders' HTLCs are held. The counts per
//! spelling reach `GET /v1/orders/{id}` and the real `lsp-node order` command; the unlisted peer
//! is warned about once.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use common::*;
use lsp_node::api::OrderDetail;
use lsp_node::lsps1::gate::Lsps1Server;
use lsp_node::lsps1::guard::Lsps1Request;
use lsp_node::lsps1::order::{OrderEvent, OrderId};
use lsp_node::Builder;
use serde_json::{json, Map, Value};

const HOLD_WARNING: &str = "not in lsps1.hold_as_paid_peers";

fn peer(byte: u8) -> PublicKey {
    PublicKey::from_secret_key(
        &Secp256k1::new(),
        &SecretKey::from_slice(&[byte; 32]).expect("valid key"),
    )
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// Log lines written on this thread while the guard lives.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_payments_are_counted_per_spelling_and_an_unlisted_peer_is_warned_once() {
    let devchain = start_devchain().await;
    let dir = tempfile::tempdir().unwrap();
    let (unlisted, listed) = (peer(1), peer(2));
    let mut config = config_for(dir.path(), &devchain.base_url());
    config.lsps1.hold_as_paid_peers = vec![listed.to_string()];
    let node = Builder::new(config).start().await.expect("node starts");
    let operator = Operator::for_node(&node);
    fund(&devchain, &operator, 2_000_000).await;
    let service = node.order_service().expect("order service runs");

    let create = |client: PublicKey| {
        let params = object(json!({
            "lsp_balance_sat": "100000",
            "client_balance_sat": "0",
            "required_channel_confirmations": 1,
            "funding_confirms_within_blocks": 6,
            "channel_expiry_blocks": 1000,
            "announce_channel": false,
        }));
        let request = service.guard().create_order(params).expect("params pass");
        let order = service
            .serve(client, Lsps1Request::CreateOrder(request))
            .expect("order created");
        let id = OrderId::parse(order["order_id"].as_str().unwrap()).unwrap();
        // As the HTLC handler records a held payment; neither peer is connected, so the
        // order waits in HOLD for its client.
        service
            .order_book()
            .apply(&id, &OrderEvent::Bolt11HtlcHeld, "HTLC held")
            .expect("order held");
        id
    };
    let (unlisted_order, listed_order) = (create(unlisted), create(listed));
    let get_state = |client: PublicKey, id: &OrderId| {
        let order_id = id.as_str().to_string();
        let order = service
            .serve(client, Lsps1Request::GetOrder { order_id })
            .expect("get_order answers");
        order["payment"]["bolt11"]["state"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let states = tracing::subscriber::with_default(subscriber, || {
        [
            get_state(unlisted, &unlisted_order),
            get_state(unlisted, &unlisted_order),
            get_state(listed, &listed_order),
        ]
    });
    assert_eq!(states, ["HOLD", "HOLD", "PAID"]);
    let logs = logs.text();
    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains(HOLD_WARNING)).collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning for the unlisted peer: {logs}"
    );
    assert!(warnings[0].contains(&unlisted.to_string()), "{logs}");
    assert!(!logs.contains(&listed.to_string()), "{logs}");

    let detail = |id: &OrderId| {
        let path = format!("/v1/orders/{id}");
        let operator = &operator;
        async move {
            operator
                .get::<OrderDetail>(&path)
                .await
                .expect("order detail")
        }
    };
    let unlisted_detail = detail(&unlisted_order).await;
    let spellings: Vec<(String, u64)> = unlisted_detail
        .hold_answers
        .iter()
        .map(|h| (h.spelling.clone(), h.answers))
        .collect();
    assert_eq!(spellings, [("HOLD".to_string(), 2)]);
    assert!(unlisted_detail.hold_answers[0].first_at <= unlisted_detail.hold_answers[0].last_at);
    let listed_detail = detail(&listed_order).await;
    let spellings: Vec<(String, u64)> = listed_detail
        .hold_answers
        .iter()
        .map(|h| (h.spelling.clone(), h.answers))
        .collect();
    assert_eq!(spellings, [("PAID".to_string(), 1)]);

    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_lsp-node"))
        .args([
            "--admin-url",
            &format!("http://{}", node.admin_listen_addr()),
            "order",
            unlisted_order.as_str(),
        ])
        .env("LSP_NODE_API_KEY", node.admin_api_key())
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(
        stdout.contains("held payment told over p2p as HOLD: 2 answer(s)"),
        "{stdout}"
    );
    node.stop().await.expect("node stops");
}
