//! The [`ServiceHook`] the node's event handler calls: an HTLC for an order invoice arrived
//! (hold it, or fail it back), a channel we opened was funded (COMPLETED; the claim follows
//! its confirmation, see `funding.rs`) or closed.

use super::*;

impl OrderService {
    pub(super) fn order_for_channel(&self, user_channel_id: u128) -> Option<Order> {
        let orders = self.book.orders_needing_attention().ok()?;
        orders
            .into_iter()
            .find(|o| self::user_channel_id(&o.id) == user_channel_id)
    }

    pub(super) fn payment_for_order(
        &self,
        id: &OrderId,
        payment: &ClaimablePayment,
    ) -> ClaimDecision {
        let order = match self.book.order(id) {
            Ok(Some(order)) => order,
            Ok(None) => return ClaimDecision::Fail,
            Err(e) => {
                tracing::error!(order = %id, error = %e, "cannot read the order of an incoming payment; failing it back");
                return ClaimDecision::Fail;
            }
        };
        let Some(bolt11) = &order.bolt11 else {
            return ClaimDecision::Fail;
        };
        if bolt11.state == PaymentState::Hold {
            return ClaimDecision::Hold; // Replayed after a restart: already ours to hold.
        }
        let expected_msat = bolt11.order_total_sat.saturating_mul(1_000);
        let paid_onchain = order
            .onchain
            .as_ref()
            .is_some_and(|o| o.state != PaymentState::ExpectPayment);
        if order.state != OrderState::Created
            || bolt11.state != PaymentState::ExpectPayment
            || paid_onchain
            || payment.amount_msat != expected_msat
        {
            tracing::info!(order = %id, amount_msat = payment.amount_msat, expected_msat, state = %order.state_summary(), "failing back a payment the order does not accept");
            return ClaimDecision::Fail;
        }
        let held = self
            .book
            .record_held_htlc(
                &payment.payment_hash,
                payment.amount_msat,
                payment.claim_deadline,
            )
            .and_then(|()| {
                self.book.apply(
                    id,
                    &OrderEvent::Bolt11HtlcHeld,
                    "HTLC for the order total held",
                )
            });
        match held {
            Ok(_) => {
                tracing::info!(order = %id, amount_msat = payment.amount_msat, claim_deadline = ?payment.claim_deadline, "payment held; opening the channel");
                self.wake.notify_one();
                ClaimDecision::Hold
            }
            Err(e) => {
                tracing::error!(order = %id, error = %e, "could not record the held payment; failing it back");
                ClaimDecision::Fail
            }
        }
    }
}

impl ServiceHook for OrderService {
    fn payment_claimable(&self, payment: &ClaimablePayment) -> ClaimDecision {
        match self.book.order_for_payment_hash(&payment.payment_hash) {
            Ok(Some(id)) => self.payment_for_order(&id, payment),
            Ok(None) => ClaimEverything.payment_claimable(payment),
            Err(e) => {
                tracing::error!(error = %e, "cannot look up an incoming payment; failing it back");
                ClaimDecision::Fail
            }
        }
    }

    fn funding_fee_rate(&self, user_channel_id: u128) -> Option<FeeRate> {
        let order = self.order_for_channel(user_channel_id)?;
        Some(
            self.node
                .fee_estimator
                .fee_rate_within_blocks(order.params.funding_confirms_within_blocks),
        )
    }

