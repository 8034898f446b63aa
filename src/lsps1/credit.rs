//! The credit ledger's rows (`lsps1_credit`), written inside a caller's transaction.
//!
//! Every entry records the balance after it, computed from the entry before in the same
//! transaction; a debit larger than the balance is refused and writes nothing, and the table's
//! CHECK refuses a negative balance as a second line. Callers hold SQLite's write lock
//! (`BEGIN IMMEDIATE`), so two writers cannot both spend one balance. The order book writes
//! entries in the transactions that create a customer's order
//! ([`crate::lsps1::customer_orders`]) and that fail or cancel one ([`settle_failed_order`],
//! called by [`crate::lsps1::store`]'s transitions); [`crate::lsps1::customers`] writes the
//! operator's adjustments and [`crate::lsps1::credit_coupons`] redeemed coupons.

use rusqlite::{params, Connection, OptionalExtension};

use crate::lsps1::coupons::{from_sql_u64, to_sql_u64};
use crate::lsps1::order::{Order, OrderEvent, OrderId, PaymentState};

/// What a credit entry is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditKind {
    /// What a cancelled order's customer paid (and the credit it used), kept as credit.
    OrderCancelled(OrderId),
    /// The credit a failed order used, returned.
    OrderFailed(OrderId),
    /// A redeemed credit coupon.
    Coupon(String),
    /// The operator's adjustment, with its reason.
    Adjustment(String),
    /// The operator's adjustment taking credit away, with its reason.
    AdjustmentDebit(String),
    /// Credit an order used.
    OrderDebit(OrderId),
}

impl CreditKind {
    /// The `kind` column (a failed order's return is an `order_cancelled` entry with its own
    /// reason).
    fn name(&self) -> &'static str {
        match self {
            CreditKind::OrderCancelled(_) | CreditKind::OrderFailed(_) => "order_cancelled",
            CreditKind::Coupon(_) => "coupon",
            CreditKind::Adjustment(_) | CreditKind::AdjustmentDebit(_) => "adjustment",
            CreditKind::OrderDebit(_) => "order_debit",
        }
    }

    fn order_coupon_reason(&self) -> (Option<String>, Option<String>, String) {
        match self {
            CreditKind::OrderCancelled(id) => (
                Some(id.to_string()),
                None,
                "a cancelled order: what was paid for it".to_string(),
            ),
            CreditKind::OrderFailed(id) => (
                Some(id.to_string()),
                None,
                "the credit used by a failed order, returned".to_string(),
            ),
            CreditKind::OrderDebit(id) => {
                (Some(id.to_string()), None, "used by an order".to_string())
            }
            CreditKind::Coupon(code) => (None, Some(code.clone()), "a redeemed coupon".to_string()),
            CreditKind::Adjustment(reason) | CreditKind::AdjustmentDebit(reason) => {
                (None, None, reason.clone())
            }
        }
    }
}

/// One ledger row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CreditEntry {
    pub seq: i64,
    pub at: u64,
    /// Positive credit, negative debit.
    pub amount_sat: i64,
    pub kind: String,
    pub order_id: Option<String>,
    pub coupon_code: Option<String>,
    pub reason: String,
    pub balance_after_sat: u64,
}

/// Why an entry was not written; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum CreditError {
    #[error("the credit is {balance_sat} sat; {needed_sat} sat cannot be taken from it")]
    Insufficient { balance_sat: u64, needed_sat: u64 },
    #[error("there is no customer {0}")]
    UnknownCustomer(String),
    #[error("a credit entry moves at least 1 sat")]
    ZeroAmount,
    #[error(transparent)]
    Database(#[from] rusqlite::Error),
}

