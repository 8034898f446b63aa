//! Group commit: writes asked for while the connection is busy are made together in one
//! transaction, so a burst of new orders pays for one fsync rather than one each.
//!
//! Callers queue their writes; a writer thread of the book's own takes the connection and
//! writes everything queued: one `BEGIN IMMEDIATE`, each write in a savepoint of its own (a
//! write that fails, or panics, is rolled back alone and its caller gets its own error), one
//! `COMMIT`. A committed batch goes to a second thread, which makes it durable and only then
//! answers the batch's callers: no caller ever hears "done" for a write that is not durable.
//! A caller waits on its own answer, never on the connection, and may wait on a thread
//! ([`GroupCommit::write`]) or as an async task ([`GroupCommit::write_async`]), which holds
//! no thread while its batch is written and synced.
//!
//! Durable, on a database in WAL mode: the batch commits with `synchronous=NORMAL` (written to
//! the log, not yet synced) and the sync thread syncs the log file itself, so the next batch is
//! written while this one's fsync runs. SQLite keeps the database consistent in that mode by
//! itself (it syncs the log before every checkpoint); the sync before the answer adds the
//! durability of `synchronous=FULL`. The log stays the same file for as long as the connection
//! is open: SQLite deletes it only when the last connection closes, and restarts it in place
//! after a checkpoint. Without a log file (another journal mode, an in-memory database) each
//! commit syncs itself, as the connection is set to, and the writer answers the batch itself.
//!
//! If SQLite rolls the whole transaction back itself (disk full, I/O error), or the commit
//! fails, every write of the batch is refused with that error: none of it was kept. If the
//! sync of the log fails, the batch's writes are refused although they are committed (they may
//! or may not be on disk), and so is every write after it, a batch already committed behind
//! it included (the one sync thread takes the batches in order and checks, before each sync,
//! that none before it failed): once a sync has failed the kernel may have dropped the pages
//! it could not write, and a later sync's success would prove nothing. The book then needs a
//! restart, which reads the log back from the disk.

use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

use rusqlite::{Connection, TransactionBehavior};

/// One queued write, run inside a savepoint of the batch's transaction.
pub type Write<E> = Box<dyn FnOnce(&Connection) -> Result<(), E> + Send>;

/// Where a write's outcome goes: to a thread blocked on it, or to an awaiting task.
enum Reply<E> {
    Blocking(SyncSender<Result<(), E>>),
    Awaited(tokio::sync::oneshot::Sender<Result<(), E>>),
}

impl<E> Reply<E> {
    fn send(self, outcome: Result<(), E>) {
        // A caller that stopped waiting (a dropped task) is not told.
        match self {
            Reply::Blocking(reply) => {
                let _ = reply.send(outcome);
            }
            Reply::Awaited(reply) => {
                let _ = reply.send(outcome);
            }
        }
    }
}

struct Queued<E> {
    write: Write<E>,
    reply: Reply<E>,
}

struct Queue<E> {
    writes: Vec<Queued<E>>,
    /// The book is being dropped: the writer ends once the queue is empty.
    closing: bool,
    /// The writer thread has ended (it is never restarted): writes are refused.
    writer_gone: bool,
}

/// A committed batch: each caller's outcome, to be sent once the batch is durable.
type Committed<E> = Vec<(Reply<E>, Result<(), E>)>;

/// How a committed batch becomes durable.
enum Durability {
    /// The commit syncs itself (the connection's own `synchronous` setting).
    ByCommit,
    /// The commit only writes the log; the sync thread syncs the log file; the writer sets the
    /// connection's `synchronous` back to `restore` for the writes outside the group.
    ByLogSync { log: LogSync, restore: i64 },
}

enum LogSync {
    File(File),
    #[cfg(test)]
    Hook(Box<dyn Fn() -> std::io::Result<()> + Send + Sync>),
}

impl LogSync {
    fn sync(&self) -> std::io::Result<()> {
        match self {
            LogSync::File(file) => file.sync_data(),
            #[cfg(test)]
            LogSync::Hook(hook) => hook(),
        }
    }
}

