//! Funding the channels we open (LDK's `FundingGenerationReady`): one transaction per channel,
//! or, with `node.funding_batch_window_ms`, one transaction for every channel whose funding LDK
//! asks for within that window (LDK's batch funding: the transaction is broadcast only once
//! every peer in it has signed).
//!
//! A batch is all or nothing. Should one of its channels close before every peer has signed
//! (the peer disconnected, refused, or timed out), LDK closes the others too
//! (`FundingBatchClosure`) and never broadcasts the transaction (`DiscardFunding` gives its
//! inputs back). The service above opens those channels again (the order service retries an
//! open that did not complete, counting attempts), and they are batched again without the one
//! that failed. A peer that stays connected but never signs would hold its batch for as long as
//! LDK keeps an unfunded channel (an hour): after `signing_timeout`, the batch's channels that
//! have no monitor yet (no `funding_signed`) are closed, and each of their next fundings is a
//! transaction of its own, so they cannot hold a batch twice.
//!
//! Nothing of a batch still waiting for signatures survives a restart: LDK persists none of
//! its channels. Its transaction stays signed and unsent: the wallet spends none of its
//! outputs, and the order service releases its inputs at start.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Amount, FeeRate, ScriptBuf, Transaction, Txid};
use lightning::ln::types::ChannelId;

use super::types::{ChainMonitor, ChannelManager};
use super::wallet::Wallet;
use crate::config::FundingBatchConfig;

/// Most channels one funding transaction opens.
const MAX_BATCH_CHANNELS: usize = 64;

/// A channel LDK is ready to fund (`Event::FundingGenerationReady`).
#[derive(Debug, Clone)]
pub struct FundingRequest {
    pub temporary_channel_id: ChannelId,
    pub counterparty_node_id: PublicKey,
    pub user_channel_id: u128,
    pub value: Amount,
    pub output_script: ScriptBuf,
    pub fee_rate: FeeRate,
}

/// Funds the channels we open, alone or in batches (see the module doc).
pub struct Funder {
    channel_manager: Arc<ChannelManager>,
    chain_monitor: Arc<ChainMonitor>,
    wallet: Arc<Wallet>,
    /// The service's `ServiceHook::funding_created`: records a channel's funding txid before
    /// LDK gets the transaction (`false`: it could not, the channel is abandoned).
    funding_created: FundingCreated,
    batching: Option<FundingBatchConfig>,
    state: Mutex<Batching>,
}

/// Records `(user_channel_id, funding txid)`; `false` if it could not.
pub type FundingCreated = Box<dyn Fn(u128, &Txid) -> bool + Send + Sync>;

#[derive(Default)]
struct Batching {
    /// Channels waiting for the window to close.
    waiting: Vec<FundingRequest>,
    /// Channels dropped from a batch for not signing in time: their next funding is alone.
    alone: HashSet<u128>,
}

impl Funder {
    pub(crate) fn new(
        channel_manager: Arc<ChannelManager>,
        chain_monitor: Arc<ChainMonitor>,
        wallet: Arc<Wallet>,
        funding_created: FundingCreated,
        batching: Option<FundingBatchConfig>,
    ) -> Funder {
        Funder {
            channel_manager,
            chain_monitor,
            wallet,
            funding_created,
            batching,
            state: Mutex::new(Batching::default()),
        }
    }

