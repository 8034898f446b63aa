//! The node's figures for monitoring ([`NodeMetrics`]): chain and wallet sync lag, the kept
//! transactions still on their way to the chain, peers and channels.

use std::collections::BTreeMap;

use crate::api::{NodeMetrics, StateCount};
use crate::node::chain::unix_now;
use crate::node::store::BroadcastState;
use crate::node::Node;

impl Node {
    /// What the node reports about itself now. Cheap: no chain source round trip.
    pub fn metrics(&self) -> NodeMetrics {
        let inner = &self.inner;
        let now = unix_now();
        let age = |at: u64| now.saturating_sub(at);
        let open = inner.broadcaster.open();
        let mut by_state: BTreeMap<&'static str, u64> = BTreeMap::new();
        for kept in &open {
            *by_state.entry(kept.state.as_str()).or_default() += 1;
        }
        let oldest_unsent = open
            .iter()
            .filter(|k| k.state == BroadcastState::Sending)
            .map(|k| age(k.created_at))
            .max();
        let channels = inner.channel_manager.list_channels();
        NodeMetrics {
            block_height: inner.channel_manager.current_best_block().height,
            chain_sync_age_secs: inner.chain_sync.last_sync().map(|s| age(s.synced_at)),
            chain_sync_consecutive_failures: inner
                .chain_sync
                .failure()
                .map_or(0, |f| f.consecutive),
            wallet_sync_age_secs: inner.wallet.last_sync().map(|s| age(s.synced_at)),
            wallet_watched_scripts: inner.wallet.watched_script_count() as u64,
            broadcasts_open: by_state
                .into_iter()
                .map(|(state, count)| StateCount {
                    state: state.to_string(),
                    count,
                })
                .collect(),
            broadcast_oldest_unsent_age_secs: oldest_unsent,
            broadcast_failed_posts: open.iter().map(|k| u64::from(k.failed_posts)).sum(),
            peers: inner.peer_manager.list_peers().len() as u64,
            channels: channels.len() as u64,
            usable_channels: channels.iter().filter(|c| c.is_usable).count() as u64,
        }
    }
}
