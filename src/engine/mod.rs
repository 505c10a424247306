//! The execution engine: accepts async invocations durably, runs them on warm runtime
//! instances, records every status transition, retries, expires, terminates, and takes over what
//! a dead process left running.

pub mod admission;
mod ahead;
pub mod concurrency;
pub mod interpreters;
mod node;
mod pool;
pub mod runtime;
pub mod sweeper;
pub mod writer;

use crate::clock::{Clock, Millis};
use crate::domain::event::{
    AfterStop, EventStatus, LOG_MAX_BYTES, Origin, RESULT_MAX_BYTES, StopCause, TerminateRequest,
    after_stop, retries_remain, retry_backoff_ms, status_code, timeline, truncate,
};
use crate::domain::runtime::Interpreters;
use crate::metrics::{self, InvocationResult, Metrics, Mode};
use crate::store::{
    Claim, ClaimedEvent, DynStore, EventWrite, Function, NewEvent, RunLease, StrandedRun,
    Termination, TimelineEntry,
};
use admission::{Admission, Refusal};
use runtime::{Context, HandlerError, Instance, Outcome, RuntimeDir, Signal, Spawn, StartError};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Events running at once, over all functions.
    pub workers: usize,
    /// Events of one function without a reserved concurrency running at once (see
    /// [`concurrency`]).
    pub per_function: usize,
    /// How long an idle instance is kept warm.
    pub idle_timeout: Duration,
    /// How often the queue is looked at when nothing wakes the dispatcher (delayed retries).
    pub poll_interval: Duration,
    /// How long a gracefully terminated handler may take to stop.
    pub grace_period: Duration,
    /// How long running events may finish when the server stops.
    pub shutdown_grace: Duration,
    /// How long a claim holds an event before another node may take it over; renewed every
    /// third of it (or every second, whichever is sooner) while the event runs.
    pub lease: Duration,
    /// How far ahead of its workers this node claims events, in run time at the recent pace
    /// (see [`ahead`]); zero claims only for free workers.
    pub claim_ahead: Duration,
    /// Where this process keeps its node lock, so that processes sharing the folder take over
    /// the events of a dead one at once rather than a lease later. `None`: leases only.
    pub nodes_dir: Option<std::path::PathBuf>,
    /// Keep instances warm between events (SCF's behaviour). Off, every event cold-starts.
    pub reuse_instances: bool,
    /// Fork Python instances from a fork server that has the interpreter started and the
    /// bootstrap imported, instead of starting an interpreter per instance.
    pub fork_server: bool,
    /// Live instances (idle or running) at most, over all functions; see
    /// [`default_max_instances`].
    pub max_instances: usize,
    /// The user ids functions run as, one per function, when the server runs as root.
    pub uids: runtime::sandbox::UidRange,
    /// Put each instance in a control group of its own (memory and process limits, and
    /// everything it started killed with it), where the machine allows.
    pub cgroups: bool,
    /// Folders instances must not see (the data folder), covered in their view of the file
    /// system.
    pub hidden: Vec<std::path::PathBuf>,
    /// The program that runs as a spawned instance's init: the server binary itself, which
    /// calls [`runtime::init::run_if_asked`] first thing. Without it, spawned instances
    /// (Node.js) share the server's PID namespace.
    pub init: Option<std::path::PathBuf>,
}

/// The cap on live instances when none is set: each instance holds 3 descriptors in the
/// server, and a start briefly needs 3 more plus what the fork server and the child take, so
/// `(RLIMIT_NOFILE - 256) / 8` leaves the 256 for connections and the database with room to
/// spare; and each instance costs memory, so at most one per 64 MB of the machine's memory.
pub fn default_max_instances() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: 1024,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let nofile = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur
    } else {
        1024
    };
    let by_descriptors = nofile.saturating_sub(256) / 8;
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(u64::MAX, |kb| kb / (64 * 1024));
    by_descriptors.min(memory).clamp(1, usize::MAX as u64) as usize
}

/// Events of one function without a reservation at once when none is set: half the workers,
/// so that one function's long events always leave the other half to the rest.
pub fn default_per_function(workers: usize) -> usize {
    (workers / 2).max(1)
}

impl Default for EngineConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = (cpus * 8).max(8);
        EngineConfig {
            workers,
            per_function: default_per_function(workers),
            idle_timeout: Duration::from_secs(300),
            poll_interval: Duration::from_millis(500),
            grace_period: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
            lease: Duration::from_secs(60),
            claim_ahead: ahead::HORIZON,
            nodes_dir: None,
            reuse_instances: true,
            fork_server: true,
            max_instances: default_max_instances(),
            uids: Default::default(),
            cgroups: true,
            hidden: Vec::new(),
            init: None,
        }
    }
}

/// Why an invocation was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeError {
    Refused(Refusal),
    /// The function was deleted as the invocation came in (another process deleted it, or it
    /// went between the lookup and the write): nothing was recorded.
    FunctionGone,
    /// The accept could not be made durable: nothing was recorded and nothing runs.
    Store(String),
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InvokeError::Refused(r) => write!(f, "{r}"),
            InvokeError::FunctionGone => f.write_str("The function was deleted."),
            InvokeError::Store(why) => write!(
                f,
                "The invocation was not accepted because {why}. Nothing was recorded and \
                 nothing will run; try again once the store can write."
            ),
        }
    }
}

/// The answer of a synchronous invocation.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SyncResult {
    pub request_id: String,
    pub status_code: i64,
    /// The return value as JSON, as SCF answers it.
    pub result: Option<String>,
    pub error: Option<String>,
    /// The handler's exception, when it raised one.
    pub raised: Option<HandlerError>,
    pub logs: String,
    pub duration_ms: f64,
    pub memory_bytes: u64,
}

/// The events this node holds, running events' control channels, and terminations asked for
/// before an event started.
#[derive(Default)]
struct Control {
    /// Every event claimed here and not yet done with, by request id: the leases to renew.
    held: HashMap<String, Held>,
    running: HashMap<String, RunControl>,
    /// Terminations of held events that have not started yet; they go with the event.
    pending: HashMap<String, Signal>,
    /// Set when the server stops the runs that outlived the shutdown grace: those runs go back
    /// to the queue (not to ABORTED), and a claimed run that had not started does not start.
    interrupting: bool,
    /// Functions being deleted or deleted by this node: their claimed events do not start.
    deleting: std::collections::HashSet<i64>,
    /// Claims made so far.
    claims: u64,
}

/// The span of everything logged about one event: its RequestId, function and attempt.
fn event_span(
    request_id: &str,
    (region, namespace, function): (&str, &str, &str),
    attempt: u32,
) -> tracing::Span {
    tracing::info_span!("event", request_id, function, namespace, region, attempt,)
}

/// Wakes the dispatcher when dropped.
struct WakeOnDrop<'a>(&'a Notify);

impl Drop for WakeOnDrop<'_> {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// An event's end, to record before its event is let go.
struct Ended {
    write: EventWrite,
    request_id: String,
    claim: u64,
}

/// Ends committing behind their worker, oldest first.
type Behind = VecDeque<(Ended, oneshot::Receiver<Result<(), writer::WriteError>>)>;

/// Ends a worker leaves behind at most before it waits for the oldest to commit.
const MAX_BEHIND: usize = 64;

/// One synchronous invocation waiting for a worker, counted while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn on(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Clone, Copy)]
struct Held {
    event_id: i64,
    attempt: u32,
    /// The claim that took it: a run done with an event releases only its own claim of it,
    /// not the next one (a requeue that commits with a claim taking the event again).
    claim: u64,
}

struct RunControl {
    function_id: i64,
    /// What the handler has printed so far, for the event's live view.
    logs: runtime::LiveLogs,
    signals: mpsc::Sender<Signal>,
    /// A terminate request was delivered (the heartbeat brings it back until the run ends).
    signalled: bool,
    /// The lease was lost to another node: the run is stopped and records nothing.
    lost: bool,
}

