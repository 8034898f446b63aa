//! The chain source: everything the node learns from, or tells, an Esplora server.
//!
//! - [`EsploraFeeEstimator`]: `/fee-estimates` mapped onto LDK's [`ConfirmationTarget`]s, with
//!   a floor of 253 sat/kW (the relay minimum LDK itself assumes) and fallbacks until the first
//!   successful fetch.
//! - [`EsploraBroadcaster`]: LDK's [`BroadcasterInterface`]; transactions are queued and posted
//!   to `POST /tx` by a background task that retries, treating "already known" as success.
//! - [`ChainSync`]: syncs the BDK wallet and LDK (ChannelManager, ChainMonitor, OutputSweeper)
//!   through `lightning-transaction-sync`, on an interval and on demand, and remembers the last
//!   sync time and height, or why the chain source is failing. A failing sync is retried with
//!   backoff; the node keeps serving its peers meanwhile.
//! - [`source`]: refuses a chain source that serves another network's chain, or a chain that no
//!   longer holds the node's blocks beyond a reorg.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{BlockHash, FeeRate, Network, Transaction};
use lightning::chain::chaininterface::{
    BroadcasterInterface, ConfirmationTarget, FeeEstimator, TransactionType,
};
use lightning::chain::Confirm;
use tokio::sync::{mpsc, watch};

use super::types::{ChainMonitor, ChainSyncClient, ChannelManager, OutputSweeper};
use super::wallet::Wallet;

mod source;

pub use source::{check_continuity, check_genesis, fetch_tip, Continuity, MAX_REORG_DEPTH};

/// The lowest fee rate LDK accepts, in sat per 1000 weight units (1.012 sat/vB).
pub const FEERATE_FLOOR_SAT_PER_KW: u32 = 253;

/// How long one Esplora HTTP request may take before it counts as failed.
const ESPLORA_TIMEOUT: Duration = Duration::from_secs(15);

/// How often a rejected broadcast is retried before giving up (LDK rebroadcasts what matters).
const BROADCAST_ATTEMPTS: u32 = 5;

/// Why talking to the chain source failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("the chain source at {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the chain source at {url} answered something unexpected: {reason}")]
    BadAnswer { url: String, reason: String },
    #[error("syncing the on-chain wallet failed: {0}")]
    Wallet(String),
    #[error("syncing the Lightning state with the chain failed: {0}")]
    Lightning(String),
    #[error(
        "the chain source at {url} serves another chain: its genesis block is {found}, but {network} starts at {expected}; point chain.esplora_url at a {network} server"
    )]
    WrongChain {
        url: String,
        network: Network,
        expected: BlockHash,
        found: BlockHash,
    },
    #[error(
        "the chain source at {url} no longer holds this node's blocks: its chain leaves the node's best block (height {height}, {hash}) more than {MAX_REORG_DEPTH} blocks deep, so it serves another chain; point the node at the chain it has been following, or start it with a new data directory"
    )]
    ForeignChain {
        url: String,
        height: u32,
        hash: BlockHash,
    },
}

impl ChainError {
    /// True when retrying cannot help: the configuration names the wrong chain.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            ChainError::WrongChain { .. } | ChainError::ForeignChain { .. }
        )
    }
}

/// The confirmation targets our own on-chain spends use, beside LDK's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnchainTarget {
    /// An operator's on-chain payment: within about an hour.
    Payment,
    /// A channel funding transaction: within about two hours.
    ChannelFunding,
}

fn target_blocks(target: ConfirmationTarget) -> u16 {
    match target {
        ConfirmationTarget::MaximumFeeEstimate => 1,
        ConfirmationTarget::UrgentOnChainSweep => 6,
        ConfirmationTarget::MinAllowedAnchorChannelRemoteFee => 1008,
        ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => 144,
        ConfirmationTarget::AnchorChannelFee => 1008,
        ConfirmationTarget::NonAnchorChannelFee => 12,
        ConfirmationTarget::ChannelCloseMinimum => 144,
        ConfirmationTarget::OutputSpendingFee => 12,
    }
}

/// Used until Esplora has answered once (and if it never has estimates for a target).
fn fallback_sat_per_kw(target: ConfirmationTarget) -> u32 {
    match target {
        ConfirmationTarget::MaximumFeeEstimate => 8_000,
        ConfirmationTarget::UrgentOnChainSweep => 5_000,
        ConfirmationTarget::MinAllowedAnchorChannelRemoteFee => FEERATE_FLOOR_SAT_PER_KW,
        ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => FEERATE_FLOOR_SAT_PER_KW,
        ConfirmationTarget::AnchorChannelFee => 500,
        ConfirmationTarget::NonAnchorChannelFee => 1_000,
        ConfirmationTarget::ChannelCloseMinimum => 500,
        ConfirmationTarget::OutputSpendingFee => 1_000,
    }
}

const ALL_TARGETS: [ConfirmationTarget; 8] = [
    ConfirmationTarget::MaximumFeeEstimate,
    ConfirmationTarget::UrgentOnChainSweep,
    ConfirmationTarget::MinAllowedAnchorChannelRemoteFee,
    ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee,
    ConfirmationTarget::AnchorChannelFee,
    ConfirmationTarget::NonAnchorChannelFee,
    ConfirmationTarget::ChannelCloseMinimum,
    ConfirmationTarget::OutputSpendingFee,
];

