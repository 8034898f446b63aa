//! Reading order requests out of HTTP bodies, for every dialect.
//!
//! A `create_order` (or `quote`) body is checked by [`RequestGuard::create_order`], the check a
//! p2p request passes too, with the dialect's pubkey field taken out: both interfaces refuse
//! the same input with the same code and data. Bodies are read with
//! [`RequestBody`], which answers an oversized body with the mirror's JSON error (413).

use std::str::FromStr;

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use bitcoin::secp256k1::PublicKey;
use bitcoin::Address;
use serde_json::{json, Map, Value};

use super::error::HttpError;
use crate::config::lsps1::Lsps1Options;
use crate::lsps1::guard::RequestGuard;
use crate::lsps1::order::{Interface, OrderParams};
use crate::lsps1::rpc::{self, RpcError};
use crate::lsps1::service::NewOrder;

/// A request body as text; too large a body is refused with 413 and the JSON error body.
pub struct RequestBody(pub String);

impl<S: Send + Sync> FromRequest<S> for RequestBody {
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &S) -> Result<Self, HttpError> {
        match String::from_request(request, state).await {
            Ok(text) => Ok(RequestBody(text)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(HttpError::with_status(
                    RpcError::new(rpc::INVALID_REQUEST, "Request too large").with_data(json!({
                        "message": format!(
                            "the request body is larger than {} bytes",
                            super::MAX_BODY_BYTES
                        )
                    })),
                    StatusCode::PAYLOAD_TOO_LARGE,
                ))
            }
            Err(rejection) => Err(RpcError::new(rpc::INVALID_REQUEST, "Invalid Request")
                .with_data(json!({ "message": rejection.body_text() }))
                .into()),
        }
    }
}

/// The body as a JSON object (-32700 when it is not JSON, -32600 when not an object).
pub fn json_object(body: &str) -> Result<Map<String, Value>, RpcError> {
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(RpcError::new(rpc::INVALID_REQUEST, "Invalid Request")
            .with_data(json!({ "message": "the body must be a JSON object" }))),
        Err(_) => Err(RpcError::parse_error()),
    }
}

/// Whether a request must name the client's node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pubkey {
    Required,
    Optional,
}

/// An order request that passed every check `create_order` makes before pricing.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub client_node_id: Option<PublicKey>,
    pub params: OrderParams,
    pub refund_address: Option<Address>,
}

impl OrderRequest {
    /// The order to create; the pubkey must have been [`Pubkey::Required`].
    pub fn into_new_order(self, email: Option<String>) -> NewOrder {
        NewOrder {
            client_node_id: Some(
                self.client_node_id
                    .expect("create_order requests are read with Pubkey::Required"),
            ),
            params: self.params,
            refund_address: self.refund_address,
            source: Interface::Http,
            email,
        }
    }
}

/// Checks `fields` (LSPS1 `create_order` params plus the client's node id in `pubkey_field`)
/// exactly as the p2p guard would.
pub fn check_order_request(
    guard: &RequestGuard,
    mut fields: Map<String, Value>,
    pubkey_field: &str,
    pubkey: Pubkey,
) -> Result<OrderRequest, RpcError> {
    let client_node_id = take_pubkey(&mut fields, pubkey_field, pubkey)?;
    // ZEUS sends `"refund_onchain_address": ""` when it has none: that means absent.
    if fields.get("refund_onchain_address") == Some(&Value::String(String::new())) {
        fields.remove("refund_onchain_address");
    }
    let checked = guard.create_order(fields)?;
    Ok(OrderRequest {
        client_node_id,
        params: checked.params,
        refund_address: checked.refund_address,
    })
}

