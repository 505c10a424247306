//! Invocations and async events: invoke, re-run, terminate, and the queries status trace
//! allows.

use super::{Missing, Refused, ServiceError, ServiceResult};
use crate::clock::Millis;
use crate::domain::event::{
    EventStatus, INVOKE_TYPE_CONSOLE, Origin, TerminateRequest, validate_payload,
};
use crate::domain::event_query::{EventFilter, EventOrderBy};
use crate::engine::admission::Refusal;
use crate::engine::{InvokeError, SyncResult};
use crate::state::AppState;
use crate::store::{
    EventPageQuery, EventRecord, EventStats, EventSummary, Function, StoreError, Termination,
};

/// What an invocation answered.
#[derive(Debug)]
pub enum Invocation {
    /// Accepted and durable; it runs later.
    Accepted { request_id: String },
    /// Run while the caller waited.
    Ran(SyncResult),
}

/// The answer when the engine did not take an invocation.
fn not_accepted(f: &Function, e: InvokeError) -> ServiceError {
    match e {
        // As if the lookup had come a moment later.
        InvokeError::FunctionGone => ServiceError::NotFound(Missing::Function(f.key())),
        // The store could not be read, or no instance can be had: the reason is for the log,
        // in the engine's words; the caller learns that nothing happened.
        InvokeError::Refused(Refusal::Unavailable(why)) => {
            tracing::error!(error = %why, "invocation could not be admitted");
            ServiceError::Unavailable(
                "The invocation was not accepted because the server cannot take it on right now. \
                 Nothing was recorded and nothing will run; try again shortly."
                    .into(),
            )
        }
        InvokeError::Refused(r) => ServiceError::Refused(Refused::Invocation(r)),
        // Said in full: the caller must know that the RequestId it did not get is not its
        // fault, and that nothing will run.
        e @ InvokeError::Store(_) => ServiceError::Unavailable(e.to_string()),
    }
}

/// Async execution functions always run asynchronously; others when the caller asks for it.
pub fn runs_async(f: &Function, wants_async: bool) -> bool {
    f.async_run_enable || wants_async
}

/// Invokes a function with a JSON payload, asynchronously as `runs_async` says.
pub async fn invoke(
    state: &AppState,
    f: &Function,
    payload: &str,
    wants_async: bool,
    origin: Origin,
) -> ServiceResult<Invocation> {
    let asynchronous = runs_async(f, wants_async);
    // The API's SDKs omit an empty ClientContext; the console's editor never sends one on purpose.
    let empty_is_object = origin.invoke_type != INVOKE_TYPE_CONSOLE;
    let payload = validate_payload(payload, asynchronous, empty_is_object)?;
    if asynchronous {
        let request_id = state
            .engine
            .invoke_async_as(f, payload, origin)
            .await
            .map_err(|e| not_accepted(f, e))?;
        return Ok(Invocation::Accepted { request_id });
    }
    let ran = state
        .engine
        .invoke_sync(f, &payload, &origin.invoke_type)
        .await
        .map_err(|e| not_accepted(f, e))?;
    Ok(Invocation::Ran(ran))
}

/// The refusal of every event query while status trace is off.
pub fn require_trace(f: &Function) -> ServiceResult<()> {
    if f.trace_enable {
        Ok(())
    } else {
        Err(trace_off(f))
    }
}

fn trace_off(f: &Function) -> ServiceError {
    ServiceError::Refused(Refused::TraceOff {
        function: f.name.clone(),
    })
}

/// An event of `f`, whatever its trace: the RequestId of another function's event is as
/// unknown here as one that never existed.
async fn owned(state: &AppState, f: &Function, request_id: &str) -> ServiceResult<EventRecord> {
    state
        .store
        .get_event(request_id)
        .await?
        .filter(|e| e.function_id == f.id)
        .ok_or_else(|| missing(f, request_id))
}

fn missing(f: &Function, request_id: &str) -> ServiceError {
    ServiceError::NotFound(Missing::Event {
        request_id: request_id.into(),
        function: Some(f.name.clone()),
    })
}

