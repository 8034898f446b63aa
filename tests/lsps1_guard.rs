//! The bLIP-50 guard: a table of raw LSPS messages and the verdict each must get, and the
//! node's gated handler around a fake inner custom message handler.

use std::sync::Mutex;

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::Network;
use lightning::ln::msgs::{Init, LightningError};
use lightning::ln::peer_handler::CustomMessageHandler;
use lightning::ln::wire::CustomMessageReader;
use lightning::types::features::{InitFeatures, NodeFeatures};
use lightning::util::ser::{LengthLimitedRead, LengthReadable};
use lightning_liquidity::lsps0::ser::{RawLSPSMessage, LSPS_MESSAGE_TYPE_ID};
use lsp_node::config::lsps1::{Lsps1Limits, Lsps1Options};
use lsp_node::lsps1::gate::{Lsps1Gate, Lsps1Server};
use lsp_node::lsps1::guard::{Lsps1Request, Lsps7Request, RequestGuard, Verdict};
use lsp_node::lsps1::rpc::RpcError;
use lsp_node::node::lsps::GatedLspsHandler;
use serde_json::{json, Value};

const REGTEST_ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
const MAINNET_ADDRESS: &str = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";

fn guard() -> RequestGuard {
    RequestGuard::new(Lsps1Options::default(), Network::Regtest)
}

fn create_order_params() -> Value {
    json!({
        "lsp_balance_sat": "1000000",
        "client_balance_sat": "100000",
        "required_channel_confirmations": 1,
        "funding_confirms_within_blocks": 6,
        "channel_expiry_blocks": 4320,
        "announce_channel": true,
        "refund_onchain_address": REGTEST_ADDRESS,
    })
}

fn request(method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "id": "req-1", "method": method, "params": params}).to_string()
}

fn create_order_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut params = create_order_params();
    edit(params.as_object_mut().unwrap());
    request("lsps1.create_order", params)
}

/// What a reply must contain: code, and optionally the expected `data`.
enum Expect {
    Forward,
    ForwardCleaned(Value),
    Reply {
        code: i64,
        id: Value,
        data: Option<Value>,
    },
    Drop,
}

fn error_reply(code: i64, data: Option<Value>) -> Expect {
    Expect::Reply {
        code,
        id: json!("req-1"),
        data,
    }
}