pub struct Engine {
    store: DynStore,
    node: node::Node,
    /// When this node joined, and where it listens: what its heartbeat says of it.
    started_at: Millis,
    address: Mutex<String>,
    /// Set once this node has removed itself from the store's list of nodes: a heartbeat
    /// that was on its way then writes nothing, so a stopped node does not come back as gone.
    left: tokio::sync::Mutex<bool>,
    clock: Clock,
    interpreters: Arc<Interpreters>,
    config: EngineConfig,
    dir: RuntimeDir,
    writer: writer::GroupCommit,
    /// Wakes the dispatcher: an event was accepted, or a worker is free.
    wake: Arc<Notify>,
    slots: Arc<Semaphore>,
    /// Synchronous invocations waiting for a worker: claims leave them that many.
    sync_waiting: AtomicUsize,
    /// Events claimed ahead of a free worker.
    ahead: ahead::Ahead,
    /// Cancelled once the dispatcher has stopped: no claim lands after.
    dispatching: CancellationToken,
    concurrency: Arc<concurrency::Concurrency>,
    pools: pool::Pools,
    control: Mutex<Control>,
    admission: Admission,
    cancel: CancellationToken,
    /// Stops the concurrency recorder, once the runs are done with at shutdown, so it writes
    /// the peaks of the last runs too; tracked to be awaited before the store closes.
    recording: CancellationToken,
    recorder: TaskTracker,
    /// Cancelled when shutdown gives up on writes that cannot land (the store cannot write):
    /// the events concerned are taken over by the next node to look (at the next start, this
    /// process's node lock being free by then).
    give_up: CancellationToken,
    /// The dispatcher, the reaper and the writer.
    tasks: TaskTracker,
    /// Event runs, tracked apart so shutdown can wait for them before the writer stops.
    runs: TaskTracker,
    /// What this node counts and times, for `/metrics`, the System page and the benchmark.
    pub metrics: Arc<Metrics>,
    zygote: Mutex<Option<Arc<runtime::zygote::Zygote>>>,
    /// Where instances' control groups go, or why the machine offers none to this process.
    cgroups: Result<runtime::cgroup::Controllers, String>,
    /// Instances' private view of the file system, or why they cannot have one.
    jail: Result<Arc<runtime::sandbox::Jail>, String>,
    /// The init program, held open: a spawned instance execs it by descriptor, from inside
    /// its view of the file system, where its path may not exist (under `/tmp`, say).
    init: Result<runtime::init::Program, String>,
}

/// What keeps functions apart on this server: for the start-up log, the System page and the
/// setting that refuses to start without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// Each function runs as a user of its own (the server is root).
    pub own_users: bool,
    /// Each instance has its own /tmp, /var/tmp, /dev/shm and /proc view.
    pub private_view: bool,
    /// Each instance has a PID namespace of its own (forked and spawned instances alike).
    pub own_pids: bool,
    /// Where instances' control groups are, if they get them.
    pub cgroups: Option<String>,
    /// What is missing, each with why, in the operator's terms.
    pub missing: Vec<String>,
}

impl Isolation {
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// How an event ends: its status, code, what it returned or raised, and its timeline note.
struct Ending {
    status: EventStatus,
    code: i64,
    result: Option<String>,
    error: Option<String>,
    logs: Option<String>,
    detail: String,
}

/// What a run means for the event.
enum Verdict {
    /// The handler's return value, recorded and answered as JSON ([`recorded_result`]).
    Finished(serde_json::Value),
    /// `raised`: the handler's own exception, when that is why.
    Failed {
        code: i64,
        error: String,
        raised: Option<HandlerError>,
    },
    /// `killed`: graceful, but the handler outlived its grace period (SCF's 439).
    Aborted { graceful: bool, killed: bool },
}

/// Why `instance_for` has no instance to run on.
#[derive(Debug)]
enum NoInstance {
    /// The code could not be loaded (or its runtime is unknown): the user's error, with the
    /// status code to record and the logs of the failed start.
    Load {
        code: i64,
        error: String,
        logs: String,
    },
    /// The machine is out of descriptors, processes or memory, or every instance stayed busy
    /// while the event waited for room: nothing to do with the user's code. The event belongs
    /// back in the queue for a little while, without spending a retry.
    Capacity { error: String },
}

/// What a stored terminate mode asks of a run.
fn signal_of(mode: &str) -> Signal {
    if mode == "grace" {
        Signal::Term
    } else {
        Signal::Kill
    }
}

/// How long an event put back for lack of room waits in the queue.
const CAPACITY_BACKOFF_MS: i64 = 1000;

/// A return value as an event records it and the API answers it (RetMsg): as JSON, so a
/// string comes back quoted, as SCF serializes it; cut like logs.
fn recorded_result(value: &serde_json::Value) -> String {
    truncate(&value.to_string(), RESULT_MAX_BYTES)
}

/// The handler's error as recorded: cut like logs and results.
fn error_text(e: &HandlerError) -> String {
    let text = if e.stack.trim().is_empty() {
        format!("{}: {}", e.kind, e.message)
    } else {
        format!("{}: {}\n{}", e.kind, e.message, e.stack.trim_end())
    };
    truncate(&text, LOG_MAX_BYTES)
}

/// Heartbeats between two of a node's records in the store (a heartbeat is a second at most).
const NODE_BEAT_EVERY: u64 = 5;
/// How long a node that stopped beating stays listed, as gone, before it is forgotten.
const NODE_FORGOTTEN_AFTER: Millis = 3_600_000;
/// A node is shown as gone once it missed this long of heartbeats (six of them).
const NODE_SILENT_AFTER: Millis = 30_000;

/// Whether a node whose last heartbeat was at `heartbeat_at` counts as alive at `now`.
pub fn node_is_live(heartbeat_at: Millis, now: Millis) -> bool {
    now - heartbeat_at < NODE_SILENT_AFTER
}

impl Engine {
    /// Joins the queue as a new node, takes over what gone nodes left running, then starts
    /// the dispatcher, the heartbeat and the idle-instance reaper.
    pub async fn start(
        store: DynStore,
        clock: Clock,
        interpreters: Arc<Interpreters>,
        config: EngineConfig,
    ) -> anyhow::Result<Arc<Engine>> {
        let node = node::Node::join(config.nodes_dir.as_deref())?;
        tracing::info!(node = node.id(), "joined the event queue");
        let config_cgroups = config.cgroups;
        let tasks = TaskTracker::new();
        let dir = RuntimeDir::create()?;
        let jail = runtime::sandbox::Jail::usable(dir.root(), &config.hidden).map(Arc::new);
        let init = match &config.init {
            Some(path) => runtime::init::Program::open(path)
                .map_err(|e| format!("the init program {} cannot be opened: {e}", path.display())),
            None => Err("the engine was given no init program".to_string()),
        };
        let wake = Arc::new(Notify::new());
        store
            .watch_queue(Arc::clone(&wake))
            .await
            .map_err(|e| anyhow::anyhow!("cannot watch the event queue for other nodes: {e}"))?;
        let metrics = Arc::new(Metrics::new());
        let engine = Arc::new(Engine {
            node,
            started_at: clock.now_millis(),
            left: tokio::sync::Mutex::new(false),
            address: Mutex::new(String::new()),
            writer: writer::GroupCommit::start(
                store.clone(),
                &tasks,
                Arc::clone(&wake),
                Arc::clone(&metrics),
            ),
            sync_waiting: AtomicUsize::new(0),
            ahead: ahead::Ahead::new(config.workers, config.claim_ahead),
            dispatching: CancellationToken::new(),
            dir,
            slots: Arc::new(Semaphore::new(config.workers)),
            concurrency: concurrency::Concurrency::new(config.workers, config.per_function),
            pools: pool::Pools::new(config.max_instances),
            admission: Admission::new(clock.clone()),
            store,
            clock,
            interpreters,
            config,
            wake,
            control: Mutex::new(Control::default()),
            cancel: CancellationToken::new(),
            give_up: CancellationToken::new(),
            recording: CancellationToken::new(),
            recorder: TaskTracker::new(),
            tasks,
            runs: TaskTracker::new(),
            metrics,
            zygote: Mutex::new(None),
            cgroups: if config_cgroups {
                runtime::cgroup::Controllers::detect()
            } else {
                Err("control groups are turned off in the engine's configuration".into())
            },
            jail,
            init,
        });
        let isolation = engine.isolation();
        if isolation.is_complete() {
            tracing::info!(
                cgroups = isolation.cgroups.as_deref().unwrap_or("-"),
                uids = %engine.config.uids,
                "sandbox: each function runs as a user of its own, each instance in a control group, a PID namespace and a private view of the file system of its own"
            );
        } else {
            for what in &isolation.missing {
                tracing::warn!("sandbox: {what}");
            }
        }
        engine.take_over_stranded().await?;
        engine.load_reservations().await?;
        engine.node.forget_gone(&engine.store.lease_owners().await?);
        engine.tasks.spawn(Arc::clone(&engine).dispatch());
        engine.tasks.spawn(Arc::clone(&engine).heartbeat());
        engine.tasks.spawn(Arc::clone(&engine).reap_idle());
        engine.tasks.spawn(Arc::clone(&engine).watch_store());
        engine
            .recorder
            .spawn(Arc::clone(&engine).record_concurrency());
        Ok(engine)
    }

