//! One async event: status, payload, result, error, logs and the timeline of its transitions,
//! refreshed in place while it runs; terminate (forced or graceful) while it is queued or
//! running.

use super::events_tab::{ConfirmTerminate, terminate_request};
use super::form::{Fields, FormFields};
use super::parts::{Header, duration_text, load, moment, status_class};
use super::shell::Shell;
use super::{HxRequest, urls};
use crate::clock::{TimeFormat, format_time};
use crate::domain::event::EventStatus;
use crate::error::AppResult;
use crate::service::events;
use crate::state::AppState;
use crate::store::{EventRecord, TimelineEntry};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use time::UtcOffset;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/scf/{region}/{namespace}/functions/{name}/events/{request_id}",
            get(show),
        )
        .route(
            "/scf/{region}/{namespace}/functions/{name}/events/{request_id}/terminate",
            get(confirm).post(terminate),
        )
}

/// An event's page links at most this many of its re-runs.
const RERUNS_SHOWN: u32 = 20;

pub struct Step {
    pub at: String,
    pub at_iso: String,
    pub label: &'static str,
    pub detail: String,
}

/// The part of the page that refreshes while the event runs.
#[derive(Template, WebTemplate)]
#[template(path = "events/detail.html")]
pub struct Detail {
    url: String,
    terminate_url: String,
    request_id: String,
    status_label: &'static str,
    status_class: &'static str,
    scf_status: &'static str,
    live: bool,
    status_code: Option<i64>,
    invoke_type: String,
    qualifier: String,
    attempt: u32,
    enqueued: String,
    enqueued_iso: String,
    /// `(RFC 3339, text)`.
    started: Option<(String, String)>,
    ended: Option<(String, String)>,
    queue_wait: Option<String>,
    run_time: Option<String>,
    payload: String,
    result: Option<String>,
    error: Option<String>,
    logs: Option<String>,
    /// The logs shown are the running attempt's output so far, read from the node running it.
    logs_live: bool,
    timeline: Vec<Step>,
    invoked_by: Option<String>,
    /// `(RequestId, page)` of the event this one re-runs.
    rerun_of: Option<(String, String)>,
    /// `(RequestId, page)` of the events that re-run this one.
    reruns: Vec<(String, String)>,
    rerun_url: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "events/page.html")]
pub struct EventPage {
    shell: Shell,
    header: Header,
    detail: Detail,
    banner: Option<String>,
}

pub(super) fn pretty(json: &str) -> String {
    serde_json::from_str::<serde_json::Value>(json)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| json.to_string())
}

fn detail(
    url: String,
    e: EventRecord,
    timeline: Vec<TimelineEntry>,
    reruns: Vec<(String, String)>,
    live_logs: Option<String>,
) -> Detail {
    // Events of one function share the URL prefix up to their RequestId.
    let sibling = |id: &str| {
        let prefix = url.rsplit_once('/').map_or("", |(p, _)| p);
        (id.to_string(), format!("{prefix}/{}", urls::encode(id)))
    };
    let started = e.started_at;
    let first_start = timeline
        .iter()
        .find(|t| t.status == EventStatus::Running)
        .map(|t| t.at)
        .or(started);
    Detail {
        rerun_of: e.rerun_of.as_deref().map(sibling),
        invoked_by: e.invoked_by,
        reruns,
        rerun_url: format!("{url}/rerun"),
        terminate_url: format!("{url}/terminate"),
        url,
        request_id: e.request_id,
        status_label: e.status.label(),
        status_class: status_class(e.status),
        scf_status: e.status.scf_name(),
        live: !e.status.is_terminal(),
        status_code: e.status_code,
        invoke_type: e.invoke_type,
        qualifier: e.qualifier,
        attempt: e.attempt,
        enqueued: format_time(e.enqueued_at, UtcOffset::UTC, TimeFormat::DateTime),
        enqueued_iso: format_time(e.enqueued_at, UtcOffset::UTC, TimeFormat::Rfc3339),
        started: started.map(moment),
        ended: e.ended_at.map(moment),
        queue_wait: first_start.map(|s| duration_text(s - e.enqueued_at)),
        run_time: match (started, e.ended_at) {
            (Some(s), Some(end)) => Some(duration_text(end - s)),
            _ => None,
        },
        payload: pretty(&e.payload),
        result: e.result.map(|r| pretty(&r)),
        error: e.error,
        logs_live: live_logs.is_some(),
        logs: live_logs.or(e.logs),
        timeline: timeline
            .into_iter()
            .map(|t| Step {
                at: format_time(t.at, UtcOffset::UTC, TimeFormat::DateTime),
                at_iso: format_time(t.at, UtcOffset::UTC, TimeFormat::Rfc3339),
                label: t.status.label(),
                detail: t.detail,
            })
            .collect(),
    }
}

