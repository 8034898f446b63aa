//! Protection of the public listener: per-address rate limits and CORS.
//!
//! Two token buckets per client address (IPv6 clients per /64, since one host usually holds a
//! whole /64): every request takes from the request bucket (`rate_limit_burst` at once,
//! refilled at `rate_limit_per_minute`); a `create_order` (or `/channel/buy`) also takes from
//! the order bucket (`orders_per_hour` at once, refilled over the hour), because each order
//! reserves liquidity until it is paid or expires. A request over either limit is answered 429 with `Retry-After`
//! before any handler runs, so a flood costs a map lookup and never reaches the order book.
//!
//! Behind a reverse proxy every request comes from the proxy's address. With the proxy in
//! `http.trusted_proxies`, a request counts against the address its `X-Forwarded-For` names
//! instead: the rightmost entry that is not itself a trusted proxy, since each proxy appends
//! the address it saw and anything further left is the client's own, forgeable, claim.
//!
//! `/flow/` requests are exempt: they count against their customer's limits instead
//! ([`super::customer_auth`]).
//!
//! CORS is off unless origins are configured: then those origins (or `*`) get
//! `Access-Control-Allow-Origin` on every answer, and preflight requests are answered 204.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::{HttpError, RATE_LIMITED};
use super::PublicState;
use crate::config::HttpLimits;
use crate::lsps1::rate::TokenBuckets;
use crate::lsps1::rpc::RpcError;

/// Token buckets per client address.
pub struct RateLimiter(TokenBuckets<IpAddr>);

impl RateLimiter {
    /// `burst` at once, refilled at `per_second`.
    pub fn new(per_second: f64, burst: u32) -> Self {
        RateLimiter(TokenBuckets::new(per_second, burst))
    }

    /// The limit on all requests of an address.
    pub fn for_requests(limits: &HttpLimits) -> Self {
        RateLimiter::new(
            f64::from(limits.rate_limit_per_minute) / 60.0,
            limits.rate_limit_burst,
        )
    }

    /// The limit on the orders an address creates.
    pub fn for_orders(limits: &HttpLimits) -> Self {
        RateLimiter(TokenBuckets::per_period(limits.orders_per_hour, 3_600))
    }

    /// Takes one request from `client`'s bucket: `Ok`, or how many seconds until one is left.
    pub fn admit(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        self.0.admit(bucket_key(client), now)
    }
}

/// IPv4 addresses count alone; IPv6 addresses by their /64.
fn bucket_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// The address a request counts against: `peer`, or, when `peer` is a trusted proxy, the
/// rightmost `X-Forwarded-For` entry that is not a trusted proxy. An entry that is not an
/// address ends the walk at the last trusted hop, so a garbled header cannot pick a bucket.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let mut client = peer.to_canonical();
    if !trusted.contains(&client) {
        return client;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    for entry in forwarded.into_iter().rev() {
        let Some(hop) = forwarded_address(entry) else {
            return client;
        };
        client = hop;
        if !trusted.contains(&hop) {
            break;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, optionally with a port (`[v6]:port` for IPv6).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let address = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()?;
    Some(address.to_canonical())
}

/// Whether a request creates an order (in any dialect).
fn creates_order(request: &Request) -> bool {
    let path = request.uri().path();
    request.method() == Method::POST && (path.ends_with("/create_order") || path == "/channel/buy")
}

pub async fn rate_limit(
    State(state): State<PublicState>,
    request: Request,
    next: Next,
) -> Response {
    // Without connection info (the router driven in-process) there is no address to limit.
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| {
            client_address(peer.ip(), request.headers(), &state.limits.trusted_proxies)
        });
    // The Flow API counts against its customers' own limits (`customer_auth.rs`).
    let flow = request.uri().path().starts_with("/flow/");
    if let Some(client) = client.filter(|_| !flow) {
        let now = Instant::now();
        if let Err(retry_after) = state.limiter.admit(client, now) {
            return too_many(retry_after, "requests from this address");
        }
        if creates_order(&request) {
            if let Err(retry_after) = state.order_limiter.admit(client, now) {
                return too_many(retry_after, "orders from this address");
            }
        }
    }
    next.run(request).await
}

pub(super) fn too_many(retry_after: u64, what: &str) -> Response {
    let error = RpcError::new(RATE_LIMITED, "Too many requests").with_data(json!({
        "message": format!("too many {what}; retry in {retry_after} s"),
    }));
    let mut response = HttpError::from(error).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

pub async fn cors(State(state): State<PublicState>, request: Request, next: Next) -> Response {
    let allowed = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|origin| origin.to_str().ok())
        .and_then(|origin| allowed_origin(&state.limits.cors_allowed_origins, origin));
    let Some(allowed) = allowed else {
        return next.run(request).await;
    };
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&allowed) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, authorization"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    response
}

