//! PostgreSQL store: for several scf-console nodes on one database. One pool serves reads and
//! writes; PostgreSQL orders concurrent writers itself (row locks, `FOR UPDATE SKIP LOCKED`
//! claims), so there is no single writer as on SQLite. Commits wait for the WAL flush
//! (`synchronous_commit` is forced on for our sessions), so an acknowledged accept survives a
//! crash of the database server.

use super::sql::*;
use super::{Store, StoreError, StoreResult, WriteHealth};
use crate::domain::event::EventStatus;
use async_trait::async_trait;
use rust_embed::RustEmbed;
use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

mod accounts;
mod catalog;
mod queries;
mod queue;
mod retention;

#[derive(RustEmbed)]
#[folder = "migrations/postgres"]
struct Migrations;

/// The notification channel of the store in `schema`, within PostgreSQL's 63 bytes (a cut
/// name shared with another store only wakes its nodes for nothing).
fn queue_channel(schema: &str) -> String {
    let mut channel = format!("scf_queue {schema}");
    while channel.len() > 63 {
        channel.pop();
    }
    channel
}

/// Connections per node. Enough for the engine's writer, its claims and renewals, and the
/// console's pages at once; a database's `max_connections` (100 by default) bounds the nodes.
const POOL_SIZE: u32 = 16;

/// Statuses named in statement text, as on SQLite: the partial indexes depend on them.
const QUEUED: i64 = EventStatus::Queued.code();
const RUNNING: i64 = EventStatus::Running.code();

pub struct PgStore {
    pool: PgPool,
    health: WriteHealth,
    /// The task listening for other nodes' new events, stopped on close.
    watcher: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The channel a batch of accepts notifies once committed, idle nodes of the same store
    /// listen on: named after the store's schema, since channels are per database and
    /// several stores may share one.
    channel: String,
}

impl PgStore {
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let shown = crate::config::redact_database_url(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| anyhow::anyhow!("DATABASE_URL {shown} is not a PostgreSQL URL: {e}"))?
            // Durability does not depend on the server's defaults: a commit is answered
            // only once it is on disk.
            .options([("synchronous_commit", "on")])
            .application_name("scf-console");
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to the database at {shown}: {e}"))?;
        migrator::<Migrations>()?
            .run(&pool)
            .await
            .map_err(|e| anyhow::anyhow!("cannot migrate the database at {shown}: {e}"))?;
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await?;
        Ok(Self {
            pool,
            health: WriteHealth::default(),
            watcher: std::sync::Mutex::new(None),
            channel: queue_channel(&schema),
        })
    }

    /// Tells idle nodes that new events are queued. Sent after the accepts' commit, on its
    /// own: a NOTIFY inside the batch's transaction would take PostgreSQL's notification lock
    /// at commit and hold it through the fsync, so every node's accepts would commit one at a
    /// time. One lost (the connection failing here) costs the idle nodes their next poll.
    async fn notify_queued(&self) {
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
            .bind(&self.channel)
            .execute(&self.pool)
            .await
        {
            tracing::debug!(error = %e, "could not notify other nodes of new events");
        }
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

/// A write failure in the user's terms.
fn describe_fault(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => {
            let why = match db.code().as_deref() {
                Some("53100") => "the database server's disk is full (disk_full)",
                Some("53200") => "the database server is out of memory",
                Some("53300") => "the database server has no connection to spare",
                Some("25006") => {
                    "the database is read-only (a standby, or default_transaction_read_only)"
                }
                Some("57P01" | "57P02" | "57P03") => {
                    "the database server is shutting down or starting"
                }
                _ => "",
            };
            if why.is_empty() {
                e.to_string()
            } else {
                why.to_string()
            }
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            format!("the database server cannot be reached ({e})")
        }
        _ => e.to_string(),
    }
}

#[async_trait]
impl Store for PgStore {
    fn write_health(&self) -> &WriteHealth {
        &self.health
    }

    async fn probe_write(&self) -> StoreResult<()> {
        let result = async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO store_probe (id, data) VALUES (1, decode(repeat('00', 65536), 'hex')) \
                 ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            sqlx::query("DELETE FROM store_probe")
                .execute(&self.pool)
                .await?;
            Ok(())
        }
        .await;
        self.track(result)
    }

    async fn watch_queue(&self, wake: Arc<Notify>) -> StoreResult<()> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(&self.channel).await?;
        let task = tokio::spawn(async move {
            loop {
                match listener.try_recv().await {
                    Ok(Some(_)) => wake.notify_one(),
                    // The connection was lost and is made again at the next call: what was
                    // notified meanwhile is lost, so the queue is looked at once now.
                    Ok(None) => wake.notify_one(),
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(e) => {
                        // The listener connects again at the next `recv`; what was notified
                        // meanwhile is lost, so the queue is looked at once now.
                        tracing::warn!(error = %e, "lost the database connection listening for new events");
                        wake.notify_one();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        if let Some(old) = self.watcher.lock().expect("watcher lock").replace(task) {
            old.abort();
        }
        Ok(())
    }

    async fn close(&self) {
        if let Some(task) = self.watcher.lock().expect("watcher lock").take() {
            task.abort();
        }
        self.pool.close().await;
    }
}