    /// What keeps functions apart here, and what is missing.
    pub fn isolation(&self) -> Isolation {
        let own_users = runtime::sandbox::is_root();
        let mut missing = Vec::new();
        if !own_users {
            missing.push(
                "The server does not run as root, so every function runs as the server's own user: functions can read each other's code, files and environment and signal each other's processes; run it as root for a user per function".to_string(),
            );
        }
        if let Err(why) = &self.jail {
            missing.push(format!(
                "Instances share the machine's /tmp, /var/tmp and /dev/shm and see its folders (the data folder too, where permissions allow), and functions whose public network access is off still reach the network: {why}"
            ));
        }
        if let (Ok(_), Err(why)) = (&self.jail, &self.init) {
            missing.push(format!(
                "Node.js instances see the server's processes of their own user only, not a PID namespace of their own: {why}"
            ));
        }
        if let Err(why) = &self.cgroups {
            missing.push(format!(
                "Instances have no memory or process limits of their own, and what a handler detaches can outlive its event: {why}"
            ));
        }
        Isolation {
            own_users,
            private_view: self.jail.is_ok(),
            own_pids: self.jail.is_ok() && self.init.is_ok(),
            cgroups: self.cgroups.as_ref().ok().map(|c| c.describe()),
            missing,
        }
    }

