//! The LSPS7 mirror (lease extension, bLIP-57 draft) in the Olympus style, under
//! `/api/v1/lsps7/`: `GET get_extendable_channels?order_id=` (the extendable channel of that
//! LSPS1 order, if it is one: the order id is the capability, as for `get_order`; a list by
//! node id would show anyone the private channels of any node), `POST create_order` (the LSPS7
//! params plus `public_key`, the lease's client) and `GET get_order?order_id=`. Answers are
//! the p2p ones; the params pass the same guard.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::error::HttpError;
use super::request::{json_object, take_pubkey, Pubkey, RequestBody};
use super::PublicState;
use crate::lsps1::lsps7::NewExtension;
use crate::lsps1::order::{Interface, PaymentStateDialect};
use crate::lsps1::rpc::RpcError;

pub const PREFIX: &str = "/api/v1/lsps7";

pub fn routes() -> Router<PublicState> {
    Router::new()
        .route(
            &format!("{PREFIX}/get_extendable_channels"),
            get(get_extendable_channels),
        )
        .route(&format!("{PREFIX}/create_order"), post(create_order))
        .route(&format!("{PREFIX}/get_order"), get(get_order))
}

fn order_id(query: &HashMap<String, String>) -> Result<String, RpcError> {
    query
        .get("order_id")
        .cloned()
        .ok_or_else(|| RpcError::invalid_property("order_id", "is required"))
}

async fn get_extendable_channels(
    State(state): State<PublicState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, HttpError> {
    let id = order_id(&query)?;
    let listed = state
        .with_service(move |service| service.render_extendable_channel_of_order(&id))
        .await?;
    Ok(Json(listed))
}

async fn create_order(
    State(state): State<PublicState>,
    RequestBody(body): RequestBody,
) -> Result<Json<Value>, HttpError> {
    let mut fields = json_object(&body)?;
    let client =
        take_pubkey(&mut fields, "public_key", Pubkey::Required)?.expect("a required public key");
    // As for LSPS1 orders: ZEUS sends an empty refund address when it has none.
    if fields.get("refund_onchain_address") == Some(&json!("")) {
        fields.remove("refund_onchain_address");
    }
    let request = state.guard.extension_order(fields)?;
    let rendered = state
        .with_service(move |service| {
            let order = service.create_extension_order(NewExtension {
                client_node_id: client,
                request,
                source: Interface::Http,
            })?;
            service.render_extension(&order, PaymentStateDialect::Blip51)
        })
        .await?;
    Ok(Json(rendered))
}

async fn get_order(
    State(state): State<PublicState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, HttpError> {
    let id = order_id(&query)?;
    let rendered = state
        .with_service(move |service| {
            let order = service.get_extension_order(None, &id)?;
            service.render_extension(&order, PaymentStateDialect::Blip51)
        })
        .await?;
    Ok(Json(rendered))
}
