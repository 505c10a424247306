//! The store contract: what every backend must do, whatever database it is built on. Each
//! check takes two handles on one store, as two processes sharing it would hold them; a
//! backend joins by adding its own `contract!` line with a function that opens it.

use scf_console::domain::event::EventStatus;
use scf_console::domain::function::{FunctionConfig, NewFunction};
use scf_console::domain::runtime::Runtime;
use scf_console::domain::user::Role;
use scf_console::store::{
    AuditEntry, AuditFilter, Claim, ClaimBudget, DynStore, EventWrite, NewEvent, NewSession,
    RunLease, StoreError, Termination, TimelineEntry, User, Via,
};

/// Two handles on one fresh store, and what keeps it alive.
pub struct Backend {
    one: DynStore,
    two: DynStore,
    _keep: Keep,
}

/// What must live as long as the store: its folder, or its schema (held only to be dropped).
#[allow(dead_code)]
enum Keep {
    Dir(tempfile::TempDir),
    Schema(crate::support::postgres::Schema),
}

async fn sqlite() -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("contract.db").display());
    Some(Backend {
        one: scf_console::store::open(&url).await.unwrap(),
        two: scf_console::store::open(&url).await.unwrap(),
        _keep: Keep::Dir(dir),
    })
}

/// A schema of its own on the test database, opened twice as two nodes would; `None` when
/// there is no PostgreSQL to test against (outside CI only).
async fn postgres() -> Option<Backend> {
    let schema = crate::support::postgres::Schema::create().await?;
    let (one, two) = tokio::join!(
        scf_console::store::open(schema.url()),
        scf_console::store::open(schema.url())
    );
    Some(Backend {
        one: one.unwrap(),
        two: two.unwrap(),
        _keep: Keep::Schema(schema),
    })
}

macro_rules! contract {
    ($backend:ident: $($check:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $check() {
                    if let Some(backend) = super::$backend().await {
                        super::$check(backend).await
                    }
                }
            )*
        }
    };
}

/// Every check, run on every backend.
macro_rules! every_check {
    ($backend:ident) => {
        contract!($backend:
    names_are_unique_and_namespaces_keep_their_functions,
    a_claim_is_exclusive_across_handles,
    claims_keep_to_each_functions_allowance_and_take_turns,
    writes_land_only_under_the_lease_that_claimed,
    renewal_keeps_held_leases_and_brings_terminate_requests,
    stranded_runs_are_those_of_expired_leases_or_gone_owners,
    a_takeover_fences_out_the_old_run_and_a_renewed_lease_is_not_taken,
    termination_aborts_queued_events_and_flags_running_ones,
    the_timeline_starts_with_the_accept,
    sweeping_removes_only_ended_events,
    event_ids_are_never_reused,
    illegal_moves_are_refused_before_anything_is_written,
    an_end_and_the_next_claim_commit_together_or_not_at_all,
    every_accept_counts_once_against_its_namespace,
    accepts_past_the_quota_are_refused_whoever_writes_them,
    one_first_user_and_never_no_admin,
    sessions_end_with_time_password_changes_and_their_user,
    audit_entries_filter_newest_first_and_sweep_by_age,
    a_deleted_function_frees_its_name_and_keeps_its_events_ended,
);
    };
}

every_check!(sqlite);
every_check!(postgres);

const REGION: &str = "ap-guangzhou";
const ME: &str = "0123456789abcdef0123456789abcdef";
const OTHER: &str = "fedcba9876543210fedcba9876543210";

async fn function(store: &DynStore, name: &str, retry_num: u32) -> i64 {
    function_in(store, "default", name, retry_num).await
}

async fn function_in(store: &DynStore, namespace: &str, name: &str, retry_num: u32) -> i64 {
    store
        .ensure_namespace(REGION, namespace, 1_000)
        .await
        .unwrap();
    let new = NewFunction {
        name: name.into(),
        runtime: Runtime::by_name("Python3.10").unwrap(),
        handler: "index.main_handler".into(),
        files: vec![],
        async_run_enable: true,
        config: FunctionConfig {
            description: String::new(),
            memory_size: 128,
            timeout: 3,
            environment: vec![],
            trace_enable: true,
            retry_num,
            msg_ttl: 3600,
            qps_limit: 1000,
            public_net: true,
        },
    };
    store
        .create_function(REGION, namespace, &new, 1_000)
        .await
        .unwrap()
        .id
}

/// An accepted invocation of the function, as the engine writes it.
fn insert(function_id: i64, id: &str, at: i64) -> EventWrite {
    EventWrite::Insert(NewEvent {
        request_id: id.to_string(),
        function_id,
        invoke_type: "API".into(),
        traced: true,
        payload: "{}".into(),
        enqueued_at: at,
        invoked_by: None,
        rerun_of: None,
    })
}

async fn accept(store: &DynStore, function_id: i64, ids: &[&str], at: i64) {
    let writes: Vec<EventWrite> = ids.iter().map(|id| insert(function_id, id, at)).collect();
    store.apply_event_writes(&writes).await.unwrap();
}

fn lease(owner: &str, attempt: u32) -> RunLease {
    RunLease {
        owner: owner.into(),
        attempt,
        until: None,
    }
}

