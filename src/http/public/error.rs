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
//! | -32601 | no such method | 404 |
//! | -32603 and anything else | internal error | 500 |

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::lsps1::rpc::{self, RpcError};

/// An LSPS1 error on its way out over HTTP.
#[derive(Debug)]
pub struct HttpError(pub RpcError);

impl From<RpcError> for HttpError {
    fn from(error: RpcError) -> Self {
        HttpError(error)
    }
}

/// The HTTP status for an LSPS1 error code.
pub fn status_for(code: i32) -> StatusCode {
    match code {
        rpc::PARSE_ERROR | rpc::INVALID_REQUEST | rpc::INVALID_PARAMS => StatusCode::BAD_REQUEST,
        rpc::OPTION_MISMATCH | rpc::UNRECOGNIZED_TOKEN => StatusCode::BAD_REQUEST,
        rpc::CLIENT_REJECTED => StatusCode::FORBIDDEN,
        rpc::ORDER_NOT_FOUND | rpc::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
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
        (status_for(self.0.code), Json(body_for(&self.0))).into_response()
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