    /// LDK asks for `request`'s funding: funded now, or when its batch window closes.
    pub fn funding_ready(self: &Arc<Self>, request: FundingRequest) {
        let Some(batching) = self.batching else {
            return self.fund(vec![request]);
        };
        let mut state = self.lock();
        if state.alone.remove(&request.user_channel_id) {
            drop(state);
            return self.fund(vec![request]);
        }
        let opens_window = state.waiting.is_empty();
        state.waiting.push(request);
        if state.waiting.len() >= MAX_BATCH_CHANNELS {
            let full = std::mem::take(&mut state.waiting);
            drop(state);
            return self.fund(full);
        }
        drop(state);
        if opens_window {
            let funder = Arc::clone(self);
            tokio::spawn(async move {
                tokio::time::sleep(batching.window).await;
                let waiting = std::mem::take(&mut funder.lock().waiting);
                if !waiting.is_empty() {
                    funder.fund(waiting);
                }
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Batching> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One funding transaction for `requests` (those whose channel still waits for it), handed
    /// to LDK; on any failure before that, their channels are closed (and opened again by the
    /// service above if it still wants them).
    fn fund(self: &Arc<Self>, requests: Vec<FundingRequest>) {
        let awaiting: HashSet<ChannelId> = self
            .channel_manager
            .list_channels()
            .into_iter()
            .filter(|c| c.funding_txo.is_none())
            .map(|c| c.channel_id)
            .collect();
        let (requests, gone): (Vec<_>, Vec<_>) = requests
            .into_iter()
            .partition(|r| awaiting.contains(&r.temporary_channel_id));
        for request in gone {
            tracing::info!(temporary_channel_id = %request.temporary_channel_id, counterparty_node_id = %request.counterparty_node_id, "a channel closed while it waited for its batch; not funding it");
        }
        let Some(fee_rate) = requests.iter().map(|r| r.fee_rate).max() else {
            return;
        };
        let outputs: Vec<(ScriptBuf, Amount)> = requests
            .iter()
            .map(|r| (r.output_script.clone(), r.value))
            .collect();
        let tx = match self
            .wallet
            .create_batch_funding_transaction(&outputs, fee_rate)
        {
            Ok(tx) => tx,
            Err(error) => {
                return self.abandon(&requests, None, &format!("no funding transaction: {error}"))
            }
        };
        let txid = tx.compute_txid();
        if !requests
            .iter()
            .all(|r| (self.funding_created)(r.user_channel_id, &txid))
        {
            return self.abandon(
                &requests,
                Some(&tx),
                "the funding transaction could not be recorded",
            );
        }
        let handed = match requests.as_slice() {
            [one] => self.channel_manager.funding_transaction_generated(
                one.temporary_channel_id,
                one.counterparty_node_id,
                tx.clone(),
            ),
            many => {
                let channels: Vec<(&ChannelId, &PublicKey)> = many
                    .iter()
                    .map(|r| (&r.temporary_channel_id, &r.counterparty_node_id))
                    .collect();
                self.channel_manager
                    .batch_funding_transaction_generated(&channels, tx.clone())
            }
        };
        if let Err(error) = handed {
            // LDK has closed every channel of a refused batch; a single one is closed here.
            return self.abandon(&requests, Some(&tx), &format!("LDK refused it: {error:?}"));
        }
        if requests.len() > 1 {
            tracing::info!(%txid, channels = requests.len(), "funding channels by one transaction");
            if let Some(batching) = self.batching {
                let funder = Arc::clone(self);
                tokio::spawn(async move {
                    tokio::time::sleep(batching.signing_timeout).await;
                    funder.drop_unsigned(&txid);
                });
            }
        }
    }

    /// Gives `tx`'s inputs back and closes `requests`' channels, saying `why`.
    fn abandon(&self, requests: &[FundingRequest], tx: Option<&Transaction>, why: &str) {
        if let Some(tx) = tx {
            // LDK will never broadcast it.
            if let Err(error) = self.wallet.abandon_transaction(tx) {
                tracing::warn!(%error, "could not release the funding inputs");
            }
        }
        for request in requests {
            tracing::error!(temporary_channel_id = %request.temporary_channel_id, counterparty_node_id = %request.counterparty_node_id, why, "could not fund the channel; abandoning it");
            let _ = self.channel_manager.force_close_broadcasting_latest_txn(
                &request.temporary_channel_id,
                &request.counterparty_node_id,
                format!("funding failed: {why}"),
            );
        }
    }

    /// The batch funded by `txid` is past its signing timeout: its channels still without a
    /// monitor (their peer has not sent `funding_signed`) are closed, which makes LDK close the
    /// rest of the batch, to be opened again without them.
    fn drop_unsigned(&self, txid: &Txid) {
        let monitors: HashSet<ChannelId> = self.chain_monitor.list_monitors().into_iter().collect();
        let unsigned: Vec<_> = self
            .channel_manager
            .list_channels()
            .into_iter()
            .filter(|c| c.funding_txo.is_some_and(|o| o.txid == *txid))
            .filter(|c| !monitors.contains(&c.channel_id))
            .collect();
        for channel in unsigned {
            self.lock().alone.insert(channel.user_channel_id);
            tracing::warn!(%txid, channel_id = %channel.channel_id, counterparty_node_id = %channel.counterparty.node_id, "a peer did not sign its batch funding in time; closing its channel, the batch is funded again without it");
            let _ = self.channel_manager.force_close_broadcasting_latest_txn(
                &channel.channel_id,
                &channel.counterparty.node_id,
                "did not sign the batch funding in time".to_string(),
            );
            // The batch is closed, its monitors updated; the ChannelManager is not persisted yet.
            crate::fault_points::crash_point("funding.batch_member_dropped");
        }
    }
}