fn finish(event_id: i64, run: RunLease, at: i64) -> EventWrite {
    EventWrite::Finish {
        event_id,
        run,
        traced: true,
        status_code: 200,
        result: Some("ok".into()),
        error: None,
        logs: None,
        entry: TimelineEntry {
            at,
            status: EventStatus::Finished,
            detail: "Finished (200) in 1 ms.".into(),
        },
    }
}

fn requeue(event_id: i64, run: RunLease, attempt: u32, at: i64) -> EventWrite {
    EventWrite::Requeue {
        event_id,
        run,
        traced: true,
        attempt,
        run_after: at,
        error: None,
        logs: None,
        entry: TimelineEntry {
            at,
            status: EventStatus::Queued,
            detail: "Requeued.".into(),
        },
    }
}

/// The key of a function of the default namespace.
fn key(name: &str) -> scf_console::store::FunctionKey {
    scf_console::store::FunctionKey {
        region: REGION.into(),
        namespace: "default".into(),
        name: name.into(),
    }
}

/// The timeline entry a deletion leaves on its function's unended events.
fn deleted(at: i64) -> TimelineEntry {
    TimelineEntry {
        at,
        status: EventStatus::Aborted,
        detail: "deleted".into(),
    }
}

async fn status(store: &DynStore, id: &str) -> (EventStatus, u32) {
    let e = store.get_event(id).await.unwrap().unwrap();
    (e.status, e.attempt)
}

async fn names_are_unique_and_namespaces_keep_their_functions(b: Backend) {
    function(&b.one, "orders", 0).await;
    let again = NewFunction {
        name: "orders".into(),
        runtime: Runtime::by_name("Python3.10").unwrap(),
        handler: "index.main_handler".into(),
        files: vec![],
        async_run_enable: false,
        config: FunctionConfig {
            description: String::new(),
            memory_size: 128,
            timeout: 3,
            environment: vec![],
            trace_enable: false,
            retry_num: 0,
            msg_ttl: 3600,
            qps_limit: 1000,
            public_net: true,
        },
    };
    assert!(matches!(
        b.two
            .create_function(REGION, "default", &again, 2_000)
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        b.two
            .create_function(REGION, "nowhere", &again, 2_000)
            .await,
        Err(StoreError::NotFound)
    ));
    b.one
        .create_namespace(REGION, "team", "", 2_000)
        .await
        .unwrap();
    assert!(matches!(
        b.two.create_namespace(REGION, "team", "", 2_000).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        b.two.delete_namespace(REGION, "default").await,
        Err(StoreError::NotEmpty)
    ));
}

