//! The lease book (`lsps1_leases`): every sold channel is a lease of `channel_expiry_blocks`
//! of inbound liquidity, from the block that confirms its funding to its close.
//!
//! States: PENDING (funded, the funding unconfirmed) -> ACTIVE (start height = the funding's
//! confirmation, end height = start + the blocks bought) -> ENDED (the chain reached the end
//! height, the channel still open) -> CLOSED; CLOSING while a close the LSP started is under
//! way. A reorg that takes the funding's confirmation away puts an ACTIVE lease back to
//! PENDING. CLOSED records who closed the channel (`client`, `lsp`, or `chain` when a
//! commitment simply confirmed) and how (`cooperative`, `force`), and whether it was before
//! the end. Every transition adds a row to the order's history.
//!
//! A lease is opened by the order service when the order's channel is funded, and at start
//! for any completed order without one (a crash between the two). The bLIP-51 order's
//! `channel.expires_at` is an estimate: at funding, now + blocks bought x 600 s; when the
//! lease starts, re-estimated from the confirming block the same way.

use std::str::FromStr;

use bitcoin::secp256k1::PublicKey;
use rusqlite::{params, OptionalExtension, Row};

use crate::lsps1::coupons::{from_sql_u64, to_sql_u64};
use crate::lsps1::order::{Order, OrderId};
use crate::lsps1::store::{decode, insert_note, set_channel_expiry, OrderBook, StoreError};

/// Seconds per block in the estimate of a lease's end time (`expires_at`): bLIP-51 leases
/// are counted in blocks of about ten minutes.
pub const SECS_PER_BLOCK: u64 = 600;

/// Where a lease stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    Pending,
    Active,
    Ended,
    Closing,
    Closed,
}

impl LeaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Pending => "PENDING",
            LeaseState::Active => "ACTIVE",
            LeaseState::Ended => "ENDED",
            LeaseState::Closing => "CLOSING",
            LeaseState::Closed => "CLOSED",
        }
    }

    pub fn parse(s: &str) -> Option<LeaseState> {
        [
            LeaseState::Pending,
            LeaseState::Active,
            LeaseState::Ended,
            LeaseState::Closing,
            LeaseState::Closed,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

/// Who closed a lease's channel, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseClose {
    /// `client`, `lsp` or `chain` (a commitment confirmed, nobody known to have asked).
    pub by: &'static str,
    /// `cooperative` or `force`.
    pub kind: &'static str,
}

/// One lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub order_id: OrderId,
    pub user_channel_id: u128,
    /// `txid:vout`.
    pub funding_outpoint: String,
    pub client_node_id: PublicKey,
    pub capacity_sat: u64,
    pub lsp_balance_sat: u64,
    /// Blocks bought.
    pub lease_blocks: u32,
    /// The fees paid for the lease.
    pub revenue_sat: u64,
    pub start_height: Option<u32>,
    pub end_height: Option<u32>,
    pub state: LeaseState,
    pub closed_by: Option<String>,
    pub close_kind: Option<String>,
    /// Unix seconds.
    pub closed_at: Option<u64>,
    /// The operator asked to keep the channel open past the end (`lsp-node lease-keep`).
    pub keep_open: bool,
    pub created_at: u64,
}

impl Lease {
    /// Blocks from `height` to the end (0 once reached); `None` before the lease started.
    pub fn blocks_left(&self, height: u32) -> Option<u32> {
        self.end_height.map(|end| end.saturating_sub(height))
    }
}

/// Which leases to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeaseFilter {
    pub state: Option<LeaseState>,
    /// Open leases whose end height is at most this.
    pub ending_by_height: Option<u32>,
    /// The leases of this client only.
    pub client: Option<PublicKey>,
}

const COLUMNS: &str = "order_id, user_channel_id, funding_outpoint, client_node_id, capacity_sat, \
    lsp_balance_sat, lease_blocks, revenue_sat, start_height, end_height, state, closed_by, \
    close_kind, closed_at, created_at, keep_open";

