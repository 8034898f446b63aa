//! The OpenAPI 3 document of the public API, built from [`OPERATIONS`] (one row per route the
//! router serves) and the schemas below, and served at `/api/v1/openapi.json`.
//!
//! The document is checked into the repository as `docs/openapi.json`; a test regenerates it
//! and fails on any difference, and another test calls every row of [`OPERATIONS`] on a live
//! router, so neither the file nor the table can drift from what is served.
//! `LSP_NODE_WRITE_OPENAPI=1 cargo test openapi` rewrites the file after a deliberate change.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::{kaleidoswap, PublicState};

pub const PATH: &str = "/api/v1/openapi.json";

/// One served operation: method, path, summary, request schema (POST) and result schema
/// (none for an operation that only ever answers an error).
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub request: Option<&'static str>,
    pub response: Option<&'static str>,
    /// Query parameter (name) the operation requires, for GETs that take one.
    pub query: Option<&'static str>,
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    request: Option<&'static str>,
    response: Option<&'static str>,
    query: Option<&'static str>,
) -> Operation {
    Operation {
        method,
        path,
        summary,
        request,
        response,
        query,
    }
}

/// Every route of the public router.
pub const OPERATIONS: &[Operation] = &[
    op(
        "get",
        "/api/v1/get_info",
        "Olympus: LSPS1 options and the node's URIs",
        None,
        Some("OlympusInfo"),
        None,
    ),
    op(
        "post",
        "/api/v1/create_order",
        "Olympus: create an order",
        Some("OrderRequest"),
        Some("Order"),
        None,
    ),
    op(
        "get",
        "/api/v1/get_order",
        "Olympus: an order by id",
        None,
        Some("Order"),
        Some("order_id"),
    ),
    op(
        "get",
        "/api/lsps1/v1/get_info",
        "Megalith: LSPS1 options and the node's URIs",
        None,
        Some("OlympusInfo"),
        None,
    ),
    op(
        "post",
        "/api/lsps1/v1/create_order",
        "Megalith: create an order",
        Some("OrderRequest"),
        Some("Order"),
        None,
    ),
    op(
        "get",
        "/api/lsps1/v1/get_order",
        "Megalith: an order by id",
        None,
        Some("Order"),
        Some("order_id"),
    ),
    op(
        "get",
        "/api/v1/lsps1/get_info",
        "Kaleidoswap: connection URL and options",
        None,
        Some("KaleidoswapInfo"),
        None,
    ),
    op(
        "post",
        "/api/v1/lsps1/create_order",
        "Kaleidoswap: create an order",
        Some("KaleidoswapOrderRequest"),
        Some("KaleidoswapOrder"),
        None,
    ),
    op(
        "post",
        "/api/v1/lsps1/get_order",
        "Kaleidoswap: an order by id",
        Some("KaleidoswapOrderIdRequest"),
        Some("KaleidoswapOrder"),
        None,
    ),
    op(
        "post",
        "/api/v1/lsps1/estimate_fees",
        "Kaleidoswap: the fees of an order paid over Lightning",
        Some("KaleidoswapEstimateRequest"),
        Some("FeeEstimate"),
        None,
    ),
    op(
        "get",
        "/api/v1/lsps1/network_info",
        "Kaleidoswap: network and chain height",
        None,
        Some("NetworkInfo"),
        None,
    ),
    op(
        "post",
        "/api/v1/lsps1/rate_decision",
        "Kaleidoswap: accept or refuse an asset order's new rate; no order here awaits one \
         (RGB assets are not sold), so the answer is 409 (-32004) or 404",
        Some("RateDecisionRequest"),
        None,
        None,
    ),
    op(
        "post",
        "/api/v1/lsps1/retry_delivery",
        "Kaleidoswap: retry an order's asset delivery; no order here has one",
        Some("RetryDeliveryRequest"),
        Some("RetryDelivery"),
        None,
    ),
    op(
        "post",
        "/api/v1/quote",
        "The price of an order per payment method, without creating it",
        Some("QuoteRequest"),
        Some("Quote"),
        None,
    ),
    op(
        "post",
        "/api/v1/cancel_order",
        "Cancel an unopened order, signed by the ordering node; payments are returned",
        Some("CancelRequest"),
        Some("Order"),
        None,
    ),
    op("get", PATH, "This document", None, Some("OpenApi"), None),
];

