//! ListAsyncEvents: a function's async events with SCF's filters, sort and paging; and
//! GetRequestStatus, one event's outcome.

use super::error::{ApiError, ApiResult};
use super::params::{self, parse};
use super::{Call, functions};
use crate::clock::{TimeFormat, format_time};
use crate::domain::event::EventStatus;
use crate::domain::event_query::{
    EventFilter, EventOrderBy, check_range, parse_scf_time, statuses_from_scf,
};
use crate::service::{ServiceError, events};
use crate::store::EventPageQuery;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct Interval {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ListAsyncEventsRequest {
    function_name: String,
    namespace: Option<String>,
    qualifier: Option<String>,
    #[serde(default)]
    invoke_type: Vec<String>,
    #[serde(default)]
    status: Vec<String>,
    start_time_interval: Option<Interval>,
    end_time_interval: Option<Interval>,
    order: Option<String>,
    orderby: Option<String>,
    #[serde(default, deserialize_with = "params::int")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "params::int")]
    limit: Option<i64>,
    invoke_request_id: Option<String>,
}

fn interval(
    call: &Call<'_>,
    given: Option<Interval>,
    field: &'static str,
) -> ApiResult<Option<(i64, i64)>> {
    let Some(i) = given else { return Ok(None) };
    let tz = call.tz();
    // As on SCF, an interval has both ends.
    let (Some(start), Some(end)) = (
        i.start.as_deref().filter(|s| !s.is_empty()),
        i.end.as_deref().filter(|s| !s.is_empty()),
    ) else {
        return Err(ApiError::new(
            "InvalidParameterValue",
            format!(
                "{field} needs both Start and End (left-closed, right-open, as %Y-%m-%d %H:%M:%S)."
            ),
        ));
    };
    let from = parse_scf_time(start, tz, field)?;
    let to = parse_scf_time(end, tz, field)?;
    Ok(Some(check_range(from, to, field)?))
}

pub async fn list(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: ListAsyncEventsRequest = parse(call.action, params)?;
    functions::check_qualifier(call.action, req.qualifier.as_deref())?;
    let f = functions::function_or_deleted(call, &req.function_name, req.namespace).await?;
    // Refused before the parameters are looked at: no query at all while trace is off.
    events::require_trace(&f)?;
    let mut statuses = Vec::new();
    for name in &req.status {
        let found = statuses_from_scf(name).ok_or_else(|| {
            ApiError::new(
                "InvalidParameterValue.Status",
                format!("Status {name:?} is not one of RUNNING, FINISHED, FAILED, ABORTED."),
            )
        })?;
        for s in found {
            if !statuses.contains(s) {
                statuses.push(*s);
            }
        }
    }
    for t in &req.invoke_type {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ApiError::new(
                "InvalidParameterValue.InvokeType",
                format!("InvokeType {t:?} is not an invocation type such as API or CONSOLE."),
            ));
        }
    }
    let ascending = params::order(req.order.as_deref(), false)?;
    let order_by = match req.orderby.as_deref() {
        None | Some("") | Some("StartTime") => EventOrderBy::StartTime,
        Some("EndTime") => EventOrderBy::EndTime,
        Some(_) => {
            return Err(ApiError::new(
                // Not a code of its own in SCF's list for this action.
                "InvalidParameterValue",
                "Orderby is StartTime or EndTime.",
            ));
        }
    };
    let limit = params::limit(req.limit, 1)?;
    let offset = params::offset(req.offset)?;
    let filter = EventFilter {
        statuses,
        invoke_types: req.invoke_type,
        request_id: req.invoke_request_id.filter(|r| !r.is_empty()),
        request_id_prefix: None,
        error_prefix: None,
        start: interval(call, req.start_time_interval, "StartTimeInterval")?,
        end: interval(call, req.end_time_interval, "EndTimeInterval")?,
        order_by,
        ascending,
    };
    let page = EventPageQuery {
        offset,
        limit,
        after: None,
        before: None,
    };
    let found = events::list(call.state, &f, &filter, &page).await?;
    let tz = call.tz();
    let list: Vec<Value> = found
        .events
        .iter()
        .map(|e| {
            json!({
                "InvokeRequestId": e.request_id,
                "InvokeType": e.invoke_type,
                "Qualifier": e.qualifier,
                "Status": e.status.scf_name(),
                "StartTime": format_time(e.enqueued_at, tz, TimeFormat::DateTimeMillis),
                "EndTime": e.ended_at.map(|t| format_time(t, tz, TimeFormat::DateTimeMillis)).unwrap_or_default(),
            })
        })
        .collect();
    Ok(json!({ "TotalCount": found.total, "EventList": list }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RequestStatusRequest {
    function_name: String,
    function_request_id: String,
    namespace: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
}

/// Without a StartTime, GetRequestStatus looks at the last 15 minutes, as SCF does.
const REQUEST_STATUS_WINDOW_MS: i64 = 15 * 60 * 1000;

/// GetRequestStatus: an event's outcome as SCF answers it — its result or error, run time and
/// retries — when status trace recorded it and it started in the window asked for.
pub async fn request_status(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: RequestStatusRequest = parse(call.action, params)?;
    let f = functions::function_or_deleted(call, &req.function_name, req.namespace).await?;
    let tz = call.tz();
    let now = call.state.clock.now_millis();
    let start = req.start_time.as_deref().filter(|s| !s.is_empty());
    let end = req.end_time.as_deref().filter(|s| !s.is_empty());
    let window = match (start, end) {
        (None, None) => (now - REQUEST_STATUS_WINDOW_MS, now + 1),
        (None, Some(end)) => {
            let to = parse_scf_time(end, tz, "EndTime")?;
            check_range(to - REQUEST_STATUS_WINDOW_MS, to, "EndTime")?
        }
        (Some(_), None) => {
            return Err(ApiError::new(
                "InvalidParameterValue",
                "With a StartTime, give the EndTime too (as %Y-%m-%d %H:%M:%S).",
            ));
        }
        (Some(start), Some(end)) => check_range(
            parse_scf_time(start, tz, "StartTime")?,
            parse_scf_time(end, tz, "EndTime")?,
            "StartTime",
        )?,
    };
    // An event status trace did not record (or that does not exist) has no status to give.
    // It may be of an earlier function of this name, deleted since: its events are kept.
    let found =
        match events::get_in_region(call.state, &call.region, &req.function_request_id).await {
            Ok(e)
                if e.namespace == f.namespace
                    && e.function_name == f.name
                    && e.enqueued_at >= window.0
                    && e.enqueued_at < window.1 =>
            {
                Some(e)
            }
            Ok(_) | Err(ServiceError::NotFound(_) | ServiceError::Refused(_)) => None,
            Err(e) => return Err(e.into()),
        };
    let data: Vec<Value> = found
        .into_iter()
        .map(|e| {
            let (ret_code, ret_msg) = match e.status {
                EventStatus::Finished => (0, e.result.clone().unwrap_or_default()),
                EventStatus::Queued | EventStatus::Running => (1, String::new()),
                EventStatus::Failed | EventStatus::Aborted => {
                    (-1, e.error.clone().unwrap_or_default())
                }
            };
            let duration = match (e.started_at, e.ended_at) {
                (Some(s), Some(t)) => (t - s) as f64,
                _ => 0.0,
            };
            json!({
                "FunctionName": f.name,
                "RetMsg": ret_msg,
                "RequestId": e.request_id,
                "StartTime": format_time(e.enqueued_at, tz, TimeFormat::DateTimeMillis),
                "RetCode": ret_code,
                "Duration": duration,
                // Memory is measured for synchronous runs only.
                "MemUsage": 0.0,
                "RetryNum": e.attempt.saturating_sub(1),
            })
        })
        .collect();
    Ok(json!({ "TotalCount": data.len(), "Data": data }))
}
