//! bLIP-50 conformance in front of lightning-liquidity's `LiquidityManager`.
//!
//! lightning-liquidity 0.3.0-rc3 falls short of bLIP-50/51 where a client can see it:
//! - `manager.rs` `handle_custom_message`: one unparsable message (bad JSON, unknown method,
//!   mistyped params) gets a -32700 reply and puts the peer on `ignored_peers` until it
//!   disconnects; every later request from it is dropped without an answer.
//! - `lsps0/ser.rs`: request params are parsed with serde's default, so unknown params are
//!   silently ignored (bLIP-50: -32602 with `data.unrecognized`); unknown methods are parse
//!   failures (bLIP-50: -32601 "Method not found").
//! - `lsps1/service.rs` `handle_create_order_request`: an option mismatch is error 100 with a
//!   Debug dump of our options in `data` (a string), not `{"property": ...}`; it also rejects
//!   `channel_expiry_blocks` 0 that way.
//!
//! [`RequestGuard::check`] looks at each raw LSPS message (custom message type 37913) first and
//! returns a [`Verdict`]: forward the (possibly cleaned) request, reply ourselves with the
//! correct error, or drop it (responses and notifications, which get no reply in JSON-RPC).
//! Everything forwarded is something the manager parses, so no peer lands on its ignore list.
//! Checks, in order: JSON syntax (-32700), request shape (-32600), method (-32601), unknown
//! params (-32602 `unrecognized`; a null value counts as absent and is removed), missing or
//! mistyped known params (-32602 `property`), then for `lsps1.create_order` the options from
//! `get_info` (100 `property` naming the option).
//!
//! [`GuardedMessageHandler`] wraps any `CustomMessageHandler` that speaks `RawLSPSMessage` (the
//! `LiquidityManager`) and applies the guard; its own replies go out through
//! `get_and_clear_pending_msg` with the inner handler's messages. lightning-net-tokio calls
//! `PeerManager::process_events` after every read, which collects them.
//!
//! Once an [`Lsps1Server`] is installed ([`GuardedMessageHandler::serve_lsps1_with`]), the
//! `lsps1.*` requests that pass the guard are answered by it, not by the manager (which then
//! only answers LSPS0). The order service needs this: lightning-liquidity 0.3's
//! `send_payment_details` picks the order id itself and queues the answer before returning, so
//! an order could not be persisted before the client learns of it; it also has no way to answer
//! error 1, and one fixed spelling of payment states.

use std::sync::{Arc, Mutex, OnceLock};

use bitcoin::address::{Address, NetworkUnchecked};
use bitcoin::secp256k1::PublicKey;
use bitcoin::Network;
use lightning::ln::msgs::{DecodeError, Init, LightningError};
use lightning::ln::peer_handler::CustomMessageHandler;
use lightning::ln::wire::CustomMessageReader;
use lightning::types::features::{InitFeatures, NodeFeatures};
use lightning::util::ser::LengthLimitedRead;
use lightning_liquidity::lsps0::ser::{RawLSPSMessage, LSPS_MESSAGE_TYPE_ID};
use serde_json::{Map, Value};

use crate::config::lsps1::Lsps1Options;
use crate::lsps1::rpc::{RpcError, INVALID_REQUEST};

/// What to do with one incoming LSPS message.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Hand this payload (the original, or the request with null unknown params removed) to
    /// the liquidity manager.
    Forward(String),
    /// Send this JSON-RPC response to the peer; the manager never sees the request.
    Reply(String),
    /// Neither answer nor forward (a response or notification we did not ask for).
    Drop(&'static str),
}

/// The type a request parameter must have.
#[derive(Debug, Clone, Copy)]
enum ParamType {
    /// A u64 amount written as a decimal string (LSPS0 convention).
    AmountString,
    U16,
    /// u32 and at least 1.
    PositiveU32,
    Bool,
    String,
    /// An address string valid on our network.
    Address,
}

