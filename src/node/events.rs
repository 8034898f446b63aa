//! What the node does with each LDK event.
//!
//! The background processor hands every [`Event`] to [`EventHandler::handle`]. Channels are
//! funded by the [`Funder`] (from the BDK wallet, alone or in batches), received payments and
//! the life of channels we open go through a [`ServiceHook`] (the LSPS1 order service;
//! [`ClaimEverything`] when the node sells nothing), payment outcomes are written
//! to the store's payments table, spendable outputs go to the [`OutputSweeper`], anchor fee
//! bumps take inputs from the wallet, and inbound channel requests follow the configured
//! policy. An event whose handling must not be lost (a failed store write, say) is returned as
//! [`ReplayEvent`] so LDK hands it to us again.

use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use bitcoin::Amount;
use lightning::events::{
    ClosureReason, Event, FundingInfo, HTLCHandlingFailureType, PaymentPurpose, ReplayEvent,
};
use lightning::ln::types::ChannelId;
use lightning::types::payment::{PaymentHash, PaymentPreimage};

use super::chain::{unix_now, EsploraFeeEstimator, OnchainTarget};
use super::funding::{Funder, FundingRequest};
use super::peers::PeerConnector;
use super::store::{PaymentRecord, Store};
use super::types::{BumpTransactionHandler, ChannelManager, OutputSweeper};
use super::wallet::Wallet;
use crate::api::{PaymentDirection, PaymentStatus};

/// A payment that arrived and can be claimed.
#[derive(Debug, Clone)]
pub struct ClaimablePayment {
    pub payment_hash: PaymentHash,
    pub amount_msat: u64,
    /// Known when the invoice was created by this node (or the sender sent a keysend).
    pub preimage: Option<PaymentPreimage>,
    /// Block height after which the payment can no longer be claimed, if LDK knows it.
    pub claim_deadline: Option<u32>,
}

/// What to do with a claimable payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Take the money now.
    Claim(PaymentPreimage),
    /// Send the HTLCs back to the payer.
    Fail,
    /// Keep the HTLCs pending; the hook will call [`crate::Node::claim_payment`] or
    /// [`crate::Node::fail_payment`] before `claim_deadline`.
    Hold,
}

/// A channel we opened whose funding transaction is now broadcast (`Event::ChannelPending`).
#[derive(Debug, Clone)]
pub struct PendingChannel {
    pub user_channel_id: u128,
    pub channel_id: ChannelId,
    pub counterparty_node_id: PublicKey,
    pub funding_txo: bitcoin::OutPoint,
}

/// What a service built on the node (the LSPS1 order service) sees of LDK events. Only
/// `payment_claimable` must be implemented; the rest default to doing nothing. Every method
/// is called from the event handler: return quickly, and persist what must survive a crash
/// before returning (an event is not replayed once its handler returned).
pub trait ServiceHook: Send + Sync + 'static {
    /// Decides about an incoming payment.
    fn payment_claimable(&self, payment: &ClaimablePayment) -> ClaimDecision;

    /// The funding fee rate for a channel we open with `user_channel_id`; `None` uses the
    /// node's default funding target.
    fn funding_fee_rate(&self, _user_channel_id: u128) -> Option<bitcoin::FeeRate> {
        None
    }

    /// We signed `funding_txid` for the channel with `user_channel_id`, and are about to hand
    /// it to LDK (which broadcasts it on the peer's `funding_signed`). `false` (it could not be
    /// recorded) abandons the channel instead.
    fn funding_created(&self, _user_channel_id: u128, _funding_txid: &bitcoin::Txid) -> bool {
        true
    }

    /// The funding transaction of a channel is broadcast. `Err` makes LDK replay the event.
    fn channel_pending(&self, _channel: &PendingChannel) -> Result<(), ReplayEvent> {
        Ok(())
    }

    /// An incoming payment was claimed. `Err` makes LDK replay the event.
    fn payment_claimed(&self, _payment_hash: &PaymentHash) -> Result<(), ReplayEvent> {
        Ok(())
    }

    /// A channel closed (or, before `channel_pending`, its opening failed), for `reason`.
    fn channel_closed(
        &self,
        _user_channel_id: u128,
        _counterparty_node_id: Option<PublicKey>,
        _reason: &ClosureReason,
    ) {
    }

    /// An HTLC paying us was failed back: by our own decision, or by LDK at its deadline.
    /// `Err` makes LDK replay the event.
    fn payment_failed_back(
        &self,
        _payment_hash: &PaymentHash,
        _reason: &str,
    ) -> Result<(), ReplayEvent> {
        Ok(())
    }
}

/// The default hook: claim whatever we can claim, fail the rest.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClaimEverything;

