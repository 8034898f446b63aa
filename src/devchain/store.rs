//! Keeping a devchain on disk: one SQLite file, `DIR/devchain.sqlite`.
//!
//! Tables:
//! - `devchain_meta (key, value)`: `format_version` ([`FORMAT_VERSION`]; another version is
//!   refused, never converted) and `genesis_hash` (the regtest genesis block's hash).
//! - `devchain_blocks (seq, hash, height, in_best_chain, raw)`: every block ever mined, stale
//!   ones included, consensus-encoded, numbered by `seq` in the order they were added (parents
//!   before children).
//! - `devchain_mempool (arrival, txid, raw)`: the mempool, consensus-encoded, in arrival order.
//!
//! The UTXO set and the Esplora indexes are not stored: they are rebuilt from the blocks.
//!
//! # Writing
//! [`Store::save`] compares the chain with what the file holds (blocks added, best-chain flags
//! flipped by an invalidation or a reorg, mempool entries added or removed) and writes the
//! difference in one transaction. The devchain calls it under the chain lock after every change
//! (mined block, accepted transaction, RBF eviction, invalidation, reorg) and before answering;
//! the file is in WAL mode with `synchronous=FULL`, so a change that was answered survives a
//! SIGKILL or a power cut. When a write fails the caller gets the error instead of an answer,
//! and the next save writes the whole difference again.
//!
//! A new chain is written to `devchain.sqlite.new` (rollback journal, no WAL) and renamed into
//! place once complete, so a crash while creating it leaves no half-made `devchain.sqlite`.
//!
//! # Loading
//! [`open`] re-validates instead of trusting the file: SQLite's `quick_check`, the format
//! version and genesis hash, then every block decoded, its hash compared with the stored one,
//! and its proof of work, merkle root and link to its parent checked
//! ([`ChainState::restore_block`]); best-chain blocks are connected through the same path as
//! mined ones. The stored mempool is then offered again, in arrival order, through
//! [`ChainState::accept`]; a transaction that no longer validates is dropped (logged at
//! `debug`). Anything damaged is a [`DevchainError`] naming the file, never a fresh chain.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use bitcoin::blockdata::constants::genesis_block;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::{Block, BlockHash, Network, Transaction, Txid};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};

use super::chain::ChainState;
use super::DevchainError;

/// The file's name inside the devchain's directory.
pub const FILE_NAME: &str = "devchain.sqlite";

/// Version of the file layout this build reads and writes.
pub const FORMAT_VERSION: i64 = 1;

const SCHEMA: &str = "
    CREATE TABLE devchain_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
    CREATE TABLE devchain_blocks (
        seq INTEGER PRIMARY KEY NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        height INTEGER NOT NULL,
        in_best_chain INTEGER NOT NULL,
        raw BLOB NOT NULL
    );
    CREATE TABLE devchain_mempool (
        arrival INTEGER PRIMARY KEY NOT NULL,
        txid TEXT NOT NULL,
        raw BLOB NOT NULL
    );";

/// The open file, and what it holds (so [`Store::save`] writes only the difference).
pub(crate) struct Store {
    conn: Connection,
    path: PathBuf,
    saved: Saved,
}

/// What the file holds, as far as saving needs to know.
#[derive(Default)]
struct Saved {
    /// How many of [`ChainState::blocks_in_order`] are stored.
    blocks: usize,
    best_chain: Vec<BlockHash>,
    mempool: BTreeMap<u64, Txid>,
}

/// Loads the chain kept in `dir`, or, when `dir` holds no devchain file, creates `dir` and a
/// fresh chain (genesis plus the premine, timestamped before `now`) and stores it.
pub(crate) fn open(dir: &Path, now: u32) -> Result<(ChainState, Store), DevchainError> {
    let path = dir.join(FILE_NAME);
    match path.try_exists() {
        Ok(true) => load(path),
        Ok(false) => create(dir, path, now),
        Err(err) => Err(unreadable(&path, err)),
    }
}

impl Store {
    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes whatever changed in `chain` since the last save, in one transaction.
    pub(crate) fn save(&mut self, chain: &ChainState) -> Result<(), DevchainError> {
        let order = chain.blocks_in_order();
        let best = chain.best_chain();
        let fork = common_prefix(&self.saved.best_chain, best);
        let mempool = chain.mempool_arrivals();
        let unchanged = order.len() == self.saved.blocks
            && fork == best.len()
            && fork == self.saved.best_chain.len()
            && *mempool == self.saved.mempool;
        if unchanged {
            return Ok(());
        }
        self.write(chain, fork)
            .map_err(|err| DevchainError::StoreWrite {
                path: self.path.clone(),
                reason: err.to_string(),
            })?;
        self.saved.blocks = order.len();
        self.saved.best_chain.truncate(fork);
        self.saved.best_chain.extend_from_slice(&best[fork..]);
        self.saved.mempool = mempool.clone();
        Ok(())
    }