struct ParamSpec {
    name: &'static str,
    kind: ParamType,
    required: bool,
}

const fn required(name: &'static str, kind: ParamType) -> ParamSpec {
    ParamSpec {
        name,
        kind,
        required: true,
    }
}

const fn optional(name: &'static str, kind: ParamType) -> ParamSpec {
    ParamSpec {
        name,
        kind,
        required: false,
    }
}

const CREATE_ORDER_PARAMS: &[ParamSpec] = &[
    required("lsp_balance_sat", ParamType::AmountString),
    required("client_balance_sat", ParamType::AmountString),
    required("required_channel_confirmations", ParamType::U16),
    required("funding_confirms_within_blocks", ParamType::U16),
    required("channel_expiry_blocks", ParamType::PositiveU32),
    optional("token", ParamType::String),
    required("announce_channel", ParamType::Bool),
    optional("refund_onchain_address", ParamType::Address),
];

const GET_ORDER_PARAMS: &[ParamSpec] = &[required("order_id", ParamType::String)];

/// Methods we serve and their parameters. Anything else is -32601.
fn params_of(method: &str) -> Option<&'static [ParamSpec]> {
    match method {
        "lsps0.list_protocols" | "lsps1.get_info" => Some(&[]),
        "lsps1.create_order" => Some(CREATE_ORDER_PARAMS),
        "lsps1.get_order" => Some(GET_ORDER_PARAMS),
        _ => None,
    }
}

/// The pre-check applied to every incoming LSPS message.
#[derive(Debug, Clone)]
pub struct RequestGuard {
    options: Lsps1Options,
    network: Network,
}

impl RequestGuard {
    pub fn new(options: Lsps1Options, network: Network) -> Self {
        RequestGuard { options, network }
    }

    /// Decides what happens to one raw JSON-RPC message.
    pub fn check(&self, payload: &str) -> Verdict {
        let Ok(value) = serde_json::from_str::<Value>(payload) else {
            return reply(None, RpcError::parse_error());
        };
        let Value::Object(mut request) = value else {
            return reply(None, RpcError::new(INVALID_REQUEST, "Invalid Request"));
        };
        let Some(method) = request.get("method") else {
            if request.contains_key("result") || request.contains_key("error") {
                return Verdict::Drop("a response to a request we did not send");
            }
            return reply(
                request.get("id"),
                RpcError::new(INVALID_REQUEST, "Invalid Request"),
            );
        };
        let Some(id) = request.get("id").cloned() else {
            return Verdict::Drop("a notification (no id); JSON-RPC forbids answering it");
        };
        if !id.is_string() {
            return reply(Some(&id), invalid_request("id must be a string"));
        }
        if request.get("jsonrpc") != Some(&Value::String("2.0".into())) {
            return reply(Some(&id), invalid_request("jsonrpc must be \"2.0\""));
        }
        let Some(method) = method.as_str().map(str::to_string) else {
            return reply(Some(&id), invalid_request("method must be a string"));
        };
        let Some(specs) = params_of(&method) else {
            return reply(Some(&id), RpcError::method_not_found());
        };

        let mut params = match request.remove("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(params)) => params,
            Some(_) => {
                return reply(
                    Some(&id),
                    RpcError::invalid_property("params", "params must be an object"),
                )
            }
        };
        let original_len = params.len();
        // Unknown params: null means absent (real clients send misspelled nulls); any other
        // value is refused. Known optional params sent as null are dropped the same way.
        params.retain(|_, value| !value.is_null());
        let mut unrecognized: Vec<String> = params
            .keys()
            .filter(|name| !specs.iter().any(|s| s.name == name.as_str()))
            .cloned()
            .collect();
        if !unrecognized.is_empty() {
            unrecognized.sort();
            return reply(Some(&id), RpcError::unrecognized_params(unrecognized));
        }
        for spec in specs {
            match params.get(spec.name) {
                None if spec.required => {
                    return reply(
                        Some(&id),
                        RpcError::invalid_property(spec.name, "is required"),
                    )
                }
                None => {}
                Some(value) => {
                    if let Err(message) = self.check_type(spec.kind, value) {
                        return reply(Some(&id), RpcError::invalid_property(spec.name, message));
                    }
                }
            }
        }
        if method == "lsps1.create_order" {
            if let Some(error) = self.option_mismatch(&params) {
                return reply(Some(&id), error);
            }
        }

        if params.len() == original_len {
            return Verdict::Forward(payload.to_string());
        }
        request.insert("params".into(), Value::Object(params));
        Verdict::Forward(Value::Object(request).to_string())
    }