    /// Reads every function's reserved concurrency into the claim rules: at start, every
    /// heartbeat (another node may have changed one), and at once after a change here.
    pub async fn load_reservations(&self) -> Result<(), crate::store::StoreError> {
        let reservations = self.store.reservations().await?;
        let changed = self
            .concurrency
            .set_reservations(reservations.iter().map(|r| {
                (
                    r.function_id,
                    crate::domain::function::reserved_events(r.reserved_mem, r.memory_size),
                )
            }));
        // Events held back by the old numbers may run now.
        if changed {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Events this node runs at once, over all functions.
    pub fn workers(&self) -> u32 {
        u32::try_from(self.config.workers).unwrap_or(u32::MAX)
    }

    /// The most events at once of a function without a reservation on this node.
    pub fn unreserved_cap(&self) -> u32 {
        self.concurrency.unreserved_cap_now()
    }

    /// Events of a function running on this node now.
    pub fn running_events(&self, function_id: i64) -> u32 {
        self.concurrency.running(function_id)
    }

    /// Wakes the dispatcher: there may be work (also after a test moved the clock).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// False once the engine stops.
    pub fn is_running(&self) -> bool {
        !self.cancel.is_cancelled()
    }

    pub fn idle_instances(&self) -> usize {
        self.pools.idle_count()
    }

    /// This node's id, as its claims and heartbeats carry it.
    pub fn node_id(&self) -> &str {
        self.node.id()
    }

    /// Events running on this node now.
    pub fn running_total(&self) -> usize {
        self.control.lock().expect("control lock").running.len()
    }

    /// After a namespace's billing changed here: the next invocation reads it from the store.
    pub fn forget_billing(&self, region: &str, namespace: &str) {
        self.admission.forget_billing(region, namespace);
    }

    /// Accepts an async invocation: admission, then a durable write, then the RequestId.
    pub async fn invoke_async(
        &self,
        function: &Function,
        payload: String,
        invoke_type: &str,
    ) -> Result<String, InvokeError> {
        self.invoke_async_as(function, payload, Origin::new(invoke_type, ""))
            .await
    }

    /// The same, recording who invoked and what it re-runs.
    pub async fn invoke_async_as(
        &self,
        function: &Function,
        payload: String,
        origin: Origin,
    ) -> Result<String, InvokeError> {
        let invoke_type = metrics::invoke_type_label(&origin.invoke_type);
        let accepted = self.accept(function, payload, origin).await;
        self.count(Mode::Async, invoke_type, accepted)
    }

    /// Counts an invocation under its result in the metrics, and answers it.
    fn count<T>(
        &self,
        mode: Mode,
        invoke_type: &'static str,
        result: Result<T, InvokeError>,
    ) -> Result<T, InvokeError> {
        let counted = match &result {
            Ok(_) => InvocationResult::Accepted,
            Err(InvokeError::Refused(Refusal::RequestLimitExceeded { .. })) => {
                InvocationResult::QpsLimit
            }
            Err(InvokeError::Refused(Refusal::InsufficientBalance(_))) => InvocationResult::Arrears,
            Err(InvokeError::Refused(Refusal::ReservedNone)) => InvocationResult::ReservedNone,
            Err(InvokeError::Refused(Refusal::Unavailable(_))) => InvocationResult::Unavailable,
            Err(InvokeError::FunctionGone) => InvocationResult::FunctionGone,
            Err(InvokeError::Store(_)) => InvocationResult::StoreError,
        };
        self.metrics.invocation(mode, invoke_type, counted);
        result
    }

    async fn accept(
        &self,
        function: &Function,
        payload: String,
        origin: Origin,
    ) -> Result<String, InvokeError> {
        self.admission
            .admit(&self.store, function)
            .await
            .map_err(InvokeError::Refused)?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let written = self
            .writer
            .write(EventWrite::Insert(NewEvent {
                request_id: request_id.clone(),
                function_id: function.id,
                invoke_type: origin.invoke_type,
                traced: function.trace_enable,
                payload,
                enqueued_at: self.clock.now_millis(),
                invoked_by: origin.by,
                rerun_of: origin.rerun_of,
            }))
            .await;
        match written {
            Ok(()) => {}
            Err(writer::WriteError::FunctionGone) => return Err(InvokeError::FunctionGone),
            // Accepts in flight at once (here or on other nodes) took what was left.
            Err(writer::WriteError::QuotaUsed) => {
                let refusal = self.admission.quota_used(&self.store, function).await;
                return Err(InvokeError::Refused(refusal));
            }
            Err(e) => return Err(InvokeError::Store(e.to_string())),
        }
        self.wake.notify_one();
        Ok(request_id)
    }

    /// Runs an invocation and waits for its answer; no event is recorded.
    pub async fn invoke_sync(
        &self,
        function: &Function,
        payload: &str,
        invoke_type: &str,
    ) -> Result<SyncResult, InvokeError> {
        let ran = self.run_sync(function, payload, invoke_type).await;
        self.count(Mode::Sync, metrics::invoke_type_label(invoke_type), ran)
    }

    async fn run_sync(
        &self,
        function: &Function,
        payload: &str,
        invoke_type: &str,
    ) -> Result<SyncResult, InvokeError> {
        self.admission
            .admit(&self.store, function)
            .await
            .map_err(InvokeError::Refused)?;
        let request_id = uuid::Uuid::new_v4().to_string();
        // Counted while it waits, so that claims leave it a worker: the slots of ending runs
        // go straight to the claim of their transaction, never through the semaphore's queue.
        // Counted down however the wait ends: a caller that gives up drops this future.
        let waiting = Waiting::on(&self.sync_waiting);
        // Workers that saw it waiting stopped taking events claimed ahead: once it has its
        // worker, and again once it is done, the dispatcher puts them back to work.
        let _wake = WakeOnDrop(&self.wake);
        let slot = self.slots.clone().acquire_owned().await;
        drop(waiting);
        self.wake.notify_one();
        let _slot = slot.expect("never closed");
        let _running = self
            .concurrency
            .acquire(function.id)
            .await
            .map_err(|_| InvokeError::Refused(Refusal::ReservedNone))?;
        let started = Instant::now();
        let (mut instance, _) = match self.instance_for(function).await {
            Ok(found) => found,
            Err(NoInstance::Capacity { error }) => {
                return Err(InvokeError::Refused(Refusal::Unavailable(error)));
            }
            Err(NoInstance::Load { code, error, logs }) => {
                return Ok(SyncResult {
                    request_id,
                    status_code: code,
                    result: None,
                    error: Some(error),
                    raised: None,
                    logs,
                    duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                    memory_bytes: 0,
                });
            }
        };
        let (_tx, mut rx) = mpsc::channel(1);
        let context = self.context(function, &request_id, invoke_type);
        let run_started = Instant::now();
        let (outcome, logs) = instance
            .invoke(
                payload,
                &context,
                Duration::from_secs(function.timeout.into()),
                self.config.grace_period,
                &mut rx,
            )
            .await;
        let duration_ms = run_started.elapsed().as_secs_f64() * 1000.0;
        let memory_bytes = instance.memory_usage();
        let verdict = self.verdict(function, outcome, instance).await;
        let (status_code, result, error, raised) = match verdict {
            Verdict::Finished(value) => (
                status_code::SUCCESS,
                Some(recorded_result(&value)),
                None,
                None,
            ),
            Verdict::Failed {
                code,
                error,
                raised,
            } => (code, None, Some(error), raised),
            Verdict::Aborted { graceful, killed } => {
                let (code, error) = timeline::terminated(graceful, killed);
                (code, None, Some(error.into()), None)
            }
        };
        Ok(SyncResult {
            request_id,
            status_code,
            result,
            error,
            raised,
            logs,
            duration_ms,
            memory_bytes,
        })
    }

    /// Terminates a queued or running event: forced (kill and recycle the instance) or
    /// graceful (SIGTERM, then kill after the grace period).
    pub async fn terminate(
        &self,
        request_id: &str,
        request: &TerminateRequest,
    ) -> Result<Termination, crate::store::StoreError> {
        let mode = if request.graceful { "grace" } else { "force" };
        let aborted = self.entry(
            EventStatus::Aborted,
            timeline::terminated_before_start(request),
        );
        let requested = self.entry(
            EventStatus::Running,
            timeline::termination_requested(request),
        );
        let outcome = self
            .store
            .request_termination(
                request_id,
                mode,
                &aborted,
                &requested,
                status_code::TERMINATED,
            )
            .await?;
        if !matches!(outcome, Termination::NotRunning(_)) {
            self.metrics
                .terminations
                .get_or_create(&metrics::TerminationLabels {
                    mode: metrics::Name(mode),
                })
                .inc();
        }
        // Ended here and now, by the store; a running one ends as its run does.
        if outcome == Termination::AbortedWhileQueued {
            self.metrics.end(metrics::ended_label(EventStatus::Aborted));
        }
        if outcome == Termination::Running {
            // Held here: signalled now (or as it starts). Held by another node: its heartbeat
            // brings the request there.
            self.deliver_termination(request_id, signal_of(mode));
        }
        Ok(outcome)
    }

    /// What a running event of this node has printed so far (capped like its log); `None` when
    /// it does not run here.
    pub fn live_logs(&self, request_id: &str) -> Option<String> {
        let control = self.control.lock().expect("control lock");
        control
            .running
            .get(request_id)
            .map(|run| run.logs.snapshot())
    }

    /// Hands a terminate request to a run of this node, once; a held event that has not
    /// started keeps it until it does.
    fn deliver_termination(&self, request_id: &str, signal: Signal) {
        let sender = {
            let mut control = self.control.lock().expect("control lock");
            if let Some(run) = control.running.get_mut(request_id) {
                (!run.signalled).then(|| {
                    run.signalled = true;
                    run.signals.clone()
                })
            } else {
                if control.held.contains_key(request_id) {
                    control.pending.insert(request_id.to_string(), signal);
                }
                None
            }
        };
        if let Some(tx) = sender {
            let _ = tx.try_send(signal);
        }
    }

    /// Stops claiming and lets running events finish for a while. Events still running then
    /// are stopped and go back to the queue (or fail with 439 when no retries remain), as after
    /// a crash but recorded now, with a timeline entry saying the server stopped. Then every
    /// write is flushed.
    pub async fn shutdown(self: &Arc<Self>) {
        self.cancel.cancel();
        // A claim under way lands first, so that its events are held here and put back.
        let _ =
            tokio::time::timeout(self.config.shutdown_grace, self.dispatching.cancelled()).await;
        // Claimed ahead and not started: straight back to the queue, written as the runs' ends
        // are (and given up on with them should the store not take them).
        let engine = Arc::clone(self);
        self.runs.spawn(async move {
            let unstarted = engine.ahead.close();
            engine.give_back(unstarted, timeline::PUT_BACK).await;
        });
        self.runs.close();
        if tokio::time::timeout(self.config.shutdown_grace, self.runs.wait())
            .await
            .is_err()
        {
            let senders: Vec<_> = {
                let mut control = self.control.lock().expect("control lock");
                control.interrupting = true;
                control
                    .running
                    .values()
                    .map(|r| r.signals.clone())
                    .collect()
            };
            tracing::warn!(
                events = senders.len(),
                "events still running at shutdown are stopped and put back in the queue"
            );
            for tx in senders {
                let _ = tx.try_send(Signal::Kill);
            }
            if tokio::time::timeout(Duration::from_secs(10), self.runs.wait())
                .await
                .is_err()
            {
                tracing::error!(
                    "the store did not take the last transitions; the events concerned are taken over at the next start"
                );
                self.give_up.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(2), self.runs.wait()).await;
            }
        }
        for mut instance in self.pools.take_all() {
            instance.kill().await;
        }
        self.recording.cancel();
        self.recorder.close();
        self.recorder.wait().await;
        self.tasks.close();
        // With events still held (their last writes did not land), the lock file stays: once
        // this process is gone, the next node to look takes them over at once.
        if self.control.lock().expect("control lock").held.is_empty() {
            self.node.leave();
        }
        let mut left = self.left.lock().await;
        *left = true;
        if let Err(e) = self.store.forget_nodes(Some(self.node.id()), 0).await {
            tracing::warn!(error = %e, "removing this node from the store's list failed");
        }
    }

    /// Deletes a function after stopping its running events, which must not go on running
    /// deleted code. Its events end ABORTED and stay readable until the sweeper removes them
    /// with the function; its name is free at once.
    pub async fn delete_function(&self, f: &Function) -> Result<(), crate::store::StoreError> {
        let senders: Vec<_> = {
            let mut control = self.control.lock().expect("control lock");
            control.deleting.insert(f.id);
            control
                .running
                .values()
                .filter(|r| r.function_id == f.id)
                .map(|r| r.signals.clone())
                .collect()
        };
        for tx in senders {
            let _ = tx.send(Signal::Kill).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && self.runs_of(f.id) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let aborted = self.entry(EventStatus::Aborted, timeline::function_deleted());
        let deleted = self
            .store
            .delete_function(&f.key(), &aborted, status_code::TERMINATED)
            .await;
        // Ids are never reused, so a deleted function's id stays marked (a run claimed before
        // the deletion must not start later). Not deleted after all: its events run again.
        if matches!(&deleted, Err(e) if !matches!(e, crate::store::StoreError::NotFound)) {
            self.control
                .lock()
                .expect("control lock")
                .deleting
                .remove(&f.id);
        }
        deleted?;
        // Its warm instances are of no use any more; a version no instance has returns them all.
        let (_, instances) = self.pools.take_idle((f.id, i64::MIN));
        for instance in instances {
            instance.retire(&self.dir).await;
        }
        Ok(())
    }

    fn runs_of(&self, function_id: i64) -> usize {
        let control = self.control.lock().expect("control lock");
        control
            .running
            .values()
            .filter(|r| r.function_id == function_id)
            .count()
    }

    /// While writes fail, checks every second whether the store takes them again, so health
    /// reports recover without waiting for the next invocation.
    async fn watch_store(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if self.store.write_health().fault().is_some() {
                let _ = self.store.probe_write().await;
            }
        }
    }

    /// Claims queued events for free slots, and ahead of them while runs are fast (see
    /// [`ahead`]), and puts workers on them. A claim rides in the writer's next transaction,
    /// with the ends of the runs that hand their slots over to it, and takes every slot free by
    /// the time that transaction begins. Claims wait for slots, never the other way round: an
    /// event claimed ahead waits for a worker already busy, for about as long as a commit.
    async fn dispatch(self: Arc<Self>) {
        let _done = self.dispatching.clone().drop_guard();
        let mut busy = false;
        loop {
            if !busy {
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                }
            }
            // The free slots the claim is made for and how many events it asked for, handed
            // back by the order once it is made.
            let taken: Arc<Mutex<(Option<OwnedSemaphorePermit>, u32)>> = Arc::default();
            let order: writer::ClaimOrder = {
                let engine = Arc::clone(&self);
                let taken = Arc::clone(&taken);
                Box::new(move |handed_over| {
                    // Synchronous invocations waiting for a worker get theirs first: the slots
                    // left unclaimed go back to the semaphore, whose queue they wait in; and
                    // nothing is claimed ahead of them.
                    let waiting = engine.sync_waiting.load(Ordering::Relaxed) as u32;
                    let free = engine.slots.available_permits() as u32;
                    let slots = match free.saturating_sub(waiting) {
                        0 => None,
                        n => engine.slots.clone().try_acquire_many_owned(n).ok(),
                    };
                    let ahead = if waiting == 0 {
                        engine.ahead.plan(|f| engine.concurrency.share(f))
                    } else {
                        ahead::Plan::default()
                    };
                    let want = (free + handed_over)
                        .saturating_sub(waiting)
                        .saturating_add(ahead.total);
                    *taken.lock().expect("claim slots") = (slots, want);
                    if want == 0 || engine.cancel.is_cancelled() {
                        return None;
                    }
                    let now = engine.clock.now_millis();
                    Some(Claim {
                        now,
                        budget: engine
                            .concurrency
                            .budget(want, &ahead.by_function, ahead.total),
                        owner: engine.node.id().to_string(),
                        lease_until: now + engine.config.lease.as_millis() as Millis,
                    })
                })
            };
            let claimed = self.writer.claim(order).await;
            let (free, want) = std::mem::take(&mut *taken.lock().expect("claim slots"));
            let (claimed, handed_over) = match claimed {
                Ok(c) => c,
                Err(writer::WriteError::Stopped) => return,
                Err(e) => {
                    tracing::error!(error = %e, "claiming events failed");
                    busy = false;
                    continue;
                }
            };
            // Everything asked for was there: more may be.
            busy = !claimed.is_empty() && claimed.len() as u32 >= want;
            self.hold(claimed).await;
            self.put_to_work(writer::merge(free, handed_over));
        }
    }

