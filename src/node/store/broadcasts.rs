//! The `broadcasts` table: every transaction of ours that must reach the chain, kept from the
//! moment it is signed until the chain settles it.
//!
//! LDK rebroadcasts what it owns (commitments, HTLC claims, sweeps), but not a channel's
//! funding transaction, and nothing rebroadcasts a wallet payment (a refund). A row here is
//! what makes the broadcaster keep sending such a transaction after a failed post, an eviction
//! from the mempool, a reorg or a restart; and it is what stops a wallet sync from counting a
//! signed but not yet broadcast transaction as evicted and spending its inputs again.

use bitcoin::consensus::encode::{deserialize_hex, serialize_hex};
use bitcoin::{Transaction, Txid};
use rusqlite::{params, OptionalExtension};

use super::{secs_to_sql, Store, StoreError};

/// Where a kept transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastState {
    /// Signed, to be broadcast later (a funding transaction waiting for `funding_signed`).
    Signed,
    /// To be posted: the chain source does not have it (yet, or any more).
    Sending,
    /// The chain source has it: in its mempool, or in a block not yet deep enough to be final.
    Seen,
    /// Confirmed at the final depth; nothing more to do.
    Final,
    /// An input is spent by another confirmed transaction: it can never confirm.
    Conflicted,
    /// Will never be broadcast (its channel was never funded); its inputs went back.
    Abandoned,
}

impl BroadcastState {
    /// The state's name, as stored and as shown to the operator.
    pub fn as_str(self) -> &'static str {
        match self {
            BroadcastState::Signed => "signed",
            BroadcastState::Sending => "sending",
            BroadcastState::Seen => "seen",
            BroadcastState::Final => "final",
            BroadcastState::Conflicted => "conflicted",
            BroadcastState::Abandoned => "abandoned",
        }
    }

    fn from_sql(text: &str) -> Option<BroadcastState> {
        Some(match text {
            "signed" => BroadcastState::Signed,
            "sending" => BroadcastState::Sending,
            "seen" => BroadcastState::Seen,
            "final" => BroadcastState::Final,
            "conflicted" => BroadcastState::Conflicted,
            "abandoned" => BroadcastState::Abandoned,
            _ => return None,
        })
    }

    /// Whether the transaction may still confirm, so its inputs stay spent in the wallet.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            BroadcastState::Signed | BroadcastState::Sending | BroadcastState::Seen
        )
    }
}

/// One kept transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptBroadcast {
    pub txid: Txid,
    pub tx: Transaction,
    pub state: BroadcastState,
    /// Unix seconds it was first recorded.
    pub created_at: u64,
    /// Posts that the chain source refused or did not answer.
    pub failed_posts: u32,
    pub last_error: Option<String>,
    /// The height of the block holding it, when last seen in one.
    pub confirmed_height: Option<u32>,
    /// Unix seconds of its last update while it could still confirm: for a settled one
    /// (final, conflicted, abandoned), when it was found so.
    pub updated_at: u64,
}

/// The migration creating the table (appended to the store's migrations).
pub(super) const MIGRATION: &str = "CREATE TABLE broadcasts (
        txid TEXT PRIMARY KEY NOT NULL,
        raw_tx TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN
            ('signed', 'sending', 'seen', 'final', 'conflicted', 'abandoned')),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        failed_posts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        confirmed_height INTEGER
    );
    CREATE INDEX broadcasts_open ON broadcasts (state)
        WHERE state IN ('signed', 'sending', 'seen');";

const COLUMNS: &str =
    "SELECT txid, raw_tx, state, created_at, failed_posts, last_error, confirmed_height,
            updated_at
     FROM broadcasts";

