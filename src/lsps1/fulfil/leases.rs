//! The service's side of the lease book ([`crate::lsps1::leases`]): opening the lease of
//! every completed order (at funding, and at start for any missed), starting it when the
//! funding confirms (`funding.rs` reports the height), ending it when the chain reaches its
//! end height, closing its channel after the end (`[lsps1.leases]`), and recording who
//! closed the channel and how.
//!
//! With `at_end = "close"`, an ended lease's channel is closed cooperatively once it carries
//! no HTLC and the client is connected (CLOSING until LDK reports it closed; a close that a
//! restart interrupted is asked again); `force_close_after_blocks` past the end height, a
//! channel still open is force-closed. LDK's close uses the node's fee estimator.

use lightning::ln::channel_state::{ChannelDetails, ChannelShutdownState};

use crate::config::lsps1::LeaseEnd;
use crate::lsps1::leases::{Lease, LeaseClose, LeaseFilter, LeaseState};

use super::*;

impl OrderService {
    /// Opens a lease for every completed order that has none.
    pub(super) fn open_missing_leases(&self) {
        let orders = match self.book.completed_orders_without_lease() {
            Ok(orders) => orders,
            Err(error) => {
                tracing::error!(%error, "cannot read the completed orders without a lease");
                return;
            }
        };
        for order in orders {
            if let Err(error) = self.book.open_lease(&order, user_channel_id(&order.id)) {
                tracing::error!(order = %order.id, %error, "could not open the order's lease");
            }
        }
    }

    /// Ends the leases `height` has reached.
    pub(super) fn end_leases(&self, height: u32) {
        match self.book.end_leases(height) {
            Ok(ended) => {
                for id in ended {
                    tracing::info!(order = %id, height, "lease ended");
                }
            }
            Err(error) => tracing::error!(%error, "cannot end the leases that reached their end"),
        }
    }