    fn funding_created(&self, user_channel_id: u128, funding_txid: &Txid) -> bool {
        let Some(order) = self.order_for_channel(user_channel_id) else {
            return true;
        };
        let height = self.node.channel_manager.current_best_block().height;
        match self.book.record_funding(&order.id, funding_txid, height) {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(order = %order.id, %funding_txid, %error, "could not record the funding transaction; abandoning this open");
                false
            }
        }
    }

    fn channel_pending(&self, channel: &PendingChannel) -> Result<(), ReplayEvent> {
        let Some(order) = self.order_for_channel(channel.user_channel_id) else {
            return Ok(());
        };
        let now = self.now();
        let lease_secs = u64::from(order.params.channel_expiry_blocks) * SECS_PER_BLOCK;
        let info = ChannelInfo {
            funded_at: now,
            funding_outpoint: channel.funding_txo.to_string(),
            expires_at: now + lease_secs,
        };
        // The same lock as `fail_order`: an order is either failed or funded, never both.
        let opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        let funded = self.book.apply(
            &order.id,
            &OrderEvent::ChannelFunded(info),
            "funding transaction broadcast",
        );
        drop(opening);
        let funded = match funded {
            Ok(funded) => funded,
            Err(crate::lsps1::store::StoreError::Transition(e)) => {
                tracing::error!(order = %order.id, channel_id = %channel.channel_id, error = %e, "a channel was funded for an order that cannot complete");
                return Ok(());
            }
            Err(e) => {
                tracing::error!(order = %order.id, error = %e, "could not record the funded channel; will retry");
                return Err(ReplayEvent());
            }
        };
        if let Err(error) = self.book.open_lease(&funded, channel.user_channel_id) {
            // Opened at the next start instead (`open_missing_leases`).
            tracing::error!(order = %order.id, %error, "could not open the order's lease");
        }
        // A held HTLC is claimed by the walk once the funding confirms (`funding.rs`).
        tracing::info!(order = %order.id, funding_outpoint = %channel.funding_txo, state = %funded.state_summary(), "order completed");
        Ok(())
    }

    fn payment_claimed(&self, payment_hash: &PaymentHash) -> Result<(), ReplayEvent> {
        self.book.record_htlc_claimed(payment_hash).map_err(|error| {
            tracing::error!(%payment_hash, %error, "could not record a claimed HTLC; will retry");
            ReplayEvent()
        })
    }

    fn channel_closed(
        &self,
        user_channel_id: u128,
        _counterparty: Option<bitcoin::secp256k1::PublicKey>,
        reason: &ClosureReason,
    ) {
        self.lease_channel_closed(user_channel_id, reason);
        let Some(order) = self.order_for_channel(user_channel_id) else {
            return;
        };
        tracing::info!(order = %order.id, "the order's channel open did not complete; will retry while the order allows");
        self.wake.notify_one();
    }

    fn payment_failed_back(
        &self,
        payment_hash: &PaymentHash,
        reason: &str,
    ) -> Result<(), ReplayEvent> {
        let replay = |error: crate::lsps1::store::StoreError| {
            tracing::error!(%payment_hash, %error, "could not record a failed-back HTLC; will retry");
            ReplayEvent()
        };
        let Some(id) = self
            .book
            .order_for_payment_hash(payment_hash)
            .map_err(replay)?
        else {
            return Ok(());
        };
        let Some(held) = self
            .book
            .record_htlc_failed_back(payment_hash)
            .map_err(replay)?
        else {
            return Ok(()); // Never held (refused on arrival), or already recorded.
        };
        let Some(order) = self.book.order(&id).map_err(replay)? else {
            return Ok(());
        };
        self.book
            .note(
                &id,
                "htlc_failed_back",
                &format!("the held HTLC went back to the payer ({reason})"),
            )
            .map_err(replay)?;
        match order.state {
            OrderState::Failed => {}
            // LDK gave the HTLC up (its deadline) before the channel was funded: the order can
            // no longer be paid this way, and must not open a channel.
            OrderState::Created => {
                let got = self
                    .receipts(std::iter::once(&order))
                    .remove(&id)
                    .unwrap_or_default();
                if let Err(error) = self.fail(
                    &order,
                    &got,
                    "the held payment went back to the payer before the channel was funded",
                ) {
                    tracing::error!(order = %id, %error, "could not fail an order whose HTLC went back");
                }
            }
            OrderState::Completed if held.claimed_at.is_none() => {
                tracing::error!(order = %id, reason, claim_requested = held.claim_requested_at.is_some(), "the HTLC of a completed order went back to the payer unclaimed: its channel was opened without payment");
            }
            OrderState::Completed => {}
        }
        Ok(())
    }
}