#[test]
fn precheck_table() {
    let cases: Vec<(&str, String, Expect)> = vec![
        (
            "not json",
            "{\"jsonrpc\": \"2.0\", ".into(),
            Expect::Reply {
                code: -32700,
                id: Value::Null,
                data: None,
            },
        ),
        (
            "empty payload",
            String::new(),
            Expect::Reply {
                code: -32700,
                id: Value::Null,
                data: None,
            },
        ),
        (
            "json but not an object",
            "[1,2]".into(),
            Expect::Reply {
                code: -32600,
                id: Value::Null,
                data: None,
            },
        ),
        (
            "numeric id",
            json!({"jsonrpc": "2.0", "id": 5, "method": "lsps1.get_info"}).to_string(),
            Expect::Reply {
                code: -32600,
                id: Value::Null,
                data: Some(json!({"message": "id must be a string"})),
            },
        ),
        (
            "wrong jsonrpc version",
            json!({"jsonrpc": "1.0", "id": "req-1", "method": "lsps1.get_info"}).to_string(),
            error_reply(-32600, Some(json!({"message": "jsonrpc must be \"2.0\""}))),
        ),
        (
            "notification",
            json!({"jsonrpc": "2.0", "method": "lsps1.get_info"}).to_string(),
            Expect::Drop,
        ),
        (
            "unsolicited response",
            json!({"jsonrpc": "2.0", "id": "x", "result": {}}).to_string(),
            Expect::Drop,
        ),
        (
            "unknown method",
            request("lsps1.buy_me_a_coffee", json!({})),
            error_reply(-32601, None),
        ),
        (
            "lsps7 create_order, valid",
            request(
                "lsps7.create_order",
                json!({"short_channel_id": "120x1x0", "channel_extension_expiry_blocks": 144,
                       "token": "", "refund_onchain_address": REGTEST_ADDRESS}),
            ),
            Expect::Forward,
        ),
        (
            "lsps7 create_order without the channel",
            request(
                "lsps7.create_order",
                json!({"channel_extension_expiry_blocks": 144}),
            ),
            error_reply(
                -32602,
                Some(json!({"property": "short_channel_id", "message": "is required"})),
            ),
        ),
        (
            "lsps7 create_order for no blocks",
            request(
                "lsps7.create_order",
                json!({"short_channel_id": "120x1x0", "channel_extension_expiry_blocks": 0}),
            ),
            error_reply(
                -32602,
                Some(json!({"property": "channel_extension_expiry_blocks",
                            "message": "must be at least 1 block"})),
            ),
        ),
        (
            "lsps7 create_order with a mainnet refund address",
            request(
                "lsps7.create_order",
                json!({"short_channel_id": "120x1x0", "channel_extension_expiry_blocks": 6,
                       "refund_onchain_address": MAINNET_ADDRESS}),
            ),
            error_reply(
                -32602,
                Some(json!({"property": "refund_onchain_address",
                            "message": "is an address for another network"})),
            ),
        ),
        (
            "lsps7 get_extendable_channels with an unknown param",
            request("lsps7.get_extendable_channels", json!({"all": true})),
            error_reply(-32602, Some(json!({"unrecognized": ["all"]}))),
        ),
        (
            "lsps2 not served",
            request("lsps2.get_info", json!({})),
            error_reply(-32601, None),
        ),
        (
            "list_protocols",
            request("lsps0.list_protocols", json!({})),
            Expect::Forward,
        ),
        (
            "get_info without params",
            json!({"jsonrpc": "2.0", "id": "req-1", "method": "lsps1.get_info"}).to_string(),
            Expect::Forward,
        ),
        (
            "get_info with unknown param",
            request("lsps1.get_info", json!({"verbose": true})),
            error_reply(-32602, Some(json!({"unrecognized": ["verbose"]}))),
        ),
        (
            "params not an object",
            request("lsps1.get_info", json!([1])),
            error_reply(
                -32602,
                Some(json!({"property": "params", "message": "params must be an object"})),
            ),
        ),
        (
            "valid create_order",
            create_order_with(|_| {}),
            Expect::Forward,
        ),
        (
            "unknown params listed sorted",
            create_order_with(|p| {
                p.insert("zeta".into(), json!(1));
                p.insert("alpha".into(), json!("x"));
            }),
            error_reply(-32602, Some(json!({"unrecognized": ["alpha", "zeta"]}))),
        ),
        (
            "misspelled null param is dropped",
            create_order_with(|p| {
                p.insert("refund_on_chain_address".into(), Value::Null);
                p.insert("token".into(), Value::Null);
            }),
            Expect::ForwardCleaned(create_order_params()),
        ),
        (
            "missing lsp_balance_sat",
            create_order_with(|p| {
                p.remove("lsp_balance_sat");
            }),
            error_reply(
                -32602,
                Some(json!({"property": "lsp_balance_sat", "message": "is required"})),
            ),
        ),
        (
            "amount as number",
            create_order_with(|p| {
                p.insert("lsp_balance_sat".into(), json!(1_000_000));
            }),
            error_reply(
                -32602,
                Some(
                    json!({"property": "lsp_balance_sat", "message": "must be a string holding a whole number of sats"}),
                ),
            ),
        ),
        (
            "negative amount string",
            create_order_with(|p| {
                p.insert("client_balance_sat".into(), json!("-5"));
            }),
            error_reply(
                -32602,
                Some(
                    json!({"property": "client_balance_sat", "message": "must be a string holding a whole number of sats"}),
                ),
            ),
        ),
        (
            "amount overflowing u64",
            create_order_with(|p| {
                p.insert("client_balance_sat".into(), json!("18446744073709551616"));
            }),
            error_reply(
                -32602,
                Some(
                    json!({"property": "client_balance_sat", "message": "must be a string holding a whole number of sats"}),
                ),
            ),
        ),
        (
            "confirmations above u16",
            create_order_with(|p| {
                p.insert("required_channel_confirmations".into(), json!(70_000));
            }),
            error_reply(
                -32602,
                Some(
                    json!({"property": "required_channel_confirmations", "message": "must be an integer from 0 to 65535"}),
                ),
            ),
        ),
        (
            "zero lease",
            create_order_with(|p| {
                p.insert("channel_expiry_blocks".into(), json!(0));
            }),
            error_reply(
                -32602,
                Some(
                    json!({"property": "channel_expiry_blocks", "message": "must be at least 1 block"}),
                ),
            ),
        ),
        (
            "announce as string",
            create_order_with(|p| {
                p.insert("announce_channel".into(), json!("yes"));
            }),
            error_reply(
                -32602,
                Some(json!({"property": "announce_channel", "message": "must be true or false"})),
            ),
        ),
        (
            "token as number",
            create_order_with(|p| {
                p.insert("token".into(), json!(7));
            }),
            error_reply(
                -32602,
                Some(json!({"property": "token", "message": "must be a string"})),
            ),
        ),
        (
            "refund address garbage",
            create_order_with(|p| {
                p.insert("refund_onchain_address".into(), json!("not-an-address"));
            }),
            error_reply(
                -32602,
                Some(
                    json!({"property": "refund_onchain_address", "message": "is not a valid bitcoin address"}),
                ),
            ),
        ),
        (
            "refund address other network",
            create_order_with(|p| {
                p.insert("refund_onchain_address".into(), json!(MAINNET_ADDRESS));
            }),
            error_reply(
                -32602,
                Some(
                    json!({"property": "refund_onchain_address", "message": "is an address for another network"}),
                ),
            ),
        ),
        (
            "lsp balance below min",
            create_order_with(|p| {
                p.insert("lsp_balance_sat".into(), json!("19999"));
            }),
            error_reply(
                100,
                Some(
                    json!({"property": "min_initial_lsp_balance_sat", "message": "lsp_balance_sat is below the minimum"}),
                ),
            ),
        ),
        (
            "lsp balance above max",
            create_order_with(|p| {
                p.insert("lsp_balance_sat".into(), json!("10000001"));
            }),
            error_reply(
                100,
                Some(
                    json!({"property": "max_initial_lsp_balance_sat", "message": "lsp_balance_sat is above the maximum"}),
                ),
            ),
        ),
        (
            "client balance above max",
            create_order_with(|p| {
                p.insert("client_balance_sat".into(), json!("1000001"));
            }),
            error_reply(
                100,
                Some(
                    json!({"property": "max_initial_client_balance_sat", "message": "client_balance_sat is above the maximum"}),
                ),
            ),
        ),
        (
            "channel above max",
            create_order_with(|p| {
                p.insert("lsp_balance_sat".into(), json!("10000000"));
                p.insert("client_balance_sat".into(), json!("7000000"));
            }),
            error_reply(
                100,
                Some(
                    json!({"property": "max_initial_client_balance_sat", "message": "client_balance_sat is above the maximum"}),
                ),
            ),
        ),
        (
            "channel sum above max",
            create_order_with(|p| {
                p.insert("lsp_balance_sat".into(), json!("10000000"));
                p.insert("client_balance_sat".into(), json!("1000000"));
            }),
            Expect::Forward,
        ),
        (
            "lease too long",
            create_order_with(|p| {
                p.insert("channel_expiry_blocks".into(), json!(13_141));
            }),
            error_reply(
                100,
                Some(
                    json!({"property": "max_channel_expiry_blocks", "message": "channel_expiry_blocks is above the maximum"}),
                ),
            ),
        ),
        (
            "too few confirmations",
            create_order_with(|p| {
                p.insert("required_channel_confirmations".into(), json!(0));
            }),
            error_reply(
                100,
                Some(
                    json!({"property": "min_required_channel_confirmations", "message": "required_channel_confirmations is below the minimum"}),
                ),
            ),
        ),
        (
            "funding too fast",
            create_order_with(|p| {
                p.insert("funding_confirms_within_blocks".into(), json!(2));
            }),
            error_reply(
                100,
                Some(
                    json!({"property": "min_funding_confirms_within_blocks", "message": "funding_confirms_within_blocks is below the minimum"}),
                ),
            ),
        ),
        (
            "get_order",
            request("lsps1.get_order", json!({"order_id": "abc"})),
            Expect::Forward,
        ),
        (
            "get_order missing id",
            request("lsps1.get_order", json!({})),
            error_reply(
                -32602,
                Some(json!({"property": "order_id", "message": "is required"})),
            ),
        ),
    ];
    let guard = guard();
    for (name, payload, expect) in cases {
        let verdict = guard.check(&payload);
        match (expect, verdict) {
            (Expect::Forward, Verdict::Forward(forwarded)) => {
                assert_eq!(forwarded, payload, "{name}")
            }
            (Expect::ForwardCleaned(params), Verdict::Forward(forwarded)) => {
                let forwarded: Value = serde_json::from_str(&forwarded).unwrap();
                assert_eq!(forwarded["params"], params, "{name}");
                assert_eq!(forwarded["id"], "req-1", "{name}");
                assert_eq!(forwarded["method"], "lsps1.create_order", "{name}");
            }
            (Expect::Reply { code, id, data }, Verdict::Reply(reply)) => {
                let reply: Value = serde_json::from_str(&reply).expect("reply is JSON");
                assert_eq!(reply["jsonrpc"], "2.0", "{name}");
                assert_eq!(reply["id"], id, "{name}");
                assert_eq!(reply["error"]["code"], code, "{name}: {reply}");
                assert!(reply["error"]["message"].is_string(), "{name}");
                if let Some(data) = data {
                    assert_eq!(reply["error"]["data"], data, "{name}");
                }
                assert!(reply.get("result").is_none(), "{name}");
            }
            (Expect::Drop, Verdict::Drop(reason)) => assert!(!reason.is_empty(), "{name}"),
            (_, verdict) => panic!("{name}: unexpected verdict {verdict:?}"),
        }
    }
}

