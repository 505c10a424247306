//! The store interface: everything scf-console keeps, behind one trait so that SQLite (the
//! embedded default) and a server database can stand behind it alike.

pub mod accounts;
pub mod catalog;
pub mod postgres;
pub mod preflight;
pub mod queries;
pub mod queue;
pub mod retention;
mod sql;
pub mod sqlite;

pub use accounts::*;
pub use catalog::*;
pub use queries::*;
pub use queue::*;
pub use retention::*;

use crate::clock::Millis;
use crate::domain::event::EventStatus;
use async_trait::async_trait;
use std::sync::{Arc, Mutex};

/// Errors a caller can act on; anything else is a database failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique name is taken.
    #[error("already exists")]
    Conflict,
    /// A namespace still holds functions.
    #[error("namespace is not empty")]
    NotEmpty,
    /// A write asked for a move the status machine does not allow; nothing was written.
    #[error("an event cannot go from {from:?} to {to:?}")]
    IllegalTransition { from: EventStatus, to: EventStatus },
    /// An accept would take its namespace past its invocation quota; nothing was written.
    #[error("the namespace has used its invocation quota")]
    QuotaUsed,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

pub use crate::domain::event::{ClaimedEvent, TimelineEntry};
pub use crate::domain::function::CodeFile;
pub use crate::domain::function::{Function, FunctionKey};

/// Writes are failing: since when, how often, and why in the user's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFault {
    /// Unix milliseconds of the first failure in a row.
    pub since: Millis,
    pub failures: u64,
    pub error: String,
}

/// Whether the store's writes reach the disk. A failure is logged loudly when it starts (and
/// again every minute while it lasts), and the recovery when a write succeeds again.
#[derive(Debug, Default)]
pub struct WriteHealth {
    state: Mutex<HealthState>,
}

/// How long writes must go on succeeding before a fault counts as over. On a nearly full disk
/// small writes fit where large ones do not, and health must not flap with each of them.
const HEALED_AFTER_MS: Millis = 1_500;

#[derive(Debug, Default)]
struct HealthState {
    fault: Option<WriteFault>,
    /// The first success since the last failure, while a fault is open.
    succeeding_since: Option<Millis>,
    last_logged: Millis,
    /// Failed writes since start, for the System page.
    total_failures: u64,
}

fn unix_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

impl WriteHealth {
    pub fn failed(&self, error: &str) {
        self.failed_at(error, unix_millis());
    }

    fn failed_at(&self, error: &str, now: Millis) {
        let mut s = self.state.lock().expect("health lock");
        s.total_failures += 1;
        s.succeeding_since = None;
        match &mut s.fault {
            Some(fault) => {
                fault.failures += 1;
                fault.error = error.to_string();
                if now - s.last_logged >= 60_000 {
                    s.last_logged = now;
                    tracing::error!(
                        error,
                        failures = s.fault.as_ref().map_or(0, |f| f.failures),
                        "the store still cannot write: invocations are refused and nothing new runs"
                    );
                }
            }
            None => {
                s.last_logged = now;
                s.fault = Some(WriteFault {
                    since: now,
                    failures: 1,
                    error: error.to_string(),
                });
                tracing::error!(
                    error,
                    "the store cannot write: invocations are refused and nothing new runs until it can"
                );
            }
        }
    }

    pub fn succeeded(&self) {
        self.succeeded_at(unix_millis());
    }

    fn succeeded_at(&self, now: Millis) {
        let mut s = self.state.lock().expect("health lock");
        if s.fault.is_none() {
            return;
        }
        let since = *s.succeeding_since.get_or_insert(now);
        if now - since >= HEALED_AFTER_MS
            && let Some(fault) = s.fault.take()
        {
            s.succeeding_since = None;
            tracing::warn!(
                failures = fault.failures,
                seconds = (now - fault.since) / 1000,
                "the store writes again"
            );
        }
    }

    pub fn fault(&self) -> Option<WriteFault> {
        self.state.lock().expect("health lock").fault.clone()
    }

    pub fn total_failures(&self) -> u64 {
        self.state.lock().expect("health lock").total_failures
    }
}

/// The whole store: every consumer's part, plus what concerns the store itself.
#[async_trait]
pub trait Store:
    Catalog + Accounts + EventQueue + EventQueries + Retention + Send + Sync + 'static
{
    /// Whether writes reach the disk now.
    fn write_health(&self) -> &WriteHealth;

    /// Commits a small write and removes it again, to learn whether the disk takes writes
    /// while nothing else is writing (a failing store checks itself this way until it heals).
    async fn probe_write(&self) -> StoreResult<()>;

    /// Wakes `wake` whenever another node queues events, so that an idle node claims them
    /// within milliseconds rather than at its next poll. A store no other machine writes to
    /// has nothing to watch (processes sharing a SQLite file find new events by polling).
    async fn watch_queue(&self, wake: Arc<tokio::sync::Notify>) -> StoreResult<()> {
        let _ = wake;
        Ok(())
    }

    /// Flushes and closes connections on shutdown.
    async fn close(&self);
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store a database URL names, creating and migrating it.
pub async fn open(url: &str) -> anyhow::Result<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::PgStore::open(url).await?))
    } else {
        anyhow::bail!(
            "DATABASE_URL must start with sqlite:// or postgres:// (got {:?})",
            crate::config::redact_database_url(url)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::WriteHealth;

    #[test]
    fn a_write_fault_ends_only_after_writes_kept_succeeding() {
        let health = WriteHealth::default();
        health.failed_at("the disk is full", 10_000);
        health.failed_at("the disk is full", 10_100);
        // A small write fits on the nearly full disk; the next large one does not.
        health.succeeded_at(10_200);
        assert!(health.fault().is_some());
        health.failed_at("the disk is full", 10_300);
        health.succeeded_at(10_400);
        health.succeeded_at(11_000);
        let fault = health.fault().expect("still failing within the window");
        assert_eq!((fault.since, fault.failures), (10_000, 3));
        health.succeeded_at(11_900);
        assert_eq!(health.fault(), None);
        assert_eq!(health.total_failures(), 3);
    }
}
