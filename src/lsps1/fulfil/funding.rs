//! A completed order's funding transaction, from `ChannelPending` until it is final. The
//! node's broadcaster keeps sending it; this file
//! - claims the order's held HTLC once the funding has its first confirmation (or when the HTLC
//!   comes within `htlc_safety_margin_blocks` of its deadline: the channel exists, and the
//!   funding is still being sent), and again on every pass until LDK reports it claimed;
//! - pays for the funding by a child (CPFP from its change) when, at the fee estimates of the
//!   moment, it would miss the order's `funding_confirms_within_blocks` counted from the
//!   height it was signed at (or the HTLC's claim deadline, if that comes first);
//! - fails the order when the funding can no longer confirm (an input spent elsewhere or gone,
//!   or its channel closed and the funding left the chain source unconfirmed; a funding whose
//!   channel closed may still confirm, with the close) while its payment is still ours to return:
//!   COMPLETED -> FAILED, the HTLC failed back, on-chain funds refunded. A conflict is acted on
//!   once the wallet has synced since the broadcaster found it, so that the refund counts only
//!   payments that still exist. A bolt11 payment claimed before that (the funding confirmed,
//!   then a reorg took an input away) cannot be returned that way; it is logged as an error
//!   for the operator.
//!
//! The watch list is the order book's unsettled fundings (indexed): only fundings in flight.

use std::sync::atomic::Ordering;

use super::*;
use crate::node::wallet::ChildBump;

/// What the chain says of a completed order's funding.
enum FundingStanding {
    /// At least one confirmation.
    Confirmed,
    /// Final depth: no longer watched.
    Final,
    /// Unconfirmed and still able to confirm.
    Pending,
    /// Its channel closed before it confirmed; the broadcaster no longer sends it, but it may
    /// still confirm (the client's closing transaction needs it): nothing is decided yet.
    ClosedUnconfirmed,
    /// Can never confirm, the chain source says, but the wallet has not synced since: its
    /// receipts may still count what took an input away; nothing is decided yet.
    Conflicting,
    /// Can never confirm.
    Lost(&'static str),
    /// Not kept by the broadcaster (recorded before it kept fundings): not watched.
    Unknown,
}

impl OrderService {
    fn funding_standing(&self, txid: &Txid) -> FundingStanding {
        let Some(kept) = self.node.broadcasts.kept(txid) else {
            return FundingStanding::Unknown;
        };
        match kept.state {
            BroadcastState::Final => FundingStanding::Final,
            BroadcastState::Conflicted if !self.node.wallet.has_synced_since(kept.updated_at) => {
                FundingStanding::Conflicting
            }
            BroadcastState::Conflicted => FundingStanding::Lost(
                "an input of the funding transaction is spent elsewhere or gone",
            ),
            // The wallet still follows it: it confirmed, waits in the chain source's mempool,
            // or is gone (evicted, its inputs free again).
            BroadcastState::Abandoned => match self.node.wallet.chain_position(txid) {
                Some(Some(_)) => FundingStanding::Confirmed,
                Some(None) => FundingStanding::ClosedUnconfirmed,
                None => FundingStanding::Lost(
                    "the channel closed and its funding transaction left the chain source",
                ),
            },
            _ if kept.confirmed_height.is_some() => FundingStanding::Confirmed,
            _ => FundingStanding::Pending,
        }
    }
}

impl OrderService {
    /// At start, before any open: a funding signed for an open before the restart, never
    /// handed over for broadcast and funding no channel LDK still has, is never going to be
    /// broadcast (LDK keeps no channel across a restart that waited for `funding_signed` or
    /// for the rest of its batch). Its inputs go back to the wallet now, instead of after the
    /// broadcaster's hold of signed transactions; the orders open again.
    pub(super) fn release_unsent_fundings(&self) {
        let fundings = match self.book.unsettled_fundings() {
            Ok(fundings) => fundings,
            Err(error) => {
                tracing::error!(%error, "cannot read the fundings in flight");
                return;
            }
        };
        let funding_channels: HashSet<Txid> = self
            .node
            .channel_manager
            .list_channels()
            .iter()
            .filter_map(|c| c.funding_txo.map(|o| o.txid))
            .collect();
        let unsent: HashSet<Txid> = fundings
            .into_iter()
            .map(|(_, txid, _)| txid)
            .filter(|txid| !funding_channels.contains(txid))
            .collect();
        for txid in unsent {
            let Some(kept) = self.node.broadcasts.kept(&txid) else {
                continue;
            };
            if kept.state != BroadcastState::Signed {
                continue;
            }
            match self.node.wallet.abandon_transaction(&kept.tx) {
                Ok(()) => {
                    tracing::info!(%txid, "released a funding signed before the restart and never broadcast")
                }
                Err(error) => {
                    tracing::error!(%txid, %error, "could not release a funding that was never broadcast")
                }
            }
        }
    }

