//! Event Management: a function's async events with statistics, a chart, filters that live in
//! the URL, live refresh of the rows and counters, bulk terminate, re-run, and export.

use super::form::{Fields, FormFields};
use super::parts::{Header, duration_text, load, retention_text, status_class};
use super::shell::Shell;
use super::urls;
use crate::clock::{Millis, TimeFormat, format_time};
use crate::domain::event::EventStatus;
use crate::domain::event_query::{
    ALL_STATUSES, EventFilter, EventOrderBy, INVOKE_TYPES, console_name, status_from_console,
};
use crate::error::AppResult;
use crate::service::{self, events};
use crate::state::AppState;
use crate::store::{EventPageQuery, EventStats, EventSummary, Function};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
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
        .route(&format!("{base}/-/export.csv"), get(export_csv))
        .route(&format!("{base}/-/export.ndjson"), get(export_ndjson))
        .route(
            &format!("{base}/-/terminate"),
            get(confirm_bulk).post(bulk_terminate),
        )
        .route(&format!("{base}/-/trace-on"), post(trace_on))
        .route(&format!("{base}/{{request_id}}/rerun"), post(rerun))
}

const MINUTE: Millis = 60_000;
const HOUR: Millis = 60 * MINUTE;

/// The time window presets, as in the URL.
const RANGES: &[(&str, &str, Millis)] = &[
    ("1h", "Last 1 hour", HOUR),
    ("24h", "Last 24 hours", 24 * HOUR),
    ("3d", "Last 3 days", 72 * HOUR),
];

/// Everything the URL says about what to show, parsed once and written back into links.
#[derive(Debug, Clone)]
pub struct View {
    pub statuses: Vec<EventStatus>,
    pub types: Vec<String>,
    pub request_id: String,
    pub range: String,
    /// Custom range bounds as typed (`2026-11-29T10:00`, UTC).
    pub from: String,
    pub to: String,
    pub end_from: String,
    pub end_to: String,
    pub sort: String,
    pub size: u32,
    pub after: Option<(Millis, i64)>,
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
        let after = q
            .get("after")
            .split_once(':')
            .and_then(|(t, id)| Some((t.parse().ok()?, id.parse().ok()?)));
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
        View {
            statuses,
            types,
            request_id: q.get("request_id").trim().to_string(),
            range,
            from: q.get("from").to_string(),
            to: q.get("to").to_string(),
            end_from: q.get("end_from").to_string(),
            end_to: q.get("end_to").to_string(),
            sort,
            size,
            after,
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
        (
            EventFilter {
                statuses: self.statuses.clone(),
                invoke_types: self.types.clone(),
                request_id: (!self.request_id.is_empty()).then(|| self.request_id.clone()),
                start: Some(window),
                end,
                order_by,
                ascending,
            },
            window,
        )
    }

    /// The query string of this view, without paging.
    pub fn query(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for s in &self.statuses {
            parts.push(format!("status={}", console_name(*s)));
        }
        for t in &self.types {
            parts.push(format!("type={}", urls::encode(t)));
        }
        for (k, v) in [
            ("request_id", &self.request_id),
            ("from", &self.from),
            ("to", &self.to),
            ("end_from", &self.end_from),
            ("end_to", &self.end_to),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", urls::encode(v)));
            }
        }
        parts.push(format!("range={}", self.range));
        parts.push(format!("sort={}", self.sort));
        parts.push(format!("size={}", self.size));
        parts.push(format!("refresh={}", self.refresh));
        parts.join("&")
    }

    pub fn url(&self, suffix: &str) -> String {
        format!("{}{suffix}?{}", self.base, self.query())
    }

    pub fn paged_query(&self) -> String {
        let mut q = self.query();
        if let Some((t, id)) = self.after {
            q.push_str(&format!("&after={t}:{id}"));
        }
        if self.page > 1 {
            q.push_str(&format!("&page={}", self.page));
        }
        q
    }

    pub fn rows_url(&self) -> String {
        format!("{}/-/rows?{}", self.base, self.paged_query())
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
        }
    }
}

