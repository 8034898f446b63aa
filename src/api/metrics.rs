//! Figures for monitoring (`GET /metrics`, Prometheus text): what the node and the order
//! engine report about themselves. Plain data; the admin router renders it.

use serde::{Deserialize, Serialize};

/// A count under one label value (a state).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StateCount {
    pub state: String,
    pub count: u64,
}

/// What the Lightning node reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct NodeMetrics {
    /// The channel manager's best block.
    pub block_height: u32,
    /// Seconds since the last completed chain sync; `None` before the first.
    pub chain_sync_age_secs: Option<u64>,
    /// Failed chain syncs in a row (0 when healthy).
    pub chain_sync_consecutive_failures: u32,
    /// Seconds since the on-chain wallet last synced; `None` before the first.
    pub wallet_sync_age_secs: Option<u64>,
    /// Wallet scripts each sync asks the chain source about (retired order addresses are not).
    #[serde(default)]
    pub wallet_watched_scripts: u64,
    /// Kept transactions (funding, wallet payments) that may still confirm, by state
    /// (`signed`, `sending`, `seen`).
    pub broadcasts_open: Vec<StateCount>,
    /// Age of the oldest kept transaction the chain source does not have (`sending`).
    pub broadcast_oldest_unsent_age_secs: Option<u64>,
    /// Refused or unanswered posts of the kept transactions still open.
    pub broadcast_failed_posts: u64,
    pub peers: u64,
    pub channels: u64,
    pub usable_channels: u64,
}

/// What the order engine reports.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct OrderMetrics {
    /// Orders in the book by order state (`CREATED`, `COMPLETED`, `FAILED`).
    pub orders_by_state: Vec<StateCount>,
    /// Failed orders whose on-chain payment is still to be returned (refund not yet confirmed).
    pub refunds_pending: u64,
    /// HTLCs held for orders and not yet claimed or failed back.
    pub htlcs_held: u64,
    /// Blocks from the best block to the nearest deadline among them.
    pub htlc_nearest_deadline_blocks: Option<u32>,
    /// Orders with a money step pending longer than it should take (`orders --stuck`).
    pub orders_stuck: u64,
}

/// Everything `GET /metrics` shows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Metrics {
    pub node: NodeMetrics,
    /// `None` when the node sells no channels.
    pub orders: Option<OrderMetrics>,
}
