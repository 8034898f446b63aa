//! The chain source: everything the node learns from, or tells, an Esplora server.
//!
//! - `chain/fees.rs`: [`EsploraFeeEstimator`], fee estimates for LDK and for our own spends.
//! - `chain/broadcast.rs`: [`EsploraBroadcaster`], LDK's broadcaster, posting with retries, and
//!   keeping our own transactions (funding, wallet payments) sent until the chain settles them.
//! - `chain/error.rs`: [`ChainError`], and the request timeout.
//! - [`ChainSync`] (this file): syncs the BDK wallet and LDK (ChannelManager, ChainMonitor, OutputSweeper)
//!   through `lightning-transaction-sync`, on an interval and on demand, and remembers the last
//!   sync time and height, or why the chain source is failing. A failing sync is retried with
//!   backoff; the node keeps serving its peers meanwhile.
//! - `chain/source.rs`: refuses a chain source that serves another network's chain, or a chain that no
//!   longer holds the node's blocks beyond a reorg.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::{BlockHash, Network};
use lightning::chain::Confirm;
use tokio::sync::watch;

use super::types::{ChainMonitor, ChainSyncClient, ChannelManager, OutputSweeper};
use super::wallet::Wallet;

pub(crate) mod broadcast;
pub(crate) mod error;
pub(crate) mod fees;
pub(crate) mod source;

pub use broadcast::{EsploraBroadcaster, KeepBroadcasting, FINAL_DEPTH};
pub use error::ChainError;
pub use fees::{EsploraFeeEstimator, OnchainTarget, FEERATE_FLOOR_SAT_PER_KW};
pub use source::{check_continuity, check_genesis, fetch_tip, Continuity, MAX_REORG_DEPTH};

/// What the last completed sync saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSnapshot {
    /// Unix seconds.
    pub synced_at: u64,
    pub height: u32,
    pub block_hash: BlockHash,
}

/// Why the chain source has been failing, since its last successful sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFailure {
    /// Unix seconds of the first failure in this run of failures.
    pub failing_since: u64,
    /// Failed syncs in a row.
    pub consecutive: u32,
    /// The last failure, as one sentence.
    pub last_error: String,
    /// The last failure was a refusal of the chain source (another network, or a chain without
    /// the node's blocks): retrying cannot help until the operator acts.
    pub refused: bool,
}

/// First retry after a failed sync; each further failure doubles it, up to the sync interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// How long to wait before the next sync: the interval, or the backoff after `failures` failed
/// syncs in a row, whichever is shorter.
fn next_sync_delay(interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    let backoff = FIRST_RETRY.saturating_mul(1u32 << (failures - 1).min(16));
    backoff.min(interval)
}

/// Keeps the wallet and LDK in step with the chain source.
pub struct ChainSync {
    tx_sync: Arc<ChainSyncClient>,
    fee_estimator: Arc<EsploraFeeEstimator>,
    wallet: Arc<Wallet>,
    channel_manager: Arc<ChannelManager>,
    chain_monitor: Arc<ChainMonitor>,
    sweeper: Arc<OutputSweeper>,
    /// Serialises syncs: an on-demand sync waits for a running one rather than racing it.
    running: tokio::sync::Mutex<()>,
    last: Mutex<Option<SyncSnapshot>>,
    failure: Mutex<Option<SyncFailure>>,
    source: ChainEndpoint,
}

/// Where [`ChainSync`] checks which chain it is talking to.
pub struct ChainEndpoint {
    pub http: reqwest::Client,
    pub base_url: String,
    pub network: Network,
}

impl ChainSync {
    pub fn new(
        tx_sync: Arc<ChainSyncClient>,
        fee_estimator: Arc<EsploraFeeEstimator>,
        wallet: Arc<Wallet>,
        channel_manager: Arc<ChannelManager>,
        chain_monitor: Arc<ChainMonitor>,
        sweeper: Arc<OutputSweeper>,
        source: ChainEndpoint,
    ) -> Self {
        ChainSync {
            tx_sync,
            fee_estimator,
            wallet,
            channel_manager,
            chain_monitor,
            sweeper,
            running: tokio::sync::Mutex::new(()),
            last: Mutex::new(None),
            failure: Mutex::new(None),
            source,
        }
    }

    /// Checks that the chain source serves our network's chain and still holds the node's
    /// blocks, up to a reorg of [`MAX_REORG_DEPTH`]. Every sync starts with this; a failure
    /// stops the sync, so the node never follows another chain.
    pub async fn verify_chain(&self) -> Result<(), ChainError> {
        let source = &self.source;
        check_genesis(&source.http, &source.base_url, source.network).await?;
        let known = self.wallet.recent_blocks(MAX_REORG_DEPTH);
        match check_continuity(&source.http, &source.base_url, &known).await? {
            Continuity::Extends => {}
            Continuity::Reorg { fork_height, depth } => {
                tracing::warn!(
                    fork_height,
                    depth,
                    "the chain source reorganised the chain below the node's best block; following it"
                );
            }
        }
        Ok(())
    }

