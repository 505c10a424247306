//! The Audit log page: who did what to what, from where and when, newest first, filtered by
//! user (or SecretId), action, text and time window.

use super::shell::{Section, Shell};
use super::urls;
use crate::clock::{Millis, TimeFormat, format_time};
use crate::error::AppResult;
use crate::state::AppState;
use crate::store::{AuditEntry, AuditFilter};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use serde::Deserialize;
use time::UtcOffset;

pub fn routes() -> Router<AppState> {
    Router::new().route("/scf/{region}/{namespace}/audit", get(page))
}

/// Entries per page.
const PAGE: u32 = 50;

/// The time windows offered, as (value, label, milliseconds).
const WINDOWS: [(&str, &str, Millis); 5] = [
    ("1h", "Last hour", 3_600_000),
    ("24h", "Last 24 hours", 86_400_000),
    ("7d", "Last 7 days", 7 * 86_400_000),
    ("30d", "Last 30 days", 30 * 86_400_000),
    ("all", "Everything kept", 0),
];

/// Longest filter text read: more cannot match a bounded field anyway.
const FILTER_MAX_CHARS: usize = 300;

#[derive(Deserialize, Default)]
struct Filters {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    window: String,
    #[serde(default)]
    before: Option<String>,
}

pub struct Row {
    pub when: String,
    pub when_iso: String,
    pub actor: String,
    pub via: &'static str,
    pub source: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub ok: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
pub struct AuditPage {
    shell: Shell,
    rows: Vec<Row>,
    actor: String,
    action: String,
    q: String,
    window: String,
    windows: [(&'static str, &'static str, Millis); 5],
    next_url: Option<String>,
    retention_days: u64,
}

fn non_empty(text: &str) -> Option<String> {
    let text: String = text.trim().chars().take(FILTER_MAX_CHARS).collect();
    (!text.is_empty()).then_some(text)
}

fn row(e: AuditEntry) -> Row {
    Row {
        when: format_time(e.at, UtcOffset::UTC, TimeFormat::DateTime),
        when_iso: format_time(e.at, UtcOffset::UTC, TimeFormat::Rfc3339),
        actor: e.actor,
        via: e.via.as_str(),
        source: e.source,
        action: e.action,
        target: e.target,
        ok: e.outcome == "ok",
        outcome: e.outcome,
    }
}

async fn page(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
    Query(f): Query<Filters>,
) -> AppResult<AuditPage> {
    let shell = Shell::load(&state, &region, &namespace, Section::Audit, "Audit log").await?;
    let window = WINDOWS
        .iter()
        .find(|w| w.0 == f.window)
        .unwrap_or(&WINDOWS[1]);
    let since = (window.2 > 0).then(|| state.clock.now_millis() - window.2);
    let filter = AuditFilter {
        actor: non_empty(&f.actor),
        action: non_empty(&f.action),
        text: non_empty(&f.q),
        since,
        before_id: f.before.as_deref().and_then(|b| b.parse().ok()),
        // One more than shown, to know whether there is a next page.
        limit: PAGE + 1,
    };
    let mut entries = state.store.list_audit(&filter).await?;
    let next_url = if entries.len() > PAGE as usize {
        entries.truncate(PAGE as usize);
        let last = entries.last().map_or(0, |e| e.id);
        Some(format!(
            "{}?actor={}&action={}&q={}&window={}&before={last}",
            urls::audit(&region, &namespace),
            urls::encode(&f.actor),
            urls::encode(&f.action),
            urls::encode(&f.q),
            window.0,
        ))
    } else {
        None
    };
    Ok(AuditPage {
        shell,
        rows: entries.into_iter().map(row).collect(),
        actor: f.actor,
        action: f.action,
        q: f.q,
        window: window.0.to_string(),
        windows: WINDOWS,
        next_url,
        retention_days: state.sweeper.audit_retention().as_secs() / 86_400,
    })
}
