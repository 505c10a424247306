//! What operators scrape at `GET /metrics` (Prometheus/OpenMetrics text): counters and
//! histograms kept where things happen, and gauges read at scrape time from what the engine,
//! the sweeper and the store already know, so no fact is counted in two places.
//!
//! Every label takes its values from a closed set (statuses, reasons, runtimes, routes, SCF
//! actions): no RequestId, name or path a client chose ever becomes a label, so the number of
//! series stays bounded whatever is sent.

use crate::domain::runtime::{CATALOGUE, Runtime};
use axum::extract::MatchedPath;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label value from a closed set, written as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name(pub &'static str);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0, encoder)
    }
}

/// How an invocation was asked to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Async,
    Sync,
}

/// What became of an invocation: accepted, or why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvocationResult {
    Accepted,
    QpsLimit,
    Arrears,
    ReservedNone,
    Unavailable,
    FunctionGone,
    StoreError,
}

impl EncodeLabelValue for Mode {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Async => "async",
            Mode::Sync => "sync",
        }
    }
}

impl EncodeLabelValue for InvocationResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let text = match self {
            InvocationResult::Accepted => "accepted",
            InvocationResult::QpsLimit => "qps_limit",
            InvocationResult::Arrears => "arrears",
            InvocationResult::ReservedNone => "reserved_none",
            InvocationResult::Unavailable => "unavailable",
            InvocationResult::FunctionGone => "function_gone",
            InvocationResult::StoreError => "store_error",
        };
        EncodeLabelValue::encode(&text, encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct InvocationLabels {
    pub mode: Mode,
    pub invoke_type: Name,
    pub result: InvocationResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RuntimeLabels {
    pub runtime: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StartLabels {
    pub runtime: Name,
    /// `warm`: an idle instance took the event; `cold`: one was started for it.
    pub kind: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TerminationLabels {
    /// `force` or `grace`.
    pub mode: Name,
}

/// The route a request matched, as its pattern (`/scf/{region}/{namespace}/functions`), or
/// `unmatched`: the router's own string, shared, so counting a request copies nothing.
#[derive(Debug, Clone)]
pub struct Route(pub Option<MatchedPath>);

impl Route {
    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("unmatched", MatchedPath::as_str)
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl std::hash::Hash for Route {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: Route,
    pub method: Name,
    pub status: u16,
    /// The SCF action of an API call (`POST /`), when it is one the server knows; else empty.
    pub action: Name,
}

#[derive(Clone)]
/// Makes each histogram of a family with the same buckets.
pub struct HistogramOf(fn() -> Histogram);

impl MetricConstructor<Histogram> for HistogramOf {
    fn new_metric(&self) -> Histogram {
        (self.0)()
    }
}

/// Upper bounds in seconds for what takes from a millisecond to minutes.
fn seconds_buckets() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        300.0, 900.0,
    ])
}

/// Upper bounds in seconds for HTTP answers, which take microseconds to seconds.
fn http_buckets() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
    ])
}

/// What the `/metrics` handler reads from the engine, the store and the sweeper just before it
/// renders: gauges, and counters that those keep themselves (set with [`set_counter`]).
#[derive(Default)]
pub struct Sampled {
    /// Floats, so that a read that failed is `NaN`, not a figure.
    pub queued: Gauge<f64, AtomicU64>,
    pub queue_oldest_age: Gauge<f64, AtomicU64>,
    pub running: Gauge,
    pub idle_instances: Gauge,
    pub store_bytes: Gauge,
    pub store_free_bytes: Gauge,
    pub store_write_failures: Counter,
    pub store_can_write: Gauge,
    pub sweeper_runs: Counter,
    pub sweeper_failures: Counter,
    pub sweeper_events_removed: Counter,
    pub sweeper_last_run: Gauge,
}

/// Sets a counter kept elsewhere to its value there: it only ever grows, as a counter must.
pub fn set_counter(counter: &Counter, value: u64) {
    counter
        .inner()
        .store(value, std::sync::atomic::Ordering::Relaxed);
}