/// Status trace must be on for the function, and must have been on when the event was
/// accepted.
fn visible(f: &Function, event: EventRecord) -> ServiceResult<EventRecord> {
    if f.trace_enable && event.traced {
        Ok(event)
    } else {
        Err(trace_off(f))
    }
}

/// An event of `f` as its detail shows it.
pub async fn get(state: &AppState, f: &Function, request_id: &str) -> ServiceResult<EventRecord> {
    visible(f, owned(state, f, request_id).await?)
}

/// An event of any function of the region, asked for by its RequestId alone.
pub async fn get_in_region(
    state: &AppState,
    region: &str,
    request_id: &str,
) -> ServiceResult<EventRecord> {
    let missing = || {
        ServiceError::NotFound(Missing::Event {
            request_id: request_id.into(),
            function: None,
        })
    };
    let event = state
        .store
        .get_event(request_id)
        .await?
        .filter(|e| e.region == region)
        .ok_or_else(missing)?;
    let f = state
        .store
        .get_function_by_id(event.function_id)
        .await?
        .ok_or_else(missing)?;
    visible(&f, event)
}

/// One page of a function's events, and how many match in all.
pub struct EventPage {
    pub events: Vec<EventSummary>,
    pub total: i64,
}

pub async fn list(
    state: &AppState,
    f: &Function,
    filter: &EventFilter,
    page: &EventPageQuery,
) -> ServiceResult<EventPage> {
    require_trace(f)?;
    let events = state.store.list_events(f.id, filter, page).await?;
    let total = state.store.count_matching_events(f.id, filter).await?;
    Ok(EventPage { events, total })
}

/// Statistics of `[from, to)` in buckets of `bucket` milliseconds.
/// Statistics of a window, following the filter's statuses and invocation types, with the
/// most frequent errors of its failed events.
pub async fn stats(
    state: &AppState,
    f: &Function,
    filter: &EventFilter,
    window: (Millis, Millis),
    bucket: Millis,
) -> ServiceResult<(EventStats, Vec<(String, i64)>)> {
    require_trace(f)?;
    let stats = state
        .store
        .event_stats(f.id, window, bucket, &filter.statuses, &filter.invoke_types)
        .await?;
    let wants_failed = filter.statuses.is_empty() || filter.statuses.contains(&EventStatus::Failed);
    let errors = if wants_failed && stats.by_status[EventStatus::Failed.code() as usize] > 0 {
        state
            .store
            .top_errors(f.id, window, &filter.invoke_types, TOP_ERRORS_SHOWN)
            .await?
    } else {
        Vec::new()
    };
    Ok((stats, errors))
}

/// Event Management shows this many of the window's most frequent errors.
pub const TOP_ERRORS_SHOWN: u32 = 5;

/// Invokes the function again, asynchronously, with an event's payload or an edited one (the
/// console's rules for a payload), recording who re-ran it and what it re-runs.
pub async fn rerun(
    state: &AppState,
    f: &Function,
    request_id: &str,
    edited: Option<&str>,
    by: &str,
) -> ServiceResult<String> {
    require_trace(f)?;
    let event = owned(state, f, request_id).await?;
    let payload = match edited {
        Some(p) => validate_payload(p, true, false)?,
        None => event.payload,
    };
    let mut origin = Origin::new(INVOKE_TYPE_CONSOLE, by);
    origin.rerun_of = Some(event.request_id);
    state
        .engine
        .invoke_async_as(f, payload, origin)
        .await
        .map_err(|e| not_accepted(f, e))
}

