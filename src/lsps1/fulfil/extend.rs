//! Paid extension orders (LSPS7): the blocks are added to the lease
//! ([`crate::lsps1::extensions`], one transaction that also completes the order), then the held
//! HTLC is claimed. An extension whose lease is closing or closed by the time it is paid is
//! failed like any order, which returns its payment. Each pass claims again the HTLC of any
//! recorded extension LDK has not reported claimed (a crash between the record and the claim).

use super::*;

impl OrderService {
    /// Adds paid extension `order`'s blocks to its lease and claims its HTLC.
    pub(super) fn record_extension(
        &self,
        order: &Order,
        got: &Receipts,
        height: u32,
    ) -> Result<(), String> {
        // The same lock as `fail_order`: an order is either failed or completed, never both.
        let opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        let applied = self.book.apply_extension(&order.id, height);
        drop(opening);
        match applied.map_err(|e| e.to_string())? {
            Ok(extended) => {
                tracing::info!(order = %order.id, state = %extended.state_summary(), "lease extension recorded");
                crate::fault_points::crash_point("extension_recorded.before_htlc_claimed");
                self.claim_extension_htlc(&extended);
                Ok(())
            }
            Err(refused) => self.fail(order, got, &refused.to_string()),
        }
    }

    /// Claims the held HTLC of every recorded extension LDK has not reported claimed.
    pub(super) fn claim_recorded_extensions(&self) {
        let awaiting = match self.book.extensions_awaiting_claim() {
            Ok(awaiting) => awaiting,
            Err(error) => {
                tracing::error!(%error, "cannot read the extensions awaiting their claim");
                return;
            }
        };
        for id in awaiting {
            match self.book.order(&id) {
                Ok(Some(order)) => self.claim_extension_htlc(&order),
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(order = %id, %error, "cannot read an extension order")
                }
            }
        }
    }

    fn claim_extension_htlc(&self, order: &Order) {
        if !bolt11_held_or_paid(order) {
            return; // Paid on-chain.
        }
        if let Err(error) = self.book.record_claim_requested(&order.id) {
            tracing::error!(order = %order.id, %error, "cannot record the HTLC claim; claiming on a later pass");
            return;
        }
        self.claim_order_htlc(order);
    }
}

fn bolt11_held_or_paid(order: &Order) -> bool {
    order
        .bolt11
        .as_ref()
        .is_some_and(|b| matches!(b.state, PaymentState::Hold | PaymentState::Paid))
}
