//! A function's Logs tab: the latest events' logs, searched by RequestId and by text, each with
//! its status and duration and a link to the event.

use super::parts::{Header, duration_text, load, moment, status_class};
use super::shell::Shell;
use super::urls;
use crate::domain::event::EventStatus;
use crate::domain::event_query::{request_id_filter, request_id_search};
use crate::error::AppResult;
use crate::state::AppState;
use crate::store::LogQuery;
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new().route("/scf/{region}/{namespace}/functions/{name}/logs", get(page))
}

/// Events shown at most.
const SHOWN: u32 = 50;
/// Lines of one event's logs shown at most: the last ones, or those that match.
const LINES: usize = 20;
/// The longest text searched for.
const TEXT_MAX: usize = 200;
/// Text searches run at once; more wait their turn.
static TEXT_SEARCHES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

#[derive(Deserialize, Default)]
struct Params {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    q: String,
}

/// One event's logs as the tab shows them.
pub struct Entry {
    request_id: String,
    url: String,
    status: &'static str,
    status_class: &'static str,
    status_code: Option<i64>,
    at: (String, String),
    duration: String,
    /// The lines shown, and how many more there are.
    lines: Vec<String>,
    more: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "function/logs.html")]
pub struct Page {
    shell: Shell,
    header: Header,
    request_id: String,
    q: String,
    problems: Vec<String>,
    entries: Vec<Entry>,
    searched: bool,
    trace_enable: bool,
    shown_max: u32,
    /// How many of the latest events a search looks among, as text (`10,000`).
    scanned: String,
}

async fn page(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(params): Query<Params>,
) -> AppResult<Page> {
    let (shell, f) = load(&state, &region, &namespace, &name).await?;
    let mut problems = Vec::new();
    // Bad input stays in its field, to be corrected; it is left out of the search.
    let (request_id, searched_id) = match request_id_search(&params.request_id) {
        Ok(id) => (id.clone(), id),
        Err(problem) => {
            problems.push(problem);
            (params.request_id.chars().take(64).collect(), String::new())
        }
    };
    let q: String = params.q.trim().to_string();
    if q.chars().count() > TEXT_MAX {
        problems.push(format!(
            "The text searched for is {} characters long; only its first {TEXT_MAX} are searched.",
            q.chars().count()
        ));
    }
    let q: String = q.chars().take(TEXT_MAX).collect();
    let (whole, prefix) = request_id_filter(&searched_id);
    let query = LogQuery {
        request_id: whole,
        request_id_prefix: prefix,
        text: (!q.is_empty()).then(|| q.clone()),
    };
    // A text search may read many events' logs: a few at a time, whoever asks.
    let _turn = match &query.text {
        Some(_) => Some(TEXT_SEARCHES.acquire().await.expect("never closed")),
        None => None,
    };
    let found = state.store.event_logs(f.id, &query, SHOWN).await?;
    let entries = found
        .into_iter()
        .map(|e| {
            let (lines, more) = excerpt(&e.logs, query.text.as_deref());
            Entry {
                url: urls::event(&region, &namespace, &name, &e.request_id),
                request_id: e.request_id,
                status: e.status.label(),
                status_class: status_class(e.status),
                status_code: e.status_code.filter(|_| e.status != EventStatus::Running),
                at: moment(e.enqueued_at),
                duration: match (e.started_at, e.ended_at) {
                    (Some(from), Some(to)) => duration_text(to - from),
                    _ => "—".into(),
                },
                lines,
                more,
            }
        })
        .collect();
    Ok(Page {
        header: Header::new(&state, &shell, &f, "logs"),
        searched: !request_id.is_empty() || !q.is_empty(),
        request_id,
        q,
        problems,
        entries,
        trace_enable: f.trace_enable,
        shown_max: SHOWN,
        scanned: thousands(crate::store::LOGS_SCANNED),
        shell,
    })
}

/// `10000` as `10,000`.
fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The lines of `logs` to show: those containing `text` (ASCII letters in any case, as the
/// store searched), or else the last ones; and how many lines are left out.
fn excerpt(logs: &str, text: Option<&str>) -> (Vec<String>, usize) {
    let all: Vec<&str> = logs.lines().collect();
    let chosen: Vec<&str> = match text {
        Some(t) => {
            let t = t.to_ascii_lowercase();
            all.iter()
                .copied()
                .filter(|l| l.to_ascii_lowercase().contains(&t))
                .collect()
        }
        None => all[all.len().saturating_sub(LINES)..].to_vec(),
    };
    let shown: Vec<String> = chosen.iter().take(LINES).map(|l| l.to_string()).collect();
    let more = all.len() - shown.len();
    (shown, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_keeps_the_matching_or_the_last_lines() {
        let logs: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let (lines, more) = excerpt(&logs, None);
        assert_eq!(lines.first().map(String::as_str), Some("line 11"));
        assert_eq!((lines.len(), more), (20, 10));
        let (lines, more) = excerpt("Start\nERROR: disk\nok\nerror again", Some("error"));
        assert_eq!(lines, vec!["ERROR: disk", "error again"]);
        assert_eq!(more, 2);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
