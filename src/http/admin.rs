//! The operator (admin) HTTP router.
//!
//! [`router`] serves every route of the contract in [`crate::api`] on top of any
//! [`OperatorApi`]. Every request must carry the API key in the `x-api-key` header (or as
//! `Authorization: Bearer <key>`, for Prometheus, which scrapes `GET /metrics`); the key is
//! checked (in constant time, on SHA-256 digests so its length does not leak either) before the
//! body is read or the API is called, so a request without the right key has no effect.
//! Errors are always `{"error": "<one sentence>"}`: malformed bodies are mapped from axum's
//! rejections to our own sentences, [`OperatorError`]s keep their status.
//!
//! The key itself comes from [`crate::api::keys`].
//!
//! The node binds the listener itself and serves the router with `axum::serve`.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bitcoin::hashes::{sha256, Hash};
use serde::de::DeserializeOwned;
use serde::Serialize;
use subtle::ConstantTimeEq;

use crate::api::{
    AddCustomer, AdjustCredit, CancelOrder, CloseLease, CreateCoupon, CustomerRef, DeleteCoupon,
    DisableCustomer, ErrorBody, IssueCreditCoupon, KeepLease, LeaseQuery, OperatorApi,
    OperatorError, OperatorResult, OrderQuery, RescanOrder, SetCustomerTerms, API_KEY_HEADER,
};

/// Largest request body the operator API accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Builds the operator API router over `api`, requiring `api_key` on every request.
pub fn router<A: OperatorApi>(api: Arc<A>, api_key: String) -> Router {
    let expected = KeyDigest::of(api_key.as_bytes());
    let routes = Router::new()
        .route("/v1/info", get(info::<A>))
        .route("/v1/balance", get(balance::<A>))
        .route("/v1/address", post(new_address::<A>))
        .route("/v1/send", post(send_onchain::<A>))
        .route("/v1/peers", get(peers::<A>).post(connect_peer::<A>))
        .route("/v1/channels", get(channels::<A>).post(open_channel::<A>))
        .route("/v1/channels/close", post(close_channel::<A>))
        .route("/v1/payments", get(payments::<A>))
        .route("/v1/invoices", post(create_invoice::<A>))
        .route("/v1/pay", post(pay_invoice::<A>))
        .route("/v1/sync", post(sync::<A>))
        .route("/v1/orders", get(orders::<A>))
        .route("/v1/orders/cancel", post(cancel_order::<A>))
        .route("/v1/orders/rescan", post(rescan_order::<A>))
        .route("/v1/leases", get(leases::<A>))
        .route("/v1/leases/close", post(close_lease::<A>))
        .route("/v1/leases/keep", post(keep_lease::<A>))
        .route("/v1/orders/{id}", get(order::<A>))
        .route("/v1/coupons", get(coupons::<A>).post(create_coupon::<A>))
        .route("/v1/coupons/delete", post(delete_coupon::<A>))
        .route("/v1/customers", get(customers::<A>).post(add_customer::<A>))
        .route("/v1/customers/disable", post(disable_customer::<A>))
        .route("/v1/customers/delete", post(delete_customer::<A>))
        .route("/v1/customers/rotate-key", post(rotate_customer_key::<A>))
        .route("/v1/customers/terms", post(set_customer_terms::<A>))
        .route("/v1/customers/credit", post(adjust_credit::<A>))
        .route("/v1/customers/coupons", post(issue_credit_coupon::<A>))
        .route("/v1/customers/{customer}/credit", get(customer_credit::<A>))
        .route("/metrics", get(metrics::<A>))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(api);
    // Layers wrap what is already there: the key check runs first, before any extractor.
    routes
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(expected, require_api_key))
}

/// SHA-256 of a key: comparing digests keeps the comparison fixed-length.
#[derive(Clone, Copy)]
struct KeyDigest([u8; 32]);

