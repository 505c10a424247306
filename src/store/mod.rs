//! The store interface: everything scf-console keeps, behind one trait so that SQLite (the
//! embedded default) and a server database can stand behind it alike.

pub mod preflight;
pub mod sqlite;

use crate::clock::Millis;
use crate::domain::event::EventStatus;
use crate::domain::event_query::EventFilter;
use crate::domain::function::{CodeUpdate, FunctionConfig, NewFunction};
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
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub region: String,
    pub name: String,
    pub description: String,
    pub created_at: Millis,
    pub function_count: i64,
}

pub use crate::domain::event::{ClaimedEvent, TimelineEntry};
pub use crate::domain::function::CodeFile;
pub use crate::domain::function::{Function, FunctionKey};

/// How the function list is sorted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FunctionOrder {
    #[default]
    AddTime,
    ModTime,
    FunctionName,
}

/// A page of the function list, with the SCF ListFunctions filters.
#[derive(Debug, Clone, Default)]
pub struct FunctionQuery {
    /// Substring of the name, case-insensitive.
    pub search: String,
    /// Substring of the description, case-insensitive.
    pub description: String,
    /// Only these runtimes, when not empty.
    pub runtimes: Vec<String>,
    pub async_run_enable: Option<bool>,
    pub trace_enable: Option<bool>,
    pub order_by: FunctionOrder,
    pub ascending: bool,
    pub offset: u32,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub secret_id: String,
    pub secret_key: String,
    pub description: String,
    pub enabled: bool,
    pub created_at: Millis,
}

#[derive(Debug, Clone)]
pub struct FunctionPage {
    pub functions: Vec<Function>,
    pub total: i64,
}

/// An accepted invocation, written before the caller gets its RequestId.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub request_id: String,
    pub function_id: i64,
    pub region: String,
    pub namespace: String,
    pub invoke_type: String,
    pub traced: bool,
    pub payload: String,
    pub enqueued_at: Millis,
}

/// A stored event as the console and the API show it.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: i64,
    pub request_id: String,
    pub function_id: i64,
    pub function_name: String,
    pub region: String,
    pub namespace: String,
    pub qualifier: String,
    pub invoke_type: String,
    pub status: EventStatus,
    pub status_code: Option<i64>,
    pub attempt: u32,
    pub traced: bool,
    pub payload: String,
    pub result: Option<String>,
    pub error: Option<String>,
    pub logs: Option<String>,
    pub enqueued_at: Millis,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
}

/// Which run of an event a write belongs to: the node holding its lease, and the attempt. A
/// write lands only while the event is RUNNING under that same lease, so a run that lost its
/// event (terminated and taken over, deleted with its function, reclaimed by another node)
/// changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLease {
    /// The node id that claimed the event ('' for rows claimed before nodes had ids).
    pub owner: String,
    pub attempt: u32,
    /// For a takeover: the lease's expiry as read, so a lease renewed meanwhile is not taken.
    pub until: Option<Millis>,
}

/// The engine's writes, applied many to one transaction by the group-commit writer.
#[derive(Debug, Clone)]
pub enum EventWrite {
    Insert(NewEvent),
    /// A note on the timeline without a change of status (started on an instance).
    Note {
        event_id: i64,
        run: RunLease,
        entry: TimelineEntry,
    },
    /// The event ended. Untraced events are deleted instead: nothing of them is kept.
    Finish {
        event_id: i64,
        run: RunLease,
        traced: bool,
        status_code: i64,
        result: Option<String>,
        error: Option<String>,
        logs: Option<String>,
        entry: TimelineEntry,
    },
    /// Back to the queue for another attempt, not before `run_after`.
    Requeue {
        event_id: i64,
        run: RunLease,
        traced: bool,
        attempt: u32,
        run_after: Millis,
        error: Option<String>,
        logs: Option<String>,
        entry: TimelineEntry,
    },
}

