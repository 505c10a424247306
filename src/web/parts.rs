//! Parts that several console pages show: a function's header and tab bar, the settings
//! block of the wizard and the Configuration tab, and how the console words durations, event
//! statuses and the retention period.

use super::form::env_rows;
use super::shell::{Section, Shell};
use crate::clock::{Millis, TimeFormat, format_time};
use crate::domain::event::EventStatus;
use crate::domain::function::{ConfigDraft, EnvVar};
use crate::domain::rules::FieldErrors;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{Function, FunctionKey};
use time::UtcOffset;

/// The function's header and tab bar, shared by its tabs.
pub struct Header {
    pub name: String,
    pub runtime: String,
    pub handler: String,
    pub async_run_enable: bool,
    pub trace_enable: bool,
    pub memory_size: u32,
    pub timeout: u32,
    pub modified: String,
    pub modified_iso: String,
    pub config_url: String,
    pub code_url: String,
    pub test_url: String,
    pub events_url: String,
    pub monitoring_url: String,
    pub logs_url: String,
    pub delete_url: String,
    pub concurrency_url: String,
    /// When status trace is off: the time by which its last records are cleared.
    pub trace_cleared_by: Option<String>,
    pub tab: &'static str,
}

impl Header {
    pub fn new(state: &AppState, shell: &Shell, f: &Function, tab: &'static str) -> Self {
        Header {
            name: f.name.clone(),
            runtime: f.runtime.clone(),
            handler: f.handler.clone(),
            async_run_enable: f.async_run_enable,
            trace_enable: f.trace_enable,
            memory_size: f.memory_size,
            timeout: f.timeout,
            modified: format_time(f.modified_at, UtcOffset::UTC, TimeFormat::DateTime),
            modified_iso: format_time(f.modified_at, UtcOffset::UTC, TimeFormat::Rfc3339),
            config_url: shell.tab_url(&f.name, "config"),
            code_url: shell.tab_url(&f.name, "code"),
            test_url: shell.tab_url(&f.name, "test"),
            events_url: shell.tab_url(&f.name, "events"),
            monitoring_url: shell.tab_url(&f.name, "monitoring"),
            logs_url: shell.tab_url(&f.name, "logs"),
            delete_url: shell.tab_url(&f.name, "delete"),
            concurrency_url: shell.tab_url(&f.name, "concurrency"),
            trace_cleared_by: f.trace_disabled_at.filter(|_| !f.trace_enable).map(|at| {
                format_time(
                    at + retention_millis(state),
                    UtcOffset::UTC,
                    TimeFormat::DateTime,
                )
            }),
            tab,
        }
    }
}

fn retention_millis(state: &AppState) -> Millis {
    state.event_retention.as_millis() as Millis
}

/// "3 days", "72 hours", "90 minutes": the retention as the UI says it.
pub fn retention_text(state: &AppState) -> String {
    let secs = state.event_retention.as_secs();
    match secs {
        s if s >= 86_400 && s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => plural(s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// The page's frame and the function it is about, or a 404 that names what is missing.
pub async fn load(
    state: &AppState,
    region: &str,
    namespace: &str,
    name: &str,
) -> AppResult<(Shell, Function)> {
    let shell = Shell::load(state, region, namespace, Section::Functions, name).await?;
    let key = FunctionKey {
        region: region.into(),
        namespace: namespace.into(),
        name: name.into(),
    };
    let function = state
        .store
        .get_function(&key)
        .await?
        .ok_or_else(|| not_found(&key))?;
    Ok((shell, function))
}

/// The 404 of a function that is not there (never created, or deleted meanwhile).
pub fn not_found(key: &FunctionKey) -> AppError {
    AppError::NotFound(format!(
        "Function {} does not exist in namespace {} of {}.",
        key.name, key.namespace, key.region
    ))
}

/// Milliseconds as the console says them: `850 ms`, `12.4 s`.
pub fn duration_text(ms: Millis) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

pub fn status_class(status: EventStatus) -> &'static str {
    match status {
        EventStatus::Queued => "status-queued",
        EventStatus::Running => "status-running",
        EventStatus::Finished => "status-finished",
        EventStatus::Failed => "status-failed",
        EventStatus::Aborted => "status-aborted",
    }
}

/// The fields under Advanced Settings: an error in any of them opens the section.
const ADVANCED_FIELDS: &[&str] = &[
    "MemorySize",
    "Timeout",
    "QpsLimit",
    "Environment",
    "AsyncRunEnable",
    "TraceEnable",
    "RetryNum",
    "MsgTTL",
    "PublicNetConfig",
];

/// The settings block shared by the wizard and the Configuration tab.
pub struct AdvancedFields {
    pub config: ConfigDraft,
    pub env_rows: Vec<EnvVar>,
    /// On the Configuration tab async execution is shown but cannot change.
    pub async_locked: bool,
    pub async_run: bool,
    pub open: bool,
    /// Blank environment rows added with "Add variable" beyond the one always shown.
    pub extra_rows: usize,
}

impl AdvancedFields {
    pub fn new(
        config: ConfigDraft,
        async_run: bool,
        async_locked: bool,
        errors: &FieldErrors,
        extra_rows: usize,
    ) -> Self {
        AdvancedFields {
            env_rows: env_rows(&config.environment, extra_rows),
            // The Configuration tab is all settings: shown open. The wizard keeps them folded
            // unless something inside needs the user, or async execution is on (a template
            // made for it): it cannot change later, so it is shown before Complete.
            open: async_locked
                || async_run
                || extra_rows > 0
                || ADVANCED_FIELDS.iter().any(|f| errors.get(f).is_some()),
            config,
            async_locked,
            async_run,
            extra_rows,
        }
    }

    pub fn trace_checked(&self) -> bool {
        self.config.is_trace_enabled()
    }

    pub fn public_net_checked(&self) -> bool {
        crate::domain::function::parse_flag(&self.config.public_net) == Some(true)
    }
}

/// A time as `(RFC 3339, text in UTC)`, for `m::time`.
pub fn moment(at: crate::clock::Millis) -> (String, String) {
    (
        crate::clock::format_time(at, time::UtcOffset::UTC, crate::clock::TimeFormat::Rfc3339),
        crate::clock::format_time(at, time::UtcOffset::UTC, crate::clock::TimeFormat::DateTime),
    )
}
