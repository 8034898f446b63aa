//! Lease extensions (LSPS7, bLIP-57 draft) in the order book.
//!
//! An extension order is an ordinary order (its payment, refunds, cancel and history are the
//! order machinery's) whose [`Order::extension`] names the lease it extends and the blocks it
//! buys; `lsps1_lease_extensions` ties it to the lease. The lease's end height moves only when
//! [`OrderBook::apply_extension`] records the paid extension, in one transaction: the order
//! becomes COMPLETED ([`OrderEvent::Extended`], bolt11 PAID), the blocks are added to the
//! lease (`lease_blocks` and `end_height`, so a reorg that restarts the lease keeps them; an
//! ENDED lease whose new end lies ahead is ACTIVE again), the fee is added to its revenue, and
//! the leased order's `channel.expires_at` is estimated again. A lease that is closing or
//! closed by then takes no extension: nothing is written and the order is failed (refunded).
//! The held HTLC is claimed after that commit; [`OrderBook::extensions_awaiting_claim`] finds
//! those a crash left unclaimed.

use rusqlite::{params, OptionalExtension};

use crate::lsps1::coupons::{from_sql_u64, to_sql_u64};
use crate::lsps1::leases::{LeaseState, SECS_PER_BLOCK};
use crate::lsps1::new_orders::Admission;
use crate::lsps1::order::{ChannelInfo, Order, OrderEvent, OrderId};
use crate::lsps1::store::{
    apply_in, insert_note, load_order, set_channel_expiry, OrderBook, StoreError,
};

/// One extension order as the lease book sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub order_id: OrderId,
    pub lease_order_id: OrderId,
    pub blocks: u32,
    /// Unix seconds at which the blocks were added to the lease.
    pub applied_at: Option<u64>,
    /// The lease's end height once this extension was added.
    pub end_height_after: Option<u32>,
}

/// Why a paid extension was not added to its lease.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionRefused {
    #[error("the leased channel is {0} and can no longer be extended")]
    LeaseOver(&'static str),
    #[error("order {0} is not an extension order")]
    NotAnExtension(OrderId),
}

const COLUMNS: &str = "order_id, lease_order_id, blocks, applied_at, end_height_after";

/// One row as an [`Extension`]; the inner error is a row that does not parse.
fn extension_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Extension, StoreError>> {
    let order_id: String = row.get(0)?;
    let lease_order_id: String = row.get(1)?;
    let parse = |id: String| OrderId::parse(&id).map_err(|_| StoreError::Corrupt(id));
    let (blocks, applied_at, end_height_after) =
        (row.get(2)?, row.get::<_, Option<i64>>(3)?, row.get(4)?);
    Ok((|| {
        Ok(Extension {
            order_id: parse(order_id)?,
            lease_order_id: parse(lease_order_id)?,
            blocks,
            applied_at: applied_at.map(from_sql_u64),
            end_height_after,
        })
    })())
}

impl OrderBook {
    /// Stores a new extension order (see [`OrderBook::create_order`]) with its row here, all
    /// or nothing; refused when its lease is no longer open.
    pub fn create_extension_order(
        &self,
        order: &Order,
        admission: &Admission,
    ) -> Result<(), StoreError> {
        let terms = order
            .extension
            .clone()
            .ok_or_else(|| StoreError::Corrupt(format!("{} is not an extension", order.id)))?;
        let id = order.id.clone();
        self.create_order_with(order, admission, move |tx| {
            let state: Option<String> = tx
                .query_row(
                    "SELECT state FROM lsps1_leases WHERE order_id = ?1",
                    params![terms.lease_order_id.as_str()],
                    |row| row.get(0),
                )
                .optional()?;
            match state.as_deref().and_then(LeaseState::parse) {
                Some(LeaseState::Active | LeaseState::Ended | LeaseState::Pending) => {}
                _ => return Err(StoreError::LeaseNotOpen(terms.lease_order_id.clone())),
            }
            tx.execute(
                "INSERT INTO lsps1_lease_extensions (order_id, lease_order_id, blocks)
                 VALUES (?1, ?2, ?3)",
                params![id.as_str(), terms.lease_order_id.as_str(), terms.blocks],
            )?;
            Ok(())
        })
    }

