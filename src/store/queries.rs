//! Event queries: one event, its timeline, lists, counts and statistics; what the Event
//! Management page and the API's event actions read.

use super::StoreResult;
use crate::clock::Millis;
use crate::domain::event::EventStatus;
use crate::domain::event::TimelineEntry;
use crate::domain::event_query::EventFilter;
use async_trait::async_trait;

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
    pub invoked_by: Option<String>,
    pub rerun_of: Option<String>,
}

/// What the store keeps of an event's timeline (see [`Store::event_timeline`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTimeline {
    pub enqueued_at: Millis,
    pub invoke_type: String,
    pub invoked_by: Option<String>,
    pub rerun_of: Option<String>,
    pub entries: Vec<TimelineEntry>,
}

/// One row of an event list: never the heavy columns (payload, result, logs).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventSummary {
    pub id: i64,
    pub request_id: String,
    #[sqlx(try_from = "i64")]
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
    /// `(enqueued_at, id)` of the first row of the next page: the page before it, paging
    /// backwards (in start-time order; `after` is then not used).
    pub before: Option<(Millis, i64)>,
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
    /// Every ended event's run time in ms, shortest first, when the window holds at most
    /// [`EXACT_DURATIONS_MAX`] of them: percentiles are then exact, not bucket bounds.
    pub exact_durations: Option<Vec<i64>>,
}

/// Top errors are grouped among at most this many of the window's latest failed events, so
/// the query stays a short index range whatever the window holds.
pub const TOP_ERRORS_SCANNED: i64 = 10_000;

/// A top error is its first line cut at this many characters (what its filter matches); the
/// migration that added `error_head` cut existing errors at the same length.
pub const TOP_ERROR_CHARS: usize = 200;

/// Up to this many ended events in a window, statistics read their run times one by one (a
/// range of an index, a few milliseconds); beyond, percentiles come from the histogram.
pub const EXACT_DURATIONS_MAX: i64 = 10_000;

/// A function's Monitoring series in buckets of a window, oldest first, empty buckets left
/// out, beside the counts per status that [`EventQueries::event_stats`] reads. Run times and
/// waits are by the minute of enqueue, concurrency by the minute it ran in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MonitoringSeries {
    /// Run times of ended events: `(upper bound in ms, count)`, shortest first.
    pub run_times: Vec<(Millis, Vec<(i64, i64)>)>,
    /// Times from accept to first start, likewise.
    pub queue_waits: Vec<(Millis, Vec<(i64, i64)>)>,
    /// The most events that ran at once in one minute of the bucket, every node's added up.
    pub concurrency: Vec<(Millis, i64)>,
}

/// What a function's Logs tab searches for: a RequestId (whole, or its first characters), and
/// text the logs contain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    pub request_id: Option<String>,
    pub request_id_prefix: Option<String>,
    pub text: Option<String>,
}

/// A text search reads the logs of at most this many of the function's latest events, so a
/// search costs the same however many events are kept.
pub const LOGS_SCANNED: i64 = 10_000;

/// One event's logs, with what the Logs tab shows beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLogs {
    pub request_id: String,
    pub status: EventStatus,
    pub status_code: Option<i64>,
    pub enqueued_at: Millis,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub logs: String,
}

/// The queue as a whole, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Events queued, retries in their backoff included.
    pub queued: i64,
    /// When the queued event due longest ago became due (accepted, or its backoff over).
    pub oldest_due_at: Option<Millis>,
}

#[async_trait]
pub trait EventQueries: Send + Sync {
    async fn get_event(&self, request_id: &str) -> StoreResult<Option<EventRecord>>;

    /// Whole events (payload, result, error and logs too) by their ids, in the order given;
    /// ids that no longer exist are left out. For exports that ask for the heavy columns.
    async fn get_events_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<EventRecord>>;

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

    /// Statistics of `[from, to)` (by enqueue time), in buckets of `bucket` milliseconds, of
    /// the events with one of `statuses` and `invoke_types` (empty: all). The run-time
    /// histogram has no status or type: percentiles follow them only when exact.
    async fn event_stats(
        &self,
        function_id: i64,
        (from, to): (Millis, Millis),
        bucket: Millis,
        statuses: &[EventStatus],
        invoke_types: &[String],
    ) -> StoreResult<EventStats>;

    /// The most frequent first lines of the errors of failed traced events enqueued in
    /// `[from, to)` with one of `invoke_types` (empty: any),
    /// with their counts, most frequent first: among the latest [`TOP_ERRORS_SCANNED`] failed
    /// events of the window, each line cut at [`TOP_ERROR_CHARS`].
    async fn top_errors(
        &self,
        function_id: i64,
        window: (Millis, Millis),
        invoke_types: &[String],
        limit: u32,
    ) -> StoreResult<Vec<(String, i64)>>;

    /// The RequestIds of the events that re-run `request_id`, oldest first, at most `limit`.
    async fn reruns_of(&self, request_id: &str, limit: u32) -> StoreResult<Vec<String>>;

    /// A function's Monitoring series over `[from, to)` in buckets of `bucket` milliseconds
    /// (whole minutes), from the rollups.
    async fn monitoring(
        &self,
        function_id: i64,
        window: (Millis, Millis),
        bucket: Millis,
    ) -> StoreResult<MonitoringSeries>;

    /// A function's traced events that have logs and match `query`, newest first, at most
    /// `limit`; a text search (ASCII letters in any case) looks among the latest
    /// [`LOGS_SCANNED`] events.
    async fn event_logs(
        &self,
        function_id: i64,
        query: &LogQuery,
        limit: u32,
    ) -> StoreResult<Vec<EventLogs>>;

    /// Events waiting in the queue (every node's, retries in backoff included), and when the
    /// one due longest ago before `now` became due.
    async fn queue_depth(&self, now: Millis) -> StoreResult<QueueDepth>;

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
            detail: crate::domain::event::timeline::queued(
                &stored.invoke_type,
                stored.invoked_by.as_deref(),
                stored.rerun_of.as_deref(),
            ),
        });
        all.extend(stored.entries);
        Ok(all)
    }
}