impl ServiceHook for ClaimEverything {
    fn payment_claimable(&self, payment: &ClaimablePayment) -> ClaimDecision {
        match payment.preimage {
            Some(preimage) => ClaimDecision::Claim(preimage),
            None => ClaimDecision::Fail,
        }
    }
}

/// Inbound channel policy, from `node.accept_inbound_channels` / `node.min_inbound_channel_sat`.
#[derive(Debug, Clone, Copy)]
pub struct InboundChannelPolicy {
    pub accept: bool,
    pub min_channel_sat: u64,
}

/// Handles every event the background processor surfaces.
pub struct EventHandler {
    pub(crate) channel_manager: Arc<ChannelManager>,
    pub(crate) wallet: Arc<Wallet>,
    pub(crate) fee_estimator: Arc<EsploraFeeEstimator>,
    pub(crate) sweeper: Arc<OutputSweeper>,
    pub(crate) bump_handler: BumpTransactionHandler,
    pub(crate) store: Arc<Store>,
    pub(crate) peers: Arc<PeerConnector>,
    pub(crate) hook: Arc<dyn ServiceHook>,
    pub(crate) inbound_policy: InboundChannelPolicy,
    pub(crate) funder: Arc<Funder>,
}

impl EventHandler {
    pub async fn handle(&self, event: Event) -> Result<(), ReplayEvent> {
        match event {
            Event::FundingGenerationReady {
                temporary_channel_id,
                counterparty_node_id,
                channel_value_satoshis,
                output_script,
                user_channel_id,
            } => {
                let fee_rate = self
                    .hook
                    .funding_fee_rate(user_channel_id)
                    .unwrap_or_else(|| {
                        self.fee_estimator
                            .onchain_fee_rate(OnchainTarget::ChannelFunding)
                    });
                self.funder.funding_ready(FundingRequest {
                    temporary_channel_id,
                    counterparty_node_id,
                    user_channel_id,
                    value: Amount::from_sat(channel_value_satoshis),
                    output_script,
                    fee_rate,
                });
            }
            Event::FundingTxBroadcastSafe {
                channel_id,
                funding_txo,
                ..
            } => {
                tracing::debug!(%channel_id, %funding_txo, "funding transaction safe to broadcast");
            }
            Event::FundingTransactionReadyForSigning {
                channel_id,
                counterparty_node_id,
                ..
            } => {
                // We never initiate interactive (dual-funded or splice) transactions, and inbound
                // splices are rejected by config, so there is nothing of ours to sign.
                tracing::warn!(%channel_id, %counterparty_node_id, "unexpected interactive funding transaction; not signing");
            }
            Event::PaymentClaimable {
                payment_hash,
                amount_msat,
                purpose,
                claim_deadline,
                ..
            } => {
                self.payment_claimable(payment_hash, amount_msat, &purpose, claim_deadline)?;
            }
            Event::PaymentClaimed {
                payment_hash,
                amount_msat,
                purpose,
                ..
            } => {
                tracing::info!(%payment_hash, amount_msat, "payment received");
                self.hook.payment_claimed(&payment_hash)?;
                self.record_payment(
                    payment_hash,
                    purpose.preimage(),
                    PaymentDirection::Inbound,
                    Some(amount_msat),
                    None,
                    PaymentStatus::Succeeded,
                )?;
            }
            Event::PaymentSent {
                payment_hash,
                payment_preimage,
                amount_msat,
                fee_paid_msat,
                ..
            } => {
                tracing::info!(%payment_hash, ?amount_msat, ?fee_paid_msat, "payment sent");
                self.record_payment(
                    payment_hash,
                    Some(payment_preimage),
                    PaymentDirection::Outbound,
                    amount_msat,
                    fee_paid_msat,
                    PaymentStatus::Succeeded,
                )?;
            }
            Event::PaymentFailed {
                payment_id,
                payment_hash,
                reason,
            } => {
                // Our payment ids are the payment hash bytes (see the operator API).
                let payment_hash = payment_hash.unwrap_or(PaymentHash(payment_id.0));
                tracing::warn!(%payment_hash, ?reason, "payment failed");
                self.record_payment(
                    payment_hash,
                    None,
                    PaymentDirection::Outbound,
                    None,
                    None,
                    PaymentStatus::Failed,
                )?;
            }
            Event::PaymentPathSuccessful { payment_hash, .. } => {
                tracing::debug!(?payment_hash, "payment path succeeded");
            }
            Event::PaymentPathFailed {
                payment_hash,
                payment_failed_permanently,
                ..
            } => {
                tracing::debug!(%payment_hash, payment_failed_permanently, "payment path failed");
            }
            Event::ProbeSuccessful { .. } | Event::ProbeFailed { .. } => {}
            Event::HTLCIntercepted {
                intercept_id,
                payment_hash,
                ..
            } => {
                // We do not set intercept flags; fail anything that shows up anyway.
                tracing::warn!(%payment_hash, "unexpected intercepted HTLC; failing it");
                let _ = self.channel_manager.fail_intercepted_htlc(intercept_id);
            }
            Event::HTLCHandlingFailed {
                prev_channel_ids,
                failure_type,
                failure_reason,
            } => {
                tracing::info!(
                    ?prev_channel_ids,
                    ?failure_type,
                    ?failure_reason,
                    "HTLC handling failed"
                );
                if let HTLCHandlingFailureType::Receive { payment_hash } = failure_type {
                    let reason =
                        failure_reason.map_or_else(|| "unknown".to_string(), |r| format!("{r:?}"));
                    self.hook.payment_failed_back(&payment_hash, &reason)?;
                }
            }
            Event::PaymentForwarded {
                total_fee_earned_msat,
                outbound_amount_forwarded_msat,
                ..
            } => {
                tracing::info!(
                    ?total_fee_earned_msat,
                    outbound_amount_forwarded_msat,
                    "payment forwarded"
                );
            }
            Event::SpendableOutputs {
                outputs,
                channel_id,
                counterparty_node_id,
            } => {
                tracing::info!(
                    count = outputs.len(),
                    ?channel_id,
                    "sweeping spendable outputs to the wallet"
                );
                // Static outputs already pay to wallet addresses (see signer.rs): the wallet
                // owns them and KeysManager could not sign for them, so only the rest are swept.
                self.sweeper
                    .track_spendable_outputs(outputs, channel_id, counterparty_node_id, true, None)
                    .await
                    .map_err(|()| {
                        tracing::error!("could not persist spendable outputs; will retry");
                        ReplayEvent()
                    })?;
            }
            Event::ChannelPending {
                channel_id,
                user_channel_id,
                counterparty_node_id,
                funding_txo,
                ..
            } => {
                tracing::info!(%channel_id, %counterparty_node_id, %funding_txo, "channel pending");
                self.hook.channel_pending(&PendingChannel {
                    user_channel_id,
                    channel_id,
                    counterparty_node_id,
                    funding_txo,
                })?;
            }
            Event::ChannelReady {
                channel_id,
                counterparty_node_id,
                ..
            } => {
                tracing::info!(%channel_id, %counterparty_node_id, "channel ready");
            }
            Event::ChannelClosed {
                channel_id,
                user_channel_id,
                reason,
                counterparty_node_id,
                channel_capacity_sats,
                channel_funding_txo,
                ..
            } => {
                tracing::info!(%channel_id, ?counterparty_node_id, ?channel_capacity_sats, %reason, "channel closed");
                // The funding of a closed channel is not sent again: should a reorg take it
                // away, its inputs are ours again instead of locked in a channel that is gone.
                // A batch funding is still sent while another of its channels is open.
                if let Some(funding) = channel_funding_txo {
                    let funds_another = self
                        .channel_manager
                        .list_channels()
                        .iter()
                        .any(|c| c.funding_txo.is_some_and(|o| o.txid == funding.txid));
                    if !funds_another {
                        self.wallet.stop_sending(&funding.txid);
                    }
                }
                self.hook
                    .channel_closed(user_channel_id, counterparty_node_id, &reason);
            }
            Event::DiscardFunding {
                channel_id,
                funding_info,
            } => {
                tracing::info!(%channel_id, "funding transaction discarded; releasing its inputs");
                if let FundingInfo::Tx { transaction } = funding_info {
                    if let Err(e) = self.wallet.abandon_transaction(&transaction) {
                        tracing::warn!(%channel_id, error = %e, "could not release the funding inputs");
                    }
                }
            }
            Event::SpliceNegotiated { channel_id, .. } => {
                tracing::info!(%channel_id, "splice negotiated");
            }
            Event::SpliceNegotiationFailed { channel_id, .. } => {
                tracing::info!(%channel_id, "splice negotiation failed");
            }
            Event::OpenChannelRequest {
                temporary_channel_id,
                counterparty_node_id,
                funding_satoshis,
                ..
            } => {
                self.open_channel_request(
                    temporary_channel_id,
                    counterparty_node_id,
                    funding_satoshis,
                );
            }
            Event::BumpTransaction(bump) => {
                self.bump_handler.handle_event(&bump);
            }
            Event::ConnectionNeeded { node_id, addresses } => {
                let peers = Arc::clone(&self.peers);
                tokio::spawn(async move { peers.connect_any(node_id, &addresses).await });
            }
            Event::InvoiceReceived { payment_id, .. } => {
                // BOLT12 invoices are only surfaced with `manually_handle_bolt12_invoices`,
                // which we leave off.
                tracing::debug!(?payment_id, "BOLT12 invoice received");
            }
            Event::OnionMessageIntercepted { .. }
            | Event::OnionMessagePeerConnected { .. }
            | Event::PersistStaticInvoice { .. }
            | Event::StaticInvoiceRequested { .. } => {
                // Only emitted for features we do not enable (onion message interception,
                // static invoice serving).
            }
        }
        Ok(())
    }