/// One row of the table, formatted.
pub struct Row {
    pub request_id: String,
    /// The first group of the UUID: enough to tell rows apart; the link and copy have it all.
    pub short_id: String,
    pub url: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub live: bool,
    pub invoke_type: String,
    pub qualifier: String,
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

fn row(base: &str, now: Millis, e: &EventSummary) -> Row {
    Row {
        url: format!("{base}/{}", urls::encode(&e.request_id)),
        request_id: e.request_id.clone(),
        short_id: e.request_id.chars().take(8).collect(),
        status: e.status.label(),
        status_class: status_class(e.status),
        live: !e.status.is_terminal(),
        invoke_type: e.invoke_type.clone(),
        qualifier: e.qualifier.clone(),
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
    newer_url: Option<String>,
    older_url: Option<String>,
    total: i64,
    filtered: bool,
}

/// One bar of the chart.
pub struct Bar {
    pub label: String,
    pub x: f64,
    /// `(css class, y, height)` per status, stacked.
    pub parts: Vec<(&'static str, f64, f64)>,
    pub counts: [i64; 5],
    pub total: i64,
}

/// The counters and chart, the other part live refresh swaps.
#[derive(Template, WebTemplate)]
#[template(path = "events/stats.html")]
pub struct Stats {
    stats_url: String,
    refresh: u32,
    window: String,
    tiles: Vec<(&'static str, &'static str, i64)>,
    failure_rate: String,
    p50: String,
    p95: String,
    bars: Vec<Bar>,
    bar_width: f64,
    max: i64,
    first_label: String,
    last_label: String,
}

/// The chart's bar width for a window: about 50-100 bars whatever its length.
fn bucket_for(span: Millis) -> Millis {
    match span {
        x if x <= 2 * HOUR => MINUTE,
        x if x <= 26 * HOUR => 30 * MINUTE,
        x if x <= 4 * 24 * HOUR => HOUR,
        x => (x / 72 / MINUTE).max(1) * MINUTE,
    }
}

const CHART_WIDTH: f64 = 720.0;
const CHART_HEIGHT: f64 = 140.0;

fn percentile(durations: &[(i64, i64)], p: f64) -> String {
    let total: i64 = durations.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return "—".into();
    }
    let target = (total as f64 * p).ceil() as i64;
    let mut seen = 0;
    for (upper, n) in durations {
        seen += n;
        if seen >= target {
            return format!("≤ {}", duration_text(*upper));
        }
    }
    "—".into()
}

/// The statistics of a window, read from the rollups in the chart's bucket size.
async fn stats_for(
    state: &AppState,
    f: &Function,
    view: &View,
    window: (Millis, Millis),
) -> AppResult<Stats> {
    let bucket = bucket_for(window.1 - window.0);
    let s = events::stats(state, f, window, bucket).await?;
    Ok(stats_view(view, window, &s))
}

fn stats_view(view: &View, window: (Millis, Millis), s: &EventStats) -> Stats {
    let span = window.1 - window.0;
    let bucket = bucket_for(span);
    let slots = ((span + bucket - 1) / bucket).max(1);
    let bar_width = CHART_WIDTH / slots as f64;
    let max = s
        .series
        .iter()
        .map(|(_, c)| c.iter().sum::<i64>())
        .max()
        .unwrap_or(0);
    let bars = s
        .series
        .iter()
        .filter(|(at, _)| *at + bucket > window.0 && *at < window.1)
        .map(|(at, counts)| {
            let x = ((at - window.0).max(0) / bucket) as f64 * bar_width;
            let mut y = CHART_HEIGHT;
            let mut parts = Vec::new();
            for status in ALL_STATUSES {
                let n = counts[status.code() as usize];
                if n > 0 && max > 0 {
                    let h = n as f64 / max as f64 * (CHART_HEIGHT - 4.0);
                    y -= h;
                    parts.push((status_class(status), y, h));
                }
            }
            Bar {
                label: format_time(*at, UtcOffset::UTC, TimeFormat::DateTime),
                x,
                parts,
                counts: *counts,
                total: counts.iter().sum(),
            }
        })
        .collect();
    let c = &s.by_status;
    let ended = c[2] + c[3] + c[4];
    Stats {
        stats_url: view.url("/-/stats"),
        refresh: view.refresh,
        window: format!(
            "{} – {} UTC",
            format_time(window.0, UtcOffset::UTC, TimeFormat::DateTime),
            format_time(window.1, UtcOffset::UTC, TimeFormat::DateTime)
        ),
        tiles: ALL_STATUSES
            .iter()
            .map(|st| (st.label(), status_class(*st), c[st.code() as usize]))
            .collect(),
        failure_rate: if ended == 0 {
            "—".into()
        } else {
            format!("{:.1}%", c[3] as f64 * 100.0 / ended as f64)
        },
        p50: percentile(&s.durations, 0.5),
        p95: percentile(&s.durations, 0.95),
        bars,
        bar_width: (bar_width - 1.0).max(1.0),
        max,
        first_label: format_time(window.0, UtcOffset::UTC, TimeFormat::DateTime),
        last_label: format_time(window.1, UtcOffset::UTC, TimeFormat::DateTime),
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
    export_csv: String,
    export_ndjson: String,
    terminate_url: String,
    trace_on_url: String,
}

async fn build(state: &AppState, f: &Function, view: &mut View) -> AppResult<(Rows, Stats)> {
    let now = state.clock.now_millis();
    let (filter, window) = view.filter(now);
    let events::EventPage {
        events: found,
        total,
    } = events::list(state, f, &filter, &view.page_query()).await?;
    let keyset = view.sort.starts_with("start");
    let full = found.len() as u32 == view.size;
    let older_url = if !full {
        None
    } else if keyset {
        found.last().map(|e| {
            format!(
                "{}?{}&after={}:{}",
                view.base,
                view.query(),
                e.enqueued_at,
                e.id
            )
        })
    } else {
        Some(format!(
            "{}?{}&page={}",
            view.base,
            view.query(),
            view.page + 1
        ))
    };
    let newer_url = (view.after.is_some() || view.page > 1).then(|| view.url(""));
    let rows = Rows {
        rows: found.iter().map(|e| row(&view.base, now, e)).collect(),
        rows_url: view.rows_url(),
        refresh: view.refresh,
        newer_url,
        older_url,
        total,
        filtered: !view.statuses.is_empty()
            || !view.types.is_empty()
            || !view.request_id.is_empty(),
    };
    Ok((rows, stats_for(state, f, view, window).await?))
}

fn base_url(region: &str, namespace: &str, name: &str) -> String {
    urls::function_tab(region, namespace, name, "events")
}

async fn page(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> AppResult<Page> {
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
        export_csv: view.url("/-/export.csv"),
        export_ndjson: view.url("/-/export.ndjson"),
        terminate_url: view.url("/-/terminate"),
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
    })
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
    Ok(build(&state, &f, &mut view).await?.0)
}

async fn stats(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> AppResult<Stats> {
    let (_, f) = traced(&state, &region, &namespace, &name).await?;
    let mut view = View::parse(base_url(&region, &namespace, &name), &Fields(q));
    let (_, window) = view.filter(state.clock.now_millis());
    stats_for(&state, &f, &view, window).await
}

/// Every matching event, page by page in start-time order, so an export of millions of rows
/// streams in constant memory. The stream is fused: a body encoder (gzip) may poll once more
/// after the end, and an unfused `unfold` panics when it is.
fn export(
    state: AppState,
    f: Function,
    mut filter: EventFilter,
    line: fn(&EventSummary) -> String,
    head: &'static str,
) -> Body {
    filter.order_by = EventOrderBy::StartTime;
    let first = (head.to_string(), None::<(Millis, i64)>, false);
    let stream = futures_util::stream::unfold(first, move |(head, after, done)| {
        let state = state.clone();
        let filter = filter.clone();
        let id = f.id;
        async move {
            if done {
                return None;
            }
            let page = EventPageQuery {
                offset: 0,
                limit: 1000,
                after,
            };
            match state.store.list_events(id, &filter, &page).await {
                Ok(events) => {
                    let mut chunk = head;
                    for e in &events {
                        chunk.push_str(&line(e));
                    }
                    let next = events.last().map(|e| (e.enqueued_at, e.id));
                    let done = events.len() < 1000;
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
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn duration_ms(e: &EventSummary) -> String {
    match (e.started_at, e.ended_at) {
        (Some(s), Some(t)) => (t - s).to_string(),
        _ => String::new(),
    }
}

fn csv_line(e: &EventSummary) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{}\n",
        csv_field(&e.request_id),
        e.status.scf_name(),
        e.status_code.map(|c| c.to_string()).unwrap_or_default(),
        csv_field(&e.invoke_type),
        csv_field(&e.qualifier),
        format_time(e.enqueued_at, UtcOffset::UTC, TimeFormat::Rfc3339Millis),
        e.ended_at
            .map(|t| format_time(t, UtcOffset::UTC, TimeFormat::Rfc3339Millis))
            .unwrap_or_default(),
        duration_ms(e),
        e.attempt
    )
}

fn ndjson_line(e: &EventSummary) -> String {
    let mut s = serde_json::json!({
        "InvokeRequestId": e.request_id,
        "Status": e.status.scf_name(),
        "StatusCode": e.status_code,
        "InvokeType": e.invoke_type,
        "Qualifier": e.qualifier,
        "StartTime": format_time(e.enqueued_at, UtcOffset::UTC, TimeFormat::Rfc3339Millis),
        "EndTime": e.ended_at.map(|t| format_time(t, UtcOffset::UTC, TimeFormat::Rfc3339Millis)),
        "DurationMs": match (e.started_at, e.ended_at) { (Some(s), Some(t)) => Some(t - s), _ => None },
        "Attempts": e.attempt,
    })
    .to_string();
    s.push('\n');
    s
}

async fn export_response(
    state: AppState,
    region: String,
    namespace: String,
    name: String,
    q: Vec<(String, String)>,
    kind: &'static str,
) -> AppResult<Response> {
    let (_, f) = traced(&state, &region, &namespace, &name).await?;
    let mut view = View::parse(base_url(&region, &namespace, &name), &Fields(q));
    let (filter, _) = view.filter(state.clock.now_millis());
    let (body, content_type, ext) = if kind == "csv" {
        (
            export(
                state,
                f.clone(),
                filter,
                csv_line,
                "InvokeRequestId,Status,StatusCode,InvokeType,Qualifier,StartTime,EndTime,DurationMs,Attempts\n",
            ),
            "text/csv; charset=utf-8",
            "csv",
        )
    } else {
        (
            export(state, f.clone(), filter, ndjson_line, ""),
            "application/x-ndjson",
            "ndjson",
        )
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}-events.{ext}\"", f.name),
            ),
        ],
        body,
    )
        .into_response())
}

async fn export_csv(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> AppResult<Response> {
    export_response(state, region, namespace, name, q, "csv").await
}

async fn export_ndjson(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> AppResult<Response> {
    export_response(state, region, namespace, name, q, "ndjson").await
}

#[derive(Template, WebTemplate)]
#[template(path = "events/terminate.html")]
pub struct ConfirmBulk {
    shell: Shell,
    header: Header,
    count: usize,
    back_url: String,
    action_url: String,
}

async fn confirm_bulk(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> AppResult<ConfirmBulk> {
    let (shell, f) = traced(&state, &region, &namespace, &name).await?;
    let mut view = View::parse(base_url(&region, &namespace, &name), &Fields(q));
    let (filter, _) = view.filter(state.clock.now_millis());
    let ids = events::terminable(&state, &f, &filter).await?;
    Ok(ConfirmBulk {
        header: Header::new(&state, &shell, &f, "events"),
        shell,
        count: ids.len(),
        back_url: view.url(""),
        action_url: view.url("/-/terminate"),
    })
}

async fn bulk_terminate(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<Vec<(String, String)>>,
    FormFields(form): FormFields,
) -> AppResult<Response> {
    let (_, f) = traced(&state, &region, &namespace, &name).await?;
    let mut view = View::parse(base_url(&region, &namespace, &name), &Fields(q));
    let graceful = Fields(form)
        .get("GraceShutdown")
        .eq_ignore_ascii_case("true");
    let (filter, _) = view.filter(state.clock.now_millis());
    let done = events::terminate_matching(&state, &f, &filter, graceful).await?;
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

async fn rerun(
    State(state): State<AppState>,
    Path((region, namespace, name, request_id)): Path<(String, String, String, String)>,
) -> AppResult<Response> {
    let (_, f) = load(&state, &region, &namespace, &name).await?;
    let id = events::rerun(&state, &f, &request_id).await?;
    Ok(Redirect::to(&urls::event(&region, &namespace, &name, &id)).into_response())
}
