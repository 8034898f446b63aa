//! The LSPS1 gate the node's LSPS message handler consults: every message passes the
//! [`RequestGuard`] first, and the `lsps1.*` and `lsps7.*` requests that pass are answered by
//! the [`Lsps1Server`] (the order service), not by lightning-liquidity's manager, which then
//! only answers LSPS0 (`list_protocols` too is answered here when the server serves, so that
//! it lists LSPS7). `create_order` (of both) is rate limited per node id and for all peers
//! together ([`OrderRate`]) before it reaches the server: a refused request costs two map
//! lookups. An admitted one is answered off the peer handler ([`Verdict::Defer`]): its
//! commit must not hold up every other peer's messages.
//!
//! The order service needs this: lightning-liquidity 0.3's `send_payment_details` picks the
//! order id itself and queues the answer before returning, so an order could not be persisted
//! before the client learns of it; it also has no way to answer error 1, and one fixed spelling
//! of payment states.

use std::sync::Arc;
use std::time::Instant;

use bitcoin::secp256k1::PublicKey;
use serde_json::Value;

use crate::config::lsps1::Lsps1Limits;
use crate::lsps1::guard::{Lsps1Request, Lsps7Request, RequestGuard, Verdict};
use crate::lsps1::rate::TokenBuckets;
use crate::lsps1::rpc::{RpcError, RATE_LIMITED};
use crate::node::lsps::LspsGate;

/// Answers the `lsps1.*` and `lsps7.*` methods (the order service).
pub trait Lsps1Server: Send + Sync {
    /// Answers one request from `peer` that passed the guard: the JSON-RPC `result`, or the
    /// error object to send.
    fn serve(&self, peer: PublicKey, request: Lsps1Request) -> Result<Value, RpcError>;

    /// Answers one `lsps7.*` request (lease extension) from `peer`; "Method not found" when
    /// extensions are not offered.
    fn serve_lsps7(&self, peer: PublicKey, request: Lsps7Request) -> Result<Value, RpcError>;

    /// The protocol numbers `lsps0.list_protocols` answers (LSPS0 itself is not listed).
    fn protocols(&self) -> Vec<u16>;
}

/// Who answers `lsps1.*` requests.
enum Lsps1Answers {
    Server(Arc<dyn Lsps1Server>),
    /// This node sells no channels: "Method not found" (bLIP-50), rather than the manager's
    /// silence.
    NotOffered,
}

/// How many `create_order` requests p2p peers may send.
pub struct OrderRate {
    per_peer: TokenBuckets<PublicKey>,
    all_peers: TokenBuckets<()>,
}

impl OrderRate {
    pub fn new(limits: &Lsps1Limits) -> Self {
        OrderRate {
            per_peer: TokenBuckets::per_period(limits.p2p_orders_per_hour_per_peer, 3_600),
            all_peers: TokenBuckets::per_period(limits.p2p_orders_per_minute, 60),
        }
    }

    /// Admits one order of `peer` at `now`, or says when to try again. A peer over its own
    /// limit does not use up the shared one.
    pub fn admit(&self, peer: PublicKey, now: Instant) -> Result<(), RpcError> {
        let refused = |retry_after: u64, whose: &str| {
            RpcError::new(
                RATE_LIMITED,
                format!("too many orders {whose}; try again in {retry_after} s"),
            )
            .with_data(serde_json::json!({ "retry_after_secs": retry_after }))
        };
        self.per_peer
            .admit(peer, now)
            .map_err(|after| refused(after, "from this node"))?;
        self.all_peers
            .admit((), now)
            .map_err(|after| refused(after, "right now"))
    }
}

/// The guard in front of the liquidity manager, with the server for `lsps1.*`.
pub struct Lsps1Gate {
    guard: Arc<RequestGuard>,
    answers: Lsps1Answers,
    order_rate: Option<OrderRate>,
}

impl Lsps1Gate {
    /// `lsps1.*` requests are answered by `server`; `create_order` within `limits`.
    pub fn serving(
        guard: Arc<RequestGuard>,
        server: Arc<dyn Lsps1Server>,
        limits: &Lsps1Limits,
    ) -> Self {
        Lsps1Gate {
            guard,
            answers: Lsps1Answers::Server(server),
            order_rate: Some(OrderRate::new(limits)),
        }
    }

