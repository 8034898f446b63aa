//! The public HTTP mirror of LSPS1: an axum router over the node's `OrderService`, served by
//! the node builder on `[http] listen` (TLS is left to a reverse proxy).
//!
//! - `olympus.rs`: the Olympus dialect (`/api/v1/`) and the same calls for Megalith-style
//!   clients (`/api/lsps1/v1/`).
//! - `kaleidoswap.rs`: the Kaleidoswap dialect (`/api/v1/lsps1/`).
//! - `orders.rs`: `quote` and `cancel_order`, shared by every dialect.
//! - `open_lsp.rs`: the open LSP API (pay-first orders, LNURL-channel).
//! - `flow.rs`: the Flow API for customer accounts (`/flow/`), authenticated by
//!   `customer_auth.rs`.
//! - `info.rs`: the dialects' `get_info` bodies, kept while the service's answer is unchanged.
//! - `request.rs`: reading bodies and checking order requests with the order service's guard.
//! - `error.rs`: the error body and the code-to-status table.
//! - `limits.rs`: the per-address rate limit and CORS.
//! - `openapi.rs`: the OpenAPI document, served at `/api/v1/openapi.json`.
//!
//! Every answer, errors included, is JSON: an unknown path is 404 (-32601), a wrong method
//! 405, a body over [`MAX_BODY_BYTES`] 413, and a request still running after
//! [`REQUEST_TIMEOUT`] 503. The per-client open-order limit is the order service's
//! (`[lsps1.limits] max_unpaid_orders_per_peer`), counted apart from the node's p2p orders:
//! over HTTP anyone may name any node.

pub mod customer_auth;
pub mod error;
pub mod flow;
pub mod info;
pub mod kaleidoswap;
pub mod limits;
pub mod lsps7;
pub mod olympus;
pub mod open_lsp;
pub mod openapi;
pub mod orders;
pub mod request;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;

use self::customer_auth::CustomerLimits;
use self::error::HttpError;
use self::limits::RateLimiter;
use crate::config::HttpLimits;
use crate::lsps1::guard::RequestGuard;
use crate::lsps1::rpc::{self, RpcError};
use crate::lsps1::service::OrderService;

/// What every public handler needs: one shared value, so handing it to each request and each
/// layer costs one reference count.
#[derive(Clone)]
pub struct PublicState(Arc<PublicParts>);

impl std::ops::Deref for PublicState {
    type Target = PublicParts;

    fn deref(&self) -> &PublicParts {
        &self.0
    }
}

/// The parts of [`PublicState`].
#[derive(Clone)]
pub struct PublicParts {
    pub service: Arc<OrderService>,
    /// The order service's request check, the one the p2p path applies too.
    pub guard: Arc<RequestGuard>,
    /// `<node_id>@<addr>` strings advertised by `get_info`.
    pub uris: Arc<Vec<String>>,
    pub limits: Arc<HttpLimits>,
    /// Every request, per client address.
    pub limiter: Arc<RateLimiter>,
    /// `create_order` requests, per client address.
    pub order_limiter: Arc<RateLimiter>,
    /// The Flow API's limits, per customer account.
    pub customer_limits: Arc<CustomerLimits>,
    /// The base URL of the links this listener hands out (LNURL-channel), if it may make any
    /// ([`crate::config::HttpConfig::link_base`]).
    pub link_base: Option<Arc<str>>,
    /// The dialects' `get_info` bodies as last rendered.
    pub info_bodies: Arc<info::InfoBodies>,
}

impl PublicState {
    pub fn new(service: Arc<OrderService>, uris: Vec<String>, limits: HttpLimits) -> Self {
        PublicState(Arc::new(PublicParts {
            guard: Arc::clone(service.guard()),
            service,
            uris: Arc::new(uris),
            limiter: Arc::new(RateLimiter::for_requests(&limits)),
            order_limiter: Arc::new(RateLimiter::for_orders(&limits)),
            customer_limits: Arc::new(CustomerLimits::new(&limits)),
            limits: Arc::new(limits),
            link_base: None,
            info_bodies: Arc::default(),
        }))
    }

    /// The same state, handing out links under `base`.
    pub fn with_link_base(mut self, base: Option<String>) -> Self {
        Arc::make_mut(&mut self.0).link_base = base.map(Arc::from);
        self
    }

    /// The order `id` as any client may read it: read here when a read connection is free,
    /// else on a blocking thread.
    pub async fn public_order(&self, id: &str) -> Result<crate::lsps1::order::Order, RpcError> {
        if let Some(read) = self.service.get_order_without_waiting(None, id) {
            return read;
        }
        let id = id.to_string();
        self.with_service(move |service| service.get_order(None, &id))
            .await
    }

    /// Runs `work` against the order service on the blocking pool: order-book reads and
    /// writes wait on SQLite (a commit is an fsync) and `create_order` on the wallet, which
    /// must not stall the async workers that serve every other request. A panic in `work`
    /// resumes here, as if it had run inline.
    pub async fn with_service<T: Send + 'static>(
        &self,
        work: impl FnOnce(&OrderService) -> T + Send + 'static,
    ) -> T {
        let service = Arc::clone(&self.service);
        match tokio::task::spawn_blocking(move || work(&service)).await {
            Ok(answer) => answer,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
}

/// Largest request body accepted; an LSPS1 request is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Longest a request may take before it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The public router: every dialect, behind the limits.
pub fn router(state: PublicState) -> Router {
    olympus::routes()
        .merge(lsps7::routes())
        .merge(open_lsp::routes())
        .merge(flow::routes(state.clone()))
        .merge(kaleidoswap::routes())
        .merge(orders::routes())
        .merge(openapi::routes())
        .fallback(unknown_path)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(time_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            limits::rate_limit,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), limits::cors))
        .with_state(state)
}

async fn time_limit(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => HttpError::with_status(
            RpcError::new(rpc::INTERNAL_ERROR, "timeout")
                .with_data(json!({ "message": "The request took too long; try again." })),
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into_response(),
    }
}

async fn unknown_path() -> HttpError {
    RpcError::method_not_found()
        .with_data(json!({ "message": "no such path; see /api/v1/openapi.json" }))
        .into()
}

async fn wrong_method() -> HttpError {
    HttpError::with_status(
        RpcError::new(rpc::INVALID_REQUEST, "Method not allowed").with_data(
            json!({ "message": "this path does not take this HTTP method; see /api/v1/openapi.json" }),
        ),
        StatusCode::METHOD_NOT_ALLOWED,
    )
}

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body};
    use axum::routing::get;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_request_over_the_time_limit_is_answered_503_in_json() {
        let slow = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(REQUEST_TIMEOUT * 2).await;
                    "too late"
                }),
            )
            .layer(middleware::from_fn(time_limit));
        let request = Request::get("/slow").body(Body::empty()).unwrap();
        let response = slow.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = to_bytes(response.into_body(), MAX_BODY_BYTES)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], rpc::INTERNAL_ERROR);
        assert_eq!(body["error"], "timeout");
        assert!(body["message"].is_string());
    }
}
