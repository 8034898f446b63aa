//! The public HTTP mirror of LSPS1: an axum router over the node's `OrderService`.
//!
//! Done: the Olympus dialect (`olympus.rs`) and the error body/status mapping (`error.rs`).
//! Not yet done (issue 5): the Kaleidoswap and Megalith dialects, `quote`, `cancel_order`,
//! hardening (body limit, timeout, rate limits, CORS) and OpenAPI. Until hardening lands, do
//! not expose `[http] listen` to the internet. The node builder serves this router on
//! `config.http.listen`; TLS is left to a reverse proxy.

pub mod error;
pub mod olympus;

use std::sync::Arc;

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

/// The public router (all dialects implemented so far).
pub fn router(state: PublicState) -> Router {
    olympus::routes().with_state(state)
}