pub fn routes() -> Router<PublicState> {
    Router::new().route(PATH, get(|| async { Json(document()) }))
}

/// The document, deterministic (same build, same bytes).
pub fn document() -> Value {
    let mut paths = Map::new();
    for operation in OPERATIONS {
        let mut entry = json!({
            "summary": operation.summary,
            "operationId": operation_id(operation),
            "responses": {
                "default": json_content("Error", "An error; see the status table in the description"),
            },
        });
        if let Some(schema) = operation.response {
            entry["responses"]["200"] = json_content(schema, "Success");
        }
        if let Some(schema) = operation.request {
            entry["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": reference(schema) } },
            });
        }
        if let Some(name) = operation.query {
            entry["parameters"] = json!([{
                "name": name, "in": "query", "required": true, "schema": { "type": "string" },
            }]);
        }
        let item = paths
            .entry(operation.path)
            .or_insert_with(|| Value::Object(Map::new()));
        item[operation.method] = entry;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "lsp-node public LSPS1 API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
        },
        "paths": paths,
        "components": { "schemas": schemas() },
    })
}

const DESCRIPTION: &str = "Channel purchases (LSPS1 / bLIP-51) over HTTP in the dialects \
wallets speak. Orders are shared with the Lightning p2p interface. Errors are \
{error, code, message, data}: -32700/-32600/-32602/100/102 are 400, 1 and -32002 are 403, \
101 and -32601 are 404, -32001 is 409, -32003 is 429 (Retry-After), -32004 is 409, an oversized body is 413, \
a request over the time limit 503, anything else 500.";

fn operation_id(operation: &Operation) -> String {
    let name: String = operation
        .path
        .trim_start_matches("/api/")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{}_{name}", operation.method)
}

fn reference(schema: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{schema}") })
}

fn json_content(schema: &str, description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": reference(schema) } },
    })
}

fn sats_string() -> Value {
    json!({ "type": "string", "pattern": "^[0-9]+$", "description": "sats, as a decimal string" })
}

fn sats_integer() -> Value {
    json!({ "type": "integer", "minimum": 0, "description": "sats" })
}

