//! The one check of every LSPS1 request, from a peer or from any HTTP dialect.
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
//! `get_info` (100 `property` naming the option). The `lsps7.*` methods (lease extension)
//! get the same framing and param checks; whether the channel named is an extendable lease is
//! the service's question.
//!
//! [`RequestGuard::read`] does the same and also hands back the typed [`Lsps1Request`];
//! [`RequestGuard::create_order`] is the params part alone, which every HTTP dialect calls with
//! the fields of its body. So an order request is checked once, by one piece of code, whichever
//! way it came.

use bitcoin::address::{Address, NetworkUnchecked};
use bitcoin::Network;
use serde_json::{Map, Value};

use crate::config::lsps1::Lsps1Options;
use crate::lsps1::order::OrderParams;
use crate::lsps1::rpc::{RpcError, INVALID_REQUEST};
pub use crate::node::lsps::Verdict;

/// A `create_order` request that passed every check: its params are typed and within the
/// options, its refund address (if any) is valid on our network.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateOrderRequest {
    pub params: OrderParams,
    pub refund_address: Option<Address>,
}

/// An `lsps1.*` request that passed the guard.
#[derive(Debug, Clone, PartialEq)]
pub enum Lsps1Request {
    GetInfo,
    CreateOrder(CreateOrderRequest),
    GetOrder { order_id: String },
}

impl Lsps1Request {
    /// The JSON-RPC method name.
    pub fn method(&self) -> &'static str {
        match self {
            Lsps1Request::GetInfo => "lsps1.get_info",
            Lsps1Request::CreateOrder(_) => "lsps1.create_order",
            Lsps1Request::GetOrder { .. } => "lsps1.get_order",
        }
    }
}

/// An `lsps7.*` request (lease extension, bLIP-57 draft) that passed the guard: params typed,
/// the refund address valid on our network. Whether the channel is an extendable lease of the
/// client is for the service to say.
#[derive(Debug, Clone, PartialEq)]
pub enum Lsps7Request {
    GetExtendableChannels,
    CreateOrder(ExtensionOrderRequest),
    GetOrder { order_id: String },
}

/// An `lsps7.create_order` request whose params are typed, its refund address (if any) valid on
/// our network.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtensionOrderRequest {
    pub short_channel_id: String,
    pub channel_extension_expiry_blocks: u32,
    pub token: Option<String>,
    pub refund_address: Option<Address>,
}

impl Lsps7Request {
    /// The JSON-RPC method name.
    pub fn method(&self) -> &'static str {
        match self {
            Lsps7Request::GetExtendableChannels => "lsps7.get_extendable_channels",
            Lsps7Request::CreateOrder(_) => "lsps7.create_order",
            Lsps7Request::GetOrder { .. } => "lsps7.get_order",
        }
    }
}

/// A JSON-RPC request that passed the guard.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedRequest {
    /// The request id (a string).
    pub id: Value,
    pub method: String,
    /// The request as the liquidity manager may read it: the original text, or the request
    /// with null params removed.
    pub payload: String,
    /// The typed request, for the `lsps1.*` methods; `None` for the others.
    pub lsps1: Option<Lsps1Request>,
    /// The typed request, for the `lsps7.*` methods; `None` for the others.
    pub lsps7: Option<Lsps7Request>,
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

const EXTENSION_ORDER_PARAMS: &[ParamSpec] = &[
    required("short_channel_id", ParamType::String),
    required("channel_extension_expiry_blocks", ParamType::PositiveU32),
    optional("token", ParamType::String),
    optional("refund_onchain_address", ParamType::Address),
];

/// Methods we serve and their parameters. Anything else is -32601.
fn params_of(method: &str) -> Option<&'static [ParamSpec]> {
    match method {
        "lsps0.list_protocols" | "lsps1.get_info" | "lsps7.get_extendable_channels" => Some(&[]),
        "lsps1.create_order" => Some(CREATE_ORDER_PARAMS),
        "lsps1.get_order" | "lsps7.get_order" => Some(GET_ORDER_PARAMS),
        "lsps7.create_order" => Some(EXTENSION_ORDER_PARAMS),
        _ => None,
    }
}

