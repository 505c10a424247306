//! The retention sweeper: deletes events that ended longer than the retention ago, with their
//! timelines and rollup counts, in small batches that leave room for accepts and claims.
//! Queued and running events are never swept. Expired sessions and audit entries older than
//! the audit retention go in the same run.

use crate::clock::{Clock, Millis};
use crate::store::{DynStore, StoreResult};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Rows deleted per transaction: short enough that a waiting writer is never held up long.
pub const BATCH: u32 = 2000;
/// The sweeper leaves the writer alone for this many times as long as its last batch took, so
/// it never takes more than a fifth of the writer's time however much there is to delete.
const YIELD_FACTOR: u32 = 4;

/// How long audit entries are kept unless configured otherwise.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// What the sweeper did last, for the System page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepStatus {
    pub runs: u64,
    pub last_run: Option<Millis>,
    pub last_removed: u64,
    pub last_duration_ms: u64,
    pub total_removed: u64,
    /// Sweeps that failed since start.
    pub failures: u64,
    pub next_run: Option<Millis>,
    pub last_error: Option<String>,
}

pub struct Sweeper {
    store: DynStore,
    clock: Clock,
    retention: Duration,
    audit_retention_ms: AtomicU64,
    interval_ms: AtomicU64,
    status: Mutex<SweepStatus>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Sweeper {
    pub fn new(store: DynStore, clock: Clock, retention: Duration, interval: Duration) -> Self {
        Sweeper {
            store,
            clock,
            retention,
            audit_retention_ms: AtomicU64::new(DEFAULT_AUDIT_RETENTION.as_millis() as u64),
            interval_ms: AtomicU64::new(interval.as_millis() as u64),
            status: Mutex::new(SweepStatus::default()),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    pub fn retention(&self) -> Duration {
        self.retention
    }

    pub fn audit_retention(&self) -> Duration {
        Duration::from_millis(self.audit_retention_ms.load(Ordering::Relaxed))
    }

    pub fn set_audit_retention(&self, retention: Duration) {
        self.audit_retention_ms
            .store(retention.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.load(Ordering::Relaxed))
    }

    pub fn set_interval(&self, interval: Duration) {
        self.interval_ms
            .store(interval.as_millis().max(1) as u64, Ordering::Relaxed);
    }

    pub fn status(&self) -> SweepStatus {
        self.status.lock().expect("sweeper status").clone()
    }

    /// Starts the periodic sweep, owned by the app: `stop` ends it.
    pub fn start(self: &std::sync::Arc<Self>) {
        let me = std::sync::Arc::clone(self);
        self.tasks.spawn(async move {
            loop {
                let every = me.interval();
                me.status.lock().expect("sweeper status").next_run =
                    Some(me.clock.now_millis() + every.as_millis() as Millis);
                tokio::select! {
                    _ = me.cancel.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                if let Err(e) = me.run_once().await {
                    tracing::error!(error = %e, "retention sweep failed; it runs again at the next interval");
                }
            }
        });
        self.tasks.close();
    }

    pub async fn stop(&self) {
        self.cancel.cancel();
        self.tasks.wait().await;
    }

    /// One sweep: everything that ended before now minus the retention.
    pub async fn run_once(&self) -> StoreResult<u64> {
        let started = Instant::now();
        let now = self.clock.now_millis();
        let cutoff = now - self.retention.as_millis() as Millis;
        let audit_cutoff = now - self.audit_retention().as_millis() as Millis;
        let mut removed = 0;
        let result = async {
            removed += self
                .in_batches(|limit| self.store.sweep_events(cutoff, limit))
                .await?;
            // A deleted function's events were kept as long as any other's: it goes now.
            self.in_batches(|limit| self.store.sweep_deleted_functions(cutoff, limit))
                .await?;
            self.store.trim_rollups(cutoff).await?;
            let audit = self
                .in_batches(|limit| self.store.sweep_audit(audit_cutoff, limit))
                .await?;
            let sessions = self.store.sweep_sessions(now).await?;
            if audit + sessions > 0 {
                tracing::info!(
                    audit,
                    sessions,
                    "retention sweep removed old audit entries and expired sessions"
                );
            }
            // The events table grows and shrinks by orders of magnitude: the planner's
            // statistics follow, or lists by status fall back to slow plans.
            self.store.optimize().await
        }
        .await;
        let mut status = self.status.lock().expect("sweeper status");
        status.runs += 1;
        status.last_run = Some(now);
        status.last_removed = removed;
        status.total_removed += removed;
        status.last_duration_ms = started.elapsed().as_millis() as u64;
        status.last_error = result.as_ref().err().map(ToString::to_string);
        status.failures += u64::from(result.is_err());
        if removed > 0 {
            tracing::info!(removed, "retention sweep removed ended events");
        }
        result.map(|_| removed)
    }

    /// Runs `sweep` batch after batch until one comes back short, leaving the writer to others
    /// between batches.
    async fn in_batches<F, Fut>(&self, sweep: F) -> StoreResult<u64>
    where
        F: Fn(u32) -> Fut,
        Fut: std::future::Future<Output = StoreResult<u64>>,
    {
        let mut removed = 0;
        loop {
            let batch_started = Instant::now();
            let n = sweep(BATCH).await?;
            removed += n;
            if n < u64::from(BATCH) || self.cancel.is_cancelled() {
                return Ok(removed);
            }
            // Let accepts, claims and page reads have the writer between batches.
            let pause = (batch_started.elapsed() * YIELD_FACTOR).max(Duration::from_millis(10));
            tokio::time::sleep(pause).await;
        }
    }
}
