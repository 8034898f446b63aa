//! Refunds: what an order's address received beyond what the order consumed goes back to its
//! refund address, recorded before broadcast and kept by the broadcaster (sent again until it
//! confirms); a refund stuck unconfirmed is replaced (RBF) by one paying a higher fee, unless
//! a transaction of ours spends its change (the replacement would kill it). A failed
//! order's on-chain option becomes REFUNDED once every refund it sent has
//! `refund_confirmations` confirmations.

use super::*;

/// What an order's address owes back, as [`OrderService::refund_balance`] reads it.
#[derive(Debug, Clone, Copy)]
pub(super) struct RefundBalance {
    /// Received deep enough, minus what the order consumed and what refunds paid out.
    pub owed_sat: u64,
    /// What a refund transaction would pay in fees now, at `fee_rate`.
    pub fee_sat: u64,
    pub fee_rate: FeeRate,
    /// Something arrived that is not deep enough to refund yet.
    pub arriving: bool,
    /// Every refund sent is `refund_confirmations` deep.
    pub refunds_confirmed: bool,
}

impl RefundBalance {
    /// Worth a refund transaction now.
    pub fn refundable(&self) -> bool {
        self.owed_sat >= self.fee_sat + MIN_REFUND_SAT
    }

    /// Nothing in flight and nothing left to send: REFUNDED is true.
    pub fn settled(&self) -> bool {
        !self.refundable() && !self.arriving && self.refunds_confirmed
    }
}

impl OrderService {
    /// Sends back what `order`'s address received beyond what the order consumed, once
    /// confirmed `min_onchain_payment_confirmations` deep (at least one); marks a failed
    /// order's on-chain option REFUNDED when nothing is left owed and every refund is
    /// confirmed.
    pub(super) fn refund_owed(
        &self,
        order: &Order,
        got: &Receipts,
        height: u32,
    ) -> Result<(), String> {
        let Some(balance) = self.refund_balance(order, got, height)? else {
            return Ok(());
        };
        if balance.refundable() {
            let onchain = order
                .onchain
                .as_ref()
                .expect("a refund balance has an option");
            self.send_refund(
                order,
                &onchain.refund_onchain_address,
                balance.owed_sat - balance.fee_sat,
                balance.fee_sat,
                balance.fee_rate,
            )?;
            return Ok(());
        } else if balance.owed_sat > 0 {
            tracing::debug!(order = %order.id, owed = balance.owed_sat, "owed amount is too small to refund");
        }
        let awaiting_refund = order.state == OrderState::Failed
            && order
                .onchain
                .as_ref()
                .is_some_and(|o| o.state != PaymentState::Refunded);
        if awaiting_refund && balance.settled() {
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

    /// Where `order`'s address stands between what it received, what the order consumed and
    /// what was refunded; `None` for an order without an on-chain option or still CREATED.
    pub(super) fn refund_balance(
        &self,
        order: &Order,
        got: &Receipts,
        height: u32,
    ) -> Result<Option<RefundBalance>, String> {
        let Some(onchain) = &order.onchain else {
            return Ok(None);
        };
        // Refunded only once as deep as a payment must be: a refund of a payment that a reorg
        // then takes away is paid from the LSP's own coins.
        let depth = u32::from(onchain.min_onchain_payment_confirmations).max(1);
        let consumed = match (order.state, onchain.state) {
            (OrderState::Completed, PaymentState::Paid) => onchain.order_total_sat,
            (OrderState::Created, _) => return Ok(None),
            _ => 0,
        };
        let refunds = self.live_refunds(order)?;
        let refunded: u64 = refunds.iter().map(|r| r.amount_sat + r.fee_sat).sum();
        let fee_rate = self
            .node
            .fee_estimator
            .fee_rate_within_blocks(REFUND_CONFIRM_BLOCKS);
        let fee_sat = fee_for_weight(refund_tx_weight(), fee_rate.to_sat_per_kwu())
            .map_err(|e| e.to_string())?;
        Ok(Some(RefundBalance {
            owed_sat: got
                .settled_sat(height, depth)
                .saturating_sub(consumed)
                .saturating_sub(refunded),
            fee_sat,
            fee_rate,
            arriving: got.has_unsettled(height, depth),
            refunds_confirmed: refunds.iter().all(|r| {
                self.node
                    .wallet
                    .confirmation_height(&r.txid)
                    .is_some_and(|h| {
                        height.saturating_sub(h) + 1 >= self.config.refund_confirmations
                    })
            }),
        }))
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
    /// was to pay is owed again, and sent again from the coins that exist, but only once the
    /// wallet has synced since the broadcaster found it conflicted: until then the receipts
    /// may still count a payment that the same reorg took away, and a refund of it would be
    /// paid from the LSP's own coins.
    fn live_refunds(&self, order: &Order) -> Result<Vec<Refund>, String> {
        let refunds = self.book.refunds(&order.id).map_err(|e| e.to_string())?;
        Ok(refunds
            .into_iter()
            .filter(|r| r.replaced_by.is_none())
            .filter(|r| !self.conflict_synced(&r.txid))
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