/// The pre-check applied to every incoming LSPS message and every HTTP order request.
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
        match self.read(payload) {
            Ok(checked) => Verdict::Forward(checked.payload),
            Err(verdict) => verdict,
        }
    }

    /// Checks one raw JSON-RPC message; the error is the verdict for a message that is not a
    /// request we serve with valid params (a reply, or a drop).
    pub fn read(&self, payload: &str) -> Result<CheckedRequest, Verdict> {
        let Ok(value) = serde_json::from_str::<Value>(payload) else {
            return Err(reply(None, RpcError::parse_error()));
        };
        let Value::Object(mut request) = value else {
            return Err(reply(
                None,
                RpcError::new(INVALID_REQUEST, "Invalid Request"),
            ));
        };
        let Some(method) = request.get("method") else {
            if request.contains_key("result") || request.contains_key("error") {
                return Err(Verdict::Drop("a response to a request we did not send"));
            }
            return Err(reply(
                request.get("id"),
                RpcError::new(INVALID_REQUEST, "Invalid Request"),
            ));
        };
        let Some(id) = request.get("id").cloned() else {
            return Err(Verdict::Drop(
                "a notification (no id); JSON-RPC forbids answering it",
            ));
        };
        if !id.is_string() {
            return Err(reply(Some(&id), invalid_request("id must be a string")));
        }
        if request.get("jsonrpc") != Some(&Value::String("2.0".into())) {
            return Err(reply(Some(&id), invalid_request("jsonrpc must be \"2.0\"")));
        }
        let Some(method) = method.as_str().map(str::to_string) else {
            return Err(reply(Some(&id), invalid_request("method must be a string")));
        };
        let Some(specs) = params_of(&method) else {
            return Err(reply(Some(&id), RpcError::method_not_found()));
        };
        let params = match request.remove("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(params)) => params,
            Some(_) => {
                return Err(reply(
                    Some(&id),
                    RpcError::invalid_property("params", "params must be an object"),
                ))
            }
        };
        let original_len = params.len();
        let params = self
            .check_params(specs, params)
            .map_err(|error| reply(Some(&id), error))?;
        let order_id = || {
            params
                .get("order_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let lsps7 = match method.as_str() {
            "lsps7.get_extendable_channels" => Some(Lsps7Request::GetExtendableChannels),
            "lsps7.create_order" => Some(Lsps7Request::CreateOrder(
                self.typed_extension(&params)
                    .map_err(|error| reply(Some(&id), error))?,
            )),
            "lsps7.get_order" => Some(Lsps7Request::GetOrder {
                order_id: order_id(),
            }),
            _ => None,
        };
        let lsps1 = match method.as_str() {
            "lsps1.get_info" => Some(Lsps1Request::GetInfo),
            "lsps1.create_order" => Some(Lsps1Request::CreateOrder(
                self.typed_order(&params)
                    .map_err(|error| reply(Some(&id), error))?,
            )),
            "lsps1.get_order" => Some(Lsps1Request::GetOrder {
                order_id: order_id(),
            }),
            _ => None,
        };
        let payload = if params.len() == original_len {
            payload.to_string()
        } else {
            request.insert("params".into(), Value::Object(params));
            Value::Object(request).to_string()
        };
        Ok(CheckedRequest {
            id,
            method,
            payload,
            lsps1,
            lsps7,
        })
    }

    /// Checks the params of a `create_order` request (from an HTTP body, with the dialect's
    /// own fields taken out): unknown params, types, the refund address and the options.
    pub fn create_order(&self, params: Map<String, Value>) -> Result<CreateOrderRequest, RpcError> {
        let params = self.check_params(CREATE_ORDER_PARAMS, params)?;
        self.typed_order(&params)
    }

    /// Checks the params of an `lsps7.create_order` request (from an HTTP body, with the
    /// dialect's own fields taken out): unknown params, types and the refund address.
    pub fn extension_order(
        &self,
        params: Map<String, Value>,
    ) -> Result<ExtensionOrderRequest, RpcError> {
        let params = self.check_params(EXTENSION_ORDER_PARAMS, params)?;
        self.typed_extension(&params)
    }

    /// The typed `lsps7.create_order` request from params [`Self::check_params`] accepted.
    fn typed_extension(
        &self,
        params: &Map<String, Value>,
    ) -> Result<ExtensionOrderRequest, RpcError> {
        let text = |name: &str| params.get(name).and_then(Value::as_str).map(str::to_string);
        let refund_address = match text("refund_onchain_address") {
            Some(address) => Some(self.address(&address).map_err(|message| {
                RpcError::invalid_property("refund_onchain_address", message)
            })?),
            None => None,
        };
        Ok(ExtensionOrderRequest {
            short_channel_id: text("short_channel_id").unwrap_or_default(),
            channel_extension_expiry_blocks: params
                .get("channel_extension_expiry_blocks")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or_default(),
            token: text("token"),
            refund_address,
        })
    }

    /// Unknown params (null means absent: real clients send misspelled nulls; any other value
    /// is refused), then presence and type of the known ones. Known params sent as null are
    /// dropped the same way. Returns the params without the nulls.
    fn check_params(
        &self,
        specs: &[ParamSpec],
        mut params: Map<String, Value>,
    ) -> Result<Map<String, Value>, RpcError> {
        params.retain(|_, value| !value.is_null());
        let mut unrecognized: Vec<String> = params
            .keys()
            .filter(|name| !specs.iter().any(|s| s.name == name.as_str()))
            .cloned()
            .collect();
        if !unrecognized.is_empty() {
            unrecognized.sort();
            return Err(RpcError::unrecognized_params(unrecognized));
        }
        for spec in specs {
            match params.get(spec.name) {
                None if spec.required => {
                    return Err(RpcError::invalid_property(spec.name, "is required"))
                }
                None => {}
                Some(value) => self
                    .check_type(spec.kind, value)
                    .map_err(|message| RpcError::invalid_property(spec.name, message))?,
            }
        }
        Ok(params)
    }

    /// The typed `create_order` request from params [`Self::check_params`] accepted, checked
    /// against the options.
    fn typed_order(&self, params: &Map<String, Value>) -> Result<CreateOrderRequest, RpcError> {
        // The types were checked, so every read below succeeds; a failure is a bug here.
        let typed = |name: &str| {
            RpcError::invalid_property(name, "does not have the type the guard checked")
        };
        let amount = |name: &str| {
            params
                .get(name)
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| typed(name))
        };
        let number = |name: &str| {
            params
                .get(name)
                .and_then(Value::as_u64)
                .ok_or_else(|| typed(name))
        };
        let narrow =
            |name: &str| number(name).and_then(|n| u16::try_from(n).map_err(|_| typed(name)));
        let order = OrderParams {
            lsp_balance_sat: amount("lsp_balance_sat")?,
            client_balance_sat: amount("client_balance_sat")?,
            required_channel_confirmations: narrow("required_channel_confirmations")?,
            funding_confirms_within_blocks: narrow("funding_confirms_within_blocks")?,
            channel_expiry_blocks: number("channel_expiry_blocks")
                .and_then(|n| u32::try_from(n).map_err(|_| typed("channel_expiry_blocks")))?,
            token: params
                .get("token")
                .and_then(Value::as_str)
                .map(str::to_string),
            announce_channel: params
                .get("announce_channel")
                .and_then(Value::as_bool)
                .ok_or_else(|| typed("announce_channel"))?,
        };
        let refund_address = match params.get("refund_onchain_address").and_then(Value::as_str) {
            Some(text) => Some(self.address(text).map_err(|message| {
                RpcError::invalid_property("refund_onchain_address", message)
            })?),
            None => None,
        };
        if let Some(error) = self.option_mismatch(&order) {
            return Err(error);
        }
        Ok(CreateOrderRequest {
            params: order,
            refund_address,
        })
    }

    /// `text` as an address on our network.
    fn address(&self, text: &str) -> Result<Address, &'static str> {
        text.parse::<Address<NetworkUnchecked>>()
            .map_err(|_| "is not a valid bitcoin address")?
            .require_network(self.network)
            .map_err(|_| "is an address for another network")
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
                return self.address(text).map(|_| ());
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
    fn option_mismatch(&self, order: &OrderParams) -> Option<RpcError> {
        let o = &self.options;
        let (lsp, client) = (order.lsp_balance_sat, order.client_balance_sat);
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
        if order.channel_expiry_blocks > o.max_channel_expiry_blocks {
            return above("max_channel_expiry_blocks", "channel_expiry_blocks");
        }
        if order.required_channel_confirmations < o.min_required_channel_confirmations {
            return below(
                "min_required_channel_confirmations",
                "required_channel_confirmations",
            );
        }
        if order.funding_confirms_within_blocks < o.min_funding_confirms_within_blocks {
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
