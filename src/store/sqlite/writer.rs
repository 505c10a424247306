//! The store's one writer connection, so that writers never fight over SQLite's write lock.
//!
//! It is owned behind a mutex rather than kept in a pool of one: a pool pings each connection
//! given back to it, and with SQLite every statement, the ping included, is a round trip to the
//! connection's own thread. On the accept path that was one round trip in three.

use super::{apply_page_limit, preflight};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard, Notify};
use tokio_util::sync::CancellationToken;

/// How long the checkpointer lets writes gather before it copies them into the database file:
/// a page written again meanwhile is copied once. The writer's own checkpoint stays on at
/// SQLite's threshold (1000 pages) as a backstop, so the WAL never grows past what it did
/// before: a checkpoint needs free space to copy into, and a WAL grown large on a disk that
/// filled up could not be checkpointed once a little space is freed.
const CHECKPOINT_AFTER: Duration = Duration::from_millis(100);

/// The pause after a checkpoint failed.
const CHECKPOINT_RETRY: Duration = Duration::from_secs(1);

pub(super) struct Writer {
    conn: Mutex<Option<SqliteConnection>>,
    options: SqliteConnectOptions,
    /// `max_page_count` applied to every connection opened, 0 for SQLite's default.
    page_limit: Arc<AtomicU64>,
    /// Set when a write failed in a way that leaves the connection unusable: the next `lock`
    /// opens a fresh one.
    broken: AtomicBool,
    /// Once cancelled, every `lock` fails and the checkpointer stops (closing its connection).
    closed: CancellationToken,
    /// Told of every write, for the checkpointer.
    wrote: Arc<Notify>,
    /// Taken by `close`, to wait for it.
    checkpointer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Writer {
    /// A store dropped without `close` (one that failed to open, say) leaves no checkpointer
    /// behind holding a connection.
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// The writer connection, held until dropped.
pub(super) type WriterGuard<'a> = MappedMutexGuard<'a, SqliteConnection>;

impl Writer {
    pub async fn open(options: SqliteConnectOptions, path: &Path) -> anyhow::Result<Writer> {
        let closed = CancellationToken::new();
        let wrote = Arc::<Notify>::default();
        let checkpointer = tokio::spawn(checkpoints(
            options.clone(),
            Arc::clone(&wrote),
            closed.clone(),
        ));
        let writer = Writer {
            conn: Mutex::new(None),
            options,
            page_limit: Arc::new(AtomicU64::new(0)),
            broken: AtomicBool::new(false),
            closed,
            wrote,
            checkpointer: std::sync::Mutex::new(Some(checkpointer)),
        };
        drop(
            writer
                .lock()
                .await
                .map_err(|e| preflight::explain(path, e))?,
        );
        Ok(writer)
    }

    /// The connection, for as long as the guard is held; a fresh one if the last was lost.
    pub async fn lock(&self) -> Result<WriterGuard<'_>, sqlx::Error> {
        let mut conn = self.conn.lock().await;
        if self.closed.is_cancelled() {
            return Err(sqlx::Error::PoolClosed);
        }
        if self.broken.swap(false, Ordering::Relaxed) && conn.take().is_some() {
            tracing::warn!("the store's writer connection failed; it is replaced");
        }
        if let Some(c) = conn.as_mut() {
            if c.is_in_transaction() {
                // A transaction dropped unfinished has its rollback queued on the connection's
                // thread; a ping waits for it.
                let _ = c.ping().await;
            }
            if c.is_in_transaction() {
                // A failed write can leave the driver counting a transaction that SQLite already
                // rolled back by itself (SQLITE_FULL, SQLITE_IOERR do that): its ROLLBACK fails,
                // and every later "commit" would be a savepoint release that never reaches the
                // disk. Such a connection is replaced, not reused.
                tracing::warn!(
                    "the store's writer connection was left inside a failed transaction; it is replaced"
                );
                conn.take();
            }
        }
        if conn.is_none() {
            let mut c = SqliteConnection::connect_with(&self.options).await?;
            apply_page_limit(&mut c, self.page_limit.load(Ordering::Relaxed)).await?;
            *conn = Some(c);
        }
        self.wrote.notify_one();
        Ok(MutexGuard::map(conn, |c| {
            c.as_mut().expect("connected above")
        }))
    }

    /// Caps the database at `pages` pages (0: SQLite's default), now and on every connection
    /// opened later.
    pub async fn limit_pages(&self, pages: u64) -> Result<(), sqlx::Error> {
        self.page_limit.store(pages, Ordering::Relaxed);
        apply_page_limit(&mut *self.lock().await?, pages).await
    }

    /// Notes a failed write: one that says the connection itself is gone (its thread ended,
    /// or I/O with it failed) has the next `lock` open a fresh connection, as a pool would.
    pub fn failed(&self, e: &sqlx::Error) {
        if matches!(e, sqlx::Error::WorkerCrashed | sqlx::Error::Io(_)) {
            self.broken.store(true, Ordering::Relaxed);
        }
    }

    /// Closes the connection; every later `lock` fails.
    pub async fn close(&self) {
        let mut conn = self.conn.lock().await;
        self.closed.cancel();
        let checkpointer = self.checkpointer.lock().expect("checkpointer").take();
        if let Some(checkpointer) = checkpointer {
            let _ = checkpointer.await;
        }
        if let Some(conn) = conn.take() {
            let _ = conn.close().await;
        }
    }
}

/// Copies committed pages from the WAL into the database file on a connection of its own, a
/// moment after writes. SQLite's own checkpoint runs inside the commit that crosses its
/// threshold, on the writer's thread: every thousand pages one commit (and every write queued
/// behind it, accepts included) waited for the copy and an fsync of the database file. A
/// passive checkpoint takes no lock that writers or readers wait for, and when it has copied
/// everything, the writer's next transaction starts the WAL over.
async fn checkpoints(options: SqliteConnectOptions, wrote: Arc<Notify>, closed: CancellationToken) {
    let mut conn: Option<SqliteConnection> = None;
    // Between writes and a checkpoint; longer after a failure (a full disk, a read-only
    // file), so that every burst of writes does not open a connection that fails again.
    let mut pause = CHECKPOINT_AFTER;
    while closed
        .run_until_cancelled(async {
            wrote.notified().await;
            tokio::time::sleep(pause).await;
        })
        .await
        .is_some()
    {
        pause = CHECKPOINT_AFTER;
        if conn.is_none() {
            match SqliteConnection::connect_with(&options).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!(error = %e, "the checkpointer could not connect; the writer checkpoints meanwhile");
                    pause = CHECKPOINT_RETRY;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(c)
            .await
        {
            // The writer's own checkpoint is the backstop meanwhile.
            tracing::debug!(error = %e, "checkpoint failed");
            conn = None;
            pause = CHECKPOINT_RETRY;
        }
    }
    // Closed here rather than dropped, so that the store is closed when `close` returns: the
    // last connection to close checkpoints everything and removes the WAL.
    if let Some(c) = conn {
        let _ = c.close().await;
    }
}