async fn show(
    State(state): State<AppState>,
    Path((region, namespace, name, request_id)): Path<(String, String, String, String)>,
    Query(list): Query<Vec<(String, String)>>,
    HxRequest(hx): HxRequest,
) -> AppResult<Response> {
    let (shell, f) = load(&state, &region, &namespace, &name).await?;
    let event = events::get(&state, &f, &request_id).await?;
    let timeline = state.store.event_timeline(event.id).await?;
    let reruns = state
        .store
        .reruns_of(&event.request_id, RERUNS_SHOWN)
        .await?
        .into_iter()
        .map(|id| {
            let url = urls::event(&region, &namespace, &name, &id);
            (id, url)
        })
        .collect();
    // A running attempt's output so far, when it runs on this node.
    let live_logs = (event.status == EventStatus::Running)
        .then(|| state.engine.live_logs(&event.request_id))
        .flatten();
    let detail = detail(
        urls::event(&region, &namespace, &name, &request_id),
        event,
        timeline,
        reruns,
        live_logs,
    );
    if hx {
        return Ok(detail.into_response());
    }
    // Back to the list as it was filtered when the event was opened from it.
    let mut header = Header::new(&state, &shell, &f, "events");
    header.events_url = super::events_tab::list_url(&region, &namespace, &name, &list);
    Ok(EventPage {
        banner: super::flash::notice(),
        header,
        shell,
        detail,
    }
    .into_response())
}

/// The terminate confirmation of one event: how, and why.
async fn confirmation(
    state: &AppState,
    region: &str,
    namespace: &str,
    name: &str,
    request_id: &str,
) -> AppResult<ConfirmTerminate> {
    let (shell, f) = load(state, region, namespace, name).await?;
    let event = events::get(state, &f, request_id).await?;
    let url = urls::event(region, namespace, name, request_id);
    Ok(ConfirmTerminate {
        header: Header::new(state, &shell, &f, "events"),
        shell,
        count: usize::from(!event.status.is_terminal()),
        nothing: "This event has already ended: there is nothing left to terminate.",
        question: format!("Terminate event {request_id}?"),
        explanation: format!(
            "It is {}. A queued event ends at once; a running one is stopped and recorded as terminated (499).",
            event.status.label().to_lowercase()
        ),
        button: "Terminate event".into(),
        action_url: format!("{url}/terminate"),
        back_url: url,
        graceful: false,
        reason: String::new(),
        error: None,
    })
}

async fn confirm(
    State(state): State<AppState>,
    Path((region, namespace, name, request_id)): Path<(String, String, String, String)>,
) -> AppResult<ConfirmTerminate> {
    confirmation(&state, &region, &namespace, &name, &request_id).await
}

async fn terminate(
    State(state): State<AppState>,
    Path((region, namespace, name, request_id)): Path<(String, String, String, String)>,
    FormFields(pairs): FormFields,
) -> AppResult<Response> {
    let request = match terminate_request(&Fields(pairs)) {
        Ok(request) => request,
        Err((asked, why)) => {
            let mut page = confirmation(&state, &region, &namespace, &name, &request_id).await?;
            page.graceful = asked.graceful;
            page.reason = asked.reason;
            page.error = Some(why);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let (_, f) = load(&state, &region, &namespace, &name).await?;
    events::terminate(&state, &f, &request_id, &request).await?;
    let notice = if request.graceful {
        "Termination asked: the handler got SIGTERM and is stopped if it has not ended when the grace period is over."
    } else {
        "Termination asked: the handler is stopped and the event ends as aborted."
    };
    Ok(super::flash::redirect(
        &urls::event(&region, &namespace, &name, &request_id),
        super::flash::Flash::Notice(notice.into()),
    ))
}
