//! The SQLite store: LDK key-value data, wallet persistence and node tables in one file.
//!
//! One database file per node (`<data_dir>/node.sqlite` by convention of the caller). This
//! module owns the connection settings, the schema and its migrations, and these tables:
//!
//! - `kv_store`: LDK's key-value data (channel manager, monitors, network graph, sweeper, ...),
//!   through [`lightning::util::persist::KVStoreSync`].
//! - `peers`: peers the node wants to stay connected to.
//! - `payments`: Lightning payments sent and received (backs the operator API's payment list).
//! - `broadcasts`: our transactions kept until the chain settles them (`store/broadcasts.rs`).
//!
//! The BDK wallet keeps its own `bdk_*` tables (and `wallet_unwatched_scripts`) in the same
//! file through its own connection (see [`crate::node::wallet`]); this module never touches
//! them.
//!
//! Durability: WAL journal with `synchronous=FULL`, so every write is on disk when the call
//! returns. LDK acknowledges channel updates to peers only after the monitor write returned, so
//! this is what makes a crash after an acknowledgement safe. A thread of the store copies the
//! WAL into the file (`store/checkpoint.rs`). A `busy_timeout` lets the store
//! and the wallet connection wait for each other instead of failing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use lightning::io;
use lightning::types::payment::{PaymentHash, PaymentPreimage};
use lightning::util::persist::{
    KVStoreSync, KVSTORE_NAMESPACE_KEY_ALPHABET, KVSTORE_NAMESPACE_KEY_MAX_LEN,
};
use rusqlite::{params, Connection, OptionalExtension};

use crate::api::{PaymentDirection, PaymentInfo, PaymentStatus};
use checkpoint::Checkpointer;

/// How long a connection waits for another writer before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Schema migrations, applied in order; `schema_version` holds how many have run.
/// Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: LDK key-value data, peers, payments.
    "CREATE TABLE kv_store (
        primary_namespace TEXT NOT NULL,
        secondary_namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (primary_namespace, secondary_namespace, key)
    ) WITHOUT ROWID;
    CREATE TABLE peers (
        node_id TEXT PRIMARY KEY NOT NULL,
        address TEXT NOT NULL
    );
    CREATE TABLE payments (
        payment_hash TEXT PRIMARY KEY NOT NULL,
        preimage TEXT,
        direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
        amount_msat INTEGER,
        fee_paid_msat INTEGER,
        status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX payments_by_creation ON payments (created_at);",
    // 2: transactions kept until the chain settles them.
    broadcasts::MIGRATION,
];

/// Errors of the store. Every message names the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the database {path} has schema version {found}, newer than this program understands ({supported}); run a newer lsp-node")]
    SchemaTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("database error in {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the database {path} holds an invalid {what}: {detail}")]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("cannot start the checkpoint thread of {path}: {source}")]
    Thread {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid value: {0}")]
    InvalidInput(String),
}

/// A Lightning payment the node sent or received, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub payment_hash: PaymentHash,
    pub preimage: Option<PaymentPreimage>,
    pub direction: PaymentDirection,
    pub amount_msat: Option<u64>,
    pub fee_paid_msat: Option<u64>,
    pub status: PaymentStatus,
    /// Unix time (seconds) the payment was first recorded; kept from the first upsert.
    pub created_at: u64,
    /// Unix time (seconds) of the last change.
    pub updated_at: u64,
}

