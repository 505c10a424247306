//! Several scf-console processes on one store: they share the queue, never run an event twice
//! at once, terminate each other's events, and take over the events of one that died.

use crate::engine::{event, function, invoke, shared_dir, until_ended, until_started};
use crate::server::Server;
use crate::support::api::*;
use crate::support::*;
use scf_console::domain::event::EventStatus;
use scf_console::engine::EngineConfig;
use scf_console::store::{DynStore, FunctionKey};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Nodes as these tests run them: a short lease, so a dead one is noticed quickly.
fn node(dir: &std::path::Path) -> EngineConfig {
    EngineConfig {
        workers: 12,
        per_function: 12,
        lease: Duration::from_secs(3),
        nodes_dir: Some(dir.join("nodes")),
        // Nodes of one store run a function as the same user, as servers started with the
        // same settings do (test consoles otherwise each get users of their own).
        uids: scf_console::engine::runtime::sandbox::UidRange {
            first: 290_000,
            count: 1_000,
        },
        ..test_engine()
    }
}

async fn steps(store: &DynStore, id: &str) -> Vec<String> {
    let e = store.get_event(id).await.unwrap().unwrap();
    store
        .event_timeline(e.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.detail)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_on_one_store_run_each_of_2000_events_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let a = TestApp::sharing(&db, node(dir.path())).await;
    a.add_key().await;
    let b = TestApp::sharing(&db, node(dir.path())).await;

    // Each run leaves proof of when it started and ended, outside the store.
    let proof = shared_dir();
    let log = proof.path().join("runs.log");
    // Every function runs as a user of its own: the proof file is open to all of them.
    std::fs::write(&log, "").unwrap();
    std::fs::set_permissions(&log, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let python = format!(
        "import time\n\
         def main_handler(event, context):\n    \
             with open({log:?}, 'a') as f: f.write('S %s %d\\n' % (context['request_id'], time.time_ns()))\n    \
             time.sleep(event['sleep'] / 1000)\n    \
             with open({log:?}, 'a') as f: f.write('E %s %d\\n' % (context['request_id'], time.time_ns()))\n    \
             return 'ok'\n"
    );
    let node_js = format!(
        "const fs = require('fs');\n\
         const now = () => (BigInt(Date.now()) * 1000000n).toString();\n\
         exports.main_handler = async (event, context) => {{\n  \
             fs.appendFileSync({log:?}, `S ${{context.request_id}} ${{now()}}\\n`);\n  \
             await new Promise((r) => setTimeout(r, event.sleep));\n  \
             fs.appendFileSync({log:?}, `E ${{context.request_id}} ${{now()}}\\n`);\n  \
             return 'ok';\n\
         }};\n"
    );
    let functions = [
        ("orders", "Python3.10", python.as_str()),
        ("invoices", "Python3.10", python.as_str()),
        ("mailer", "Nodejs18.15", node_js.as_str()),
    ];
    for (name, runtime, code) in functions {
        function(&a, name, runtime, code, json!({"Timeout": 30})).await;
    }

    // Both nodes accept: even invocations go to one, odd ones to the other.
    let mut accepted = Vec::new();
    for i in 0..2000usize {
        let (app, (name, _, _)) = (if i % 2 == 0 { &a } else { &b }, functions[i % 3]);
        let key = FunctionKey {
            region: REGION.into(),
            namespace: "default".into(),
            name: name.into(),
        };
        let f = app.state.store.get_function(&key).await.unwrap().unwrap();
        let payload = json!({"sleep": (i * 7919) % 501}).to_string();
        let id = app
            .state
            .engine
            .invoke_async(&f, payload, "API")
            .await
            .unwrap();
        accepted.push(id);
    }
    let ended = |app: &TestApp| app.state.metrics.ended_total();
    wait_for("every event to end", Duration::from_secs(180), || async {
        (ended(&a) + ended(&b) >= 2000).then_some(())
    })
    .await;
    // What the store says: each event ended once, in one run.
    for id in &accepted {
        let e = event(&a, id).await;
        assert_eq!(
            (e.status, e.status_code, e.attempt),
            (EventStatus::Finished, Some(200), 1),
            "{id}: {:?} {:?}",
            e.error,
            e.logs
        );
        let steps = steps(&a.state.store, id).await;
        let count = |prefix: &str| steps.iter().filter(|s| s.starts_with(prefix)).count();
        assert_eq!(count("Started on instance"), 1, "{steps:?}");
        assert_eq!(count("Finished"), 1, "{steps:?}");
    }
    let (ran_a, ran_b) = (
        a.state.metrics.ended_with("finished"),
        b.state.metrics.ended_with("finished"),
    );
    assert_eq!(ran_a + ran_b, 2000);
    assert!(
        ran_a > 200 && ran_b > 200,
        "both nodes work the queue: {ran_a} and {ran_b}"
    );

    // What the handlers saw: one run per event, which started once and ended once.
    let mut runs: HashMap<String, Vec<(char, u128)>> = HashMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let mut parts = line.split(' ');
        let (kind, id, at) = (parts.next(), parts.next(), parts.next());
        let kind = kind.unwrap().chars().next().unwrap();
        let at: u128 = at.unwrap().parse().unwrap();
        runs.entry(id.unwrap().to_string())
            .or_default()
            .push((kind, at));
    }
    assert_eq!(runs.len(), 2000);
    for (id, marks) in &runs {
        assert_eq!(marks.len(), 2, "{id} ran more than once: {marks:?}");
        let start = marks.iter().find(|m| m.0 == 'S').expect("started");
        let end = marks.iter().find(|m| m.0 == 'E').expect("ended");
        assert!(start.1 <= end.1, "{id}: {marks:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_is_terminated_from_the_node_that_does_not_run_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let runner = TestApp::sharing(&db, node(dir.path())).await;
    runner.add_key().await;
    // This node accepts and answers, but runs nothing: every event runs on the other one.
    let other = TestApp::sharing(
        &db,
        EngineConfig {
            workers: 0,
            ..node(dir.path())
        },
    )
    .await;
    function(
        &runner,
        "sleeper",
        "Python3.10",
        "import time\ndef main_handler(event, context):\n    time.sleep(120)\n",
        json!({"Timeout": 300}),
    )
    .await;
    let id = invoke(&other, "sleeper", json!({})).await;
    until_started(&runner, &id).await;

    let asked = Instant::now();
    other
        .api(
            "TerminateAsyncEvent",
            json!({"FunctionName": "sleeper", "InvokeRequestId": id}),
        )
        .await
        .ok();
    let ended = until_ended(&other, &id).await;
    assert_eq!(
        (ended.status, ended.status_code),
        (EventStatus::Aborted, Some(499))
    );
    // The runner's heartbeat (every second here) brings the request.
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    let steps = steps(&other.state.store, &id).await;
    assert!(
        steps
            .last()
            .unwrap()
            .starts_with("Terminated by a user (forced"),
        "{steps:?}"
    );
}

/// The server's own store, opened beside it as another process would.
async fn open(url: &str) -> DynStore {
    scf_console::store::open(url).await.unwrap()
}

fn long_function(server: &Server, seconds: u32) {
    let code = format!(
        "import time\ndef main_handler(event, context):\n    time.sleep({seconds})\n    return 'done'\n"
    );
    server.api(
        "CreateFunction",
        json!({"FunctionName": "long", "Runtime": "Python3.10", "AsyncRunEnable": "TRUE", "TraceEnable": "TRUE",
               "Timeout": 60, "Code": {"ZipFile": zip_base64(&[("index.py", &code)])}}),
    );
    server.api(
        "UpdateFunctionEventInvokeConfig",
        json!({"FunctionName": "long", "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 1}], "MsgTTL": 3600}}),
    );
}

fn invoke_on(server: &Server) -> String {
    let answer = server.api(
        "Invoke",
        json!({"FunctionName": "long", "InvocationType": "Event", "ClientContext": "{}"}),
    );
    answer["Result"]["FunctionRequestId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The event once it ended, as the store holds it.
async fn ended(store: &DynStore, id: &str) -> scf_console::store::EventRecord {
    wait_for(&format!("{id} to end"), Duration::from_secs(30), || async {
        let e = store.get_event(id).await.unwrap().unwrap();
        e.status.is_terminal().then_some(e)
    })
    .await
}

async fn until_all_started(store: &DynStore, ids: &[String]) {
    wait_for("the events to start", Duration::from_secs(30), || async {
        for id in ids {
            if !steps(store, id)
                .await
                .iter()
                .any(|s| s.starts_with("Started on instance"))
            {
                return None;
            }
        }
        Some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_process_events_are_taken_over_when_their_lease_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    // Separate data folders: the survivor cannot see the other's lock, only its leases.
    let shared = |c: &mut std::process::Command| {
        c.env("DATABASE_URL", &url).env("SCF_LEASE", "3s");
    };
    let mut first = Server::start_with(&dir.path().join("one"), shared);
    long_function(&first, 4);
    let ids: Vec<String> = (0..3).map(|_| invoke_on(&first)).collect();
    let store = open(&url).await;
    until_all_started(&store, &ids).await;
    let _second = Server::start_with(&dir.path().join("two"), shared);

    first.child.kill().unwrap(); // SIGKILL: no shutdown, no last renewal
    first.child.wait().unwrap();
    let killed = Instant::now();
    let reason = "Requeued for attempt 2: the server running it stopped renewing its lease.";
    wait_for(
        "the events to be taken over",
        Duration::from_secs(15),
        || async {
            for id in &ids {
                if !steps(&store, id).await.iter().any(|s| s == reason) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    // Within the lease (3 s) and one heartbeat (1 s), with a little room for a busy machine.
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(6), "taken over after {took:?}");

    for id in &ids {
        let e = ended(&store, id).await;
        let steps = steps(&store, id).await;
        assert_eq!(
            (e.status, e.attempt),
            (EventStatus::Finished, 2),
            "{steps:?}"
        );
        let started = steps.iter().filter(|s| s.starts_with("Started")).count();
        let ended = steps.iter().filter(|s| s.starts_with("Finished")).count();
        assert_eq!((started, ended), (2, 1), "{steps:?}");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_runs_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let old = Server::start(&data);
    long_function(&old, 3);
    let ids: Vec<String> = (0..3).map(|_| invoke_on(&old)).collect();
    let url = format!("sqlite://{}", data.join("scf-console.db").display());
    let store = open(&url).await;
    until_all_started(&store, &ids).await;

    // The new process starts on the same data folder while the old one still runs events,
    // then the old one is asked to stop and finishes them.
    let new = Server::start(&data);
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &old.child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    for id in &ids {
        let e = ended(&store, id).await;
        let steps = steps(&store, id).await;
        assert_eq!(
            (e.status, e.attempt),
            (EventStatus::Finished, 1),
            "ran once, on the old process: {steps:?}"
        );
        assert_eq!(
            steps.iter().filter(|s| s.starts_with("Started")).count(),
            1,
            "{steps:?}"
        );
    }
    // The new process carries on alone.
    let next = invoke_on(&new);
    let e = ended(&store, &next).await;
    assert_eq!(e.status, EventStatus::Finished);
    store.close().await;
}

/// A process serves a function's settings from memory for a moment, so accepts read nothing
/// from the store: its own changes apply at once, another process's within a second. Status
/// trace turned off on one node stops the other recording within that second.
#[tokio::test(flavor = "multi_thread")]
async fn a_change_made_on_another_node_applies_here_within_a_second() {
    let (_dir, a, b) = two_nodes_with_a_traced_function().await;
    // B has looked the function up: it now serves it from memory.
    let first = invoke_cached(&b).await;
    assert!(
        b.state
            .store
            .get_event(&first)
            .await
            .unwrap()
            .unwrap()
            .traced
    );

    a.api(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "cached", "TraceEnable": "FALSE"}),
    )
    .await
    .ok();
    // On A, at once.
    let on_a = invoke_cached(&a).await;
    assert!(
        !a.state
            .store
            .get_event(&on_a)
            .await
            .unwrap()
            .unwrap()
            .traced
    );
    // On B, within the second the cache keeps it.
    let changed = Instant::now();
    wait_for(
        "B to see trace turned off",
        Duration::from_secs(3),
        || async {
            let id = invoke_cached(&b).await;
            (!b.state.store.get_event(&id).await.unwrap().unwrap().traced).then_some(())
        },
    )
    .await;
    // A second of the cache, and the time of one invocation (a debug build on a busy machine).
    assert!(
        changed.elapsed() < Duration::from_secs(2),
        "{:?}",
        changed.elapsed()
    );
}

async fn invoke_cached(app: &TestApp) -> String {
    app.api(
        "Invoke",
        json!({"FunctionName": "cached", "InvocationType": "Event", "ClientContext": "{}"}),
    )
    .await
    .ok()["Result"]["FunctionRequestId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A function deleted on one node is gone on the other at once for new async events, even
/// while the other still holds it in memory: the store refuses the event, and the caller hears
/// that the function does not exist, as a moment later.
#[tokio::test(flavor = "multi_thread")]
async fn an_invocation_on_another_node_of_a_function_deleted_meanwhile_is_refused_as_not_found() {
    let (_dir, a, b) = two_nodes_with_a_traced_function().await;
    let first = invoke_cached(&b).await;
    let function_id = b
        .state
        .store
        .get_event(&first)
        .await
        .unwrap()
        .unwrap()
        .function_id;

    a.api("DeleteFunction", json!({"FunctionName": "cached"}))
        .await
        .ok();
    let late = b
        .api(
            "Invoke",
            json!({"FunctionName": "cached", "InvocationType": "Event", "ClientContext": "{}"}),
        )
        .await;
    assert_eq!(late.error_code(), "ResourceNotFound.Function");
    assert_eq!(
        b.state.store.count_events(function_id).await.unwrap(),
        1,
        "nothing was recorded for it"
    );
}

/// Two nodes on one store, and a traced async function `cached` made on the first.
async fn two_nodes_with_a_traced_function() -> (tempfile::TempDir, TestApp, TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let a = TestApp::sharing(&db, node(dir.path())).await;
    a.add_key().await;
    let b = TestApp::sharing(&db, node(dir.path())).await;
    a.create_function(
        "default",
        "cached",
        &[("AsyncRunEnable", "TRUE"), ("TraceEnable", "TRUE")],
    )
    .await;
    (dir, a, b)
}
