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

use super::PublicState;

mod flow_schemas;
mod schemas;

use schemas::schemas;
pub use schemas::{NODE_ID_PATTERN, SCID_PATTERN};

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
    op(
        "get",
        "/api/v1/lsps7/get_extendable_channels",
        "LSPS7: the extendable lease of an order's channel (empty if it is not extendable)",
        None,
        Some("ExtendableChannels"),
        Some("order_id"),
    ),
    op(
        "post",
        "/api/v1/lsps7/create_order",
        "LSPS7: order an extension of a lease",
        Some("ExtensionOrderRequest"),
        Some("ExtensionOrder"),
        None,
    ),
    op(
        "get",
        "/api/v1/lsps7/get_order",
        "LSPS7: an extension order by id",
        None,
        Some("ExtensionOrder"),
        Some("order_id"),
    ),
    op(
        "get",
        "/node/info",
        "Open LSP API: the node and the channels on offer",
        None,
        Some("NodeInfo"),
        None,
    ),
    op(
        "post",
        "/channel/buy",
        "Open LSP API: buy a channel, paid before its node is named; order_id is a bearer claim token",
        Some("ChannelBuyRequest"),
        Some("ChannelQuote"),
        None,
    ),
    op(
        "post",
        "/channel/manual_finalise",
        "Open LSP API: name the node a paid channel goes to (once)",
        Some("ManualFinaliseRequest"),
        Some("ChannelOrder"),
        None,
    ),
    op(
        "get",
        "/channel/order",
        "Open LSP API: an order by its claim token",
        None,
        Some("ChannelOrder"),
        Some("order_id"),
    ),
    op(
        "get",
        "/lnurl/channel",
        "LNURL-channel (LUD-02): ?order_id= gives the channelRequest; the callback ?k1=&remoteid= claims the order",
        None,
        Some("LnurlChannel"),
        None,
    ),
    op(
        "post",
        "/flow/quote",
        "Flow: the price of a channel for this account, its credit applied",
        Some("FlowOrderRequest"),
        Some("FlowQuote"),
        None,
    ),
    op(
        "post",
        "/flow/create",
        "Flow: buy a channel (credit pays first; the invoice asks for the rest)",
        Some("FlowOrderRequest"),
        Some("FlowOrder"),
        None,
    ),
    op(
        "post",
        "/flow/status",
        "Flow: one of this account's orders",
        Some("FlowOrderIdRequest"),
        Some("FlowOrder"),
        None,
    ),
    op(
        "post",
        "/flow/cancel",
        "Flow: cancel an order before its channel opens; what was paid becomes credit (or goes back)",
        Some("FlowCancelRequest"),
        Some("FlowOrder"),
        None,
    ),
    op(
        "get",
        "/flow/coupons",
        "Flow: this account's credit coupons",
        None,
        Some("FlowCoupons"),
        None,
    ),
    op(
        "post",
        "/flow/redeem",
        "Flow: redeem a credit coupon into this account's credit (once)",
        Some("FlowRedeemRequest"),
        Some("FlowRedeemed"),
        None,
    ),
    op("get", PATH, "This document", None, Some("OpenApi"), None),
];

/// The security scheme of the routes that need a customer's API key.
const FLOW_KEY: &str = "flowApiKey";

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
        if operation.path.starts_with("/flow/") {
            entry["security"] = json!([{ FLOW_KEY: [] }]);
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
        "components": {
            "schemas": all_schemas(),
            "securitySchemes": {
                FLOW_KEY: {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-VOLTAGE-AUTH",
                    "description": "a customer's API key (x-api-key is read too)",
                },
            },
        },
    })
}

const DESCRIPTION: &str = "Channel purchases (LSPS1 / bLIP-51) and lease extensions (LSPS7, \
bLIP-57 draft) over HTTP in the dialects wallets speak. Orders are shared with the Lightning p2p \
interface. Errors are \
{error, code, message, data}: -32700/-32600/-32602/100/102 are 400, 1 and -32002 are 403, \
101 and -32601 are 404, -32001 is 409, a missing or invalid API key on /flow/ is 401 (-32002), a credit coupon \
redeemed before is 409, -32003 is 429 (Retry-After), -32004 is 409, an oversized body is 413, \
a request over the time limit 503, anything else 500.";

/// Every component schema: the LSPS1 dialects' and the open LSP API's, then the Flow API's.
fn all_schemas() -> Value {
    let mut all = schemas();
    for (name, schema) in flow_schemas::flow_schemas() {
        all[name] = schema;
    }
    all
}

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