impl EventWrite {
    /// The status move a write makes, if any (runs write from RUNNING).
    pub fn transition(&self) -> Option<(EventStatus, EventStatus)> {
        match self {
            EventWrite::Insert(_) | EventWrite::Note { .. } => None,
            EventWrite::Finish { entry, .. } | EventWrite::Requeue { entry, .. } => {
                Some((EventStatus::Running, entry.status))
            }
        }
    }

    /// Refuses a move the status machine does not allow, before anything is written: every
    /// backend checks its batches with it.
    pub fn check(&self) -> StoreResult<()> {
        match self.transition() {
            Some((from, to)) if !from.can_move_to(to) || self.lands_on() != Some(to) => {
                Err(StoreError::IllegalTransition { from, to })
            }
            _ => Ok(()),
        }
    }

    /// Where the write leaves the event: a finish ends it, a requeue queues it.
    fn lands_on(&self) -> Option<EventStatus> {
        match self {
            EventWrite::Finish { entry, .. } if entry.status.is_terminal() => Some(entry.status),
            EventWrite::Requeue { .. } => Some(EventStatus::Queued),
            _ => None,
        }
    }

    /// The write's kind and the event it is about, for logs: payloads and logs stay out.
    pub fn describe(&self) -> String {
        match self {
            EventWrite::Insert(e) => format!("insert {}", e.request_id),
            EventWrite::Note { event_id, run, .. } => {
                format!("note on event {event_id}, attempt {}", run.attempt)
            }
            EventWrite::Finish { event_id, run, .. } => {
                format!("end of event {event_id}, attempt {}", run.attempt)
            }
            EventWrite::Requeue { event_id, run, .. } => {
                format!("requeue of event {event_id}, attempt {}", run.attempt)
            }
        }
    }
}

/// What asking to terminate an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Termination {
    /// It had not started: it is ABORTED now.
    AbortedWhileQueued,
    /// It runs: the engine must stop it.
    Running,
    /// It had already ended (or is untraced and unknown).
    NotRunning(EventStatus),
}

/// A running event whose lease this node renewed, with a terminate request if a user (on any
/// node) asked for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewedLease {
    pub event_id: i64,
    pub terminate: Option<String>,
}

/// What the store keeps of an event's timeline (see [`Store::event_timeline`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTimeline {
    pub enqueued_at: Millis,
    pub invoke_type: String,
    pub entries: Vec<TimelineEntry>,
}

/// A RUNNING event whose node is gone: its lease ran out, or its owner is known dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrandedRun {
    pub id: i64,
    pub request_id: String,
    pub traced: bool,
    pub terminate: Option<String>,
    /// The function's RetryNum, which decides whether it runs again.
    pub retry_num: u32,
    pub lease: RunLease,
}

/// One row of an event list: never the heavy columns (payload, result, logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSummary {
    pub id: i64,
    pub request_id: String,
    pub status: EventStatus,
    pub status_code: Option<i64>,
    pub invoke_type: String,
    pub qualifier: String,
    pub attempt: u32,
    pub enqueued_at: Millis,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
}

/// Which page of a list: after a cursor (keyset, for start-time order), or at an offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventPageQuery {
    pub offset: u32,
    pub limit: u32,
    /// `(enqueued_at, id)` of the last row of the previous page.
    pub after: Option<(Millis, i64)>,
}

/// Statistics of a time window, from the rollups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventStats {
    /// Counts in the order of `event_query::ALL_STATUSES`.
    pub by_status: [i64; 5],
    /// `(bucket start, counts per status)`, oldest first, empty buckets left out.
    pub series: Vec<(Millis, [i64; 5])>,
    /// `(upper bound in ms, count)` of run times of ended events, shortest first.
    pub durations: Vec<(i64, i64)>,
}

/// How big the store is on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreSize {
    /// The database file and its write-ahead log.
    pub bytes: u64,
    /// Pages freed by deletions, reused before the file grows.
    pub free_bytes: u64,
}

