//! Who a Flow API request is from, and its customer's own rate limits.
//!
//! A `/flow/` request names its customer by API key, in `X-VOLTAGE-AUTH` (the Flow
//! document's header) or `x-api-key` (the Voltage API's). [`authenticate`] looks the key up
//! ([`crate::lsps1::customers`], enabled customers only) and hands the customer to the handler
//! as an extension; a missing, unknown, disabled or rotated key is 401 with one sentence and
//! nothing else happens.
//!
//! Limits: `/flow/` is exempt from the per-address limits ([`super::limits`]); a customer's
//! own buckets count instead, so a business serving many users from one address is limited
//! by its account. A customer's `requests_per_minute` / `orders_per_minute` (set by the
//! operator) override `[http.limits]`'s `rate_limit_per_minute` (with its burst) and
//! `orders_per_hour`, which apply to customers without their own. Failed authentications are
//! counted per address ([`AUTH_FAILURES_PER_MINUTE`]); an address over that budget is answered
//! 429 before its key is even looked up, so guessing keys costs a map lookup.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::{HttpError, NOT_AUTHORIZED};
use super::limits::{client_address, too_many};
use super::PublicState;
use crate::config::HttpLimits;
use crate::lsps1::customers::{ApiKey, Customer, CustomerTerms};
use crate::lsps1::rate::TokenBuckets;
use crate::lsps1::rpc::RpcError;

/// Failed authentications an address may make a minute (all at once, at most).
pub const AUTH_FAILURES_PER_MINUTE: u32 = 10;

/// The headers a Flow request's API key may come in.
pub const KEY_HEADERS: [&str; 2] = ["x-voltage-auth", "x-api-key"];

/// One customer's buckets, made for the terms they were made with.
struct CustomerBuckets {
    terms: CustomerTerms,
    requests: TokenBuckets<()>,
    orders: TokenBuckets<()>,
}

/// The per-customer limits of the Flow API, and its per-address budget of failed keys.
pub struct CustomerLimits {
    defaults: HttpLimits,
    failures: TokenBuckets<IpAddr>,
    customers: Mutex<HashMap<String, CustomerBuckets>>,
}

impl CustomerLimits {
    pub fn new(defaults: &HttpLimits) -> Self {
        CustomerLimits {
            defaults: defaults.clone(),
            failures: TokenBuckets::per_period(AUTH_FAILURES_PER_MINUTE, 60),
            customers: Mutex::new(HashMap::new()),
        }
    }

    fn buckets_for(&self, terms: CustomerTerms) -> CustomerBuckets {
        let requests = match terms.requests_per_minute {
            Some(per_minute) => TokenBuckets::per_period(per_minute, 60),
            None => TokenBuckets::new(
                f64::from(self.defaults.rate_limit_per_minute) / 60.0,
                self.defaults.rate_limit_burst,
            ),
        };
        let orders = match terms.orders_per_minute {
            Some(per_minute) => TokenBuckets::per_period(per_minute, 60),
            None => TokenBuckets::per_period(self.defaults.orders_per_hour, 3_600),
        };
        CustomerBuckets {
            terms,
            requests,
            orders,
        }
    }

    /// Takes one request (and one order when `creates_order`) from `customer`'s buckets:
    /// `Ok`, or which limit was reached and how many seconds until it allows one more.
    fn admit(
        &self,
        customer: &Customer,
        creates_order: bool,
        now: Instant,
    ) -> Result<(), (u64, &'static str)> {
        let mut customers = self.customers.lock().unwrap_or_else(|p| p.into_inner());
        let stale = customers
            .get(&customer.id)
            .is_none_or(|buckets| buckets.terms != customer.terms);
        if stale {
            customers.insert(customer.id.clone(), self.buckets_for(customer.terms));
        }
        let buckets = &customers[&customer.id];
        buckets
            .requests
            .admit((), now)
            .map_err(|s| (s, "requests for this account"))?;
        if creates_order {
            buckets
                .orders
                .admit((), now)
                .map_err(|s| (s, "orders for this account"))?;
        }
        Ok(())
    }
}

/// The API key a request carries, if any.
fn key_of(headers: &HeaderMap) -> Option<ApiKey> {
    KEY_HEADERS.iter().find_map(|name| {
        headers
            .get(*name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .map(ApiKey::from_client)
    })
}

fn unauthorized(sentence: &str) -> Response {
    HttpError::with_status(
        RpcError::new(NOT_AUTHORIZED, "Unauthorized").with_data(json!({ "message": sentence })),
        StatusCode::UNAUTHORIZED,
    )
    .into_response()
}

/// The middleware of the `/flow/` routes: the request's customer, within its limits, or 401
/// (429 over a limit).
pub async fn authenticate(
    State(state): State<PublicState>,
    mut request: Request,
    next: Next,
) -> Response {
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| {
            client_address(peer.ip(), request.headers(), &state.limits.trusted_proxies)
        });
    let limits = &state.customer_limits;
    let now = Instant::now();
    if let Some(address) = address {
        if !limits.failures.has_token(address, now) {
            return too_many(
                limits.failures.wait_secs(address, now),
                "failed API keys from this address",
            );
        }
    }
    let failed = |sentence: &str| {
        if let Some(address) = address {
            let _ = limits.failures.admit(address, now);
        }
        unauthorized(sentence)
    };
    let Some(key) = key_of(request.headers()) else {
        return failed("an API key is required in the X-VOLTAGE-AUTH (or x-api-key) header");
    };
    let found = state
        .with_service(move |service| service.order_book().customer_by_key(&key))
        .await;
    let customer = match found {
        Ok(Some(customer)) => customer,
        Ok(None) => return failed("the API key is not valid (unknown, disabled or replaced)"),
        Err(error) => {
            tracing::error!(%error, "could not look up an API key");
            return HttpError::from(RpcError::new(
                crate::lsps1::rpc::INTERNAL_ERROR,
                "Internal error",
            ))
            .into_response();
        }
    };
    let creates_order = request.uri().path() == "/flow/create";
    if let Err((retry_after, what)) = limits.admit(&customer, creates_order, now) {
        return too_many(retry_after, what);
    }
    request.extensions_mut().insert(customer);
    next.run(request).await
}
