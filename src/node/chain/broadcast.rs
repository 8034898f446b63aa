//! LDK's [`BroadcasterInterface`] over Esplora, and the keeper of our own transactions.
//!
//! Every transaction is queued and posted to `POST /tx` by a background task that retries a
//! few times, treating "already known" as success. That is enough for what LDK rebroadcasts
//! itself (commitments, claims, anchor bumps, sweeps). It is not for a channel's funding
//! transaction, which LDK broadcasts once, nor for a wallet payment such as a refund: those
//! are *kept* ([`crate::node::store::KeptBroadcast`]), persisted before they are posted, and
//! every `interval` the task asks the chain source about each kept transaction that may still
//! confirm: one it does not have is posted again, one confirmed [`FINAL_DEPTH`] deep is done,
//! one whose input another confirmed transaction spent, or whose input's transaction is gone,
//! is conflicted (its owner re-issues what it paid, see the refunds). A kept transaction stays
//! spent in the wallet while it may confirm (see [`KeepBroadcasting::open_txids`]).

use std::collections::HashSet;
use std::time::Duration;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Transaction, Txid};
use lightning::chain::chaininterface::{BroadcasterInterface, TransactionType};
use tokio::sync::{mpsc, watch};

use super::error::ESPLORA_TIMEOUT;
use super::source::fetch_text;
use super::unix_now;
use crate::node::store::{BroadcastState, KeptBroadcast, Store};

/// How often a rejected broadcast is retried at once; a kept one is retried again by the keeper.
const BROADCAST_ATTEMPTS: u32 = 5;

/// Confirmations after which a kept transaction is settled (deeper reorgs are refused by the
/// chain-source continuity check).
pub const FINAL_DEPTH: u32 = 6;

/// A funding transaction signed but never broadcast is released after this long: LDK gives up
/// an outbound channel whose `funding_signed` does not come well within it.
const SIGNED_HOLD_SECS: u64 = 3 * 3600;

/// Our own transactions that must reach the chain, as the wallet sees the broadcaster.
pub trait KeepBroadcasting: Send + Sync {
    /// Keeps `tx`, just signed, from being counted as evicted; it is not posted.
    fn hold(&self, tx: &Transaction);
    /// Posts `tx` and keeps posting it until it is final or conflicted.
    fn broadcast_kept(&self, tx: &Transaction);
    /// `txid` will never be broadcast.
    fn abandon(&self, txid: &Txid);
    /// `original` was replaced by a fee bump spending the same inputs; only the bump is kept.
    fn replaced(&self, original: &Txid, by: &Txid);
    /// The kept transactions that may still confirm.
    fn open_txids(&self) -> HashSet<Txid>;
    /// The kept transactions held since they were signed and not yet handed over for
    /// broadcast (they may never be).
    fn unsent_txids(&self) -> HashSet<Txid>;
}

/// Queues transactions for a background task that posts them to Esplora, and keeps ours.
pub struct EsploraBroadcaster {
    queue: mpsc::UnboundedSender<Vec<Transaction>>,
    store: Store,
}

impl EsploraBroadcaster {
    /// Returns the broadcaster and the task that drains its queue and, every `interval`,
    /// looks after the kept transactions, until `shutdown` fires. Packages (a parent and its
    /// fee-bumping child) are posted in order.
    pub fn new(
        base_url: String,
        http: reqwest::Client,
        store: Store,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (queue, mut pending) = mpsc::unbounded_channel::<Vec<Transaction>>();
        let poster = Poster {
            http,
            base_url,
            store: store.clone(),
        };
        let task = async move {
            let mut next_pass = tokio::time::Instant::now() + interval;
            loop {
                tokio::select! {
                    package = pending.recv() => match package {
                        Some(package) => {
                            for tx in package {
                                poster.post_with_retries(&tx).await;
                            }
                        }
                        None => return,
                    },
                    _ = tokio::time::sleep_until(next_pass) => {
                        poster.keep_pass().await;
                        next_pass = tokio::time::Instant::now() + interval;
                    }
                    _ = shutdown.changed() => return,
                }
            }
        };
        (EsploraBroadcaster { queue, store }, task)
    }

