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
//!   `min_fee_for_0conf` sat/vB). It is checked again on every pass until the channel is
//!   funded: a payment that no longer counts (a reorg took its confirmation, or a fee
//!   replacement took a 0-conf payment away) puts the order back to waiting for payment and
//!   aborts an open not yet funded, so it never buys a channel.
//! - Opening: once paid, while the client is connected, `create_channel` with capacity
//!   `lsp_balance_sat + client_balance_sat`, `client_balance_sat` pushed, the announce flag
//!   of the order, zero reserve when advertised, and the funding fee rate for the order's
//!   `funding_confirms_within_blocks` (via [`ServiceHook::funding_fee_rate`]). The channel's
//!   `user_channel_id` is derived from the order id, so a restart finds it again. A refused
//!   open is retried (at most [`MAX_OPEN_ATTEMPTS`], counted in the order book across restarts)
//!   until `open_timeout_secs` after payment. The funding transaction of each open is recorded
//!   before LDK gets it; once LDK has handed one over for broadcast (the peer's
//!   `funding_signed`), the order is never opened again: if a crash lost that channel, the
//!   order fails and its payment is returned.
//!   Starting an open and failing an order hold the same lock, and an open starts only after
//!   the order is read again under it, so no open starts for an order that has just failed.
//! - Funded (`ChannelPending`: the funding transaction is handed to the broadcaster, which
//!   keeps sending it until it confirms): the order becomes COMPLETED (bolt11 PAID) in the
//!   book. `funding.rs` follows the funding from there: the held HTLC is claimed once it has
//!   its first confirmation (or near the HTLC's deadline), a child pays for it when it would
//!   miss `funding_confirms_within_blocks`, and a funding that can no longer confirm before
//!   the HTLC was claimed fails the order after all, returning the payment.
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
//!   ([`crate::lsps1::ledger`]); the node's broadcaster keeps sending them until they confirm,
//!   and they are handed to it again on start (covering a crash between recording and
//!   broadcasting). The on-chain option becomes REFUNDED once every refund is confirmed.
//!
//!   A refund still unconfirmed after `refund_bump_after_secs` is replaced (RBF) by one paying
//!   a higher fee, same amount to the client.
//!
//! - Pay-first orders ([`crate::lsps1::claims`]) are paid the same way before they name their
//!   node: paid and unclaimed, an order waits for its claim until `claim_timeout_secs` after
//!   the payment (a held HTLC no longer than its deadline margin), then fails and returns the
//!   payment; once claimed, the open timeout counts from the claim.
//! - Extension orders (LSPS7) are paid the same way; once paid, their blocks are added to the
//!   lease instead of a channel being opened, and the HTLC is claimed at once (`extend.rs`).
//!
//! Files: this one holds the loop (restart reconciliation, the walk, payment detection);
//! `hook.rs` the [`ServiceHook`] side; `open.rs` opens and failures (and cancels);
//! `extend.rs` paid extensions; `leases.rs` the lease book's service side;
//! `funding.rs` funded orders until their funding is final; `refund.rs` refunds and their fee
//! bumps.
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
use lightning::events::{ClosureReason, ReplayEvent};
use lightning::types::payment::PaymentHash;
use lightning_invoice::Bolt11Invoice;
use tokio::sync::watch;

use crate::lsps1::leases::SECS_PER_BLOCK;
use crate::lsps1::ledger::Refund;
use crate::lsps1::order::{ChannelInfo, Order, OrderEvent, OrderId, OrderState, PaymentState};
use crate::lsps1::pricing::{fee_for_weight, refund_tx_weight};
use crate::lsps1::service::OrderService;
use crate::node::events::{
    ClaimDecision, ClaimEverything, ClaimablePayment, PendingChannel, ServiceHook,
};
use crate::node::store::BroadcastState;
use crate::node::types::ChannelManager;
use crate::node::wallet::{ReceivedOutput, SendAmount};

mod addresses;
mod extend;
mod funding;
mod hook;
mod leases;
mod open;
mod refund;

pub use addresses::{Rescan, RescanRefused};
pub use leases::LeaseRefused;