    /// Holds claimed events here (their leases renewed) and puts them in line for a worker.
    async fn hold(&self, claimed: Vec<ClaimedEvent>) {
        if claimed.is_empty() {
            return;
        }
        let claim = {
            let mut control = self.control.lock().expect("control lock");
            control.claims += 1;
            let claim = control.claims;
            for event in &claimed {
                let held = Held {
                    event_id: event.id,
                    attempt: event.attempt,
                    claim,
                };
                control.held.insert(event.request_id.clone(), held);
            }
            claim
        };
        // The functions of the claim, in one read.
        let mut ids: Vec<i64> = claimed.iter().map(|e| e.function_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let functions: HashMap<i64, Arc<Function>> = match self
            .store
            .get_functions_by_ids(&ids)
            .await
        {
            Ok(found) => found.into_iter().map(|f| (f.id, Arc::new(f))).collect(),
            Err(e) => {
                tracing::error!(error = %e, "loading functions failed; their events are taken over when their lease runs out");
                HashMap::new()
            }
        };
        let mut refused = Vec::new();
        for event in claimed {
            // Deleted with its function (or unreadable now): nothing to run. Its lease is not
            // renewed, so it is taken over once it runs out.
            let Some(function) = functions
                .get(&event.function_id)
                .filter(|f| !f.is_deleted())
                .cloned()
            else {
                self.release(&event.request_id, claim);
                continue;
            };
            // Counted at once, so that the next claim's budget sees it.
            let running = self.concurrency.claimed(event.function_id);
            if let Some(ready) = self
                .ahead
                .push(ahead::Ready::new(event, function, running, claim))
            {
                refused.push(ready);
            }
        }
        // Claimed as the server stops.
        if !refused.is_empty() {
            self.give_back(refused, timeline::PUT_BACK).await;
        }
    }

    /// A worker for each slot, as long as events wait for one; the other slots go back to
    /// the semaphore (to a synchronous invocation waiting there, say).
    fn put_to_work(self: &Arc<Self>, slots: Option<OwnedSemaphorePermit>) {
        let Some(mut slots) = slots else { return };
        for _ in 0..self.ahead.len() {
            let Some(slot) = slots.split(1) else { break };
            self.runs.spawn(Arc::clone(self).work(slot));
        }
    }

    fn holds(&self, request_id: &str) -> bool {
        let control = self.control.lock().expect("control lock");
        control.held.contains_key(request_id)
    }

    /// Done with a claimed event: its lease is no longer renewed here.
    fn release(&self, request_id: &str, claim: u64) {
        let mut control = self.control.lock().expect("control lock");
        if control
            .held
            .get(request_id)
            .is_some_and(|h| h.claim == claim)
        {
            control.held.remove(request_id);
            control.pending.remove(request_id);
        }
    }

    /// Every second, the most events of each function that ran at once here, per minute;
    /// written to the store every ten seconds and once more when the engine's runs are done
    /// at shutdown, for the functions' Monitoring tabs. Peaks are counted as events start, so
    /// none is missed between two looks.
    async fn record_concurrency(self: Arc<Self>) {
        let mut minutes: HashMap<(i64, Millis), u32> = HashMap::new();
        for tick in 1u64.. {
            let stopping = tokio::select! {
                _ = self.recording.cancelled() => true,
                _ = tokio::time::sleep(Duration::from_secs(1)) => false,
            };
            let minute = self.clock.now_millis().div_euclid(60_000);
            for (function_id, n) in self.concurrency.take_peaks() {
                let peak = minutes.entry((function_id, minute)).or_default();
                *peak = (*peak).max(n);
            }
            if (stopping || tick.is_multiple_of(10)) && !minutes.is_empty() {
                let peaks: Vec<(i64, Millis, u32)> =
                    minutes.drain().map(|((f, m), n)| (f, m, n)).collect();
                // A peak that could not be written is a gap in a chart, nothing more.
                if let Err(e) = self.store.record_concurrency(self.node.id(), &peaks).await {
                    tracing::debug!(error = %e, "recording concurrency for monitoring failed");
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// Renews the leases of the events held here, brings back terminate requests made on any
    /// node, stops runs whose lease was lost, and takes over the events of gone nodes.
    async fn heartbeat(self: Arc<Self>) {
        let every = (self.config.lease / 3).min(Duration::from_secs(1));
        let mut beats = 0u64;
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.renew().await {
                tracing::warn!(error = %e, "renewing event leases failed");
            }
            // Written like runs' ends, so that a full disk holds up neither renewals nor
            // takeovers here.
            let stranded = self.ahead.stranded(ahead::STRANDED_AFTER);
            if !stranded.is_empty() {
                let engine = Arc::clone(&self);
                self.runs.spawn(async move {
                    engine.give_back(stranded, timeline::GIVEN_BACK).await;
                });
            }
            match self.take_over_stranded().await {
                Ok(0) => {}
                Ok(_) => self.wake.notify_one(),
                Err(e) => tracing::warn!(error = %e, "taking over stranded events failed"),
            }
            // Another node may have changed one.
            if let Err(e) = self.load_reservations().await {
                tracing::warn!(error = %e, "reading reserved concurrency failed");
            }
            if beats.is_multiple_of(NODE_BEAT_EVERY) {
                self.beat().await;
            }
            beats += 1;
            if beats.is_multiple_of(60)
                && let Ok(owners) = self.store.lease_owners().await
            {
                self.node.forget_gone(&owners);
            }
        }
        // Runs finishing during a graceful stop keep their leases.
        while !self.runs.is_empty() {
            tokio::select! {
                _ = self.give_up.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let _ = self.renew().await;
        }
    }

    /// Says in the store that this node is alive, where it listens and what it runs; forgets
    /// nodes silent for an hour (a node that stops forgets itself).
    async fn beat(&self) {
        let left = self.left.lock().await;
        if *left {
            return;
        }
        let now = self.clock.now_millis();
        let beat = crate::store::NodeBeat {
            id: self.node.id().to_string(),
            address: self.address.lock().expect("address lock").clone(),
            started_at: self.started_at,
            heartbeat_at: now,
            running: self.running_total() as u32,
        };
        let result = async {
            self.store.node_heartbeat(&beat).await?;
            self.store
                .forget_nodes(None, now - NODE_FORGOTTEN_AFTER)
                .await
        };
        if let Err(e) = result.await {
            tracing::warn!(error = %e, "recording this node's heartbeat failed");
        }
    }

    /// Where this node listens, once it does: shown beside it on every node's System page.
    pub async fn listening_on(&self, address: String) {
        *self.address.lock().expect("address lock") = address;
        self.beat().await;
    }

    async fn renew(&self) -> Result<(), crate::store::StoreError> {
        let held: Vec<(String, Held)> = {
            let control = self.control.lock().expect("control lock");
            control.held.iter().map(|(r, h)| (r.clone(), *h)).collect()
        };
        if held.is_empty() {
            return Ok(());
        }
        let runs: Vec<(i64, u32)> = held.iter().map(|(_, h)| (h.event_id, h.attempt)).collect();
        let until = self.clock.now_millis() + self.config.lease.as_millis() as Millis;
        let renewed = self
            .store
            .renew_leases(self.node.id(), &runs, until)
            .await?;
        let by_id: HashMap<i64, Option<String>> = renewed
            .into_iter()
            .map(|r| (r.event_id, r.terminate))
            .collect();
        for (request_id, h) in held {
            match by_id.get(&h.event_id) {
                Some(Some(mode)) => self.deliver_termination(&request_id, signal_of(mode)),
                Some(None) => {}
                None => self.lose(&request_id),
            }
        }
        Ok(())
    }

    /// The event is no longer this node's (its lease ran out and another node took it over,
    /// or it was deleted): the run here stops, and what it would record is fenced out anyway.
    fn lose(&self, request_id: &str) {
        let sender = {
            let mut control = self.control.lock().expect("control lock");
            if !control.held.contains_key(request_id) {
                return; // released meanwhile: it ended here
            }
            control.held.remove(request_id);
            control.pending.remove(request_id);
            control.running.get_mut(request_id).map(|run| {
                run.lost = true;
                run.signals.clone()
            })
        };
        tracing::warn!(
            request_id,
            "lost the lease of a running event; its run here is stopped"
        );
        if let Some(tx) = sender {
            let _ = tx.try_send(Signal::Kill);
        }
    }

    /// Takes over RUNNING events whose node is gone (lease run out, or node lock free): back
    /// to the queue for another attempt, or ended when no retries remain, each with a timeline
    /// entry naming the reason. Returns how many.
    async fn take_over_stranded(&self) -> Result<usize, crate::store::StoreError> {
        let owners = self.store.lease_owners().await?;
        let gone: Vec<String> = owners
            .into_iter()
            .filter(|o| self.node.is_gone(o))
            .collect();
        let now = self.clock.now_millis();
        let stranded = self.store.stranded_runs(now, &gone, 1000).await?;
        let mut count = 0;
        for run in stranded {
            // A run of this node that is still going is never taken from it, even when its
            // renewals failed (a full disk): it keeps running and retries its writes.
            if run.lease.owner == self.node.id() && self.holds(&run.request_id) {
                continue;
            }
            let cause = if gone.contains(&run.lease.owner) {
                StopCause::ServerStopped
            } else {
                StopCause::LeaseExpired
            };
            let f = &run.function;
            event_span(&run.request_id, (&f.region, &f.namespace, &f.name), run.lease.attempt).in_scope(|| {
                tracing::warn!(owner = %run.lease.owner, ?cause, "taking over an event whose server is gone");
            });
            // Not retried here: while the store cannot write, the next heartbeat looks again,
            // and renewals are not held up meanwhile.
            let write = self.takeover(run, cause, now);
            // What it decided, counted once it lands: an end, or another attempt (a run put
            // back with the same attempt, its server having stopped, is neither).
            let (ended, retried) = match &write {
                EventWrite::Finish { entry, .. } => {
                    (Some(metrics::ended_label(entry.status)), false)
                }
                EventWrite::Requeue { attempt, run, .. } => (None, *attempt > run.attempt),
                _ => (None, false),
            };
            match self.writer.write(write).await {
                Ok(()) => {
                    count += 1;
                    self.metrics.takeovers.inc();
                    if let Some(status) = ended {
                        self.metrics.end(status);
                    }
                    if retried {
                        self.metrics.retries.inc();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "a takeover did not land; it is tried again"),
            }
        }
        Ok(count)
    }

    fn takeover(&self, run: StrandedRun, cause: StopCause, now: Millis) -> EventWrite {
        match after_stop(
            run.lease.attempt,
            run.retry_num,
            run.terminate.is_some(),
            cause,
        ) {
            AfterStop::Requeue { attempt, detail } => EventWrite::Requeue {
                event_id: run.id,
                run: run.lease,
                traced: run.traced,
                attempt,
                run_after: now,
                error: None,
                logs: None,
                entry: self.entry(EventStatus::Queued, detail),
            },
            AfterStop::End {
                status,
                code,
                detail,
            } => EventWrite::Finish {
                event_id: run.id,
                run: run.lease,
                traced: run.traced,
                status_code: code,
                result: None,
                error: Some(detail.clone()),
                logs: None,
                entry: self.entry(status, detail),
            },
        }
    }

    async fn reap_idle(self: Arc<Self>) {
        let every = (self.config.idle_timeout / 4).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            for instance in self.pools.take_expired(self.config.idle_timeout) {
                tracing::debug!(instance = %instance.id, "recycling an idle instance");
                instance.retire(&self.dir).await;
            }
        }
    }

    fn context(&self, f: &Function, request_id: &str, invoke_type: &str) -> Context {
        Context {
            request_id: request_id.to_string(),
            function_name: f.name.clone(),
            function_version: "$LATEST".into(),
            namespace: f.namespace.clone(),
            memory_limit_in_mb: f.memory_size,
            time_limit_in_ms: u64::from(f.timeout) * 1000,
            tencentcloud_region: f.region.clone(),
            invoke_type: invoke_type.to_string(),
        }
    }

    /// A warm instance, or a newly started one, within the cap on live instances.
    async fn instance_for(&self, f: &Function) -> Result<(Instance, Option<Duration>), NoInstance> {
        let version = (f.id, f.modified_at);
        let (idle, stale) = self.pools.take_idle(version);
        for old in stale {
            old.retire(&self.dir).await;
        }
        if let Some(instance) = idle {
            self.metrics.started(&f.runtime, None);
            return Ok((instance, None));
        }
        // The function's runtime cannot be started here: the container could not run (405).
        let load = |error: String| NoInstance::Load {
            code: status_code::CONTAINER_EXITED,
            error,
            logs: String::new(),
        };
        let runtime = f.runtime().ok_or_else(|| {
            load(format!(
                "RuntimeError: the runtime {} is unknown",
                f.runtime
            ))
        })?;
        // Waiting longer than half the lease would let another node think the event abandoned.
        let wait = self.config.lease / 2;
        let room = self
            .pools
            .room(version, &self.dir, wait, &self.cancel)
            .await
            .map_err(|why| NoInstance::Capacity {
                error: match why {
                    pool::NoRoom::Busy => format!(
                        "all {} instances this server allows are busy",
                        self.config.max_instances
                    ),
                    pool::NoRoom::Stopping => "the server is stopping".into(),
                },
            })?;
        let room = match room {
            pool::Room::Warm(instance) => {
                self.metrics.started(runtime.name, None);
                return Ok((*instance, None));
            }
            pool::Room::Free(permit) => permit,
        };
        let code_dir = match self.code_dir(f).await {
            Ok(dir) => dir,
            // Out of descriptors or memory writing the code is the server's want, not the
            // code's fault: the event waits for room like a start that ran out.
            Err(e) if e.downcast_ref().is_some_and(runtime::is_exhaustion) => {
                return Err(self.out_of_resources(&e).await);
            }
            Err(e) => {
                return Err(load(format!(
                    "RuntimeError: the code could not be prepared: {e}"
                )));
            }
        };
        let zygote = match runtime.language {
            crate::domain::runtime::Language::Python => self.zygote(),
            crate::domain::runtime::Language::Nodejs => None,
        };
        let started = Instant::now();
        match Instance::start(Spawn {
            zygote: zygote.as_deref(),
            dir: &self.dir,
            interpreters: &self.interpreters,
            function: f,
            runtime,
            code_dir: &code_dir,
            region: &f.region,
            identity: self.config.uids.for_function(f.id),
            cgroups: self.cgroups.as_ref().ok(),
            jail: self.jail.as_ref().ok(),
            init: self.init.as_ref().ok(),
        })
        .await
        {
            Ok(mut instance) => {
                instance.hold(room, self.metrics.alive(runtime.name));
                let took = started.elapsed();
                self.metrics.started(runtime.name, Some(took));
                Ok((instance, Some(took)))
            }
            Err(StartError::Load { code, error, logs }) => Err(NoInstance::Load {
                code,
                error: error_text(&error),
                logs,
            }),
            Err(StartError::Capacity(e)) => Err(self.out_of_resources(&e).await),
            Err(StartError::System(e)) => Err(load(format!(
                "RuntimeError: the runtime could not start: {e}"
            ))),
        }
    }

    /// The Python fork server, started on first use and again if it died.
    fn zygote(&self) -> Option<Arc<runtime::zygote::Zygote>> {
        if !self.config.fork_server {
            return None;
        }
        let python = self.interpreters.python.as_ref()?;
        let mut slot = self.zygote.lock().expect("zygote lock");
        if let Some(z) = slot.as_ref().filter(|z| z.is_alive()) {
            return Some(Arc::clone(z));
        }
        // Its children are jailed, and so in PID namespaces of their own, when the jail can be.
        match runtime::zygote::Zygote::start(&python.command, self.dir.root(), self.jail.is_ok()) {
            Ok(z) => {
                let z = Arc::new(z);
                *slot = Some(Arc::clone(&z));
                Some(z)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the Python fork server did not start; interpreters start per instance");
                None
            }
        }
    }

    /// No resources left to start an instance: idle ones are stopped to make some, and the
    /// event waits for room.
    async fn out_of_resources(&self, e: &(dyn std::fmt::Display + Sync)) -> NoInstance {
        // A start needs about twice what an idle instance holds.
        let stopped = self.pools.shed(2, &self.dir).await;
        tracing::warn!(error = %e, stopped, "no resources left to start an instance; idle instances stopped to make some");
        NoInstance::Capacity {
            error: format!("the server is out of resources to start an instance ({e})"),
        }
    }

    async fn code_dir(&self, f: &Function) -> anyhow::Result<Arc<runtime::CodeDir>> {
        let files = self.store.get_code(f.id).await?;
        let owner = self.config.uids.for_function(f.id);
        Ok(self.dir.code_dir((f.id, f.modified_at), &files, owner)?)
    }

    /// What an outcome means, and what becomes of the instance: reused after success,
    /// recycled after any error.
    async fn verdict(&self, f: &Function, outcome: Outcome, instance: Instance) -> Verdict {
        let verdict = match outcome {
            Outcome::Returned(value) => Verdict::Finished(value),
            Outcome::Raised(e) => Verdict::Failed {
                code: status_code::USER_ERROR,
                error: error_text(&e),
                raised: Some(e),
            },
            Outcome::TimedOut => Verdict::Failed {
                code: status_code::TIMEOUT,
                error: format!("Invoking task timed out after {} seconds", f.timeout),
                raised: None,
            },
            Outcome::Exited(why) => Verdict::Failed {
                code: status_code::PROCESS_EXITED,
                error: format!("The user process exited while running: {why}"),
                raised: None,
            },
            Outcome::Terminated { graceful, killed } => Verdict::Aborted { graceful, killed },
        };
        if matches!(verdict, Verdict::Finished(_))
            && self.config.reuse_instances
            && !self.cancel.is_cancelled()
        {
            self.pools.put_idle(instance);
        } else {
            instance.retire(&self.dir).await;
        }
        verdict
    }

    /// Records a transition of a run. While the store cannot write, the write is tried again
    /// until it lands: a transition that was dropped would leave the event RUNNING, to be run a
    /// second time after a takeover. Its lease is renewed meanwhile, and `slot` (the run's
    /// worker) stays taken, so nothing new is claimed in its place while the disk is full.
    async fn write(&self, write: EventWrite, slot: Option<&writer::Slot>) {
        let mut delay = Duration::from_millis(50);
        loop {
            match self
                .writer
                .write_freeing(write.clone(), slot.cloned())
                .await
            {
                Ok(()) => return,
                Err(writer::WriteError::Fault(e)) if !self.give_up.is_cancelled() => {
                    tracing::debug!(error = %e, "an event transition waits for the store");
                    tokio::select! {
                        _ = self.give_up.cancelled() => {}
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(error = %e, "recording an event transition failed");
                    return;
                }
            }
        }
    }

    /// The lease a run of this node writes under.
    fn lease_of(&self, event: &ClaimedEvent) -> RunLease {
        RunLease {
            owner: self.node.id().to_string(),
            attempt: event.attempt,
            until: None,
        }
    }

    fn entry(&self, status: EventStatus, detail: String) -> TimelineEntry {
        TimelineEntry {
            at: self.clock.now_millis(),
            status,
            detail,
        }
    }

    fn finish(&self, event: &ClaimedEvent, end: Ending) -> EventWrite {
        tracing::debug!(
            status = end.status.scf_name(),
            status_code = end.code,
            "event ended"
        );
        self.metrics.end(metrics::ended_label(end.status));
        let entry = self.entry(end.status, end.detail);
        EventWrite::Finish {
            event_id: event.id,
            run: self.lease_of(event),
            traced: event.traced,
            status_code: end.code,
            result: end.result,
            error: end.error,
            logs: end.logs,
            entry,
        }
    }

    /// Retries while RetryNum allows, with backoff; fails the event otherwise.
    fn fail_or_retry(
        &self,
        f: &Function,
        event: &ClaimedEvent,
        code: i64,
        error: String,
        logs: Option<String>,
    ) -> EventWrite {
        if retries_remain(event.attempt, f.retry_num) {
            self.metrics.retries.inc();
            let delay = retry_backoff_ms(event.attempt);
            let next = event.attempt + 1;
            let detail = timeline::retrying(delay, next, f.retry_num + 1, code, &error);
            self.requeue(event, event.attempt + 1, delay, Some(error), logs, detail)
        } else {
            let detail = timeline::failed(code, &error);
            self.finish(
                event,
                Ending {
                    status: EventStatus::Failed,
                    code,
                    result: None,
                    error: Some(error),
                    logs,
                    detail,
                },
            )
        }
    }

    /// Back to the queue for `attempt`, `delay_ms` from now, with a timeline entry.
    fn requeue(
        &self,
        event: &ClaimedEvent,
        attempt: u32,
        delay_ms: i64,
        error: Option<String>,
        logs: Option<String>,
        detail: String,
    ) -> EventWrite {
        let entry = self.entry(EventStatus::Queued, detail);
        EventWrite::Requeue {
            event_id: event.id,
            run: self.lease_of(event),
            traced: event.traced,
            attempt,
            run_after: entry.at + delay_ms,
            error,
            logs,
            entry,
        }
    }

    /// Claimed as the server stops, before it started: it waits in the queue, same attempt.
    fn put_back(&self, event: &ClaimedEvent) -> EventWrite {
        let detail = timeline::PUT_BACK.to_string();
        self.requeue(event, event.attempt, 0, None, None, detail)
    }

    /// The server stopped this event's run: what a takeover does after a crash, recorded now.
    fn stopped_while_running(
        &self,
        f: &Function,
        event: &ClaimedEvent,
        logs: Option<String>,
    ) -> EventWrite {
        let cause = StopCause::ServerStopped;
        match after_stop(event.attempt, f.retry_num, event.terminate.is_some(), cause) {
            AfterStop::Requeue { attempt, detail } => {
                self.requeue(event, attempt, 0, None, logs, detail)
            }
            AfterStop::End {
                status,
                code,
                detail,
            } => {
                let error = Some(detail.clone());
                self.finish(
                    event,
                    Ending {
                        status,
                        code,
                        result: None,
                        error,
                        logs,
                        detail,
                    },
                )
            }
        }
    }

    /// A worker: runs the events waiting for one, each as soon as the one before ended, and
    /// leaves their ends to commit behind it, many to a transaction. The last end takes the
    /// worker's slot to the writer, which hands it to the claim made in the same transaction:
    /// that end and the next event's claim share one commit.
    ///
    /// While the store cannot write, nothing more starts here: an end that failed is tried
    /// again until it lands, and the worker (its slot) waits with it. The events that ran
    /// before the failure showed were claimed, so recorded RUNNING, before they started.
    async fn work(self: Arc<Self>, slot: OwnedSemaphorePermit) {
        let mut behind = VecDeque::new();
        let mut last: Option<Ended> = None;
        // A synchronous invocation waiting for a worker takes this one.
        while self.sync_waiting.load(Ordering::Relaxed) == 0 {
            self.catch_up(&mut behind).await;
            // The store cannot write: nothing more starts before this worker's ends land.
            let pending = last.is_some() || !behind.is_empty();
            if pending && self.store.write_health().fault().is_some() {
                break;
            }
            let Some(ready) = self.ahead.pop() else {
                break;
            };
            if let Some(ended) = last.take() {
                self.leave_behind(&mut behind, ended).await;
            }
            if self.ahead.running_low() {
                self.wake.notify_one();
            }
            last = self.run_one(ready).await;
        }
        // Nothing it could start (its functions run as many as they may, or a synchronous
        // invocation waits): the slot goes back to the semaphore.
        if last.is_none() && behind.is_empty() {
            return;
        }
        // The dispatcher asks for a claim to ride along with the last end (the writer wakes it
        // again should the end commit without one and free the slot).
        self.wake.notify_one();
        let slot: writer::Slot = Arc::new(Mutex::new(Some(slot)));
        // The ends behind it first: the slot goes with the last end, and the worker is free
        // only once all of its ends are on disk.
        self.settle(behind).await;
        if let Some(ended) = last {
            self.write(ended.write, Some(&slot)).await;
            self.release(&ended.request_id, ended.claim);
        }
        // Not taken: the end was refused, or the server gives up on it as it stops.
        if slot.lock().expect("slot").take().is_some() {
            self.wake.notify_one();
        }
    }

    /// Runs one event a worker took; answers the end to record, if any.
    async fn run_one(self: &Arc<Self>, ready: ahead::Ready) -> Option<Ended> {
        let ahead::Ready {
            event,
            function,
            running,
            claim,
            ..
        } = ready;
        {
            let control = self.control.lock().expect("control lock");
            // Lost to another node while it waited (that node runs it; this node may even
            // have claimed it again since), or its function is being deleted.
            let held = control
                .held
                .get(&event.request_id)
                .is_some_and(|h| h.claim == claim);
            if !held || control.deleting.contains(&function.id) {
                drop(control);
                if held {
                    self.release(&event.request_id, claim);
                }
                return None;
            }
        }
        let request_id = event.request_id.clone();
        let function_id = function.id;
        let engine = Arc::clone(self);
        let started = Instant::now();
        let span = event_span(
            &event.request_id,
            (&function.region, &function.namespace, &function.name),
            event.attempt,
        );
        // A panic in one run must not take its worker down with it.
        let write = tokio::spawn(
            async move {
                let write = engine.execute(&event, &function).await;
                drop(running);
                write
            }
            .instrument(span.clone()),
        )
        .await;
        self.ahead.ran(function_id, started.elapsed());
        match write {
            Ok(Some(write)) => Some(Ended {
                write,
                request_id,
                claim,
            }),
            Ok(None) => {
                self.release(&request_id, claim);
                None
            }
            Err(e) => {
                span.in_scope(|| tracing::error!(error = %e, "an event run panicked"));
                self.release(&request_id, claim);
                None
            }
        }
    }

    /// Queues an end to commit behind its worker.
    async fn leave_behind(&self, behind: &mut Behind, ended: Ended) {
        match self.writer.queue(ended.write.clone()).await {
            Ok(done) => behind.push_back((ended, done)),
            Err(e) => self.settled(ended, Ok(Err(e))).await,
        }
    }

    /// Before a worker starts another event: lets go of the events whose ends landed. Should
    /// one have failed, the worker first waits until every end behind it has landed; with too
    /// many behind, it waits for the oldest.
    async fn catch_up(&self, behind: &mut Behind) {
        let mut failed = false;
        while let Some((_, done)) = behind.front_mut() {
            let result = match done.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => break,
                Ok(result) => Ok(result),
                Err(oneshot::error::TryRecvError::Closed) => Err(()),
            };
            let (ended, _) = behind.pop_front().expect("looked at");
            failed |= !matches!(result, Ok(Ok(())));
            self.settled(ended, result).await;
        }
        let keep = if failed { 0 } else { MAX_BEHIND };
        while behind.len() > keep {
            let (ended, done) = behind.pop_front().expect("more than kept");
            self.settled(ended, done.await.map_err(drop)).await;
        }
    }

    /// Waits until every end behind a worker has landed, in turn.
    async fn settle(&self, behind: Behind) {
        for (ended, done) in behind {
            self.settled(ended, done.await.map_err(drop)).await;
        }
    }

    /// A queued end's commit is known: its event is let go, once the end has landed (tried
    /// again until it does when the store could not write).
    async fn settled(&self, ended: Ended, result: Result<Result<(), writer::WriteError>, ()>) {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(writer::WriteError::Fault(_))) => self.write(ended.write, None).await,
            Ok(Err(e)) => tracing::error!(error = %e, "recording an event transition failed"),
            Err(()) => tracing::error!(
                "recording an event transition failed: the event writer has stopped"
            ),
        }
        self.release(&ended.request_id, ended.claim);
    }

    /// Events claimed ahead that will not start here after all: back to the queue in the same
    /// attempt, each with `detail` on its timeline.
    async fn give_back(&self, readies: Vec<ahead::Ready>, detail: &str) {
        let mut behind = Behind::new();
        for ready in readies {
            let write = self.requeue(
                &ready.event,
                ready.event.attempt,
                0,
                None,
                None,
                detail.to_string(),
            );
            let ended = Ended {
                write,
                request_id: ready.event.request_id,
                claim: ready.claim,
            };
            self.leave_behind(&mut behind, ended).await;
        }
        self.settle(behind).await;
        self.wake.notify_one();
    }

    /// Runs a claimed event; answers what to record of it (nothing when another node runs it
    /// now, or its function is being deleted).
    async fn execute(&self, event: &ClaimedEvent, f: &Function) -> Option<EventWrite> {
        let now = self.clock.now_millis();
        if event.terminate.is_some() {
            return Some(self.finish(
                event,
                Ending {
                    status: EventStatus::Aborted,
                    code: status_code::TERMINATED,
                    result: None,
                    error: None,
                    logs: None,
                    detail: timeline::TERMINATED_BEFORE_START.into(),
                },
            ));
        }
        if self.cancel.is_cancelled() {
            return Some(self.put_back(event));
        }
        let waited = now - event.enqueued_at;
        if waited > i64::from(f.msg_ttl) * 1000 {
            self.metrics.expired.inc();
            let detail = timeline::expired(waited, f.msg_ttl);
            return Some(self.finish(
                event,
                Ending {
                    status: EventStatus::Failed,
                    code: status_code::EXPIRED,
                    result: None,
                    error: Some(detail.clone()),
                    logs: None,
                    detail,
                },
            ));
        }

        let (mut instance, cold) = match self.instance_for(f).await {
            Ok(found) => {
                tracing::debug!(instance = %found.0.id, cold = found.1.is_some(), "event started");
                if event.attempt == 1 {
                    let waited = self.clock.now_millis() - event.enqueued_at;
                    self.metrics
                        .queue_wait
                        .observe(waited.max(0) as f64 / 1000.0);
                }
                found
            }
            Err(NoInstance::Load { code, error, logs }) => {
                let logs = (!logs.is_empty()).then_some(logs);
                return Some(self.fail_or_retry(f, event, code, error, logs));
            }
            // Back to the queue with the same attempt: RetryNum is the user's, not ours.
            // MsgTTL still bounds how long it can go on.
            Err(NoInstance::Capacity { error }) => {
                let detail = timeline::waiting_for_room(&error, CAPACITY_BACKOFF_MS);
                return Some(self.requeue(
                    event,
                    event.attempt,
                    CAPACITY_BACKOFF_MS,
                    None,
                    None,
                    detail,
                ));
            }
        };
        // The start entry is queued, not waited for: the handler need not wait for a commit to
        // start, and the run's end, queued after it, commits with it or later. Should the store
        // fail that commit, the entry is lost and the log says so; the event is not (its claim
        // is durable, its end is retried until it lands). Waiting for it before the end would
        // put a second commit on every event's path.
        if event.traced {
            let cold_load_ms = cold.map(|d| d.as_millis());
            let entry = self.entry(
                EventStatus::Running,
                timeline::started(&instance.id, cold_load_ms, event.attempt),
            );
            let note = EventWrite::Note {
                event_id: event.id,
                run: self.lease_of(event),
                entry,
            };
            match self.writer.queue(note).await {
                Ok(done) => {
                    tokio::spawn(
                        async move {
                            if let Ok(Err(e)) = done.await {
                                tracing::warn!(error = %e, "the start of an event was not recorded on its timeline");
                            }
                        }
                        .in_current_span(),
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the start of an event was not recorded on its timeline");
                }
            }
        }

        let (tx, mut rx) = mpsc::channel(2);
        let early = {
            let mut control = self.control.lock().expect("control lock");
            if control.interrupting || control.deleting.contains(&f.id) {
                None
            } else {
                control.running.insert(
                    event.request_id.clone(),
                    RunControl {
                        function_id: f.id,
                        logs: instance.live_logs(),
                        signals: tx.clone(),
                        signalled: false,
                        lost: false,
                    },
                );
                Some(control.pending.remove(&event.request_id))
            }
        };
        let Some(early) = early else {
            // The server stops, or the function is being deleted (its events go with it).
            instance.retire(&self.dir).await;
            return self.cancel.is_cancelled().then(|| self.put_back(event));
        };
        if let Some(signal) = early {
            if let Some(run) = self
                .control
                .lock()
                .expect("control lock")
                .running
                .get_mut(&event.request_id)
            {
                run.signalled = true;
            }
            let _ = tx.try_send(signal);
        }
        let context = self.context(f, &event.request_id, &event.invoke_type);
        let run_started = Instant::now();
        let (outcome, logs) = instance
            .invoke(
                &event.payload,
                &context,
                Duration::from_secs(f.timeout.into()),
                self.config.grace_period,
                &mut rx,
            )
            .await;
        let ran = run_started.elapsed();
        self.metrics.run_time.observe(ran.as_secs_f64());
        let ran_ms = ran.as_millis();
        let (interrupted, lost) = {
            let mut control = self.control.lock().expect("control lock");
            let lost = control
                .running
                .remove(&event.request_id)
                .is_some_and(|run| run.lost);
            (control.interrupting, lost)
        };
        let logs = (!logs.is_empty()).then_some(logs);
        if lost {
            // Another node runs it now; nothing of this run is recorded.
            instance.retire(&self.dir).await;
            return None;
        }
        if interrupted {
            instance.retire(&self.dir).await;
            return Some(self.stopped_while_running(f, event, logs));
        }
        let write = match self.verdict(f, outcome, instance).await {
            Verdict::Finished(value) => {
                let result = recorded_result(&value);
                let detail = timeline::finished(ran_ms);
                self.finish(
                    event,
                    Ending {
                        status: EventStatus::Finished,
                        code: status_code::SUCCESS,
                        result: Some(result),
                        error: None,
                        logs,
                        detail,
                    },
                )
            }
            Verdict::Failed { code, error, .. } => self.fail_or_retry(f, event, code, error, logs),
            Verdict::Aborted { graceful, killed } => {
                let deleting = self
                    .control
                    .lock()
                    .expect("control lock")
                    .deleting
                    .contains(&f.id);
                let (code, error, detail) = if deleting {
                    let why = timeline::function_deleted();
                    (status_code::TERMINATED, why.clone(), why)
                } else {
                    let (code, error) = timeline::terminated(graceful, killed);
                    let detail = timeline::terminated_entry(graceful, killed);
                    (code, error.to_string(), detail)
                };
                self.finish(
                    event,
                    Ending {
                        status: EventStatus::Aborted,
                        code,
                        result: None,
                        error: Some(error),
                        logs,
                        detail,
                    },
                )
            }
        };
        Some(write)
    }
}
