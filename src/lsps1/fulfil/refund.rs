//! Refunds: what an order's address received beyond what the order consumed goes back to its
//! refund address, recorded before broadcast and kept by the broadcaster (sent again until it
//! confirms); a refund stuck unconfirmed is replaced (RBF) by one paying a higher fee, unless
//! a transaction of ours spends its change (the replacement would kill it). A failed
//! order's on-chain option becomes REFUNDED once every refund it sent has
//! `refund_confirmations` confirmations.

use super::*;

impl OrderService {
    /// Sends back what `order`'s address received beyond what the order consumed, once
    /// confirmed `min_onchain_payment_confirmations` deep (at least one); marks a failed order's on-chain option REFUNDED when nothing is left owed and
    /// every refund is confirmed.
    pub(super) fn refund_owed(
        &self,
        order: &Order,
        got: &Receipts,
        height: u32,
    ) -> Result<(), String> {
        let Some(onchain) = &order.onchain else {
            return Ok(());
        };
        // Refunded only once as deep as a payment must be: a refund of a payment that a reorg
        // then takes away is paid from the LSP's own coins.
        let depth = u32::from(onchain.min_onchain_payment_confirmations).max(1);
        let consumed = match (order.state, onchain.state) {
            (OrderState::Completed, PaymentState::Paid) => onchain.order_total_sat,
            (OrderState::Created, _) => return Ok(()),
            _ => 0,
        };
        let refunds = self.live_refunds(order)?;
        let refunded: u64 = refunds.iter().map(|r| r.amount_sat + r.fee_sat).sum();
        let owed = got
            .settled_sat(height, depth)
            .saturating_sub(consumed)
            .saturating_sub(refunded);
        let fee_rate = self
            .node
            .fee_estimator
            .fee_rate_within_blocks(REFUND_CONFIRM_BLOCKS);
        let fee_sat = fee_for_weight(refund_tx_weight(), fee_rate.to_sat_per_kwu())
            .map_err(|e| e.to_string())?;
        if owed >= fee_sat + MIN_REFUND_SAT {
            self.send_refund(
                order,
                &onchain.refund_onchain_address,
                owed - fee_sat,
                fee_sat,
                fee_rate,
            )?;
        } else if owed > 0 {
            tracing::debug!(order = %order.id, owed, "owed amount is too small to refund");
        }
        let awaiting_refund =
            order.state == OrderState::Failed && onchain.state != PaymentState::Refunded;
        // REFUNDED only when true: every refund sent is `refund_confirmations` deep, and nothing
        // unconfirmed is still arriving.
        let refunds_confirmed = self.live_refunds(order)?.iter().all(|r| {
            self.node
                .wallet
                .confirmation_height(&r.txid)
                .is_some_and(|h| height.saturating_sub(h) + 1 >= self.config.refund_confirmations)
        });
        if awaiting_refund && !got.has_unsettled(height, depth) && refunds_confirmed {
            self.book
                .apply(
                    &order.id,
                    &OrderEvent::OnchainRefunded,
                    "on-chain funds returned to the refund address",
                )
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Replaces every refund of `order` that is still unconfirmed `refund_bump_after_secs`
    /// after it was sent by one paying a higher fee. The client receives the same amount; the
    /// extra fee is the LSP's.
    pub(super) fn bump_stuck_refunds(&self, order: &Order, now: u64) -> Result<(), String> {
        let refunds = self.live_refunds(order)?;
        let due = refunds.into_iter().filter(|r| {
            now >= r
                .created_at
                .saturating_add(self.config.refund_bump_after_secs)
                && !self.node.wallet.is_confirmed(&r.txid)
        });
        for stuck in due {
            // The wallet may not have synced the block that confirmed it yet; the broadcaster
            // knows what the chain source says. (Every refund is kept: those recorded before
            // the broadcaster kept transactions are handed to it at start.)
            let waiting = self
                .node
                .broadcasts
                .kept(&stuck.txid)
                .is_some_and(|kept| kept.state.is_open() && kept.confirmed_height.is_none());
            if !waiting {
                continue;
            }
            let fee_rate = self
                .node
                .fee_estimator
                .fee_rate_within_blocks(REFUND_CONFIRM_BLOCKS);
            let tx = match self.node.wallet.sign_fee_bump(&stuck.txid, fee_rate) {
                Ok(tx) => tx,
                // Replacing it would kill the child (a funding spending its change, say); the
                // child's own fee carries it.
                Err(error @ crate::node::wallet::WalletError::HasDescendants { .. }) => {
                    tracing::debug!(order = %order.id, %error, "not bumping a refund with a child");
                    continue;
                }
                Err(error) => return Err(error.to_string()),
            };
            let replacement = Refund {
                txid: tx.compute_txid(),
                tx,
                created_at: now,
                replaced_by: None,
                ..stuck.clone()
            };
            if let Err(e) = self
                .book
                .record_refund_replacement(&stuck.txid, &replacement)
            {
                let _ = self.node.wallet.abandon_transaction(&replacement.tx);
                return Err(format!("could not record the fee bump: {e}"));
            }
            self.node
                .wallet
                .broadcast_replacement(&stuck.txid, &replacement.tx);
            tracing::info!(order = %order.id, original = %stuck.txid, replacement = %replacement.txid, "refund fee bumped");
        }
        Ok(())
    }

    /// The refunds of `order` that pay the client: not replaced by a fee bump, and not
    /// conflicted (an input spent elsewhere, or gone in a reorg). What a conflicted refund
    /// was to pay is owed again, and sent again from the coins that exist.
    fn live_refunds(&self, order: &Order) -> Result<Vec<Refund>, String> {
        let refunds = self.book.refunds(&order.id).map_err(|e| e.to_string())?;
        Ok(refunds
            .into_iter()
            .filter(|r| r.replaced_by.is_none())
            .filter(|r| self.node.broadcasts.state(&r.txid) != Some(BroadcastState::Conflicted))
            .collect())
    }

    pub(super) fn send_refund(
        &self,
        order: &Order,
        refund_address: &str,
        amount_sat: u64,
        fee_sat: u64,
        fee_rate: FeeRate,
    ) -> Result<(), String> {
        let address = Address::from_str(refund_address)
            .map_err(|e| e.to_string())?
            .require_network(self.node.network)
            .map_err(|e| e.to_string())?;
        let tx = self
            .node
            .wallet
            .sign_payment(&address, SendAmount::Exact(amount_sat), fee_rate)
            .map_err(|e| format!("cannot sign the refund yet: {e}"))?;
        let refund = Refund {
            txid: tx.compute_txid(),
            order_id: order.id.clone(),
            address: refund_address.to_string(),
            amount_sat,
            fee_sat,
            tx,
            created_at: self.now(),
            replaced_by: None,
        };
        if let Err(e) = self.book.record_refund(&refund) {
            // Never broadcast an unrecorded refund: give its inputs back and retry later.
            let _ = self.node.wallet.abandon_transaction(&refund.tx);
            return Err(format!("could not record the refund: {e}"));
        }
        crate::fault_points::crash_point("refund.before_broadcast");
        self.node.wallet.broadcast(&refund.tx);
        tracing::info!(order = %order.id, txid = %refund.txid, amount_sat, fee_sat, address = refund_address, "refund sent");
        Ok(())
    }
}