#[test]
fn everything_forwarded_parses_in_lightning_liquidity() {
    // The manager ignores a peer for good after one message it cannot parse; make sure the
    // requests we forward are ones its own types accept, with the values intact.
    use lightning_liquidity::lsps1::msgs::LSPS1CreateOrderRequest;
    let guard = guard();
    let with_null = create_order_with(|p| {
        p.insert("refund_on_chain_address".into(), Value::Null);
        p.insert("token".into(), json!("SAVE10"));
    });
    let Verdict::Forward(forwarded) = guard.check(&with_null) else {
        panic!("forwarded")
    };
    let value: Value = serde_json::from_str(&forwarded).unwrap();
    let parsed: LSPS1CreateOrderRequest = serde_json::from_value(value["params"].clone()).unwrap();
    assert_eq!(parsed.order.lsp_balance_sat, 1_000_000);
    assert_eq!(parsed.order.token.as_deref(), Some("SAVE10"));
    assert_eq!(
        parsed.refund_onchain_address.unwrap().to_string(),
        REGTEST_ADDRESS
    );
}

/// A stand-in for the LiquidityManager: records what reaches it and has its own outbox.
#[derive(Default)]
struct FakeInner {
    received: Mutex<Vec<(PublicKey, String)>>,
    outbox: Mutex<Vec<(PublicKey, RawLSPSMessage)>>,
    disconnected: Mutex<Vec<PublicKey>>,
}