impl KeyDigest {
    fn of(key: &[u8]) -> Self {
        KeyDigest(sha256::Hash::hash(key).to_byte_array())
    }

    fn matches(&self, other: &KeyDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

async fn require_api_key(
    State(expected): State<KeyDigest>,
    request: Request,
    next: Next,
) -> Response {
    // `Authorization: Bearer <key>` too: what Prometheus sends (`authorization` in its scrape
    // configuration).
    let headers = request.headers();
    let presented = headers
        .get(API_KEY_HEADER)
        .map(|v| v.as_bytes())
        .or_else(|| {
            headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        })
        .map(KeyDigest::of);
    match presented {
        Some(digest) if digest.matches(&expected) => next.run(request).await,
        Some(_) => error_response(
            StatusCode::UNAUTHORIZED,
            "The API key is wrong; send the node's admin API key in the `x-api-key` header.",
        ),
        None => error_response(
            StatusCode::UNAUTHORIZED,
            "The API key is missing; send the node's admin API key in the `x-api-key` header.",
        ),
    }
}

fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            error: message.into(),
        }),
    )
        .into_response()
}

fn reply<T: Serialize>(result: OperatorResult<T>) -> Response {
    match result {
        Ok(value) => (StatusCode::OK, axum::Json(value)).into_response(),
        Err(err) => {
            let status =
                StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if let OperatorError::Internal(message) = &err {
                tracing::warn!(error = %message, "operator call failed inside the node");
            }
            error_response(status, err.to_string())
        }
    }
}

/// A JSON request body whose rejections are served as our error body, in one sentence.
struct JsonBody<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection_response(rejection)),
        }
    }
}

fn json_rejection_response(rejection: JsonRejection) -> Response {
    use std::error::Error as _;
    let detail = rejection
        .source()
        .map(|s| s.to_string())
        .unwrap_or_default();
    match rejection {
        JsonRejection::JsonDataError(_) => error_response(
            StatusCode::BAD_REQUEST,
            format!("The request body does not have the expected fields: {detail}."),
        ),
        JsonRejection::JsonSyntaxError(_) => error_response(
            StatusCode::BAD_REQUEST,
            format!("The request body is not valid JSON: {detail}."),
        ),
        JsonRejection::MissingJsonContentType(_) => error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Send the request body as JSON with the header `content-type: application/json`.",
        ),
        JsonRejection::BytesRejection(ref r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("The request body is larger than the {MAX_BODY_BYTES} bytes allowed."),
            )
        }
        other => error_response(
            StatusCode::BAD_REQUEST,
            format!("The request body could not be read: {}.", other.body_text()),
        ),
    }
}

async fn metrics<A: OperatorApi>(State(api): State<Arc<A>>) -> Response {
    match api.metrics().await {
        Ok(metrics) => (
            StatusCode::OK,
            [(
                axum::http::header::CONTENT_TYPE,
                super::metrics::CONTENT_TYPE,
            )],
            super::metrics::render(&metrics),
        )
            .into_response(),
        Err(error) => reply::<()>(Err(error)),
    }
}

async fn unknown_route() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "There is no such operator API route; see the route table in the README.",
    )
}

async fn wrong_method() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "This operator API route does not accept that HTTP method.",
    )
}

type Api<A> = State<Arc<A>>;

async fn info<A: OperatorApi>(State(api): Api<A>) -> Response {
    reply(api.info().await)
}

async fn balance<A: OperatorApi>(State(api): Api<A>) -> Response {
    reply(api.balances().await)
}

async fn new_address<A: OperatorApi>(State(api): Api<A>) -> Response {
    reply(api.new_address().await)
}

async fn send_onchain<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<crate::api::SendOnchain>,
) -> Response {
    reply(api.send_onchain(req).await)
}

async fn peers<A: OperatorApi>(State(api): Api<A>) -> Response {
    reply(api.peers().await)
}

async fn connect_peer<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<crate::api::ConnectPeer>,
) -> Response {
    reply(api.connect_peer(req).await)
}

