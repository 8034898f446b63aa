//! Opening the channel of a paid order, and failing an order (timeout, refused opens, HTLC
//! deadline, expiry, cancel): FAILED in the book first, then the HTLC back and the on-chain
//! refund. Failing and starting an open hold the same lock.

use super::*;

/// Whether an order's channel is funded (has received `funding_signed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Funded {
    Yes,
    No,
}

impl OrderService {
    /// Starts (or waits for) the channel of a paid order.
    pub(super) fn open_channel(&self, order: &Order, got: &Receipts) -> Result<(), String> {
        let user_channel_id = user_channel_id(&order.id);
        let manager = &self.node.channel_manager;
        let existing = manager
            .list_channels()
            .into_iter()
            .any(|c| c.user_channel_id == user_channel_id);
        if existing {
            return Ok(()); // Negotiating or waiting for ChannelPending.
        }
        let opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        // `order` was read before this pass's awaits; a cancel may have failed it since.
        let current = self.book.order(&order.id).map_err(|e| e.to_string())?;
        if current.is_none_or(|current| current.state != OrderState::Created) {
            return Ok(());
        }
        // LDK broadcasts a funding transaction on the peer's `funding_signed`. One handed over
        // for this order while no channel of it exists means the channel was lost (a crash
        // before the channel manager was persisted; its monitor closes it): never a second
        // open, never a second funding.
        if let Some(funding) = self.handed_over_funding(&order.id)? {
            drop(opening);
            self.node.wallet.stop_sending(&funding);
            return self.fail(
                order,
                got,
                "the order's funded channel was lost in a restart; the payment is returned",
            );
        }
        let attempts = self
            .book
            .open_attempts(&order.id)
            .map_err(|e| e.to_string())?;
        if attempts >= MAX_OPEN_ATTEMPTS {
            drop(opening);
            return self.fail(
                order,
                got,
                "the client refused the channel or the open failed repeatedly",
            );
        }
        let Some(client) = order.client_node_id else {
            return Ok(()); // Not claimed: no node to open to.
        };
        if !self.node.peers.is_connected(&client) {
            return Ok(()); // It has until the open timeout to connect.
        }
        let params = &order.params;
        let capacity = params.lsp_balance_sat + params.client_balance_sat;
        let mut config = manager.get_current_config();
        config.channel_handshake_config.announce_for_forwarding = params.announce_channel;
        let push_msat = params.client_balance_sat * 1_000;
        let open = if self.config.options.supports_zero_channel_reserve {
            ChannelManager::create_channel_to_trusted_peer_0reserve
        } else {
            ChannelManager::create_channel
        };
        // The attempt counts from before it starts: a crash in between cannot grant more.
        let attempt = self
            .book
            .record_open_attempt(&order.id)
            .map_err(|e| e.to_string())?;
        let opened = open(
            manager,
            client,
            capacity,
            push_msat,
            user_channel_id,
            None,
            Some(config),
        );
        match opened {
            Ok(channel_id) => {
                tracing::info!(order = %order.id, %channel_id, capacity, push_msat, attempt, "opening the order's channel");
            }
            Err(e) => {
                tracing::warn!(order = %order.id, error = ?e, attempt, "could not start the order's channel");
            }
        }
        Ok(())
    }

    /// A funding transaction signed for one of `id`'s opens that LDK has handed over for
    /// broadcast (it is past `signed` among the node's kept transactions).
    fn handed_over_funding(&self, id: &OrderId) -> Result<Option<Txid>, String> {
        let fundings = self.book.fundings(id).map_err(|e| e.to_string())?;
        Ok(fundings.into_iter().find(|txid| {
            self.node.broadcasts.state(txid).is_some_and(|state| {
                state != BroadcastState::Signed && state != BroadcastState::Abandoned
            })
        }))
    }

    /// Fails `order`: persisted first, then the held HTLC is failed back; on-chain funds are
    /// refunded by the next pass.
    pub(crate) fn fail(&self, order: &Order, got: &Receipts, reason: &str) -> Result<(), String> {
        match self.fail_order(&order.id, got, reason, UnderwayOpen::Abort)? {
            FailOutcome::Ended(state) => {
                tracing::debug!(order = %order.id, state = state.as_str(), reason, "not failing an order that has ended meanwhile");
            }
            FailOutcome::ChannelFunded => {
                tracing::info!(order = %order.id, reason, "not failing an order whose channel is funded: it completes");
            }
            FailOutcome::Failed | FailOutcome::OpenUnderway => {}
        }
        Ok(())
    }

