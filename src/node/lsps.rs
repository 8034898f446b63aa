//! The node's handler for LSPS peer messages (custom message type 37913): lightning-liquidity's
//! `LiquidityManager` behind a gate that a service above the node may install.
//!
//! The node owns the `PeerManager`, so it owns the custom message handler too; what a service
//! (the LSPS1 order service) needs is a say over each raw message before the manager parses it.
//! [`LspsGate::inspect`] gives it that: forward the (possibly cleaned) payload, answer it
//! directly, or drop it. Without a gate every message goes to the inner handler unchanged.
//!
//! Answers a gate gives go out through `get_and_clear_pending_msg`, together with the inner
//! handler's own messages; lightning-net-tokio calls `PeerManager::process_events` after every
//! read, which collects them.
//!
//! A gate may also defer its answer ([`Verdict::Defer`]) when making it waits on disk (a new
//! order is committed before it is answered): the work runs on the blocking pool, never in the
//! peer handler, which all peers share, and its answer is queued and flushed
//! ([`GatedLspsHandler::set_flush`]) when done. At most [`MAX_DEFERRED`] answers are pending at
//! once; a request beyond that is answered at once with the gate's refusal.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bitcoin::secp256k1::PublicKey;
use lightning::ln::msgs::{DecodeError, Init, LightningError};
use lightning::ln::peer_handler::CustomMessageHandler;
use lightning::ln::wire::CustomMessageReader;
use lightning::types::features::{InitFeatures, NodeFeatures};
use lightning::util::ser::LengthLimitedRead;
use lightning_liquidity::lsps0::ser::{RawLSPSMessage, LSPS_MESSAGE_TYPE_ID};

/// Most deferred answers pending at once, over all peers.
pub const MAX_DEFERRED: usize = 256;

/// Work that makes a JSON-RPC response.
pub type Answer = Box<dyn FnOnce() -> String + Send>;

/// What happens to one incoming LSPS message.
pub enum Verdict {
    /// Hand this payload (the original, or a cleaned copy) to the inner handler.
    Forward(String),
    /// Send this JSON-RPC response to the peer; the inner handler never sees the request.
    Reply(String),
    /// Send the response `answer` makes, once made off the peer handler; `refusal` is the
    /// response to send instead if it cannot be made (too many answers pending, or the work
    /// failed).
    Defer { answer: Answer, refusal: String },
    /// Neither answer nor forward (for example a response to a request we never sent).
    Drop(&'static str),
}

impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Forward(payload) => f.debug_tuple("Forward").field(payload).finish(),
            Verdict::Reply(payload) => f.debug_tuple("Reply").field(payload).finish(),
            Verdict::Defer { refusal, .. } => {
                f.debug_struct("Defer").field("refusal", refusal).finish()
            }
            Verdict::Drop(reason) => f.debug_tuple("Drop").field(reason).finish(),
        }
    }
}

/// Looks at every raw LSPS message before the inner handler does.
pub trait LspsGate: Send + Sync {
    fn inspect(&self, peer: PublicKey, payload: &str) -> Verdict;
}

/// A custom message handler that consults an installed [`LspsGate`] before the inner handler
/// (the `LiquidityManager`) sees a message.
pub struct GatedLspsHandler<H> {
    inner: H,
    gate: OnceLock<Arc<dyn LspsGate>>,
    replies: Arc<Mutex<Vec<(PublicKey, RawLSPSMessage)>>>,
    /// Runs deferred answers (none: they run in place, as outside a runtime).
    runtime: Option<tokio::runtime::Handle>,
    /// Sends what is queued now, rather than at the next read from any peer.
    flush: Arc<OnceLock<Box<dyn Fn() + Send + Sync>>>,
    deferred: Arc<AtomicUsize>,
}

impl<H> GatedLspsHandler<H> {
    /// A handler over `inner`; deferred answers run on the blocking pool of the runtime this
    /// is called in.
    pub fn new(inner: H) -> Self {
        GatedLspsHandler {
            inner,
            gate: OnceLock::new(),
            replies: Arc::default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            flush: Arc::default(),
            deferred: Arc::default(),
        }
    }

    /// `flush` sends the queued messages (the node's `PeerManager::process_events`): called
    /// when a deferred answer is ready. Set once; later calls are ignored.
    pub fn set_flush(&self, flush: impl Fn() + Send + Sync + 'static) {
        let _ = self.flush.set(Box::new(flush));
    }

    /// How many deferred answers are being made now.
    pub fn deferred_pending(&self) -> usize {
        self.deferred.load(Ordering::Acquire)
    }