/// The `Access-Control-Allow-Origin` value for `origin`, if it may read our answers.
fn allowed_origin(configured: &[String], origin: &str) -> Option<String> {
    if configured.iter().any(|o| o == "*") {
        return Some("*".to_string());
    }
    configured
        .iter()
        .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
        .then(|| origin.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter::for_requests(&HttpLimits {
            rate_limit_per_minute: per_minute,
            rate_limit_burst: burst,
            ..HttpLimits::default()
        })
    }

    #[test]
    fn a_burst_is_admitted_then_refused_until_refilled() {
        let limiter = limiter(60, 3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let start = Instant::now();
        for _ in 0..3 {
            limiter.admit(a, start).unwrap();
        }
        assert_eq!(limiter.admit(a, start), Err(1));
        limiter
            .admit(b, start)
            .expect("another address has its own bucket");
        limiter
            .admit(a, start + Duration::from_millis(1_000))
            .expect("one token back after a second at 60/min");
        assert!(limiter
            .admit(a, start + Duration::from_millis(1_000))
            .is_err());
    }

    #[test]
    fn ipv6_hosts_share_their_slash_64() {
        let limiter = limiter(60, 1);
        let now = Instant::now();
        limiter.admit("2001:db8::1".parse().unwrap(), now).unwrap();
        assert!(limiter
            .admit("2001:db8::ffff:2".parse().unwrap(), now)
            .is_err());
        limiter
            .admit("2001:db8:0:1::1".parse().unwrap(), now)
            .expect("another /64");
    }

    #[test]
    fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let forwarded = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
            }
            headers
        };
        let proxies = [ip("127.0.0.1"), ip("10.0.0.2")];
        let cases: &[(&str, &[&str], &str)] = &[
            // An untrusted peer is the client, whatever it claims.
            ("192.0.2.9", &["198.51.100.1"], "192.0.2.9"),
            // A trusted proxy without the header: the proxy is all we know.
            ("127.0.0.1", &[], "127.0.0.1"),
            ("127.0.0.1", &["198.51.100.1"], "198.51.100.1"),
            // The client's own claim (left) is skipped for what the proxy saw (right).
            ("127.0.0.1", &["203.0.113.5, 198.51.100.1"], "198.51.100.1"),
            // Two trusted hops, in one header or two; the second proxy is skipped.
            ("127.0.0.1", &["198.51.100.1, 10.0.0.2"], "198.51.100.1"),
            ("127.0.0.1", &["198.51.100.1", "10.0.0.2"], "198.51.100.1"),
            // Ports and IPv4-mapped IPv6 peers.
            ("::ffff:127.0.0.1", &["198.51.100.1:4711"], "198.51.100.1"),
            ("127.0.0.1", &["[2001:db8::1]:443"], "2001:db8::1"),
            // Garbage stops the walk at the last trusted hop.
            ("127.0.0.1", &["198.51.100.1, unknown"], "127.0.0.1"),
            (
                "127.0.0.1",
                &["198.51.100.1, unknown, 10.0.0.2"],
                "10.0.0.2",
            ),
        ];
        for (peer, values, want) in cases {
            assert_eq!(
                client_address(ip(peer), &forwarded(values), &proxies),
                ip(want),
                "{peer} {values:?}"
            );
        }
        assert_eq!(
            client_address(ip("127.0.0.1"), &forwarded(&["198.51.100.1"]), &[]),
            ip("127.0.0.1"),
            "no proxy is trusted by default"
        );
    }

    #[test]
    fn only_configured_origins_are_allowed() {
        let configured = vec!["https://wallet.example/".to_string()];
        assert_eq!(
            allowed_origin(&configured, "https://wallet.example").as_deref(),
            Some("https://wallet.example")
        );
        assert_eq!(allowed_origin(&configured, "https://evil.example"), None);
        assert_eq!(allowed_origin(&[], "https://wallet.example"), None);
        assert_eq!(
            allowed_origin(&["*".to_string()], "https://any.example").as_deref(),
            Some("*")
        );
    }
}