    fn write(&mut self, chain: &ChainState, fork: usize) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert_block = tx.prepare(
                "INSERT INTO devchain_blocks (seq, hash, height, in_best_chain, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (seq, hash) in chain
                .blocks_in_order()
                .iter()
                .enumerate()
                .skip(self.saved.blocks)
            {
                let entry = chain.block(hash).expect("ordered blocks are stored");
                insert_block.execute(params![
                    seq as i64,
                    hash.to_string(),
                    entry.height,
                    entry.in_best_chain,
                    serialize(&entry.block),
                ])?;
            }
            let mut set_best =
                tx.prepare("UPDATE devchain_blocks SET in_best_chain = ?2 WHERE hash = ?1")?;
            for hash in &self.saved.best_chain[fork..] {
                set_best.execute(params![hash.to_string(), false])?;
            }
            for hash in &chain.best_chain()[fork..] {
                set_best.execute(params![hash.to_string(), true])?;
            }
            let current = chain.mempool_arrivals();
            let mut delete = tx.prepare("DELETE FROM devchain_mempool WHERE arrival = ?1")?;
            for (arrival, txid) in &self.saved.mempool {
                if current.get(arrival) != Some(txid) {
                    delete.execute(params![*arrival as i64])?;
                }
            }
            let mut insert_tx = tx
                .prepare("INSERT INTO devchain_mempool (arrival, txid, raw) VALUES (?1, ?2, ?3)")?;
            for (arrival, txid) in current {
                if self.saved.mempool.get(arrival) != Some(txid) {
                    let raw = serialize(chain.mempool_tx(txid).expect("mempool txids are known"));
                    insert_tx.execute(params![*arrival as i64, txid.to_string(), raw])?;
                }
            }
        }
        tx.commit()
    }
}

/// Length of the common prefix of two chains of block hashes. One hash at one height implies
/// the same ancestors, so it is found from the top down, in as many steps as blocks differ.
fn common_prefix(a: &[BlockHash], b: &[BlockHash]) -> usize {
    let mut len = a.len().min(b.len());
    while len > 0 && a[len - 1] != b[len - 1] {
        len -= 1;
    }
    len
}

/// Opens `path` with the durability settings: WAL (when `wal`) and `synchronous=FULL`.
fn connect(path: &Path, wal: bool) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    let mode: String = conn.query_row(
        if wal {
            "PRAGMA journal_mode = WAL"
        } else {
            "PRAGMA journal_mode = DELETE"
        },
        [],
        |row| row.get(0),
    )?;
    if wal && !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "the file system refused WAL mode (journal mode {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn create(dir: &Path, path: PathBuf, now: u32) -> Result<(ChainState, Store), DevchainError> {
    let partial = dir.join(format!("{FILE_NAME}.new"));
    let write_error = |reason: String| DevchainError::StoreWrite {
        path: path.clone(),
        reason,
    };
    fs::create_dir_all(dir).map_err(|err| write_error(err.to_string()))?;
    // Left over by a crash while creating: it never became the chain, so it is discarded.
    for leftover in [
        partial.clone(),
        dir.join(format!("{FILE_NAME}.new-journal")),
    ] {
        match fs::remove_file(&leftover) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(write_error(err.to_string()))
            }
            _ => {}
        }
    }
    let chain = ChainState::new(now);
    let initialise = || -> rusqlite::Result<()> {
        let conn = connect(&partial, false)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute(
            "INSERT INTO devchain_meta (key, value) VALUES ('format_version', ?1), ('genesis_hash', ?2)",
            params![
                FORMAT_VERSION.to_string(),
                genesis_block(Network::Regtest).block_hash().to_string()
            ],
        )?;
        let mut store = Store {
            conn,
            path: partial.clone(),
            saved: Saved::default(),
        };
        store.write(&chain, 0)?;
        store.conn.close().map_err(|(_, err)| err)
    };
    initialise().map_err(|err| write_error(err.to_string()))?;
    fs::rename(&partial, &path).map_err(|err| write_error(err.to_string()))?;
    fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|err| write_error(err.to_string()))?;
    let conn = connect(&path, true).map_err(|err| unreadable(&path, err))?;
    tracing::info!(path = %path.display(), "devchain created a new chain");
    let saved = Saved {
        blocks: chain.blocks_in_order().len(),
        best_chain: chain.best_chain().to_vec(),
        mempool: chain.mempool_arrivals().clone(),
    };
    Ok((chain, Store { conn, path, saved }))
}

/// A stored row, undecoded.
struct BlockRow {
    seq: i64,
    hash: String,
    height: u32,
    in_best_chain: bool,
    raw: Vec<u8>,
}