/// A namespace's billing state, checked before an invocation is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Billing {
    pub suspended: bool,
    pub invocation_quota: Option<i64>,
    pub invocations_used: i64,
}

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

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a namespace if missing; used for `default` in every region at start.
    async fn ensure_namespace(&self, region: &str, name: &str, now: Millis) -> StoreResult<()>;
    async fn list_namespaces(&self, region: &str) -> StoreResult<Vec<Namespace>>;
    async fn get_namespace(&self, region: &str, name: &str) -> StoreResult<Option<Namespace>>;
    /// Fails with `Conflict` when the name is taken in the region.
    async fn create_namespace(
        &self,
        region: &str,
        name: &str,
        description: &str,
        now: Millis,
    ) -> StoreResult<Namespace>;
    /// Fails with `NotEmpty` while the namespace holds functions, so nothing is lost by accident.
    async fn delete_namespace(&self, region: &str, name: &str) -> StoreResult<()>;

    async fn list_functions(
        &self,
        region: &str,
        namespace: &str,
        query: &FunctionQuery,
    ) -> StoreResult<FunctionPage>;
    async fn get_function(&self, key: &FunctionKey) -> StoreResult<Option<Function>>;
    async fn get_code(&self, function_id: i64) -> StoreResult<Vec<CodeFile>>;
    /// Fails with `Conflict` when the name is taken in the namespace, `NotFound` when the
    /// namespace does not exist.
    async fn create_function(
        &self,
        region: &str,
        namespace: &str,
        function: &NewFunction,
        now: Millis,
    ) -> StoreResult<Function>;
    /// Saves the settings; `trace_disabled_at` as [`Function::trace_disabled_after`] decides.
    async fn update_function_config(
        &self,
        key: &FunctionKey,
        config: &FunctionConfig,
        trace_disabled_at: Option<Millis>,
        now: Millis,
    ) -> StoreResult<Function>;
    async fn update_function_code(
        &self,
        key: &FunctionKey,
        code: &CodeUpdate,
        now: Millis,
    ) -> StoreResult<Function>;
    async fn delete_function(&self, key: &FunctionKey) -> StoreResult<()>;

    /// Fails with `Conflict` when the SecretId exists.
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    /// Creates or replaces a key given by configuration, enabling it.
    async fn put_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    async fn get_api_key(&self, secret_id: &str) -> StoreResult<Option<ApiKey>>;
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>>;
    async fn set_api_key_enabled(&self, secret_id: &str, enabled: bool) -> StoreResult<()>;
    async fn delete_api_key(&self, secret_id: &str) -> StoreResult<()>;

    async fn get_function_by_id(&self, id: i64) -> StoreResult<Option<Function>>;

    /// Applies the engine's writes in one transaction (one fsync for all of them).
    async fn apply_event_writes(&self, writes: &[EventWrite]) -> StoreResult<()>;
    /// Moves up to `limit` due queued events to RUNNING, held by `owner` until `lease_until`.
    async fn claim_events(
        &self,
        now: Millis,
        limit: u32,
        owner: &str,
        lease_until: Millis,
    ) -> StoreResult<Vec<ClaimedEvent>>;
    /// Extends the leases `owner` still holds of `runs` (`(event id, attempt)`) and returns
    /// them, with their terminate requests; a run left out was lost (taken over or deleted).
    async fn renew_leases(
        &self,
        owner: &str,
        runs: &[(i64, u32)],
        lease_until: Millis,
    ) -> StoreResult<Vec<RenewedLease>>;
    /// The nodes holding RUNNING events (other than `''`), to learn which of them are gone.
    async fn lease_owners(&self) -> StoreResult<Vec<String>>;
    /// RUNNING events whose lease ended before `now`, or whose owner is one of `dead_owners`.
    async fn stranded_runs(
        &self,
        now: Millis,
        dead_owners: &[String],
        limit: u32,
    ) -> StoreResult<Vec<StrandedRun>>;
    async fn get_event(&self, request_id: &str) -> StoreResult<Option<EventRecord>>;
    /// A page of a function's traced events, light columns only.
    async fn list_events(
        &self,
        function_id: i64,
        filter: &EventFilter,
        page: &EventPageQuery,
    ) -> StoreResult<Vec<EventSummary>>;
    /// How many traced events match, from the rollups where the filter allows.
    async fn count_matching_events(
        &self,
        function_id: i64,
        filter: &EventFilter,
    ) -> StoreResult<i64>;
    /// Statistics of `[from, to)` (by enqueue time), in buckets of `bucket` milliseconds.
    async fn event_stats(
        &self,
        function_id: i64,
        from: Millis,
        to: Millis,
        bucket: Millis,
    ) -> StoreResult<EventStats>;
    /// How many event records a function has (shown before it is deleted).
    async fn count_events(&self, function_id: i64) -> StoreResult<i64>;
    /// An event's stored timeline: its entries after the first, which is made of the event's
    /// own columns (it is not stored twice). `None` when the event does not exist.
    async fn stored_timeline(&self, event_id: i64) -> StoreResult<Option<StoredTimeline>>;
    /// An event's whole timeline, oldest first (empty when the event does not exist).
    async fn event_timeline(&self, event_id: i64) -> StoreResult<Vec<TimelineEntry>> {
        let Some(stored) = self.stored_timeline(event_id).await? else {
            return Ok(Vec::new());
        };
        let mut all = Vec::with_capacity(stored.entries.len() + 1);
        all.push(TimelineEntry {
            at: stored.enqueued_at,
            status: EventStatus::Queued,
            detail: crate::domain::event::timeline::queued(&stored.invoke_type),
        });
        all.extend(stored.entries);
        Ok(all)
    }
    /// Marks a request to terminate (`mode`: `grace` or `force`): a queued event is aborted at
    /// once with `aborted` on its timeline and `status_code`; a running one is flagged for the
    /// node running it.
    async fn request_termination(
        &self,
        request_id: &str,
        mode: &str,
        aborted: &TimelineEntry,
        status_code: i64,
    ) -> StoreResult<Termination>;
    async fn namespace_billing(
        &self,
        region: &str,
        namespace: &str,
    ) -> StoreResult<Option<Billing>>;
    async fn set_namespace_billing(
        &self,
        region: &str,
        namespace: &str,
        suspended: bool,
        invocation_quota: Option<i64>,
    ) -> StoreResult<()>;

    /// Deletes up to `limit` events that ended before `cutoff` (with their timelines; the
    /// rollups follow by trigger). Queued and running events are never touched.
    async fn sweep_events(&self, cutoff: Millis, limit: u32) -> StoreResult<u64>;
    /// Drops rollup rows older than `cutoff` that no longer count anything, and run-time
    /// histograms of minutes before it.
    async fn trim_rollups(&self, cutoff: Millis) -> StoreResult<u64>;
    async fn size(&self) -> StoreResult<StoreSize>;
    /// Refreshes the query planner's statistics of tables whose size changed a lot since they
    /// were last gathered; cheap when none did.
    async fn optimize(&self) -> StoreResult<()>;

    /// Whether writes reach the disk now.
    fn write_health(&self) -> &WriteHealth;
    /// Commits a small write and removes it again, to learn whether the disk takes writes
    /// while nothing else is writing (a failing store checks itself this way until it heals).
    async fn probe_write(&self) -> StoreResult<()>;

    /// Flushes and closes connections on shutdown.
    async fn close(&self);
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store a database URL names, creating and migrating it.
pub async fn open(url: &str) -> anyhow::Result<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        anyhow::bail!(
            "PostgreSQL is not supported by this version of scf-console yet; use a sqlite:// URL"
        )
    } else {
        anyhow::bail!("DATABASE_URL must start with sqlite:// (got {url:?})")
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