impl From<&PaymentRecord> for PaymentInfo {
    fn from(p: &PaymentRecord) -> Self {
        PaymentInfo {
            payment_hash: hex::encode(p.payment_hash.0),
            direction: p.direction,
            amount_msat: p.amount_msat,
            fee_paid_msat: p.fee_paid_msat,
            status: p.status,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Handle to the node database. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    path: PathBuf,
    conn: Mutex<Connection>,
    _checkpointer: Checkpointer,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = open_connection(path).map_err(open_err)?;
        migrate(&mut conn, path)?;
        let checkpointer = Checkpointer::start(path, checkpoint::CHECKPOINT_EVERY)?;
        Ok(Store {
            inner: Arc::new(StoreInner {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
                _checkpointer: checkpointer,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The schema version after migrations (the number of migrations applied).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        read_schema_version(&self.conn()).map_err(|e| self.sqlite(e))
    }

    /// Remembers `address` (`host:port`) for `node_id`, replacing a previous address.
    pub fn upsert_peer(&self, node_id: &PublicKey, address: &str) -> Result<(), StoreError> {
        if address.trim().is_empty() {
            return Err(StoreError::InvalidInput(
                "a peer address must not be empty".into(),
            ));
        }
        self.conn()
            .execute(
                "INSERT INTO peers (node_id, address) VALUES (?1, ?2)
                 ON CONFLICT (node_id) DO UPDATE SET address = excluded.address",
                params![node_id.to_string(), address],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(())
    }

    /// Forgets a peer; forgetting an unknown peer is not an error.
    pub fn remove_peer(&self, node_id: &PublicKey) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "DELETE FROM peers WHERE node_id = ?1",
                params![node_id.to_string()],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(())
    }

    /// All remembered peers, ordered by node id.
    pub fn peers(&self) -> Result<Vec<(PublicKey, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT node_id, address FROM peers ORDER BY node_id")
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| self.sqlite(e))?;
        let mut peers = Vec::new();
        for row in rows {
            let (node_id, address) = row.map_err(|e| self.sqlite(e))?;
            let node_id = node_id.parse().map_err(|e: bitcoin::secp256k1::Error| {
                self.corrupt("peer node id", format!("{node_id}: {e}"))
            })?;
            peers.push((node_id, address));
        }
        Ok(peers)
    }

    /// Inserts or updates the payment with `p.payment_hash`. On update, every field is replaced
    /// except `created_at`, which keeps the time the payment was first recorded.
    pub fn upsert_payment(&self, p: &PaymentRecord) -> Result<(), StoreError> {
        let amount = p.amount_msat.map(msat_to_sql).transpose()?;
        let fee = p.fee_paid_msat.map(msat_to_sql).transpose()?;
        self.conn()
            .execute(
                "INSERT INTO payments (payment_hash, preimage, direction, amount_msat,
                     fee_paid_msat, status, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (payment_hash) DO UPDATE SET
                     preimage = excluded.preimage, direction = excluded.direction,
                     amount_msat = excluded.amount_msat, fee_paid_msat = excluded.fee_paid_msat,
                     status = excluded.status, updated_at = excluded.updated_at",
                params![
                    hex::encode(p.payment_hash.0),
                    p.preimage.map(|pre| hex::encode(pre.0)),
                    direction_to_sql(p.direction),
                    amount,
                    fee,
                    status_to_sql(p.status),
                    secs_to_sql(p.created_at)?,
                    secs_to_sql(p.updated_at)?,
                ],
            )
            .map_err(|e| self.sqlite(e))?;
        Ok(())
    }

    /// The payment with this hash, if recorded.
    pub fn payment(&self, hash: &PaymentHash) -> Result<Option<PaymentRecord>, StoreError> {
        let raw = self
            .conn()
            .query_row(
                &format!("{PAYMENT_COLUMNS} WHERE payment_hash = ?1"),
                params![hex::encode(hash.0)],
                RawPayment::from_row,
            )
            .optional()
            .map_err(|e| self.sqlite(e))?;
        raw.map(|r| r.into_record(self)).transpose()
    }

    /// All recorded payments, oldest first.
    pub fn payments(&self) -> Result<Vec<PaymentRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(&format!(
                "{PAYMENT_COLUMNS} ORDER BY created_at, payment_hash"
            ))
            .map_err(|e| self.sqlite(e))?;
        let rows = stmt
            .query_map([], RawPayment::from_row)
            .map_err(|e| self.sqlite(e))?;
        let mut payments = Vec::new();
        for row in rows {
            payments.push(row.map_err(|e| self.sqlite(e))?.into_record(self)?);
        }
        Ok(payments)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (statements are
        // atomic), so a poisoned lock is still safe to use.
        self.inner
            .conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sqlite(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.inner.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: &'static str, detail: String) -> StoreError {
        StoreError::Corrupt {
            path: self.inner.path.clone(),
            what,
            detail,
        }
    }

    fn io_error(&self, e: rusqlite::Error) -> io::Error {
        io::Error::new(io::ErrorKind::Other, self.sqlite(e).to_string())
    }
}

impl KVStoreSync for Store {
    fn read(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
        key: &str,
    ) -> Result<Vec<u8>, io::Error> {
        check_namespaces_and_key(primary_namespace, secondary_namespace, Some(key))?;
        self.conn()
            .query_row(
                "SELECT value FROM kv_store
                 WHERE primary_namespace = ?1 AND secondary_namespace = ?2 AND key = ?3",
                params![primary_namespace, secondary_namespace, key],
                |row| row.get::<_, Vec<u8>>(0),
            )
            .optional()
            .map_err(|e| self.io_error(e))?
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no value stored at {primary_namespace}/{secondary_namespace}/{key}"),
                )
            })
    }

    fn write(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
        key: &str,
        buf: Vec<u8>,
    ) -> Result<(), io::Error> {
        check_namespaces_and_key(primary_namespace, secondary_namespace, Some(key))?;
        self.conn()
            .execute(
                "INSERT INTO kv_store (primary_namespace, secondary_namespace, key, value)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (primary_namespace, secondary_namespace, key)
                 DO UPDATE SET value = excluded.value",
                params![primary_namespace, secondary_namespace, key, buf],
            )
            .map_err(|e| self.io_error(e))?;
        Ok(())
    }

    /// Removes the key at once; `lazy` is not needed because a delete costs one statement.
    fn remove(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
        key: &str,
        _lazy: bool,
    ) -> Result<(), io::Error> {
        check_namespaces_and_key(primary_namespace, secondary_namespace, Some(key))?;
        self.conn()
            .execute(
                "DELETE FROM kv_store
                 WHERE primary_namespace = ?1 AND secondary_namespace = ?2 AND key = ?3",
                params![primary_namespace, secondary_namespace, key],
            )
            .map_err(|e| self.io_error(e))?;
        Ok(())
    }

    fn list(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
    ) -> Result<Vec<String>, io::Error> {
        check_namespaces_and_key(primary_namespace, secondary_namespace, None)?;
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT key FROM kv_store
                 WHERE primary_namespace = ?1 AND secondary_namespace = ?2 ORDER BY key",
            )
            .map_err(|e| self.io_error(e))?;
        let keys = stmt
            .query_map(params![primary_namespace, secondary_namespace], |row| {
                row.get(0)
            })
            .map_err(|e| self.io_error(e))?
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| self.io_error(e))?;
        Ok(keys)
    }
}