impl CustomMessageReader for FakeInner {
    type CustomMessage = RawLSPSMessage;
    fn read<R: LengthLimitedRead>(
        &self,
        message_type: u16,
        buffer: &mut R,
    ) -> Result<Option<RawLSPSMessage>, lightning::ln::msgs::DecodeError> {
        match message_type {
            LSPS_MESSAGE_TYPE_ID => {
                Ok(Some(RawLSPSMessage::read_from_fixed_length_buffer(buffer)?))
            }
            _ => Ok(None),
        }
    }
}

impl CustomMessageHandler for FakeInner {
    fn handle_custom_message(
        &self,
        msg: RawLSPSMessage,
        sender: PublicKey,
    ) -> Result<(), LightningError> {
        self.received
            .lock()
            .unwrap()
            .push((sender, msg.payload.clone()));
        self.outbox.lock().unwrap().push((
            sender,
            RawLSPSMessage {
                payload: format!("inner saw {}", msg.payload.len()),
            },
        ));
        Ok(())
    }
    fn get_and_clear_pending_msg(&self) -> Vec<(PublicKey, RawLSPSMessage)> {
        std::mem::take(&mut *self.outbox.lock().unwrap())
    }
    fn peer_disconnected(&self, their_node_id: PublicKey) {
        self.disconnected.lock().unwrap().push(their_node_id);
    }
    fn peer_connected(&self, _: PublicKey, _: &Init, _: bool) -> Result<(), ()> {
        Ok(())
    }
    fn provided_node_features(&self) -> NodeFeatures {
        NodeFeatures::empty()
    }
    fn provided_init_features(&self, _: PublicKey) -> InitFeatures {
        InitFeatures::empty()
    }
}