    fn check_type(&self, kind: ParamType, value: &Value) -> Result<(), &'static str> {
        let ok = match kind {
            ParamType::AmountString => value.as_str().is_some_and(|s| {
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u64>().is_ok()
            }),
            ParamType::U16 => value.as_u64().is_some_and(|n| n <= u64::from(u16::MAX)),
            ParamType::PositiveU32 => {
                return match value.as_u64() {
                    Some(0) => Err("must be at least 1 block"),
                    Some(n) if n <= u64::from(u32::MAX) => Ok(()),
                    _ => Err("must be an integer from 1 to 4294967295"),
                }
            }
            ParamType::Bool => value.is_boolean(),
            ParamType::String => value.is_string(),
            ParamType::Address => {
                let Some(text) = value.as_str() else {
                    return Err("must be a bitcoin address string");
                };
                return match text.parse::<Address<NetworkUnchecked>>() {
                    Ok(address) if address.is_valid_for_network(self.network) => Ok(()),
                    Ok(_) => Err("is an address for another network"),
                    Err(_) => Err("is not a valid bitcoin address"),
                };
            }
        };
        if ok {
            Ok(())
        } else {
            Err(match kind {
                ParamType::AmountString => "must be a string holding a whole number of sats",
                ParamType::U16 => "must be an integer from 0 to 65535",
                ParamType::Bool => "must be true or false",
                _ => "must be a string",
            })
        }
    }

    /// The bLIP-51 option checks (error 100), at least as strict as lightning-liquidity's own
    /// `is_valid` so that the manager never answers with its Debug-string variant.
    fn option_mismatch(&self, params: &Map<String, Value>) -> Option<RpcError> {
        let o = &self.options;
        let amount = |name: &str| {
            params
                .get(name)
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<u64>().ok())
        };
        let number = |name: &str| params.get(name).and_then(Value::as_u64);
        let (lsp, client) = (amount("lsp_balance_sat")?, amount("client_balance_sat")?);
        let expiry = number("channel_expiry_blocks")?;
        let confirmations = number("required_channel_confirmations")?;
        let confirms_within = number("funding_confirms_within_blocks")?;
        let below = |option: &str, what: &str| {
            Some(RpcError::option_mismatch(
                option,
                &format!("{what} is below the minimum"),
            ))
        };
        let above = |option: &str, what: &str| {
            Some(RpcError::option_mismatch(
                option,
                &format!("{what} is above the maximum"),
            ))
        };
        if lsp < o.min_initial_lsp_balance_sat {
            return below("min_initial_lsp_balance_sat", "lsp_balance_sat");
        }
        if lsp > o.max_initial_lsp_balance_sat {
            return above("max_initial_lsp_balance_sat", "lsp_balance_sat");
        }
        if client < o.min_initial_client_balance_sat {
            return below("min_initial_client_balance_sat", "client_balance_sat");
        }
        if client > o.max_initial_client_balance_sat {
            return above("max_initial_client_balance_sat", "client_balance_sat");
        }
        match lsp.checked_add(client) {
            Some(size) if size < o.min_channel_balance_sat => {
                return below(
                    "min_channel_balance_sat",
                    "lsp_balance_sat + client_balance_sat",
                )
            }
            Some(size) if size <= o.max_channel_balance_sat => {}
            _ => {
                return above(
                    "max_channel_balance_sat",
                    "lsp_balance_sat + client_balance_sat",
                )
            }
        }
        if expiry > u64::from(o.max_channel_expiry_blocks) {
            return above("max_channel_expiry_blocks", "channel_expiry_blocks");
        }
        if confirmations < u64::from(o.min_required_channel_confirmations) {
            return below(
                "min_required_channel_confirmations",
                "required_channel_confirmations",
            );
        }
        if confirms_within < u64::from(o.min_funding_confirms_within_blocks) {
            return below(
                "min_funding_confirms_within_blocks",
                "funding_confirms_within_blocks",
            );
        }
        None
    }
}

