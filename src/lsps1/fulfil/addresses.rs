//! Order addresses after their order: retired from the wallet's sync once nothing can still
//! be owed on them, and watched again when the operator asks for a rescan.
//!
//! Policy (README, "late payments"): an order's address is watched from its creation until
//! `address_watch_secs` past the order's expiry, and after that for as long as anything on it
//! is in flight (an unconfirmed payment, a refund not yet `refund_confirmations` deep, an
//! amount still to refund). Then the wallet stops asking the chain source about it. A payment
//! that arrives later is not seen until `lsp-node rescan ORDER`, which watches the address
//! again for another window and reads its whole history; whatever it finds is refunded like
//! any other late payment.

use super::refund::RefundBalance;
use super::*;

/// What a rescan found on an order's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rescan {
    pub address: String,
    /// Everything the address received, in the mempool or in blocks.
    pub received_sat: u64,
    pub confirmed_sat: u64,
    /// Unix seconds: the address stays watched at least until then.
    pub watched_until: u64,
    /// Why the wallet sync that followed failed, if it did (the next periodic sync reads the
    /// address then).
    pub sync_error: Option<String>,
}

/// Why an order's address was not rescanned.
#[derive(Debug)]
pub enum RescanRefused {
    Unknown,
    /// The order was not offered on-chain payment: it has no address.
    NoAddress,
    Store(String),
}

impl OrderService {
    /// Retires the address of every watched order past its window with nothing in flight.
    pub(super) fn retire_settled_addresses(
        &self,
        now: u64,
        height: u32,
        watched: &[Order],
        receipts: &HashMap<OrderId, Receipts>,
    ) {
        let cutoff = now.saturating_sub(self.config.address_watch_secs);
        let due = match self.book.addresses_watched_since_before(cutoff) {
            Ok(due) if !due.is_empty() => due,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the order addresses due for retirement");
                return;
            }
        };
        let by_id: HashMap<&OrderId, &Order> = watched.iter().map(|o| (&o.id, o)).collect();
        for id in due {
            let Some(order) = by_id.get(&id) else {
                continue;
            };
            let got = receipts.get(&id).cloned().unwrap_or_default();
            match self.address_settled(order, &got, height) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(order = %id, error = %e, "cannot tell whether the order's address is settled");
                    continue;
                }
            }
            if let Err(e) = self.retire_address(order) {
                tracing::error!(order = %id, error = %e, "could not retire the order's address");
            }
        }
    }

    /// Whether nothing on `order`'s address can still need the service: the order has ended
    /// (a failed one with its refund confirmed), nothing is arriving, nothing is left to refund.
    fn address_settled(&self, order: &Order, got: &Receipts, height: u32) -> Result<bool, String> {
        let refunded = order
            .onchain
            .as_ref()
            .is_some_and(|o| o.state == PaymentState::Refunded);
        let ended = match order.state {
            OrderState::Created => false,
            OrderState::Completed => true,
            OrderState::Failed => refunded,
        };
        if !ended {
            return Ok(false);
        }
        Ok(self
            .refund_balance(order, got, height)?
            .is_some_and(|balance: RefundBalance| balance.settled()))
    }

    /// The wallet first: a crash before the book is written leaves the row live, and the next
    /// pass retires it again.
    fn retire_address(&self, order: &Order) -> Result<(), String> {
        let script = order_script(order)?;
        self.node
            .wallet
            .stop_watching(&script)
            .map_err(|e| e.to_string())?;
        self.book
            .retire_address(&order.id)
            .map_err(|e| e.to_string())?;
        tracing::info!(order = %order.id, "the order's address is no longer watched for payments");
        Ok(())
    }

    /// Watches order `id`'s address again from now, syncs the wallet (which reads the
    /// address's whole history) and reports what it received. A late payment found this way is
    /// refunded by the next pass.
    pub async fn rescan_order(&self, id: &OrderId) -> Result<Rescan, RescanRefused> {
        let order = self
            .book
            .order(id)
            .map_err(|e| RescanRefused::Store(e.to_string()))?
            .ok_or(RescanRefused::Unknown)?;
        let Some(onchain) = &order.onchain else {
            return Err(RescanRefused::NoAddress);
        };
        let script = order_script(&order).map_err(RescanRefused::Store)?;
        // The wallet first: a crash before the book is written leaves an address watched that
        // the book does not list, which costs a query per sync and loses nothing.
        self.node
            .wallet
            .watch_again(&script)
            .map_err(|e| RescanRefused::Store(e.to_string()))?;
        self.book
            .watch_address_again(id)
            .map_err(|e| RescanRefused::Store(e.to_string()))?;
        tracing::info!(order = %id, "watching the order's address again");
        let sync_error = self.node.wallet.sync().await.err().map(|e| e.to_string());
        let got = self
            .receipts(std::iter::once(&order))
            .remove(id)
            .unwrap_or_default();
        self.wake.notify_one();
        Ok(Rescan {
            address: onchain.address.clone(),
            received_sat: got.total_sat(),
            confirmed_sat: got.confirmed_sat(),
            watched_until: self.now().saturating_add(self.config.address_watch_secs),
            sync_error,
        })
    }
}

fn order_script(order: &Order) -> Result<ScriptBuf, String> {
    let onchain = order
        .onchain
        .as_ref()
        .ok_or_else(|| format!("order {} has no on-chain address", order.id))?;
    Address::from_str(&onchain.address)
        .map(|a| a.assume_checked().script_pubkey())
        .map_err(|e| format!("order {} has an unreadable address: {e}", order.id))
}