    /// Where the kept transaction `txid` stands; `None` when it is not kept (or unreadable).
    pub fn state(&self, txid: &Txid) -> Option<BroadcastState> {
        self.kept(txid).map(|k| k.state)
    }

    /// The kept transaction `txid`; `None` when it is not kept (or unreadable).
    pub fn kept(&self, txid: &Txid) -> Option<KeptBroadcast> {
        self.store.kept_broadcast(txid).unwrap_or_else(|error| {
            tracing::error!(%txid, %error, "cannot read a kept transaction");
            None
        })
    }

    /// The kept transactions that may still confirm.
    pub fn open(&self) -> Vec<KeptBroadcast> {
        self.store.open_broadcasts().unwrap_or_else(|error| {
            tracing::error!(%error, "cannot read the kept transactions");
            Vec::new()
        })
    }

    fn enqueue(&self, package: Vec<Transaction>) {
        if self.queue.send(package).is_err() {
            tracing::warn!("broadcast requested while the node is stopping; it is sent at the next start if kept");
        }
    }

    fn keep(&self, tx: &Transaction, state: BroadcastState) -> bool {
        match self.store.keep_broadcast(tx, state, unix_now()) {
            Ok(post) => post,
            Err(error) => {
                // Posting it once is still better than not at all.
                tracing::error!(txid = %tx.compute_txid(), %error, "cannot keep a transaction; it is sent once only");
                state == BroadcastState::Sending
            }
        }
    }

    fn set_state(&self, txid: &Txid, state: BroadcastState, why: Option<&str>) {
        if let Err(error) = self
            .store
            .update_broadcast(txid, state, None, why, unix_now())
        {
            tracing::error!(%txid, %error, "cannot update a kept transaction");
        }
    }
}

impl BroadcasterInterface for EsploraBroadcaster {
    fn broadcast_transactions(&self, txs: &[(&Transaction, TransactionType)]) {
        for (tx, kind) in txs {
            // LDK broadcasts a funding transaction once and never again.
            if matches!(kind, TransactionType::Funding { .. }) {
                self.keep(tx, BroadcastState::Sending);
                // LDK hands the funding over on `funding_signed`, before the ChannelManager
                // that knows of it is persisted.
                crate::fault_points::crash_point("funding.kept_before_broadcast");
            }
        }
        self.enqueue(txs.iter().map(|(tx, _)| (*tx).clone()).collect());
    }
}

impl KeepBroadcasting for EsploraBroadcaster {
    fn hold(&self, tx: &Transaction) {
        self.keep(tx, BroadcastState::Signed);
    }

    fn broadcast_kept(&self, tx: &Transaction) {
        if self.keep(tx, BroadcastState::Sending) {
            self.enqueue(vec![tx.clone()]);
        }
    }

    fn abandon(&self, txid: &Txid) {
        self.set_state(txid, BroadcastState::Abandoned, None);
    }

    fn replaced(&self, original: &Txid, by: &Txid) {
        let why = format!("replaced by {by}");
        self.set_state(original, BroadcastState::Conflicted, Some(&why));
    }

    fn open_txids(&self) -> HashSet<Txid> {
        self.open().into_iter().map(|k| k.txid).collect()
    }

    fn unsent_txids(&self) -> HashSet<Txid> {
        self.open()
            .into_iter()
            .filter(|k| k.state == BroadcastState::Signed)
            .map(|k| k.txid)
            .collect()
    }
}

/// The task's side: posts and asks the chain source.
struct Poster {
    http: reqwest::Client,
    base_url: String,
    store: Store,
}

/// What the chain source says of a transaction.
enum Known {
    Missing,
    Unconfirmed,
    Confirmed(u32),
}

