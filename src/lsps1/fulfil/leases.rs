//! The service's side of the lease book ([`crate::lsps1::leases`]): opening the lease of
//! every completed order (at funding, and at start for any missed), starting it when the
//! funding confirms (`funding.rs` reports the height), ending it when the chain reaches its
//! end height, and recording who closed its channel and how.

use crate::lsps1::leases::LeaseClose;

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