/// An object schema; `required` is left out when empty, as OpenAPI 3.0 requires.
fn object(required: &[&str], properties: Value) -> Value {
    let mut schema = json!({ "type": "object", "properties": properties });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

fn nullable(mut schema: Value) -> Value {
    schema["nullable"] = json!(true);
    schema
}

/// A field that may only be null (or left out). OpenAPI 3.0 has no null type: `nullable` adds
/// null to the `type` beside it (and only when there is one), and the enum then allows nothing
/// else. The type names what the field would hold were it sold (and what a client would send).
fn only_null(kind: &str, description: &str) -> Value {
    json!({ "type": kind, "nullable": true, "enum": [null], "description": description })
}

/// A request body: as [`object`], and any field it does not list must be null (the guard
/// treats an unknown null field as absent and refuses any other with `data.unrecognized`).
fn request(required: &[&str], properties: Value) -> Value {
    let mut schema = object(required, properties);
    schema["additionalProperties"] = only_null(
        "string",
        "unknown fields are refused (-32602, data.unrecognized) unless null",
    );
    schema
}

/// A node id: a compressed secp256k1 public key in hex.
fn node_id() -> Value {
    json!({
        "type": "string",
        "pattern": NODE_ID_PATTERN,
        "description": "compressed secp256k1 node public key, hex",
    })
}

pub const NODE_ID_PATTERN: &str = "^0[23][0-9a-fA-F]{64}$";

fn schemas() -> Value {
    let string = json!({ "type": "string" });
    let integer = json!({ "type": "integer", "minimum": 0 });
    // The guard's ranges: u16 confirmation counts, a lease of 1 to u32::MAX blocks.
    let confirmations = json!({ "type": "integer", "minimum": 0, "maximum": u16::MAX });
    let expiry_blocks = json!({ "type": "integer", "minimum": 1, "maximum": u32::MAX });
    let boolean = json!({ "type": "boolean" });
    let time = json!({ "type": "string", "format": "date-time" });
    let options = |sats: fn() -> Value| {
        object(
            &[
                "min_required_channel_confirmations",
                "min_funding_confirms_within_blocks",
                "supports_zero_channel_reserve",
                "max_channel_expiry_blocks",
                "min_initial_client_balance_sat",
                "max_initial_client_balance_sat",
                "min_initial_lsp_balance_sat",
                "max_initial_lsp_balance_sat",
                "min_channel_balance_sat",
                "max_channel_balance_sat",
            ],
            json!({
                "min_required_channel_confirmations": integer,
                "min_funding_confirms_within_blocks": integer,
                "supports_zero_channel_reserve": boolean,
                "max_channel_expiry_blocks": integer,
                "min_initial_client_balance_sat": sats(),
                "max_initial_client_balance_sat": sats(),
                "min_initial_lsp_balance_sat": sats(),
                "max_initial_lsp_balance_sat": sats(),
                "min_channel_balance_sat": sats(),
                "max_channel_balance_sat": sats(),
            }),
        )
    };
    let params_required = [
        "lsp_balance_sat",
        "client_balance_sat",
        "required_channel_confirmations",
        "funding_confirms_within_blocks",
        "channel_expiry_blocks",
        "announce_channel",
    ];
    let params = |sats: fn() -> Value| {
        json!({
            "lsp_balance_sat": sats(),
            "client_balance_sat": sats(),
            "required_channel_confirmations": confirmations,
            "funding_confirms_within_blocks": confirmations,
            "channel_expiry_blocks": expiry_blocks,
            "token": nullable(string.clone()),
            "refund_onchain_address": nullable(string.clone()),
            "announce_channel": boolean,
        })
    };
    let with = |mut base: Value, extra: Value| {
        for (name, schema) in extra.as_object().into_iter().flatten() {
            base[name] = schema.clone();
        }
        base
    };
    let payment = |sats: fn() -> Value, onchain: bool| {
        let mut properties = json!({
            "state": { "type": "string", "enum": ["EXPECT_PAYMENT", "HOLD", "PAID", "REFUNDED"] },
            "expires_at": time,
            "fee_total_sat": sats(),
            "order_total_sat": sats(),
        });
        if onchain {
            properties = with(
                properties,
                json!({
                    "address": string,
                    "min_onchain_payment_confirmations": integer,
                    "min_fee_for_0conf": integer,
                    "refund_onchain_address": nullable(string.clone()),
                }),
            );
        } else {
            properties["invoice"] = string.clone();
        }
        object(
            &["state", "expires_at", "fee_total_sat", "order_total_sat"],
            properties,
        )
    };
    let order = |sats: fn() -> Value| {
        let mut properties = with(
            params(sats),
            json!({
                "order_id": string,
                "created_at": time,
                "order_state": { "type": "string", "enum": ["CREATED", "COMPLETED", "FAILED"] },
                "payment": object(&[], json!({
                    "bolt11": payment(sats, false),
                    "onchain": payment(sats, true),
                })),
                "channel": nullable(object(
                    &["funded_at", "funding_outpoint", "expires_at"],
                    json!({ "funded_at": time, "funding_outpoint": string, "expires_at": time }),
                )),
            }),
        );
        properties["token"] = nullable(string.clone());
        properties
    };
    let order_required = [
        &params_required[..],
        &[
            "order_id",
            "created_at",
            "order_state",
            "payment",
            "channel",
        ],
    ]
    .concat();
    let price = {
        let names = [
            "base_fee_sat",
            "proportional_fee_sat",
            "lease_fee_sat",
            "onchain_fee_sat",
            "refund_reserve_sat",
            "discount_sat",
            "fee_total_sat",
            "order_total_sat",
        ];
        let properties: Map<String, Value> = names
            .iter()
            .map(|name| (name.to_string(), sats_string()))
            .collect();
        object(&names, Value::Object(properties))
    };
    let no_asset = |kind| only_null(kind, "RGB asset channels are not sold: null or left out");
    let asset_fields = json!({
        "asset_id": no_asset("string"),
        "lsp_asset_amount": no_asset("integer"),
        "client_asset_amount": no_asset("integer"),
        "rfq_id": no_asset("string"),
    });
    let mut kaleidoswap_options = options(sats_integer);
    kaleidoswap_options["properties"] = with(
        kaleidoswap_options["properties"].take(),
        json!({
            "min_onchain_payment_confirmations": nullable(integer.clone()),
            "min_onchain_payment_size_sat": nullable(sats_integer()),
        }),
    );
    let kaleidoswap_request = with(
        with(params(sats_integer), asset_fields.clone()),
        json!({
            "email": nullable(json!({
                "type": "string", "format": "email", "maxLength": kaleidoswap::MAX_EMAIL_LEN,
            })),
        }),
    );
    // Every order made in this dialect has both payment options; one made elsewhere may lack
    // the on-chain one.
    let mut kaleidoswap_order = order(sats_integer);
    kaleidoswap_order["payment"]["required"] = json!(["bolt11"]);
    let access_token = json!({
        "type": "string",
        "maxLength": 0,
        "nullable": true,
        "description": "no access tokens are issued: empty, null or left out",
    });
    let mut olympus_info = options(sats_string);
    olympus_info["properties"] = with(
        olympus_info["properties"].take(),
        json!({
            "uris": { "type": "array", "items": string, "description": "node_id@host:port" },
            "min_onchain_payment_confirmations": nullable(integer.clone()),
            "min_onchain_payment_size_sat": nullable(sats_string()),
        }),
    );
    olympus_info["required"]
        .as_array_mut()
        .expect("options list their required fields")
        .push(json!("uris"));
    json!({
        "OlympusInfo": olympus_info,
        "OrderRequest": request(
            &[&params_required[..], &["public_key"]].concat(),
            with(params(sats_string), json!({ "public_key": node_id() })),
        ),
        "Order": object(&order_required, order(sats_string)),
        "KaleidoswapInfo": object(&["lsp_connection_url", "options", "assets"], json!({
            "lsp_connection_url": { "type": "string", "description": "node_id@host:port" },
            "options": kaleidoswap_options,
            "assets": {
                "type": "array",
                "items": { "type": "object" },
                "description": "RGB assets sold with channels: none",
            },
        })),
        "KaleidoswapOrderRequest": request(
            &["client_pubkey", "lsp_balance_sat", "client_balance_sat",
              "required_channel_confirmations", "funding_confirms_within_blocks",
              "channel_expiry_blocks", "refund_onchain_address"],
            with(kaleidoswap_request.clone(), json!({
                "client_pubkey": node_id(),
                "refund_onchain_address": {
                    "type": "string",
                    "minLength": 1,
                    "description": "required: every order of this dialect offers on-chain \
                                    payment, which is only taken with an address to return it to",
                },
            })),
        ),
        "KaleidoswapEstimateRequest": request(
            &["lsp_balance_sat", "client_balance_sat", "required_channel_confirmations",
              "funding_confirms_within_blocks", "channel_expiry_blocks"],
            with(kaleidoswap_request, json!({ "client_pubkey": nullable(node_id()) })),
        ),
        "KaleidoswapOrder": object(
            &[&order_required[..], &["client_pubkey"]].concat(),
            with(with(kaleidoswap_order, asset_fields), json!({
                "client_pubkey": node_id(),
                "asset_price_sat": no_asset("integer"),
                "asset_delivery_status": { "type": "string", "enum": ["NOT_REQUIRED"] },
            })),
        ),
        "KaleidoswapOrderIdRequest": request(&["order_id"], json!({
            "order_id": string,
            "access_token": access_token,
        })),
        "RateDecisionRequest": request(&["order_id", "accept_new_rate"], json!({
            "order_id": string,
            "access_token": access_token,
            "accept_new_rate": boolean,
        })),
        "RetryDeliveryRequest": request(&["order_id"], json!({ "order_id": string })),
        "RetryDelivery": object(&["status", "message"], json!({
            "status": { "type": "string", "enum": ["no_pending_delivery"] },
            "message": string,
        })),
        "FeeEstimate": object(
            &["setup_fee", "capacity_fee", "duration_fee", "total_fee", "applied_discount"],
            json!({
                "setup_fee": sats_integer(),
                "capacity_fee": sats_integer(),
                "duration_fee": sats_integer(),
                "total_fee": sats_integer(),
                "applied_discount": sats_integer(),
                "discount_code": nullable(string.clone()),
            }),
        ),
        "NetworkInfo": object(&["network", "height"], json!({
            "network": {
                "type": "string",
                "enum": ["Mainnet", "Testnet", "Signet", "Regtest"],
                "description": "testnet4 is Testnet",
            },
            "height": integer,
        })),
        "QuoteRequest": request(
            &params_required,
            with(params(sats_string), json!({ "public_key": nullable(node_id()) })),
        ),
        "Quote": object(
            &["lsp_balance_sat", "client_balance_sat", "channel_expiry_blocks",
              "funding_confirms_within_blocks", "bolt11"],
            json!({
                "lsp_balance_sat": sats_string(),
                "client_balance_sat": sats_string(),
                "channel_expiry_blocks": expiry_blocks,
                "funding_confirms_within_blocks": confirmations,
                "bolt11": price,
                "onchain": price,
            }),
        ),
        "CancelRequest": request(&["order_id", "signature"], json!({
            "order_id": string,
            "signature": {
                "type": "string",
                "description": "Lightning signmessage (zbase32) of `cancel_order:<order_id>` by the order's node key",
            },
        })),
        "Error": object(&["error", "code", "message"], json!({
            "error": string,
            "code": { "type": "integer" },
            "message": string,
            "data": { "type": "object" },
        })),
        "OpenApi": { "type": "object" },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");

    #[test]
    fn openapi_document_matches_the_checked_in_copy() {
        let generated = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        if std::env::var_os("LSP_NODE_WRITE_OPENAPI").is_some() {
            std::fs::write(CHECKED_IN, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/openapi.json differs from the served document; run \
             `LSP_NODE_WRITE_OPENAPI=1 cargo test openapi` and commit the file"
        );
    }

    /// Two OpenAPI 3.0.3 rules the validator does not enforce: `nullable` means nothing without
    /// a `type` beside it, and an `enum` beside it must list null for null to be allowed.
    #[test]
    fn every_nullable_schema_states_its_type_and_enums_list_null() {
        fn walk(value: &Value, at: &str) {
            match value {
                Value::Object(fields) => {
                    if fields.get("nullable") == Some(&json!(true)) {
                        assert!(fields.contains_key("type"), "{at}: nullable without a type");
                        if let Some(allowed) = fields.get("enum").and_then(Value::as_array) {
                            assert!(allowed.contains(&Value::Null), "{at}: enum without null");
                        }
                    }
                    for (name, field) in fields {
                        walk(field, &format!("{at}/{name}"));
                    }
                }
                Value::Array(items) => items.iter().for_each(|item| walk(item, at)),
                _ => {}
            }
        }
        walk(&document(), "#");
    }

    #[test]
    fn every_reference_names_a_schema() {
        let document = document();
        let text = document.to_string();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| *c != '"').collect();
            assert!(schemas.contains_key(&name), "missing schema {name}");
        }
    }
}