/// Opens a connection with the settings every connection to the node database uses (the
/// wallet's and the order book's too).
pub fn open_connection(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // `journal_mode` answers with the resulting mode; WAL is refused only on exotic
    // filesystems, in which case SQLite keeps the (also durable) rollback journal.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "SQLite refused WAL journal mode");
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        checkpoint::WAL_AUTOCHECKPOINT_PAGES,
    )?;
    Ok(conn)
}

fn read_schema_version(conn: &Connection) -> Result<u32, rusqlite::Error> {
    conn.query_row("SELECT version FROM schema_version", [], |row| row.get(0))
        .optional()
        .map(|v| v.unwrap_or(0))
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let sqlite = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    // An exclusive transaction so two processes opening a fresh file cannot both migrate.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .map_err(sqlite)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(sqlite)?;
    let found = read_schema_version(&tx).map_err(sqlite)?;
    let supported = MIGRATIONS.len() as u32;
    if found > supported {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(migration).map_err(sqlite)?;
        tracing::debug!(path = %path.display(), version = index + 1, "applied store migration");
    }
    tx.execute("DELETE FROM schema_version", [])
        .map_err(sqlite)?;
    tx.execute(
        "INSERT INTO schema_version (version) VALUES (?1)",
        params![supported],
    )
    .map_err(sqlite)?;
    tx.commit().map_err(sqlite)
}