/// Picks the estimate for `blocks` from Esplora's `{"<blocks>": sat_per_vb}` map: the entry for
/// the largest block count not above `blocks` (Esplora omits some counts), else the smallest.
fn estimate_for_blocks(estimates: &HashMap<u16, f64>, blocks: u16) -> Option<f64> {
    let at_or_below = estimates
        .iter()
        .filter(|(b, _)| **b <= blocks)
        .max_by_key(|(b, _)| **b);
    let nearest = at_or_below.or_else(|| estimates.iter().min_by_key(|(b, _)| **b));
    nearest.map(|(_, rate)| *rate)
}

/// Converts Esplora's sat/vB (a float on the wire) to sat/kW, never below the floor.
fn sat_per_vb_to_kw(sat_per_vb: f64) -> u32 {
    let per_kw = (sat_per_vb * 250.0).ceil();
    if per_kw.is_finite() && per_kw > 0.0 {
        (per_kw.min(u32::MAX as f64) as u32).max(FEERATE_FLOOR_SAT_PER_KW)
    } else {
        FEERATE_FLOOR_SAT_PER_KW
    }
}

/// Fee rates from Esplora's `/fee-estimates`, cached between refreshes.
pub struct EsploraFeeEstimator {
    base_url: String,
    http: reqwest::Client,
    sat_per_kw: RwLock<HashMap<ConfirmationTarget, u32>>,
    /// The last `/fee-estimates` answer (blocks -> sat/vB), for targets LDK does not name.
    by_blocks: RwLock<HashMap<u16, f64>>,
}

impl EsploraFeeEstimator {
    pub fn new(base_url: String, http: reqwest::Client) -> Self {
        let fallbacks = ALL_TARGETS
            .iter()
            .map(|t| (*t, fallback_sat_per_kw(*t)))
            .collect();
        EsploraFeeEstimator {
            base_url,
            http,
            sat_per_kw: RwLock::new(fallbacks),
            by_blocks: RwLock::new(HashMap::new()),
        }
    }

