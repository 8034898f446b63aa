//! Which order addresses the wallet still watches for payments (`lsps1_address_watch`).
//!
//! Every order with an on-chain option has a row, written by the order book in the
//! transaction that creates the order, watching from the order's expiry. Once the service finds an ended order's
//! address past `lsps1.address_watch_secs` from there with nothing in flight (no unconfirmed
//! payment, every refund confirmed, nothing left to refund), it takes the address off the
//! wallet's sync and marks the row retired; the operator's rescan watches it again from the
//! moment of the rescan. The live rows are the orders the service reads receipts for, so the
//! cost of a pass follows the orders still watched, not every order ever taken.

use rusqlite::params;

use crate::lsps1::coupons::{from_sql_u64, to_sql_u64};
use crate::lsps1::order::{Order, OrderId};
use crate::lsps1::store::{decode, insert_note, OrderBook, StoreError};

/// Where an order's address stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressWatch {
    /// Unix seconds the watch window counts from.
    pub watch_from: u64,
    /// Unix seconds the address was retired; `None` while watched.
    pub retired_at: Option<u64>,
}

impl OrderBook {
    /// Every order whose address is still watched, oldest first.
    pub fn watched_onchain_orders(&self) -> Result<Vec<Order>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT o.record FROM lsps1_address_watch w JOIN lsps1_orders o ON o.id = w.order_id
             WHERE w.retired_at IS NULL ORDER BY o.created_at, o.id",
        )?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        rows.map(|record| decode(&record?)).collect()
    }

    /// The watched orders whose window started before `cutoff` (candidates for retirement).
    pub fn addresses_watched_since_before(&self, cutoff: u64) -> Result<Vec<OrderId>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT order_id FROM lsps1_address_watch
             WHERE retired_at IS NULL AND watch_from < ?1 ORDER BY watch_from",
        )?;
        let rows =
            statement.query_map(params![to_sql_u64(cutoff)], |row| row.get::<_, String>(0))?;
        rows.map(|id| {
            let id = id?;
            OrderId::parse(&id).map_err(|_| StoreError::Corrupt(id))
        })
        .collect()
    }

    /// The watch row of order `id`, if it has an on-chain option.
    pub fn address_watch(&self, id: &OrderId) -> Result<Option<AddressWatch>, StoreError> {
        use rusqlite::OptionalExtension;
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT watch_from, retired_at FROM lsps1_address_watch WHERE order_id = ?1",
                params![id.as_str()],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?)),
            )
            .optional()?;
        Ok(row.map(|(from, retired)| AddressWatch {
            watch_from: from_sql_u64(from),
            retired_at: retired.map(from_sql_u64),
        }))
    }

    /// Marks order `id`'s address retired, with a history row. False if it was not watched.
    pub fn retire_address(&self, id: &OrderId) -> Result<bool, StoreError> {
        self.change_watch(
            id,
            "UPDATE lsps1_address_watch SET retired_at = ?2 WHERE order_id = ?1 AND retired_at IS NULL",
            "address_retired",
            "the order's address is no longer watched for payments",
        )
    }

    /// Watches order `id`'s address again from now, with a history row. False if the order
    /// has no on-chain option.
    pub fn watch_address_again(&self, id: &OrderId) -> Result<bool, StoreError> {
        self.change_watch(
            id,
            "UPDATE lsps1_address_watch SET retired_at = NULL, watch_from = ?2 WHERE order_id = ?1",
            "address_watched",
            "the operator asked to watch the order's address again",
        )
    }

    fn change_watch(
        &self,
        id: &OrderId,
        update: &str,
        event: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let now = self.clock().now_unix_secs();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if tx.execute(update, params![id.as_str(), to_sql_u64(now)])? == 0 {
            return Ok(false);
        }
        insert_note(&tx, id, now, event, reason)?;
        tx.commit()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::lsps1::clock::{Clock, ManualClock};
    use crate::lsps1::new_orders::Admission;
    use crate::lsps1::order::tests::sample_order;

    fn book() -> (tempfile::TempDir, Arc<ManualClock>, OrderBook) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_800_000_000));
        let book = OrderBook::open(&dir.path().join("node.sqlite"), clock.clone()).unwrap();
        (dir, clock, book)
    }

    #[test]
    fn an_onchain_order_is_watched_from_its_expiry_until_retired_and_again_after_a_rescan() {
        let (_dir, clock, book) = book();
        let order = sample_order(true, true);
        book.create_order(&order, &Admission::default()).unwrap();
        let ids = |orders: Vec<Order>| orders.into_iter().map(|o| o.id).collect::<Vec<_>>();
        assert_eq!(
            ids(book.watched_onchain_orders().unwrap()),
            std::slice::from_ref(&order.id)
        );
        let watch = book.address_watch(&order.id).unwrap().unwrap();
        assert_eq!(
            (watch.watch_from, watch.retired_at),
            (order.expires_at, None)
        );
        assert!(book
            .addresses_watched_since_before(order.expires_at)
            .unwrap()
            .is_empty());
        assert_eq!(
            book.addresses_watched_since_before(order.expires_at + 1)
                .unwrap(),
            std::slice::from_ref(&order.id)
        );

        assert!(book.retire_address(&order.id).unwrap());
        assert!(!book.retire_address(&order.id).unwrap(), "once");
        assert!(book.watched_onchain_orders().unwrap().is_empty());
        assert!(book
            .addresses_watched_since_before(u64::MAX / 2)
            .unwrap()
            .is_empty());
        let retired = book.address_watch(&order.id).unwrap().unwrap();
        assert_eq!(retired.retired_at, Some(clock.now_unix_secs()));

        clock.advance(100);
        assert!(book.watch_address_again(&order.id).unwrap());
        let again = book.address_watch(&order.id).unwrap().unwrap();
        assert_eq!(
            (again.watch_from, again.retired_at),
            (clock.now_unix_secs(), None)
        );
        let events: Vec<String> = book
            .events(&order.id)
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(events, ["created", "address_retired", "address_watched"]);
    }

    #[test]
    fn an_order_without_an_onchain_option_has_no_address_to_watch() {
        let (_dir, _clock, book) = book();
        let order = sample_order(true, false);
        book.create_order(&order, &Admission::default()).unwrap();
        assert!(book.address_watch(&order.id).unwrap().is_none());
        assert!(book.watched_onchain_orders().unwrap().is_empty());
        assert!(!book.watch_address_again(&order.id).unwrap());
        assert!(!book.retire_address(&order.id).unwrap());
        assert_eq!(book.events(&order.id).unwrap().len(), 1);
    }
}
