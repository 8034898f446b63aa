//! Stuck orders: those with a money step pending longer than it should take, each with the
//! sentence an operator can act on (`GET /v1/orders?stuck=true`, `lsp-node orders --stuck`,
//! and the `lsp_orders_stuck` gauge). One indexed query per kind of step; no walk of the book.
//!
//! | step pending | stuck after | usual cause |
//! |---|---|---|
//! | a paid order's channel is not funded (a pay-first order once claimed: before, it waits for its claim) | [`OPEN_SECS`] | the client is offline or refuses the channel |
//! | a funded order's HTLC is not claimed | [`CLAIM_SECS`] | the funding transaction is not confirming (refused by the chain source, or paying too little) |
//! | a failed order's refund is not confirmed | [`REFUND_SECS`] | the wallet cannot pay it, or it is not confirming |
//! | an unpaid order past its expiry is not failed | [`EXPIRY_SECS`] | the order service is not running its passes |

use rusqlite::params;

use crate::lsps1::coupons::{from_sql_u64, to_sql_u64};
use crate::lsps1::order::{Order, OrderId};
use crate::lsps1::store::{OrderBook, StoreError};

/// A paid order whose channel is not funded this long after the payment.
pub const OPEN_SECS: u64 = 600;
/// A completed order whose held HTLC is not claimed this long after it was held. The claim
/// waits for the funding's first confirmation: an hour is six blocks late.
pub const CLAIM_SECS: u64 = 3_600;
/// A failed order whose on-chain refund is not confirmed this long after it failed.
pub const REFUND_SECS: u64 = 3_600;
/// An unpaid order still CREATED this long after its expiry.
pub const EXPIRY_SECS: u64 = 120;

/// An order and why it is stuck.
#[derive(Debug, Clone, PartialEq)]
pub struct StuckOrder {
    pub order: Order,
    pub why: String,
}

impl OrderBook {
    /// Every stuck order at `now`, oldest first.
    pub fn stuck_orders(&self, now: u64) -> Result<Vec<StuckOrder>, StoreError> {
        let before = |secs: u64| to_sql_u64(now.saturating_sub(secs));
        let queries: [(&str, i64, &str); 4] = [
            (
                "SELECT id, updated_at FROM lsps1_orders
                 WHERE order_state = 'CREATED' AND client_node_id != ''
                   AND (bolt11_state = 'HOLD' OR onchain_state = 'PAID'
                        OR (bolt11_state IS NULL AND onchain_state IS NULL))
                   AND updated_at <= ?1",
                before(OPEN_SECS),
                "paid, but its channel is not funded (is the client online, and does it accept the channel?)",
            ),
            (
                // CROSS JOIN and INDEXED BY: the few held HTLCs and refunding orders, not
                // every completed or failed order (the planner would walk those).
                "SELECT p.order_id, p.held_at FROM lsps1_bolt11_payments p
                 CROSS JOIN lsps1_orders o ON o.id = p.order_id
                 WHERE o.order_state = 'COMPLETED' AND p.held_at IS NOT NULL
                   AND p.claimed_at IS NULL AND p.failed_back_at IS NULL AND p.held_at <= ?1",
                before(CLAIM_SECS),
                "its channel is funded but its HTLC is not claimed: the funding transaction is not confirming (does the chain source have it, and does it pay enough?)",
            ),
            (
                "SELECT id, updated_at FROM lsps1_orders INDEXED BY lsps1_orders_refunding
                 WHERE order_state = 'FAILED' AND onchain_state IN ('EXPECT_PAYMENT', 'PAID')
                   AND onchain_state = 'PAID' AND updated_at <= ?1",
                before(REFUND_SECS),
                "failed, and its on-chain refund is not confirmed (can the wallet pay it?)",
            ),
            (
                "SELECT id, expires_at FROM lsps1_orders
                 WHERE order_state = 'CREATED'
                   AND COALESCE(bolt11_state, 'EXPECT_PAYMENT') = 'EXPECT_PAYMENT'
                   AND COALESCE(onchain_state, 'EXPECT_PAYMENT') = 'EXPECT_PAYMENT'
                   AND NOT (bolt11_state IS NULL AND onchain_state IS NULL)
                   AND expires_at <= ?1",
                before(EXPIRY_SECS),
                "expired unpaid, but not failed: is the order service running?",
            ),
        ];
        let mut found: Vec<(u64, OrderId, &str)> = Vec::new();
        {
            let conn = self.conn();
            for (sql, cutoff, why) in queries {
                let mut statement = conn.prepare(sql)?;
                let rows = statement.query_map(params![cutoff], |row| {
                    Ok((row.get::<_, String>(0)?, from_sql_u64(row.get(1)?)))
                })?;
                for row in rows {
                    let (id, since) = row?;
                    let id = OrderId::parse(&id).map_err(|_| StoreError::Corrupt(id))?;
                    found.push((since, id, why));
                }
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.as_str().cmp(b.1.as_str())));
        let mut stuck = Vec::with_capacity(found.len());
        for (since, id, why) in found {
            if let Some(order) = self.order(&id)? {
                let minutes = now.saturating_sub(since) / 60;
                stuck.push(StuckOrder {
                    order,
                    why: format!("{why} (for {minutes} min)"),
                });
            }
        }
        Ok(stuck)
    }
}
