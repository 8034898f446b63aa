//! Read-only connections to the order book's file, so that reading an order or the reserved
//! total never waits behind a write (and its fsync) on the book's one writing connection.
//!
//! Opened only when the writer's file is in WAL mode, where readers and the writer do not
//! block each other and a reader sees every transaction committed before its read began.
//! Without a file (in memory) or without WAL, reads go through the writer as before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How many read connections a book keeps: enough for the blocking pool's readers to rarely
/// wait on each other on a small machine.
const READERS: usize = 4;

/// Pages of cache per reader (negative: KiB), so hot orders stay in memory.
const READER_CACHE_KIB: i64 = 8 * 1024;

pub struct ReadConnections {
    connections: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl ReadConnections {
    /// Read connections to `writer`'s file, or none when it has no file or is not in WAL mode.
    pub fn open(writer: &Connection, busy_timeout: Duration, statements: usize) -> ReadConnections {
        let connections = match reader_path(writer) {
            Some(path) => (0..READERS)
                .map_while(|_| open_reader(&path, busy_timeout, statements).ok())
                .map(Mutex::new)
                .collect(),
            None => Vec::new(),
        };
        ReadConnections {
            connections,
            next: AtomicUsize::new(0),
        }
    }

    /// How many read connections are open (0: reads use the writer).
    pub fn len(&self) -> usize {
        self.connections.len()
    }

    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// A read connection no one is using, if there is one.
    pub fn free(&self) -> Option<MutexGuard<'_, Connection>> {
        self.connections
            .iter()
            .find_map(|reader| match reader.try_lock() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            })
    }

    /// A free read connection, or the next one in turn when all are busy; `writer` when there
    /// are none.
    pub fn get<'a>(&'a self, writer: &'a Mutex<Connection>) -> MutexGuard<'a, Connection> {
        for reader in &self.connections {
            match reader.try_lock() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let chosen = match self.connections.len() {
            0 => writer,
            n => &self.connections[self.next.fetch_add(1, Ordering::Relaxed) % n],
        };
        chosen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn reader_path(writer: &Connection) -> Option<String> {
    let path = writer.path().filter(|path| !path.is_empty())?.to_string();
    let mode: String = writer
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .ok()?;
    mode.eq_ignore_ascii_case("wal").then_some(path)
}

fn open_reader(
    path: &str,
    busy_timeout: Duration,
    statements: usize,
) -> rusqlite::Result<Connection> {
    let reader = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    reader.busy_timeout(busy_timeout)?;
    reader.set_prepared_statement_cache_capacity(statements);
    reader.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
    Ok(reader)
}
