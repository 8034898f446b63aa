//! Group commit: writes asked for while the connection is busy are made together in one
//! transaction, so a burst of new orders pays for one fsync rather than one each.
//!
//! A caller queues its write, then takes the connection. If the write was made by another
//! caller meanwhile, its outcome is waiting and the caller returns it. Otherwise the caller
//! writes everything queued: one `BEGIN IMMEDIATE`, each write in a savepoint of its own (a
//! write that fails is rolled back alone and its caller gets its own error), one `COMMIT`.
//! Every outcome is handed back only after the commit, and before the connection is let go,
//! so no caller ever hears "done" for a write that is not durable.
//!
//! If SQLite rolls the whole transaction back itself (disk full, I/O error), or the commit
//! fails, every write of the batch is refused with that error: none of it was kept.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, TransactionBehavior};

/// One queued write, run inside a savepoint of the batch's transaction.
pub type Write<E> = Box<dyn FnOnce(&Connection) -> Result<(), E> + Send>;

struct Queued<E> {
    write: Write<E>,
    reply: SyncSender<Result<(), E>>,
}

/// The writes waiting for the connection.
pub struct GroupCommit<E> {
    queued: Mutex<Vec<Queued<E>>>,
}

impl<E> Default for GroupCommit<E> {
    fn default() -> Self {
        GroupCommit {
            queued: Mutex::new(Vec::new()),
        }
    }
}

impl<E: From<rusqlite::Error>> GroupCommit<E> {
    /// Makes `write` durable together with whatever else is queued, and returns its outcome.
    /// `connection` is the one connection every write of this book goes through.
    pub fn write(&self, connection: &Mutex<Connection>, write: Write<E>) -> Result<(), E> {
        let (reply, outcome) = sync_channel(1);
        lock(&self.queued).push(Queued { write, reply });
        let mut conn = lock(connection);
        // Whoever drained the queue held the connection and answered before letting it go:
        // no answer yet means this write is still queued.
        if let Ok(done) = outcome.try_recv() {
            return done;
        }
        let batch = std::mem::take(&mut *lock(&self.queued));
        write_batch(&mut conn, batch);
        drop(conn);
        outcome
            .recv()
            .unwrap_or_else(|_| Err(refused("the write was abandoned").into()))
    }
}

fn write_batch<E: From<rusqlite::Error>>(conn: &mut Connection, batch: Vec<Queued<E>>) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => return refuse_all(batch.into_iter().map(|q| q.reply), &error),
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut queued = batch.into_iter();
    for Queued { write, reply } in queued.by_ref() {
        let (outcome, intact) = in_savepoint(&tx, write);
        outcomes.push((reply, outcome));
        if !intact || tx.is_autocommit() {
            // Dropping `tx` rolls back whatever is left of it.
            let error = refused("the transaction was rolled back by the database");
            let replies = outcomes.into_iter().map(|(reply, _)| reply);
            return refuse_all(replies.chain(queued.map(|q| q.reply)), &error);
        }
    }
    crate::fault_points::crash_point("group_commit.before_commit");
    match tx.commit() {
        Ok(()) => {
            crate::fault_points::crash_point("group_commit.before_answers");
            for (reply, outcome) in outcomes {
                let _ = reply.send(outcome);
            }
        }
        Err(error) => {
            // A write refused on its own keeps its reason; the others were not kept.
            for (reply, outcome) in outcomes {
                let _ = reply.send(outcome.and_then(|()| Err(copy(&error).into())));
            }
        }
    }
}

/// Runs `write` in a savepoint: kept when it succeeds, undone alone when it fails. The second
/// value is false when the savepoint itself could not be taken, released or undone, so the
/// transaction can no longer be trusted.
fn in_savepoint<E: From<rusqlite::Error>>(
    conn: &Connection,
    write: Write<E>,
) -> (Result<(), E>, bool) {
    let step = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
    if let Err(error) = step("SAVEPOINT queued_write") {
        return (Err(error.into()), false);
    }
    match write(conn) {
        Ok(()) => match step("RELEASE queued_write") {
            Ok(_) => (Ok(()), true),
            Err(error) => (Err(error.into()), false),
        },
        Err(error) => {
            let undone =
                step("ROLLBACK TO queued_write").and_then(|_| step("RELEASE queued_write"));
            (Err(error), undone.is_ok())
        }
    }
}