    /// One look at every funding in flight: claim, bump, or fail its order (see the module
    /// doc).
    pub(super) fn look_after_fundings(&self, height: u32) {
        let fundings = match self.book.unsettled_fundings() {
            Ok(fundings) => fundings,
            Err(error) => {
                tracing::error!(%error, "cannot read the fundings in flight");
                return;
            }
        };
        let new_tip = self.fundings_checked_at.swap(height, Ordering::Relaxed) != height;
        for (id, txid, signed_at) in fundings {
            if let Err(error) = self.look_after_funding(&id, &txid, signed_at, height, new_tip) {
                tracing::error!(order = %id, funding_txid = %txid, %error, "could not look after the order's funding");
            }
        }
    }

    fn look_after_funding(
        &self,
        id: &OrderId,
        txid: &Txid,
        signed_at: Option<u32>,
        height: u32,
        new_tip: bool,
    ) -> Result<(), String> {
        let settle = || {
            self.book
                .settle_funding(id, txid)
                .map_err(|e| e.to_string())
        };
        let order = self
            .book
            .order(id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("order {id} does not exist"))?;
        match order.state {
            // Being opened: `ChannelPending` completes it, or the open is given up.
            OrderState::Created => return Ok(()),
            OrderState::Failed => return settle(),
            OrderState::Completed => {}
        }
        if funding_txid(&order) != Some(*txid) {
            return settle(); // An earlier open's funding, never handed over.
        }
        let htlc = self.book.held_htlc(&order.id).map_err(|e| e.to_string())?;
        // Claimable while LDK still holds it; past its deadline LDK has failed it back.
        let unclaimed = htlc
            .as_ref()
            .filter(|h| h.claimed_at.is_none() && h.claim_deadline.is_none_or(|d| d > height));
        let standing = self.funding_standing(txid);
        if matches!(
            standing,
            FundingStanding::Confirmed | FundingStanding::Final | FundingStanding::Pending
        ) {
            let confirmed_at = self
                .node
                .broadcasts
                .kept(txid)
                .and_then(|kept| kept.confirmed_height)
                .or_else(|| self.node.wallet.confirmation_height(txid));
            if let Err(error) = self.book.set_lease_start(id, confirmed_at) {
                tracing::error!(order = %id, %error, "could not follow the lease's start");
            }
        }
        match standing {
            FundingStanding::Final | FundingStanding::Unknown => match unclaimed {
                Some(htlc) => self.claim(&order, htlc, height, true),
                None => settle()?,
            },
            FundingStanding::Confirmed => {
                if let Some(htlc) = unclaimed {
                    self.claim(&order, htlc, height, true);
                }
            }
            FundingStanding::ClosedUnconfirmed | FundingStanding::Conflicting => {}
            FundingStanding::Pending => {
                if let Some(htlc) = unclaimed {
                    self.claim(&order, htlc, height, false);
                }
                if new_tip {
                    self.bump_if_late(&order, txid, signed_at, unclaimed, height);
                }
            }
            FundingStanding::Lost(why) => {
                // Returnable unless LDK was ever asked to claim the HTLC.
                let claim_requested = htlc
                    .as_ref()
                    .is_some_and(|h| h.claim_requested_at.is_some());
                if claim_requested {
                    tracing::error!(order = %id, funding_txid = %txid, why, "the funding of an order whose payment was claimed can no longer confirm; the client paid for a channel it does not have");
                } else {
                    self.funding_lost(&order, why)?;
                }
                let never_funded = crate::lsps1::leases::LeaseClose {
                    by: "chain",
                    kind: "funding_lost",
                };
                if let Err(error) = self.book.close_lease(user_channel_id(id), never_funded) {
                    tracing::error!(order = %id, %error, "could not close the lease of a lost funding");
                }
                settle()?;
            }
        }
        Ok(())
    }