    /// Closes the channels of the leases that have ended, under `[lsps1.leases]`.
    pub(super) fn close_ended_leases(&self, height: u32) {
        if self.config.leases.at_end == LeaseEnd::Keep {
            return;
        }
        let due = match self.book.leases(&LeaseFilter {
            state: None,
            ending_by_height: Some(height),
            client: None,
        }) {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "cannot read the leases that have ended");
                return;
            }
        };
        let due: Vec<Lease> = due
            .into_iter()
            .filter(|l| matches!(l.state, LeaseState::Ended | LeaseState::Closing))
            .filter(|l| !l.keep_open)
            .collect();
        if due.is_empty() {
            return;
        }
        let channels = self.node.channel_manager.list_channels();
        for lease in due {
            if let Some(channel) = channels
                .iter()
                .find(|c| c.user_channel_id == lease.user_channel_id)
            {
                self.close_ended_lease(&lease, channel, height);
            }
        }
    }

    fn close_ended_lease(&self, lease: &Lease, channel: &ChannelDetails, height: u32) {
        let manager = &self.node.channel_manager;
        let counterparty = channel.counterparty.node_id;
        let end = lease.end_height.unwrap_or(height);
        let grace = self.config.leases.force_close_after_blocks;
        if height >= end.saturating_add(grace) {
            let why = format!(
                "the lease ended at height {end} and the channel was not closed cooperatively within {grace} blocks"
            );
            match manager.force_close_broadcasting_latest_txn(
                &channel.channel_id,
                &counterparty,
                why.clone(),
            ) {
                Ok(()) => self.lease_closing(lease, &format!("force-closing: {why}")),
                Err(error) => {
                    tracing::warn!(order = %lease.order_id, ?error, "could not force-close an ended lease")
                }
            }
            return;
        }
        let shutting_down = channel
            .channel_shutdown_state
            .is_some_and(|s| s != ChannelShutdownState::NotShuttingDown);
        let htlcs_in_flight =
            !channel.pending_inbound_htlcs.is_empty() || !channel.pending_outbound_htlcs.is_empty();
        if shutting_down || htlcs_in_flight || !channel.is_usable {
            return;
        }
        match manager.close_channel(&channel.channel_id, &counterparty) {
            Ok(()) => self.lease_closing(
                lease,
                &format!("the lease ended at height {end}: closing the channel cooperatively"),
            ),
            Err(error) => {
                tracing::warn!(order = %lease.order_id, ?error, "could not start closing an ended lease")
            }
        }
    }

    /// Closes order `id`'s leased channel now, whatever its lease says (the operator's word):
    /// cooperatively, or by broadcasting our commitment with `force`.
    pub fn close_lease_now(&self, id: &OrderId, force: bool) -> Result<Lease, LeaseRefused> {
        let lease = self.open_lease_of(id)?;
        let channel = self
            .node
            .channel_manager
            .list_channels()
            .into_iter()
            .find(|c| c.user_channel_id == lease.user_channel_id)
            .ok_or(LeaseRefused::ChannelGone)?;
        let manager = &self.node.channel_manager;
        let counterparty = channel.counterparty.node_id;
        let closed = match force {
            true => manager.force_close_broadcasting_latest_txn(
                &channel.channel_id,
                &counterparty,
                "the LSP's operator closed the leased channel".to_string(),
            ),
            false => manager.close_channel(&channel.channel_id, &counterparty),
        };
        closed.map_err(|e| LeaseRefused::Channel(format!("{e:?}")))?;
        let how = if force { "force" } else { "cooperatively" };
        self.lease_closing(&lease, &format!("the operator closes the channel ({how})"));
        self.book
            .lease(id)
            .map_err(|e| LeaseRefused::Store(e.to_string()))?
            .ok_or(LeaseRefused::Unknown)
    }

    /// Keeps order `id`'s leased channel open past its end (the operator's word).
    pub fn keep_lease_open(&self, id: &OrderId) -> Result<Lease, LeaseRefused> {
        self.open_lease_of(id)?;
        self.book
            .keep_lease(id)
            .map_err(|e| LeaseRefused::Store(e.to_string()))?;
        self.open_lease_of(id)
    }

    fn open_lease_of(&self, id: &OrderId) -> Result<Lease, LeaseRefused> {
        let lease = self
            .book
            .lease(id)
            .map_err(|e| LeaseRefused::Store(e.to_string()))?
            .ok_or(LeaseRefused::Unknown)?;
        match lease.state {
            LeaseState::Closing | LeaseState::Closed => Err(LeaseRefused::Closed(lease.state)),
            _ => Ok(lease),
        }
    }

    fn lease_closing(&self, lease: &Lease, reason: &str) {
        match self.book.mark_lease_closing(&lease.order_id, reason) {
            Ok(_) => tracing::info!(order = %lease.order_id, reason, "closing a leased channel"),
            Err(error) => {
                tracing::error!(order = %lease.order_id, %error, "could not record a lease closing")
            }
        }
    }

    /// Records the close of a leased channel.
    pub(super) fn lease_channel_closed(&self, user_channel_id: u128, reason: &ClosureReason) {
        let close = lease_close(reason);
        match self.book.close_lease(user_channel_id, close) {
            Ok(Some(lease)) => {
                tracing::info!(order = %lease.order_id, by = close.by, kind = close.kind, %reason, "leased channel closed");
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(user_channel_id, %error, "could not record the close of a leased channel");
            }
        }
    }
}

/// Why the operator's close or keep of a lease was refused.
#[derive(Debug)]
pub enum LeaseRefused {
    /// The order has no lease (not funded, or no such order).
    Unknown,
    /// Its channel is closing or closed already.
    Closed(LeaseState),
    /// LDK no longer has its channel.
    ChannelGone,
    /// LDK refused to close it.
    Channel(String),
    Store(String),
}

/// Who closed a channel and how, from LDK's reason.
fn lease_close(reason: &ClosureReason) -> LeaseClose {
    let (by, kind) = match reason {
        ClosureReason::CounterpartyInitiatedCooperativeClosure => ("client", "cooperative"),
        ClosureReason::LocallyInitiatedCooperativeClosure => ("lsp", "cooperative"),
        ClosureReason::LegacyCooperativeClosure => ("chain", "cooperative"),
        ClosureReason::CounterpartyForceClosed { .. } => ("client", "force"),
        ClosureReason::CommitmentTxConfirmed => ("chain", "force"),
        // Everything else is our node giving the channel up.
        _ => ("lsp", "force"),
    };
    LeaseClose { by, kind }
}