impl Durability {
    /// Found from the connection at the first batch.
    fn of(conn: &Connection) -> Durability {
        let mode = conn.query_row("PRAGMA journal_mode", [], |row| row.get::<_, String>(0));
        let synchronous = conn.query_row("PRAGMA synchronous", [], |row| row.get::<_, i64>(0));
        let (Ok(mode), Ok(restore)) = (mode, synchronous) else {
            return Durability::ByCommit;
        };
        // Below FULL the connection was not asked to sync each commit: nothing to keep.
        if !mode.eq_ignore_ascii_case("wal") || restore < 2 {
            return Durability::ByCommit;
        }
        let Some(path) = conn.path().filter(|path| !path.is_empty()) else {
            return Durability::ByCommit;
        };
        // A read in WAL mode opens (and if need be creates) the log file.
        let _ = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(()));
        match File::open(format!("{path}-wal")) {
            Ok(file) => Durability::ByLogSync {
                log: LogSync::File(file),
                restore,
            },
            Err(error) => {
                tracing::warn!(path, %error, "the database log could not be opened; each batch commit syncs itself");
                Durability::ByCommit
            }
        }
    }
}

/// What the callers, the writer thread and the sync thread share.
struct Shared<E> {
    queued: Mutex<Queue<E>>,
    /// Signalled when a write is queued or the book closes.
    wake_writer: Condvar,
    durability: OnceLock<Durability>,
    /// A sync of the log has failed: no write is taken any more.
    sync_failed: AtomicBool,
}

/// The writes waiting for the connection, and the two threads that make them durable.
pub struct GroupCommit<E> {
    shared: Arc<Shared<E>>,
    writer: Option<JoinHandle<()>>,
    syncer: Option<JoinHandle<()>>,
}

impl<E: From<rusqlite::Error> + Send + 'static> GroupCommit<E> {
    /// Starts the writer and sync threads for `connection`, the one connection every write of
    /// this book goes through.
    pub fn new(connection: Arc<Mutex<Connection>>) -> Self {
        Self::start(connection, OnceLock::new())
    }

    fn start(connection: Arc<Mutex<Connection>>, durability: OnceLock<Durability>) -> Self {
        let shared = Arc::new(Shared {
            queued: Mutex::new(Queue {
                writes: Vec::new(),
                closing: false,
                writer_gone: false,
            }),
            wake_writer: Condvar::new(),
            durability,
            sync_failed: AtomicBool::new(false),
        });
        let (to_sync, committed) = channel();
        let syncer = std::thread::Builder::new()
            .name("order-book-sync".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || sync_each(&shared, committed)
            })
            .expect("the order book's sync thread starts");
        let writer = std::thread::Builder::new()
            .name("order-book-writer".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || {
                    let _gone = WriterGone(&shared);
                    write_each(&shared, &connection, to_sync)
                }
            })
            .expect("the order book's writer thread starts");
        GroupCommit {
            shared,
            writer: Some(writer),
            syncer: Some(syncer),
        }
    }

    /// Makes `write` durable together with whatever else is queued, and returns its outcome;
    /// blocks the calling thread until then.
    pub fn write(&self, write: Write<E>) -> Result<(), E> {
        let (reply, answer) = sync_channel(1);
        self.queue(write, Reply::Blocking(reply));
        answer.recv().unwrap_or_else(|_| Err(abandoned().into()))
    }

    /// [`Self::write`] for an async caller, which holds no thread while it waits.
    pub async fn write_async(&self, write: Write<E>) -> Result<(), E> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.queue(write, Reply::Awaited(reply));
        answer.await.unwrap_or_else(|_| Err(abandoned().into()))
    }

    fn queue(&self, write: Write<E>, reply: Reply<E>) {
        let mut queue = lock(&self.shared.queued);
        if queue.writer_gone {
            drop(queue);
            reply.send(Err(abandoned().into()));
            return;
        }
        queue.writes.push(Queued { write, reply });
        drop(queue);
        self.shared.wake_writer.notify_one();
    }
}

impl<E> Drop for GroupCommit<E> {
    fn drop(&mut self) {
        lock(&self.shared.queued).closing = true;
        self.shared.wake_writer.notify_one();
        // The writer ends first; the sync thread then drains what it was handed and ends too.
        for thread in [self.writer.take(), self.syncer.take()]
            .into_iter()
            .flatten()
        {
            let _ = thread.join();
        }
    }
}

/// Marks the writer gone however it ends, and refuses what is queued, so that no caller
/// waits for a writer that is not there.
struct WriterGone<'a, E>(&'a Shared<E>);

impl<E> Drop for WriterGone<'_, E> {
    fn drop(&mut self) {
        let mut queue = lock(&self.0.queued);
        queue.writer_gone = true;
        // `E` is not known to be `From<rusqlite::Error>` here: a dropped reply tells its
        // caller the write was abandoned.
        queue.writes.clear();
    }
}

