//! A function's Monitoring tab: invocations, errors, run time and queue wait percentiles and
//! concurrency over the last hour, day or three days, drawn from the rollups.

use super::chart::{Chart, Kind, Spec, bucket_for, histogram_quantile};
use super::events_tab::run_time_percentile;
use super::parts::{Header, duration_text, load, moment};
use super::shell::Shell;
use crate::clock::Millis;
use crate::error::AppResult;
use crate::state::AppState;
use crate::store::{EventStats, MonitoringSeries};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::Deserialize;

const HOUR: Millis = 3_600_000;

/// The windows offered: `(key, label, span)`.
const RANGES: &[(&str, &str, Millis)] = &[
    ("1h", "Last hour", HOUR),
    ("24h", "Last 24 hours", 24 * HOUR),
    ("3d", "Last 3 days", 72 * HOUR),
];

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/scf/{region}/{namespace}/functions/{name}/monitoring",
        get(page),
    )
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    range: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "function/monitoring.html")]
pub struct Page {
    shell: Shell,
    header: Header,
    /// `(label, url, chosen)`.
    ranges: Vec<(&'static str, String, bool)>,
    /// This view, which refreshes itself in place.
    refresh_url: String,
    window_from: (String, String),
    window_to: (String, String),
    /// `(label, value)`, for the window as a whole.
    tiles: Vec<(&'static str, String)>,
    charts: Vec<Chart>,
    trace_enable: bool,
}

async fn page(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(params): Query<Params>,
) -> AppResult<Page> {
    let (shell, f) = load(&state, &region, &namespace, &name).await?;
    // An unknown range is the default, as a bookmark from another version would expect.
    let (key, _, span) = RANGES
        .iter()
        .find(|(k, _, _)| *k == params.range)
        .copied()
        .unwrap_or(RANGES[0]);
    let now = state.clock.now_millis();
    let window = (now - span, now);
    let bucket = bucket_for(span);
    // Counts and the run-time tiles are Event Management's statistics (percentiles exact up
    // to its limit), so the two tabs agree on a window; the charts' are estimated per bucket.
    let (series, stats) = tokio::try_join!(
        state.store.monitoring(f.id, window, bucket),
        state.store.event_stats(f.id, window, bucket, &[], &[]),
    )?;
    let url = shell.tab_url(&f.name, "monitoring");
    Ok(Page {
        header: Header::new(&state, &shell, &f, "monitoring"),
        ranges: RANGES
            .iter()
            .map(|(k, label, _)| (*label, format!("{url}?range={k}"), *k == key))
            .collect(),
        refresh_url: format!("{url}?range={key}"),
        window_from: moment(window.0),
        window_to: moment(window.1),
        tiles: tiles(&series, &stats),
        charts: charts(&series, &stats, window, bucket),
        trace_enable: f.trace_enable,
        shell,
    })
}

/// The window's totals: invocations, errors, percentiles over all of it, the highest
/// concurrency.
fn tiles(s: &MonitoringSeries, stats: &EventStats) -> Vec<(&'static str, String)> {
    let c = &stats.by_status;
    let invocations: i64 = c.iter().sum();
    let errors = c[FAILED];
    let ended = c[2] + c[3] + c[4];
    let mut waits: std::collections::BTreeMap<i64, i64> = Default::default();
    for (_, histogram) in &s.queue_waits {
        for (upper, n) in histogram {
            *waits.entry(*upper).or_default() += n;
        }
    }
    let waits: Vec<(i64, i64)> = waits.into_iter().collect();
    vec![
        ("Invocations", invocations.to_string()),
        ("Errors", errors.to_string()),
        (
            "Error rate",
            if ended == 0 {
                "—".into()
            } else {
                format!("{:.1}%", errors as f64 * 100.0 / ended as f64)
            },
        ),
        ("Duration p50", run_time_percentile(stats, 0.5)),
        ("Duration p95", run_time_percentile(stats, 0.95)),
        (
            "Queue wait p95",
            histogram_quantile(&waits, 0.95).map_or_else(|| "—".into(), ms_text),
        ),
        (
            "Peak concurrency",
            s.concurrency
                .iter()
                .map(|(_, n)| *n)
                .max()
                .map_or_else(|| "—".into(), |n| n.to_string()),
        ),
    ]
}

/// Where FAILED counts are, in the order of `ALL_STATUSES`.
const FAILED: usize = 3;

/// A time in milliseconds as the console says durations, rounded, marked as an estimate.
fn ms_text(ms: f64) -> String {
    format!("≈ {}", duration_text(ms.round() as i64))
}

fn charts(
    s: &MonitoringSeries,
    stats: &EventStats,
    window: (Millis, Millis),
    bucket: Millis,
) -> Vec<Chart> {
    let draw = |id, title, kind, series, format, unit, points: Vec<(Millis, Vec<Option<f64>>)>| {
        let spec = Spec {
            id,
            title,
            kind,
            series,
            format,
            unit,
        };
        Chart::draw(spec, window, bucket, &points)
    };
    let count: fn(f64) -> String = |v| format!("{v:.0}");
    let per_bucket = |c: fn(&[i64; 5]) -> i64| {
        stats
            .series
            .iter()
            .map(|(at, counts)| (*at, vec![Some(c(counts) as f64)]))
            .collect()
    };
    let percentiles = |series: &[(Millis, Vec<(i64, i64)>)]| {
        series
            .iter()
            .map(|(at, h)| {
                (
                    *at,
                    vec![histogram_quantile(h, 0.5), histogram_quantile(h, 0.95)],
                )
            })
            .collect()
    };
    let quantiles = || vec![("p50", "p50"), ("p95", "p95")];
    let concurrency = s
        .concurrency
        .iter()
        .map(|(at, n)| (*at, vec![Some(*n as f64)]))
        .collect();
    vec![
        draw(
            "invocations",
            "Invocations",
            Kind::Stacked,
            vec![("Invocations", "total")],
            count,
            "invocations",
            per_bucket(|c| c.iter().sum()),
        ),
        draw(
            "errors",
            "Errors",
            Kind::Stacked,
            vec![("Errors", "status-failed")],
            count,
            "errors",
            per_bucket(|c| c[FAILED]),
        ),
        draw(
            "duration",
            "Duration",
            Kind::Lines,
            quantiles(),
            ms_text,
            "",
            percentiles(&s.run_times),
        ),
        draw(
            "queue-wait",
            "Queue wait",
            Kind::Lines,
            quantiles(),
            ms_text,
            "",
            percentiles(&s.queue_waits),
        ),
        draw(
            "concurrency",
            "Concurrency",
            Kind::Stacked,
            vec![("Events running at once (peak)", "concurrency")],
            count,
            "running at once at most",
            concurrency,
        ),
    ]
}
