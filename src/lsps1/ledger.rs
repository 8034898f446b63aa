//! Money movements of orders that the order record itself does not carry: which payment hash
//! belongs to which order (and the HTLC held for it), and every on-chain refund sent.
//!
//! - `lsps1_bolt11_payments`: one row per order invoice, written (by the order book) in the
//!   transaction that creates the order, so an HTLC for an order's invoice is always recognised as such, even
//!   after the order has failed (it must then be failed back, never claimed as a plain payment).
//!   The held HTLC's amount and claim deadline are added when it arrives: the deadline must
//!   survive a restart, because held HTLCs are not announced again. `claimed_at` is set from
//!   LDK's `PaymentClaimed`: until then a completed order's HTLC is claimed again;
//!   `failed_back_at` from LDK's `HTLCHandlingFailed`: until then a failed order's HTLC is
//!   failed back again at start.
//! - `lsps1_channel_opens`: every channel open started for an order (the attempt count survives
//!   a restart) and the funding transaction signed for it, recorded before LDK gets it.
//! - `lsps1_refunds`: every refund transaction, recorded (with its raw bytes) *before* it is
//!   broadcast. What is still owed to an order's refund address is computed from the chain and
//!   this table, so a crash between signing and broadcasting neither loses the refund (it is
//!   rebroadcast) nor pays it twice. A refund replaced by a fee bump keeps its row, marked
//!   `replaced_by` the replacement, which pays the client the same amount; only refunds not
//!   replaced, and not conflicted among the node's kept transactions, count as paid out.

use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::hex::FromHex;
use bitcoin::{Transaction, Txid};
use lightning::types::payment::PaymentHash;
use rusqlite::{params, Connection, OptionalExtension};

use crate::lsps1::coupons::{from_sql_u64, to_sql_u64};
use crate::lsps1::order::OrderId;
use crate::lsps1::store::{OrderBook, StoreError};

/// An HTLC held for an order's invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldHtlc {
    pub amount_msat: u64,
    /// Block height by which it must be claimed or failed back, when LDK told us.
    pub claim_deadline: Option<u32>,
    /// Unix seconds.
    pub held_at: u64,
    /// Unix seconds we first asked LDK to claim it.
    pub claim_requested_at: Option<u64>,
    /// Unix seconds LDK reported it claimed.
    pub claimed_at: Option<u64>,
}

fn held_htlc_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<HeldHtlc> {
    Ok(HeldHtlc {
        amount_msat: from_sql_u64(row.get(0)?),
        claim_deadline: row.get(1)?,
        held_at: from_sql_u64(row.get(2)?),
        claim_requested_at: row.get::<_, Option<i64>>(3)?.map(from_sql_u64),
        claimed_at: row.get::<_, Option<i64>>(4)?.map(from_sql_u64),
    })
}

/// A refund transaction, as recorded before broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub txid: Txid,
    pub order_id: OrderId,
    pub address: String,
    pub amount_sat: u64,
    pub fee_sat: u64,
    pub tx: Transaction,
    pub created_at: u64,
    /// The fee bump that replaced this transaction, if any.
    pub replaced_by: Option<Txid>,
}