    fn payment_claimable(
        &self,
        payment_hash: PaymentHash,
        amount_msat: u64,
        purpose: &PaymentPurpose,
        claim_deadline: Option<u32>,
    ) -> Result<(), ReplayEvent> {
        let claimable = ClaimablePayment {
            payment_hash,
            amount_msat,
            preimage: purpose.preimage(),
            claim_deadline,
        };
        self.record_payment(
            payment_hash,
            claimable.preimage,
            PaymentDirection::Inbound,
            Some(amount_msat),
            None,
            PaymentStatus::Pending,
        )?;
        match self.hook.payment_claimable(&claimable) {
            ClaimDecision::Claim(preimage) => {
                tracing::debug!(%payment_hash, amount_msat, "claiming payment");
                self.channel_manager.claim_funds(preimage);
            }
            ClaimDecision::Fail => {
                tracing::info!(%payment_hash, amount_msat, "failing incoming payment");
                self.channel_manager.fail_htlc_backwards(&payment_hash);
                self.record_payment(
                    payment_hash,
                    None,
                    PaymentDirection::Inbound,
                    Some(amount_msat),
                    None,
                    PaymentStatus::Failed,
                )?;
            }
            ClaimDecision::Hold => {
                tracing::info!(%payment_hash, amount_msat, ?claim_deadline, "holding incoming payment");
            }
        }
        Ok(())
    }