    /// Fetches fresh estimates; on failure the previous ones stay in use.
    pub async fn refresh(&self) -> Result<(), ChainError> {
        let url = format!("{}/fee-estimates", self.base_url);
        let response = self
            .http
            .get(&url)
            .timeout(ESPLORA_TIMEOUT)
            .send()
            .await
            .map_err(|e| ChainError::Unreachable {
                url: self.base_url.clone(),
                reason: e.to_string(),
            })?;
        let raw: HashMap<String, f64> = response
            .error_for_status()
            .map_err(|e| ChainError::BadAnswer {
                url: url.clone(),
                reason: e.to_string(),
            })?
            .json()
            .await
            .map_err(|e| ChainError::BadAnswer {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let estimates: HashMap<u16, f64> = raw
            .into_iter()
            .filter_map(|(k, v)| k.parse::<u16>().ok().map(|b| (b, v)))
            .collect();
        if estimates.is_empty() {
            // Regtest Esplora servers often answer `{}`; keep the fallbacks.
            return Ok(());
        }
        self.by_blocks
            .write()
            .expect("fee lock poisoned")
            .clone_from(&estimates);
        let mut rates = HashMap::new();
        for target in ALL_TARGETS {
            let Some(sat_per_vb) = estimate_for_blocks(&estimates, target_blocks(target)) else {
                continue;
            };
            let mut per_kw = sat_per_vb_to_kw(sat_per_vb);
            match target {
                // Leave room below the background rate so a peer's slightly lower estimate
                // does not make us force-close.
                ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => {
                    per_kw = per_kw.saturating_sub(250).max(FEERATE_FLOOR_SAT_PER_KW)
                }
                // Protection against fee inflation, with leeway for honest spikes.
                ConfirmationTarget::MaximumFeeEstimate => {
                    per_kw = per_kw.saturating_mul(11) / 10 + 2_500
                }
                _ => {}
            }
            rates.insert(target, per_kw);
        }
        self.sat_per_kw
            .write()
            .expect("fee lock poisoned")
            .extend(rates);
        Ok(())
    }

    /// The fee rate expected to confirm within `blocks`, never below the floor; the funding
    /// target's rate while the chain source has given no estimates.
    pub fn fee_rate_within_blocks(&self, blocks: u16) -> FeeRate {
        let estimate =
            estimate_for_blocks(&self.by_blocks.read().expect("fee lock poisoned"), blocks);
        match estimate {
            Some(sat_per_vb) => FeeRate::from_sat_per_kwu(u64::from(sat_per_vb_to_kw(sat_per_vb))),
            None => self.onchain_fee_rate(OnchainTarget::ChannelFunding),
        }
    }

    /// The fee rate our own on-chain spends use.
    pub fn onchain_fee_rate(&self, target: OnchainTarget) -> FeeRate {
        let ldk_target = match target {
            OnchainTarget::Payment => ConfirmationTarget::UrgentOnChainSweep,
            OnchainTarget::ChannelFunding => ConfirmationTarget::NonAnchorChannelFee,
        };
        FeeRate::from_sat_per_kwu(self.get_est_sat_per_1000_weight(ldk_target) as u64)
    }
}

impl FeeEstimator for EsploraFeeEstimator {
    fn get_est_sat_per_1000_weight(&self, target: ConfirmationTarget) -> u32 {
        let rates = self.sat_per_kw.read().expect("fee lock poisoned");
        rates
            .get(&target)
            .copied()
            .unwrap_or_else(|| fallback_sat_per_kw(target))
    }
}

/// Queues transactions for a background task that posts them to Esplora.
pub struct EsploraBroadcaster {
    queue: mpsc::UnboundedSender<Vec<Transaction>>,
}

impl EsploraBroadcaster {
    /// Returns the broadcaster and the task that drains its queue until every sender is gone or
    /// `shutdown` fires. Packages (a parent and its fee-bumping child) are posted in order.
    pub fn new(
        base_url: String,
        http: reqwest::Client,
        mut shutdown: watch::Receiver<bool>,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (queue, mut pending) = mpsc::unbounded_channel::<Vec<Transaction>>();
        let task = async move {
            loop {
                let package = tokio::select! {
                    package = pending.recv() => match package {
                        Some(package) => package,
                        None => return,
                    },
                    _ = shutdown.changed() => return,
                };
                for tx in package {
                    post_with_retries(&http, &base_url, &tx).await;
                }
            }
        };
        (EsploraBroadcaster { queue }, task)
    }
}

impl BroadcasterInterface for EsploraBroadcaster {
    fn broadcast_transactions(&self, txs: &[(&Transaction, TransactionType)]) {
        let package: Vec<Transaction> = txs.iter().map(|(tx, _)| (*tx).clone()).collect();
        if self.queue.send(package).is_err() {
            tracing::warn!("broadcast requested while the node is stopping; LDK will rebroadcast");
        }
    }
}

/// Esplora (electrs) passes bitcoind's reject reason through; these mean the network already
/// has the transaction.
fn is_already_known(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    reason.contains("already in block chain")
        || reason.contains("txn-already-known")
        || reason.contains("txn-already-in-mempool")
        || reason.contains("already known")
        || reason.contains("already exists")
        || reason.contains("outputs already in utxo set")
}

async fn post_with_retries(http: &reqwest::Client, base_url: &str, tx: &Transaction) {
    let txid = tx.compute_txid();
    let url = format!("{base_url}/tx");
    let body = serialize_hex(tx);
    let mut backoff = Duration::from_millis(500);
    for attempt in 1..=BROADCAST_ATTEMPTS {
        let outcome = http
            .post(&url)
            .timeout(ESPLORA_TIMEOUT)
            .body(body.clone())
            .send()
            .await;
        match outcome {
            Ok(response) if response.status().is_success() => {
                tracing::debug!(%txid, "broadcast transaction");
                return;
            }
            Ok(response) => {
                let status = response.status();
                let reason = response.text().await.unwrap_or_default();
                if is_already_known(&reason) {
                    tracing::debug!(%txid, "transaction already known to the chain source");
                    return;
                }
                tracing::warn!(%txid, %status, reason, attempt, "chain source rejected transaction");
            }
            Err(e) => {
                tracing::warn!(%txid, error = %e, attempt, "could not reach chain source to broadcast");
            }
        }
        if attempt < BROADCAST_ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    tracing::error!(%txid, "giving up broadcasting transaction after {BROADCAST_ATTEMPTS} attempts");
}

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
        self.wallet
            .sync()
            .await
            .map_err(|e| ChainError::Wallet(e.to_string()))?;
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

/// An error with its causes: reqwest's top-level message is often just "error sending
/// request", and the TLS or TCP error is below it.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
    fn esplora_rates_map_to_the_nearest_lower_block_count_with_a_floor() {
        let estimates: HashMap<u16, f64> = [(1, 20.0), (6, 10.0), (144, 1.0), (1008, 0.5)].into();
        assert_eq!(estimate_for_blocks(&estimates, 12), Some(10.0));
        assert_eq!(estimate_for_blocks(&estimates, 1008), Some(0.5));
        assert_eq!(sat_per_vb_to_kw(10.0), 2_500);
        assert_eq!(sat_per_vb_to_kw(0.5), FEERATE_FLOOR_SAT_PER_KW);
        assert_eq!(sat_per_vb_to_kw(f64::NAN), FEERATE_FLOOR_SAT_PER_KW);
    }

    #[test]
    fn reject_reasons_for_known_transactions_count_as_success() {
        assert!(is_already_known("sendrawtransaction RPC error: {\"code\":-27,\"message\":\"Transaction already in block chain\"}"));
        assert!(is_already_known("txn-already-in-mempool"));
        assert!(is_already_known(
            "{\"code\":-27,\"message\":\"Transaction outputs already in utxo set\"}"
        ));
        assert!(!is_already_known("bad-txns-inputs-missingorspent"));
    }

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