    /// Extension order `id`, if it is one.
    pub fn extension(&self, id: &OrderId) -> Result<Option<Extension>, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM lsps1_lease_extensions WHERE order_id = ?1"),
                params![id.as_str()],
                extension_row,
            )
            .optional()?
            .transpose()
    }

    /// The extensions added to the lease of order `lease`, oldest first.
    pub fn applied_extensions(&self, lease: &OrderId) -> Result<Vec<Extension>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM lsps1_lease_extensions
             WHERE lease_order_id = ?1 AND applied_at IS NOT NULL
             ORDER BY applied_at, order_id"
        ))?;
        let rows = statement.query_map(params![lease.as_str()], extension_row)?;
        rows.map(|row| row?).collect()
    }

    /// Adds paid extension order `id`'s blocks to its lease at chain height `height` and
    /// completes the order (see the module doc). The inner error says why the lease took no
    /// extension; nothing was written then.
    pub fn apply_extension(
        &self,
        id: &OrderId,
        height: u32,
    ) -> Result<Result<Order, ExtensionRefused>, StoreError> {
        let now = self.clock().now_unix_secs();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let order = load_order(&tx, id)?.ok_or_else(|| StoreError::OrderNotFound(id.clone()))?;
        let Some(terms) = order.extension.clone() else {
            return Ok(Err(ExtensionRefused::NotAnExtension(id.clone())));
        };
        let lease_id = &terms.lease_order_id;
        let (state, end_height, lease_blocks): (String, Option<u32>, u32) = tx.query_row(
            "SELECT state, end_height, lease_blocks FROM lsps1_leases WHERE order_id = ?1",
            params![lease_id.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        let state = LeaseState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("lease {lease_id}: state {state}")))?;
        if matches!(state, LeaseState::Closing | LeaseState::Closed) {
            return Ok(Err(ExtensionRefused::LeaseOver(state.as_str())));
        }
        let new_end = end_height.map(|end| end.saturating_add(terms.blocks));
        let new_state = match (state, new_end) {
            (LeaseState::Ended, Some(end)) if end > height => LeaseState::Active,
            _ => state,
        };
        tx.execute(
            "UPDATE lsps1_leases SET lease_blocks = lease_blocks + ?2,
                end_height = end_height + ?2, revenue_sat = revenue_sat + ?3, state = ?4
             WHERE order_id = ?1",
            params![
                lease_id.as_str(),
                terms.blocks,
                to_sql_u64(order.price.fee_total_sat),
                new_state.as_str()
            ],
        )?;
        let blocks_left = match new_end {
            Some(end) => end.saturating_sub(height),
            None => lease_blocks.saturating_add(terms.blocks),
        };
        let expires_at = now.saturating_add(u64::from(blocks_left) * SECS_PER_BLOCK);
        set_channel_expiry(&tx, lease_id, expires_at)?;
        let leased = load_order(&tx, lease_id)?
            .and_then(|o| o.channel)
            .ok_or_else(|| StoreError::Corrupt(format!("lease {lease_id} has no channel")))?;
        let channel = ChannelInfo {
            expires_at,
            ..leased
        };
        let ends = new_end.map_or_else(
            || "when the funding confirms".to_string(),
            |end| format!("at height {end}"),
        );
        let reason = format!("lease extended by {} blocks: it ends {ends}", terms.blocks);
        let completed = apply_in(&tx, id, &OrderEvent::Extended(channel), &reason, now)?;
        tx.execute(
            "UPDATE lsps1_lease_extensions SET applied_at = ?2, end_height_after = ?3
             WHERE order_id = ?1",
            params![id.as_str(), to_sql_u64(now), new_end],
        )?;
        let note = format!("{reason} (extension order {id})");
        insert_note(&tx, lease_id, now, "lease_extended", &note)?;
        if new_state != state {
            let note =
                format!("lease active again: the extension moved its end past height {height}");
            insert_note(&tx, lease_id, now, "lease_active", &note)?;
        }
        tx.commit()?;
        Ok(Ok(completed))
    }

    /// Extension orders recorded with their HTLC still held: to be claimed (again).
    pub fn extensions_awaiting_claim(&self) -> Result<Vec<OrderId>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT e.order_id FROM lsps1_lease_extensions e
             JOIN lsps1_bolt11_payments p ON p.order_id = e.order_id
             WHERE e.applied_at IS NOT NULL AND p.held_at IS NOT NULL
               AND p.claimed_at IS NULL AND p.failed_back_at IS NULL",
        )?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        rows.map(|id| {
            let id = id?;
            OrderId::parse(&id).map_err(|_| StoreError::Corrupt(id))
        })
        .collect()
    }
}