impl Poster {
    /// Posts `tx`, retrying a few times; a kept one accepted becomes `Seen`, one refused stays
    /// `Sending` with the reason, for the keeper.
    async fn post_with_retries(&self, tx: &Transaction) {
        let txid = tx.compute_txid();
        let mut backoff = Duration::from_millis(500);
        for attempt in 1..=BROADCAST_ATTEMPTS {
            match self.post(tx).await {
                Ok(()) => {
                    self.record(&txid, BroadcastState::Seen, None, None);
                    return;
                }
                Err(reason) => {
                    tracing::warn!(%txid, reason, attempt, "chain source did not take the transaction");
                    // Counted on a kept transaction; nothing for the others.
                    self.record(&txid, BroadcastState::Sending, None, Some(&reason));
                }
            }
            if attempt < BROADCAST_ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        if self.is_kept(&txid) {
            tracing::warn!(%txid, "broadcast failed {BROADCAST_ATTEMPTS} times; the transaction is kept and sent again later");
        } else {
            tracing::error!(%txid, "giving up broadcasting transaction after {BROADCAST_ATTEMPTS} attempts");
        }
    }

    /// One look at every kept transaction that may still confirm.
    async fn keep_pass(&self) {
        let open = match self.store.open_broadcasts() {
            Ok(open) => open,
            Err(error) => {
                tracing::error!(%error, "cannot read the kept transactions");
                return;
            }
        };
        let now = unix_now();
        let mut to_check = Vec::new();
        for kept in open {
            if kept.state != BroadcastState::Signed {
                to_check.push(kept);
            } else if now >= kept.created_at.saturating_add(SIGNED_HOLD_SECS) {
                tracing::info!(txid = %kept.txid, "releasing a transaction signed but never broadcast");
                self.record(&kept.txid, BroadcastState::Abandoned, None, None);
            }
        }
        if to_check.is_empty() {
            return;
        }
        let Some(tip) = self.tip_height().await else {
            return;
        };
        let open: HashSet<Txid> = to_check.iter().map(|k| k.txid).collect();
        for kept in &to_check {
            self.look_after(kept, tip, &open).await;
        }
    }

    async fn look_after(&self, kept: &KeptBroadcast, tip: u32, open: &HashSet<Txid>) {
        let txid = kept.txid;
        match self.known(&txid).await {
            None => {}
            Some(Known::Confirmed(height)) => {
                let depth = tip.saturating_sub(height) + 1;
                let state = if depth >= FINAL_DEPTH {
                    BroadcastState::Final
                } else {
                    BroadcastState::Seen
                };
                if state != kept.state || kept.confirmed_height != Some(height) {
                    self.record(&txid, state, Some(height), None);
                }
            }
            // Back in the mempool after a reorg: seen, without its old height.
            Some(Known::Unconfirmed)
                if kept.state != BroadcastState::Seen || kept.confirmed_height.is_some() =>
            {
                self.record(&txid, BroadcastState::Seen, None, None);
            }
            Some(Known::Unconfirmed) => {}
            // Reorganised out of its block and not back in the mempool: sent again at the next
            // pass, not now. By then LDK has seen the reorg too, and the funding of a channel
            // it closed for it is no longer kept (see the node's `ChannelClosed` handling).
            Some(Known::Missing) if kept.confirmed_height.is_some() => {
                tracing::warn!(%txid, "a kept transaction was reorganised out of its block");
                self.record(&txid, BroadcastState::Sending, None, None);
            }
            Some(Known::Missing) => match self.post(&kept.tx).await {
                Ok(()) => {
                    tracing::info!(%txid, "sent a kept transaction again");
                    self.record(&txid, BroadcastState::Seen, None, None);
                }
                Err(reason) => {
                    if let Some(why) = self.dead_input(&kept.tx, open).await {
                        tracing::warn!(%txid, why, "a kept transaction can no longer confirm");
                        self.record(&txid, BroadcastState::Conflicted, None, Some(&why));
                        return;
                    }
                    if kept.failed_posts == 0 {
                        tracing::warn!(%txid, reason, "chain source refused a kept transaction; trying again later");
                    } else {
                        tracing::debug!(%txid, reason, failed_posts = kept.failed_posts, "chain source refused a kept transaction again");
                    }
                    self.record(&txid, BroadcastState::Sending, None, Some(&reason));
                }
            },
        }
    }

    fn is_kept(&self, txid: &Txid) -> bool {
        matches!(self.store.kept_broadcast(txid), Ok(Some(k)) if k.state.is_open())
    }

    fn record(
        &self,
        txid: &Txid,
        state: BroadcastState,
        confirmed_height: Option<u32>,
        error: Option<&str>,
    ) {
        if let Err(error) =
            self.store
                .update_broadcast(txid, state, confirmed_height, error, unix_now())
        {
            tracing::error!(%txid, %error, "cannot update a kept transaction");
        }
    }

    /// Posts `tx` once: `Ok` when the chain source took it or already has it.
    async fn post(&self, tx: &Transaction) -> Result<(), String> {
        let outcome = self
            .http
            .post(format!("{}/tx", self.base_url))
            .timeout(ESPLORA_TIMEOUT)
            .body(serialize_hex(tx))
            .send()
            .await;
        match outcome {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => {
                let status = response.status();
                let reason = response.text().await.unwrap_or_default();
                if is_already_known(&reason) {
                    Ok(())
                } else {
                    Err(format!("{status}: {reason}"))
                }
            }
            Err(e) => Err(format!("could not reach the chain source: {e}")),
        }
    }

    async fn tip_height(&self) -> Option<u32> {
        fetch_text(&self.http, &self.base_url, "blocks/tip/height")
            .await
            .ok()??
            .parse()
            .ok()
    }

    /// `None` when the chain source cannot tell.
    async fn known(&self, txid: &Txid) -> Option<Known> {
        #[derive(serde::Deserialize)]
        struct Status {
            confirmed: bool,
            block_height: Option<u32>,
        }
        let response = self
            .http
            .get(format!("{}/tx/{txid}/status", self.base_url))
            .timeout(ESPLORA_TIMEOUT)
            .send()
            .await
            .ok()?;
        let status: Status = response.error_for_status().ok()?.json().await.ok()?;
        if let (true, Some(height)) = (status.confirmed, status.block_height) {
            return Some(Known::Confirmed(height));
        }
        // Esplora answers "unconfirmed" for a transaction it has never heard of; only the
        // transaction itself tells whether its mempool holds it.
        match fetch_text(&self.http, &self.base_url, &format!("tx/{txid}")).await {
            Ok(None) => Some(Known::Missing),
            Ok(Some(_)) => Some(Known::Unconfirmed),
            Err(_) => None,
        }
    }

    /// Why `tx` can never confirm, if it cannot: an input spent by another confirmed
    /// transaction, or an input whose transaction the chain source no longer has (reorganised
    /// out and gone) and that is not one of our kept transactions `open` still being sent.
    async fn dead_input(&self, tx: &Transaction, open: &HashSet<Txid>) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Outspend {
            spent: bool,
            txid: Option<Txid>,
            status: Option<SpendStatus>,
        }
        #[derive(serde::Deserialize)]
        struct SpendStatus {
            confirmed: bool,
        }
        let ours = tx.compute_txid();
        for input in &tx.input {
            let prev = input.previous_output;
            if open.contains(&prev.txid) {
                continue;
            }
            let parent = fetch_text(&self.http, &self.base_url, &format!("tx/{}", prev.txid)).await;
            if matches!(parent, Ok(None)) {
                return Some(format!("its input {prev} no longer exists"));
            }
            let url = format!("{}/tx/{}/outspend/{}", self.base_url, prev.txid, prev.vout);
            let Ok(response) = self.http.get(url).timeout(ESPLORA_TIMEOUT).send().await else {
                continue;
            };
            let Ok(outspend) = response.json::<Outspend>().await else {
                continue;
            };
            let confirmed = outspend.status.is_some_and(|s| s.confirmed);
            match outspend.txid {
                Some(spender) if outspend.spent && confirmed && spender != ours => {
                    return Some(format!("its input {prev} was spent by {spender}"))
                }
                _ => {}
            }
        }
        None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_reasons_for_known_transactions_count_as_success() {
        assert!(is_already_known("sendrawtransaction RPC error: {\"code\":-27,\"message\":\"Transaction already in block chain\"}"));
        assert!(is_already_known("txn-already-in-mempool"));
        assert!(is_already_known(
            "{\"code\":-27,\"message\":\"Transaction outputs already in utxo set\"}"
        ));
        assert!(!is_already_known("bad-txns-inputs-missingorspent"));
    }
}