    /// One full sync: fee estimates, wallet, then LDK. Returns what it synced to; a failure is
    /// remembered until the next success (see [`ChainSync::failure`]).
    pub async fn sync(&self) -> Result<SyncSnapshot, ChainError> {
        let _one_at_a_time = self.running.lock().await;
        let result = self.sync_once().await;
        let mut failure = self.failure.lock().expect("sync lock poisoned");
        match &result {
            Ok(_) => *failure = None,
            Err(e) => {
                let previous = failure.take();
                *failure = Some(SyncFailure {
                    failing_since: previous.as_ref().map_or_else(unix_now, |f| f.failing_since),
                    consecutive: previous.map_or(1, |f| f.consecutive.saturating_add(1)),
                    last_error: e.to_string(),
                    refused: e.is_configuration(),
                });
            }
        }
        result
    }

    async fn sync_once(&self) -> Result<SyncSnapshot, ChainError> {
        self.verify_chain().await?;
        if let Err(e) = self.fee_estimator.refresh().await {
            tracing::warn!(error = %e, "fee estimates not refreshed; using the previous ones");
        }
        // The wallet and LDK sync apart: a failing wallet sync must not keep the channel
        // manager and chain monitor from seeing blocks (HTLC timeouts, justice transactions).
        let wallet = self
            .wallet
            .sync()
            .await
            .map_err(|e| ChainError::Wallet(e.to_string()));
        let confirmables: Vec<&(dyn Confirm + Sync + Send)> = vec![
            &*self.channel_manager as &(dyn Confirm + Sync + Send),
            &*self.chain_monitor as &(dyn Confirm + Sync + Send),
            &*self.sweeper as &(dyn Confirm + Sync + Send),
        ];
        self.tx_sync
            .sync(confirmables)
            .await
            .map_err(|e| ChainError::Lightning(e.to_string()))?;
        // The background processor does this every 30 s; doing it right after new blocks gets
        // swept funds on their way without that delay.
        if self
            .sweeper
            .regenerate_and_broadcast_spend_if_necessary()
            .await
            .is_err()
        {
            tracing::warn!(
                "could not (re)broadcast the sweep of spendable outputs; retrying later"
            );
        }
        // Balances and payments are only as fresh as the wallet: without it the sync failed.
        wallet?;
        let best = self.channel_manager.current_best_block();
        let snapshot = SyncSnapshot {
            synced_at: unix_now(),
            height: best.height,
            block_hash: best.block_hash,
        };
        *self.last.lock().expect("sync lock poisoned") = Some(snapshot);
        tracing::debug!(height = best.height, "chain sync complete");
        Ok(snapshot)
    }

    /// The last completed sync, if any.
    pub fn last_sync(&self) -> Option<SyncSnapshot> {
        *self.last.lock().expect("sync lock poisoned")
    }

    /// True once a sync has completed since the node started.
    pub fn has_synced(&self) -> bool {
        self.last_sync().is_some()
    }

    /// True while the node is in step with a chain source it trusts: synced at least once, and
    /// the last sync did not refuse the source.
    pub fn is_following(&self) -> bool {
        self.has_synced() && !self.failure().is_some_and(|f| f.refused)
    }

    /// Why the chain source is failing, if its last sync failed.
    pub fn failure(&self) -> Option<SyncFailure> {
        self.failure.lock().expect("sync lock poisoned").clone()
    }

    /// Syncs every `interval` until `shutdown` fires. A failed sync is logged and retried after
    /// 1 s, then 2 s, 4 s, ... up to `interval`.
    pub async fn run(self: Arc<Self>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            let failures = self.failure().map_or(0, |f| f.consecutive);
            tokio::select! {
                _ = tokio::time::sleep(next_sync_delay(interval, failures)) => {
                    if let Err(e) = self.sync().await {
                        let failures = self.failure().map_or(1, |f| f.consecutive);
                        if e.is_configuration() {
                            tracing::error!(error = %e, failures, "not following the chain source");
                        } else {
                            tracing::warn!(error = %e, failures, "chain sync failed; retrying");
                        }
                    } else if failures > 0 {
                        tracing::info!(failures, "chain source reachable again; synced");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_syncs_back_off_from_one_second_up_to_the_interval() {
        let interval = Duration::from_secs(30);
        let delays: Vec<u64> = (0..8)
            .map(|failures| next_sync_delay(interval, failures).as_secs())
            .collect();
        assert_eq!(delays, [30, 1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(next_sync_delay(interval, u32::MAX), interval);
    }
}