fn invalid_request(message: &str) -> RpcError {
    RpcError::new(INVALID_REQUEST, "Invalid Request")
        .with_data(serde_json::json!({ "message": message }))
}

fn reply(id: Option<&Value>, error: RpcError) -> Verdict {
    // JSON-RPC: the id is echoed when it could be read and is a valid id (string), else null.
    let id = id.filter(|id| id.is_string());
    Verdict::Reply(error.to_response(id).to_string())
}

/// Answers the `lsps1.*` methods (the order service).
pub trait Lsps1Server: Send + Sync {
    /// Answers one request from `peer` that passed the guard (so its params are known, typed
    /// and within the options): the JSON-RPC `result`, or the error object to send.
    fn serve(
        &self,
        peer: PublicKey,
        method: &str,
        params: &Map<String, Value>,
    ) -> Result<Value, RpcError>;
}

/// A custom message handler that applies [`RequestGuard`] before the inner handler (the
/// `LiquidityManager`) sees a message.
pub struct GuardedMessageHandler<H> {
    inner: H,
    guard: RequestGuard,
    replies: Mutex<Vec<(PublicKey, RawLSPSMessage)>>,
    lsps1: OnceLock<Lsps1Answers>,
}

/// Who answers `lsps1.*` requests, once decided.
enum Lsps1Answers {
    Server(Arc<dyn Lsps1Server>),
    /// This node sells no channels: "Method not found" (bLIP-50), rather than the manager's
    /// silence.
    NotOffered,
}

impl<H> GuardedMessageHandler<H> {
    pub fn new(inner: H, guard: RequestGuard) -> Self {
        GuardedMessageHandler {
            inner,
            guard,
            replies: Mutex::new(Vec::new()),
            lsps1: OnceLock::new(),
        }
    }

    /// From now on `lsps1.*` requests are answered by `server`. Set once; later calls are
    /// ignored (returns false).
    pub fn serve_lsps1_with(&self, server: Arc<dyn Lsps1Server>) -> bool {
        self.lsps1.set(Lsps1Answers::Server(server)).is_ok()
    }

    /// From now on `lsps1.*` requests are answered "Method not found" (the node sells no
    /// channels). Set once, like [`Self::serve_lsps1_with`].
    pub fn refuse_lsps1(&self) -> bool {
        self.lsps1.set(Lsps1Answers::NotOffered).is_ok()
    }

    /// Lets the installed server answer `payload` if it is an `lsps1.*` request; returns false
    /// when the inner handler should get it.
    fn serve(&self, payload: &str, peer: PublicKey) -> bool {
        let Some(answers) = self.lsps1.get() else {
            return false;
        };
        // The guard accepted the payload, so it is a JSON object with a string id and method.
        let Ok(Value::Object(request)) = serde_json::from_str::<Value>(payload) else {
            return false;
        };
        let Some(method) = request.get("method").and_then(Value::as_str) else {
            return false;
        };
        if !method.starts_with("lsps1.") {
            return false;
        }
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let no_params = Map::new();
        let params = request
            .get("params")
            .and_then(Value::as_object)
            .unwrap_or(&no_params);
        let answer = match answers {
            Lsps1Answers::Server(server) => server.serve(peer, method, params),
            Lsps1Answers::NotOffered => Err(RpcError::method_not_found()),
        };
        let response = match answer {
            Ok(result) => serde_json::json!({ "jsonrpc": "2.0", "id": id, "result": result }),
            Err(error) => error.to_response(Some(&id)),
        };
        self.push_reply(peer, response.to_string());
        true
    }