/// How often the order book is walked when nothing wakes the service.
const TICK: Duration = Duration::from_secs(1);

/// Opens refused by the client (or failing to negotiate) before the order fails.
pub const MAX_OPEN_ATTEMPTS: u32 = 3;

/// Refund outputs below this are not worth a transaction (P2TR/P2WSH dust is 330 sat).
const MIN_REFUND_SAT: u64 = 546;

/// Confirmation target of refund transactions, in blocks.
pub(crate) const REFUND_CONFIRM_BLOCKS: u16 = 6;

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
    pub(crate) fn into_outputs(self) -> Vec<ReceivedOutput> {
        self.outputs
    }

    pub(super) fn total_sat(&self) -> u64 {
        self.outputs.iter().map(|o| o.value_sat).sum()
    }

    pub(super) fn confirmed_sat(&self) -> u64 {
        self.outputs
            .iter()
            .filter(|o| o.confirmation_height.is_some())
            .map(|o| o.value_sat)
            .sum()
    }

    /// What arrived with at least `depth` confirmations at `height`.
    pub(super) fn settled_sat(&self, height: u32, depth: u32) -> u64 {
        self.outputs
            .iter()
            .filter(|o| confirmations(o, height) >= depth)
            .map(|o| o.value_sat)
            .sum()
    }

    /// Whether anything arrived with fewer than `depth` confirmations at `height`.
    pub(super) fn has_unsettled(&self, height: u32, depth: u32) -> bool {
        self.outputs
            .iter()
            .any(|o| confirmations(o, height) < depth)
    }
}

fn confirmations(output: &ReceivedOutput, height: u32) -> u32 {
    output
        .confirmation_height
        .map_or(0, |h| height.saturating_sub(h) + 1)
}