/// Writes an entry for `customer_id` in the caller's transaction `conn`: `amount_sat` of
/// credit (a debit for [`CreditKind::OrderDebit`] and [`CreditKind::AdjustmentDebit`]). Returns the balance after it.
pub(crate) fn write_entry(
    conn: &Connection,
    customer_id: &str,
    amount_sat: u64,
    kind: &CreditKind,
    now: u64,
) -> Result<u64, CreditError> {
    if amount_sat == 0 {
        return Err(CreditError::ZeroAmount);
    }
    let known: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM lsps1_customers WHERE id = ?1)",
        params![customer_id],
        |row| row.get(0),
    )?;
    if !known {
        return Err(CreditError::UnknownCustomer(customer_id.to_string()));
    }
    let balance = balance(conn, customer_id)?;
    let (signed, after) = match kind {
        CreditKind::OrderDebit(_) | CreditKind::AdjustmentDebit(_) => {
            let after = balance
                .checked_sub(amount_sat)
                .ok_or(CreditError::Insufficient {
                    balance_sat: balance,
                    needed_sat: amount_sat,
                })?;
            (-to_sql_u64(amount_sat), after)
        }
        _ => (to_sql_u64(amount_sat), balance.saturating_add(amount_sat)),
    };
    let (order_id, coupon_code, reason) = kind.order_coupon_reason();
    conn.execute(
        "INSERT INTO lsps1_credit (customer_id, at, amount_sat, kind, order_id, coupon_code,
            reason, balance_after_sat)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            customer_id,
            to_sql_u64(now),
            signed,
            kind.name(),
            order_id,
            coupon_code,
            reason,
            to_sql_u64(after)
        ],
    )?;
    Ok(after)
}

/// The balance after the last entry of `customer_id` (0 without one).
pub(crate) fn balance(conn: &Connection, customer_id: &str) -> Result<u64, CreditError> {
    let balance: Option<i64> = conn
        .query_row(
            "SELECT balance_after_sat FROM lsps1_credit WHERE customer_id = ?1
             ORDER BY seq DESC LIMIT 1",
            params![customer_id],
            |row| row.get(0),
        )
        .optional()?;
    Ok(balance.map_or(0, from_sql_u64))
}

/// The ledger of `customer_id`, oldest first.
pub(crate) fn entries(
    conn: &Connection,
    customer_id: &str,
) -> Result<Vec<CreditEntry>, CreditError> {
    let mut statement = conn.prepare(
        "SELECT seq, at, amount_sat, kind, order_id, coupon_code, reason, balance_after_sat
         FROM lsps1_credit WHERE customer_id = ?1 ORDER BY seq",
    )?;
    let rows = statement.query_map(params![customer_id], |row| {
        Ok(CreditEntry {
            seq: row.get(0)?,
            at: from_sql_u64(row.get(1)?),
            amount_sat: row.get(2)?,
            kind: row.get(3)?,
            order_id: row.get(4)?,
            coupon_code: row.get(5)?,
            reason: row.get(6)?,
            balance_after_sat: from_sql_u64(row.get(7)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// In the transaction that fails a customer's `order` with `event`: the credit it used comes
/// back; cancelled to credit, what it paid is kept as credit too (its held HTLC is taken:
/// recorded here, claimed after the commit) and the order is marked cancelled.
pub(crate) fn settle_failed_order(
    conn: &Connection,
    order: &Order,
    event: &OrderEvent,
    now: u64,
) -> Result<(), CreditError> {
    let Some(customer) = &order.customer else {
        return Ok(());
    };
    let (paid, kind) = match event {
        OrderEvent::CancelledToCredit => {
            let held = order
                .bolt11
                .as_ref()
                .filter(|b| b.state == PaymentState::Hold)
                .map_or(0, |b| b.order_total_sat);
            if held > 0 {
                conn.execute(
                    "UPDATE lsps1_bolt11_payments
                     SET claim_requested_at = COALESCE(claim_requested_at, ?2)
                     WHERE order_id = ?1 AND held_at IS NOT NULL",
                    params![order.id.as_str(), to_sql_u64(now)],
                )?;
            }
            mark_cancelled(conn, &order.id, true, now)?;
            (held, CreditKind::OrderCancelled(order.id.clone()))
        }
        _ => (0, CreditKind::OrderFailed(order.id.clone())),
    };
    let returned = customer.credit_used_sat.saturating_add(paid);
    if returned > 0 {
        write_entry(conn, &customer.customer_id, returned, &kind, now)?;
    }
    Ok(())
}

/// Marks customer order `id` cancelled by its customer (idempotent), or unmarks it.
pub(crate) fn mark_cancelled(
    conn: &Connection,
    id: &OrderId,
    cancelled: bool,
    now: u64,
) -> Result<(), rusqlite::Error> {
    match cancelled {
        true => conn.execute(
            "UPDATE lsps1_customer_orders SET cancelled_at = COALESCE(cancelled_at, ?2)
             WHERE order_id = ?1",
            params![id.as_str(), to_sql_u64(now)],
        )?,
        false => conn.execute(
            "UPDATE lsps1_customer_orders SET cancelled_at = NULL WHERE order_id = ?1",
            params![id.as_str()],
        )?,
    };
    Ok(())
}