async fn channels<A: OperatorApi>(State(api): Api<A>) -> Response {
    reply(api.channels().await)
}

async fn open_channel<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<crate::api::OpenChannel>,
) -> Response {
    reply(api.open_channel(req).await)
}

async fn close_channel<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<crate::api::CloseChannel>,
) -> Response {
    reply(api.close_channel(req).await)
}

async fn payments<A: OperatorApi>(State(api): Api<A>) -> Response {
    reply(api.payments().await)
}

async fn create_invoice<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<crate::api::CreateInvoice>,
) -> Response {
    reply(api.create_invoice(req).await)
}

async fn pay_invoice<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<crate::api::PayInvoice>,
) -> Response {
    reply(api.pay_invoice(req).await)
}

async fn sync<A: OperatorApi>(State(api): Api<A>) -> Response {
    reply(api.sync().await)
}

async fn orders<A: OperatorApi>(
    State(api): Api<A>,
    query: Result<axum::extract::Query<OrderQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(axum::extract::Query(query)) => reply(api.orders(query).await),
        Err(rejection) => error_response(
            StatusCode::BAD_REQUEST,
            format!(
                "The query string is not understood ({}); use state, client_node_id, created_from, created_until and limit.",
                rejection.body_text()
            ),
        ),
    }
}

async fn order<A: OperatorApi>(
    State(api): Api<A>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    reply(api.order(id).await)
}

async fn cancel_order<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<CancelOrder>,
) -> Response {
    reply(api.cancel_order(req).await)
}

async fn leases<A: OperatorApi>(
    State(api): Api<A>,
    query: Result<axum::extract::Query<LeaseQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match query {
        Ok(axum::extract::Query(query)) => reply(api.leases(query).await),
        Err(rejection) => error_response(
            StatusCode::BAD_REQUEST,
            format!("invalid lease query: {}", rejection.body_text()),
        ),
    }
}

async fn close_lease<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<CloseLease>,
) -> Response {
    reply(api.close_lease(req).await)
}

async fn keep_lease<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<KeepLease>,
) -> Response {
    reply(api.keep_lease(req).await)
}

async fn rescan_order<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<RescanOrder>,
) -> Response {
    reply(api.rescan_order(req).await)
}

async fn coupons<A: OperatorApi>(State(api): Api<A>) -> Response {
    reply(api.coupons().await)
}

async fn create_coupon<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<CreateCoupon>,
) -> Response {
    reply(api.create_coupon(req).await)
}

async fn delete_coupon<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<DeleteCoupon>,
) -> Response {
    reply(api.delete_coupon(req).await)
}

async fn customers<A: OperatorApi>(State(api): Api<A>) -> Response {
    reply(api.customers().await)
}

async fn add_customer<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<AddCustomer>,
) -> Response {
    reply(api.add_customer(req).await)
}

async fn disable_customer<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<DisableCustomer>,
) -> Response {
    reply(api.disable_customer(req).await)
}

async fn delete_customer<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<CustomerRef>,
) -> Response {
    reply(api.delete_customer(req).await)
}

async fn rotate_customer_key<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<CustomerRef>,
) -> Response {
    reply(api.rotate_customer_key(req).await)
}

async fn set_customer_terms<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<SetCustomerTerms>,
) -> Response {
    reply(api.set_customer_terms(req).await)
}

async fn customer_credit<A: OperatorApi>(
    State(api): Api<A>,
    axum::extract::Path(customer): axum::extract::Path<String>,
) -> Response {
    reply(api.customer_credit(customer).await)
}

async fn adjust_credit<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<AdjustCredit>,
) -> Response {
    reply(api.adjust_credit(req).await)
}

async fn issue_credit_coupon<A: OperatorApi>(
    State(api): Api<A>,
    JsonBody(req): JsonBody<IssueCreditCoupon>,
) -> Response {
    reply(api.issue_credit_coupon(req).await)
}
