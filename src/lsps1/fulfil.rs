//! Fulfilment: every accepted order ends in an opened channel or a refund.
//!
//! Two ways in. The node's event handler calls the [`ServiceHook`] methods (an HTLC for an
//! order invoice arrived, a channel we opened was funded or closed); and [`OrderService::run`]
//! walks the order book once a second (and whenever woken): that walk is also the
//! reconciliation after a restart, because it only reads persisted state and LDK's.
//!
//! - bolt11: an HTLC paying exactly `order_total_sat` is held (HOLD), never claimed on arrival;
//!   any other amount, or an HTLC for an order that is no longer payable, is failed back. The
//!   hash, amount and claim deadline are recorded first (held HTLCs are not announced again
//!   after a restart).
//! - on-chain: each order has its own wallet address. The payment is PAID once outputs paying
//!   it sum to `order_total_sat` with `min_onchain_payment_confirmations` confirmations (with 0
//!   configured: unconfirmed outputs count when their transaction pays at least
//!   `min_fee_for_0conf` sat/vB).
//! - Opening: once paid, while the client is connected, `create_channel` with capacity
//!   `lsp_balance_sat + client_balance_sat`, `client_balance_sat` pushed, the announce flag
//!   of the order, zero reserve when advertised, and the funding fee rate for the order's
//!   `funding_confirms_within_blocks` (via [`ServiceHook::funding_fee_rate`]). The channel's
//!   `user_channel_id` is derived from the order id, so a restart finds it again. A refused
//!   open is retried (at most [`MAX_OPEN_ATTEMPTS`]) until `open_timeout_secs` after payment.
//!   Starting an open and failing an order hold the same lock, and an open starts only after
//!   the order is read again under it, so no open starts for an order that has just failed.
//! - Funded (`ChannelPending`: the funding transaction is broadcast): the order becomes
//!   COMPLETED in the book, then the held HTLC is claimed (PAID). On start the HTLCs of
//!   recently completed orders are claimed again, covering a crash between the two.
//! - Failure (open timeout, too many refused opens, the HTLC within
//!   `htlc_safety_margin_blocks` of its deadline, unpaid expiry, operator cancel): FAILED in
//!   the book, then the HTLC is failed back (REFUNDED) and on-chain funds are refunded.
//!   A failure aborts an open still under way (before `funding_signed` that costs nothing),
//!   and does not touch an order whose channel is already funded: its `ChannelPending`
//!   completes it. A client's own cancel is refused once its channel's open is under way.
//!   Otherwise a client could hold back `funding_signed` until the order failed and refunded
//!   it, then let the funding through and keep the channel for free.
//! - Refunds: whatever confirmed on an order's address and was not used to pay a completed
//!   order is owed back to its refund address (underpayment, overpayment, payment after expiry
//!   or failure), minus the refund transaction's fee. Refunds are recorded before broadcast
//!   ([`crate::lsps1::ledger`]) and rebroadcast on start.
//!
//!   A refund still unconfirmed after `refund_bump_after_secs` is replaced (RBF) by one paying
//!   a higher fee, same amount to the client.
//!
//! Not done yet: holding back `channel_ready` until `required_channel_confirmations` (the
//! client, as the accepting side, sets the funding depth); opening several orders in one
//! funding transaction.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::{Address, FeeRate, ScriptBuf, Txid};
use lightning::events::ReplayEvent;
use lightning::types::payment::PaymentHash;
use lightning_invoice::Bolt11Invoice;
use tokio::sync::watch;

use crate::lsps1::ledger::Refund;
use crate::lsps1::order::{ChannelInfo, Order, OrderEvent, OrderId, OrderState, PaymentState};
use crate::lsps1::pricing::{fee_for_weight, refund_tx_weight};
use crate::lsps1::service::OrderService;
use crate::lsps1::store::OrderFilter;
use crate::node::events::{
    ClaimDecision, ClaimEverything, ClaimablePayment, PendingChannel, ServiceHook,
};
use crate::node::types::ChannelManager;
use crate::node::wallet::{ReceivedOutput, SendAmount};