impl Store {
    /// Records `tx` in `state` unless it is already kept; a kept one moves from `Signed` to
    /// `Sending` when `state` is `Sending` (LDK broadcasting a funding transaction we signed).
    /// Returns whether the transaction should be posted now.
    pub fn keep_broadcast(
        &self,
        tx: &Transaction,
        state: BroadcastState,
        now: u64,
    ) -> Result<bool, StoreError> {
        let txid = tx.compute_txid().to_string();
        let now = secs_to_sql(now)?;
        let conn = self.conn();
        conn.execute(
            "INSERT INTO broadcasts (txid, raw_tx, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?4)
             ON CONFLICT (txid) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
             WHERE broadcasts.state = 'signed' AND excluded.state = 'sending'",
            params![txid, serialize_hex(tx), state.as_str(), now],
        )
        .map_err(|e| self.sqlite(e))?;
        let current: String = conn
            .query_row(
                "SELECT state FROM broadcasts WHERE txid = ?1",
                params![txid],
                |row| row.get(0),
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(state == BroadcastState::Sending && current != "final" && current != "abandoned")
    }

    /// Moves a kept transaction that may still confirm to `state` (a settled one stays as it
    /// is); `confirmed_height` and `error` are recorded when given. A failed post (`error` with
    /// state `Sending`) is counted.
    pub fn update_broadcast(
        &self,
        txid: &Txid,
        state: BroadcastState,
        confirmed_height: Option<u32>,
        error: Option<&str>,
        now: u64,
    ) -> Result<(), StoreError> {
        let failed = i64::from(error.is_some() && state == BroadcastState::Sending);
        self.conn()
            .execute(
                "UPDATE broadcasts SET state = ?2, updated_at = ?3,
                     confirmed_height = CASE WHEN ?2 IN ('sending', 'seen') THEN ?4
                         ELSE COALESCE(?4, confirmed_height) END,
                     last_error = COALESCE(?5, last_error),
                     failed_posts = failed_posts + ?6
                 WHERE txid = ?1 AND state IN ('signed', 'sending', 'seen')",
                params![
                    txid.to_string(),
                    state.as_str(),
                    secs_to_sql(now)?,
                    confirmed_height,
                    error,
                    failed
                ],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(())
    }

    /// The kept transaction `txid`, if any.
    pub fn kept_broadcast(&self, txid: &Txid) -> Result<Option<KeptBroadcast>, StoreError> {
        let raw = self
            .conn()
            .query_row(
                &format!("{COLUMNS} WHERE txid = ?1"),
                params![txid.to_string()],
                RawKept::from_row,
            )
            .optional()
            .map_err(|e| self.sqlite(e))?;
        raw.map(|r| r.into_kept(self)).transpose()
    }

    /// Every kept transaction that may still confirm (signed, sending or seen), oldest first.
    pub fn open_broadcasts(&self) -> Result<Vec<KeptBroadcast>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "{COLUMNS} WHERE state IN ('signed', 'sending', 'seen') ORDER BY created_at, txid"
            ))
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([], RawKept::from_row)
            .map_err(|e| self.sqlite(e))?;
        let mut kept = Vec::new();
        for row in rows {
            kept.push(row.map_err(|e| self.sqlite(e))?.into_kept(self)?);
        }
        Ok(kept)
    }
}

struct RawKept {
    txid: String,
    raw_tx: String,
    state: String,
    created_at: i64,
    failed_posts: i64,
    last_error: Option<String>,
    confirmed_height: Option<u32>,
    updated_at: i64,
}

impl RawKept {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawKept> {
        Ok(RawKept {
            txid: row.get(0)?,
            raw_tx: row.get(1)?,
            state: row.get(2)?,
            created_at: row.get(3)?,
            failed_posts: row.get(4)?,
            last_error: row.get(5)?,
            confirmed_height: row.get(6)?,
            updated_at: row.get(7)?,
        })
    }

    fn into_kept(self, store: &Store) -> Result<KeptBroadcast, StoreError> {
        let tx: Transaction = deserialize_hex(&self.raw_tx)
            .map_err(|e| store.corrupt("kept transaction", format!("{}: {e}", self.txid)))?;
        let state = BroadcastState::from_sql(&self.state)
            .ok_or_else(|| store.corrupt("broadcast state", self.state.clone()))?;
        Ok(KeptBroadcast {
            txid: tx.compute_txid(),
            tx,
            state,
            created_at: u64::try_from(self.created_at).unwrap_or(0),
            failed_posts: u32::try_from(self.failed_posts).unwrap_or(u32::MAX),
            last_error: self.last_error,
            confirmed_height: self.confirmed_height,
            updated_at: u64::try_from(self.updated_at).unwrap_or(0),
        })
    }
}