impl OrderBook {
    /// The order whose invoice has `payment_hash`, if any.
    pub fn order_for_payment_hash(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<Option<OrderId>, StoreError> {
        let id: Option<String> = self
            .conn()
            .query_row(
                "SELECT order_id FROM lsps1_bolt11_payments WHERE payment_hash = ?1",
                params![payment_hash.to_string()],
                |row| row.get(0),
            )
            .optional()?;
        id.map(|id| OrderId::parse(&id).map_err(|_| StoreError::Corrupt(id)))
            .transpose()
    }

    /// Remembers the HTLC held for `payment_hash` (idempotent: a replay keeps the first time).
    pub fn record_held_htlc(
        &self,
        payment_hash: &PaymentHash,
        amount_msat: u64,
        claim_deadline: Option<u32>,
    ) -> Result<(), StoreError> {
        let now = self.clock().now_unix_secs();
        self.conn().execute(
            "UPDATE lsps1_bolt11_payments
             SET held_amount_msat = ?2, claim_deadline = ?3, held_at = COALESCE(held_at, ?4)
             WHERE payment_hash = ?1",
            params![
                payment_hash.to_string(),
                to_sql_u64(amount_msat),
                claim_deadline,
                to_sql_u64(now)
            ],
        )?;
        Ok(())
    }

    /// The HTLC held for order `id`, if one arrived.
    pub fn held_htlc(&self, id: &OrderId) -> Result<Option<HeldHtlc>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT held_amount_msat, claim_deadline, held_at, claim_requested_at, claimed_at
                 FROM lsps1_bolt11_payments WHERE order_id = ?1 AND held_at IS NOT NULL",
                params![id.as_str()],
                held_htlc_row,
            )
            .optional()?)
    }

    /// Remembers that the HTLC held for `payment_hash` was claimed (idempotent).
    pub fn record_htlc_claimed(&self, payment_hash: &PaymentHash) -> Result<(), StoreError> {
        let now = self.clock().now_unix_secs();
        self.conn().execute(
            "UPDATE lsps1_bolt11_payments SET claimed_at = COALESCE(claimed_at, ?2)
             WHERE payment_hash = ?1",
            params![payment_hash.to_string(), to_sql_u64(now)],
        )?;
        Ok(())
    }

    /// Remembers that LDK failed back the HTLC held for `payment_hash` (idempotent). Returns
    /// the HTLC as it stood before, if one was held and not yet recorded as failed back.
    pub fn record_htlc_failed_back(
        &self,
        payment_hash: &PaymentHash,
    ) -> Result<Option<HeldHtlc>, StoreError> {
        let now = self.clock().now_unix_secs();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let held = tx
            .query_row(
                "SELECT held_amount_msat, claim_deadline, held_at, claim_requested_at, claimed_at
                 FROM lsps1_bolt11_payments
                 WHERE payment_hash = ?1 AND held_at IS NOT NULL AND failed_back_at IS NULL",
                params![payment_hash.to_string()],
                held_htlc_row,
            )
            .optional()?;
        if held.is_some() {
            tx.execute(
                "UPDATE lsps1_bolt11_payments SET failed_back_at = ?2 WHERE payment_hash = ?1",
                params![payment_hash.to_string(), to_sql_u64(now)],
            )?;
        }
        tx.commit()?;
        Ok(held)
    }

    /// Failed orders whose held HTLC LDK has not reported failed back (and was not taken:
    /// an order cancelled to credit keeps its payment).
    pub fn failed_orders_holding_htlcs(&self) -> Result<Vec<(OrderId, PaymentHash)>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            // CROSS JOIN: walk the few held HTLCs, not every failed order (the planner would).
            "SELECT p.order_id, p.payment_hash FROM lsps1_bolt11_payments p
             CROSS JOIN lsps1_orders o ON o.id = p.order_id
             WHERE p.held_at IS NOT NULL AND p.claimed_at IS NULL AND p.failed_back_at IS NULL
               AND p.claim_requested_at IS NULL AND o.order_state = 'FAILED'",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        rows.map(|row| {
            let (id, hash) = row?;
            let id = OrderId::parse(&id).map_err(|_| StoreError::Corrupt(id))?;
            let bytes = <[u8; 32]>::from_hex(&hash).map_err(|_| StoreError::Corrupt(hash))?;
            Ok((id, PaymentHash(bytes)))
        })
        .collect()
    }

    /// Failed orders whose held HTLC was taken (cancelled to credit) and not reported claimed.
    pub fn failed_orders_awaiting_claim(&self) -> Result<Vec<OrderId>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            // CROSS JOIN: walk the few held HTLCs, not every failed order (the planner would).
            "SELECT p.order_id FROM lsps1_bolt11_payments p
             CROSS JOIN lsps1_orders o ON o.id = p.order_id
             WHERE p.held_at IS NOT NULL AND p.claim_requested_at IS NOT NULL
               AND p.claimed_at IS NULL AND p.failed_back_at IS NULL
               AND o.order_state = 'FAILED'",
        )?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        rows.map(|id| {
            let id = id?;
            OrderId::parse(&id).map_err(|_| StoreError::Corrupt(id))
        })
        .collect()
    }

    /// Remembers that LDK was asked to claim order `id`'s held HTLC, before it is asked
    /// (idempotent): from then on the payment may be taken, so it is never failed back.
    pub fn record_claim_requested(&self, id: &OrderId) -> Result<(), StoreError> {
        let now = self.clock().now_unix_secs();
        self.conn().execute(
            "UPDATE lsps1_bolt11_payments SET claim_requested_at = COALESCE(claim_requested_at, ?2)
             WHERE order_id = ?1 AND held_at IS NOT NULL",
            params![id.as_str(), to_sql_u64(now)],
        )?;
        Ok(())
    }

    /// Records that a channel open starts for order `id`; returns how many have started.
    pub fn record_open_attempt(&self, id: &OrderId) -> Result<u32, StoreError> {
        let now = self.clock().now_unix_secs();
        let conn = self.conn();
        conn.execute(
            "INSERT INTO lsps1_channel_opens (order_id, attempt, started_at)
             SELECT ?1, COALESCE(MAX(attempt), 0) + 1, ?2 FROM lsps1_channel_opens
             WHERE order_id = ?1",
            params![id.as_str(), to_sql_u64(now)],
        )?;
        open_attempts(&conn, id)
    }

    /// Channel opens started for order `id`.
    pub fn open_attempts(&self, id: &OrderId) -> Result<u32, StoreError> {
        open_attempts(&self.conn(), id)
    }

    /// Records the funding transaction signed for the latest open of order `id`, before LDK
    /// gets it.
    pub fn record_funding(&self, id: &OrderId, txid: &Txid, height: u32) -> Result<(), StoreError> {
        let updated = self.conn().execute(
            "UPDATE lsps1_channel_opens SET funding_txid = ?2, funding_height = ?3
             WHERE order_id = ?1
               AND attempt = (SELECT MAX(attempt) FROM lsps1_channel_opens WHERE order_id = ?1)",
            params![id.as_str(), txid.to_string(), height],
        )?;
        if updated != 1 {
            return Err(StoreError::Corrupt(format!(
                "a funding transaction for order {id}, which started no open"
            )));
        }
        Ok(())
    }

    /// Every funding transaction still watched: `(order, txid, height signed at)`.
    pub fn unsettled_fundings(&self) -> Result<Vec<(OrderId, Txid, Option<u32>)>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT order_id, funding_txid, funding_height FROM lsps1_channel_opens
             WHERE funding_txid IS NOT NULL AND funding_settled_at IS NULL",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Option<u32>>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (id, txid, height) = row?;
            let id = OrderId::parse(&id).map_err(|_| StoreError::Corrupt(id))?;
            let txid = txid.parse().map_err(|_| StoreError::Corrupt(txid))?;
            Ok((id, txid, height))
        })
        .collect()
    }

    /// Stops watching funding transaction `txid` for order `id` (a batch funding stays
    /// watched for its other orders).
    pub fn settle_funding(&self, id: &OrderId, txid: &Txid) -> Result<(), StoreError> {
        let now = self.clock().now_unix_secs();
        self.conn().execute(
            "UPDATE lsps1_channel_opens SET funding_settled_at = ?3
             WHERE order_id = ?1 AND funding_txid = ?2 AND funding_settled_at IS NULL",
            params![id.as_str(), txid.to_string(), to_sql_u64(now)],
        )?;
        Ok(())
    }

    /// The funding transactions signed for order `id`'s opens, oldest first.
    pub fn fundings(&self, id: &OrderId) -> Result<Vec<Txid>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT funding_txid FROM lsps1_channel_opens
             WHERE order_id = ?1 AND funding_txid IS NOT NULL ORDER BY attempt",
        )?;
        let rows = statement.query_map(params![id.as_str()], |row| row.get::<_, String>(0))?;
        rows.map(|txid| {
            let txid = txid?;
            txid.parse().map_err(|_| StoreError::Corrupt(txid))
        })
        .collect()
    }

    /// Records a signed refund before it is broadcast.
    pub fn record_refund(&self, refund: &Refund) -> Result<(), StoreError> {
        insert_refund(&self.conn(), refund)
    }

    /// Records `replacement` (a fee bump of refund `original`) before it is broadcast, and
    /// marks the original replaced, in one transaction.
    pub fn record_refund_replacement(
        &self,
        original: &Txid,
        replacement: &Refund,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        insert_refund(&tx, replacement)?;
        let updated = tx.execute(
            "UPDATE lsps1_refunds SET replaced_by = ?2 WHERE txid = ?1 AND replaced_by IS NULL",
            params![original.to_string(), replacement.txid.to_string()],
        )?;
        if updated != 1 {
            return Err(StoreError::Corrupt(format!(
                "refund {original} is unknown or already replaced"
            )));
        }
        tx.commit()?;
        Ok(())
    }

    /// Every refund recorded for order `id`, oldest first.
    pub fn refunds(&self, id: &OrderId) -> Result<Vec<Refund>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT txid, address, amount_sat, fee_sat, tx_hex, created_at, replaced_by
             FROM lsps1_refunds WHERE order_id = ?1 ORDER BY created_at, txid",
        )?;
        let rows = statement.query_map(params![id.as_str()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, Option<String>>(6)?,
            ))
        })?;
        let mut refunds = Vec::new();
        for row in rows {
            let (txid, address, amount, fee, tx_hex, created_at, replaced_by) = row?;
            let corrupt = || StoreError::Corrupt(format!("refund {txid} of order {id}"));
            refunds.push(Refund {
                txid: txid.parse().map_err(|_| corrupt())?,
                order_id: id.clone(),
                address,
                amount_sat: from_sql_u64(amount),
                fee_sat: from_sql_u64(fee),
                tx: deserialize_hex(&tx_hex).map_err(|_| corrupt())?,
                created_at: from_sql_u64(created_at),
                replaced_by: replaced_by
                    .map(|t| t.parse().map_err(|_| corrupt()))
                    .transpose()?,
            });
        }
        Ok(refunds)
    }
}

fn open_attempts(conn: &Connection, id: &OrderId) -> Result<u32, StoreError> {
    let count: i64 = conn.query_row(
        "SELECT COUNT(*) FROM lsps1_channel_opens WHERE order_id = ?1",
        params![id.as_str()],
        |row| row.get(0),
    )?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

fn insert_refund(conn: &Connection, refund: &Refund) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO lsps1_refunds (txid, order_id, address, amount_sat, fee_sat, tx_hex, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            refund.txid.to_string(),
            refund.order_id.as_str(),
            refund.address,
            to_sql_u64(refund.amount_sat),
            to_sql_u64(refund.fee_sat),
            serialize_hex(&refund.tx),
            to_sql_u64(refund.created_at),
        ],
    )?;
    Ok(())
}