/// The writer thread: waits for writes, then takes the connection and writes every write
/// queued by then as one batch, until the book closes.
fn write_each<E: From<rusqlite::Error>>(
    shared: &Shared<E>,
    connection: &Mutex<Connection>,
    to_sync: Sender<Committed<E>>,
) {
    loop {
        {
            let mut queue = lock(&shared.queued);
            while queue.writes.is_empty() && !queue.closing {
                queue = shared
                    .wake_writer
                    .wait(queue)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if queue.writes.is_empty() {
                return;
            }
        }
        let mut conn = lock(connection);
        // Taken once the connection is held: what is queued while another user of the
        // connection holds it joins this batch.
        let batch = std::mem::take(&mut lock(&shared.queued).writes);
        let durability = shared.durability.get_or_init(|| Durability::of(&conn));
        if shared.sync_failed.load(Ordering::Acquire) {
            refuse_all(batch.into_iter().map(|q| q.reply), &refused(SYNC_FAILED));
            continue;
        }
        let committed = write_batch(shared, &mut conn, batch, durability);
        drop(conn);
        match (committed, durability) {
            (Some(committed), Durability::ByLogSync { .. }) => {
                if let Err(unsent) = to_sync.send(committed) {
                    refuse_all(unsent.0.into_iter().map(|(r, _)| r), &abandoned());
                }
            }
            (Some(committed), Durability::ByCommit) => {
                crate::fault_points::crash_point("group_commit.before_answers");
                answer_all(committed)
            }
            (None, _) => {}
        }
    }
}

/// Writes and commits `batch`. Returns the outcomes of a committed batch, to be sent once
/// it is durable; a batch that was not committed is answered here.
fn write_batch<E: From<rusqlite::Error>>(
    shared: &Shared<E>,
    conn: &mut Connection,
    batch: Vec<Queued<E>>,
    durability: &Durability,
) -> Option<Committed<E>> {
    let Durability::ByLogSync { restore, .. } = durability else {
        return write_and_commit(conn, batch);
    };
    if let Err(error) = set_synchronous(conn, 1) {
        refuse_all(batch.into_iter().map(|q| q.reply), &error);
        return None;
    }
    let committed = write_and_commit(conn, batch);
    if let Err(error) = set_synchronous(conn, *restore) {
        // The connection's writes outside the group would commit unsynced: take no more
        // new orders, and say so. (This batch is still synced before it is answered.)
        shared.sync_failed.store(true, Ordering::Release);
        tracing::error!(%error, "the order book's connection could not be set back to sync its commits: new orders are refused until the node restarts");
    }
    committed
}

/// The sync thread: syncs the log for each committed batch, in the order they were
/// committed, and sends the batch's outcomes.
fn sync_each<E: From<rusqlite::Error>>(shared: &Shared<E>, committed: Receiver<Committed<E>>) {
    for batch in committed {
        let synced = match shared.durability.get() {
            Some(Durability::ByLogSync { log, .. }) => {
                if shared.sync_failed.load(Ordering::Acquire) {
                    Err(std::io::Error::other("an earlier sync of the log failed"))
                } else {
                    log.sync()
                }
            }
            _ => Ok(()),
        };
        crate::fault_points::crash_point("group_commit.before_answers");
        match synced {
            Ok(()) => answer_all(batch),
            Err(error) => {
                shared.sync_failed.store(true, Ordering::Release);
                tracing::error!(%error, "syncing the database log failed: new orders are refused until the node restarts");
                refuse_all(
                    batch.into_iter().map(|(reply, _)| reply),
                    &refused(SYNC_FAILED),
                );
            }
        }
    }
}

fn answer_all<E>(committed: Committed<E>) {
    for (reply, outcome) in committed {
        reply.send(outcome);
    }
}

const SYNC_FAILED: &str =
    "the database could not make a write durable; the node must restart before it takes new orders";

fn abandoned() -> rusqlite::Error {
    refused("the write was abandoned: the order book is closing")
}

fn set_synchronous(conn: &Connection, level: i64) -> Result<(), rusqlite::Error> {
    conn.pragma_update(None, "synchronous", level)
}

fn write_and_commit<E: From<rusqlite::Error>>(
    conn: &mut Connection,
    batch: Vec<Queued<E>>,
) -> Option<Committed<E>> {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => {
            refuse_all(batch.into_iter().map(|q| q.reply), &error);
            return None;
        }
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
            refuse_all(replies.chain(queued.map(|q| q.reply)), &error);
            return None;
        }
    }
    crate::fault_points::crash_point("group_commit.before_commit");
    match tx.commit() {
        Ok(()) => Some(outcomes),
        Err(error) => {
            // A write refused on its own keeps its reason; the others were not kept.
            for (reply, outcome) in outcomes {
                reply.send(outcome.and_then(|()| Err(copy(&error).into())));
            }
            None
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
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| write(conn)))
        .unwrap_or_else(|_| Err(refused("the write panicked; it was not kept").into()));
    match outcome {
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
    replies: impl Iterator<Item = Reply<E>>,
    error: &rusqlite::Error,
) {
    for reply in replies {
        reply.send(Err(copy(error).into()));
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

    fn wal_book() -> (tempfile::TempDir, Arc<Mutex<Connection>>) {
        let (dir, conn) = book();
        {
            let conn = lock(&conn);
            let mode: String = conn
                .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            conn.pragma_update(None, "synchronous", "FULL").unwrap();
        }
        (dir, conn)
    }

    fn synced_by(
        conn: &Arc<Mutex<Connection>>,
        hook: impl Fn() -> std::io::Result<()> + Send + Sync + 'static,
    ) -> GroupCommit<rusqlite::Error> {
        let durability = Durability::ByLogSync {
            log: LogSync::Hook(Box::new(hook)),
            restore: 2,
        };
        GroupCommit::start(conn.clone(), OnceLock::from(durability))
    }

    fn synchronous(conn: &Mutex<Connection>) -> i64 {
        lock(conn)
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap()
    }

    /// A queue whose first log sync signals `in_sync`, hangs until `release` is sent, then
    /// ends with `first`; later syncs succeed at once.
    struct FirstSyncHangs {
        queue: Arc<GroupCommit<rusqlite::Error>>,
        in_sync: std::sync::mpsc::Receiver<()>,
        release: std::sync::mpsc::Sender<()>,
    }

    impl FirstSyncHangs {
        /// Writes key `k` on a thread of its own.
        fn spawn(&self, k: i64) -> std::thread::JoinHandle<Result<(), rusqlite::Error>> {
            let queue = self.queue.clone();
            std::thread::spawn(move || queue.write(insert(k)))
        }

        fn wait_for_the_first_sync(&self) {
            self.in_sync
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap();
        }
    }

    fn first_sync_hangs(
        conn: &Arc<Mutex<Connection>>,
        first: fn() -> std::io::Result<()>,
    ) -> FirstSyncHangs {
        let (entered, in_sync) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = Mutex::new(released);
        let calls = std::sync::atomic::AtomicU32::new(0);
        let queue = Arc::new(synced_by(conn, move || {
            if calls.fetch_add(1, Ordering::SeqCst) > 0 {
                return Ok(());
            }
            entered.send(()).unwrap();
            lock(&released).recv().unwrap();
            first()
        }));
        FirstSyncHangs {
            queue,
            in_sync,
            release,
        }
    }

    #[test]
    fn a_database_in_wal_mode_is_synced_through_its_log() {
        let (_dir, conn) = wal_book();
        let queue = GroupCommit::<rusqlite::Error>::new(conn.clone());
        queue.write(insert(1)).unwrap();
        assert!(matches!(
            queue.shared.durability.get(),
            Some(Durability::ByLogSync {
                log: LogSync::File(_),
                restore: 2
            })
        ));
        assert_eq!(
            synchronous(&conn),
            2,
            "the connection syncs its other commits again"
        );
        let (_dir, conn) = book();
        let queue = GroupCommit::<rusqlite::Error>::new(conn.clone());
        queue.write(insert(1)).unwrap();
        assert!(matches!(
            queue.shared.durability.get(),
            Some(Durability::ByCommit)
        ));
    }

    #[test]
    fn a_batch_is_answered_after_its_log_sync_and_the_next_is_written_meanwhile() {
        let (_dir, conn) = wal_book();
        let hangs = first_sync_hangs(&conn, || Ok(()));
        let first = hangs.spawn(1);
        hangs.wait_for_the_first_sync();
        // Committed and visible, but not answered while its log sync runs.
        assert_eq!(keys(&conn), vec![1]);
        assert_eq!(synchronous(&conn), 2);
        // The next write is committed meanwhile; it is answered after its own sync, which
        // waits for the first.
        let second = hangs.spawn(2);
        while keys(&conn) != vec![1, 2] {
            std::thread::yield_now();
        }
        assert!(!first.is_finished() && !second.is_finished());
        hangs.release.send(()).unwrap();
        first.join().unwrap().unwrap();
        second.join().unwrap().unwrap();
    }

    #[test]
    fn a_failed_log_sync_refuses_its_batch_and_every_write_after_it() {
        let (_dir, conn) = wal_book();
        let queue = synced_by(&conn, || Err(std::io::Error::other("the disk refused")));
        let error = queue.write(insert(1)).unwrap_err().to_string();
        assert!(error.contains("durable"), "{error}");
        let error = queue.write(insert(2)).unwrap_err().to_string();
        assert!(error.contains("restart"), "{error}");
        assert_eq!(
            keys(&conn),
            vec![1],
            "nothing is written after a failed sync"
        );
    }

    #[test]
    fn a_batch_synced_after_a_failed_sync_is_refused_too() {
        let (_dir, conn) = wal_book();
        let hangs = first_sync_hangs(&conn, || Err(std::io::Error::other("the disk refused")));
        let first = hangs.spawn(1);
        hangs.wait_for_the_first_sync();
        // The second batch commits while the first one's sync hangs, then fails.
        let second = hangs.spawn(2);
        while keys(&conn) != vec![1, 2] {
            std::thread::yield_now();
        }
        hangs.release.send(()).unwrap();
        assert!(first.join().unwrap().is_err());
        let error = second.join().unwrap().unwrap_err().to_string();
        assert!(error.contains("durable"), "{error}");
    }

    #[test]
    fn a_failing_write_is_rolled_back_alone_and_keeps_its_error() {
        let (_dir, conn) = book();
        let queue = GroupCommit::new(conn.clone());
        queue.write(insert(1)).unwrap();
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
            let queue = queue.clone();
            std::thread::spawn(move || queue.write(write))
        })
        .collect();
        while lock(&queue.shared.queued).writes.len() < 3 {
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
        let queue = GroupCommit::new(conn.clone());
        // A deferred foreign key is checked at COMMIT: the batch's commit fails.
        let dangling: Write<rusqlite::Error> = Box::new(|conn| {
            conn.execute("INSERT INTO child (p) VALUES (7)", [])?;
            Ok(())
        });
        let held = lock(&conn);
        let queue = Arc::new(queue);
        let first = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.write(insert(5)))
        };
        let second = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.write(dangling))
        };
        while lock(&queue.shared.queued).writes.len() < 2 {
            std::thread::yield_now();
        }
        drop(held);
        assert!(first.join().unwrap().is_err());
        assert!(second.join().unwrap().is_err());
        assert!(keys(&conn).is_empty());
        // The connection is usable afterwards.
        queue.write(insert(6)).unwrap();
        assert_eq!(keys(&conn), vec![6]);
    }

    #[test]
    fn concurrent_writers_are_each_answered_once_their_write_is_kept() {
        let (_dir, conn) = book();
        let queue = Arc::new(GroupCommit::new(conn.clone()));
        let writers: Vec<_> = (0..16)
            .map(|t| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    for n in 0..25 {
                        queue.write(insert(t * 100 + n)).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        assert_eq!(keys(&conn).len(), 16 * 25);
        assert!(lock(&queue.shared.queued).writes.is_empty());
    }

    #[test]
    fn a_write_that_panics_does_not_stop_the_writes_after_it() {
        let (_dir, conn) = book();
        let queue = Arc::new(GroupCommit::<rusqlite::Error>::new(conn.clone()));
        let panicking = queue.write(Box::new(|conn| {
            conn.execute("INSERT INTO t (k, v) VALUES (8, 'half')", [])?;
            panic!("a write that panics")
        }));
        let error = panicking.unwrap_err().to_string();
        assert!(error.contains("panicked"), "{error}");
        let (done, answered) = std::sync::mpsc::channel();
        {
            let queue = queue.clone();
            std::thread::spawn(move || done.send(queue.write(insert(9))));
        }
        let outcome = answered
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a write after the panic is answered");
        outcome.unwrap();
        assert_eq!(keys(&conn), vec![9]);
    }

    #[tokio::test]
    async fn an_awaited_write_is_answered_once_its_batch_is_synced() {
        let (_dir, conn) = wal_book();
        let hangs = first_sync_hangs(&conn, || Ok(()));
        let queue = hangs.queue.clone();
        let write = tokio::spawn(async move { queue.write_async(insert(1)).await });
        let hangs = tokio::task::spawn_blocking(move || {
            hangs.wait_for_the_first_sync();
            hangs
        })
        .await
        .unwrap();
        assert_eq!(keys(&conn), vec![1], "committed while its sync runs");
        assert!(!write.is_finished(), "not answered before the sync");
        hangs.release.send(()).unwrap();
        write.await.unwrap().unwrap();
    }

    #[test]
    fn a_closed_queue_lets_its_connection_go() {
        let (_dir, conn) = wal_book();
        let queue = GroupCommit::<rusqlite::Error>::new(conn.clone());
        queue.write(insert(1)).unwrap();
        assert_eq!(Arc::strong_count(&conn), 2);
        drop(queue);
        assert_eq!(Arc::strong_count(&conn), 1, "the writer thread has ended");
    }
}