    fn defer(&self, peer: PublicKey, answer: Answer, refusal: String) {
        if self.deferred.fetch_add(1, Ordering::AcqRel) >= MAX_DEFERRED {
            self.deferred.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(%peer, "too many LSPS answers pending; refused a request");
            return self.queue_reply(peer, refusal);
        }
        let Some(runtime) = &self.runtime else {
            self.deferred.fetch_sub(1, Ordering::AcqRel);
            return self.queue_reply(peer, answer());
        };
        let (replies, flush, deferred) = (
            Arc::clone(&self.replies),
            Arc::clone(&self.flush),
            Arc::clone(&self.deferred),
        );
        runtime.spawn_blocking(move || {
            // Answered even if the work panics, so the count always comes back down.
            let payload =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(answer)).unwrap_or(refusal);
            push_reply(&replies, peer, payload);
            deferred.fetch_sub(1, Ordering::AcqRel);
            if let Some(flush) = flush.get() {
                flush();
            }
        });
    }

    /// From now on every LSPS message passes `gate` first. Set once; later calls are ignored
    /// (returns false).
    pub fn install_gate(&self, gate: Arc<dyn LspsGate>) -> bool {
        self.gate.set(gate).is_ok()
    }

    /// Queues `payload` (a JSON-RPC message) for `peer`, sent with the next batch of messages.
    pub fn queue_reply(&self, peer: PublicKey, payload: String) {
        push_reply(&self.replies, peer, payload)
    }

    pub fn inner(&self) -> &H {
        &self.inner
    }
}

impl<H> CustomMessageReader for GatedLspsHandler<H>
where
    H: CustomMessageReader<CustomMessage = RawLSPSMessage>,
{
    type CustomMessage = RawLSPSMessage;

    fn read<R: LengthLimitedRead>(
        &self,
        message_type: u16,
        buffer: &mut R,
    ) -> Result<Option<RawLSPSMessage>, DecodeError> {
        if message_type != LSPS_MESSAGE_TYPE_ID {
            return self.inner.read(message_type, buffer);
        }
        // A Lightning message is at most 65535 bytes, so the length always fits.
        let mut bytes = vec![0u8; buffer.remaining_bytes().min(u64::from(u16::MAX)) as usize];
        buffer
            .read_exact(&mut bytes)
            .map_err(|_| DecodeError::ShortRead)?;
        // Bytes that are not UTF-8 cannot be JSON: hand on an empty payload, which is answered
        // with a parse error, instead of failing the read (which would cost the peer its
        // connection).
        let payload = String::from_utf8(bytes).unwrap_or_default();
        Ok(Some(RawLSPSMessage { payload }))
    }
}

impl<H> CustomMessageHandler for GatedLspsHandler<H>
where
    H: CustomMessageHandler<CustomMessage = RawLSPSMessage>,
{
    fn handle_custom_message(
        &self,
        msg: RawLSPSMessage,
        sender_node_id: PublicKey,
    ) -> Result<(), LightningError> {
        let Some(gate) = self.gate.get() else {
            return self.inner.handle_custom_message(msg, sender_node_id);
        };
        match gate.inspect(sender_node_id, &msg.payload) {
            Verdict::Forward(payload) => self
                .inner
                .handle_custom_message(RawLSPSMessage { payload }, sender_node_id),
            Verdict::Reply(payload) => {
                tracing::debug!(peer = %sender_node_id, reply = %payload, "answered an LSPS message before the liquidity manager");
                self.queue_reply(sender_node_id, payload);
                Ok(())
            }
            Verdict::Defer { answer, refusal } => {
                self.defer(sender_node_id, answer, refusal);
                Ok(())
            }
            Verdict::Drop(reason) => {
                tracing::debug!(peer = %sender_node_id, reason, "dropped an LSPS message");
                Ok(())
            }
        }
    }

    fn get_and_clear_pending_msg(&self) -> Vec<(PublicKey, RawLSPSMessage)> {
        let mut messages =
            std::mem::take(&mut *self.replies.lock().unwrap_or_else(|p| p.into_inner()));
        messages.extend(self.inner.get_and_clear_pending_msg());
        messages
    }

    fn peer_disconnected(&self, their_node_id: PublicKey) {
        self.replies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(peer, _)| *peer != their_node_id);
        self.inner.peer_disconnected(their_node_id)
    }

    fn peer_connected(
        &self,
        their_node_id: PublicKey,
        msg: &Init,
        inbound: bool,
    ) -> Result<(), ()> {
        self.inner.peer_connected(their_node_id, msg, inbound)
    }

    fn provided_node_features(&self) -> NodeFeatures {
        self.inner.provided_node_features()
    }

    fn provided_init_features(&self, their_node_id: PublicKey) -> InitFeatures {
        self.inner.provided_init_features(their_node_id)
    }
}

fn push_reply(replies: &Mutex<Vec<(PublicKey, RawLSPSMessage)>>, peer: PublicKey, payload: String) {
    replies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((peer, RawLSPSMessage { payload }));
}
