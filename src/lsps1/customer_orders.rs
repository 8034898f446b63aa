//! Which orders belong to which customer account (`lsps1_customer_orders`), in the order book.
//!
//! A customer's order is a pay-first order ([`crate::lsps1::claims`]) with an
//! [`OrderCustomer`](crate::lsps1::order::OrderCustomer) in its record; its row here names the
//! customer, the credit it used and when the customer cancelled it. The order, its claim
//! token, this row and the debit of the credit it used are written in one transaction, so an
//! order never exists without its debit, nor a debit without its order.

use rusqlite::{params, OptionalExtension};

use crate::lsps1::claims::ClaimToken;
use crate::lsps1::coupons::{from_sql_u64, to_sql_u64};
use crate::lsps1::credit::{self, CreditKind};
use crate::lsps1::new_orders::Admission;
use crate::lsps1::order::{Order, OrderId};
use crate::lsps1::store::{load_order, OrderBook, StoreError};

/// A customer's order as the customer's API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerOrder {
    pub order: Order,
    /// When the customer cancelled it (Unix seconds).
    pub cancelled_at: Option<u64>,
}

impl OrderBook {
    /// Stores the new order of a customer (`order.customer` names it) with its claim token,
    /// and debits the credit it uses, all or nothing: a balance spent meanwhile by another
    /// order refuses this one ([`crate::lsps1::credit::CreditError::Insufficient`]).
    pub fn create_customer_order(
        &self,
        order: &Order,
        admission: &Admission,
        token: &ClaimToken,
    ) -> Result<(), StoreError> {
        let customer = order
            .customer
            .clone()
            .ok_or_else(|| StoreError::NotNew(order.id.clone()))?;
        let now = self.clock().now_unix_secs();
        let id = order.id.clone();
        self.create_pay_first_order_with(order, admission, token, move |tx| {
            tx.execute(
                "INSERT INTO lsps1_customer_orders (order_id, customer_id, credit_used_sat)
                 VALUES (?1, ?2, ?3)",
                params![
                    id.as_str(),
                    customer.customer_id,
                    to_sql_u64(customer.credit_used_sat)
                ],
            )?;
            if customer.credit_used_sat > 0 {
                credit::write_entry(
                    tx,
                    &customer.customer_id,
                    customer.credit_used_sat,
                    &CreditKind::OrderDebit(id),
                    now,
                )?;
            }
            Ok(())
        })
    }

    /// Order `id` if it belongs to customer `customer_id` (another's is `None`, as an unknown
    /// one).
    pub fn customer_order(
        &self,
        customer_id: &str,
        id: &OrderId,
    ) -> Result<Option<CustomerOrder>, StoreError> {
        let conn = self.conn();
        let cancelled_at: Option<Option<i64>> = conn
            .query_row(
                "SELECT cancelled_at FROM lsps1_customer_orders
                 WHERE order_id = ?1 AND customer_id = ?2",
                params![id.as_str(), customer_id],
                |row| row.get(0),
            )
            .optional()?;
        let Some(cancelled_at) = cancelled_at else {
            return Ok(None);
        };
        Ok(load_order(&conn, id)?.map(|order| CustomerOrder {
            order,
            cancelled_at: cancelled_at.map(from_sql_u64),
        }))
    }

    /// The ids of customer `customer_id`'s orders, newest first.
    pub fn customer_order_ids(&self, customer_id: &str) -> Result<Vec<OrderId>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT c.order_id FROM lsps1_customer_orders c JOIN lsps1_orders o ON o.id = c.order_id
             WHERE c.customer_id = ?1 ORDER BY o.created_at DESC, c.order_id",
        )?;
        let rows = statement.query_map(params![customer_id], |row| row.get::<_, String>(0))?;
        rows.map(|id| {
            let id = id?;
            OrderId::parse(&id).map_err(|_| StoreError::Corrupt(id))
        })
        .collect()
    }

    /// Remembers that the customer cancelled order `id` (idempotent), or forgets it when the
    /// cancel was refused.
    pub fn mark_customer_order_cancelled(
        &self,
        id: &OrderId,
        cancelled: bool,
    ) -> Result<(), StoreError> {
        let now = self.clock().now_unix_secs();
        credit::mark_cancelled(&self.conn(), id, cancelled, now)?;
        Ok(())
    }
}
