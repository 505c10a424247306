//! Event Management: a function's async events with statistics, a chart, filters that live in
//! the URL, live refresh of the rows and counters, bulk terminate, re-run, and export.

use super::chart::{Chart, Kind, Spec, bucket_for, histogram_quantile};
use super::form::{Fields, FormFields};
use super::parts::{Header, duration_text, load, moment, retention_text, status_class};
use super::shell::Shell;
use super::urls;
use crate::clock::{Millis, TimeFormat, format_time};
use crate::domain::event::{EventStatus, TerminateRequest, validate_reason};
use crate::domain::event_query::{
    ALL_STATUSES, EventFilter, EventOrderBy, INVOKE_TYPES, console_name, request_id_filter,
    request_id_search, status_from_console,
};
use crate::error::AppResult;
use crate::service::{self, ServiceError, events};
use crate::state::AppState;
use crate::store::{
    EventPageQuery, EventRecord, EventStats, EventSummary, Function, TOP_ERROR_CHARS,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use time::UtcOffset;

pub fn routes() -> Router<AppState> {
    let base = "/scf/{region}/{namespace}/functions/{name}/events";
    Router::new()
        .route(base, get(page))
        .route(&format!("{base}/-/rows"), get(rows))
        .route(&format!("{base}/-/stats"), get(stats))
        .route(&format!("{base}/-/export"), get(export_chosen))
        .route(&format!("{base}/-/export.csv"), get(export_csv))
        .route(&format!("{base}/-/export.ndjson"), get(export_ndjson))
        .route(
            &format!("{base}/-/terminate"),
            get(confirm_bulk).post(bulk_terminate),
        )
        .route(&format!("{base}/-/trace-on"), post(trace_on))
        .route(
            &format!("{base}/-/rerun"),
            get(confirm_rerun_many).post(rerun_many),
        )
        .route(
            &format!("{base}/{{request_id}}/rerun"),
            get(rerun_form).post(rerun),
        )
}

const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;

/// The time window presets, as in the URL.
const RANGES: &[(&str, &str, Millis)] = &[
    ("1h", "Last 1 hour", HOUR),
    ("24h", "Last 24 hours", 24 * HOUR),
    ("3d", "Last 3 days", 72 * HOUR),
];

/// The values the list takes when the URL says nothing, left out of the URLs it writes.
const DEFAULTS: &[(&str, &str)] = &[
    ("range", "3d"),
    ("sort", "start_desc"),
    ("size", "20"),
    ("refresh", "5"),
];

/// Everything the URL says about what to show, parsed once and written back into links.
#[derive(Debug, Clone)]
pub struct View {
    pub statuses: Vec<EventStatus>,
    pub types: Vec<String>,
    /// A RequestId, or its first characters.
    pub request_id: String,
    /// Failed events whose error starts with this (a top error's link).
    pub error: String,
    pub range: String,
    /// Custom range bounds as typed (`2026-11-29T10:00`, UTC).
    pub from: String,
    pub to: String,
    pub end_from: String,
    pub end_to: String,
    pub sort: String,
    pub size: u32,
    pub after: Option<(Millis, i64)>,
    /// Paging backwards: the page before this row.
    pub before: Option<(Millis, i64)>,
    pub page: u32,
    /// Seconds between refreshes; 0 is paused.
    pub refresh: u32,
    pub base: String,
    /// Problems with the filter, shown above it.
    pub problems: Vec<String>,
}

fn parse_local(text: &str) -> Option<Millis> {
    const FORMATS: [&[time::format_description::FormatItem<'static>]; 2] = [
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]"),
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    ];
    FORMATS.iter().find_map(|f| {
        time::PrimitiveDateTime::parse(text.trim(), f)
            .ok()
            .map(|t| (t.assume_utc().unix_timestamp_nanos() / 1_000_000) as Millis)
    })
}

impl View {
    fn parse(base: String, q: &Fields) -> View {
        let mut problems = Vec::new();
        // A value the console does not offer is said, not silently dropped.
        let mut unknown = |what: &str, value: &str, instead: &str| {
            let shown: String = value.chars().take(40).collect();
            problems.push(format!("Unknown {what} {shown:?}: {instead}."));
        };
        let mut statuses = Vec::new();
        for s in q.all("status") {
            match status_from_console(s) {
                Some(status) => statuses.push(status),
                None => unknown("status", s, "it is left out of the filter"),
            }
        }
        let mut types = Vec::new();
        for t in q.all("type") {
            if INVOKE_TYPES.contains(&t) {
                types.push(t.to_string());
            } else {
                unknown("invocation type", t, "it is left out of the filter");
            }
        }
        let range = match q.get("range") {
            "" => "3d".to_string(),
            r if r == "custom" || RANGES.iter().any(|(k, _, _)| *k == r) => r.to_string(),
            other => {
                unknown("time range", other, "showing the last 3 days");
                "3d".to_string()
            }
        };
        let size = match q.get("size") {
            "" => 20,
            raw => match raw
                .parse::<u32>()
                .ok()
                .filter(|n| [20, 50, 100].contains(n))
            {
                Some(n) => n,
                None => {
                    unknown(
                        "page size",
                        raw,
                        "pages hold 20, 50 or 100 events; showing 20",
                    );
                    20
                }
            },
        };
        let sort = match q.get("sort") {
            "" | "start_desc" => "start_desc".to_string(),
            s @ ("start_asc" | "end_desc" | "end_asc") => s.to_string(),
            other => {
                unknown("order", other, "newest start first");
                "start_desc".to_string()
            }
        };
        let keyset = |name: &str| -> Option<(Millis, i64)> {
            let (t, id) = q.get(name).split_once(':')?;
            Some((t.parse().ok()?, id.parse().ok()?))
        };
        let (mut after, before) = (keyset("after"), keyset("before"));
        let refresh = match q.get("refresh") {
            "" => 5,
            r => match r
                .parse::<u32>()
                .ok()
                .filter(|n| [0, 2, 5, 10, 30].contains(n))
            {
                Some(n) => n,
                None => {
                    unknown("refresh interval", r, "refreshing every 5 s");
                    5
                }
            },
        };
        // "Jump to a time": the page that starts there, in either start-time order.
        match (q.get("at"), parse_local(q.get("at"))) {
            ("", _) => {}
            (_, Some(at)) if q.get("sort") == "start_asc" => after = Some((at, i64::MIN)),
            (_, Some(at)) => after = Some((at + MINUTE, i64::MIN)),
            (raw, None) => {
                let shown: String = raw.chars().take(40).collect();
                problems.push(format!(
                    "Cannot jump to {shown:?}: enter a time as YYYY-MM-DDTHH:MM (UTC). Showing the newest events."
                ));
            }
        }
        let request_id = request_id_search(q.get("request_id")).unwrap_or_else(|problem| {
            problems.push(problem);
            String::new()
        });
        View {
            statuses,
            types,
            request_id,
            error: q.get("error").chars().take(TOP_ERROR_CHARS).collect(),
            range,
            from: q.get("from").to_string(),
            to: q.get("to").to_string(),
            end_from: q.get("end_from").to_string(),
            end_to: q.get("end_to").to_string(),
            sort,
            size,
            after,
            before,
            page: q.get("page").parse().ok().filter(|p| *p >= 1).unwrap_or(1),
            refresh,
            base,
            problems,
        }
    }

    /// The list's filter, and problems with custom ranges.
    fn filter(&mut self, now: Millis) -> (EventFilter, (Millis, Millis)) {
        let window = if self.range == "custom" {
            let from = parse_local(&self.from);
            let to = parse_local(&self.to);
            let not_a_time = [(&self.from, from, "start"), (&self.to, to, "end")]
                .into_iter()
                .find(|(text, parsed, _)| !text.is_empty() && parsed.is_none());
            match (from, to) {
                _ if not_a_time.is_some() => {
                    let (text, _, which) = not_a_time.expect("matched");
                    let shown: String = text.chars().take(40).collect();
                    self.problems.push(format!(
                        "The custom range's {which} {shown:?} is not a time: enter it as YYYY-MM-DDTHH:MM (UTC). Showing the last 3 days instead."
                    ));
                    (now - 72 * HOUR, now + 1)
                }
                (Some(f), Some(t)) if f < t => (f, t),
                (Some(f), None) if self.to.is_empty() && f < now => (f, now + 1),
                _ => {
                    self.problems.push(
                        "The custom start-time range needs a start before its end: showing the last 3 days instead."
                            .into(),
                    );
                    (now - 72 * HOUR, now + 1)
                }
            }
        } else {
            let span = RANGES
                .iter()
                .find(|(k, _, _)| *k == self.range)
                .map_or(72 * HOUR, |r| r.2);
            (now - span, now + 1)
        };
        // An empty bound is open; a bound that is not a time makes the range invalid.
        let bound = |text: &str, open: Millis| {
            if text.is_empty() {
                Some(open)
            } else {
                parse_local(text)
            }
        };
        let end = if self.end_from.is_empty() && self.end_to.is_empty() {
            None
        } else {
            match (
                bound(&self.end_from, i64::MIN / 2),
                bound(&self.end_to, i64::MAX / 2),
            ) {
                (Some(from), Some(to)) if from < to => Some((from, to)),
                _ => {
                    self.problems
                        .push("The end-time range is not valid and is ignored.".into());
                    None
                }
            }
        };
        let (order_by, ascending) = match self.sort.as_str() {
            "start_asc" => (EventOrderBy::StartTime, true),
            "end_desc" => (EventOrderBy::EndTime, false),
            "end_asc" => (EventOrderBy::EndTime, true),
            _ => (EventOrderBy::StartTime, false),
        };
        let (request_id, request_id_prefix) = request_id_filter(&self.request_id);
        (
            EventFilter {
                statuses: self.statuses.clone(),
                invoke_types: self.types.clone(),
                request_id,
                request_id_prefix,
                error_prefix: (!self.error.is_empty()).then(|| self.error.clone()),
                start: Some(window),
                end,
                order_by,
                ascending,
            },
            window,
        )
    }

    /// The filters of this view as `(name, value)` pairs, without paging; defaults are left
    /// out, so a link says only what differs. Forms that carry the view repeat these as hidden
    /// fields.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs: Vec<(&'static str, String)> = Vec::new();
        for s in &self.statuses {
            pairs.push(("status", console_name(*s).to_string()));
        }
        for t in &self.types {
            pairs.push(("type", t.clone()));
        }
        for (k, v) in [
            ("request_id", &self.request_id),
            ("error", &self.error),
            ("from", &self.from),
            ("to", &self.to),
            ("end_from", &self.end_from),
            ("end_to", &self.end_to),
        ] {
            if !v.is_empty() {
                pairs.push((k, v.clone()));
            }
        }
        let current = [
            ("range", self.range.clone()),
            ("sort", self.sort.clone()),
            ("size", self.size.to_string()),
            ("refresh", self.refresh.to_string()),
        ];
        for (k, v) in current {
            if !DEFAULTS.contains(&(k, v.as_str())) {
                pairs.push((k, v));
            }
        }
        pairs
    }

    /// The query string of this view, without paging.
    pub fn query(&self) -> String {
        self.pairs()
            .iter()
            .map(|(k, v)| format!("{k}={}", urls::encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    pub fn url(&self, suffix: &str) -> String {
        with_query(format!("{}{suffix}", self.base), &self.query())
    }

    pub fn paged_query(&self) -> String {
        let mut parts = vec![self.query()];
        if let Some((t, id)) = self.before {
            parts.push(format!("before={t}:{id}"));
        } else if let Some((t, id)) = self.after {
            parts.push(format!("after={t}:{id}"));
        }
        if self.page > 1 {
            parts.push(format!("page={}", self.page));
        }
        parts.retain(|p| !p.is_empty());
        parts.join("&")
    }

    /// "Re-run failed matching": this view's filter, and every failed event it matches.
    pub fn rerun_failed_url(&self) -> String {
        let mut pairs = self.query();
        if !pairs.is_empty() {
            pairs.push('&');
        }
        pairs.push_str("all=failed");
        with_query(format!("{}/-/rerun", self.base), &pairs)
    }

    pub fn rows_url(&self) -> String {
        with_query(format!("{}/-/rows", self.base), &self.paged_query())
    }

    pub fn has_status(&self, name: &str) -> bool {
        self.statuses.iter().any(|s| console_name(*s) == name)
    }

    pub fn has_type(&self, name: &str) -> bool {
        self.types.iter().any(|t| t == name)
    }

    fn page_query(&self) -> EventPageQuery {
        let keyset = self.sort.starts_with("start");
        EventPageQuery {
            offset: if keyset {
                0
            } else {
                (self.page - 1) * self.size
            },
            limit: self.size,
            after: if keyset { self.after } else { None },
            before: if keyset { self.before } else { None },
        }
    }
}

/// `url?query`, or `url` alone when there is no query.
fn with_query(url: String, query: &str) -> String {
    if query.is_empty() {
        url
    } else {
        format!("{url}?{query}")
    }
}

/// One row of the table, formatted.
pub struct Row {
    pub request_id: String,
    /// The event's page, carrying the list's filters for its way back.
    pub link: String,
    /// The first group of the UUID: enough to tell rows apart; the link and copy have it all.
    pub short_id: String,
    pub url: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub live: bool,
    pub invoke_type: String,
    pub start_ago: String,
    pub start_iso: String,
    pub start: String,
    pub end: Option<(String, String)>,
    pub duration: String,
    pub attempt: u32,
}

fn ago(now: Millis, at: Millis) -> String {
    let s = ((now - at) / 1000).max(0);
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

fn row(view: &View, now: Millis, e: &EventSummary) -> Row {
    let url = format!("{}/{}", view.base, urls::encode(&e.request_id));
    Row {
        link: with_query(url.clone(), &view.query()),
        url,
        request_id: e.request_id.clone(),
        short_id: e.request_id.chars().take(8).collect(),
        status: e.status.label(),
        status_class: status_class(e.status),
        live: !e.status.is_terminal(),
        invoke_type: e.invoke_type.clone(),
        start_ago: ago(now, e.enqueued_at),
        start_iso: format_time(e.enqueued_at, UtcOffset::UTC, TimeFormat::Rfc3339),
        start: format_time(e.enqueued_at, UtcOffset::UTC, TimeFormat::DateTime),
        end: e.ended_at.map(|t| {
            (
                format_time(t, UtcOffset::UTC, TimeFormat::DateTime),
                format_time(t, UtcOffset::UTC, TimeFormat::Rfc3339),
            )
        }),
        duration: match (e.started_at, e.ended_at) {
            (Some(s), Some(t)) => duration_text(t - s),
            (Some(s), None) => format!("{} so far", duration_text(now - s)),
            _ => "—".into(),
        },
        attempt: e.attempt,
    }
}

/// The rows, the part live refresh swaps.
#[derive(Template, WebTemplate)]
#[template(path = "events/rows.html")]
pub struct Rows {
    rows: Vec<Row>,
    rows_url: String,
    refresh: u32,
    /// The page before this one, the next one, and the first.
    newer_url: Option<String>,
    older_url: Option<String>,
    first_url: Option<String>,
    /// "Jump to a time": the list's address and the filter it keeps (start-time orders).
    jump: Option<(String, Vec<(&'static str, String)>)>,
    total: i64,
    filtered: bool,
}

/// The counters and chart, the other part live refresh swaps.
#[derive(Template, WebTemplate)]
#[template(path = "events/stats.html")]
pub struct Stats {
    stats_url: String,
    refresh: u32,
    /// The window's bounds as `(RFC 3339, text)`.
    window_from: (String, String),
    window_to: (String, String),
    /// `(label, class, count, in the filter)`.
    tiles: Vec<(&'static str, &'static str, i64, bool)>,
    /// Said when the filter narrows the statistics.
    follows: Option<String>,
    /// The window's most frequent errors: `(first line, count, the list filtered to it)`.
    top_errors: Vec<(String, i64, String)>,
    failure_rate: String,
    p50: String,
    p95: String,
    chart: Chart,
}

/// The `p` quantile of the window's run times: exact when the store read them one by one,
/// else estimated within the histogram's bucket (linearly) and marked as an estimate.
pub(super) fn run_time_percentile(s: &EventStats, p: f64) -> String {
    if let Some(exact) = &s.exact_durations {
        if exact.is_empty() {
            return "—".into();
        }
        let rank = ((exact.len() as f64 * p).ceil() as usize).clamp(1, exact.len());
        return duration_text(exact[rank - 1]);
    }
    histogram_quantile(&s.durations, p).map_or_else(
        || "—".into(),
        |estimate| format!("≈ {}", duration_text(estimate.round() as i64)),
    )
}

/// The statistics of a window, read from the rollups in the chart's bucket size, following
/// the filter's statuses and invocation types.
async fn stats_for(
    state: &AppState,
    f: &Function,
    view: &View,
    filter: &EventFilter,
    window: (Millis, Millis),
) -> AppResult<Stats> {
    let bucket = bucket_for(window.1 - window.0);
    let (s, errors) = events::stats(state, f, filter, window, bucket).await?;
    let mut stats = stats_view(view, window, &s);
    stats.top_errors = errors
        .into_iter()
        .map(|(text, n)| {
            let mut link = view.clone();
            link.statuses = vec![EventStatus::Failed];
            link.error = text.clone();
            (text, n, link.url(""))
        })
        .collect();
    Ok(stats)
}

fn stats_view(view: &View, window: (Millis, Millis), s: &EventStats) -> Stats {
    let shown = |st: EventStatus| view.statuses.is_empty() || view.statuses.contains(&st);
    let points: Vec<(Millis, Vec<Option<f64>>)> = s
        .series
        .iter()
        .map(|(at, counts)| (*at, counts.iter().map(|n| Some(*n as f64)).collect()))
        .collect();
    let chart = Chart::draw(
        Spec {
            id: "events",
            title: "Events per status over time",
            kind: Kind::Stacked,
            series: ALL_STATUSES
                .iter()
                .map(|st| (st.label(), status_class(*st)))
                .collect(),
            format: |v| format!("{v:.0}"),
            unit: "events",
        },
        window,
        bucket_for(window.1 - window.0),
        &points,
    );
    let c = &s.by_status;
    let ended = c[2] + c[3] + c[4];
    Stats {
        stats_url: view.url("/-/stats"),
        refresh: view.refresh,
        window_from: moment(window.0),
        window_to: moment(window.1),
        tiles: ALL_STATUSES
            .iter()
            .map(|st| {
                (
                    st.label(),
                    status_class(*st),
                    c[st.code() as usize],
                    shown(*st),
                )
            })
            .collect(),
        follows: (!view.statuses.is_empty() || !view.types.is_empty())
            .then(|| "Statistics follow the status and invoke type filters.".to_string()),
        top_errors: Vec::new(),
        // A rate among ended events only means something when all of them are counted.
        failure_rate: if ended == 0
            || !ALL_STATUSES
                .iter()
                .filter(|st| st.is_terminal())
                .all(|st| shown(*st))
        {
            "—".into()
        } else {
            format!("{:.1}%", c[3] as f64 * 100.0 / ended as f64)
        },
        p50: run_time_percentile(s, 0.5),
        p95: run_time_percentile(s, 0.95),
        chart,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "events/list.html")]
pub struct Page {
    shell: Shell,
    header: Header,
    view: View,
    rows: Option<Rows>,
    stats: Option<Stats>,
    retention: String,
    trace_off: bool,
    async_run: bool,
    ranges: &'static [(&'static str, &'static str, Millis)],
    statuses: Vec<(&'static str, &'static str)>,
    types: &'static [&'static str],
    banner: Option<String>,
    export_url: String,
    extra_columns: &'static [(&'static str, &'static str)],
    terminate_url: String,
    rerun_failed_url: String,
    trace_on_url: String,
}

/// The list and its statistics, read at the same time on two of the store's readers: the
/// page waits for the slower of the two, not for both in turn.
async fn build(state: &AppState, f: &Function, view: &mut View) -> AppResult<(Rows, Stats)> {
    let (filter, window) = view.filter(state.clock.now_millis());
    let view = &*view;
    tokio::try_join!(
        build_rows(state, f, view, &filter),
        stats_for(state, f, view, &filter, window)
    )
}

async fn build_rows(
    state: &AppState,
    f: &Function,
    view: &View,
    filter: &EventFilter,
) -> AppResult<Rows> {
    let now = state.clock.now_millis();
    let keyset = view.sort.starts_with("start");
    let backwards = keyset && view.before.is_some();
    let mut query = view.page_query();
    if backwards {
        // One more row than a page tells whether there is anything before it.
        query.limit += 1;
    }
    let events::EventPage {
        events: mut found,
        total,
    } = events::list(state, f, filter, &query).await?;
    let mut first_page = !(view.after.is_some() || view.before.is_some() || view.page > 1);
    if backwards {
        if found.len() as u32 > view.size {
            found.remove(0);
        } else {
            // Paged back to the start: the first page, whole.
            let mut newest = view.clone();
            newest.before = None;
            newest.after = None;
            found = events::list(state, f, filter, &newest.page_query())
                .await?
                .events;
            first_page = true;
        }
    }
    let full = found.len() as u32 == view.size;
    let older_url = if !full {
        None
    } else if keyset {
        found.last().map(|e| {
            let mut next = view.clone();
            next.before = None;
            next.after = Some((e.enqueued_at, e.id));
            with_query(view.base.clone(), &next.paged_query())
        })
    } else {
        let mut next = view.clone();
        next.page = view.page + 1;
        Some(with_query(view.base.clone(), &next.paged_query()))
    };
    let newer_url = if first_page {
        None
    } else if keyset {
        found.first().map(|e| {
            let mut previous = view.clone();
            previous.after = None;
            previous.before = Some((e.enqueued_at, e.id));
            with_query(view.base.clone(), &previous.paged_query())
        })
    } else {
        let mut previous = view.clone();
        previous.page = view.page - 1;
        Some(with_query(view.base.clone(), &previous.paged_query()))
    };
    let first_url = (!first_page).then(|| view.url(""));
    let rows = Rows {
        rows: found.iter().map(|e| row(view, now, e)).collect(),
        rows_url: view.rows_url(),
        refresh: view.refresh,
        newer_url,
        older_url,
        first_url,
        jump: keyset.then(|| (view.base.clone(), view.pairs())),
        total,
        filtered: !view.statuses.is_empty()
            || !view.types.is_empty()
            || !view.request_id.is_empty()
            || !view.error.is_empty(),
    };
    Ok(rows)
}

fn base_url(region: &str, namespace: &str, name: &str) -> String {
    urls::function_tab(region, namespace, name, "events")
}

/// The list with the filters a query string names, as the tab's link from an event's page:
/// only what the list understands is carried over.
pub fn list_url(region: &str, namespace: &str, name: &str, q: &[(String, String)]) -> String {
    let view = View::parse(base_url(region, namespace, name), &Fields(q.to_vec()));
    view.url("")
}

async fn page(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> AppResult<Response> {
    // A filter form sends its empty fields and defaults too; the address keeps only what was
    // chosen (unknown values stay, so the page can say what it could not use).
    let default = |(k, v): &(String, String)| {
        v.is_empty() || DEFAULTS.iter().any(|(dk, dv)| dk == k && dv == v)
    };
    if q.iter().any(|(_, v)| v.is_empty()) {
        let kept: Vec<String> = q
            .iter()
            .filter(|p| !default(p))
            .map(|(k, v)| format!("{}={}", urls::encode(k), urls::encode(v)))
            .collect();
        let to = with_query(base_url(&region, &namespace, &name), &kept.join("&"));
        return Ok(Redirect::to(&to).into_response());
    }
    let (shell, f) = load(&state, &region, &namespace, &name).await?;
    let q = Fields(q);
    let mut view = View::parse(base_url(&region, &namespace, &name), &q);
    let trace_off = !f.trace_enable;
    let (rows, stats) = if trace_off {
        (None, None)
    } else {
        let (r, s) = build(&state, &f, &mut view).await?;
        (Some(r), Some(s))
    };
    let banner = super::flash::notice();
    Ok(Page {
        header: Header::new(&state, &shell, &f, "events"),
        shell,
        export_url: format!("{}/-/export", view.base),
        extra_columns: EXTRA_COLUMNS,
        terminate_url: view.url("/-/terminate"),
        rerun_failed_url: view.rerun_failed_url(),
        trace_on_url: format!("{}/-/trace-on", view.base),
        view,
        rows,
        stats,
        retention: retention_text(&state),
        trace_off,
        async_run: f.async_run_enable,
        ranges: RANGES,
        statuses: ALL_STATUSES
            .iter()
            .map(|s| (console_name(*s), s.label()))
            .collect(),
        types: INVOKE_TYPES,
        banner,
    }
    .into_response())
}

/// The function, if its status trace is on: the event queries are refused otherwise.
async fn traced(
    state: &AppState,
    region: &str,
    namespace: &str,
    name: &str,
) -> AppResult<(Shell, Function)> {
    let (shell, f) = load(state, region, namespace, name).await?;
    events::require_trace(&f)?;
    Ok((shell, f))
}

async fn rows(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> AppResult<Rows> {
    let (_, f) = traced(&state, &region, &namespace, &name).await?;
    let mut view = View::parse(base_url(&region, &namespace, &name), &Fields(q));
    let (filter, _) = view.filter(state.clock.now_millis());
    build_rows(&state, &f, &view, &filter).await
}

async fn stats(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> AppResult<Stats> {
    let (_, f) = traced(&state, &region, &namespace, &name).await?;
    let mut view = View::parse(base_url(&region, &namespace, &name), &Fields(q));
    let (filter, window) = view.filter(state.clock.now_millis());
    stats_for(&state, &f, &view, &filter, window).await
}

/// The columns an export adds when asked (heavy: read whole events), as named in its form.
const EXTRA_COLUMNS: &[(&str, &str)] = &[
    ("payload", "Payload"),
    ("result", "Result"),
    ("error", "Error"),
    ("logs", "Logs"),
];

/// What an export writes: its format and the extra columns asked for.
#[derive(Clone)]
struct ExportSpec {
    csv: bool,
    extras: Vec<&'static str>,
}

impl ExportSpec {
    fn head(&self) -> String {
        if !self.csv {
            return String::new();
        }
        let mut head = String::from(
            "InvokeRequestId,Status,StatusCode,InvokeType,Qualifier,StartTime,EndTime,DurationMs,Attempts",
        );
        for (key, title) in EXTRA_COLUMNS {
            if self.extras.contains(key) {
                head.push(',');
                head.push_str(title);
            }
        }
        head.push('\n');
        head
    }

    fn line(&self, e: &EventSummary, full: Option<&EventRecord>) -> String {
        let extra = |key: &str| -> Option<String> {
            let full = full?;
            match key {
                "payload" => Some(full.payload.clone()),
                "result" => full.result.clone(),
                "error" => full.error.clone(),
                _ => full.logs.clone(),
            }
        };
        let start = format_time(e.enqueued_at, UtcOffset::UTC, TimeFormat::Rfc3339Millis);
        let end = e
            .ended_at
            .map(|t| format_time(t, UtcOffset::UTC, TimeFormat::Rfc3339Millis));
        let duration = match (e.started_at, e.ended_at) {
            (Some(s), Some(t)) => Some(t - s),
            _ => None,
        };
        if self.csv {
            let mut line = format!(
                "{},{},{},{},{},{},{},{},{}",
                csv_field(&e.request_id),
                e.status.scf_name(),
                e.status_code.map(|c| c.to_string()).unwrap_or_default(),
                csv_field(&e.invoke_type),
                csv_field(&e.qualifier),
                start,
                end.unwrap_or_default(),
                duration.map(|d| d.to_string()).unwrap_or_default(),
                e.attempt
            );
            for key in &self.extras {
                line.push(',');
                line.push_str(&csv_text(&extra(key).unwrap_or_default()));
            }
            line.push('\n');
            return line;
        }
        let mut object = serde_json::json!({
            "InvokeRequestId": e.request_id,
            "Status": e.status.scf_name(),
            "StatusCode": e.status_code,
            "InvokeType": e.invoke_type,
            "Qualifier": e.qualifier,
            "StartTime": start,
            "EndTime": end,
            "DurationMs": duration,
            "Attempts": e.attempt,
        });
        for (key, title) in EXTRA_COLUMNS {
            if self.extras.contains(key) {
                object[*title] =
                    extra(key).map_or(serde_json::Value::Null, serde_json::Value::String);
            }
        }
        let mut line = object.to_string();
        line.push('\n');
        line
    }
}

/// Every matching event, page by page in start-time order, so an export of millions of rows
/// streams in constant memory (pages of whole events are smaller: a payload alone may be
/// 128 KB). The stream is fused: a body encoder (gzip) may poll once more after the end, and
/// an unfused `unfold` panics when it is.
fn export(state: AppState, f: Function, mut filter: EventFilter, spec: ExportSpec) -> Body {
    filter.order_by = EventOrderBy::StartTime;
    let page_size = if spec.extras.is_empty() { 1000 } else { 100 };
    let first = (spec.head(), None::<(Millis, i64)>, false);
    let stream = futures_util::stream::unfold(first, move |(head, after, done)| {
        let state = state.clone();
        let filter = filter.clone();
        let spec = spec.clone();
        let id = f.id;
        async move {
            if done {
                return None;
            }
            let page = EventPageQuery {
                offset: 0,
                limit: page_size,
                after,
                before: None,
            };
            let read = async {
                let events = state.store.list_events(id, &filter, &page).await?;
                let full = if spec.extras.is_empty() {
                    Vec::new()
                } else {
                    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
                    state.store.get_events_by_ids(&ids).await?
                };
                Ok::<_, crate::store::StoreError>((events, full))
            };
            match read.await {
                Ok((events, full)) => {
                    let by_id: std::collections::HashMap<i64, &EventRecord> =
                        full.iter().map(|r| (r.id, r)).collect();
                    let mut chunk = head;
                    for e in &events {
                        chunk.push_str(&spec.line(e, by_id.get(&e.id).copied()));
                    }
                    let next = events.last().map(|e| (e.enqueued_at, e.id));
                    let done = (events.len() as u32) < page_size;
                    Some((Ok::<_, std::io::Error>(chunk), (String::new(), next, done)))
                }
                Err(e) => Some((
                    Err(std::io::Error::other(e.to_string())),
                    (String::new(), None, true),
                )),
            }
        }
    });
    Body::from_stream(stream.fuse())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A column a handler or caller wrote (payload, result, error, logs): a cell a spreadsheet
/// would read as a formula (`=`, `+`, `-`, `@`, tab, return) is kept as text with a leading `'`.
fn csv_text(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        csv_field(&format!("'{s}"))
    } else {
        csv_field(s)
    }
}

async fn export_response(
    state: AppState,
    region: String,
    namespace: String,
    name: String,
    q: Vec<(String, String)>,
    csv: bool,
) -> AppResult<Response> {
    let (_, f) = traced(&state, &region, &namespace, &name).await?;
    let q = Fields(q);
    let spec = ExportSpec {
        csv,
        extras: EXTRA_COLUMNS
            .iter()
            .map(|(key, _)| *key)
            .filter(|key| q.all("col").contains(key))
            .collect(),
    };
    let mut view = View::parse(base_url(&region, &namespace, &name), &q);
    let (filter, _) = view.filter(state.clock.now_millis());
    let (content_type, ext) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "ndjson")
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}-events.{ext}\"", f.name),
            ),
        ],
        export(state, f, filter, spec),
    )
        .into_response())
}

/// The export form's target: the format it names (CSV unless NDJSON is chosen).
async fn export_chosen(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> AppResult<Response> {
    let csv = !q.iter().any(|(k, v)| k == "format" && v == "ndjson");
    export_response(state, region, namespace, name, q, csv).await
}

async fn export_csv(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> AppResult<Response> {
    export_response(state, region, namespace, name, q, true).await
}

async fn export_ndjson(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> AppResult<Response> {
    export_response(state, region, namespace, name, q, false).await
}

/// The confirmation of a terminate, one event or all matching: how, and why.
#[derive(Template, WebTemplate)]
#[template(path = "events/terminate.html")]
pub struct ConfirmTerminate {
    pub shell: Shell,
    pub header: Header,
    pub count: usize,
    pub nothing: &'static str,
    pub question: String,
    pub explanation: String,
    pub button: String,
    pub back_url: String,
    pub action_url: String,
    pub graceful: bool,
    pub reason: String,
    pub error: Option<String>,
}

/// A terminate form's answer as a request made by the signed-in user, or what is wrong with
/// its reason (the form is shown again, with what was typed).
pub fn terminate_request(form: &Fields) -> Result<TerminateRequest, (TerminateRequest, String)> {
    let mut request = TerminateRequest {
        graceful: form.get("GraceShutdown").eq_ignore_ascii_case("true"),
        by: super::auth::user_name(),
        reason: form.get("Reason").to_string(),
    };
    match validate_reason(&request.reason) {
        Ok(reason) => {
            request.reason = reason;
            Ok(request)
        }
        Err(e) => Err((request, e.message)),
    }
}

async fn bulk_confirmation(
    state: &AppState,
    shell: Shell,
    f: &Function,
    view: &mut View,
) -> AppResult<ConfirmTerminate> {
    let (filter, _) = view.filter(state.clock.now_millis());
    let count = events::terminable(state, f, &filter).await?.len();
    let s = if count == 1 { "" } else { "s" };
    Ok(ConfirmTerminate {
        header: Header::new(state, &shell, f, "events"),
        shell,
        count,
        nothing: "No queued or running event matches the current filter.",
        question: format!("Terminate {count} event{s}?"),
        explanation: format!(
            "{count} queued or running event{} the current filter. Queued events end at once; running ones are stopped and recorded as terminated (499).",
            if count == 1 { " matches" } else { "s match" }
        ),
        button: format!("Terminate {count} event{s}"),
        back_url: view.url(""),
        action_url: view.url("/-/terminate"),
        graceful: false,
        reason: String::new(),
        error: None,
    })
}

async fn confirm_bulk(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> AppResult<ConfirmTerminate> {
    let (shell, f) = traced(&state, &region, &namespace, &name).await?;
    let mut view = View::parse(base_url(&region, &namespace, &name), &Fields(q));
    bulk_confirmation(&state, shell, &f, &mut view).await
}

async fn bulk_terminate(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
    FormFields(form): FormFields,
) -> AppResult<Response> {
    let (shell, f) = traced(&state, &region, &namespace, &name).await?;
    let mut view = View::parse(base_url(&region, &namespace, &name), &Fields(q));
    let request = match terminate_request(&Fields(form)) {
        Ok(request) => request,
        Err((asked, why)) => {
            let mut page = bulk_confirmation(&state, shell, &f, &mut view).await?;
            page.graceful = asked.graceful;
            page.reason = asked.reason;
            page.error = Some(why);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let (filter, _) = view.filter(state.clock.now_millis());
    let done = events::terminate_matching(&state, &f, &filter, &request).await?;
    let notice = match done {
        0 => "No event was left to terminate: they had all ended.".to_string(),
        1 => "1 event asked to terminate.".to_string(),
        n => format!("{n} events asked to terminate."),
    };
    Ok(super::flash::redirect(
        &view.url(""),
        super::flash::Flash::Notice(notice),
    ))
}

/// At most this many rows are re-run as a selection (the largest page).
const SELECTED_MAX: usize = 100;

/// A bulk re-run's confirmation: of the rows selected (`id`), or of every failed event the
/// filter matches (`all=failed`).
#[derive(Template, WebTemplate)]
#[template(path = "events/rerun_bulk.html")]
pub struct ConfirmRerun {
    shell: Shell,
    header: Header,
    count: usize,
    nothing: String,
    explanation: String,
    /// The selected RequestIds, carried to the POST (empty for "all failed").
    ids: Vec<String>,
    action_url: String,
    back_url: String,
}

/// The events a bulk re-run takes: the selected rows of this function, or the failed events
/// the filter matches.
async fn rerun_targets(
    state: &AppState,
    f: &Function,
    view: &mut View,
    q: &Fields,
) -> AppResult<(Vec<String>, bool)> {
    if q.get("all") == "failed" {
        let (filter, _) = view.filter(state.clock.now_millis());
        return Ok((events::failed_matching(state, f, &filter).await?, true));
    }
    let mut ids: Vec<String> = q
        .all("id")
        .into_iter()
        .take(SELECTED_MAX)
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    Ok((ids, false))
}

async fn confirm_rerun_many(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> AppResult<ConfirmRerun> {
    let (shell, f) = traced(&state, &region, &namespace, &name).await?;
    let q = Fields(q);
    let mut view = View::parse(base_url(&region, &namespace, &name), &q);
    let (ids, all) = rerun_targets(&state, &f, &mut view, &q).await?;
    // "All failed" posts the filter back; a selection posts its ids.
    let action_url = if all {
        view.rerun_failed_url()
    } else {
        format!("{}/-/rerun", view.base)
    };
    Ok(ConfirmRerun {
        header: Header::new(&state, &shell, &f, "events"),
        shell,
        count: ids.len(),
        nothing: if all {
            "No failed event matches the current filter.".into()
        } else {
            "No event was selected: tick the rows to re-run, then Re-run selected.".into()
        },
        explanation: if all {
            format!(
                "{} failed event{} the current filter (at most {}).",
                ids.len(),
                if ids.len() == 1 {
                    " matches"
                } else {
                    "s match"
                },
                events::BULK_MAX
            )
        } else {
            format!(
                "{} selected event{}.",
                ids.len(),
                if ids.len() == 1 { " is" } else { "s are" }
            )
        },
        ids: if all { Vec::new() } else { ids },
        action_url,
        back_url: view.url(""),
    })
}

async fn rerun_many(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
    FormFields(form): FormFields,
) -> AppResult<Response> {
    let (_, f) = traced(&state, &region, &namespace, &name).await?;
    let mut all = q.clone();
    all.extend(form);
    let q = Fields(all);
    let mut view = View::parse(base_url(&region, &namespace, &name), &q);
    let (ids, _) = rerun_targets(&state, &f, &mut view, &q).await?;
    let done = events::rerun_each(&state, &f, &ids, &super::auth::user_name()).await?;
    let mut notice = match done.accepted {
        0 => "No event was re-run.".to_string(),
        1 => "1 event re-run.".to_string(),
        n => format!("{n} events re-run."),
    };
    if done.refused > 0 {
        notice.push_str(&format!(
            " {} refused: {}",
            done.refused,
            done.why.unwrap_or_default()
        ));
    }
    if done.missing > 0 {
        notice.push_str(&format!(" {} no longer exist.", done.missing));
    }
    Ok(super::flash::redirect(
        &view.url(""),
        super::flash::Flash::Notice(notice),
    ))
}

async fn trace_on(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
) -> AppResult<Redirect> {
    let (_, f) = load(&state, &region, &namespace, &name).await?;
    let mut draft = f.config_draft();
    draft.trace_enable = "TRUE".into();
    service::functions::update_configuration(&state, &f, &draft).await?;
    Ok(Redirect::to(&base_url(&region, &namespace, &name)))
}

/// The re-run form: the event's payload, to send again as it is or edited.
#[derive(Template, WebTemplate)]
#[template(path = "events/rerun.html")]
pub struct RerunPage {
    shell: Shell,
    header: Header,
    request_id: String,
    payload: String,
    action_url: String,
    back_url: String,
    error: Option<String>,
    refused: Option<String>,
}

async fn rerun_page(
    state: &AppState,
    (region, namespace, name, request_id): &(String, String, String, String),
    payload: Option<String>,
) -> AppResult<RerunPage> {
    let (shell, f) = traced(state, region, namespace, name).await?;
    let event = events::get(state, &f, request_id).await?;
    let url = urls::event(region, namespace, name, request_id);
    Ok(RerunPage {
        header: Header::new(state, &shell, &f, "events"),
        shell,
        request_id: event.request_id,
        payload: payload.unwrap_or_else(|| super::event_page::pretty(&event.payload)),
        action_url: format!("{url}/rerun"),
        back_url: url,
        error: None,
        refused: None,
    })
}

async fn rerun_form(
    State(state): State<AppState>,
    Path(path): Path<(String, String, String, String)>,
) -> AppResult<RerunPage> {
    rerun_page(&state, &path, None).await
}

/// Re-runs an event: with the payload of the form when there is one (the re-run page), else
/// with the event's own (the list's one-click Re-run).
async fn rerun(
    State(state): State<AppState>,
    Path(path): Path<(String, String, String, String)>,
    FormFields(form): FormFields,
) -> AppResult<Response> {
    let (region, namespace, name, request_id) = &path;
    let (_, f) = load(&state, region, namespace, name).await?;
    let form = Fields(form);
    // The re-run page sends the payload, even emptied (which is then said); the list's
    // one-click Re-run sends none and re-runs the event's own.
    let edited = form
        .0
        .iter()
        .any(|(k, _)| k == "ClientContext")
        .then(|| form.get("ClientContext").replace("\r\n", "\n"));
    let by = super::auth::user_name();
    match events::rerun(&state, &f, request_id, edited.as_deref(), &by).await {
        Ok(id) => Ok(super::flash::redirect(
            &urls::event(region, namespace, name, &id),
            super::flash::Flash::Notice(format!("Re-run of {request_id} accepted.")),
        )),
        Err(ServiceError::Invalid(errors)) => {
            let mut page = rerun_page(&state, &path, edited).await?;
            page.error = errors.get("ClientContext").map(str::to_string);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(ServiceError::Refused(r)) => {
            let status = crate::error::refused_status(&r);
            let mut page = rerun_page(&state, &path, edited).await?;
            page.refused = Some(r.to_string());
            Ok((status, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(durations: &[(i64, i64)], exact: Option<Vec<i64>>) -> EventStats {
        EventStats {
            durations: durations.to_vec(),
            exact_durations: exact,
            ..EventStats::default()
        }
    }

    #[test]
    fn exported_text_a_spreadsheet_would_run_stays_text() {
        assert_eq!(csv_text("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_text("-1"), "'-1");
        assert_eq!(csv_text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_text("plain, text"), "\"plain, text\"");
        assert_eq!(csv_text("{\"n\": 1}"), "\"{\"\"n\"\": 1}\"");
    }

    #[test]
    fn percentiles_are_exact_when_the_run_times_were_read() {
        let s = stats(&[(10, 1), (250, 2)], Some(vec![4, 120, 258]));
        assert_eq!(run_time_percentile(&s, 0.5), "120 ms");
        assert_eq!(run_time_percentile(&s, 0.95), "258 ms");
        assert_eq!(run_time_percentile(&stats(&[], Some(vec![])), 0.5), "—");
    }

    #[test]
    fn beyond_that_they_are_estimated_within_a_bucket_and_say_so() {
        // 100 events up to 10 ms, 100 between 10 and 25 ms: the median is at 10 ms, p95 near 24.
        let s = stats(&[(10, 100), (25, 100)], None);
        assert_eq!(run_time_percentile(&s, 0.5), "≈ 10 ms");
        assert_eq!(run_time_percentile(&s, 0.95), "≈ 24 ms");
        assert_eq!(run_time_percentile(&stats(&[], None), 0.5), "—");
    }
}