    /// Claims `order`'s HTLC when its funding is confirmed, or when the HTLC nears its deadline
    /// anyway.
    fn claim(
        &self,
        order: &Order,
        htlc: &crate::lsps1::ledger::HeldHtlc,
        height: u32,
        confirmed: bool,
    ) {
        let near_deadline = htlc
            .claim_deadline
            .is_some_and(|d| height.saturating_add(self.config.htlc_safety_margin_blocks) >= d);
        if !confirmed && !near_deadline {
            return;
        }
        if !confirmed {
            tracing::warn!(order = %order.id, "claiming the HTLC before the funding transaction confirmed: its deadline is near");
        }
        if htlc.claim_requested_at.is_none() {
            if let Err(error) = self.book.record_claim_requested(&order.id) {
                tracing::error!(order = %order.id, %error, "cannot record the HTLC claim; not claiming yet");
                return;
            }
        }
        crate::fault_points::crash_point("order_completed.before_htlc_claimed");
        self.claim_order_htlc(order);
    }

    /// Pays for `txid` by a child when the package's fee rate is below what confirms within
    /// the blocks left to the order's deadline.
    fn bump_if_late(
        &self,
        order: &Order,
        txid: &Txid,
        signed_at: Option<u32>,
        htlc: Option<&crate::lsps1::ledger::HeldHtlc>,
        height: u32,
    ) {
        let Some(signed_at) = signed_at else {
            return;
        };
        let mut deadline =
            signed_at.saturating_add(u32::from(order.params.funding_confirms_within_blocks));
        if let Some(claim_deadline) = htlc.and_then(|h| h.claim_deadline) {
            deadline =
                deadline.min(claim_deadline.saturating_sub(self.config.htlc_safety_margin_blocks));
        }
        let blocks_left = deadline
            .saturating_sub(height)
            .clamp(1, u32::from(u16::MAX));
        let rate = self
            .node
            .fee_estimator
            .fee_rate_within_blocks(blocks_left as u16);
        match self.node.wallet.bump_by_child(txid, rate) {
            Ok(ChildBump::NotNeeded) => {}
            Ok(ChildBump::Sent(child)) => {
                tracing::info!(order = %order.id, funding_txid = %txid, %child, blocks_left, sat_per_vb = rate.to_sat_per_vb_ceil(), "the order's funding pays too little to confirm in time; a child pays for it");
            }
            Err(error) => {
                tracing::warn!(order = %order.id, funding_txid = %txid, %error, "cannot bump the order's funding");
            }
        }
    }

    /// `order` completed, but its funding can never confirm and its payment is still ours to
    /// return: FAILED, the HTLC failed back, the channel closed, on-chain funds refunded by
    /// the next pass.
    fn funding_lost(&self, order: &Order, why: &str) -> Result<(), String> {
        let got = self
            .receipts(std::iter::once(order))
            .remove(&order.id)
            .unwrap_or_default();
        let onchain_refund_pending = order.onchain.is_some() && got.total_sat() > 0;
        let failed = self
            .book
            .apply(
                &order.id,
                &OrderEvent::FundingLost {
                    onchain_refund_pending,
                },
                why,
            )
            .map_err(|e| e.to_string())?;
        if let Some(hash) = order.bolt11.as_ref().and_then(|b| invoice_hash(&b.invoice)) {
            self.node.channel_manager.fail_htlc_backwards(&hash);
        }
        self.close_order_channels(&order.id, self.order_channels(&order.id), why);
        tracing::warn!(order = %order.id, why, state = %failed.state_summary(), "the order's funding can no longer confirm; the order failed and its payment is returned");
        self.wake.notify_one();
        Ok(())
    }
}

/// The txid of the funding transaction of `order`'s channel.
fn funding_txid(order: &Order) -> Option<Txid> {
    let channel = order.channel.as_ref()?;
    bitcoin::OutPoint::from_str(&channel.funding_outpoint)
        .ok()
        .map(|outpoint| outpoint.txid)
}