fn peer(byte: u8) -> PublicKey {
    PublicKey::from_secret_key(
        &Secp256k1::new(),
        &SecretKey::from_slice(&[byte; 32]).unwrap(),
    )
}

/// The handler with the guard alone as its gate.
fn guarded() -> GatedLspsHandler<FakeInner> {
    let handler = GatedLspsHandler::new(FakeInner::default());
    assert!(handler.install_gate(std::sync::Arc::new(guard())));
    handler
}

fn read_raw(handler: &GatedLspsHandler<FakeInner>, bytes: &[u8]) -> RawLSPSMessage {
    let mut reader: &[u8] = bytes;
    handler
        .read(LSPS_MESSAGE_TYPE_ID, &mut reader)
        .expect("readable")
        .expect("an LSPS message")
}

#[test]
fn wrapper_answers_bad_requests_itself_and_forwards_good_ones() {
    let handler = guarded();
    let alice = peer(1);
    let bob = peer(2);

    // Garbage from alice: answered by us with -32700, never seen by the inner handler.
    let garbage = read_raw(&handler, b"{nope");
    handler.handle_custom_message(garbage, alice).unwrap();
    // Invalid UTF-8 from alice: read succeeds, answered with -32700 too.
    let not_utf8 = read_raw(&handler, &[0xff, 0xfe, 0x7b]);
    handler.handle_custom_message(not_utf8, alice).unwrap();
    // An unknown method from bob.
    let unknown = read_raw(&handler, request("lsps9.what", json!({})).as_bytes());
    handler.handle_custom_message(unknown, bob).unwrap();
    assert!(handler.inner().received.lock().unwrap().is_empty());

    // Alice is not ignored afterwards: her valid request goes through.
    let good = request("lsps1.get_info", json!({}));
    let msg = read_raw(&handler, good.as_bytes());
    handler.handle_custom_message(msg, alice).unwrap();
    assert_eq!(
        *handler.inner().received.lock().unwrap(),
        vec![(alice, good.clone())]
    );

    let pending = handler.get_and_clear_pending_msg();
    let summary: Vec<(PublicKey, String)> = pending
        .iter()
        .map(|(p, m)| (*p, m.payload.clone()))
        .collect();
    assert_eq!(summary.len(), 4, "{summary:?}");
    let code =
        |i: usize| serde_json::from_str::<Value>(&summary[i].1).unwrap()["error"]["code"].clone();
    assert_eq!((summary[0].0, code(0)), (alice, json!(-32700)));
    assert_eq!((summary[1].0, code(1)), (alice, json!(-32700)));
    assert_eq!((summary[2].0, code(2)), (bob, json!(-32601)));
    assert_eq!(summary[3], (alice, format!("inner saw {}", good.len())));
    assert!(
        handler.get_and_clear_pending_msg().is_empty(),
        "queue is cleared"
    );
}

#[test]
fn queued_replies_disconnects_and_other_message_types() {
    let handler = guarded();
    let alice = peer(1);
    let bob = peer(2);
    let error_reply = |id: &str, error: RpcError| error.to_response(Some(&json!(id))).to_string();
    handler.queue_reply(
        alice,
        error_reply(
            "req-9",
            RpcError::new(1, "cannot fund this channel right now"),
        ),
    );
    handler.queue_reply(bob, error_reply("req-3", RpcError::new(1, "no")));
    // Replies to a peer that disconnected are not sent on a later connection.
    handler.peer_disconnected(bob);
    assert_eq!(*handler.inner().disconnected.lock().unwrap(), vec![bob]);
    let pending = handler.get_and_clear_pending_msg();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].0, alice);
    let reply: Value = serde_json::from_str(&pending[0].1.payload).unwrap();
    assert_eq!(
        reply,
        json!({"jsonrpc": "2.0", "id": "req-9", "error": {"code": 1, "message": "cannot fund this channel right now"}})
    );

    // Other custom message types are the inner reader's business.
    let mut reader: &[u8] = b"whatever";
    assert!(handler.read(12345, &mut reader).unwrap().is_none());
}

