//! SQLite store: one writer connection (so writers never fight over the lock) and a pool of
//! read-only connections, WAL journal with `synchronous=FULL` so a committed write survives a
//! power cut.

use super::{
    ApiKey, Billing, ClaimedEvent, CodeFile, EventPageQuery, EventRecord, EventStats, EventSummary,
    EventWrite, Function, FunctionKey, FunctionOrder, FunctionPage, FunctionQuery, Namespace,
    RenewedLease, RunLease, Store, StoreError, StoreResult, StoreSize, StoredTimeline, StrandedRun,
    Termination, TimelineEntry, WriteHealth, preflight,
};
use crate::clock::Millis;
use crate::domain::event::EventStatus;
use crate::domain::event_query::{EventFilter, EventOrderBy};
use crate::domain::function::{CodeUpdate, FunctionConfig, NewFunction};
use crate::domain::namespace::invocations_by_namespace;
use async_trait::async_trait;
use rust_embed::RustEmbed;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Connection, QueryBuilder, Row, SqlSafeStr, Sqlite};
use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(RustEmbed)]
#[folder = "migrations/sqlite"]
struct Migrations;

/// The migrations shipped in the binary, numbered by their file names (`0001_functions.sql`).
fn migrator() -> anyhow::Result<Migrator> {
    let mut migrations = Vec::new();
    for file in Migrations::iter() {
        let (version, description) = file
            .trim_end_matches(".sql")
            .split_once('_')
            .ok_or_else(|| anyhow::anyhow!("migration {file} is not named NNNN_name.sql"))?;
        let sql = String::from_utf8(Migrations::get(&file).expect("listed").data.into_owned())?;
        migrations.push(Migration::new(
            version.parse()?,
            Cow::Owned(description.replace('_', " ")),
            MigrationType::Simple,
            AssertSqlSafe(sql).into_sql_str(),
            false,
        ));
    }
    Ok(Migrator::with_migrations(migrations))
}

/// Write transactions take the write lock when they begin: a deferred one that read first
/// fails at once (SQLITE_BUSY_SNAPSHOT) when another process wrote meanwhile, instead of
/// waiting for its turn as `busy_timeout` lets an immediate one do.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// ANALYZE where it would help (0x02) on every table, not only those this connection queried
/// (0x10000): the event lists are read by the reader pool, never by the writer. Without
/// statistics SQLite picks plans that make a list by status 25 times slower at 100k events.
const OPTIMIZE: &str = "PRAGMA optimize=0x10002";

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    path: std::path::PathBuf,
    health: WriteHealth,
    /// `max_page_count` applied to every writer connection, 0 for SQLite's default.
    page_limit: Arc<AtomicU64>,
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
        let page_limit = Arc::new(AtomicU64::new(0));
        let limit = page_limit.clone();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .after_connect(move |conn, _| {
                let limit = limit.load(Ordering::Relaxed);
                Box::pin(async move { apply_page_limit(conn, limit).await })
            })
            // A failed write can leave the driver counting a transaction that SQLite already
            // rolled back by itself (SQLITE_FULL, SQLITE_IOERR do that): the ROLLBACK sent when
            // the transaction is dropped fails, and every later "commit" would be a savepoint
            // release that never reaches the disk. Such a connection is closed instead of
            // reused, and the pool opens a fresh one. The check is free: by the time the
            // connection is acquired again, the pool's ping on release has flushed the queued
            // rollback, so the driver's count is final. SQLite runs in this process, so the
            // ping before each acquire would only cost a round trip to its thread.
            .test_before_acquire(false)
            .before_acquire(|conn, _| Box::pin(async move { Ok(is_clean(conn)) }))
            .connect_with(options.clone())
            .await
            .map_err(|e| preflight::explain(&path, e))?;
        migrator()?
            .run(&writer)
            .await
            .map_err(|e| preflight::explain_migration(&path, e))?;
        // Taking the write lock once now tells a locked or read-only database apart at start,
        // with its path, instead of at the first invocation.
        async {
            let mut conn = writer.acquire().await?;
            conn.begin_with(BEGIN_WRITE).await?.rollback().await
        }
        .await
        .map_err(|e| preflight::explain(&path, e))?;
        sqlx::query(OPTIMIZE)
            .execute(&writer)
            .await
            .map_err(|e| preflight::explain(&path, e))?;
        let readers = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
        let reader = SqlitePoolOptions::new()
            .max_connections(readers as u32)
            .connect_with(options.read_only(true))
            .await
            .map_err(|e| preflight::explain(&path, e))?;
        Ok(Self {
            writer,
            reader,
            path,
            health: WriteHealth::default(),
            page_limit,
        })
    }

    /// Caps the database at `pages` pages (`None`: SQLite's default), on the writer connection
    /// now and on every one opened later. Past the cap every write fails with SQLITE_FULL,
    /// exactly as on a full disk, which is how the fault tests make a disk fill up on cue.
    pub async fn limit_pages(&self, pages: Option<u64>) -> StoreResult<()> {
        self.page_limit.store(pages.unwrap_or(0), Ordering::Relaxed);
        let mut conn = self.writer.acquire().await?;
        apply_page_limit(&mut conn, pages.unwrap_or(0)).await?;
        Ok(())
    }

    /// The database's size in pages, as the writer sees it.
    pub async fn page_count(&self) -> StoreResult<u64> {
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&self.writer)
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
                let e = constraint(e);
                if let StoreError::Database(db) = &e {
                    self.health.failed(&describe_fault(db));
                }
                Err(e)
            }
        }
    }
}