fn lease_row(row: &Row<'_>) -> rusqlite::Result<Result<Lease, StoreError>> {
    let order_id: String = row.get(0)?;
    let user_channel_id: String = row.get(1)?;
    let client: String = row.get(3)?;
    let state: String = row.get(10)?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("lease {order_id}: {what}"));
    let parsed = (|| {
        Ok(Lease {
            order_id: OrderId::parse(&order_id).map_err(|_| corrupt("order id"))?,
            user_channel_id: u128::from_str_radix(&user_channel_id, 16)
                .map_err(|_| corrupt("user_channel_id"))?,
            funding_outpoint: row.get(2).map_err(StoreError::from)?,
            client_node_id: PublicKey::from_str(&client).map_err(|_| corrupt("client"))?,
            capacity_sat: from_sql_u64(row.get(4).map_err(StoreError::from)?),
            lsp_balance_sat: from_sql_u64(row.get(5).map_err(StoreError::from)?),
            lease_blocks: row.get(6).map_err(StoreError::from)?,
            revenue_sat: from_sql_u64(row.get(7).map_err(StoreError::from)?),
            start_height: row.get(8).map_err(StoreError::from)?,
            end_height: row.get(9).map_err(StoreError::from)?,
            state: LeaseState::parse(&state).ok_or_else(|| corrupt("state"))?,
            closed_by: row.get(11).map_err(StoreError::from)?,
            close_kind: row.get(12).map_err(StoreError::from)?,
            closed_at: row
                .get::<_, Option<i64>>(13)
                .map_err(StoreError::from)?
                .map(from_sql_u64),
            created_at: from_sql_u64(row.get(14).map_err(StoreError::from)?),
            keep_open: row.get(15).map_err(StoreError::from)?,
        })
    })();
    Ok(parsed)
}