#[test]
fn channel_size_limits_name_the_channel_options() {
    let options = Lsps1Options {
        min_channel_balance_sat: 200_000,
        max_channel_balance_sat: 500_000,
        ..Lsps1Options::default()
    };
    let guard = RequestGuard::new(options, Network::Regtest);
    let check = |lsp: &str, client: &str| {
        let payload = create_order_with(|p| {
            p.insert("lsp_balance_sat".into(), json!(lsp));
            p.insert("client_balance_sat".into(), json!(client));
        });
        match guard.check(&payload) {
            Verdict::Reply(reply) => {
                let reply: Value = serde_json::from_str(&reply).unwrap();
                assert_eq!(reply["error"]["code"], 100);
                Some(
                    reply["error"]["data"]["property"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            }
            Verdict::Forward(_) => None,
            Verdict::Drop(reason) => panic!("dropped: {reason}"),
            Verdict::Defer { .. } => panic!("the guard alone answers nothing later"),
        }
    };
    assert_eq!(
        check("450000", "100000").as_deref(),
        Some("max_channel_balance_sat")
    );
    assert_eq!(
        check("100000", "0").as_deref(),
        Some("min_channel_balance_sat")
    );
    assert_eq!(check("400000", "100000"), None);
    assert_eq!(check("200000", "0"), None);
}

/// Answers every LSPS1 request with the method name it saw, and records the peer.
#[derive(Default)]
struct EchoServer {
    seen: Mutex<Vec<(PublicKey, String)>>,
}

impl Lsps1Server for EchoServer {
    fn serve(&self, peer: PublicKey, request: Lsps1Request) -> Result<Value, RpcError> {
        let method = request.method();
        self.seen.lock().unwrap().push((peer, method.to_string()));
        if let Lsps1Request::GetOrder { .. } = request {
            return Err(RpcError::new(101, "Order not found"));
        }
        Ok(json!({ "served": method }))
    }

    fn serve_lsps7(&self, peer: PublicKey, request: Lsps7Request) -> Result<Value, RpcError> {
        let method = request.method();
        self.seen.lock().unwrap().push((peer, method.to_string()));
        Ok(json!({ "served": method }))
    }

    fn protocols(&self) -> Vec<u16> {
        vec![1, 7]
    }
}

fn replies(handler: &GatedLspsHandler<FakeInner>) -> Vec<Value> {
    handler
        .get_and_clear_pending_msg()
        .into_iter()
        .filter_map(|(_, m)| serde_json::from_str(&m.payload).ok())
        .collect()
}

#[test]
fn an_installed_server_answers_lsps1_and_the_inner_handler_keeps_lsps0() {
    let handler = GatedLspsHandler::new(FakeInner::default());
    let server = std::sync::Arc::new(EchoServer::default());
    let guard = std::sync::Arc::new(guard());
    assert!(handler.install_gate(std::sync::Arc::new(Lsps1Gate::serving(
        guard.clone(),
        server.clone(),
        &Lsps1Limits::default(),
    ))));
    assert!(
        !handler.install_gate(std::sync::Arc::new(Lsps1Gate::refusing(guard))),
        "the choice is made once"
    );
    let alice = peer(1);

    let info = read_raw(&handler, request("lsps1.get_info", json!({})).as_bytes());
    handler.handle_custom_message(info, alice).unwrap();
    let order = read_raw(
        &handler,
        request("lsps1.get_order", json!({"order_id": "nope"})).as_bytes(),
    );
    handler.handle_custom_message(order, alice).unwrap();
    let protocols = read_raw(
        &handler,
        request("lsps0.list_protocols", json!({})).as_bytes(),
    );
    handler.handle_custom_message(protocols, alice).unwrap();
    let extendable = read_raw(
        &handler,
        request("lsps7.get_extendable_channels", json!({})).as_bytes(),
    );
    handler.handle_custom_message(extendable, alice).unwrap();
    let ping = read_raw(&handler, request("lsps0.ping", json!({})).as_bytes());
    handler.handle_custom_message(ping, alice).unwrap();

    let answers = replies(&handler);
    assert_eq!(answers[0]["result"]["served"], "lsps1.get_info");
    assert_eq!(answers[0]["id"], "req-1");
    assert_eq!(answers[1]["error"]["code"], 101);
    assert_eq!(
        answers[2]["result"],
        json!({ "protocols": [1, 7] }),
        "list_protocols is the server's, so it lists LSPS7"
    );
    assert_eq!(
        answers[3]["result"]["served"],
        "lsps7.get_extendable_channels"
    );
    assert_eq!(
        answers[4]["error"]["code"], -32601,
        "an unknown LSPS0 method"
    );
    assert_eq!(
        server.seen.lock().unwrap().clone(),
        vec![
            (alice, "lsps1.get_info".to_string()),
            (alice, "lsps1.get_order".to_string()),
            (alice, "lsps7.get_extendable_channels".to_string())
        ]
    );
    let inner = handler.inner().received.lock().unwrap().clone();
    assert!(inner.is_empty(), "nothing reached the manager: {inner:?}");
}

#[test]
fn a_node_that_sells_nothing_answers_lsps1_method_not_found() {
    let handler = GatedLspsHandler::new(FakeInner::default());
    assert!(
        handler.install_gate(std::sync::Arc::new(Lsps1Gate::refusing(
            std::sync::Arc::new(guard())
        )))
    );
    let info = read_raw(&handler, request("lsps1.get_info", json!({})).as_bytes());
    handler.handle_custom_message(info, peer(1)).unwrap();
    let extend = read_raw(
        &handler,
        request("lsps7.get_order", json!({"order_id": "x"})).as_bytes(),
    );
    handler.handle_custom_message(extend, peer(1)).unwrap();
    let answers = replies(&handler);
    assert_eq!(answers[0]["error"]["code"], -32601);
    assert_eq!(answers[1]["error"]["code"], -32601);
    assert!(handler.inner().received.lock().unwrap().is_empty());
}

/// Thousands of `create_order` from distinct node ids (which cost nothing to make): past the
/// shared limit they are refused at the gate, before the server, with when to try again; a
/// node over its own limit is refused without using up the shared one; other requests keep
/// being served.
#[test]
fn a_flood_of_p2p_orders_from_fresh_node_ids_is_refused_at_the_gate() {
    let limits = Lsps1Limits {
        p2p_orders_per_hour_per_peer: 2,
        p2p_orders_per_minute: 50,
        ..Lsps1Limits::default()
    };
    let handler = GatedLspsHandler::new(FakeInner::default());
    let server = std::sync::Arc::new(EchoServer::default());
    assert!(handler.install_gate(std::sync::Arc::new(Lsps1Gate::serving(
        std::sync::Arc::new(guard()),
        server.clone(),
        &limits,
    ))));
    let order = create_order_with(|_| {});
    let send = |peer: PublicKey, payload: &str| {
        let message = read_raw(&handler, payload.as_bytes());
        handler.handle_custom_message(message, peer).unwrap();
        replies(&handler).pop().expect("an answer")
    };

    // One node: its own limit first, and the shared budget is not spent by its refusals.
    let alice = peer(1);
    for _ in 0..2 {
        assert!(send(alice, &order)["result"].is_object());
    }
    for _ in 0..5 {
        let refused = send(alice, &order);
        assert_eq!(refused["error"]["code"], -32003, "{refused}");
        assert!(refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("from this node"));
    }

    // 3,000 fresh node ids: 48 more fit in the shared minute, the rest are refused.
    let secp = Secp256k1::new();
    let mut served = 2;
    let mut refused = 0;
    for i in 0..3_000u32 {
        let mut secret = [0x42u8; 32];
        secret[..4].copy_from_slice(&i.to_be_bytes());
        let node = SecretKey::from_slice(&secret).unwrap().public_key(&secp);
        let answer = send(node, &order);
        if answer["result"].is_object() {
            served += 1;
        } else {
            assert_eq!(answer["error"]["code"], -32003, "{answer}");
            assert!(
                answer["error"]["data"]["retry_after_secs"]
                    .as_u64()
                    .unwrap()
                    >= 1
            );
            refused += 1;
        }
    }
    assert_eq!(served, 50);
    assert_eq!(refused, 2_952);
    let orders_served = server
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, method)| method == "lsps1.create_order")
        .count();
    assert_eq!(orders_served, 50, "refused orders never reach the server");

    // Everything else is still answered.
    let info = send(peer(2), &request("lsps1.get_info", json!({})));
    assert_eq!(info["result"]["served"], "lsps1.get_info");
}