/// The server's metrics: one registry per server (tests run several in one process).
pub struct Metrics {
    registry: Registry,
    pub http: Family<HttpLabels, Histogram, HistogramOf>,
    pub invocations: Family<InvocationLabels, Counter>,
    pub ended: Family<StatusLabels, Counter>,
    pub retries: Counter,
    pub expired: Counter,
    pub takeovers: Counter,
    pub terminations: Family<TerminationLabels, Counter>,
    pub queue_wait: Histogram,
    pub run_time: Histogram,
    pub starts: Family<StartLabels, Counter>,
    pub cold_start: Family<RuntimeLabels, Histogram, HistogramOf>,
    pub instances: Family<RuntimeLabels, Gauge>,
    pub commit_batch: Histogram,
    pub commit_time: Histogram,
    pub sampled: Sampled,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("scf"),
            http: Family::new_with_constructor(HistogramOf(http_buckets)),
            invocations: Family::default(),
            ended: Family::default(),
            retries: Counter::default(),
            expired: Counter::default(),
            takeovers: Counter::default(),
            terminations: Family::default(),
            queue_wait: seconds_buckets(),
            run_time: seconds_buckets(),
            starts: Family::default(),
            cold_start: Family::new_with_constructor(HistogramOf(seconds_buckets)),
            instances: Family::default(),
            // 1, 2, 4, … 2048: the group commit takes up to 2048 writes.
            commit_batch: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            commit_time: Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
            ]),
            sampled: Sampled::default(),
        };
        let r = &mut m.registry;
        r.register_with_unit(
            "http_request_duration",
            "HTTP requests answered, by matched route, method, status and SCF action, with the time to answer",
            Unit::Seconds,
            m.http.clone(),
        );
        r.register(
            "invocations",
            "Invocations, by mode, invoke type and result: accepted, or the reason they were refused",
            m.invocations.clone(),
        );
        r.register(
            "events_ended",
            "Events ended by this node, by terminal status",
            m.ended.clone(),
        );
        r.register(
            "event_retries",
            "Failed runs put back in the queue to be retried (RetryNum)",
            m.retries.clone(),
        );
        r.register(
            "events_expired",
            "Events that waited in the queue longer than their MsgTTL and failed unrun",
            m.expired.clone(),
        );
        r.register(
            "event_takeovers",
            "Events taken over from a server whose lease ran out",
            m.takeovers.clone(),
        );
        r.register(
            "event_terminations",
            "Terminations asked for, by mode",
            m.terminations.clone(),
        );
        r.register_with_unit(
            "event_queue_wait",
            "Time from accept until an event's first run started (the queue, the claim and the instance's start)",
            Unit::Seconds,
            m.queue_wait.clone(),
        );
        r.register_with_unit(
            "event_run",
            "Time an event's handler ran",
            Unit::Seconds,
            m.run_time.clone(),
        );
        r.register(
            "instance_starts",
            "Events given an instance, by runtime and kind: warm (idle instance) or cold (started for it)",
            m.starts.clone(),
        );
        r.register_with_unit(
            "instance_cold_start",
            "Time to start an instance and load its code, by runtime",
            Unit::Seconds,
            m.cold_start.clone(),
        );
        r.register(
            "instances",
            "Instances alive (idle or running), by runtime",
            m.instances.clone(),
        );
        r.register(
            "store_commit_batch_size",
            "Writes committed together by the group commit",
            m.commit_batch.clone(),
        );
        r.register_with_unit(
            "store_commit",
            "Time of one group commit, fsync included",
            Unit::Seconds,
            m.commit_time.clone(),
        );
        // Known series start at 0, so that a rate over them is defined before the first
        // increase.
        for status in ENDED {
            drop(m.ended.get_or_create(&StatusLabels {
                status: Name(status),
            }));
        }
        for mode in ["force", "grace"] {
            drop(
                m.terminations
                    .get_or_create(&TerminationLabels { mode: Name(mode) }),
            );
        }
        let s = &m.sampled;
        r.register(
            "events_queued",
            "Events waiting in the queue (all nodes), retries in backoff included",
            s.queued.clone(),
        );
        r.register_with_unit(
            "queue_oldest_age",
            "How long the event due longest ago has waited since it was due (accepted, or its retry's backoff over); 0 when none waits",
            Unit::Seconds,
            s.queue_oldest_age.clone(),
        );
        r.register(
            "events_running",
            "Events running on this node",
            s.running.clone(),
        );
        r.register(
            "instances_idle",
            "Idle instances kept warm on this node",
            s.idle_instances.clone(),
        );
        r.register_with_unit(
            "store_size",
            "Size of the store on disk",
            Unit::Bytes,
            s.store_bytes.clone(),
        );
        r.register_with_unit(
            "store_free",
            "Pages freed by deletions inside the store's file, reused before the file grows",
            Unit::Bytes,
            s.store_free_bytes.clone(),
        );
        r.register(
            "store_can_write",
            "1 when the store takes writes, 0 while they fail",
            s.store_can_write.clone(),
        );
        r.register(
            "store_write_failures",
            "Writes that failed since start",
            s.store_write_failures.clone(),
        );
        r.register(
            "sweeper_runs",
            "Retention sweeps run since start",
            s.sweeper_runs.clone(),
        );
        r.register(
            "sweeper_failures",
            "Retention sweeps that failed since start",
            s.sweeper_failures.clone(),
        );
        r.register(
            "sweeper_events_removed",
            "Expired event records removed by the retention sweeper since start",
            s.sweeper_events_removed.clone(),
        );
        r.register(
            "sweeper_last_run_timestamp",
            "Unix time of the last retention sweep; 0 before the first",
            s.sweeper_last_run.clone(),
        );
        m
    }

    /// The registry as OpenMetrics text.
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// Counts an invocation; `invoke_type` as [`invoke_type_label`] says it.
    pub fn invocation(&self, mode: Mode, invoke_type: &'static str, result: InvocationResult) {
        self.invocations
            .get_or_create(&InvocationLabels {
                mode,
                invoke_type: Name(invoke_type),
                result,
            })
            .inc();
    }

    /// Async invocations accepted since start.
    pub fn accepted(&self) -> u64 {
        let mut total = 0;
        for invoke_type in INVOKE_TYPES {
            if let Some(c) = self.invocations.get(&InvocationLabels {
                mode: Mode::Async,
                invoke_type: Name(invoke_type),
                result: InvocationResult::Accepted,
            }) {
                total += c.get();
            }
        }
        total
    }

    pub fn end(&self, status: &'static str) {
        self.ended
            .get_or_create(&StatusLabels {
                status: Name(status),
            })
            .inc();
    }

    /// Events this node ended with `status`.
    pub fn ended_with(&self, status: &'static str) -> u64 {
        self.ended
            .get(&StatusLabels {
                status: Name(status),
            })
            .map_or(0, |c| c.get())
    }

    /// Events this node ended, whatever their status.
    pub fn ended_total(&self) -> u64 {
        ENDED.iter().map(|s| self.ended_with(s)).sum()
    }

    pub fn started(&self, runtime: &str, cold: Option<Duration>) {
        let runtime = Name(runtime_label(runtime));
        let kind = Name(if cold.is_some() { "cold" } else { "warm" });
        self.starts
            .get_or_create(&StartLabels { runtime, kind })
            .inc();
        if let Some(took) = cold {
            self.cold_start
                .get_or_create(&RuntimeLabels { runtime })
                .observe(took.as_secs_f64());
        }
    }

    /// Instances started since start, whatever their runtime.
    pub fn cold_starts(&self) -> u64 {
        CATALOGUE
            .iter()
            .filter_map(|runtime| {
                self.starts.get(&StartLabels {
                    runtime: Name(runtime.name),
                    kind: Name("cold"),
                })
            })
            .map(|c| c.get())
            .sum()
    }

    /// Counts an instance of `runtime` alive until the answer is dropped.
    pub fn alive(&self, runtime: &str) -> Alive {
        let gauge = self.instances.get_or_create_owned(&RuntimeLabels {
            runtime: Name(runtime_label(runtime)),
        });
        gauge.inc();
        Alive(gauge)
    }
}

/// One live instance in the `instances` gauge; it leaves the count when dropped.
#[derive(Debug)]
pub struct Alive(Gauge);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Terminal statuses as the `events_ended` label says them.
pub const ENDED: [&str; 3] = ["finished", "failed", "aborted"];

/// A terminal status as the `events_ended` label says it.
pub fn ended_label(status: crate::domain::event::EventStatus) -> &'static str {
    use crate::domain::event::EventStatus;
    match status {
        EventStatus::Finished => "finished",
        EventStatus::Aborted => "aborted",
        _ => "failed",
    }
}

const INVOKE_TYPES: [&str; 3] = ["api", "console", "other"];

/// An invoke type as a label: the known ones, else `other`.
pub fn invoke_type_label(invoke_type: &str) -> &'static str {
    match invoke_type {
        crate::domain::event::INVOKE_TYPE_API => "api",
        crate::domain::event::INVOKE_TYPE_CONSOLE => "console",
        _ => "other",
    }
}

/// A runtime as a label: one of the catalogue's, else `other`.
fn runtime_label(runtime: &str) -> &'static str {
    Runtime::by_name(runtime).map_or("other", |r| r.name)
}