impl OrderBook {
    /// Opens the lease of completed `order`, PENDING (idempotent).
    pub fn open_lease(&self, order: &Order, user_channel_id: u128) -> Result<(), StoreError> {
        let (Some(channel), Some(client)) = (&order.channel, order.client_node_id) else {
            return Ok(());
        };
        let now = self.clock().now_unix_secs();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let params = &order.params;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO lsps1_leases (order_id, user_channel_id, funding_outpoint,
                client_node_id, capacity_sat, lsp_balance_sat, lease_blocks, revenue_sat, state,
                created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'PENDING', ?9)",
            params![
                order.id.as_str(),
                format!("{user_channel_id:032x}"),
                channel.funding_outpoint,
                client.to_string(),
                to_sql_u64(params.lsp_balance_sat + params.client_balance_sat),
                to_sql_u64(params.lsp_balance_sat),
                params.channel_expiry_blocks,
                to_sql_u64(order.price.fee_total_sat),
                to_sql_u64(now),
            ],
        )?;
        if inserted > 0 {
            let reason = format!(
                "lease of {} blocks opened; it starts when the funding confirms",
                params.channel_expiry_blocks
            );
            insert_note(&tx, &order.id, now, "lease_pending", &reason)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Completed orders without a lease (a crash between the funding and the lease); extension
    /// orders have none of their own.
    pub fn completed_orders_without_lease(&self) -> Result<Vec<Order>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT record FROM lsps1_orders o
             WHERE order_state = 'COMPLETED'
               AND NOT EXISTS (SELECT 1 FROM lsps1_leases l WHERE l.order_id = o.id)
               AND NOT EXISTS (SELECT 1 FROM lsps1_lease_extensions e WHERE e.order_id = o.id)",
        )?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        rows.map(|record| decode(&record?)).collect()
    }

    /// Follows the funding of order `id`'s lease: confirmed at `height` starts it (or moves
    /// its start, after a reorg), `None` puts a started lease back to PENDING.
    pub fn set_lease_start(&self, id: &OrderId, height: Option<u32>) -> Result<(), StoreError> {
        let now = self.clock().now_unix_secs();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let changed = match height {
            Some(height) => tx.execute(
                "UPDATE lsps1_leases SET start_height = ?2, end_height = ?2 + lease_blocks,
                    state = 'ACTIVE'
                 WHERE order_id = ?1 AND state IN ('PENDING', 'ACTIVE')
                   AND start_height IS NOT ?2",
                params![id.as_str(), height],
            )?,
            None => tx.execute(
                "UPDATE lsps1_leases SET start_height = NULL, end_height = NULL, state = 'PENDING'
                 WHERE order_id = ?1 AND state = 'ACTIVE'",
                params![id.as_str()],
            )?,
        };
        if changed > 0 {
            if height.is_some() {
                // Estimated from the start: blocks of about ten minutes from now, when the
                // confirming block is seen.
                let lease_blocks: u32 = tx.query_row(
                    "SELECT lease_blocks FROM lsps1_leases WHERE order_id = ?1",
                    params![id.as_str()],
                    |row| row.get(0),
                )?;
                let expires_at = now.saturating_add(u64::from(lease_blocks) * SECS_PER_BLOCK);
                set_channel_expiry(&tx, id, expires_at)?;
            }
            let reason = match height {
                Some(height) => format!("lease started: funding confirmed at height {height}"),
                None => "lease back to pending: the funding's confirmation was reorganised away"
                    .to_string(),
            };
            let event = if height.is_some() {
                "lease_active"
            } else {
                "lease_pending"
            };
            insert_note(&tx, id, now, event, &reason)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Ends every ACTIVE lease whose end height `height` has reached; returns their orders.
    pub fn end_leases(&self, height: u32) -> Result<Vec<OrderId>, StoreError> {
        let now = self.clock().now_unix_secs();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let ended: Vec<String> = {
            let mut statement = tx.prepare(
                "SELECT order_id FROM lsps1_leases
                 WHERE state = 'ACTIVE' AND end_height <= ?1",
            )?;
            let rows = statement.query_map(params![height], |row| row.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut ids = Vec::with_capacity(ended.len());
        for id in ended {
            let id = OrderId::parse(&id).map_err(|_| StoreError::Corrupt(id))?;
            tx.execute(
                "UPDATE lsps1_leases SET state = 'ENDED' WHERE order_id = ?1",
                params![id.as_str()],
            )?;
            let reason = format!("lease ended at height {height}: the channel may be closed");
            insert_note(&tx, &id, now, "lease_ended", &reason)?;
            ids.push(id);
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Marks order `id`'s lease CLOSING (a close the LSP started, for `reason`); false if it
    /// was closing or closed already.
    pub fn mark_lease_closing(&self, id: &OrderId, reason: &str) -> Result<bool, StoreError> {
        let now = self.clock().now_unix_secs();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE lsps1_leases SET state = 'CLOSING'
             WHERE order_id = ?1 AND state IN ('PENDING', 'ACTIVE', 'ENDED')",
            params![id.as_str()],
        )?;
        if changed > 0 {
            insert_note(&tx, id, now, "lease_closing", reason)?;
        }
        tx.commit()?;
        Ok(changed > 0)
    }

    /// Keeps order `id`'s lease open past its end whatever `at_end` says; false if it is
    /// closing or closed.
    pub fn keep_lease(&self, id: &OrderId) -> Result<bool, StoreError> {
        let now = self.clock().now_unix_secs();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE lsps1_leases SET keep_open = 1
             WHERE order_id = ?1 AND state IN ('PENDING', 'ACTIVE', 'ENDED')",
            params![id.as_str()],
        )?;
        if changed > 0 {
            let reason = "the operator keeps the channel open past the lease's end";
            insert_note(&tx, id, now, "lease_kept", reason)?;
        }
        tx.commit()?;
        Ok(changed > 0)
    }

    /// Records that the channel of the lease with `user_channel_id` closed. Returns the lease
    /// as it was, if there is one that was not closed yet.
    pub fn close_lease(
        &self,
        user_channel_id: u128,
        close: LeaseClose,
    ) -> Result<Option<Lease>, StoreError> {
        let now = self.clock().now_unix_secs();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let lease = tx
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM lsps1_leases
                     WHERE user_channel_id = ?1 AND state != 'CLOSED'"
                ),
                params![format!("{user_channel_id:032x}")],
                lease_row,
            )
            .optional()?
            .transpose()?;
        let Some(lease) = lease else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE lsps1_leases SET state = 'CLOSED', closed_by = ?2, close_kind = ?3,
                closed_at = ?4
             WHERE order_id = ?1",
            params![
                lease.order_id.as_str(),
                close.by,
                close.kind,
                to_sql_u64(now)
            ],
        )?;
        let early = match lease.state {
            LeaseState::Ended | LeaseState::Closing => "after the lease ended",
            _ => "before the lease ended",
        };
        let reason = format!("channel closed by {} ({}), {early}", close.by, close.kind);
        insert_note(&tx, &lease.order_id, now, "lease_closed", &reason)?;
        tx.commit()?;
        Ok(Some(lease))
    }

    /// The lease of the channel with `user_channel_id`, if it is a sold one.
    pub fn lease_of_channel(&self, user_channel_id: u128) -> Result<Option<Lease>, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM lsps1_leases WHERE user_channel_id = ?1"),
                params![format!("{user_channel_id:032x}")],
                lease_row,
            )
            .optional()?
            .transpose()
    }

    /// The lease of order `id`, if its channel was funded.
    pub fn lease(&self, id: &OrderId) -> Result<Option<Lease>, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM lsps1_leases WHERE order_id = ?1"),
                params![id.as_str()],
                lease_row,
            )
            .optional()?
            .transpose()
    }

    /// Leases matching `filter`, those ending soonest first (not started ones last).
    pub fn leases(&self, filter: &LeaseFilter) -> Result<Vec<Lease>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM lsps1_leases
             WHERE (?1 IS NULL OR state = ?1)
               AND (?2 IS NULL OR (state != 'CLOSED' AND end_height <= ?2))
               AND (?3 IS NULL OR client_node_id = ?3)
             ORDER BY end_height IS NULL, end_height, created_at"
        ))?;
        let rows = statement.query_map(
            params![
                filter.state.map(LeaseState::as_str),
                filter.ending_by_height,
                filter.client.map(|c| c.to_string())
            ],
            lease_row,
        )?;
        rows.map(|row| row?).collect()
    }
}
