//! Which of the wallet's revealed scripts a sync asks the chain source about.
//!
//! BDK's incremental sync queries every script the wallet ever revealed, so its cost would
//! grow with every address handed out (one per on-chain order, and order addresses cost a
//! client nothing). A caller that knows an address can no longer receive money for anything
//! open (an order's address after its watch window) takes it off the watch list with
//! [`Wallet::stop_watching`]; [`Wallet::watch_again`] puts it back, and the next sync reads its
//! whole history. The list lives in the wallet's own table, `wallet_unwatched_scripts`, in the
//! node database next to BDK's `bdk_*` tables, written before the call returns.
//!
//! Unwatching never loses track of coins already received: a sync still follows every unspent
//! output and every unconfirmed transaction of the wallet, whatever script they pay.

use std::collections::HashSet;

use bdk_wallet::chain::spk_client::SyncRequest;
use bdk_wallet::KeychainKind;
use bitcoin::ScriptBuf;
use rusqlite::{params, Connection};

use super::{Wallet, WalletError, WalletState};

const TABLE: &str = "CREATE TABLE IF NOT EXISTS wallet_unwatched_scripts (
    script BLOB PRIMARY KEY NOT NULL,
    since INTEGER NOT NULL
) WITHOUT ROWID";

/// Creates the table if needed and reads the scripts taken off the watch list.
pub(super) fn load_unwatched(conn: &Connection) -> rusqlite::Result<HashSet<ScriptBuf>> {
    conn.execute(TABLE, [])?;
    let mut statement = conn.prepare("SELECT script FROM wallet_unwatched_scripts")?;
    let rows = statement.query_map([], |row| row.get::<_, Vec<u8>>(0))?;
    rows.map(|script| script.map(ScriptBuf::from_bytes))
        .collect()
}

impl Wallet {
    /// Takes `script` off what syncs ask the chain source about (persisted before this
    /// returns). Money already received on it stays tracked; new payments to it are not seen
    /// until [`Wallet::watch_again`].
    pub fn stop_watching(&self, script: &ScriptBuf) -> Result<(), WalletError> {
        let mut state = self.lock();
        if state.unwatched.contains(script) {
            return Ok(());
        }
        state
            .conn
            .execute(
                "INSERT OR IGNORE INTO wallet_unwatched_scripts (script, since) VALUES (?1, ?2)",
                params![script.as_bytes(), super::unix_now() as i64],
            )
            .map_err(|e| self.persist_error(e))?;
        state.unwatched.insert(script.clone());
        Ok(())
    }

    /// Puts `script` back on the watch list; the next sync reads its whole history.
    pub fn watch_again(&self, script: &ScriptBuf) -> Result<(), WalletError> {
        let mut state = self.lock();
        state
            .conn
            .execute(
                "DELETE FROM wallet_unwatched_scripts WHERE script = ?1",
                params![script.as_bytes()],
            )
            .map_err(|e| self.persist_error(e))?;
        state.unwatched.remove(script);
        Ok(())
    }

    /// Whether syncs ask about `script` (false for scripts taken off the list, and for
    /// scripts the wallet never revealed).
    pub fn is_watched(&self, script: &ScriptBuf) -> bool {
        let state = self.lock();
        !state.unwatched.contains(script) && state.wallet.is_mine(script.clone())
    }

    /// How many revealed scripts a sync asks the chain source about.
    pub fn watched_script_count(&self) -> usize {
        let state = self.lock();
        state
            .wallet
            .spk_index()
            .revealed_spks(..)
            .filter(|(_, spk)| !state.unwatched.contains(spk))
            .count()
    }

    fn persist_error(&self, e: rusqlite::Error) -> WalletError {
        WalletError::Persist {
            path: self.db_path.clone(),
            detail: e.to_string(),
        }
    }
}

/// An incremental sync request: the watched revealed scripts (with the unconfirmed
/// transactions expected on them, so a replaced incoming payment is noticed), every
/// unconfirmed wallet transaction and every unspent output.
pub(super) fn sync_request(state: &WalletState) -> SyncRequest<(KeychainKind, u32)> {
    let wallet = &state.wallet;
    let watched = |spk: &ScriptBuf| !state.unwatched.contains(spk);
    let tip = wallet.latest_checkpoint();
    let unconfirmed = wallet
        .transactions()
        .filter(|t| !t.chain_position.is_confirmed())
        .map(|t| t.tx_node.txid)
        .collect::<Vec<_>>();
    let unspent = wallet
        .list_unspent()
        .map(|u| u.outpoint)
        .collect::<Vec<_>>();
    let expected = wallet
        .tx_graph()
        .list_expected_spk_txids(wallet.local_chain(), tip.block_id(), wallet.spk_index(), ..)
        .filter(|(spk, _)| watched(spk))
        .collect::<Vec<_>>();
    SyncRequest::builder()
        .chain_tip(tip)
        .spks_with_indexes(
            wallet
                .spk_index()
                .revealed_spks(..)
                .filter(|(_, spk)| watched(spk)),
        )
        .expected_spk_txids(expected)
        .txids(unconfirmed)
        .outpoints(unspent)
        .build()
}