    /// Fails order `id` as it is in the book now (a caller's copy may be a pass old), unless
    /// it has ended meanwhile or `underway` keeps an open already started; then nothing
    /// changes.
    pub(super) fn fail_order(
        &self,
        id: &OrderId,
        got: &Receipts,
        reason: &str,
        underway: UnderwayOpen,
    ) -> Result<FailOutcome, String> {
        // Held until FAILED is persisted: no open starts and no funding is recorded meanwhile.
        let opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        let order = self
            .book
            .order(id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("order {id} does not exist"))?;
        if order.state != OrderState::Created {
            return Ok(FailOutcome::Ended(order.state));
        }
        let order_channels = self.order_channels(id);
        if underway == UnderwayOpen::Keep && !order_channels.is_empty() {
            return Ok(FailOutcome::OpenUnderway);
        }
        // An open under way must not be funded once the order has failed, or a client could
        // hold back `funding_signed` until the order fails (refunding it) and then let the
        // funding through.
        if self.abort_unfunded_open(id, order_channels, "the order failed") == Funded::Yes {
            return Ok(FailOutcome::ChannelFunded);
        }
        let onchain_refund_pending = order.onchain.is_some() && got.total_sat() > 0;
        let failed = self
            .book
            .apply(
                id,
                &OrderEvent::Failed {
                    onchain_refund_pending,
                },
                reason,
            )
            .map_err(|e| e.to_string())?;
        drop(opening);
        crate::fault_points::crash_point("order_failed.before_htlc_failed_back");
        if bolt11_held(&order) {
            if let Some(hash) = order.bolt11.as_ref().and_then(|b| invoice_hash(&b.invoice)) {
                self.node.channel_manager.fail_htlc_backwards(&hash);
            }
        }
        tracing::info!(order = %id, reason, state = %failed.state_summary(), "order failed");
        if onchain_refund_pending {
            self.wake.notify_one();
        }
        Ok(FailOutcome::Failed)
    }

    /// The on-chain payment of paid `order` no longer counts and its channel is not funded:
    /// back to waiting for payment, with any open under way aborted.
    pub(super) fn onchain_payment_lost(&self, order: &Order) -> Result<(), String> {
        let _opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.book.order(&order.id).map_err(|e| e.to_string())?;
        let still_paid = current.is_some_and(|o| {
            o.state == OrderState::Created
                && o.onchain.is_some_and(|p| p.state == PaymentState::Paid)
        });
        if !still_paid {
            return Ok(());
        }
        let channels = self.order_channels(&order.id);
        let reason = "the on-chain payment no longer counts";
        if self.abort_unfunded_open(&order.id, channels, reason) == Funded::Yes {
            tracing::error!(order = %order.id, "the on-chain payment of an order vanished after its channel was funded");
            return Ok(());
        }
        self.book
            .apply(&order.id, &OrderEvent::OnchainPaymentLost, reason)
            .map_err(|e| e.to_string())?;
        tracing::warn!(order = %order.id, "the order's on-chain payment was reorganised out or replaced; waiting for payment again");
        Ok(())
    }

    /// The channels (being opened, or open) of order `id`.
    pub(crate) fn order_channels(
        &self,
        id: &OrderId,
    ) -> Vec<lightning::ln::channel_state::ChannelDetails> {
        let user_channel_id = user_channel_id(id);
        self.node
            .channel_manager
            .list_channels()
            .into_iter()
            .filter(|channel| channel.user_channel_id == user_channel_id)
            .collect()
    }

    /// Closes `channels` of order `id` unless one is funded already. Once `funding_signed`
    /// has arrived a channel has a monitor and its funding is (or is about to be) broadcast:
    /// its `ChannelPending` completes the order. Before that the channel is unfunded: closing
    /// it only discards it, and its inputs are released on `DiscardFunding`.
    fn abort_unfunded_open(
        &self,
        id: &OrderId,
        channels: Vec<lightning::ln::channel_state::ChannelDetails>,
        why: &str,
    ) -> Funded {
        let monitors = self.node.chain_monitor.list_monitors();
        if channels
            .iter()
            .any(|channel| monitors.contains(&channel.channel_id))
        {
            return Funded::Yes;
        }
        self.close_order_channels(id, channels, why);
        Funded::No
    }

    /// Force-closes `channels` of order `id`, saying `why`.
    pub(super) fn close_order_channels(
        &self,
        id: &OrderId,
        channels: Vec<lightning::ln::channel_state::ChannelDetails>,
        why: &str,
    ) {
        for channel in channels {
            tracing::info!(order = %id, channel_id = %channel.channel_id, why, "closing the order's channel");
            let _ = self
                .node
                .channel_manager
                .force_close_broadcasting_latest_txn(
                    &channel.channel_id,
                    &channel.counterparty.node_id,
                    why.to_string(),
                );
        }
    }

    /// Cancels an order that has not opened its channel: FAILED, and whatever was paid goes
    /// back (the held HTLC at once, on-chain funds by the next pass). The operator may cancel
    /// until the channel is funded; the client only until its open has started.
    pub fn cancel_order(
        &self,
        id: &OrderId,
        reason: &str,
        by: Canceller,
    ) -> Result<Order, CancelRefused> {
        let store = |e: crate::lsps1::store::StoreError| CancelRefused::Store(e.to_string());
        let read = || {
            self.book
                .order(id)
                .map_err(store)?
                .ok_or(CancelRefused::Unknown)
        };
        let order = read()?;
        if order.state != OrderState::Created {
            return Err(CancelRefused::TooLate(order.state));
        }
        let got = self
            .receipts(std::iter::once(&order))
            .remove(id)
            .unwrap_or_default();
        let underway = match by {
            Canceller::Operator => UnderwayOpen::Abort,
            Canceller::Client => UnderwayOpen::Keep,
        };
        match self.fail_order(id, &got, reason, underway) {
            Ok(FailOutcome::Failed) => read(),
            Ok(FailOutcome::OpenUnderway | FailOutcome::ChannelFunded) => {
                Err(CancelRefused::OpenUnderway)
            }
            Ok(FailOutcome::Ended(state)) => Err(CancelRefused::TooLate(state)),
            Err(error) => Err(CancelRefused::Store(error)),
        }
    }
}