fn load(path: PathBuf) -> Result<(ChainState, Store), DevchainError> {
    let conn = connect(&path, true).map_err(|err| read_error(&path, err))?;
    let damaged = |reason: String| DevchainError::StoreDamaged {
        path: path.clone(),
        reason,
    };
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|err| read_error(&path, err))?;
    if check != "ok" {
        return Err(damaged(format!("SQLite reports {check}")));
    }
    let meta = |key: &str| -> Result<Option<String>, DevchainError> {
        conn.query_row(
            "SELECT value FROM devchain_meta WHERE key = ?1",
            [key],
            |row| row.get(0),
        )
        .optional()
        .map_err(|err| read_error(&path, err))
    };
    let version =
        meta("format_version")?.ok_or_else(|| damaged("it has no format version".into()))?;
    if version != FORMAT_VERSION.to_string() {
        return Err(DevchainError::StoreVersion {
            path: path.clone(),
            found: version,
            known: FORMAT_VERSION,
        });
    }
    let genesis = genesis_block(Network::Regtest).block_hash();
    let stored_genesis = meta("genesis_hash")?.unwrap_or_default();
    if stored_genesis != genesis.to_string() {
        return Err(DevchainError::StoreOtherChain {
            path: path.clone(),
            found: stored_genesis,
        });
    }

    let rows = read_blocks(&conn).map_err(|err| read_error(&path, err))?;
    let mut chain = ChainState::genesis_only();
    match rows.first() {
        Some(first) if first.hash == genesis.to_string() && first.in_best_chain => {}
        _ => {
            return Err(damaged(
                "its first block is not the regtest genesis block".into(),
            ))
        }
    }
    for row in rows.iter().skip(1) {
        let block: Block = deserialize(&row.raw)
            .map_err(|_| damaged(format!("block number {} cannot be decoded", row.seq)))?;
        let hash = block.block_hash();
        if BlockHash::from_str(&row.hash).ok() != Some(hash) {
            return Err(damaged(format!(
                "block number {} is stored as {} but hashes to {hash}",
                row.seq, row.hash
            )));
        }
        chain
            .restore_block(block, row.in_best_chain)
            .map_err(damaged)?;
        if chain.block(&hash).map(|entry| entry.height) != Some(row.height) {
            return Err(damaged(format!(
                "block {hash} is stored at the wrong height"
            )));
        }
    }

    let mempool = read_mempool(&conn).map_err(|err| read_error(&path, err))?;
    let mut saved = Saved {
        blocks: chain.blocks_in_order().len(),
        best_chain: chain.best_chain().to_vec(),
        mempool: BTreeMap::new(),
    };
    let mut transactions = Vec::with_capacity(mempool.len());
    for (arrival, txid, raw) in mempool {
        let tx: Transaction = deserialize(&raw)
            .map_err(|_| damaged(format!("mempool transaction {txid} cannot be decoded")))?;
        let txid = tx.compute_txid();
        saved.mempool.insert(arrival, txid);
        transactions.push(tx);
    }
    // The same arrival numbers as stored: when every transaction still validates, loading
    // writes nothing.
    if let Some(first) = saved.mempool.keys().next() {
        chain.resume_arrivals(*first);
    }
    for tx in transactions {
        let txid = tx.compute_txid();
        if let Err(rejection) = chain.accept(tx) {
            tracing::debug!(%txid, %rejection, "devchain dropped a stored mempool transaction that no longer validates");
        }
    }
    let mut store = Store { conn, path, saved };
    store.save(&chain)?;
    let (height, hash) = chain.tip();
    tracing::info!(
        path = %store.path.display(),
        height,
        %hash,
        mempool = chain.mempool_arrivals().len(),
        "devchain loaded its chain"
    );
    Ok((chain, store))
}

fn read_blocks(conn: &Connection) -> rusqlite::Result<Vec<BlockRow>> {
    let mut stmt = conn.prepare(
        "SELECT seq, hash, height, in_best_chain, raw FROM devchain_blocks ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok(BlockRow {
            seq: row.get(0)?,
            hash: row.get(1)?,
            height: row.get(2)?,
            in_best_chain: row.get(3)?,
            raw: row.get(4)?,
        })
    })?;
    rows.collect()
}

fn read_mempool(conn: &Connection) -> rusqlite::Result<Vec<(u64, String, Vec<u8>)>> {
    let mut stmt =
        conn.prepare("SELECT arrival, txid, raw FROM devchain_mempool ORDER BY arrival")?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, i64>(0)? as u64, row.get(1)?, row.get(2)?))
    })?;
    rows.collect()
}

/// An error while reading: the file system's fault (permissions, locks, I/O) or, for anything
/// else SQLite reports (not a database, malformed, missing tables, wrong types), damage.
fn read_error(path: &Path, err: rusqlite::Error) -> DevchainError {
    let io_fault = matches!(
        err.sqlite_error_code(),
        Some(
            ErrorCode::CannotOpen
                | ErrorCode::PermissionDenied
                | ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::OutOfMemory
                | ErrorCode::ReadOnly
        )
    );
    if io_fault {
        unreadable(path, err)
    } else {
        DevchainError::StoreDamaged {
            path: path.to_path_buf(),
            reason: err.to_string(),
        }
    }
}

fn unreadable(path: &Path, err: impl std::fmt::Display) -> DevchainError {
    DevchainError::StoreRead {
        path: path.to_path_buf(),
        reason: err.to_string(),
    }
}

#[cfg(test)]
mod tests;