impl OrderService {
    /// Walks the order book until `shutdown`; first rebroadcasts recorded refunds.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        self.release_unsent_fundings();
        self.rebroadcast_refunds();
        self.fail_back_refunded_htlcs();
        self.open_missing_leases();
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
    pub(super) fn rebroadcast_refunds(&self) {
        let Ok(orders) = self.book.watched_onchain_orders() else {
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

    /// Fails back again the HTLC of every failed order that LDK has not reported failed back.
    /// The order is marked FAILED (bolt11 REFUNDED) before its HTLC is failed back; after a
    /// crash between the two, the HTLC would stay held until its deadline. LDK ignores a hash
    /// it no longer holds.
    pub(super) fn fail_back_refunded_htlcs(&self) {
        match self.book.failed_orders_holding_htlcs() {
            Ok(held) => {
                for (_, hash) in held {
                    self.node.channel_manager.fail_htlc_backwards(&hash);
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot read the HTLCs of failed orders at start")
            }
        }
    }

    pub(crate) fn claim_order_htlc(&self, order: &Order) {
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
        self.look_after_fundings(height);
        self.claim_recorded_extensions();
        self.claim_cancelled_to_credit();
        self.end_leases(height);
        self.close_ended_leases(height);
        let watched = match self.book.watched_onchain_orders() {
            Ok(watched) => watched,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the watched order addresses");
                Vec::new()
            }
        };
        let receipts = self.receipts(orders.iter().chain(watched.iter()));
        for order in &orders {
            let got = receipts.get(&order.id).cloned().unwrap_or_default();
            tracing::trace!(order = %order.id, state = %order.state_summary(), received_sat = got.total_sat(), confirmed_sat = got.confirmed_sat(), height, "order pass");
            if let Err(e) = self.advance(order, now, height, &got).await {
                tracing::error!(order = %order.id, error = %e, "could not advance order");
            }
        }
        for order in &watched {
            if let Err(e) = self.bump_stuck_refunds(order, now) {
                tracing::warn!(order = %order.id, error = %e, "could not bump a refund's fee");
            }
        }
        let advanced: HashSet<&OrderId> = orders.iter().map(|o| &o.id).collect();
        for order in watched.iter().filter(|o| o.state != OrderState::Created) {
            if advanced.contains(&order.id) {
                continue;
            }
            let got = receipts.get(&order.id).cloned().unwrap_or_default();
            if let Err(e) = self.refund_owed(order, &got, height) {
                tracing::error!(order = %order.id, error = %e, "could not refund");
            }
        }
        self.retire_settled_addresses(now, height, &watched, &receipts);
    }

    /// Whether our kept transaction `txid` can never confirm and the wallet has synced since
    /// the broadcaster found that out. The broadcaster asks the chain source directly; the
    /// receipts are the wallet's, and a reorg that took an input away (an order's payment, say)
    /// leaves them only at the wallet's next sync.
    pub(super) fn conflict_synced(&self, txid: &Txid) -> bool {
        self.node.broadcasts.kept(txid).is_some_and(|kept| {
            kept.state == BroadcastState::Conflicted
                && self.node.wallet.has_synced_since(kept.updated_at)
        })
    }

    pub(crate) fn receipts<'a>(
        &self,
        orders: impl Iterator<Item = &'a Order>,
    ) -> HashMap<OrderId, Receipts> {
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

    pub(super) async fn advance(
        &self,
        order: &Order,
        now: u64,
        height: u32,
        got: &Receipts,
    ) -> Result<(), String> {
        match order.state {
            OrderState::Created => {}
            OrderState::Failed => return self.refund_owed(order, got, height),
            OrderState::Completed => return Ok(()),
        }
        let held = bolt11_held(order);
        let paid_onchain = order
            .onchain
            .as_ref()
            .is_some_and(|o| o.state == PaymentState::Paid);
        if !held && !paid_onchain && !order.paid_by_credit() {
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
        if paid_onchain && !self.onchain_payment_counts(order, height, got).await {
            return self.onchain_payment_lost(order);
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
        if order.client_node_id.is_none() {
            // Paid, and no node named yet: a claim may come until the claim timeout (the HTLC
            // deadline above may end the wait sooner). `updated_at` is the payment's time.
            if now
                >= order
                    .updated_at
                    .saturating_add(self.config.claim_timeout_secs)
            {
                return self.fail(
                    order,
                    got,
                    "no node claimed the paid order in time; the payment is returned",
                );
            }
            return Ok(());
        }
        if order.extension.is_some() {
            return self.record_extension(order, got, height);
        }
        // `updated_at` is the time of the payment (or of the claim after it): nothing else changes
        // a paid, unfunded order.
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

    /// Whether the on-chain option, still expecting payment, is paid in full under the
    /// confirmation rules.
    pub(super) async fn onchain_payment_sufficient(
        &self,
        order: &Order,
        height: u32,
        got: &Receipts,
    ) -> bool {
        order
            .onchain
            .as_ref()
            .is_some_and(|o| o.state == PaymentState::ExpectPayment)
            && self.onchain_payment_counts(order, height, got).await
    }

    /// Whether what the order's address received pays the order total under the confirmation
    /// rules, whatever the option's state says.
    pub(super) async fn onchain_payment_counts(
        &self,
        order: &Order,
        height: u32,
        got: &Receipts,
    ) -> bool {
        let Some(onchain) = &order.onchain else {
            return false;
        };
        if got.outputs.is_empty() {
            return false;
        }
        let needed = u32::from(onchain.min_onchain_payment_confirmations);
        let now = self.now();
        let mut counted = 0u64;
        // A payment that reached us after the order expired is refunded, never used: its
        // price is stale.
        let in_time = got
            .outputs
            .iter()
            .filter(|o| o.arrived_at.unwrap_or(now) <= order.expires_at);
        for output in in_time {
            let confirmations = confirmations(output, height);
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
    pub(super) async fn fee_rate_sat_per_vb(&self, txid: &Txid) -> Option<f64> {
        #[derive(serde::Deserialize)]
        struct TxFee {
            fee: u64,
            weight: u64,
        }
        let tx: TxFee = self.esplora_get(&format!("/tx/{txid}")).await?;
        (tx.weight > 0).then(|| tx.fee as f64 * 4.0 / tx.weight as f64)
    }

    /// GET `path` from the node's Esplora as JSON; `None` on any failure.
    pub(super) async fn esplora_get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Option<T> {
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