impl SqliteStore {
    /// Applies a batch of the engine's writes in one transaction. Every kind of write goes in
    /// as one statement for the whole batch: each statement is a round trip to SQLite's
    /// thread, and a batch may hold thousands of writes.
    ///
    /// Writes about a run are fenced on the run that owns them: they change an event only while
    /// it is RUNNING in the same attempt. A run that lost its event (terminated and recovered,
    /// deleted with its function, requeued by recovery) writes nothing.
    async fn apply_batch(&self, writes: &[EventWrite]) -> Result<(), sqlx::Error> {
        let mut inserts = Vec::new();
        let mut finishes = Vec::new();
        let mut requeues = Vec::new();
        let mut deletes: Vec<(i64, &RunLease)> = Vec::new();
        let mut timeline: Vec<(i64, &RunLease, &TimelineEntry)> = Vec::new();
        for write in writes {
            match write {
                EventWrite::Insert(e) => inserts.push(e),
                EventWrite::Note {
                    event_id,
                    run,
                    entry,
                } => timeline.push((*event_id, run, entry)),
                EventWrite::Finish {
                    event_id,
                    run,
                    traced: false,
                    ..
                } => deletes.push((*event_id, run)),
                EventWrite::Finish {
                    event_id,
                    run,
                    entry,
                    ..
                } => {
                    finishes.push(write);
                    timeline.push((*event_id, run, entry));
                }
                EventWrite::Requeue {
                    event_id,
                    run,
                    traced,
                    entry,
                    ..
                } => {
                    requeues.push(write);
                    if *traced {
                        timeline.push((*event_id, run, entry));
                    }
                }
            }
        }

        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let running = EventStatus::Running.code();
        for chunk in inserts.chunks(1000) {
            // The first timeline entry (queued) is not stored: it is read from the event's
            // own columns, which saves a row per accept.
            let mut b = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (request_id, function_id, invoke_type, status, traced, \
                 payload, enqueued_at, run_after) ",
            );
            b.push_values(chunk, |mut row, e| {
                row.push_bind(&e.request_id)
                    .push_bind(e.function_id)
                    .push_bind(&e.invoke_type)
                    .push_bind(EventStatus::Queued.code())
                    .push_bind(e.traced)
                    .push_bind(&e.payload)
                    .push_bind(e.enqueued_at)
                    .push_bind(e.enqueued_at);
            });
            b.build().execute(&mut *tx).await?;
        }
        let accepted = inserts
            .iter()
            .map(|e| (e.region.as_str(), e.namespace.as_str()));
        for (region, namespace, count) in invocations_by_namespace(accepted) {
            sqlx::query(
                "UPDATE namespaces SET invocations_used = invocations_used + ? \
                 WHERE region = ? AND name = ?",
            )
            .bind(count)
            .bind(region)
            .bind(namespace)
            .execute(&mut *tx)
            .await?;
        }
        let mut fenced_out = 0u64;
        // Timeline entries go first, while the fence (RUNNING in this attempt) still holds for
        // the transitions of this same batch.
        for (n, chunk) in timeline.chunks(1000).enumerate() {
            let mut b = QueryBuilder::<Sqlite>::new(
                "INSERT INTO event_timeline (event_id, at, status, detail) \
                 SELECT v.column1, v.column2, v.column3, v.column4 FROM (",
            );
            b.push_values(
                chunk.iter().enumerate(),
                |mut row, (i, (event_id, run, entry))| {
                    row.push_bind(*event_id)
                        .push_bind(entry.at)
                        .push_bind(entry.status.code())
                        .push_bind(&entry.detail)
                        .push_bind((n * 1000 + i) as i64)
                        .push_bind(run.attempt)
                        .push_bind(&run.owner)
                        .push_bind(run.until);
                },
            );
            b.push(") AS v JOIN events e ON e.id = v.column1 AND ");
            push_lease_fence(&mut b, "e", 6, running);
            b.push(" ORDER BY v.column5");
            let done = b.build().execute(&mut *tx).await?.rows_affected();
            fenced_out += chunk.len() as u64 - done;
        }
        for chunk in finishes.chunks(1000) {
            let mut b = QueryBuilder::<Sqlite>::new(
                "UPDATE events SET status = v.column2, status_code = v.column3, result = v.column4, \
                 error = v.column5, logs = v.column6, ended_at = v.column7, lease_until = NULL FROM (",
            );
            b.push_values(chunk, |mut row, w| {
                if let EventWrite::Finish {
                    event_id,
                    run,
                    status_code,
                    result,
                    error,
                    logs,
                    entry,
                    ..
                } = w
                {
                    row.push_bind(*event_id)
                        .push_bind(entry.status.code())
                        .push_bind(*status_code)
                        .push_bind(result)
                        .push_bind(error)
                        .push_bind(logs)
                        .push_bind(entry.at)
                        .push_bind(run.attempt)
                        .push_bind(&run.owner)
                        .push_bind(run.until);
                }
            });
            b.push(") AS v WHERE events.id = v.column1 AND ");
            push_lease_fence(&mut b, "events", 8, running);
            let done = b.build().execute(&mut *tx).await?.rows_affected();
            fenced_out += chunk.len() as u64 - done;
        }
        for chunk in requeues.chunks(1000) {
            let mut b = QueryBuilder::<Sqlite>::new(
                "UPDATE events SET status = v.column6, attempt = v.column2, run_after = v.column3, \
                 lease_until = NULL, lease_owner = '', error = v.column4, logs = v.column5 FROM (",
            );
            b.push_values(chunk, |mut row, w| {
                if let EventWrite::Requeue {
                    event_id,
                    run,
                    attempt,
                    run_after,
                    error,
                    logs,
                    ..
                } = w
                {
                    row.push_bind(*event_id)
                        .push_bind(*attempt)
                        .push_bind(*run_after)
                        .push_bind(error)
                        .push_bind(logs)
                        .push_bind(EventStatus::Queued.code())
                        .push_bind(run.attempt)
                        .push_bind(&run.owner)
                        .push_bind(run.until);
                }
            });
            b.push(") AS v WHERE events.id = v.column1 AND ");
            push_lease_fence(&mut b, "events", 7, running);
            let done = b.build().execute(&mut *tx).await?.rows_affected();
            fenced_out += chunk.len() as u64 - done;
        }
        for chunk in deletes.chunks(1000) {
            let mut b =
                QueryBuilder::<Sqlite>::new("DELETE FROM events WHERE id IN (SELECT e.id FROM (");
            b.push_values(chunk, |mut row, (id, run)| {
                row.push_bind(*id)
                    .push_bind(run.attempt)
                    .push_bind(&run.owner)
                    .push_bind(run.until);
            });
            b.push(") AS v JOIN events e ON e.id = v.column1 AND ");
            push_lease_fence(&mut b, "e", 2, running);
            b.push(")");
            let done = b.build().execute(&mut *tx).await?.rows_affected();
            fenced_out += chunk.len() as u64 - done;
        }
        tx.commit().await?;
        if fenced_out > 0 {
            tracing::warn!(
                writes = fenced_out,
                "writes of runs that no longer own their events were ignored"
            );
        }
        Ok(())
    }
}

