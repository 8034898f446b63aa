//! JSON-RPC 2.0 error objects as bLIP-50 and bLIP-51 define them, shared by the p2p guard and
//! (later) the HTTP mirror, so both interfaces give a client the same code, message and data.

use serde_json::{json, Value};

/// Invalid JSON.
pub const PARSE_ERROR: i32 = -32700;
/// Valid JSON but not a JSON-RPC 2.0 request object.
pub const INVALID_REQUEST: i32 = -32600;
pub const METHOD_NOT_FOUND: i32 = -32601;
pub const INVALID_PARAMS: i32 = -32602;
pub const INTERNAL_ERROR: i32 = -32603;
/// bLIP-50 "client rejected": we will not serve this request (e.g. not enough liquidity).
pub const CLIENT_REJECTED: i32 = 1;
/// bLIP-51: the order does not match the advertised options.
pub const OPTION_MISMATCH: i32 = 100;
/// bLIP-51: `get_order` for an unknown order.
pub const ORDER_NOT_FOUND: i32 = 101;
/// bLIP-51: unrecognized or stale token.
pub const UNRECOGNIZED_TOKEN: i32 = 102;
/// Too many requests from this client (per address over HTTP; per node id, or from all peers
/// together, over p2p): `data.retry_after_secs` says when to try again.
pub const RATE_LIMITED: i32 = -32003;

/// One JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i32,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn parse_error() -> Self {
        RpcError::new(PARSE_ERROR, "parse error")
    }

    pub fn method_not_found() -> Self {
        RpcError::new(METHOD_NOT_FOUND, "Method not found")
    }

    /// -32602 naming the offending request property.
    pub fn invalid_property(property: &str, message: &str) -> Self {
        RpcError::new(INVALID_PARAMS, "Invalid params")
            .with_data(json!({ "property": property, "message": message }))
    }

    /// -32602 listing unrecognized parameters (bLIP-50).
    pub fn unrecognized_params(names: Vec<String>) -> Self {
        RpcError::new(INVALID_PARAMS, "Invalid params").with_data(json!({ "unrecognized": names }))
    }

    /// 100 naming the `get_info` option the request violates (bLIP-51).
    pub fn option_mismatch(option: &str, message: &str) -> Self {
        RpcError::new(OPTION_MISMATCH, "Option mismatch")
            .with_data(json!({ "property": option, "message": message }))
    }

    pub fn error_object(&self) -> Value {
        let mut object = json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            object["data"] = data.clone();
        }
        object
    }

    /// The full response for request `id` (`null` when the id could not be read).
    pub fn to_response(&self, id: Option<&Value>) -> Value {
        json!({ "jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": self.error_object() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_shape() {
        let response =
            RpcError::unrecognized_params(vec!["foo".into()]).to_response(Some(&json!("id-1")));
        assert_eq!(
            response,
            json!({"jsonrpc": "2.0", "id": "id-1", "error": {"code": -32602, "message": "Invalid params",
                   "data": {"unrecognized": ["foo"]}}})
        );
        let response = RpcError::parse_error().to_response(None);
        assert_eq!(
            response,
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error"}})
        );
    }
}
