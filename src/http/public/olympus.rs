//! The Olympus dialect (ZEUS, the BTCPay LSPS1 plugin) under `/api/v1/`, and the same calls
//! under `/api/lsps1/v1/` for Megalith-style clients (Alby): `GET get_info` (flat LSPS1 options
//! plus `uris`), `POST create_order` (LSPS1 params plus `public_key`) and
//! `GET get_order?order_id=`. Orders are rendered exactly as over p2p (bLIP-51).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::HttpError;
use super::info::set_draft_onchain_options;
use super::request::{check_order_request, json_object, Pubkey, RequestBody};
use super::PublicState;
use crate::lsps1::rpc::RpcError;

/// Path prefixes of the two dialects that share this shape.
pub const OLYMPUS_PREFIX: &str = "/api/v1";
pub const MEGALITH_PREFIX: &str = "/api/lsps1/v1";

pub fn routes() -> Router<PublicState> {
    let mut router = Router::new();
    for prefix in [OLYMPUS_PREFIX, MEGALITH_PREFIX] {
        router = router
            .route(&format!("{prefix}/get_info"), get(get_info))
            .route(&format!("{prefix}/create_order"), post(create_order))
            .route(&format!("{prefix}/get_order"), get(get_order));
    }
    router
}

pub(super) async fn get_info(State(state): State<PublicState>) -> Response {
    let options = &state.service.config().options;
    state
        .info_body("olympus", |info| {
            let mut info = info.clone();
            set_draft_onchain_options(&mut info, options);
            info["uris"] = json!(state.uris.as_slice());
            info
        })
        .await
}

pub(super) async fn create_order(
    State(state): State<PublicState>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let request = check_order_request(
        &state.guard,
        json_object(&body)?,
        "public_key",
        Pubkey::Required,
    )?;
    let order = state
        .service
        .create_order_async(request.into_new_order(None))
        .await?;
    Ok(Json(state.service.render_http(&order)))
}

pub(super) async fn get_order(
    State(state): State<PublicState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, HttpError> {
    let id = query
        .get("order_id")
        .ok_or_else(|| RpcError::invalid_property("order_id", "is required"))?;
    let order = state.public_order(id).await?;
    Ok(Json(state.service.render_http(&order)))
}