/// The lease fence of a run's write: the event is RUNNING under the same owner and attempt
/// (and, for a takeover, the lease it read), where the attempt, owner and lease are the values
/// columns `first`, `first + 1` and `first + 2` of `v`.
fn push_lease_fence(b: &mut QueryBuilder<Sqlite>, table: &str, first: usize, running: i64) {
    let (attempt, owner, until) = (first, first + 1, first + 2);
    b.push(format_args!("{table}.status = "))
        .push_bind(running)
        .push(format_args!(
            " AND {table}.attempt = v.column{attempt} AND {table}.lease_owner = v.column{owner} \
             AND (v.column{until} IS NULL OR {table}.lease_until = v.column{until})"
        ));
}

async fn apply_page_limit(conn: &mut SqliteConnection, pages: u64) -> Result<(), sqlx::Error> {
    // 0 is not a valid cap; SQLite's own default is the largest page count it allows.
    let pages = if pages == 0 { 4_294_967_294 } else { pages };
    sqlx::query(AssertSqlSafe(format!("PRAGMA max_page_count = {pages}")))
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether a writer connection is outside any transaction, as the driver counts them.
fn is_clean(conn: &mut SqliteConnection) -> bool {
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!(
            "the store's writer connection was left inside a failed transaction; it is replaced"
        );
    }
    clean
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

const FUNCTION_COLUMNS: &str = "id, region, namespace, name, runtime, handler, description, \
     memory_size, timeout, environment, async_run_enable, trace_enable, retry_num, msg_ttl, \
     qps_limit, trace_disabled_at, created_at, modified_at";

fn function_from_row(row: &SqliteRow) -> Result<Function, sqlx::Error> {
    let environment: String = row.try_get("environment")?;
    Ok(Function {
        id: row.try_get("id")?,
        region: row.try_get("region")?,
        namespace: row.try_get("namespace")?,
        name: row.try_get("name")?,
        runtime: row.try_get("runtime")?,
        handler: row.try_get("handler")?,
        description: row.try_get("description")?,
        memory_size: row.try_get("memory_size")?,
        timeout: row.try_get("timeout")?,
        environment: serde_json::from_str(&environment)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        async_run_enable: row.try_get("async_run_enable")?,
        trace_enable: row.try_get("trace_enable")?,
        retry_num: row.try_get("retry_num")?,
        msg_ttl: row.try_get("msg_ttl")?,
        qps_limit: row.try_get("qps_limit")?,
        trace_disabled_at: row.try_get("trace_disabled_at")?,
        created_at: row.try_get("created_at")?,
        modified_at: row.try_get("modified_at")?,
    })
}

fn namespace_from_row(row: &SqliteRow) -> Result<Namespace, sqlx::Error> {
    Ok(Namespace {
        region: row.try_get("region")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
        function_count: row.try_get("function_count")?,
    })
}

const EVENT_SUMMARY_COLUMNS: &str = "id, request_id, status, status_code, invoke_type, qualifier, \
     attempt, enqueued_at, started_at, ended_at";

fn push_statuses(b: &mut QueryBuilder<Sqlite>, statuses: &[EventStatus]) {
    if !statuses.is_empty() {
        b.push(" AND status IN (");
        let mut list = b.separated(", ");
        for s in statuses {
            list.push_bind(s.code());
        }
        b.push(")");
    }
}

fn push_invoke_types(b: &mut QueryBuilder<Sqlite>, types: &[String]) {
    if !types.is_empty() {
        b.push(" AND invoke_type IN (");
        let mut list = b.separated(", ");
        for t in types {
            list.push_bind(t.clone());
        }
        b.push(")");
    }
}

/// The filter's conditions other than status (which the caller places itself).
fn push_event_filter(b: &mut QueryBuilder<Sqlite>, f: &EventFilter) {
    push_invoke_types(b, &f.invoke_types);
    if let Some(id) = &f.request_id {
        b.push(" AND request_id = ").push_bind(id.clone());
    }
    if let Some((from, to)) = f.start {
        b.push(" AND enqueued_at >= ").push_bind(from);
        b.push(" AND enqueued_at < ").push_bind(to);
    }
    if let Some((from, to)) = f.end {
        b.push(" AND ended_at >= ").push_bind(from);
        b.push(" AND ended_at < ").push_bind(to);
    }
}

fn status_of(code: i64) -> Result<EventStatus, sqlx::Error> {
    EventStatus::from_code(code)
        .ok_or_else(|| sqlx::Error::Protocol(format!("unknown event status {code}")))
}

fn event_from_row(row: &SqliteRow) -> Result<EventRecord, sqlx::Error> {
    Ok(EventRecord {
        id: row.try_get("id")?,
        request_id: row.try_get("request_id")?,
        function_id: row.try_get("function_id")?,
        function_name: row.try_get("function_name")?,
        region: row.try_get("region")?,
        namespace: row.try_get("namespace")?,
        qualifier: row.try_get("qualifier")?,
        invoke_type: row.try_get("invoke_type")?,
        status: status_of(row.try_get("status")?)?,
        status_code: row.try_get("status_code")?,
        attempt: row.try_get("attempt")?,
        traced: row.try_get("traced")?,
        payload: row.try_get("payload")?,
        result: row.try_get("result")?,
        error: row.try_get("error")?,
        logs: row.try_get("logs")?,
        enqueued_at: row.try_get("enqueued_at")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
    })
}

async fn add_timeline(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    event_id: i64,
    entry: &TimelineEntry,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO event_timeline (event_id, at, status, detail) VALUES (?, ?, ?, ?)")
        .bind(event_id)
        .bind(entry.at)
        .bind(entry.status.code())
        .bind(&entry.detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn api_key_from_row(row: &SqliteRow) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        secret_id: row.try_get("secret_id")?,
        secret_key: row.try_get("secret_key")?,
        description: row.try_get("description")?,
        enabled: row.try_get("enabled")?,
        created_at: row.try_get("created_at")?,
    })
}