    fn push_reply(&self, peer: PublicKey, payload: String) {
        self.replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((peer, RawLSPSMessage { payload }));
    }

    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// Queues an error response to request `request_id` of `peer`, for answers the inner
    /// handler has no call for (lightning-liquidity 0.3 cannot reject an order with error 1).
    pub fn reply_error(&self, peer: PublicKey, request_id: &str, error: &RpcError) {
        let payload = error
            .to_response(Some(&Value::String(request_id.to_string())))
            .to_string();
        self.push_reply(peer, payload);
    }
}

impl<H> CustomMessageReader for GuardedMessageHandler<H>
where
    H: CustomMessageReader<CustomMessage = RawLSPSMessage>,
{
    type CustomMessage = RawLSPSMessage;

    fn read<R: LengthLimitedRead>(
        &self,
        message_type: u16,
        buffer: &mut R,
    ) -> Result<Option<RawLSPSMessage>, DecodeError> {
        if message_type != LSPS_MESSAGE_TYPE_ID {
            return self.inner.read(message_type, buffer);
        }
        // A Lightning message is at most 65535 bytes, so the length always fits.
        let mut bytes = vec![0u8; buffer.remaining_bytes().min(u64::from(u16::MAX)) as usize];
        buffer
            .read_exact(&mut bytes)
            .map_err(|_| DecodeError::ShortRead)?;
        // Bytes that are not UTF-8 cannot be JSON: hand the guard an empty payload, which it
        // answers with a parse error, instead of failing the read (which would cost the peer
        // its connection).
        let payload = String::from_utf8(bytes).unwrap_or_default();
        Ok(Some(RawLSPSMessage { payload }))
    }
}

impl<H> CustomMessageHandler for GuardedMessageHandler<H>
where
    H: CustomMessageHandler<CustomMessage = RawLSPSMessage>,
{
    fn handle_custom_message(
        &self,
        msg: RawLSPSMessage,
        sender_node_id: PublicKey,
    ) -> Result<(), LightningError> {
        match self.guard.check(&msg.payload) {
            Verdict::Forward(payload) => {
                if self.serve(&payload, sender_node_id) {
                    return Ok(());
                }
                self.inner
                    .handle_custom_message(RawLSPSMessage { payload }, sender_node_id)
            }
            Verdict::Reply(payload) => {
                tracing::debug!(peer = %sender_node_id, reply = %payload, "answered an LSPS message before the liquidity manager");
                self.push_reply(sender_node_id, payload);
                Ok(())
            }
            Verdict::Drop(reason) => {
                tracing::debug!(peer = %sender_node_id, reason, "dropped an LSPS message");
                Ok(())
            }
        }
    }

    fn get_and_clear_pending_msg(&self) -> Vec<(PublicKey, RawLSPSMessage)> {
        let mut messages =
            std::mem::take(&mut *self.replies.lock().unwrap_or_else(|p| p.into_inner()));
        messages.extend(self.inner.get_and_clear_pending_msg());
        messages
    }

    fn peer_disconnected(&self, their_node_id: PublicKey) {
        self.replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(peer, _)| *peer != their_node_id);
        self.inner.peer_disconnected(their_node_id)
    }

    fn peer_connected(
        &self,
        their_node_id: PublicKey,
        msg: &Init,
        inbound: bool,
    ) -> Result<(), ()> {
        self.inner.peer_connected(their_node_id, msg, inbound)
    }

    fn provided_node_features(&self) -> NodeFeatures {
        self.inner.provided_node_features()
    }

    fn provided_init_features(&self, their_node_id: PublicKey) -> InitFeatures {
        self.inner.provided_init_features(their_node_id)
    }
}