/// Enforces LDK's namespace/key rules (see `KVStoreSync`'s documentation): characters from
/// `KVSTORE_NAMESPACE_KEY_ALPHABET`, at most `KVSTORE_NAMESPACE_KEY_MAX_LEN` long, a non-empty
/// key, and an empty secondary namespace whenever the primary one is empty.
fn check_namespaces_and_key(
    primary_namespace: &str,
    secondary_namespace: &str,
    key: Option<&str>,
) -> Result<(), io::Error> {
    let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
    if primary_namespace.is_empty() && !secondary_namespace.is_empty() {
        return invalid(format!(
            "secondary namespace {secondary_namespace:?} given without a primary namespace"
        ));
    }
    let mut parts = vec![
        ("primary namespace", primary_namespace),
        ("secondary namespace", secondary_namespace),
    ];
    if let Some(key) = key {
        if key.is_empty() {
            return invalid("the key must not be empty".to_string());
        }
        parts.push(("key", key));
    }
    for (what, value) in parts {
        if value.len() > KVSTORE_NAMESPACE_KEY_MAX_LEN {
            return invalid(format!(
                "{what} {value:?} is longer than {KVSTORE_NAMESPACE_KEY_MAX_LEN} characters"
            ));
        }
        if let Some(c) = value
            .chars()
            .find(|c| !KVSTORE_NAMESPACE_KEY_ALPHABET.contains(*c))
        {
            return invalid(format!(
                "{what} {value:?} contains the invalid character {c:?}"
            ));
        }
    }
    Ok(())
}

const PAYMENT_COLUMNS: &str = "SELECT payment_hash, preimage, direction, amount_msat, \
    fee_paid_msat, status, created_at, updated_at FROM payments";

/// A payments row before its text columns are parsed.
struct RawPayment {
    payment_hash: String,
    preimage: Option<String>,
    direction: String,
    amount_msat: Option<i64>,
    fee_paid_msat: Option<i64>,
    status: String,
    created_at: i64,
    updated_at: i64,
}

impl RawPayment {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawPayment {
            payment_hash: row.get(0)?,
            preimage: row.get(1)?,
            direction: row.get(2)?,
            amount_msat: row.get(3)?,
            fee_paid_msat: row.get(4)?,
            status: row.get(5)?,
            created_at: row.get(6)?,
            updated_at: row.get(7)?,
        })
    }

    fn into_record(self, store: &Store) -> Result<PaymentRecord, StoreError> {
        let bytes32 = |what: &'static str, text: &str| -> Result<[u8; 32], StoreError> {
            let mut out = [0u8; 32];
            hex::decode_to_slice(text, &mut out)
                .map_err(|e| store.corrupt(what, format!("{text}: {e}")))?;
            Ok(out)
        };
        let unsigned = |what: &'static str, v: i64| {
            u64::try_from(v).map_err(|_| store.corrupt(what, format!("negative value {v}")))
        };
        Ok(PaymentRecord {
            payment_hash: PaymentHash(bytes32("payment hash", &self.payment_hash)?),
            preimage: match self.preimage {
                Some(text) => Some(PaymentPreimage(bytes32("payment preimage", &text)?)),
                None => None,
            },
            direction: match self.direction.as_str() {
                "inbound" => PaymentDirection::Inbound,
                "outbound" => PaymentDirection::Outbound,
                other => return Err(store.corrupt("payment direction", other.to_string())),
            },
            amount_msat: self
                .amount_msat
                .map(|v| unsigned("amount", v))
                .transpose()?,
            fee_paid_msat: self.fee_paid_msat.map(|v| unsigned("fee", v)).transpose()?,
            status: match self.status.as_str() {
                "pending" => PaymentStatus::Pending,
                "succeeded" => PaymentStatus::Succeeded,
                "failed" => PaymentStatus::Failed,
                other => return Err(store.corrupt("payment status", other.to_string())),
            },
            created_at: unsigned("creation time", self.created_at)?,
            updated_at: unsigned("update time", self.updated_at)?,
        })
    }
}

fn direction_to_sql(d: PaymentDirection) -> &'static str {
    match d {
        PaymentDirection::Inbound => "inbound",
        PaymentDirection::Outbound => "outbound",
    }
}

fn status_to_sql(s: PaymentStatus) -> &'static str {
    match s {
        PaymentStatus::Pending => "pending",
        PaymentStatus::Succeeded => "succeeded",
        PaymentStatus::Failed => "failed",
    }
}

fn msat_to_sql(msat: u64) -> Result<i64, StoreError> {
    i64::try_from(msat)
        .map_err(|_| StoreError::InvalidInput(format!("{msat} msat is more than can exist")))
}

fn secs_to_sql(secs: u64) -> Result<i64, StoreError> {
    i64::try_from(secs)
        .map_err(|_| StoreError::InvalidInput(format!("timestamp {secs} is out of range")))
}

mod broadcasts;
mod checkpoint;
#[cfg(test)]
mod tests;

pub use broadcasts::{BroadcastState, KeptBroadcast};
