//! Copying the WAL into the database file off the commit path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold: under a
//! stream of orders one caller in every few hundred waited for the whole copy. Here a thread
//! of the store's own runs a PASSIVE checkpoint on a timer, which writers do not wait for, and
//! every connection's automatic checkpoint is pushed far out ([`WAL_AUTOCHECKPOINT_PAGES`]) so
//! it only acts if this thread cannot keep up. A longer interval also lets a page written by
//! many commits be copied once.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{open_connection, StoreError};

/// The automatic checkpoint of every connection, in WAL pages (about 160 MiB at 4 KiB pages):
/// the net under [`Checkpointer`], not the rule.
pub(crate) const WAL_AUTOCHECKPOINT_PAGES: u32 = 40_000;

/// How often the checkpoint thread copies the WAL into the database.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The checkpoint thread of one database file; stopped and joined on drop.
pub(crate) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(crate) fn start(path: &Path, every: Duration) -> Result<Checkpointer, StoreError> {
        let conn = open_connection(path).map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let (stop, stopped) = mpsc::channel::<()>();
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    // A failed or partial checkpoint leaves the frames in the WAL, where every
                    // reader still finds them; the next round copies them.
                    let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                        row.get::<_, i64>(0)
                    });
                    if let Err(error) = outcome {
                        tracing::warn!(path = %shown, %error, "WAL checkpoint failed");
                    }
                }
            })
            .map_err(|source| StoreError::Thread {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::store::open_connection;

    fn database_bytes(path: &Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    #[test]
    fn the_thread_copies_what_commits_leave_in_the_wal_and_stops_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let conn = open_connection(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB NOT NULL)")
            .unwrap();
        // Commits alone never checkpoint below the net: the file stays as it was.
        let before = database_bytes(&path);
        for _ in 0..200 {
            conn.execute("INSERT INTO t (x) VALUES (zeroblob(8192))", [])
                .unwrap();
        }
        assert_eq!(database_bytes(&path), before);

        let checkpointer = Checkpointer::start(&path, Duration::from_millis(20)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while database_bytes(&path) < before + 200 * 8192 {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was not copied into the database"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Returns once the thread has stopped.
        drop(checkpointer);
    }
}