    fn open_channel_request(
        &self,
        temporary_channel_id: ChannelId,
        counterparty_node_id: PublicKey,
        funding_satoshis: u64,
    ) {
        let policy = self.inbound_policy;
        let refusal = if !policy.accept {
            Some("this node does not accept inbound channels".to_string())
        } else if funding_satoshis < policy.min_channel_sat {
            Some(format!(
                "channel of {funding_satoshis} sat is below our minimum of {} sat",
                policy.min_channel_sat
            ))
        } else {
            None
        };
        let outcome = match refusal {
            Some(reason) => {
                tracing::info!(%counterparty_node_id, funding_satoshis, reason, "rejecting inbound channel");
                self.channel_manager.force_close_broadcasting_latest_txn(
                    &temporary_channel_id,
                    &counterparty_node_id,
                    reason,
                )
            }
            None => {
                tracing::info!(%counterparty_node_id, funding_satoshis, "accepting inbound channel");
                self.channel_manager.accept_inbound_channel(
                    &temporary_channel_id,
                    &counterparty_node_id,
                    super::random_user_channel_id(),
                    None,
                )
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(%temporary_channel_id, error = ?e, "could not answer inbound channel request");
        }
    }

    /// Upserts the payments row; an existing row keeps what it knew (creation time, amount,
    /// preimage) unless the event brings something new.
    fn record_payment(
        &self,
        payment_hash: PaymentHash,
        preimage: Option<PaymentPreimage>,
        direction: PaymentDirection,
        amount_msat: Option<u64>,
        fee_paid_msat: Option<u64>,
        status: PaymentStatus,
    ) -> Result<(), ReplayEvent> {
        let now = unix_now();
        let existing = self.store.payment(&payment_hash).map_err(|e| {
            tracing::error!(%payment_hash, error = %e, "could not read payment; will retry");
            ReplayEvent()
        })?;
        let record = match existing {
            Some(mut record) => {
                record.preimage = preimage.or(record.preimage);
                record.amount_msat = amount_msat.or(record.amount_msat);
                record.fee_paid_msat = fee_paid_msat.or(record.fee_paid_msat);
                // A final outcome is never downgraded back to pending.
                if record.status == PaymentStatus::Pending || status != PaymentStatus::Pending {
                    record.status = status;
                }
                record.updated_at = now;
                record
            }
            None => PaymentRecord {
                payment_hash,
                preimage,
                direction,
                amount_msat,
                fee_paid_msat,
                status,
                created_at: now,
                updated_at: now,
            },
        };
        self.store.upsert_payment(&record).map_err(|e| {
            tracing::error!(%payment_hash, error = %e, "could not record payment; will retry");
            ReplayEvent()
        })
    }
}
