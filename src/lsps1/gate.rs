//! The LSPS1 gate the node's LSPS message handler consults: every message passes the
//! [`RequestGuard`] first, and the `lsps1.*` requests that pass are answered by the
//! [`Lsps1Server`] (the order service), not by lightning-liquidity's manager, which then only
//! answers LSPS0.
//!
//! The order service needs this: lightning-liquidity 0.3's `send_payment_details` picks the
//! order id itself and queues the answer before returning, so an order could not be persisted
//! before the client learns of it; it also has no way to answer error 1, and one fixed spelling
//! of payment states.

use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use serde_json::Value;

use crate::lsps1::guard::{Lsps1Request, RequestGuard, Verdict};
use crate::lsps1::rpc::RpcError;
use crate::node::lsps::LspsGate;

/// Answers the `lsps1.*` methods (the order service).
pub trait Lsps1Server: Send + Sync {
    /// Answers one request from `peer` that passed the guard: the JSON-RPC `result`, or the
    /// error object to send.
    fn serve(&self, peer: PublicKey, request: Lsps1Request) -> Result<Value, RpcError>;
}

/// Who answers `lsps1.*` requests.
enum Lsps1Answers {
    Server(Arc<dyn Lsps1Server>),
    /// This node sells no channels: "Method not found" (bLIP-50), rather than the manager's
    /// silence.
    NotOffered,
}

/// The guard in front of the liquidity manager, with the server for `lsps1.*`.
pub struct Lsps1Gate {
    guard: Arc<RequestGuard>,
    answers: Lsps1Answers,
}

impl Lsps1Gate {
    /// `lsps1.*` requests are answered by `server`.
    pub fn serving(guard: Arc<RequestGuard>, server: Arc<dyn Lsps1Server>) -> Self {
        Lsps1Gate {
            guard,
            answers: Lsps1Answers::Server(server),
        }
    }

    /// `lsps1.*` requests are answered "Method not found": the node sells no channels.
    pub fn refusing(guard: Arc<RequestGuard>) -> Self {
        Lsps1Gate {
            guard,
            answers: Lsps1Answers::NotOffered,
        }
    }
}

impl LspsGate for Lsps1Gate {
    fn inspect(&self, peer: PublicKey, payload: &str) -> Verdict {
        let checked = match self.guard.read(payload) {
            Ok(checked) => checked,
            Err(verdict) => return verdict,
        };
        let Some(request) = checked.lsps1 else {
            return Verdict::Forward(checked.payload);
        };
        let answer = match &self.answers {
            Lsps1Answers::Server(server) => server.serve(peer, request),
            Lsps1Answers::NotOffered => Err(RpcError::method_not_found()),
        };
        let response = match answer {
            Ok(result) => {
                serde_json::json!({ "jsonrpc": "2.0", "id": checked.id, "result": result })
            }
            Err(error) => error.to_response(Some(&checked.id)),
        };
        Verdict::Reply(response.to_string())
    }
}

/// The guard alone as a gate: bad requests are answered, good ones go to the liquidity manager
/// (which then answers `lsps1.*` itself).
impl LspsGate for RequestGuard {
    fn inspect(&self, _peer: PublicKey, payload: &str) -> Verdict {
        self.check(payload)
    }
}