/// The engine's concurrency rules reach the queue as a budget: each function's allowance, a
/// limit for the functions without a reservation together, and turns, so that one function's
/// backlog never stands in front of another's events.
async fn claims_keep_to_each_functions_allowance_and_take_turns(b: Backend) {
    let (a, bee, c, d) = (
        function(&b.one, "backlog", 0).await,
        function(&b.one, "small", 0).await,
        function(&b.one, "reserved", 0).await,
        function(&b.one, "at-its-cap", 0).await,
    );
    let names = |prefix: &str, n: usize| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}-{i}")).collect()
    };
    for (f, prefix, n, at) in [
        (a, "a", 10, 10_000),
        (bee, "b", 3, 11_000),
        (c, "c", 5, 12_000),
        (d, "d", 2, 13_000),
    ] {
        let ids = names(prefix, n);
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        accept(&b.one, f, &refs, at).await;
    }
    let count = |claimed: &[scf_console::store::ClaimedEvent], f: i64| {
        claimed.iter().filter(|e| e.function_id == f).count()
    };
    let budget = ClaimBudget {
        limit: 8,
        unreserved_limit: 5,
        per_function: 2,
        functions: vec![(c, 3, true), (a, 1, false), (d, 0, false)],
    };
    let first = b
        .one
        .claim_events(20_000, &budget, ME, 80_000)
        .await
        .unwrap();
    assert_eq!(
        [
            count(&first, a),
            count(&first, bee),
            count(&first, c),
            count(&first, d)
        ],
        [1, 2, 3, 0],
        "each function up to its allowance, none for the one at its cap"
    );
    // Each function's oldest first, whatever the others' backlogs.
    assert!(first.iter().any(|e| e.request_id == "a-0"));

    // Turns: three slots go to three functions' oldest events, not to one backlog.
    let second = b
        .two
        .claim_events(20_000, &ClaimBudget::up_to(3), OTHER, 80_000)
        .await
        .unwrap();
    let mut got: Vec<&str> = second.iter().map(|e| e.request_id.as_str()).collect();
    got.sort();
    assert_eq!(got, ["a-1", "b-2", "c-3"]);

    // Functions without a reservation share their limit; a reserved one does not count in it.
    let shared = ClaimBudget {
        limit: 10,
        unreserved_limit: 1,
        per_function: 5,
        functions: vec![(c, 5, true)],
    };
    let third = b
        .one
        .claim_events(20_000, &shared, ME, 80_000)
        .await
        .unwrap();
    let mut got: Vec<&str> = third.iter().map(|e| e.request_id.as_str()).collect();
    got.sort();
    assert_eq!(got, ["a-2", "c-4"]);
    // Not due yet: not claimed, however much room there is.
    assert!(
        b.one
            .claim_events(9_000, &ClaimBudget::up_to(50), ME, 80_000)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_claim_is_exclusive_across_handles(b: Backend) {
    let f = function(&b.one, "work", 0).await;
    let ids: Vec<String> = (0..200).map(|i| format!("e-{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    accept(&b.one, f, &refs, 10_000).await;
    // Both handles claim at once, in small bites, until the queue is empty.
    let grab = |store: DynStore, owner: &'static str| async move {
        let mut mine = Vec::new();
        loop {
            let got = store
                .claim_events(20_000, &ClaimBudget::up_to(7), owner, 80_000)
                .await
                .unwrap();
            if got.is_empty() {
                return mine;
            }
            mine.extend(got.into_iter().map(|c| c.request_id));
        }
    };
    let (one, two) = tokio::join!(grab(b.one.clone(), ME), grab(b.two.clone(), OTHER));
    let mut all: Vec<String> = one.iter().chain(&two).cloned().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 200, "every event claimed once");
    assert_eq!(one.len() + two.len(), 200, "no event claimed twice");
    // Not due yet: a retry waits for its time.
    accept(&b.one, f, &["later"], 10_000).await;
    let c = b
        .one
        .claim_events(20_000, &ClaimBudget::up_to(1), ME, 80_000)
        .await
        .unwrap();
    b.one
        .apply_event_writes(&[requeue(c[0].id, lease(ME, 1), 2, 50_000)])
        .await
        .unwrap();
    assert!(
        b.two
            .claim_events(40_000, &ClaimBudget::up_to(1), OTHER, 80_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        b.two
            .claim_events(50_000, &ClaimBudget::up_to(1), OTHER, 80_000)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn writes_land_only_under_the_lease_that_claimed(b: Backend) {
    let f = function(&b.one, "fenced", 1).await;
    accept(&b.one, f, &["x"], 10_000).await;
    let c = b
        .one
        .claim_events(20_000, &ClaimBudget::up_to(1), ME, 80_000)
        .await
        .unwrap();
    let id = c[0].id;
    // Another owner, or another attempt, writes nothing.
    b.two
        .apply_event_writes(&[finish(id, lease(OTHER, 1), 21_000)])
        .await
        .unwrap();
    b.two
        .apply_event_writes(&[finish(id, lease(ME, 2), 21_000)])
        .await
        .unwrap();
    assert_eq!(status(&b.one, "x").await, (EventStatus::Running, 1));
    // The owner requeues it; then its late finish of the first attempt changes nothing.
    b.one
        .apply_event_writes(&[requeue(id, lease(ME, 1), 2, 22_000)])
        .await
        .unwrap();
    b.one
        .apply_event_writes(&[finish(id, lease(ME, 1), 23_000)])
        .await
        .unwrap();
    assert_eq!(status(&b.one, "x").await, (EventStatus::Queued, 2));
    let c = b
        .two
        .claim_events(30_000, &ClaimBudget::up_to(1), OTHER, 90_000)
        .await
        .unwrap();
    assert_eq!(c[0].attempt, 2);
    b.two
        .apply_event_writes(&[finish(id, lease(OTHER, 2), 31_000)])
        .await
        .unwrap();
    assert_eq!(status(&b.one, "x").await, (EventStatus::Finished, 2));
    let steps = b.one.event_timeline(id).await.unwrap();
    let details: Vec<&str> = steps.iter().map(|s| s.detail.as_str()).collect();
    assert_eq!(
        details,
        [
            "Queued (invoked by API).",
            "Requeued.",
            "Finished (200) in 1 ms."
        ]
    );
}

async fn renewal_keeps_held_leases_and_brings_terminate_requests(b: Backend) {
    let f = function(&b.one, "held", 0).await;
    accept(&b.one, f, &["a", "b"], 10_000).await;
    let c = b
        .one
        .claim_events(20_000, &ClaimBudget::up_to(2), ME, 30_000)
        .await
        .unwrap();
    let (a, bb) = (c[0].id, c[1].id);
    let aborted = TimelineEntry {
        at: 21_000,
        status: EventStatus::Aborted,
        detail: "Terminated by a user before it started (499).".into(),
    };
    assert_eq!(
        b.two
            .request_termination("b", "grace", &aborted, &requested(), 499)
            .await
            .unwrap(),
        Termination::Running
    );
    let renewed = b
        .one
        .renew_leases(ME, &[(a, 1), (bb, 1)], 60_000)
        .await
        .unwrap();
    let mut seen: Vec<(i64, Option<String>)> = renewed
        .into_iter()
        .map(|r| (r.event_id, r.terminate))
        .collect();
    seen.sort();
    assert_eq!(seen, [(a, None), (bb, Some("grace".into()))]);
    // A lease renewed until 60 s is not stranded at 40 s.
    assert!(
        b.two
            .stranded_runs(40_000, &[], 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Another owner renews nothing it does not hold.
    assert!(
        b.two
            .renew_leases(OTHER, &[(a, 1)], 90_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(b.one.lease_owners().await.unwrap(), [ME.to_string()]);
}

async fn stranded_runs_are_those_of_expired_leases_or_gone_owners(b: Backend) {
    let f = function(&b.one, "stranded", 2).await;
    accept(&b.one, f, &["mine", "theirs"], 10_000).await;
    b.one
        .claim_events(20_000, &ClaimBudget::up_to(1), ME, 30_000)
        .await
        .unwrap();
    b.two
        .claim_events(20_000, &ClaimBudget::up_to(1), OTHER, 90_000)
        .await
        .unwrap();
    let at = |now, gone: &[String]| {
        let store = b.two.clone();
        let gone = gone.to_vec();
        async move {
            let runs = store.stranded_runs(now, &gone, 10).await.unwrap();
            runs.into_iter()
                .map(|r| (r.request_id, r.lease.owner, r.retry_num))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(at(25_000, &[]).await, []);
    assert_eq!(
        at(31_000, &[]).await,
        [("mine".to_string(), ME.to_string(), 2)]
    );
    assert_eq!(at(25_000, &[OTHER.to_string()]).await.len(), 1);
    assert_eq!(at(31_000, &[OTHER.to_string()]).await.len(), 2);
}

async fn a_takeover_fences_out_the_old_run_and_a_renewed_lease_is_not_taken(b: Backend) {
    let f = function(&b.one, "taken", 2).await;
    accept(&b.one, f, &["slow", "alive"], 10_000).await;
    let c = b
        .one
        .claim_events(20_000, &ClaimBudget::up_to(2), ME, 30_000)
        .await
        .unwrap();
    let (slow, alive) = (c[0].id, c[1].id);
    let stranded = b.two.stranded_runs(31_000, &[], 10).await.unwrap();
    assert_eq!(stranded.len(), 2);
    // Meanwhile the owner renews one of them: that one is not taken.
    b.one.renew_leases(ME, &[(alive, 1)], 90_000).await.unwrap();
    let takeovers: Vec<EventWrite> = stranded
        .iter()
        .map(|r| requeue(r.id, r.lease.clone(), r.lease.attempt + 1, 31_000))
        .collect();
    b.two.apply_event_writes(&takeovers).await.unwrap();
    assert_eq!(status(&b.one, "slow").await, (EventStatus::Queued, 2));
    assert_eq!(status(&b.one, "alive").await, (EventStatus::Running, 1));
    // The old run of the taken event ends late: nothing changes.
    b.one
        .apply_event_writes(&[finish(slow, lease(ME, 1), 32_000)])
        .await
        .unwrap();
    assert_eq!(status(&b.one, "slow").await, (EventStatus::Queued, 2));
    b.one
        .apply_event_writes(&[finish(alive, lease(ME, 1), 32_000)])
        .await
        .unwrap();
    assert_eq!(status(&b.one, "alive").await, (EventStatus::Finished, 1));
}

async fn termination_aborts_queued_events_and_flags_running_ones(b: Backend) {
    let f = function(&b.one, "stop", 0).await;
    accept(&b.one, f, &["first", "second"], 10_000).await;
    b.one
        .claim_events(20_000, &ClaimBudget::up_to(1), ME, 90_000)
        .await
        .unwrap();
    let aborted = TimelineEntry {
        at: 21_000,
        status: EventStatus::Aborted,
        detail: "Terminated by a user before it started (499).".into(),
    };
    // The first accepted was claimed; the second waits.
    let (first, second) = ("first", "second");
    assert_eq!(
        b.two
            .request_termination(first, "force", &aborted, &requested(), 499)
            .await
            .unwrap(),
        Termination::Running
    );
    assert_eq!(
        b.two
            .request_termination(second, "force", &aborted, &requested(), 499)
            .await
            .unwrap(),
        Termination::AbortedWhileQueued
    );
    let e = b.one.get_event(second).await.unwrap().unwrap();
    assert_eq!((e.status, e.status_code), (EventStatus::Aborted, Some(499)));
    assert_eq!(
        b.two
            .request_termination(second, "force", &aborted, &requested(), 499)
            .await
            .unwrap(),
        Termination::NotRunning(EventStatus::Aborted)
    );
    assert!(matches!(
        b.two
            .request_termination("nobody", "force", &aborted, &requested(), 499)
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn the_timeline_starts_with_the_accept(b: Backend) {
    let f = function(&b.one, "told", 0).await;
    accept(&b.one, f, &["t"], 10_000).await;
    let e = b.two.get_event("t").await.unwrap().unwrap();
    let steps = b.two.event_timeline(e.id).await.unwrap();
    assert_eq!(
        steps,
        [TimelineEntry {
            at: 10_000,
            status: EventStatus::Queued,
            detail: "Queued (invoked by API).".into()
        }]
    );
    assert!(b.two.event_timeline(e.id + 1000).await.unwrap().is_empty());
}

async fn sweeping_removes_only_ended_events(b: Backend) {
    let f = function(&b.one, "swept", 0).await;
    accept(&b.one, f, &["done", "running", "queued"], 10_000).await;
    let c = b
        .one
        .claim_events(20_000, &ClaimBudget::up_to(2), ME, 90_000)
        .await
        .unwrap();
    b.one
        .apply_event_writes(&[finish(c[0].id, lease(ME, 1), 30_000)])
        .await
        .unwrap();
    assert_eq!(b.two.sweep_events(1_000_000, 100).await.unwrap(), 1);
    assert!(b.one.get_event("done").await.unwrap().is_none());
    assert!(b.one.get_event("running").await.unwrap().is_some());
    assert!(b.one.get_event("queued").await.unwrap().is_some());
}

async fn event_ids_are_never_reused(b: Backend) {
    let f = function(&b.one, "ids", 0).await;
    accept(&b.one, f, &["first"], 10_000).await;
    let first = b.one.get_event("first").await.unwrap().unwrap().id;
    let c = b
        .one
        .claim_events(20_000, &ClaimBudget::up_to(1), ME, 90_000)
        .await
        .unwrap();
    b.one
        .apply_event_writes(&[finish(c[0].id, lease(ME, 1), 30_000)])
        .await
        .unwrap();
    b.one.sweep_events(1_000_000, 100).await.unwrap();
    accept(&b.two, f, &["second"], 40_000).await;
    let second = b.two.get_event("second").await.unwrap().unwrap().id;
    assert!(second > first, "{second} after {first}");
}

async fn illegal_moves_are_refused_before_anything_is_written(b: Backend) {
    let f = function(&b.one, "machine", 0).await;
    accept(&b.one, f, &["m"], 10_000).await;
    let c = b
        .one
        .claim_events(20_000, &ClaimBudget::up_to(1), ME, 90_000)
        .await
        .unwrap();
    let mut back_to_queue = finish(c[0].id, lease(ME, 1), 21_000);
    if let EventWrite::Finish { entry, .. } = &mut back_to_queue {
        entry.status = EventStatus::Queued;
    }
    let mut requeue_as_ended = requeue(c[0].id, lease(ME, 1), 2, 21_000);
    if let EventWrite::Requeue { entry, .. } = &mut requeue_as_ended {
        entry.status = EventStatus::Finished;
    }
    for illegal in [back_to_queue, requeue_as_ended] {
        // Alone, or beside a legal write: the whole batch is refused.
        let batch = [finish(c[0].id, lease(ME, 1), 21_000), illegal];
        assert!(matches!(
            b.two.apply_event_writes(&batch).await,
            Err(StoreError::IllegalTransition { .. })
        ));
        assert_eq!(status(&b.one, "m").await, (EventStatus::Running, 1));
    }
}

/// A run's end and the claim of the event that takes its slot share one transaction: both
/// land, or (a write of the batch refused) neither does.
async fn an_end_and_the_next_claim_commit_together_or_not_at_all(b: Backend) {
    let f = function(&b.one, "chain", 0).await;
    let gone = function(&b.one, "gone", 0).await;
    accept(&b.one, f, &["first", "second", "third"], 10_000).await;
    let c = b
        .one
        .claim_events(20_000, &ClaimBudget::up_to(1), ME, 90_000)
        .await
        .unwrap();
    assert_eq!(c[0].request_id, "first");
    b.two
        .delete_function(&key("gone"), &deleted(20_500), 499)
        .await
        .unwrap();
    let claim = Claim {
        now: 21_000,
        budget: ClaimBudget::up_to(1),
        owner: ME.into(),
        lease_until: 90_000,
    };
    // An accept for the deleted function fails the batch: the end is not written, and
    // nothing is claimed.
    let late = insert(gone, "late", 21_000);
    let failed = b
        .one
        .commit_events(&[finish(c[0].id, lease(ME, 1), 21_000), late], Some(&claim))
        .await;
    assert!(matches!(failed, Err(StoreError::NotFound)), "{failed:?}");
    assert_eq!(status(&b.one, "first").await, (EventStatus::Running, 1));
    assert_eq!(status(&b.one, "second").await, (EventStatus::Queued, 1));

    let next = b
        .one
        .commit_events(&[finish(c[0].id, lease(ME, 1), 21_000)], Some(&claim))
        .await
        .unwrap();
    let next: Vec<&str> = next.iter().map(|e| e.request_id.as_str()).collect();
    assert_eq!(next, ["second"]);
    assert_eq!(status(&b.two, "first").await, (EventStatus::Finished, 1));
    assert_eq!(status(&b.two, "second").await, (EventStatus::Running, 1));
    assert_eq!(status(&b.two, "third").await, (EventStatus::Queued, 1));

    // The claim sees the writes of its own transaction: an event requeued, due at once, is
    // claimed again in the same commit, in its next attempt.
    let second = b.one.get_event("second").await.unwrap().unwrap().id;
    let claim = Claim {
        now: 22_000,
        budget: ClaimBudget::up_to(2),
        ..claim
    };
    let again = b
        .one
        .commit_events(&[requeue(second, lease(ME, 1), 2, 21_500)], Some(&claim))
        .await
        .unwrap();
    let again: Vec<(&str, u32)> = again
        .iter()
        .map(|e| (e.request_id.as_str(), e.attempt))
        .collect();
    assert_eq!(again, [("second", 2), ("third", 1)]);
}

/// The invocation quota is checked against what the store counted: a batch of accepts of
/// several namespaces counts each accept once in its own namespace, whether it is written
/// alone or with the engine's other writes, and a batch refused as a whole counts nothing.
async fn every_accept_counts_once_against_its_namespace(b: Backend) {
    let store = &b.one;
    let mine = function_in(store, "default", "mine", 0).await;
    let theirs = function_in(store, "team", "theirs", 0).await;
    let used = |namespace: &'static str| async move {
        store
            .namespace_billing(REGION, namespace)
            .await
            .unwrap()
            .unwrap()
            .invocations_used
    };
    let insert = |function_id: i64, id: &str| insert(function_id, id, 1_000);
    store
        .apply_event_writes(&[
            insert(mine, "m1"),
            insert(theirs, "t1"),
            insert(mine, "m2"),
            insert(mine, "m3"),
        ])
        .await
        .unwrap();
    assert_eq!((used("default").await, used("team").await), (3, 1));
    // A RequestId already taken refuses the whole batch: nothing of it counts.
    let refused = store
        .apply_event_writes(&[insert(theirs, "t2"), insert(mine, "m1")])
        .await;
    assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
    assert_eq!((used("default").await, used("team").await), (3, 1));
    // Accepts committed with an end and a claim, in one transaction, count the same.
    let held = store
        .claim_events(2_000, &ClaimBudget::up_to(1), ME, 90_000)
        .await
        .unwrap();
    let claim = Claim {
        now: 2_500,
        budget: ClaimBudget::up_to(1),
        owner: ME.into(),
        lease_until: 90_000,
    };
    store
        .commit_events(
            &[
                finish(held[0].id, lease(ME, 1), 3_000),
                insert(theirs, "t2"),
                insert(mine, "m4"),
            ],
            Some(&claim),
        )
        .await
        .unwrap();
    assert_eq!((used("default").await, used("team").await), (4, 2));
}

/// The store holds the invocation quota itself, whatever each writer read before: a batch that
/// would go past it is refused whole and counts nothing, accepts written one by one land
/// exactly while they fit, and two handles (two nodes) writing at once take no more than it
/// leaves between them.
async fn accepts_past_the_quota_are_refused_whoever_writes_them(b: Backend) {
    let mine = function_in(&b.one, "default", "mine", 0).await;
    let theirs = function_in(&b.one, "team", "theirs", 0).await;
    b.one
        .set_namespace_billing(REGION, "default", false, Some(5))
        .await
        .unwrap();
    let insert = |function_id: i64, id: String| insert(function_id, &id, 1_000);
    let used = || async {
        b.two
            .namespace_billing(REGION, "default")
            .await
            .unwrap()
            .unwrap()
            .invocations_used
    };
    accept(&b.one, mine, &["m1", "m2", "m3"], 1_000).await;
    // Three more do not fit in the two left: none of them is written, nor the other
    // namespace's accept beside them.
    let batch: Vec<EventWrite> = ["m4", "m5", "m6"]
        .into_iter()
        .map(|id| insert(mine, id.into()))
        .chain([insert(theirs, "t1".into())])
        .collect();
    let refused = b.one.apply_event_writes(&batch).await;
    assert!(matches!(refused, Err(StoreError::QuotaUsed)), "{refused:?}");
    assert_eq!(used().await, 3);
    // One by one, as the engine then writes them: exactly those that fit land.
    let mut landed = Vec::new();
    for write in &batch {
        match b.one.apply_event_writes(std::slice::from_ref(write)).await {
            Ok(()) => landed.push(write.describe()),
            Err(StoreError::QuotaUsed) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(landed, ["insert m4", "insert m5", "insert t1"]);
    assert_eq!(used().await, 5);

    // Two handles writing at once, each unaware of the other's accepts: between them they
    // take what the quota leaves, never more.
    b.one
        .set_namespace_billing(REGION, "default", false, Some(25))
        .await
        .unwrap();
    let burst = |store: &DynStore, prefix: &'static str| {
        let store = store.clone();
        async move {
            let mut kept = 0;
            for n in 0..30 {
                let write = insert(mine, format!("{prefix}{n}"));
                match store.apply_event_writes(std::slice::from_ref(&write)).await {
                    Ok(()) => kept += 1,
                    Err(StoreError::QuotaUsed) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            kept
        }
    };
    let (one, two) = tokio::join!(
        tokio::spawn(burst(&b.one, "one-")),
        tokio::spawn(burst(&b.two, "two-"))
    );
    assert_eq!(one.unwrap() + two.unwrap(), 20);
    assert_eq!(used().await, 25);
    // A raised quota lets accepts in again.
    b.two
        .set_namespace_billing(REGION, "default", false, Some(26))
        .await
        .unwrap();
    accept(&b.two, mine, &["after-raise"], 2_000).await;
    assert_eq!(used().await, 26);
}

fn user(name: &str, role: Role, at: i64) -> User {
    User {
        name: name.into(),
        role,
        password_hash: format!("hash-of-{name}"),
        created_at: at,
        password_changed_at: at,
    }
}

async fn one_first_user_and_never_no_admin(b: Backend) {
    // Two processes starting on an empty store: one first admin.
    let (admin, root) = (user("admin", Role::Admin, 1), user("root", Role::Admin, 1));
    let (one, two) = tokio::join!(
        b.one.create_first_user(&admin),
        b.two.create_first_user(&root),
    );
    assert_eq!(
        [one.unwrap(), two.unwrap()].iter().filter(|c| **c).count(),
        1
    );
    let first = b.one.list_users().await.unwrap().remove(0).name;
    assert!(matches!(
        b.two.create_user(&user(&first, Role::Developer, 2)).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        b.two.set_user_role(&first, Role::ReadOnly).await,
        Err(StoreError::NotEmpty)
    ));
    assert!(matches!(
        b.two.delete_user(&first).await,
        Err(StoreError::NotEmpty)
    ));
    b.one
        .create_user(&user("second", Role::Admin, 3))
        .await
        .unwrap();
    b.two.set_user_role(&first, Role::ReadOnly).await.unwrap();
    assert!(matches!(
        b.one.delete_user("second").await,
        Err(StoreError::NotEmpty)
    ));
    assert!(matches!(
        b.one.set_user_role("nobody", Role::Admin).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        b.two.get_user(&first).await.unwrap().unwrap().role,
        Role::ReadOnly
    );
}

async fn sessions_end_with_time_password_changes_and_their_user(b: Backend) {
    b.one
        .create_user(&user("alice", Role::Developer, 1_000))
        .await
        .unwrap();
    let open = |hash: &'static str, at: i64| NewSession {
        token_hash: hash,
        user: "alice",
        csrf_token: "token",
        created_at: at,
        expires_at: at + 10_000,
        source: "10.0.0.1",
    };
    for (hash, at) in [("a", 2_000), ("b", 2_000), ("c", 2_000)] {
        b.one.create_session(&open(hash, at)).await.unwrap();
    }
    let live = b.two.session("a", 5_000).await.unwrap().unwrap();
    assert_eq!((live.user.as_str(), live.role), ("alice", Role::Developer));
    assert!(
        b.two.session("a", 12_000).await.unwrap().is_none(),
        "expired"
    );
    // A role change is seen by open sessions at once.
    b.one.set_user_role("alice", Role::ReadOnly).await.unwrap();
    assert_eq!(
        b.two.session("b", 5_000).await.unwrap().unwrap().role,
        Role::ReadOnly
    );
    // A password change ends every session but the one kept.
    b.two
        .set_user_password("alice", "new-hash", 6_000, Some("b"))
        .await
        .unwrap();
    assert!(b.one.session("a", 7_000).await.unwrap().is_none());
    assert!(b.one.session("b", 7_000).await.unwrap().is_some());
    assert_eq!(b.one.sweep_sessions(11_999).await.unwrap(), 0);
    assert_eq!(
        b.one.sweep_sessions(12_000).await.unwrap(),
        1,
        "b, at its end"
    );
    b.one.create_session(&open("d", 20_000)).await.unwrap();
    b.one.delete_user("alice").await.unwrap();
    assert!(
        b.two.session("d", 21_000).await.unwrap().is_none(),
        "gone with its user"
    );
}

async fn audit_entries_filter_newest_first_and_sweep_by_age(b: Backend) {
    let entry = |at: i64, actor: &str, action: &str, target: &str| AuditEntry {
        id: 0,
        at,
        actor: actor.into(),
        via: Via::Console,
        source: "10.0.0.1".into(),
        action: action.into(),
        target: target.into(),
        outcome: "ok".into(),
    };
    for (i, (actor, action, target)) in [
        ("alice", "Create function", "r/default/one"),
        ("bob", "Delete function", "r/default/one"),
        ("alice", "Delete function", "r/default/two_100%"),
    ]
    .into_iter()
    .enumerate()
    {
        b.one
            .append_audit(&entry(1_000 * (i as i64 + 1), actor, action, target))
            .await
            .unwrap();
    }
    let list = |f: AuditFilter| {
        let store = b.two.clone();
        async move {
            store
                .list_audit(&AuditFilter { limit: 10, ..f })
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.actor, e.target))
                .collect::<Vec<_>>()
        }
    };
    let all = list(AuditFilter::default()).await;
    assert_eq!(all[0].1, "r/default/two_100%", "newest first");
    assert_eq!(all.len(), 3);
    let alice = list(AuditFilter {
        actor: Some("alice".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(alice.len(), 2);
    let deletes = list(AuditFilter {
        action: Some("Delete function".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(deletes.len(), 2);
    // Text is matched as written: `_` and `%` are not wildcards.
    let text = list(AuditFilter {
        text: Some("0%".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(text.len(), 1);
    let recent = list(AuditFilter {
        since: Some(2_000),
        ..Default::default()
    })
    .await;
    assert_eq!(recent.len(), 2);
    assert_eq!(b.one.sweep_audit(2_500, 1).await.unwrap(), 1, "in batches");
    assert_eq!(b.one.sweep_audit(2_500, 10).await.unwrap(), 1);
    assert_eq!(list(AuditFilter::default()).await.len(), 1);
}

/// The note a terminate request of a running event leaves on its timeline.
fn requested() -> TimelineEntry {
    TimelineEntry {
        at: 21_000,
        status: EventStatus::Running,
        detail: "Termination requested by a test (forced).".into(),
    }
}

/// Deleting frees the name at once; the function's unended events end ABORTED with the entry
/// given, its ended ones stay as they were, a new event of it is refused, and the sweeper
/// removes it once its deletion is older than the cutoff.
async fn a_deleted_function_frees_its_name_and_keeps_its_events_ended(b: Backend) {
    let old = function(&b.one, "orders", 0).await;
    accept(&b.one, old, &["done", "running", "queued"], 1_000).await;
    let claimed = b
        .one
        .claim_events(1_000, &ClaimBudget::up_to(2), ME, 60_000)
        .await
        .unwrap();
    let done = claimed.iter().find(|c| c.request_id == "done").unwrap();
    b.one
        .apply_event_writes(&[EventWrite::Finish {
            event_id: done.id,
            run: lease(ME, 1),
            traced: true,
            status_code: 200,
            result: Some("1".into()),
            error: None,
            logs: None,
            entry: TimelineEntry {
                at: 1_500,
                status: EventStatus::Finished,
                detail: "done".into(),
            },
        }])
        .await
        .unwrap();
    let key = key("orders");
    let deleted = deleted(2_000);
    b.two.delete_function(&key, &deleted, 499).await.unwrap();
    assert!(matches!(
        b.one.delete_function(&key, &deleted, 499).await,
        Err(StoreError::NotFound)
    ));
    assert!(b.one.get_function(&key).await.unwrap().is_none());
    assert_eq!(
        b.one
            .get_deleted_function(&key)
            .await
            .unwrap()
            .map(|f| f.id),
        Some(old)
    );
    assert_eq!(status(&b.one, "done").await.0, EventStatus::Finished);
    for id in ["running", "queued"] {
        let e = b.one.get_event(id).await.unwrap().unwrap();
        assert_eq!(
            (e.status, e.status_code, e.ended_at),
            (EventStatus::Aborted, Some(499), Some(2_000)),
            "{id}"
        );
    }
    let late = b
        .two
        .apply_event_writes(&[insert(old, "late", 2_500)])
        .await;
    assert!(matches!(late, Err(StoreError::NotFound)), "{late:?}");

    let new = function(&b.two, "orders", 0).await;
    assert_ne!(new, old);
    assert_eq!(
        b.one.get_function(&key).await.unwrap().map(|f| f.id),
        Some(new)
    );
    assert_eq!(b.one.sweep_deleted_functions(2_000, 10).await.unwrap(), 0);
    assert_eq!(b.one.sweep_deleted_functions(2_001, 10).await.unwrap(), 1);
    assert!(b.one.get_deleted_function(&key).await.unwrap().is_none());
    assert!(b.one.get_event("done").await.unwrap().is_none());
    assert_eq!(
        b.one.get_function(&key).await.unwrap().map(|f| f.id),
        Some(new)
    );
    // Ids are never reused, even once a deleted function is removed for good: the engine
    // remembers deleted ids.
    b.one.delete_function(&key, &deleted, 499).await.unwrap();
    assert_eq!(b.one.sweep_deleted_functions(2_001, 10).await.unwrap(), 1);
    assert!(function(&b.two, "billing", 0).await > new);
}

/// A store made by the release before deleted functions were kept (migrations up to 0013)
/// opens with every function, event and timeline as it was, and its foreign keys intact.
#[tokio::test]
async fn a_store_of_the_previous_release_upgrades_with_nothing_lost() {
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;
    let dir = tempfile::tempdir().unwrap();
    let old_migrations = dir.path().join("migrations");
    std::fs::create_dir(&old_migrations).unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < "0014" {
            std::fs::copy(&path, old_migrations.join(&name)).unwrap();
        }
    }
    let db = dir.path().join("old.db");
    {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", db.display()))
            .unwrap()
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        sqlx::migrate::Migrator::new(old_migrations.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        for sql in [
            "INSERT INTO namespaces (region, name, created_at) VALUES ('ap-guangzhou', 'default', 1)",
            "INSERT INTO functions (id, region, namespace, name, runtime, handler, memory_size, \
             timeout, async_run_enable, trace_enable, retry_num, msg_ttl, created_at, modified_at, \
             reserved_mem) VALUES (7, 'ap-guangzhou', 'default', 'legacy', 'Python3.10', \
             'index.main_handler', 128, 3, 1, 1, 2, 3600, 1, 1, 256)",
            "INSERT INTO function_files (function_id, path, content) VALUES (7, 'index.py', x'00')",
            "INSERT INTO events (request_id, function_id, invoke_type, status, traced, payload, \
             enqueued_at, run_after, status_code, ended_at) \
             VALUES ('legacy-event', 7, 'API', 2, 1, '{}', 10, 10, 200, 20)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }

    let store = scf_console::store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let key = key("legacy");
    let f = store.get_function(&key).await.unwrap().unwrap();
    assert_eq!((f.id, f.reserved_mem, f.deleted_at), (7, Some(256), None));
    assert_eq!(store.get_code(7).await.unwrap().len(), 1);
    let e = store.get_event("legacy-event").await.unwrap().unwrap();
    assert_eq!((e.function_id, e.status), (7, EventStatus::Finished));
    // The events still refer to the rebuilt table: deleting it for good takes them along.
    store
        .delete_function(&key, &deleted(30), 499)
        .await
        .unwrap();
    assert_eq!(store.sweep_deleted_functions(31, 10).await.unwrap(), 1);
    assert!(store.get_event("legacy-event").await.unwrap().is_none());
    assert!(store.get_code(7).await.unwrap().is_empty());
}
