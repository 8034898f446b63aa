//! The order engine's figures for monitoring ([`OrderMetrics`]): orders by state, refunds
//! still owed, HTLCs held and how close the nearest one is to its deadline. Each figure is one
//! indexed or aggregate query; nothing here walks the orders.

use rusqlite::params;

use crate::api::{OrderMetrics, StateCount};
use crate::lsps1::coupons::from_sql_u64;
use crate::lsps1::service::OrderService;
use crate::lsps1::store::{OrderBook, StoreError};

impl OrderBook {
    /// How many orders are in each order state.
    pub fn order_counts(&self) -> Result<Vec<StateCount>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT order_state, COUNT(*) FROM lsps1_orders GROUP BY order_state ORDER BY order_state",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(StateCount {
                state: row.get(0)?,
                count: from_sql_u64(row.get(1)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Failed orders whose on-chain funds are not yet back with the client: paid ones, and
    /// unpaid ones that received something and have a refund on its way.
    pub fn refunds_pending(&self) -> Result<u64, StoreError> {
        let count: i64 = self.conn().query_row(
            // Through the refunding orders' partial index: the planner would walk every
            // failed order.
            "SELECT COUNT(*) FROM lsps1_orders o INDEXED BY lsps1_orders_refunding
             WHERE o.order_state = 'FAILED' AND o.onchain_state IN ('EXPECT_PAYMENT', 'PAID')
               AND (o.onchain_state = 'PAID'
                    OR (o.onchain_state = 'EXPECT_PAYMENT'
                        AND EXISTS (SELECT 1 FROM lsps1_refunds r WHERE r.order_id = o.id)))",
            [],
            |row| row.get(0),
        )?;
        Ok(from_sql_u64(count))
    }

    /// HTLCs held for orders (waiting for their channel, or for the chain source to have the
    /// funding transaction) and the lowest known claim deadline among them.
    pub fn htlcs_held(&self) -> Result<(u64, Option<u32>), StoreError> {
        let (count, deadline): (i64, Option<u32>) = self.conn().query_row(
            "SELECT COUNT(*), MIN(p.claim_deadline) FROM lsps1_bolt11_payments p
             JOIN lsps1_orders o ON o.id = p.order_id
             WHERE p.held_at IS NOT NULL AND p.claimed_at IS NULL AND p.failed_back_at IS NULL
               AND o.bolt11_state IN ('HOLD', 'PAID')",
            params![],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok((from_sql_u64(count), deadline))
    }
}

/// What the order engine reports now; `height` is the node's best block.
pub fn order_metrics(service: &OrderService, height: u32) -> Result<OrderMetrics, StoreError> {
    let book = service.order_book();
    let (htlcs_held, nearest_deadline) = book.htlcs_held()?;
    Ok(OrderMetrics {
        orders_by_state: book.order_counts()?,
        refunds_pending: book.refunds_pending()?,
        htlcs_held,
        htlc_nearest_deadline_blocks: nearest_deadline.map(|d| d.saturating_sub(height)),
        orders_stuck: book.stuck_orders(service.now())?.len() as u64,
    })
}
