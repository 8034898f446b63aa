//! The public HTTP mirror of LSPS1: an axum router over the node's `OrderService`.
//!
//! Done: the Olympus dialect (`olympus.rs`), the error body/status mapping (`error.rs`), a
//! body limit ([`MAX_BODY_BYTES`], 413) and a request time limit ([`REQUEST_TIMEOUT`], 503).
//! Not yet done (issue 5): the Kaleidoswap and Megalith dialects, `quote`, `cancel_order`,
//! per-IP and per-pubkey rate limits, CORS and OpenAPI. Until rate limits land, do not expose
//! `[http] listen` to the internet. The node builder serves this router on
//! `config.http.listen`; TLS is left to a reverse proxy.

pub mod error;
pub mod olympus;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::lsps1::guard::RequestGuard;
use crate::lsps1::service::OrderService;

/// What every public handler needs.
#[derive(Clone)]
pub struct PublicState {
    pub service: Arc<OrderService>,
    /// The same validation the p2p path applies to `lsps1.create_order`.
    pub guard: Arc<RequestGuard>,
    /// `<node_id>@<addr>` strings advertised by `get_info`.
    pub uris: Arc<Vec<String>>,
}

impl PublicState {
    pub fn new(service: Arc<OrderService>, uris: Vec<String>) -> Self {
        let guard = RequestGuard::new(service.config().options.clone(), service.node.network);
        PublicState {
            service,
            guard: Arc::new(guard),
            uris: Arc::new(uris),
        }
    }
}

/// Largest request body accepted; an LSPS1 request is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Longest a request may take before it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The public router (all dialects implemented so far).
pub fn router(state: PublicState) -> Router {
    olympus::routes()
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(time_limit))
}

async fn time_limit(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "error": "timeout",
                "code": crate::lsps1::rpc::INTERNAL_ERROR,
                "message": "The request took too long; try again.",
            })),
        )
            .into_response(),
    }
}