/// How often the order book is walked when nothing wakes the service.
const TICK: Duration = Duration::from_secs(1);

/// Opens refused by the client (or failing to negotiate) before the order fails.
pub const MAX_OPEN_ATTEMPTS: u32 = 3;

/// Seconds an order's address stays watched for late or extra payments after creation.
const REFUND_WATCH_SECS: u64 = 30 * 24 * 3600;

/// Refund outputs below this are not worth a transaction (P2TR/P2WSH dust is 330 sat).
const MIN_REFUND_SAT: u64 = 546;

/// Confirmation target of refund transactions, in blocks.
const REFUND_CONFIRM_BLOCKS: u16 = 6;

/// Blocks per lease-time unit: bLIP-51 leases are counted in blocks of about ten minutes.
const SECS_PER_BLOCK: u64 = 600;

/// Who cancels an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canceller {
    Client,
    Operator,
}

/// Why an order was not cancelled.
#[derive(Debug)]
pub enum CancelRefused {
    /// There is no such order.
    Unknown,
    /// The order has ended: completed or failed.
    TooLate(OrderState),
    /// The order's channel is being opened; the open completes it or fails it with a refund.
    OpenUnderway,
    /// The order book could not be read or written.
    Store(String),
}

/// What [`OrderService::fail_order`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailOutcome {
    Failed,
    /// Nothing: an open is under way and was to be kept.
    OpenUnderway,
    /// Nothing: the order's channel is funded, and its `ChannelPending` completes the order.
    ChannelFunded,
    /// Nothing: the order had already ended in this state.
    Ended(OrderState),
}

/// What failing an order does with a channel open already started for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UnderwayOpen {
    /// Abort it where that costs nothing (no funding transaction yet) and fail the order.
    Abort,
    /// Leave the order to the open.
    Keep,
}