/// Terminates a queued or running event of `f`: forced, or graceful (SIGTERM first).
pub async fn terminate(
    state: &AppState,
    f: &Function,
    request_id: &str,
    request: &TerminateRequest,
) -> ServiceResult<()> {
    owned(state, f, request_id).await?;
    match state.engine.terminate(request_id, request).await {
        Ok(Termination::AbortedWhileQueued | Termination::Running) => {
            tracing::info!(invoke_request_id = %request_id, graceful = request.graceful, by = %request.by, "termination requested");
            Ok(())
        }
        Ok(Termination::NotRunning(status)) => {
            Err(ServiceError::Refused(Refused::EventEnded(status)))
        }
        // Swept or deleted with its function since it was read.
        Err(StoreError::NotFound) => Err(missing(f, request_id)),
        Err(e) => Err(e.into()),
    }
}

/// At most this many events are terminated by one bulk request.
pub const BULK_MAX: u32 = 10_000;

/// The queued and running events among those `filter` matches, oldest first.
pub async fn terminable(
    state: &AppState,
    f: &Function,
    filter: &EventFilter,
) -> ServiceResult<Vec<String>> {
    among(
        state,
        f,
        filter,
        &[EventStatus::Queued, EventStatus::Running],
    )
    .await
}

/// The failed events among those `filter` matches, oldest first: what "re-run failed" takes.
pub async fn failed_matching(
    state: &AppState,
    f: &Function,
    filter: &EventFilter,
) -> ServiceResult<Vec<String>> {
    among(state, f, filter, &[EventStatus::Failed]).await
}

/// The RequestIds of the events `filter` matches that are in one of `wanted`, oldest first,
/// at most [`BULK_MAX`].
async fn among(
    state: &AppState,
    f: &Function,
    filter: &EventFilter,
    wanted: &[EventStatus],
) -> ServiceResult<Vec<String>> {
    require_trace(f)?;
    let mut filter = filter.clone();
    if filter.statuses.is_empty() {
        filter.statuses = wanted.to_vec();
    } else {
        filter.statuses.retain(|s| wanted.contains(s));
    }
    if filter.statuses.is_empty() {
        return Ok(Vec::new());
    }
    filter.order_by = EventOrderBy::StartTime;
    filter.ascending = true;
    let page = EventPageQuery {
        offset: 0,
        limit: BULK_MAX,
        after: None,
        before: None,
    };
    let events = state.store.list_events(f.id, &filter, &page).await?;
    Ok(events.into_iter().map(|e| e.request_id).collect())
}

/// What a bulk re-run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BulkRerun {
    pub accepted: usize,
    /// Refused before anything was recorded (QPS limit, arrears), with the last reason.
    pub refused: usize,
    pub why: Option<String>,
    /// Gone meanwhile (swept, or not this function's).
    pub missing: usize,
}

/// Re-runs each of `ids` with its own payload, as [`rerun`] does one.
pub async fn rerun_each(
    state: &AppState,
    f: &Function,
    ids: &[String],
    by: &str,
) -> ServiceResult<BulkRerun> {
    let mut done = BulkRerun::default();
    for id in ids.iter().take(BULK_MAX as usize) {
        match rerun(state, f, id, None, by).await {
            Ok(_) => done.accepted += 1,
            Err(ServiceError::Refused(r)) => {
                done.refused += 1;
                done.why = Some(r.to_string());
            }
            Err(ServiceError::NotFound(_)) => done.missing += 1,
            Err(e) => return Err(e),
        }
    }
    tracing::info!(function = %f.name, accepted = done.accepted, refused = done.refused, by, "bulk re-run");
    Ok(done)
}

/// Terminates the queued and running events `filter` matches; answers how many were asked to
/// stop. Those that ended or went away meanwhile are left alone.
pub async fn terminate_matching(
    state: &AppState,
    f: &Function,
    filter: &EventFilter,
    request: &TerminateRequest,
) -> ServiceResult<usize> {
    let mut done = 0;
    for id in terminable(state, f, filter).await? {
        match state.engine.terminate(&id, request).await {
            Ok(Termination::AbortedWhileQueued | Termination::Running) => done += 1,
            Ok(Termination::NotRunning(_)) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(function = %f.name, done, graceful = request.graceful, by = %request.by, "bulk termination");
    Ok(done)
}