async fn write_files(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    function_id: i64,
    files: &[CodeFile],
) -> Result<(), sqlx::Error> {
    for file in files {
        sqlx::query(
            "INSERT INTO function_files (function_id, path, content) VALUES (?, ?, ?) \
             ON CONFLICT (function_id, path) DO UPDATE SET content = excluded.content",
        )
        .bind(function_id)
        .bind(&file.path)
        .bind(&file.content)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Maps SQLite's constraint failures to what they mean for the caller.
fn constraint(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict;
        }
        if db.is_foreign_key_violation() {
            return StoreError::NotFound;
        }
    }
    StoreError::Database(e)
}

/// Escapes `%`, `_` and `\` so a search for `a_b` matches that text, not any character.
fn like_pattern(search: &str) -> String {
    let mut out = String::with_capacity(search.len() + 2);
    out.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

const NAMESPACE_SELECT: &str = "SELECT n.region, n.name, n.description, n.created_at, \
     (SELECT COUNT(*) FROM functions f WHERE f.region = n.region AND f.namespace = n.name) \
     AS function_count FROM namespaces n";

#[async_trait]
impl Store for SqliteStore {
    async fn ensure_namespace(&self, region: &str, name: &str, now: Millis) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO namespaces (region, name, created_at) VALUES (?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(region)
        .bind(name)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn list_namespaces(&self, region: &str) -> StoreResult<Vec<Namespace>> {
        // `default` first, then by name: the order of the namespace selector.
        let sql =
            format!("{NAMESPACE_SELECT} WHERE n.region = ? ORDER BY n.name != 'default', n.name");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(region)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows
            .iter()
            .map(namespace_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn get_namespace(&self, region: &str, name: &str) -> StoreResult<Option<Namespace>> {
        let sql = format!("{NAMESPACE_SELECT} WHERE n.region = ? AND n.name = ?");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(region)
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(namespace_from_row).transpose()?)
    }

    async fn create_namespace(
        &self,
        region: &str,
        name: &str,
        description: &str,
        now: Millis,
    ) -> StoreResult<Namespace> {
        sqlx::query(
            "INSERT INTO namespaces (region, name, description, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(region)
        .bind(name)
        .bind(description)
        .bind(now)
        .execute(&self.writer)
        .await
        .map_err(constraint)?;
        Ok(Namespace {
            region: region.into(),
            name: name.into(),
            description: description.into(),
            created_at: now,
            function_count: 0,
        })
    }

    async fn delete_namespace(&self, region: &str, name: &str) -> StoreResult<()> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let functions: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM functions WHERE region = ? AND namespace = ?")
                .bind(region)
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        if functions > 0 {
            return Err(StoreError::NotEmpty);
        }
        let deleted = sqlx::query("DELETE FROM namespaces WHERE region = ? AND name = ?")
            .bind(region)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_functions(
        &self,
        region: &str,
        namespace: &str,
        query: &FunctionQuery,
    ) -> StoreResult<FunctionPage> {
        // One WHERE clause for the page and its count, so they always agree.
        fn filter(b: &mut QueryBuilder<Sqlite>, region: &str, namespace: &str, q: &FunctionQuery) {
            b.push(" WHERE region = ").push_bind(region);
            b.push(" AND namespace = ").push_bind(namespace);
            if !q.search.trim().is_empty() {
                b.push(" AND name LIKE ")
                    .push_bind(like_pattern(q.search.trim()))
                    .push(" ESCAPE '\\'");
            }
            if !q.description.trim().is_empty() {
                b.push(" AND description LIKE ")
                    .push_bind(like_pattern(q.description.trim()))
                    .push(" ESCAPE '\\'");
            }
            if !q.runtimes.is_empty() {
                b.push(" AND runtime IN (");
                let mut list = b.separated(", ");
                for r in &q.runtimes {
                    list.push_bind(r.as_str());
                }
                b.push(")");
            }
            if let Some(a) = q.async_run_enable {
                b.push(" AND async_run_enable = ").push_bind(a);
            }
            if let Some(t) = q.trace_enable {
                b.push(" AND trace_enable = ").push_bind(t);
            }
        }
        let mut page = QueryBuilder::new(format!("SELECT {FUNCTION_COLUMNS} FROM functions"));
        filter(&mut page, region, namespace, query);
        let direction = if query.ascending { "ASC" } else { "DESC" };
        let column = match query.order_by {
            FunctionOrder::AddTime => "created_at",
            FunctionOrder::ModTime => "modified_at",
            FunctionOrder::FunctionName => "name",
        };
        page.push(format!(" ORDER BY {column} {direction}, id {direction}"));
        page.push(" LIMIT ").push_bind(query.limit);
        page.push(" OFFSET ").push_bind(query.offset);
        let rows = page.build().fetch_all(&self.reader).await?;

        let mut count = QueryBuilder::new("SELECT COUNT(*) FROM functions");
        filter(&mut count, region, namespace, query);
        let total: i64 = count.build_query_scalar().fetch_one(&self.reader).await?;
        Ok(FunctionPage {
            functions: rows
                .iter()
                .map(function_from_row)
                .collect::<Result<_, _>>()?,
            total,
        })
    }

    async fn get_function(&self, key: &FunctionKey) -> StoreResult<Option<Function>> {
        let sql = format!(
            "SELECT {FUNCTION_COLUMNS} FROM functions WHERE region = ? AND namespace = ? AND name = ?"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&key.region)
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(function_from_row).transpose()?)
    }

    async fn get_code(&self, function_id: i64) -> StoreResult<Vec<CodeFile>> {
        let rows = sqlx::query(
            "SELECT path, content FROM function_files WHERE function_id = ? ORDER BY path",
        )
        .bind(function_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(CodeFile {
                    path: r.try_get("path")?,
                    content: r.try_get("content")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn create_function(
        &self,
        region: &str,
        namespace: &str,
        f: &NewFunction,
        now: Millis,
    ) -> StoreResult<Function> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let sql = format!(
            "INSERT INTO functions (region, namespace, name, runtime, handler, description, \
             memory_size, timeout, environment, async_run_enable, trace_enable, retry_num, \
             msg_ttl, qps_limit, created_at, modified_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {FUNCTION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(region)
            .bind(namespace)
            .bind(&f.name)
            .bind(f.runtime.name)
            .bind(&f.handler)
            .bind(&f.config.description)
            .bind(f.config.memory_size)
            .bind(f.config.timeout)
            .bind(serde_json::to_string(&f.config.environment).expect("plain strings"))
            .bind(f.async_run_enable)
            .bind(f.config.trace_enable)
            .bind(f.config.retry_num)
            .bind(f.config.msg_ttl)
            .bind(f.config.qps_limit)
            .bind(now)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(constraint)?;
        let function = function_from_row(&row)?;
        write_files(&mut tx, function.id, &f.files).await?;
        tx.commit().await?;
        Ok(function)
    }

    async fn update_function_config(
        &self,
        key: &FunctionKey,
        c: &FunctionConfig,
        trace_disabled_at: Option<Millis>,
        now: Millis,
    ) -> StoreResult<Function> {
        let sql = format!(
            "UPDATE functions SET description = ?, memory_size = ?, timeout = ?, environment = ?, \
             trace_disabled_at = ?, trace_enable = ?, retry_num = ?, msg_ttl = ?, qps_limit = ?, \
             modified_at = ? WHERE region = ? AND namespace = ? AND name = ? \
             RETURNING {FUNCTION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&c.description)
            .bind(c.memory_size)
            .bind(c.timeout)
            .bind(serde_json::to_string(&c.environment).expect("plain strings"))
            .bind(trace_disabled_at)
            .bind(c.trace_enable)
            .bind(c.retry_num)
            .bind(c.msg_ttl)
            .bind(c.qps_limit)
            .bind(now)
            .bind(&key.region)
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(&self.writer)
            .await?;
        row.as_ref()
            .map(function_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn update_function_code(
        &self,
        key: &FunctionKey,
        code: &CodeUpdate,
        now: Millis,
    ) -> StoreResult<Function> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let sql = format!(
            "UPDATE functions SET handler = ?, modified_at = ? \
             WHERE region = ? AND namespace = ? AND name = ? RETURNING {FUNCTION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&code.handler)
            .bind(now)
            .bind(&key.region)
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let function = function_from_row(&row)?;
        if code.replace_all {
            sqlx::query("DELETE FROM function_files WHERE function_id = ?")
                .bind(function.id)
                .execute(&mut *tx)
                .await?;
        }
        write_files(&mut tx, function.id, &code.files).await?;
        tx.commit().await?;
        Ok(function)
    }

    async fn delete_function(&self, key: &FunctionKey) -> StoreResult<()> {
        let deleted =
            sqlx::query("DELETE FROM functions WHERE region = ? AND namespace = ? AND name = ?")
                .bind(&key.region)
                .bind(&key.namespace)
                .bind(&key.name)
                .execute(&self.writer)
                .await?
                .rows_affected();
        if deleted == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (secret_id, secret_key, description, enabled, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&key.secret_id)
        .bind(&key.secret_key)
        .bind(&key.description)
        .bind(key.enabled)
        .bind(key.created_at)
        .execute(&self.writer)
        .await
        .map_err(constraint)?;
        Ok(())
    }

    async fn put_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (secret_id, secret_key, description, enabled, created_at) \
             VALUES (?, ?, ?, 1, ?) ON CONFLICT (secret_id) DO UPDATE SET \
             secret_key = excluded.secret_key, description = excluded.description, enabled = 1",
        )
        .bind(&key.secret_id)
        .bind(&key.secret_key)
        .bind(&key.description)
        .bind(key.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn get_api_key(&self, secret_id: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query(
            "SELECT secret_id, secret_key, description, enabled, created_at FROM api_keys \
             WHERE secret_id = ?",
        )
        .bind(secret_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(api_key_from_row).transpose()?)
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query(
            "SELECT secret_id, secret_key, description, enabled, created_at FROM api_keys \
             ORDER BY created_at, secret_id",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(api_key_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn set_api_key_enabled(&self, secret_id: &str, enabled: bool) -> StoreResult<()> {
        let changed = sqlx::query("UPDATE api_keys SET enabled = ? WHERE secret_id = ?")
            .bind(enabled)
            .bind(secret_id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        if changed == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn delete_api_key(&self, secret_id: &str) -> StoreResult<()> {
        let deleted = sqlx::query("DELETE FROM api_keys WHERE secret_id = ?")
            .bind(secret_id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        if deleted == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn get_function_by_id(&self, id: i64) -> StoreResult<Option<Function>> {
        let sql = format!("SELECT {FUNCTION_COLUMNS} FROM functions WHERE id = ?");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(function_from_row).transpose()?)
    }

    async fn apply_event_writes(&self, writes: &[EventWrite]) -> StoreResult<()> {
        for write in writes {
            write.check()?;
        }
        let result = self.apply_batch(writes).await;
        self.track(result)
    }

    fn write_health(&self) -> &WriteHealth {
        &self.health
    }

    async fn probe_write(&self) -> StoreResult<()> {
        let result = async {
            let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
            // Big enough to need fresh pages, as a batch of accepts does.
            sqlx::query("INSERT INTO store_probe (id, data) VALUES (1, zeroblob(65536))")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            sqlx::query("DELETE FROM store_probe")
                .execute(&self.writer)
                .await?;
            Ok(())
        }
        .await;
        self.track(result)
    }

    async fn claim_events(
        &self,
        now: Millis,
        limit: u32,
        owner: &str,
        lease_until: Millis,
    ) -> StoreResult<Vec<ClaimedEvent>> {
        let queued = EventStatus::Queued.code();
        let rows = sqlx::query(
            "UPDATE events SET status = ?, started_at = ?, lease_owner = ?, lease_until = ? \
             WHERE status = ? AND id IN (SELECT id FROM events WHERE status = ? AND run_after <= ? \
                          ORDER BY run_after, id LIMIT ?) \
             RETURNING id, request_id, function_id, invoke_type, attempt, traced, payload, \
                       enqueued_at, terminate",
        )
        .bind(EventStatus::Running.code())
        .bind(now)
        .bind(owner)
        .bind(lease_until)
        .bind(queued)
        .bind(queued)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.writer)
        .await?;
        let mut claimed = rows
            .iter()
            .map(|r| {
                Ok(ClaimedEvent {
                    id: r.try_get("id")?,
                    request_id: r.try_get("request_id")?,
                    function_id: r.try_get("function_id")?,
                    invoke_type: r.try_get("invoke_type")?,
                    attempt: r.try_get("attempt")?,
                    traced: r.try_get("traced")?,
                    payload: r.try_get("payload")?,
                    enqueued_at: r.try_get("enqueued_at")?,
                    terminate: r.try_get("terminate")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        // RETURNING gives no order guarantee: run them oldest first.
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    async fn renew_leases(
        &self,
        owner: &str,
        runs: &[(i64, u32)],
        lease_until: Millis,
    ) -> StoreResult<Vec<RenewedLease>> {
        let mut renewed = Vec::with_capacity(runs.len());
        for chunk in runs.chunks(1000) {
            let mut b = QueryBuilder::<Sqlite>::new("UPDATE events SET lease_until = ");
            b.push_bind(lease_until).push(" FROM (");
            b.push_values(chunk, |mut row, (id, attempt)| {
                row.push_bind(*id).push_bind(*attempt).push_bind(owner);
            });
            b.push(") AS v WHERE events.id = v.column1 AND events.status = ")
                .push_bind(EventStatus::Running.code())
                .push(
                    " AND events.attempt = v.column2 AND events.lease_owner = v.column3 \
                     RETURNING events.id, events.terminate",
                );
            let rows = b.build().fetch_all(&self.writer).await?;
            for row in rows {
                renewed.push(RenewedLease {
                    event_id: row.try_get("id")?,
                    terminate: row.try_get("terminate")?,
                });
            }
        }
        Ok(renewed)
    }

    async fn lease_owners(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT lease_owner FROM events WHERE status = ? AND lease_owner != ''",
        )
        .bind(EventStatus::Running.code())
        .fetch_all(&self.reader)
        .await?)
    }

    async fn stranded_runs(
        &self,
        now: Millis,
        dead_owners: &[String],
        limit: u32,
    ) -> StoreResult<Vec<StrandedRun>> {
        let mut b = QueryBuilder::<Sqlite>::new(
            "SELECT e.id, e.request_id, e.attempt, e.traced, e.terminate, e.lease_owner, \
             e.lease_until, f.retry_num FROM events e JOIN functions f ON f.id = e.function_id \
             WHERE e.status = ",
        );
        b.push_bind(EventStatus::Running.code())
            .push(" AND (e.lease_until IS NULL OR e.lease_until < ")
            .push_bind(now);
        if !dead_owners.is_empty() {
            b.push(" OR e.lease_owner IN (");
            let mut list = b.separated(", ");
            for owner in dead_owners {
                list.push_bind(owner);
            }
            b.push(")");
        }
        b.push(") ORDER BY e.id LIMIT ").push_bind(limit);
        let rows = b.build().fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| {
                Ok(StrandedRun {
                    id: r.try_get("id")?,
                    request_id: r.try_get("request_id")?,
                    traced: r.try_get("traced")?,
                    terminate: r.try_get("terminate")?,
                    retry_num: r.try_get("retry_num")?,
                    lease: RunLease {
                        owner: r.try_get("lease_owner")?,
                        attempt: r.try_get("attempt")?,
                        until: r.try_get("lease_until")?,
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn get_event(&self, request_id: &str) -> StoreResult<Option<EventRecord>> {
        let row = sqlx::query(
            "SELECT e.id, e.request_id, e.function_id, f.name AS function_name, f.region, \
             f.namespace, e.qualifier, e.invoke_type, e.status, e.status_code, e.attempt, \
             e.traced, e.payload, e.result, e.error, e.logs, e.enqueued_at, e.started_at, \
             e.ended_at FROM events e JOIN functions f ON f.id = e.function_id \
             WHERE e.request_id = ?",
        )
        .bind(request_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(event_from_row).transpose()?)
    }

    async fn list_events(
        &self,
        function_id: i64,
        filter: &EventFilter,
        page: &EventPageQuery,
    ) -> StoreResult<Vec<EventSummary>> {
        let desc = !filter.ascending;
        let (order_col, dir, cmp) = match (filter.order_by, desc) {
            (EventOrderBy::StartTime, true) => ("enqueued_at", "DESC", "<"),
            (EventOrderBy::StartTime, false) => ("enqueued_at", "ASC", ">"),
            (EventOrderBy::EndTime, true) => ("ended_at", "DESC", "<"),
            (EventOrderBy::EndTime, false) => ("ended_at", "ASC", ">"),
        };
        let keyset = page
            .after
            .filter(|_| filter.order_by == EventOrderBy::StartTime);
        let wanted = page.offset.saturating_add(page.limit);
        // One branch per status, each read in order from the status index and cut at the
        // rows wanted, then merged: a multi-status filter never sorts all matching rows.
        let branches: Vec<Option<EventStatus>> = if filter.statuses.is_empty() {
            vec![None]
        } else {
            filter.statuses.iter().copied().map(Some).collect()
        };
        let mut b = QueryBuilder::<Sqlite>::new(format!("SELECT {EVENT_SUMMARY_COLUMNS} FROM ("));
        for (i, status) in branches.iter().enumerate() {
            if i > 0 {
                b.push(" UNION ALL ");
            }
            b.push(format!(
                "SELECT * FROM (SELECT {EVENT_SUMMARY_COLUMNS} FROM events WHERE function_id = "
            ));
            b.push_bind(function_id);
            b.push(" AND traced = 1");
            if let Some(st) = status {
                b.push(" AND status = ").push_bind(st.code());
            }
            push_event_filter(&mut b, filter);
            if let Some((value, id)) = keyset {
                b.push(format!(" AND ({order_col}, id) {cmp} ("))
                    .push_bind(value)
                    .push(", ")
                    .push_bind(id)
                    .push(")");
            }
            b.push(format!(" ORDER BY {order_col} {dir}, id {dir} LIMIT "))
                .push_bind(wanted)
                .push(")");
        }
        b.push(format!(") ORDER BY {order_col} {dir}, id {dir} LIMIT "))
            .push_bind(page.limit)
            .push(" OFFSET ")
            .push_bind(page.offset);
        let rows = b.build().fetch_all(&self.reader).await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(EventSummary {
                    id: r.try_get("id")?,
                    request_id: r.try_get("request_id")?,
                    status: status_of(r.try_get("status")?)?,
                    status_code: r.try_get("status_code")?,
                    invoke_type: r.try_get("invoke_type")?,
                    qualifier: r.try_get("qualifier")?,
                    attempt: r.try_get("attempt")?,
                    enqueued_at: r.try_get("enqueued_at")?,
                    started_at: r.try_get("started_at")?,
                    ended_at: r.try_get("ended_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn count_matching_events(
        &self,
        function_id: i64,
        filter: &EventFilter,
    ) -> StoreResult<i64> {
        let count_rows = |from: Option<Millis>, to: Option<Millis>| {
            let mut b =
                QueryBuilder::<Sqlite>::new("SELECT COUNT(*) FROM events WHERE function_id = ");
            b.push_bind(function_id).push(" AND traced = 1");
            push_statuses(&mut b, &filter.statuses);
            push_event_filter(
                &mut b,
                &EventFilter {
                    start: None,
                    ..filter.clone()
                },
            );
            if let Some(from) = from {
                b.push(" AND enqueued_at >= ").push_bind(from);
            }
            if let Some(to) = to {
                b.push(" AND enqueued_at < ").push_bind(to);
            }
            b
        };
        // The rollups know counts per minute of enqueue, status and invocation type: anything
        // finer (a RequestId, an end-time range) is counted on the events themselves.
        if filter.request_id.is_some() || filter.end.is_some() {
            let (from, to) = filter
                .start
                .map_or((None, None), |(f, t)| (Some(f), Some(t)));
            return Ok(count_rows(from, to)
                .build_query_scalar()
                .fetch_one(&self.reader)
                .await?);
        }
        let (first_minute, end_minute) = match filter.start {
            None => (i64::MIN, i64::MAX),
            Some((from, to)) => ((from + 59_999).div_euclid(60_000), to.div_euclid(60_000)),
        };
        let mut total: i64 = 0;
        if first_minute < end_minute {
            let mut b = QueryBuilder::<Sqlite>::new(
                "SELECT COALESCE(SUM(count), 0) FROM event_rollups WHERE function_id = ",
            );
            b.push_bind(function_id);
            b.push(" AND minute >= ").push_bind(first_minute);
            b.push(" AND minute < ").push_bind(end_minute);
            push_statuses(&mut b, &filter.statuses);
            push_invoke_types(&mut b, &filter.invoke_types);
            total += b
                .build_query_scalar::<i64>()
                .fetch_one(&self.reader)
                .await?;
            // The partial minutes at both ends are counted row by row.
            if let Some((from, to)) = filter.start {
                for (f, t) in [(from, first_minute * 60_000), (end_minute * 60_000, to)] {
                    if f < t {
                        total += count_rows(Some(f), Some(t))
                            .build_query_scalar::<i64>()
                            .fetch_one(&self.reader)
                            .await?;
                    }
                }
            }
        } else if let Some((from, to)) = filter.start {
            total = count_rows(Some(from), Some(to))
                .build_query_scalar()
                .fetch_one(&self.reader)
                .await?;
        }
        Ok(total)
    }

    async fn event_stats(
        &self,
        function_id: i64,
        from: Millis,
        to: Millis,
        bucket: Millis,
    ) -> StoreResult<EventStats> {
        let (first, end) = (from.div_euclid(60_000), (to + 59_999).div_euclid(60_000));
        let bucket_minutes = (bucket / 60_000).max(1);
        let rows = sqlx::query(
            "SELECT (minute / ?) * ? AS bucket, status, SUM(count) AS n FROM event_rollups \
             WHERE function_id = ? AND minute >= ? AND minute < ? \
             GROUP BY bucket, status ORDER BY bucket",
        )
        .bind(bucket_minutes)
        .bind(bucket_minutes)
        .bind(function_id)
        .bind(first)
        .bind(end)
        .fetch_all(&self.reader)
        .await?;
        let mut stats = EventStats::default();
        for r in &rows {
            let minute: i64 = r.try_get("bucket")?;
            let status = status_of(r.try_get("status")?)?;
            let n: i64 = r.try_get("n")?;
            if n == 0 {
                continue;
            }
            let at = minute * 60_000;
            if stats.series.last().is_none_or(|(b, _)| *b != at) {
                stats.series.push((at, [0; 5]));
            }
            let slot = status.code() as usize;
            stats.series.last_mut().expect("pushed").1[slot] += n;
            stats.by_status[slot] += n;
        }
        let rows = sqlx::query(
            "SELECT bucket, SUM(count) AS n FROM event_durations \
             WHERE function_id = ? AND minute >= ? AND minute < ? GROUP BY bucket ORDER BY bucket",
        )
        .bind(function_id)
        .bind(first)
        .bind(end)
        .fetch_all(&self.reader)
        .await?;
        for r in &rows {
            stats
                .durations
                .push((r.try_get("bucket")?, r.try_get("n")?));
        }
        Ok(stats)
    }

    async fn count_events(&self, function_id: i64) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE function_id = ?")
                .bind(function_id)
                .fetch_one(&self.reader)
                .await?,
        )
    }

    async fn stored_timeline(&self, event_id: i64) -> StoreResult<Option<StoredTimeline>> {
        // One read transaction, so the event and its entries are one snapshot.
        let mut tx = self.reader.begin().await?;
        let Some(head) = sqlx::query("SELECT enqueued_at, invoke_type FROM events WHERE id = ?")
            .bind(event_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT at, status, detail FROM event_timeline WHERE event_id = ? ORDER BY id",
        )
        .bind(event_id)
        .fetch_all(&mut *tx)
        .await?;
        let entries = rows
            .iter()
            .map(|r| {
                Ok(TimelineEntry {
                    at: r.try_get("at")?,
                    status: status_of(r.try_get("status")?)?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(Some(StoredTimeline {
            enqueued_at: head.try_get("enqueued_at")?,
            invoke_type: head.try_get("invoke_type")?,
            entries,
        }))
    }

    async fn request_termination(
        &self,
        request_id: &str,
        mode: &str,
        aborted: &TimelineEntry,
        status_code: i64,
    ) -> StoreResult<Termination> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let row = sqlx::query("SELECT id, status, traced FROM events WHERE request_id = ?")
            .bind(request_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let id: i64 = row.try_get("id")?;
        let traced: bool = row.try_get("traced")?;
        let status = status_of(row.try_get("status")?)?;
        let outcome = match status {
            EventStatus::Queued if !traced => {
                sqlx::query("DELETE FROM events WHERE id = ? AND status = ?")
                    .bind(id)
                    .bind(status.code())
                    .execute(&mut *tx)
                    .await?;
                Termination::AbortedWhileQueued
            }
            EventStatus::Queued => {
                sqlx::query(
                    "UPDATE events SET status = ?, status_code = ?, ended_at = ?, terminate = ? \
                     WHERE id = ? AND status = ?",
                )
                .bind(aborted.status.code())
                .bind(status_code)
                .bind(aborted.at)
                .bind(mode)
                .bind(id)
                .bind(status.code())
                .execute(&mut *tx)
                .await?;
                add_timeline(&mut tx, id, aborted).await?;
                Termination::AbortedWhileQueued
            }
            EventStatus::Running => {
                sqlx::query("UPDATE events SET terminate = ? WHERE id = ? AND status = ?")
                    .bind(mode)
                    .bind(id)
                    .bind(status.code())
                    .execute(&mut *tx)
                    .await?;
                Termination::Running
            }
            other => Termination::NotRunning(other),
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn namespace_billing(
        &self,
        region: &str,
        namespace: &str,
    ) -> StoreResult<Option<Billing>> {
        let row = sqlx::query(
            "SELECT suspended, invocation_quota, invocations_used FROM namespaces \
             WHERE region = ? AND name = ?",
        )
        .bind(region)
        .bind(namespace)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row
            .map(|r| {
                Ok::<_, sqlx::Error>(Billing {
                    suspended: r.try_get("suspended")?,
                    invocation_quota: r.try_get("invocation_quota")?,
                    invocations_used: r.try_get("invocations_used")?,
                })
            })
            .transpose()?)
    }

    async fn set_namespace_billing(
        &self,
        region: &str,
        namespace: &str,
        suspended: bool,
        invocation_quota: Option<i64>,
    ) -> StoreResult<()> {
        let changed = sqlx::query(
            "UPDATE namespaces SET suspended = ?, invocation_quota = ? WHERE region = ? AND name = ?",
        )
        .bind(suspended)
        .bind(invocation_quota)
        .bind(region)
        .bind(namespace)
        .execute(&self.writer)
        .await?
        .rows_affected();
        if changed == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn sweep_events(&self, cutoff: Millis, limit: u32) -> StoreResult<u64> {
        Ok(sqlx::query(
            "DELETE FROM events WHERE id IN (SELECT id FROM events \
             WHERE ended_at < ? AND status IN (?, ?, ?) ORDER BY ended_at LIMIT ?)",
        )
        .bind(cutoff)
        .bind(EventStatus::Finished.code())
        .bind(EventStatus::Failed.code())
        .bind(EventStatus::Aborted.code())
        .bind(limit)
        .execute(&self.writer)
        .await?
        .rows_affected())
    }

    async fn trim_rollups(&self, cutoff: Millis) -> StoreResult<u64> {
        let minute = cutoff.div_euclid(60_000);
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let a = sqlx::query("DELETE FROM event_rollups WHERE minute < ? AND count <= 0")
            .bind(minute)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let b = sqlx::query("DELETE FROM event_durations WHERE minute < ?")
            .bind(minute)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(a + b)
    }

    async fn optimize(&self) -> StoreResult<()> {
        sqlx::query(OPTIMIZE).execute(&self.writer).await?;
        Ok(())
    }

    async fn size(&self) -> StoreResult<StoreSize> {
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&self.reader)
            .await?;
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&self.reader)
            .await?;
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&self.reader)
            .await?;
        let wal = std::fs::metadata(format!("{}-wal", self.path.display())).map_or(0, |m| m.len());
        Ok(StoreSize {
            bytes: (page_size * pages) as u64 + wal,
            free_bytes: (page_size * free) as u64,
        })
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("a_b%"), "%a\\_b\\%%");
        assert_eq!(like_pattern(""), "%%");
    }
}
