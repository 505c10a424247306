//! SQLite store: one writer connection (so writers never fight over the lock) and a pool of
//! read-only connections, WAL journal with `synchronous=FULL` so a committed write survives a
//! power cut.

use super::sql::*;
use super::{Store, StoreError, StoreResult, WriteHealth, preflight};
use crate::clock::Millis;
use crate::domain::event::EventStatus;
use crate::domain::event_query::{EventFilter, EventOrderBy};
use crate::domain::function::{CodeUpdate, FunctionConfig, NewFunction};
use async_trait::async_trait;
use rust_embed::RustEmbed;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, QueryBuilder, Row, Sqlite};
use std::str::FromStr;
use std::time::Duration;
use writer::Writer;

#[derive(RustEmbed)]
#[folder = "migrations/sqlite"]
struct Migrations;

/// Runs the migrations not yet applied, each in one transaction with its bookkeeping, on a
/// connection of its own with foreign keys off: a migration that rebuilds a table (SQLite's
/// only way to change a constraint) must not cascade its drop into the tables that refer to
/// it, and the pragma cannot change inside a transaction. The references are checked after.
async fn migrate(options: &SqliteConnectOptions, path: &std::path::Path) -> anyhow::Result<()> {
    let mut conn = SqliteConnection::connect_with(&options.clone().foreign_keys(false))
        .await
        .map_err(|e| preflight::explain(path, e))?;
    migrator::<Migrations>()?
        .run(&mut conn)
        .await
        .map_err(|e| preflight::explain_migration(path, e))?;
    let broken: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT \"table\", rowid FROM pragma_foreign_key_check")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| preflight::explain(path, e))?;
    if let Some((table, _)) = broken.first() {
        anyhow::bail!(
            "the database at {} has {} rows whose references lead nowhere (the first in table {table}); restore it from a backup",
            path.display(),
            broken.len()
        );
    }
    conn.close()
        .await
        .map_err(|e| preflight::explain(path, e))?;
    Ok(())
}

/// Write transactions take the write lock when they begin: a deferred one that read first
/// fails at once (SQLITE_BUSY_SNAPSHOT) when another process wrote meanwhile, instead of
/// waiting for its turn as `busy_timeout` lets an immediate one do.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// ANALYZE where it would help (0x02) on every table, not only those this connection queried
/// (0x10000): the event lists are read by the reader pool, never by the writer. Without
/// statistics SQLite picks plans that make a list by status 25 times slower at 100k events.
const OPTIMIZE: &str = "PRAGMA optimize=0x10002";

/// Statuses the event queue's statements name, written into their text rather than bound: the
/// partial indexes of the queue and of running events depend on the status, and a bound value
/// that a plan depends on makes SQLite prepare the statement afresh at every execution.
const QUEUED: i64 = EventStatus::Queued.code();
const RUNNING: i64 = EventStatus::Running.code();

pub struct SqliteStore {
    writer: Writer,
    reader: SqlitePool,
    path: std::path::PathBuf,
    health: WriteHealth,
}

impl SqliteStore {
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let path = options.get_filename().to_path_buf();
        preflight::check(&path)?;
        let writer = Writer::open(options.clone(), &path).await?;
        migrate(&options, &path).await?;
        // Taking the write lock once now tells a locked or read-only database apart at start,
        // with its path, instead of at the first invocation.
        async {
            let mut conn = writer.lock().await?;
            conn.begin_with(BEGIN_WRITE).await?.rollback().await?;
            sqlx::query(OPTIMIZE).execute(&mut *conn).await
        }
        .await
        .map_err(|e| preflight::explain(&path, e))?;
        let readers = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
        let reader = SqlitePoolOptions::new()
            .max_connections(readers as u32)
            .connect_with(options.clone().read_only(true))
            .await
            .map_err(|e| preflight::explain(&path, e))?;
        Ok(Self {
            writer,
            reader,
            path,
            health: WriteHealth::default(),
        })
    }

    /// Caps the database at `pages` pages (`None`: SQLite's default), on the writer connection
    /// now and on every one opened later. Past the cap every write fails with SQLITE_FULL,
    /// exactly as on a full disk, which is how the fault tests make a disk fill up on cue.
    pub async fn limit_pages(&self, pages: Option<u64>) -> StoreResult<()> {
        Ok(self.writer.limit_pages(pages.unwrap_or(0)).await?)
    }

    /// The database's size in pages, as the writer sees it.
    pub async fn page_count(&self) -> StoreResult<u64> {
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&mut *self.writer.lock().await?)
            .await?;
        Ok(pages as u64)
    }

    /// Records the outcome of a write that should have reached the disk.
    fn track<T>(&self, result: Result<T, sqlx::Error>) -> StoreResult<T> {
        match result {
            Ok(v) => {
                self.health.succeeded();
                Ok(v)
            }
            Err(e) => {
                self.writer.failed(&e);
                let e = constraint(e);
                if let StoreError::Database(db) = &e {
                    self.health.failed(&describe_fault(db));
                }
                Err(e)
            }
        }
    }
}

async fn apply_page_limit(conn: &mut SqliteConnection, pages: u64) -> Result<(), sqlx::Error> {
    // 0 is not a valid cap; SQLite's own default is the largest page count it allows.
    let pages = if pages == 0 { 4_294_967_294 } else { pages };
    sqlx::query(AssertSqlSafe(format!("PRAGMA max_page_count = {pages}")))
        .execute(conn)
        .await?;
    Ok(())
}

/// A write failure in the user's terms: what happened to the disk, not SQLite's code alone.
fn describe_fault(e: &sqlx::Error) -> String {
    if let sqlx::Error::Database(db) = e {
        let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
        // Primary result codes are the low byte of extended ones.
        // SQLite's own text says the same in fewer words, so it is left out for these.
        let why = match code & 0xff {
            13 => "the disk is full, or the database reached its size limit (SQLITE_FULL)",
            8 => "the database file or its folder is read-only (SQLITE_READONLY)",
            10 => "a disk I/O error occurred (SQLITE_IOERR)",
            5 | 6 => "the database stayed locked by another process past the busy timeout",
            14 => "the database file cannot be opened (SQLITE_CANTOPEN)",
            11 | 26 => "the database file is damaged or is not a database",
            _ => "",
        };
        if !why.is_empty() {
            return why.to_string();
        }
    }
    e.to_string()
}

mod accounts;
mod catalog;
mod queries;
mod queue;
mod retention;
mod writer;

#[async_trait]
impl Store for SqliteStore {
    fn write_health(&self) -> &WriteHealth {
        &self.health
    }

    async fn probe_write(&self) -> StoreResult<()> {
        let result = async {
            let mut conn = self.writer.lock().await?;
            let mut tx = conn.begin_with(BEGIN_WRITE).await?;
            // Big enough to need fresh pages, as a batch of accepts does.
            sqlx::query("INSERT INTO store_probe (id, data) VALUES (1, zeroblob(65536))")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            sqlx::query("DELETE FROM store_probe")
                .execute(&mut *conn)
                .await?;
            Ok(())
        }
        .await;
        self.track(result)
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}