/// Takes the client's node id out of `fields[pubkey_field]`.
pub fn take_pubkey(
    fields: &mut Map<String, Value>,
    pubkey_field: &str,
    pubkey: Pubkey,
) -> Result<Option<PublicKey>, RpcError> {
    match (fields.remove(pubkey_field), pubkey) {
        (Some(Value::String(key)), _) => Ok(Some(PublicKey::from_str(&key).map_err(|_| {
            RpcError::invalid_property(pubkey_field, "must be a hex-encoded node public key")
        })?)),
        (None | Some(Value::Null), Pubkey::Optional) => Ok(None),
        (Some(_), _) => Err(RpcError::invalid_property(
            pubkey_field,
            "must be a hex-encoded node public key",
        )),
        (None, Pubkey::Required) => Err(RpcError::invalid_property(
            pubkey_field,
            "is required: the node id of the client that will own the channel",
        )),
    }
}

/// The LSPS1 `create_order` params of a dialect that names only the balances, the lease and
/// the announce flag: the confirmations asked for are the LSP's minimums.
pub fn minimal_order_params(
    options: &Lsps1Options,
    lsp_balance_sat: u64,
    client_balance_sat: u64,
    channel_expiry_blocks: u64,
    announce_channel: bool,
) -> Map<String, Value> {
    let mut params = Map::new();
    params.insert("lsp_balance_sat".into(), json!(lsp_balance_sat.to_string()));
    params.insert(
        "client_balance_sat".into(),
        json!(client_balance_sat.to_string()),
    );
    params.insert(
        "required_channel_confirmations".into(),
        json!(options.min_required_channel_confirmations),
    );
    params.insert(
        "funding_confirms_within_blocks".into(),
        json!(options.min_funding_confirms_within_blocks),
    );
    params.insert("channel_expiry_blocks".into(), json!(channel_expiry_blocks));
    params.insert("announce_channel".into(), json!(announce_channel));
    params
}

/// A non-negative whole-number field (sats, blocks, weeks), or absent (missing or null).
pub fn whole_number(fields: &Map<String, Value>, name: &str) -> Result<Option<u64>, RpcError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| RpcError::invalid_property(name, "must be a whole number")),
    }
}

/// The `order_id` of a body or query: required, a string.
pub fn order_id_of(fields: &Map<String, Value>) -> Result<&str, RpcError> {
    match fields.get("order_id") {
        Some(Value::String(id)) => Ok(id),
        Some(_) => Err(RpcError::invalid_property("order_id", "must be a string")),
        None => Err(RpcError::invalid_property("order_id", "is required")),
    }
}

