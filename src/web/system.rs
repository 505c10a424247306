//! System: the retention sweeper's state, the store's size, the engine's counters, and what
//! keeps functions apart.

use super::parts::retention_text;
use super::shell::{Section, Shell};
use crate::clock::{TimeFormat, format_time};
use crate::error::AppResult;
use crate::state::AppState;
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use time::UtcOffset;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/scf/{region}/{namespace}/system", get(page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up and answers.
pub(super) async fn healthz() -> &'static str {
    "ok"
}

/// For load balancers and orchestrators: 200 when the store answers and takes writes and the
/// engine runs; 503 with the reason otherwise. `/healthz` only says the process is up.
pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    let mut problems = Vec::new();
    if let Err(e) = state.store.size().await {
        problems.push(format!("store: cannot read: {e}"));
    }
    if let Some(fault) = state.store.write_health().fault() {
        problems.push(format!(
            "store: cannot write since {} UTC ({} failed writes): {}",
            format_time(fault.since, UtcOffset::UTC, TimeFormat::DateTime),
            fault.failures,
            fault.error
        ));
    }
    if !state.engine.is_running() {
        problems.push("engine: stopping".into());
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n".into())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{}\n", problems.join("\n")),
        )
    }
}

/// A node serving the store, as the Nodes card shows it.
struct NodeRow {
    id: String,
    /// The id's first characters, as a label.
    short: String,
    this: bool,
    address: String,
    started: String,
    /// Seconds since its last heartbeat.
    silent_for: i64,
    live: bool,
    running: u32,
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_048_576.0)
}

#[derive(Template, WebTemplate)]
#[template(path = "system.html")]
pub struct SystemPage {
    shell: Shell,
    retention: String,
    interval: String,
    last_run: Option<String>,
    last_removed: u64,
    last_duration_ms: u64,
    total_removed: u64,
    runs: u64,
    next_run: Option<String>,
    last_error: Option<String>,
    store_size: String,
    store_free: String,
    /// Since when (UTC), how many failures, and why the store cannot write; None when it can.
    write_fault: Option<(String, u64, String)>,
    write_failures: u64,
    nodes: Vec<NodeRow>,
    counters: Vec<(&'static str, u64)>,
    interpreters: Vec<(&'static str, String)>,
    isolation: crate::engine::Isolation,
    /// Where Prometheus scrapes, if the metrics listener is on.
    metrics_url: Option<String>,
    dashboard_url: String,
}

async fn page(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
) -> AppResult<SystemPage> {
    let shell = Shell::load(&state, &region, &namespace, Section::System, "System").await?;
    let sweep = state.sweeper.status();
    let size = state.store.size().await?;
    let now = state.clock.now_millis();
    let nodes = state
        .store
        .nodes()
        .await?
        .into_iter()
        .map(|n| NodeRow {
            this: n.id == state.engine.node_id(),
            live: crate::engine::node_is_live(n.heartbeat_at, now),
            silent_for: (now - n.heartbeat_at).max(0) / 1000,
            started: format_time(n.started_at, UtcOffset::UTC, TimeFormat::DateTime),
            address: n.address,
            running: n.running,
            short: n.id.chars().take(8).collect(),
            id: n.id,
        })
        .collect();
    let metrics = &state.metrics;
    let interpreter = |i: Option<&crate::domain::runtime::Interpreter>| {
        i.map_or("not found".to_string(), |i| {
            format!(
                "{} {}.{}.{}",
                i.command, i.version.0, i.version.1, i.version.2
            )
        })
    };
    Ok(SystemPage {
        shell,
        retention: retention_text(&state),
        interval: format!("{} s", state.sweeper.interval().as_secs()),
        last_run: sweep
            .last_run
            .map(|t| format_time(t, UtcOffset::UTC, TimeFormat::DateTime)),
        last_removed: sweep.last_removed,
        last_duration_ms: sweep.last_duration_ms,
        total_removed: sweep.total_removed,
        runs: sweep.runs,
        next_run: sweep
            .next_run
            .map(|t| format_time(t, UtcOffset::UTC, TimeFormat::DateTime)),
        last_error: sweep.last_error,
        store_size: mb(size.bytes),
        store_free: mb(size.free_bytes),
        write_fault: state.store.write_health().fault().map(|f| {
            (
                format_time(f.since, UtcOffset::UTC, TimeFormat::DateTime),
                f.failures,
                f.error,
            )
        }),
        write_failures: state.store.write_health().total_failures(),
        nodes,
        counters: vec![
            ("Accepted", metrics.accepted()),
            ("Finished", metrics.ended_with("finished")),
            ("Failed", metrics.ended_with("failed")),
            ("Terminated", metrics.ended_with("aborted")),
            ("Retried", metrics.retries.get()),
            ("Cold starts", metrics.cold_starts()),
            ("Warm instances now", state.engine.idle_instances() as u64),
        ],
        interpreters: vec![
            ("Python", interpreter(state.interpreters.python.as_ref())),
            ("Node.js", interpreter(state.interpreters.nodejs.as_ref())),
        ],
        isolation: state.engine.isolation(),
        metrics_url: state.metrics_at.map(|at| format!("http://{at}/metrics")),
        dashboard_url: super::assets::url("grafana-dashboard.json"),
    })
}