    /// `lsps1.*` requests are answered "Method not found": the node sells no channels.
    pub fn refusing(guard: Arc<RequestGuard>) -> Self {
        Lsps1Gate {
            guard,
            answers: Lsps1Answers::NotOffered,
            order_rate: None,
        }
    }
}

impl LspsGate for Lsps1Gate {
    fn inspect(&self, peer: PublicKey, payload: &str) -> Verdict {
        let checked = match self.guard.read(payload) {
            Ok(checked) => checked,
            Err(verdict) => return verdict,
        };
        let id = checked.id;
        match (checked.lsps1, checked.lsps7, &self.answers) {
            (Some(request), _, _) => {
                let creates = matches!(request, Lsps1Request::CreateOrder(_));
                self.answer(peer, id, request, creates, |server, peer, request| {
                    server.serve(peer, request)
                })
            }
            // Never forwarded: the liquidity manager cannot parse them and would ignore the
            // peer from then on.
            (None, Some(request), _) => {
                let creates = matches!(request, Lsps7Request::CreateOrder(_));
                self.answer(peer, id, request, creates, |server, peer, request| {
                    server.serve_lsps7(peer, request)
                })
            }
            (None, None, Lsps1Answers::Server(server))
                if checked.method == "lsps0.list_protocols" =>
            {
                let protocols = serde_json::json!({ "protocols": server.protocols() });
                Verdict::Reply(response(&id, Ok(protocols)))
            }
            (None, None, _) => Verdict::Forward(checked.payload),
        }
    }
}

/// A new order is committed before it is answered: made off the peer handler, which every
/// peer's messages wait on.
fn defer(id: Value, serve: impl FnOnce() -> Result<Value, RpcError> + Send + 'static) -> Verdict {
    let busy = RpcError::new(
        RATE_LIMITED,
        "too many orders are being made right now; try again in 1 s",
    )
    .with_data(serde_json::json!({ "retry_after_secs": 1 }));
    Verdict::Defer {
        refusal: response(&id, Err(busy)),
        answer: Box::new(move || response(&id, serve())),
    }
}

fn response(id: &Value, answer: Result<Value, RpcError>) -> String {
    match answer {
        Ok(result) => serde_json::json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(error) => error.to_response(Some(id)),
    }
    .to_string()
}

impl Lsps1Gate {
    /// Answers `peer`'s `request` with `serve` once admitted; a new order (`creates`) off the
    /// peer handler.
    fn answer<R, S>(
        &self,
        peer: PublicKey,
        id: Value,
        request: R,
        creates: bool,
        serve: S,
    ) -> Verdict
    where
        R: Send + 'static,
        S: FnOnce(&dyn Lsps1Server, PublicKey, R) -> Result<Value, RpcError> + Send + 'static,
    {
        let server = match (self.admit(peer, creates), &self.answers) {
            (Err(refused), _) => return Verdict::Reply(response(&id, Err(refused))),
            (Ok(()), Lsps1Answers::NotOffered) => {
                return Verdict::Reply(response(&id, Err(RpcError::method_not_found())))
            }
            (Ok(()), Lsps1Answers::Server(server)) => Arc::clone(server),
        };
        if creates {
            return defer(id, move || serve(&*server, peer, request));
        }
        Verdict::Reply(response(&id, serve(&*server, peer, request)))
    }

    /// Applies the order rate to a request that creates an order.
    fn admit(&self, peer: PublicKey, creates_order: bool) -> Result<(), RpcError> {
        match (&self.order_rate, creates_order) {
            (Some(rate), true) => rate.admit(peer, Instant::now()),
            _ => Ok(()),
        }
    }
}

/// The guard alone as a gate: bad requests are answered, good ones go to the liquidity manager
/// (which then answers `lsps1.*` itself).
impl LspsGate for RequestGuard {
    fn inspect(&self, _peer: PublicKey, payload: &str) -> Verdict {
        self.check(payload)
    }
}