/// Refuses any field of `fields` not in `known` (-32602 with `data.unrecognized`); null
/// values count as absent.
pub fn refuse_unknown_fields(fields: &Map<String, Value>, known: &[&str]) -> Result<(), RpcError> {
    let mut unknown: Vec<String> = fields
        .iter()
        .filter(|(name, value)| !value.is_null() && !known.contains(&name.as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort();
    Err(RpcError::unrecognized_params(unknown))
}

#[cfg(test)]
mod tests {
    use bitcoin::Network;

    use super::*;
    use crate::config::lsps1::Lsps1Options;

    const SEED_PUBKEY: &str = "025b7a68b4cd85668e65db6a343a4c607a462cdd010daa793f82be561a3316c5b1";

    fn guard() -> RequestGuard {
        RequestGuard::new(Lsps1Options::default(), Network::Regtest)
    }

    /// The create_order example of the Olympus document, verbatim.
    fn seed_body() -> Value {
        json!({
            "lsp_balance_sat": "10000000",
            "client_balance_sat": "0",
            "required_channel_confirmations": 8,
            "funding_confirms_within_blocks": 6,
            "channel_expiry_blocks": 13000,
            "token": "",
            "refund_onchain_address": "",
            "announce_channel": false,
            "public_key": SEED_PUBKEY
        })
    }

    fn check(body: &str) -> Result<NewOrder, RpcError> {
        let fields = json_object(body)?;
        check_order_request(&guard(), fields, "public_key", Pubkey::Required)
            .map(|request| request.into_new_order(None))
    }

    #[test]
    fn seed_example_becomes_an_http_order_for_its_public_key() {
        let order = check(&seed_body().to_string()).unwrap();
        assert_eq!(order.client_node_id.unwrap().to_string(), SEED_PUBKEY);
        assert_eq!(order.params.lsp_balance_sat, 10_000_000);
        assert_eq!(order.params.channel_expiry_blocks, 13_000);
        assert_eq!(order.refund_address, None);
        assert!(matches!(order.source, Interface::Http));
    }

    #[test]
    fn quote_requests_may_leave_the_pubkey_out() {
        let mut fields = json_object(&seed_body().to_string()).unwrap();
        fields.remove("public_key");
        let request =
            check_order_request(&guard(), fields, "public_key", Pubkey::Optional).unwrap();
        assert_eq!(request.client_node_id, None);
        assert_eq!(request.params.lsp_balance_sat, 10_000_000);
    }

    #[test]
    fn bad_input_table() {
        let with = |field: &str, value: Value| {
            let mut body = seed_body();
            body[field] = value;
            body.to_string()
        };
        let mut no_key = seed_body();
        no_key.as_object_mut().unwrap().remove("public_key");
        let cases: Vec<(&str, String, i32, &str)> = vec![
            (
                "malformed json",
                "{\"lsp_balance_sat\": ".to_string(),
                rpc::PARSE_ERROR,
                "",
            ),
            (
                "not an object",
                "[1, 2]".to_string(),
                rpc::INVALID_REQUEST,
                "",
            ),
            (
                "missing pubkey",
                no_key.to_string(),
                rpc::INVALID_PARAMS,
                "public_key",
            ),
            (
                "bad pubkey",
                with("public_key", json!("02zz")),
                rpc::INVALID_PARAMS,
                "public_key",
            ),
            (
                "pubkey as number",
                with("public_key", json!(2)),
                rpc::INVALID_PARAMS,
                "public_key",
            ),
            (
                "negative amount",
                with("lsp_balance_sat", json!("-1")),
                rpc::INVALID_PARAMS,
                "lsp_balance_sat",
            ),
            (
                "amount as number",
                with("lsp_balance_sat", json!(10)),
                rpc::INVALID_PARAMS,
                "lsp_balance_sat",
            ),
            (
                "huge amount",
                with("lsp_balance_sat", json!("99999999999999999999")),
                rpc::INVALID_PARAMS,
                "lsp_balance_sat",
            ),
            (
                "too much liquidity",
                with("lsp_balance_sat", json!("10000001")),
                rpc::OPTION_MISMATCH,
                "max_initial_lsp_balance_sat",
            ),
            (
                "mainnet refund address",
                with(
                    "refund_onchain_address",
                    json!("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
                ),
                rpc::INVALID_PARAMS,
                "refund_onchain_address",
            ),
        ];
        for (name, body, code, property) in cases {
            let error = check(&body).unwrap_err();
            assert_eq!(error.code, code, "{name}: {error:?}");
            if !property.is_empty() {
                let data = error.data.clone().unwrap_or(Value::Null);
                assert_eq!(data["property"], property, "{name}: {error:?}");
            }
        }
        let error = check(&with("surprise", json!(1))).unwrap_err();
        assert_eq!(error.code, rpc::INVALID_PARAMS);
        assert_eq!(error.data.unwrap()["unrecognized"], json!(["surprise"]));
        assert!(
            check(&with("refund_on_chain_address", Value::Null)).is_ok(),
            "an unknown field sent as null counts as absent"
        );
    }

    #[test]
    fn unknown_fields_are_named_and_nulls_ignored() {
        let fields = json_object(r#"{"order_id": "x", "b": 1, "a": "y", "c": null}"#).unwrap();
        let error = refuse_unknown_fields(&fields, &["order_id"]).unwrap_err();
        assert_eq!(error.data.unwrap()["unrecognized"], json!(["a", "b"]));
        assert_eq!(order_id_of(&fields).unwrap(), "x");
    }
}