/// The `user_channel_id` of the channel that fulfils `order`.
pub fn user_channel_id(order: &OrderId) -> u128 {
    let digest = sha256::Hash::hash(format!("lsps1-order-channel:{order}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.as_byte_array()[..16]);
    u128::from_be_bytes(bytes)
}

/// What arrived on one order's address.
#[derive(Debug, Clone, Default)]
pub(crate) struct Receipts {
    outputs: Vec<ReceivedOutput>,
}

impl Receipts {
    fn total_sat(&self) -> u64 {
        self.outputs.iter().map(|o| o.value_sat).sum()
    }

    fn confirmed_sat(&self) -> u64 {
        self.outputs
            .iter()
            .filter(|o| o.confirmation_height.is_some())
            .map(|o| o.value_sat)
            .sum()
    }

    fn has_unconfirmed(&self) -> bool {
        self.outputs.iter().any(|o| o.confirmation_height.is_none())
    }
}

impl OrderService {
    /// Walks the order book until `shutdown`; first rebroadcasts recorded refunds.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        self.rebroadcast_refunds();
        self.reclaim_paid_htlcs();
        loop {
            self.tick().await;
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Hands every recorded refund to the broadcaster again (a no-op for confirmed ones as far
    /// as the client is concerned); covers a crash between recording and broadcasting.
    fn rebroadcast_refunds(&self) {
        let Ok(orders) = self.watched_orders(self.now()) else {
            return;
        };
        for order in orders {
            let Ok(refunds) = self.book.refunds(&order.id) else {
                continue;
            };
            for refund in refunds.iter().filter(|r| r.replaced_by.is_none()) {
                self.node.wallet.broadcast(&refund.tx);
            }
        }
    }

    /// Claims again the HTLC of every recently completed bolt11 order. The order is marked
    /// PAID before its HTLC is claimed; after a crash between the two, the HTLC would still be
    /// held. Claiming an already claimed payment does nothing.
    fn reclaim_paid_htlcs(&self) {
        let Ok(orders) = self.book.orders(&OrderFilter {
            state: Some(OrderState::Completed),
            created_from: Some(self.now().saturating_sub(REFUND_WATCH_SECS)),
            ..OrderFilter::default()
        }) else {
            return;
        };
        for order in orders {
            let paid = order
                .bolt11
                .as_ref()
                .is_some_and(|b| b.state == PaymentState::Paid);
            if paid {
                self.claim_order_htlc(&order);
            }
        }
    }

    fn claim_order_htlc(&self, order: &Order) {
        let invoice = order
            .bolt11
            .as_ref()
            .and_then(|b| Bolt11Invoice::from_str(&b.invoice).ok());
        let preimage = invoice.and_then(|invoice| {
            self.node
                .channel_manager
                .get_payment_preimage_decrypt_metadata(
                    PaymentHash(invoice.payment_hash().0),
                    *invoice.payment_secret(),
                    None,
                )
                .ok()
        });
        match preimage {
            Some(preimage) => self.node.channel_manager.claim_funds(preimage),
            None => {
                tracing::error!(order = %order.id, "cannot derive the preimage of the order invoice")
            }
        }
    }

    /// One pass over every order that still needs something.
    pub(crate) async fn tick(&self) {
        let now = self.now();
        let height = self.node.channel_manager.current_best_block().height;
        let orders = match self.book.orders_needing_attention() {
            Ok(orders) => orders,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the order book");
                return;
            }
        };
        let watched = self.watched_orders(now).unwrap_or_default();
        let receipts = self.receipts(orders.iter().chain(watched.iter()));
        for order in &orders {
            let got = receipts.get(&order.id).cloned().unwrap_or_default();
            tracing::trace!(order = %order.id, state = %order.state_summary(), received_sat = got.total_sat(), confirmed_sat = got.confirmed_sat(), height, "order pass");
            if let Err(e) = self.advance(order, now, height, &got).await {
                tracing::error!(order = %order.id, error = %e, "could not advance order");
            }
        }
        for order in &watched {
            if let Err(e) = self.bump_stuck_refunds(order, now).await {
                tracing::warn!(order = %order.id, error = %e, "could not bump a refund's fee");
            }
        }
        for order in watched.iter().filter(|o| o.state != OrderState::Created) {
            if orders.iter().any(|o| o.id == order.id) {
                continue;
            }
            let got = receipts.get(&order.id).cloned().unwrap_or_default();
            if let Err(e) = self.refund_owed(order, &got) {
                tracing::error!(order = %order.id, error = %e, "could not refund");
            }
        }
    }

    fn watched_orders(&self, now: u64) -> Result<Vec<Order>, crate::lsps1::store::StoreError> {
        let recent = self.book.orders(&OrderFilter {
            created_from: Some(now.saturating_sub(REFUND_WATCH_SECS)),
            ..OrderFilter::default()
        })?;
        Ok(recent.into_iter().filter(|o| o.onchain.is_some()).collect())
    }

    fn receipts<'a>(&self, orders: impl Iterator<Item = &'a Order>) -> HashMap<OrderId, Receipts> {
        let mut by_script: HashMap<ScriptBuf, OrderId> = HashMap::new();
        for order in orders {
            let Some(onchain) = &order.onchain else {
                continue;
            };
            if let Ok(address) = Address::from_str(&onchain.address) {
                by_script.insert(address.assume_checked().script_pubkey(), order.id.clone());
            }
        }
        let scripts: HashSet<ScriptBuf> = by_script.keys().cloned().collect();
        let mut receipts: HashMap<OrderId, Receipts> = HashMap::new();
        for output in self.node.wallet.received_outputs(&scripts) {
            if let Some(id) = by_script.get(&output.script_pubkey) {
                receipts.entry(id.clone()).or_default().outputs.push(output);
            }
        }
        receipts
    }

    async fn advance(
        &self,
        order: &Order,
        now: u64,
        height: u32,
        got: &Receipts,
    ) -> Result<(), String> {
        match order.state {
            OrderState::Created => {}
            OrderState::Failed => return self.refund_owed(order, got),
            OrderState::Completed => return Ok(()),
        }
        let held = bolt11_held(order);
        let paid_onchain = order
            .onchain
            .as_ref()
            .is_some_and(|o| o.state == PaymentState::Paid);
        if !held && !paid_onchain {
            if self.onchain_payment_sufficient(order, height, got).await {
                self.book
                    .apply(
                        &order.id,
                        &OrderEvent::OnchainPaymentConfirmed,
                        "on-chain payment of the order total confirmed",
                    )
                    .map_err(|e| e.to_string())?;
                tracing::info!(order = %order.id, "on-chain payment received");
                self.wake.notify_one();
            } else if order.is_expired_unpaid(now) {
                self.fail(order, got, "the order expired unpaid")?;
            }
            return Ok(());
        }
        if held {
            let htlc = self.book.held_htlc(&order.id).map_err(|e| e.to_string())?;
            let deadline = htlc.and_then(|h| h.claim_deadline);
            if let Some(deadline) = deadline {
                if height.saturating_add(self.config.htlc_safety_margin_blocks) >= deadline {
                    return self.fail(
                        order,
                        got,
                        "the held payment came too close to its deadline before the channel opened",
                    );
                }
            }
        }
        // `updated_at` is the time of the payment: nothing else changes a paid, unfunded order.
        if now
            >= order
                .updated_at
                .saturating_add(self.config.open_timeout_secs)
        {
            return self.fail(
                order,
                got,
                "the channel could not be opened in time (is the client online?)",
            );
        }
        self.open_channel(order, got)
    }

    /// Whether the on-chain option is paid in full under the confirmation rules.
    async fn onchain_payment_sufficient(&self, order: &Order, height: u32, got: &Receipts) -> bool {
        let Some(onchain) = &order.onchain else {
            return false;
        };
        if onchain.state != PaymentState::ExpectPayment || got.outputs.is_empty() {
            return false;
        }
        let needed = u32::from(onchain.min_onchain_payment_confirmations);
        let mut counted = 0u64;
        for output in &got.outputs {
            let confirmations = output
                .confirmation_height
                .map_or(0, |h| height.saturating_sub(h) + 1);
            let counts = if confirmations == 0 {
                needed == 0
                    && self
                        .fee_rate_sat_per_vb(&output.outpoint.txid)
                        .await
                        .is_some_and(|rate| rate >= f64::from(onchain.min_fee_for_0conf_sat_per_vb))
            } else {
                confirmations >= needed
            };
            if counts {
                counted += output.value_sat;
            }
        }
        counted >= onchain.order_total_sat
    }

    /// The fee rate of an unconfirmed transaction, from Esplora (its inputs are not ours, so
    /// the wallet cannot compute the fee).
    async fn fee_rate_sat_per_vb(&self, txid: &Txid) -> Option<f64> {
        #[derive(serde::Deserialize)]
        struct TxFee {
            fee: u64,
            weight: u64,
        }
        let tx: TxFee = self.esplora_get(&format!("/tx/{txid}")).await?;
        (tx.weight > 0).then(|| tx.fee as f64 * 4.0 / tx.weight as f64)
    }

    /// Whether Esplora has `txid` confirmed; `None` when it cannot tell.
    async fn confirmed_on_chain(&self, txid: &Txid) -> Option<bool> {
        #[derive(serde::Deserialize)]
        struct TxStatus {
            confirmed: bool,
        }
        let status: TxStatus = self.esplora_get(&format!("/tx/{txid}/status")).await?;
        Some(status.confirmed)
    }

    /// GET `path` from the node's Esplora as JSON; `None` on any failure.
    async fn esplora_get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Option<T> {
        let response = self
            .node
            .http
            .get(format!("{}{path}", self.node.esplora_url))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()?;
        response.error_for_status().ok()?.json().await.ok()
    }

    /// Starts (or waits for) the channel of a paid order.
    fn open_channel(&self, order: &Order, got: &Receipts) -> Result<(), String> {
        let user_channel_id = user_channel_id(&order.id);
        let manager = &self.node.channel_manager;
        let existing = manager
            .list_channels()
            .into_iter()
            .any(|c| c.user_channel_id == user_channel_id);
        if existing {
            return Ok(()); // Negotiating or waiting for ChannelPending.
        }
        let mut opens = self.opens.lock().unwrap_or_else(|p| p.into_inner());
        // `order` was read before this pass's awaits; a cancel may have failed it since.
        let current = self.book.order(&order.id).map_err(|e| e.to_string())?;
        if current.is_none_or(|current| current.state != OrderState::Created) {
            return Ok(());
        }
        let attempts = opens.entry(order.id.clone()).or_insert(0);
        if *attempts >= MAX_OPEN_ATTEMPTS {
            drop(opens);
            return self.fail(
                order,
                got,
                "the client refused the channel or the open failed repeatedly",
            );
        }
        if !self.node.peers.is_connected(&order.client_node_id) {
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
        let opened = open(
            manager,
            order.client_node_id,
            capacity,
            push_msat,
            user_channel_id,
            None,
            Some(config),
        );
        *attempts += 1;
        match opened {
            Ok(channel_id) => {
                tracing::info!(order = %order.id, %channel_id, capacity, push_msat, attempt = *attempts, "opening the order's channel");
            }
            Err(e) => {
                tracing::warn!(order = %order.id, error = ?e, attempt = *attempts, "could not start the order's channel");
            }
        }
        Ok(())
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
    fn fail_order(
        &self,
        id: &OrderId,
        got: &Receipts,
        reason: &str,
        underway: UnderwayOpen,
    ) -> Result<FailOutcome, String> {
        // Held until FAILED is persisted: no open starts and no funding is recorded meanwhile.
        let mut opens = self.opens.lock().unwrap_or_else(|p| p.into_inner());
        let order = self
            .book
            .order(id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("order {id} does not exist"))?;
        if order.state != OrderState::Created {
            return Ok(FailOutcome::Ended(order.state));
        }
        let user_channel_id = user_channel_id(id);
        let order_channels: Vec<_> = self
            .node
            .channel_manager
            .list_channels()
            .into_iter()
            .filter(|channel| channel.user_channel_id == user_channel_id)
            .collect();
        if underway == UnderwayOpen::Keep && !order_channels.is_empty() {
            return Ok(FailOutcome::OpenUnderway);
        }
        // Once `funding_signed` has arrived the channel has a monitor and its funding is (or is
        // about to be) broadcast: its `ChannelPending`, not handled yet, completes the order.
        let monitors = self.node.chain_monitor.list_monitors();
        if order_channels
            .iter()
            .any(|channel| monitors.contains(&channel.channel_id))
        {
            return Ok(FailOutcome::ChannelFunded);
        }
        // An open under way must not be funded once the order has failed, or a client could
        // hold back `funding_signed` until the order fails (refunding it) and then let the
        // funding through. Before `funding_signed` the channel is unfunded: closing it only
        // discards it, and its inputs are released on `DiscardFunding`.
        for channel in order_channels {
            tracing::info!(order = %id, channel_id = %channel.channel_id, "aborting the failed order's channel open");
            let _ = self
                .node
                .channel_manager
                .force_close_broadcasting_latest_txn(
                    &channel.channel_id,
                    &channel.counterparty.node_id,
                    "the order failed".to_string(),
                );
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
        opens.remove(id);
        drop(opens);
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

    /// Sends back what `order`'s address received beyond what the order consumed, once
    /// confirmed; marks a failed order's on-chain option REFUNDED when nothing is left owed.
    fn refund_owed(&self, order: &Order, got: &Receipts) -> Result<(), String> {
        let Some(onchain) = &order.onchain else {
            return Ok(());
        };
        let consumed = match (order.state, onchain.state) {
            (OrderState::Completed, PaymentState::Paid) => onchain.order_total_sat,
            (OrderState::Created, _) => return Ok(()),
            _ => 0,
        };
        let refunds = self.book.refunds(&order.id).map_err(|e| e.to_string())?;
        let refunded: u64 = refunds
            .iter()
            .filter(|r| r.replaced_by.is_none())
            .map(|r| r.amount_sat + r.fee_sat)
            .sum();
        let owed = got
            .confirmed_sat()
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
        if awaiting_refund && !got.has_unconfirmed() {
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
    async fn bump_stuck_refunds(&self, order: &Order, now: u64) -> Result<(), String> {
        let refunds = self.book.refunds(&order.id).map_err(|e| e.to_string())?;
        let due = refunds.into_iter().filter(|r| {
            r.replaced_by.is_none()
                && now
                    >= r.created_at
                        .saturating_add(self.config.refund_bump_after_secs)
                && !self.node.wallet.is_confirmed(&r.txid)
        });
        for stuck in due {
            // The wallet may not have synced the block that confirmed it yet.
            if self.confirmed_on_chain(&stuck.txid).await != Some(false) {
                continue;
            }
            let fee_rate = self
                .node
                .fee_estimator
                .fee_rate_within_blocks(REFUND_CONFIRM_BLOCKS);
            let tx = self
                .node
                .wallet
                .sign_fee_bump(&stuck.txid, fee_rate)
                .map_err(|e| e.to_string())?;
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
            self.node.wallet.broadcast(&replacement.tx);
            tracing::info!(order = %order.id, original = %stuck.txid, replacement = %replacement.txid, "refund fee bumped");
        }
        Ok(())
    }

    fn send_refund(
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
        self.node.wallet.broadcast(&refund.tx);
        tracing::info!(order = %order.id, txid = %refund.txid, amount_sat, fee_sat, address = refund_address, "refund sent");
        Ok(())
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

    fn order_for_channel(&self, user_channel_id: u128) -> Option<Order> {
        let orders = self.book.orders_needing_attention().ok()?;
        orders
            .into_iter()
            .find(|o| self::user_channel_id(&o.id) == user_channel_id)
    }

    fn payment_for_order(&self, id: &OrderId, payment: &ClaimablePayment) -> ClaimDecision {
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
        if order.state != OrderState::Created
            || bolt11.state != PaymentState::ExpectPayment
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

fn bolt11_held(order: &Order) -> bool {
    order
        .bolt11
        .as_ref()
        .is_some_and(|b| b.state == PaymentState::Hold)
}

/// The payment hash of a BOLT11 invoice string.
fn invoice_hash(invoice: &str) -> Option<PaymentHash> {
    Bolt11Invoice::from_str(invoice)
        .ok()
        .map(|i| PaymentHash(i.payment_hash().0))
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
        let mut opens = self.opens.lock().unwrap_or_else(|p| p.into_inner());
        let funded = self.book.apply(
            &order.id,
            &OrderEvent::ChannelFunded(info),
            "funding transaction broadcast",
        );
        if funded.is_ok() {
            opens.remove(&order.id);
        }
        drop(opens);
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
        let was_held = bolt11_held(&order);
        if was_held {
            self.claim_order_htlc(&order);
        }
        tracing::info!(order = %order.id, funding_outpoint = %channel.funding_txo, state = %funded.state_summary(), "order completed");
        Ok(())
    }

    fn channel_closed(
        &self,
        user_channel_id: u128,
        _counterparty: Option<bitcoin::secp256k1::PublicKey>,
    ) {
        let Some(order) = self.order_for_channel(user_channel_id) else {
            return;
        };
        tracing::info!(order = %order.id, "the order's channel open did not complete; will retry while the order allows");
        self.wake.notify_one();
    }
}