fn refuse_all<E: From<rusqlite::Error>>(
    replies: impl Iterator<Item = SyncSender<Result<(), E>>>,
    error: &rusqlite::Error,
) {
    for reply in replies {
        let _ = reply.send(Err(copy(error).into()));
    }
}

/// `rusqlite::Error` is not `Clone`; every caller of a failed batch gets an equal error.
fn copy(error: &rusqlite::Error) -> rusqlite::Error {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => refused(&other.to_string()),
    }
}

fn refused(reason: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
        Some(reason.to_string()),
    )
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding either lock leaves no half-made write: an open transaction is
    // rolled back when it is dropped, and the queue holds only whole entries.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn book() -> (tempfile::TempDir, Arc<Mutex<Connection>>) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("book.sqlite")).unwrap();
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .unwrap();
        (dir, Arc::new(Mutex::new(conn)))
    }

    fn insert(k: i64) -> Write<rusqlite::Error> {
        Box::new(move |conn| {
            conn.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])?;
            Ok(())
        })
    }

    fn keys(conn: &Mutex<Connection>) -> Vec<i64> {
        let conn = lock(conn);
        let mut statement = conn.prepare("SELECT k FROM t ORDER BY k").unwrap();
        let rows = statement.query_map([], |row| row.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn a_failing_write_is_rolled_back_alone_and_keeps_its_error() {
        let (_dir, conn) = book();
        let queue = GroupCommit::default();
        queue.write(&conn, insert(1)).unwrap();
        // Queued behind a held connection, three writes land in one batch: the middle one
        // half-writes, then fails on a duplicate key.
        let held = lock(&conn);
        let queue = Arc::new(queue);
        let writers: Vec<_> = [
            insert(2),
            Box::new(|conn: &Connection| {
                conn.execute("INSERT INTO t (k, v) VALUES (3, 'half')", [])?;
                conn.execute("INSERT INTO t (k, v) VALUES (1, 'dup')", [])?;
                Ok(())
            }) as Write<rusqlite::Error>,
            insert(4),
        ]
        .into_iter()
        .map(|write| {
            let (queue, conn) = (queue.clone(), conn.clone());
            std::thread::spawn(move || queue.write(&conn, write))
        })
        .collect();
        while lock(&queue.queued).len() < 3 {
            std::thread::yield_now();
        }
        drop(held);
        let outcomes: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        assert!(outcomes[0].is_ok() && outcomes[2].is_ok(), "{outcomes:?}");
        let error = outcomes[1].as_ref().unwrap_err().to_string();
        assert!(error.contains("UNIQUE"), "{error}");
        assert_eq!(keys(&conn), vec![1, 2, 4]);
    }

    #[test]
    fn a_failed_commit_refuses_every_write_of_the_batch() {
        let (_dir, conn) = book();
        lock(&conn)
            .execute_batch(
                "CREATE TABLE parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE child (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);
                 PRAGMA foreign_keys = ON;",
            )
            .unwrap();
        let queue = GroupCommit::default();
        // A deferred foreign key is checked at COMMIT: the batch's commit fails.
        let dangling: Write<rusqlite::Error> = Box::new(|conn| {
            conn.execute("INSERT INTO child (p) VALUES (7)", [])?;
            Ok(())
        });
        let held = lock(&conn);
        let queue = Arc::new(queue);
        let first = {
            let (queue, conn) = (queue.clone(), conn.clone());
            std::thread::spawn(move || queue.write(&conn, insert(5)))
        };
        let second = {
            let (queue, conn) = (queue.clone(), conn.clone());
            std::thread::spawn(move || queue.write(&conn, dangling))
        };
        while lock(&queue.queued).len() < 2 {
            std::thread::yield_now();
        }
        drop(held);
        assert!(first.join().unwrap().is_err());
        assert!(second.join().unwrap().is_err());
        assert!(keys(&conn).is_empty());
        // The connection is usable afterwards.
        queue.write(&conn, insert(6)).unwrap();
        assert_eq!(keys(&conn), vec![6]);
    }
}
