//! The error body of the public HTTP mirror and the LSPS1-code-to-HTTP-status table.
//!
//! Body: `{"error": "<LSPS1 message>", "code": <lsps code>, "message": "<one sentence>",
//! "data": {...}}` (`message` is `data.message` when present; `data` only when the LSPS1
//! error carries it). ZEUS checks `error` and shows `message`.
//!
//! | LSPS1 code | meaning | HTTP status |
//! |---|---|---|
//! | -32700 | malformed JSON | 400 |
//! | -32600 | invalid request | 400 |
//! | -32602 | invalid params (`data.property` / `data.unrecognized`) | 400 |
//! | 100 | option mismatch (`data.property`) | 400 |
//! | 102 | unrecognized token | 400 |
//! | 1 | client rejected | 403 |
//! | 101 | order not found | 404 |
//! | -32601 | no such method or path | 404 |
//! | -32001 | the order can no longer be cancelled | 409 |
//! | -32002 | the cancel signature is not the ordering node's | 403 |
//! | -32003 | too many requests from this address (`Retry-After` header) | 429 |
//! | -32004 | the order awaits no rate decision (Kaleidoswap `rate_decision`) | 409 |
//! | -32600 (body over the size limit) | request too large | 413 |
//! | -32600 (a path that does not take this method) | method not allowed | 405 |
//! | -32603 (request time limit reached) | timeout | 503 |
//! | -32603 and anything else | internal error | 500 |
//!
//! -32001 to -32004 are in JSON-RPC's implementation-defined server-error range: only the HTTP
//! mirror produces them (p2p clients cannot cancel, and are not rate-limited per address).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::lsps1::rpc::{self, RpcError};

/// The order is no longer CREATED, so `cancel_order` cannot cancel it.
pub const ORDER_NOT_CANCELLABLE: i32 = -32001;
/// A `cancel_order` signature that does not verify against the order's node id.
pub const NOT_AUTHORIZED: i32 = -32002;
/// The per-address rate limit was reached.
pub const RATE_LIMITED: i32 = crate::lsps1::rpc::RATE_LIMITED;
/// A Kaleidoswap `rate_decision` for an order that awaits none (every order: no RGB assets).
pub const NO_RATE_DECISION: i32 = -32004;

/// An LSPS1 error on its way out over HTTP, with the status the table above gives its code
/// unless a transport failure (size, time) chose another.
#[derive(Debug)]
pub struct HttpError {
    pub error: RpcError,
    pub status: StatusCode,
}

impl HttpError {
    pub fn with_status(error: RpcError, status: StatusCode) -> Self {
        HttpError { error, status }
    }
}

impl From<RpcError> for HttpError {
    fn from(error: RpcError) -> Self {
        HttpError {
            status: status_for(error.code),
            error,
        }
    }
}

/// The HTTP status for an LSPS1 error code.
pub fn status_for(code: i32) -> StatusCode {
    match code {
        rpc::PARSE_ERROR | rpc::INVALID_REQUEST | rpc::INVALID_PARAMS => StatusCode::BAD_REQUEST,
        rpc::OPTION_MISMATCH | rpc::UNRECOGNIZED_TOKEN => StatusCode::BAD_REQUEST,
        rpc::CLIENT_REJECTED => StatusCode::FORBIDDEN,
        rpc::ORDER_NOT_FOUND | rpc::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        ORDER_NOT_CANCELLABLE | NO_RATE_DECISION => StatusCode::CONFLICT,
        NOT_AUTHORIZED => StatusCode::FORBIDDEN,
        RATE_LIMITED => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON body for an LSPS1 error.
pub fn body_for(error: &RpcError) -> Value {
    let object = error.error_object();
    // `message` is the one sentence a wallet shows: the detail when the error has one.
    let sentence = object
        .pointer("/data/message")
        .and_then(Value::as_str)
        .unwrap_or(&error.message);
    let mut body = json!({
        "error": error.message,
        "code": error.code,
        "message": sentence,
    });
    if let Some(data) = object.get("data") {
        body["data"] = data.clone();
    }
    body
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, Json(body_for(&self.error))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_mismatch_keeps_its_data_and_maps_to_400() {
        let error = RpcError::option_mismatch("lsp_balance_sat", "is below the minimum");
        let body = body_for(&error);
        assert_eq!(status_for(error.code), StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], 100);
        assert_eq!(body["error"], "Option mismatch");
        assert_eq!(body["message"], "is below the minimum");
        assert_eq!(body["data"]["property"], "lsp_balance_sat");
    }

    #[test]
    fn unknown_order_is_404_and_internal_is_500() {
        assert_eq!(status_for(rpc::ORDER_NOT_FOUND), StatusCode::NOT_FOUND);
        assert_eq!(
            status_for(rpc::INTERNAL_ERROR),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(status_for(rpc::CLIENT_REJECTED), StatusCode::FORBIDDEN);
        let body = body_for(&RpcError::new(rpc::ORDER_NOT_FOUND, "Order not found"));
        assert!(body.get("data").is_none());
    }
}
