//! Async execution with status trace, on real Python and Node.js processes: events are accepted,
//! run, fail, time out, are terminated, retried, expire, and are refused before anything is
//! written.

use crate::support::api::*;
use crate::support::*;
use scf_console::domain::event::EventStatus;
use scf_console::domain::template::FunctionTemplate;
use scf_console::engine::EngineConfig;
use scf_console::store::EventRecord;
use serde_json::{Value, json};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

/// Creates a function through the API with one code file; async execution and status trace
/// on unless `extra` says otherwise.
pub(crate) async fn function(app: &TestApp, name: &str, runtime: &str, code: &str, extra: Value) {
    let file = if runtime.starts_with("Nodejs") {
        "index.js"
    } else {
        "index.py"
    };
    let mut params = json!({
        "FunctionName": name,
        "Runtime": runtime,
        "Handler": "index.main_handler",
        "AsyncRunEnable": "TRUE",
        "TraceEnable": "TRUE",
        "Code": {"ZipFile": zip_base64(&[(file, code)])},
    });
    for (k, v) in extra.as_object().unwrap() {
        params[k] = v.clone();
    }
    app.api("CreateFunction", params).await.ok();
}

pub(crate) async fn invoke(app: &TestApp, name: &str, event: Value) -> String {
    let answer = app
        .api(
            "Invoke",
            json!({"FunctionName": name, "InvocationType": "Event", "ClientContext": event.to_string()}),
        )
        .await;
    answer.ok()["Result"]["FunctionRequestId"]
        .as_str()
        .unwrap()
        .to_string()
}

pub(crate) async fn event(app: &TestApp, id: &str) -> EventRecord {
    app.state
        .store
        .get_event(id)
        .await
        .unwrap()
        .expect("the event is recorded")
}

pub(crate) async fn until_status(app: &TestApp, id: &str, status: EventStatus) -> EventRecord {
    wait_for(&format!("{id} to be {status:?}"), LIMIT, || async {
        let e = event(app, id).await;
        (e.status == status).then_some(e)
    })
    .await
}

pub(crate) async fn until_ended(app: &TestApp, id: &str) -> EventRecord {
    wait_for(&format!("{id} to end"), LIMIT, || async {
        let e = event(app, id).await;
        e.status.is_terminal().then_some(e)
    })
    .await
}

/// Waits for the event to end, and checks it finished in its first attempt with one end on
/// its timeline.
pub(crate) async fn finished_once(app: &TestApp, id: &str) -> EventRecord {
    let e = until_ended(app, id).await;
    assert_eq!((e.status, e.attempt), (EventStatus::Finished, 1), "{id}");
    let steps = timeline(app, id).await;
    let ends = steps
        .iter()
        .filter(|t| t.contains("Finished (200)"))
        .count();
    assert_eq!(ends, 1, "one end for {id}: {steps:?}");
    e
}

/// Running on an instance, not just claimed.
pub(crate) async fn until_started(app: &TestApp, id: &str) {
    wait_for(&format!("{id} to start"), LIMIT, || async {
        let e = event(app, id).await;
        let timeline = app.state.store.event_timeline(e.id).await.unwrap();
        timeline
            .iter()
            .any(|t| t.detail.starts_with("Started on instance"))
            .then_some(())
    })
    .await
}

pub(crate) async fn timeline(app: &TestApp, id: &str) -> Vec<String> {
    let e = event(app, id).await;
    app.state
        .store
        .event_timeline(e.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| format!("{}: {}", t.status.label(), t.detail))
        .collect()
}

async fn app() -> TestApp {
    let app = TestApp::new().await;
    app.add_key().await;
    app
}

/// A folder the sandboxed handler may write to, for handlers to leave proof they ran.
///
/// Outside `/tmp`, `/var/tmp` and `/dev/shm`: an instance has those of its own, so what a
/// handler wrote there would be gone with it.
pub(crate) fn shared_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    // Not root, instances have no private folders, and /run may not be writable.
    let base = std::path::PathBuf::from("/run/scf-console-tests");
    let base = match std::fs::create_dir_all(&base) {
        Ok(()) => base,
        Err(_) => std::env::temp_dir(),
    };
    let dir = tempfile::Builder::new()
        .prefix("scf-shared-")
        .tempdir_in(base)
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

const CONTEXT_HANDLER: &str = r#"
import os
def main_handler(event, context):
    print("processing", event["order"])
    return {
        "order": event["order"],
        "request_id": context["request_id"],
        "function_name": context["function_name"],
        "namespace": context["namespace"],
        "memory": context["memory_limit_in_mb"],
        "time_limit": context["time_limit_in_ms"],
        "version": context["function_version"],
    }
"#;

#[tokio::test]
async fn a_python_event_runs_to_finished_with_result_logs_and_timeline() {
    let app = app().await;
    function(
        &app,
        "orders",
        "Python3.10",
        CONTEXT_HANDLER,
        json!({"MemorySize": 256, "Timeout": 30}),
    )
    .await;
    let id = invoke(&app, "orders", json!({"order": 42})).await;
    let done = until_status(&app, &id, EventStatus::Finished).await;
    assert_eq!(done.status_code, Some(200));
    assert_eq!(done.attempt, 1);
    let result: Value = serde_json::from_str(done.result.as_deref().unwrap()).unwrap();
    assert_eq!(
        result,
        json!({"order": 42, "request_id": id, "function_name": "orders", "namespace": "default",
               "memory": 256, "time_limit": 30000, "version": "$LATEST"})
    );
    assert_eq!(done.logs.as_deref(), Some("processing 42"));
    assert_eq!(done.invoke_type, "API");
    let steps = timeline(&app, &id).await;
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert!(
        steps[0].starts_with("Queued: Queued (invoked by API, API key AKID"),
        "{steps:?}"
    );
    assert!(
        steps[1].contains("Started on instance i-") && steps[1].contains("cold start"),
        "{steps:?}"
    );
    assert!(
        steps[2].starts_with("Invocation completed: Finished (200)"),
        "{steps:?}"
    );

    // The instance stays warm for the next event.
    let second = invoke(&app, "orders", json!({"order": 43})).await;
    until_status(&app, &second, EventStatus::Finished).await;
    let steps2 = timeline(&app, &second).await;
    assert!(steps2[1].contains("(warm)"), "{steps2:?}");
    let instance = |s: &str| {
        s.split_whitespace()
            .find(|w| w.starts_with("i-"))
            .unwrap()
            .to_string()
    };
    assert_eq!(instance(&steps[1]), instance(&steps2[1]));

    let status = app
        .api("GetAsyncEventStatus", json!({"InvokeRequestId": id}))
        .await;
    assert_eq!(
        status.ok()["Result"],
        json!({"Status": "FINISHED", "StatusCode": 200, "InvokeRequestId": id})
    );
}

#[tokio::test]
async fn node_handlers_run_async_and_with_callbacks() {
    let app = app().await;
    function(
        &app,
        "node-async",
        "Nodejs18.15",
        "exports.main_handler = async (event, context) => { console.log('doubling', event.n); return { n: event.n * 2, fn: context.function_name }; };",
        json!({}),
    )
    .await;
    function(
        &app,
        "node-callback",
        "Nodejs18.15",
        "exports.main_handler = (event, context, callback) => { setTimeout(() => callback(null, 'done ' + event.n), 10); };",
        json!({}),
    )
    .await;
    let a = invoke(&app, "node-async", json!({"n": 21})).await;
    let b = invoke(&app, "node-callback", json!({"n": 7})).await;
    let a = until_status(&app, &a, EventStatus::Finished).await;
    assert_eq!(a.result.as_deref(), Some(r#"{"fn":"node-async","n":42}"#));
    assert_eq!(a.logs.as_deref(), Some("doubling 21"));
    let b = until_status(&app, &b, EventStatus::Finished).await;
    // A string comes back as JSON, as SCF serializes return values.
    assert_eq!(b.result.as_deref(), Some(r#""done 7""#));

    // A thrown error's stack shows the user's file where SCF keeps it, not the platform's.
    function(
        &app,
        "node-thrower",
        "Nodejs18.15",
        "function check(n) { throw new Error('bad n ' + n); }\nexports.main_handler = async (event) => check(event.n);\n",
        json!({}),
    )
    .await;
    let c = invoke(&app, "node-thrower", json!({"n": 3})).await;
    let c = until_status(&app, &c, EventStatus::Failed).await;
    let error = c.error.unwrap();
    assert!(error.contains("bad n 3"), "{error}");
    assert!(error.contains("(/var/user/index.js:1:"), "{error}");
    assert!(
        !error.contains("bootstrap") && !error.contains("scf-console-"),
        "{error}"
    );
}

#[tokio::test]
async fn the_wizard_templates_run_as_they_are() {
    let app = app().await;
    for (template, event, expect) in [
        (
            "python-hello-world",
            json!({"key1": "value1"}),
            EventStatus::Finished,
        ),
        (
            "nodejs-hello-world",
            json!({"key1": "value1"}),
            EventStatus::Finished,
        ),
        (
            "python-long-running-task",
            json!({"steps": 2, "interval": 0.05}),
            EventStatus::Finished,
        ),
        (
            "nodejs-long-running-task",
            json!({"steps": 2, "interval": 0.05}),
            EventStatus::Finished,
        ),
        (
            "python-error",
            json!({"order": {"id": "A-1"}}),
            EventStatus::Failed,
        ),
    ] {
        let t = FunctionTemplate::by_id(template).unwrap();
        let runtime = if t.language == scf_console::domain::runtime::Language::Python {
            "Python3.10"
        } else {
            "Nodejs18.15"
        };
        function(
            &app,
            t.function_name,
            runtime,
            t.code,
            json!({"Timeout": t.timeout}),
        )
        .await;
        let id = invoke(&app, t.function_name, event).await;
        let e = until_ended(&app, &id).await;
        assert_eq!(e.status, expect, "{template}: {:?} {:?}", e.error, e.logs);
        if template == "python-long-running-task" {
            assert_eq!(
                e.logs
                    .as_deref()
                    .unwrap()
                    .lines()
                    .filter(|l| l.starts_with("Step "))
                    .count(),
                2
            );
            assert!(e.logs.as_deref().unwrap().contains("Task complete"));
        }
        if template == "python-error" {
            let error = e.error.unwrap();
            assert!(
                error.starts_with("OrderValidationError: order has no amount"),
                "{error}"
            );
            assert!(
                error.contains("Traceback") && error.contains("in validate"),
                "{error}"
            );
            assert_eq!(e.status_code, Some(430));
        }
    }
}

#[tokio::test]
async fn a_raising_handler_fails_with_its_error_and_stack_trace() {
    let app = app().await;
    let code = "def check(x):\n    raise ValueError('bad input %r' % x)\n\ndef main_handler(event, context):\n    print('checking')\n    check(event.get('x'))\n";
    function(&app, "raiser", "Python3.10", code, json!({})).await;
    let id = invoke(&app, "raiser", json!({"x": 5})).await;
    let e = until_status(&app, &id, EventStatus::Failed).await;
    assert_eq!(e.status_code, Some(430));
    let error = e.error.unwrap();
    assert!(error.starts_with("ValueError: bad input 5"), "{error}");
    assert!(error.contains("line 2, in check"), "{error}");
    // The user's file where SCF keeps it; none of the platform's frames or folders.
    assert!(
        error.contains("File \"/var/user/index.py\", line 2, in check"),
        "{error}"
    );
    assert!(
        !error.contains("bootstrap") && !error.contains("scf-console-"),
        "{error}"
    );
    let logs = e.logs.unwrap();
    assert!(logs.starts_with("checking"), "{logs}");
    assert!(logs.contains("Traceback (most recent call last)"), "{logs}");
    assert!(
        timeline(&app, &id)
            .await
            .last()
            .unwrap()
            .contains("Failed (430): ValueError: bad input 5")
    );
    let status = app
        .api("GetAsyncEventStatus", json!({"InvokeRequestId": id}))
        .await;
    assert_eq!(status.ok()["Result"]["Status"], "FAILED");
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group_with_433() {
    let app = app().await;
    let shared = shared_dir();
    let lock = shared.path().join("child.lock");
    // The child holds a lock on the file for as long as it lives.
    let code = format!(
        "import fcntl, subprocess, time\ndef main_handler(event, context):\n    f = open('{}', 'w')\n    fcntl.flock(f, fcntl.LOCK_EX)\n    subprocess.Popen(['sleep', '300'], pass_fds=(f.fileno(),))\n    print('waiting forever')\n    time.sleep(300)\n",
        lock.display()
    );
    function(&app, "sleeper", "Python3.10", &code, json!({"Timeout": 1})).await;
    let id = invoke(&app, "sleeper", json!({})).await;
    let e = until_status(&app, &id, EventStatus::Failed).await;
    assert_eq!(e.status_code, Some(433));
    assert_eq!(
        e.error.as_deref(),
        Some("Invoking task timed out after 1 seconds")
    );
    assert!(e.logs.unwrap_or_default().contains("waiting forever"));
    wait_for(
        "the handler's child process to be killed",
        LIMIT,
        || async { (!still_locked(&lock)).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_process_that_exits_while_running_fails_with_439() {
    let app = app().await;
    let code = "import os\ndef main_handler(event, context):\n    print('bye')\n    os._exit(3)\n";
    function(&app, "quitter", "Python3.10", code, json!({})).await;
    let id = invoke(&app, "quitter", json!({})).await;
    let e = until_status(&app, &id, EventStatus::Failed).await;
    assert_eq!(e.status_code, Some(439));
    assert!(
        e.error.as_deref().unwrap().contains("exited with code 3"),
        "{:?}",
        e.error
    );
    assert_eq!(e.logs.as_deref(), Some("bye"));
}

const LONG_HANDLER: &str = "import signal, sys, time\n\ndef on_term(signum, frame):\n    print('cleaning up before stopping', flush=True)\n    sys.exit(0)\n\ndef main_handler(event, context):\n    signal.signal(signal.SIGTERM, on_term)\n    print('working', flush=True)\n    time.sleep(60)\n    return 'too late'\n";

#[tokio::test]
async fn terminating_a_running_event_forced_and_graceful() {
    let app = app().await;
    function(
        &app,
        "long",
        "Python3.10",
        LONG_HANDLER,
        json!({"Timeout": 120}),
    )
    .await;

    let (forced, e) = terminated_once_running(&app, "long", false).await;
    assert_eq!(e.status_code, Some(499));
    assert!(
        timeline(&app, &forced)
            .await
            .last()
            .unwrap()
            .contains("forced")
    );

    let (graceful, e) = terminated_once_running(&app, "long", true).await;
    assert_eq!(e.status_code, Some(499));
    let logs = e.logs.unwrap();
    assert!(
        logs.contains("[PLATFORM] Signal received successfully."),
        "{logs}"
    );
    assert!(logs.contains("cleaning up before stopping"), "{logs}");

    // A handler that ignores SIGTERM is killed when the grace period ends: SCF's 439.
    function(
        &app,
        "stubborn",
        "Python3.10",
        "import signal, time\ndef main_handler(event, context):\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n    print('ignoring', flush=True)\n    time.sleep(60)\n",
        json!({"Timeout": 120}),
    )
    .await;
    let (_, e) = terminated_once_running(&app, "stubborn", true).await;
    assert_eq!(e.status_code, Some(439));
    assert!(
        e.error
            .unwrap()
            .contains("did not stop within the grace period"),
        "said why"
    );

    // Ended events cannot be terminated.
    let again = app
        .api(
            "TerminateAsyncEvent",
            json!({"FunctionName": "long", "InvokeRequestId": graceful}),
        )
        .await;
    assert_eq!(again.error_code(), "FailedOperation.AsyncEventStatus");
    let unknown = app
        .api(
            "TerminateAsyncEvent",
            json!({"FunctionName": "long", "InvokeRequestId": "00000000-0000-0000-0000-000000000000"}),
        )
        .await;
    assert_eq!(unknown.error_code(), "ResourceNotFound.AsyncEvent");
    let status = app
        .api("GetAsyncEventStatus", json!({"InvokeRequestId": forced}))
        .await;
    assert_eq!(
        status.ok()["Result"],
        json!({"Status": "ABORTED", "StatusCode": 499, "InvokeRequestId": forced})
    );
}

fn one_worker() -> EngineConfig {
    EngineConfig {
        workers: 1,
        per_function: 1,
        ..test_engine()
    }
}

/// A console with one worker and a function `long` whose events run until terminated.
async fn one_worker_running_long() -> TestApp {
    let app = TestApp::with_engine(one_worker()).await;
    app.add_key().await;
    function(
        &app,
        "long",
        "Python3.10",
        LONG_HANDLER,
        json!({"Timeout": 120}),
    )
    .await;
    app
}

#[tokio::test]
async fn a_queued_event_is_terminated_before_it_starts() {
    let app = one_worker_running_long().await;
    let first = invoke(&app, "long", json!({})).await;
    until_started(&app, &first).await;
    let second = invoke(&app, "long", json!({})).await;
    assert_eq!(event(&app, &second).await.status, EventStatus::Queued);
    let status = app
        .api("GetAsyncEventStatus", json!({"InvokeRequestId": second}))
        .await;
    assert_eq!(
        status.ok()["Result"]["Status"],
        "RUNNING",
        "SCF shows queued events as RUNNING"
    );

    app.api(
        "TerminateAsyncEvent",
        json!({"FunctionName": "long", "InvokeRequestId": second}),
    )
    .await
    .ok();
    let e = event(&app, &second).await;
    assert_eq!(
        (e.status, e.status_code),
        (EventStatus::Aborted, Some(499)),
        "at once"
    );
    assert!(
        timeline(&app, &second)
            .await
            .last()
            .unwrap()
            .contains("before it started")
    );
    app.api(
        "TerminateAsyncEvent",
        json!({"FunctionName": "long", "InvokeRequestId": first}),
    )
    .await
    .ok();
    until_status(&app, &first, EventStatus::Aborted).await;
}

/// Runs known to be fast let the engine claim events ahead of its one worker. When the next
/// run turns out long, the events claimed behind it do not wait for it as RUNNING: they go
/// back to the queue, saying so on their timeline, and run once it ends, in their first
/// attempt.
#[tokio::test(flavor = "multi_thread")]
async fn events_claimed_ahead_of_a_long_run_go_back_to_the_queue() {
    let app = TestApp::with_engine(EngineConfig {
        claim_ahead: Duration::from_secs(5),
        ..one_worker()
    })
    .await;
    app.add_key().await;
    function(
        &app,
        "mixed",
        "Python3.10",
        "import time\ndef main_handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return 'ok'\n",
        json!({"Timeout": 60}),
    )
    .await;
    for i in 0..5 {
        let id = invoke(&app, "mixed", json!({ "warm": i })).await;
        until_ended(&app, &id).await;
    }
    let long = invoke(&app, "mixed", json!({"sleep": 4})).await;
    until_started(&app, &long).await;
    let mut quick = Vec::new();
    for i in 0..3 {
        quick.push(invoke(&app, "mixed", json!({ "n": i })).await);
    }
    let given_back = |steps: &[String]| {
        steps
            .iter()
            .any(|s| s.contains("Put back in the queue before it started"))
    };
    wait_for("the quick events to be given back", LIMIT, || async {
        for id in &quick {
            if !given_back(&timeline(&app, id).await) {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert_eq!(event(&app, &long).await.status, EventStatus::Running);
    for id in &quick {
        assert_eq!(event(&app, id).await.status, EventStatus::Queued);
    }

    let e = until_ended(&app, &long).await;
    assert_eq!(e.status, EventStatus::Finished);
    for id in &quick {
        finished_once(&app, id).await;
    }
}

/// A caller of a synchronous invocation that gives up while it waits for a worker (its client
/// hung up) leaves no claim on a worker behind: queued events still get every worker.
#[tokio::test]
async fn a_synchronous_call_given_up_while_waiting_keeps_no_worker() {
    let app = one_worker_running_long().await;
    function(
        &app,
        "sync-fn",
        "Python3.10",
        "def main_handler(event, context):\n    return 'ok'\n",
        json!({"AsyncRunEnable": "FALSE", "TraceEnable": "FALSE"}),
    )
    .await;
    let first = invoke(&app, "long", json!({})).await;
    until_started(&app, &first).await;
    // The only worker runs `first`: the call waits, and its caller stops waiting.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(500),
        app.api("Invoke", json!({"FunctionName": "sync-fn"})),
    )
    .await;
    assert!(gave_up.is_err(), "the call waited for the busy worker");
    let second = invoke(&app, "long", json!({})).await;
    app.api(
        "TerminateAsyncEvent",
        json!({"FunctionName": "long", "InvokeRequestId": first}),
    )
    .await
    .ok();
    until_started(&app, &second).await;
    app.api(
        "TerminateAsyncEvent",
        json!({"FunctionName": "long", "InvokeRequestId": second}),
    )
    .await
    .ok();
    until_status(&app, &second, EventStatus::Aborted).await;
}

#[tokio::test]
async fn failed_events_are_retried_as_retry_num_says_with_backoff() {
    let app = app().await;
    let shared = shared_dir();
    // Fails on the first attempt, succeeds on the second.
    let flaky = format!(
        "import os\ndef main_handler(event, context):\n    mark = '{}/tried'\n    if not os.path.exists(mark):\n        open(mark, 'w').write('1')\n        raise RuntimeError('first attempt fails')\n    return 'second attempt works'\n",
        shared.path().display()
    );
    function(&app, "flaky", "Python3.10", &flaky, json!({})).await;
    function(
        &app,
        "broken",
        "Python3.10",
        "def main_handler(event, context):\n    raise RuntimeError('always')\n",
        json!({}),
    )
    .await;
    for name in ["flaky", "broken"] {
        app.api(
            "UpdateFunctionEventInvokeConfig",
            json!({"FunctionName": name, "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 1}], "MsgTTL": 600}}),
        )
        .await
        .ok();
    }
    let flaky_id = invoke(&app, "flaky", json!({})).await;
    let broken_id = invoke(&app, "broken", json!({})).await;
    for id in [&flaky_id, &broken_id] {
        wait_for("the retry to be queued", LIMIT, || async {
            let e = event(&app, id).await;
            (e.status == EventStatus::Queued && e.attempt == 2).then_some(())
        })
        .await;
    }
    assert!(
        timeline(&app, &flaky_id)
            .await
            .last()
            .unwrap()
            .contains("Retrying in 1 s (attempt 2 of 2)")
    );
    // The retry waits for its backoff on the engine's clock.
    app.state.clock.advance(Duration::from_millis(1500));
    app.state.engine.wake();
    let ok = until_status(&app, &flaky_id, EventStatus::Finished).await;
    assert_eq!(
        (ok.attempt, ok.result.as_deref()),
        (2, Some(r#""second attempt works""#))
    );
    let failed = until_status(&app, &broken_id, EventStatus::Failed).await;
    assert_eq!(failed.attempt, 2, "RetryNum 1: two attempts in all");
    assert!(failed.error.unwrap().contains("RuntimeError: always"));
}

#[tokio::test]
async fn an_event_that_waits_longer_than_msg_ttl_expires() {
    let app = one_worker_running_long().await;
    app.api(
        "UpdateFunctionEventInvokeConfig",
        json!({"FunctionName": "long", "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 0}], "MsgTTL": 60}}),
    )
    .await
    .ok();
    let blocker = invoke(&app, "long", json!({})).await;
    until_started(&app, &blocker).await;
    let waiting = invoke(&app, "long", json!({})).await;
    app.state.clock.advance(Duration::from_secs(61));
    app.api(
        "TerminateAsyncEvent",
        json!({"FunctionName": "long", "InvokeRequestId": blocker}),
    )
    .await
    .ok();
    let e = until_status(&app, &waiting, EventStatus::Failed).await;
    assert_eq!(e.status_code, Some(410));
    assert!(e.error.unwrap().contains("longer than MsgTTL (60 s)"));
}

#[tokio::test]
async fn refused_invocations_leave_no_event_record() {
    let app = app().await;
    function(
        &app,
        "guarded",
        "Python3.10",
        "def main_handler(e, c):\n    return 1\n",
        json!({}),
    )
    .await;
    let f = app
        .state
        .store
        .get_function(&scf_console::store::FunctionKey {
            region: REGION.into(),
            namespace: "default".into(),
            name: "guarded".into(),
        })
        .await
        .unwrap()
        .unwrap();
    let count = || async { app.state.store.count_events(f.id).await.unwrap() };

    // The QPS limit, set in the console: two calls pass in the same second, the third is refused.
    let mut form = vec![
        ("Description", ""),
        ("MemorySize", "128"),
        ("Timeout", "3"),
        ("AsyncRunEnable", "TRUE"),
        ("TraceEnable", "TRUE"),
        ("RetryNum", "0"),
        ("MsgTTL", "21600"),
        ("QpsLimit", "2"),
    ];
    let saved = app
        .post(&function_url("default", "guarded", "config"), &form)
        .await;
    assert_eq!(saved.status.as_u16(), 303, "{:?}", saved.errors());
    invoke(&app, "guarded", json!({})).await;
    invoke(&app, "guarded", json!({})).await;
    let refused = app
        .api(
            "Invoke",
            json!({"FunctionName": "guarded", "InvocationType": "Event"}),
        )
        .await;
    assert_eq!(refused.error_code(), "RequestLimitExceeded");
    assert_eq!(count().await, 2);
    app.state.clock.advance(Duration::from_secs(1));
    invoke(&app, "guarded", json!({})).await;
    assert_eq!(count().await, 3);
    form.retain(|(k, _)| *k != "QpsLimit");
    app.post(&function_url("default", "guarded", "config"), &form)
        .await;

    // Payloads: too large for async, or not JSON.
    let big = json!({"blob": "x".repeat(130 * 1024)}).to_string();
    let too_big = app
        .api(
            "Invoke",
            json!({"FunctionName": "guarded", "InvocationType": "Event", "ClientContext": big}),
        )
        .await;
    assert_eq!(too_big.error_code(), "InvalidParameter");
    let not_json = app
        .api(
            "Invoke",
            json!({"FunctionName": "guarded", "ClientContext": "{oops"}),
        )
        .await;
    assert_eq!(not_json.error_code(), "InvalidParameterValue.Param");
    let not_object = app
        .api(
            "Invoke",
            json!({"FunctionName": "guarded", "ClientContext": "[1, 2]"}),
        )
        .await;
    assert_eq!(not_object.error_code(), "InvalidParameterValue.Param");
    assert!(not_object.error_message().contains("not an array"));

    // A suspended namespace, then one whose quota is used up, is in arrears.
    let settings = format!("/scf/{REGION}/default/namespaces/default/settings");
    app.post(&settings, &[("Suspended", "TRUE"), ("InvocationQuota", "")])
        .await;
    let arrears = app
        .api(
            "Invoke",
            json!({"FunctionName": "guarded", "InvocationType": "Event"}),
        )
        .await;
    assert_eq!(
        arrears.error_code(),
        "ResourceUnavailable.InsufficientBalance"
    );
    assert!(arrears.error_message().contains("suspended"));
    // Said on every page of the namespace before anyone invokes.
    let list = app.get(&functions_url("default")).await;
    assert!(
        list.text(".banner-error")
            .contains("Namespace default is suspended: its invocations are refused"),
        "{}",
        list.text(".banner-error")
    );
    app.post(&settings, &[("InvocationQuota", "3")]).await;
    let quota = app
        .api(
            "Invoke",
            json!({"FunctionName": "guarded", "InvocationType": "Event"}),
        )
        .await;
    assert_eq!(
        quota.error_code(),
        "ResourceUnavailable.InsufficientBalance"
    );
    assert!(quota.error_message().contains("quota"));
    let page = app.get(&settings).await;
    assert!(page.text(".hint").contains("Used so far: 3"));
    let test_tab = app.get(&function_url("default", "guarded", "test")).await;
    assert!(
        test_tab
            .text(".banner-error")
            .contains("has used its invocation quota (3)")
    );

    assert_eq!(count().await, 3, "no refused call wrote an event");
    app.post(&settings, &[("InvocationQuota", "")]).await;
    assert_eq!(
        app.get(&functions_url("default"))
            .await
            .count(".banner-error"),
        0
    );
    invoke(&app, "guarded", json!({})).await;
    assert_eq!(count().await, 4);
}

#[tokio::test]
async fn with_status_trace_off_events_run_but_nothing_is_recorded() {
    let app = app().await;
    let shared = shared_dir();
    let code = format!(
        "def main_handler(event, context):\n    open('{}/ran-' + context['request_id'], 'w').write('yes')\n    return 'ran'\n",
        shared.path().display()
    );
    function(
        &app,
        "untraced",
        "Python3.10",
        &code,
        json!({"TraceEnable": "FALSE"}),
    )
    .await;
    let id = invoke(&app, "untraced", json!({})).await;
    wait_for("the untraced event to run", LIMIT, || async {
        shared
            .path()
            .join(format!("ran-{id}"))
            .exists()
            .then_some(())
    })
    .await;
    let f = app
        .state
        .store
        .get_function(&scf_console::store::FunctionKey {
            region: REGION.into(),
            namespace: "default".into(),
            name: "untraced".into(),
        })
        .await
        .unwrap()
        .unwrap();
    wait_for("its queue entry to go", LIMIT, || async {
        (app.state.store.count_events(f.id).await.unwrap() == 0).then_some(())
    })
    .await;
    let status = app
        .api("GetAsyncEventStatus", json!({"InvokeRequestId": id}))
        .await;
    assert_eq!(status.error_code(), "ResourceNotFound.AsyncEvent");
    // An event recorded while trace was on is not queried once it is off.
    let traced = {
        app.api(
            "UpdateFunctionConfiguration",
            json!({"FunctionName": "untraced", "TraceEnable": "TRUE"}),
        )
        .await
        .ok();
        let id = invoke(&app, "untraced", json!({})).await;
        until_status(&app, &id, EventStatus::Finished).await;
        app.api(
            "UpdateFunctionConfiguration",
            json!({"FunctionName": "untraced", "TraceEnable": "FALSE"}),
        )
        .await
        .ok();
        id
    };
    let status = app
        .api("GetAsyncEventStatus", json!({"InvokeRequestId": traced}))
        .await;
    assert_eq!(status.error_code(), "FailedOperation.AsyncEventStatus");
    assert!(status.error_message().contains("Status trace is off"));
    let page = app
        .get(&format!(
            "{}/{traced}",
            function_url("default", "untraced", "events")
        ))
        .await;
    assert_eq!(page.status.as_u16(), 400);
    assert!(page.text(".error-page").contains("Status trace is off"));
}

#[tokio::test]
async fn synchronous_invocations_answer_with_result_log_and_duration() {
    let app = app().await;
    function(
        &app,
        "sync-fn",
        "Python3.10",
        "def main_handler(event, context):\n    print('adding')\n    if event.get('fail'):\n        raise KeyError('missing')\n    return event['a'] + event['b']\n",
        json!({"AsyncRunEnable": "FALSE", "TraceEnable": "FALSE"}),
    )
    .await;
    let ok = app
        .api("Invoke", json!({"FunctionName": "sync-fn", "ClientContext": json!({"a": 2, "b": 3}).to_string()}))
        .await;
    let r = &ok.ok()["Result"];
    assert_eq!(r["RetMsg"], "5");
    assert_eq!(r["Log"], "adding");
    assert_eq!(r["InvokeResult"], 0);
    assert!(r["Duration"].as_f64().unwrap() > 0.0);
    assert!(r["MemUsage"].as_u64().unwrap() > 0);
    assert_eq!(r["FunctionRequestId"].as_str().unwrap().len(), 36);
    let failed = app
        .api(
            "Invoke",
            json!({"FunctionName": "sync-fn", "ClientContext": "{\"fail\": true}"}),
        )
        .await;
    let r = &failed.ok()["Result"];
    assert_eq!(r["InvokeResult"], 430);
    // SCF's error object, with the stack of the user's own file.
    let error: Value = serde_json::from_str(r["ErrMsg"].as_str().unwrap()).unwrap();
    assert_eq!(error["errorCode"], 1);
    assert_eq!(error["errorMessage"], "KeyError: 'missing'");
    assert_eq!(error["statusCode"], 430);
    let stack = error["stackTrace"].as_str().unwrap();
    assert!(stack.contains("/var/user/index.py"), "{stack}");
    assert!(!stack.contains("bootstrap"), "{stack}");
    assert_eq!(r["RetMsg"], "");
    // A string comes back as JSON, as SCF serializes every return value.
    function(
        &app,
        "says",
        "Python3.10",
        "def main_handler(event, context):\n    return 'v2'\n",
        json!({"AsyncRunEnable": "FALSE", "TraceEnable": "FALSE"}),
    )
    .await;
    let said = app.api("Invoke", json!({"FunctionName": "says"})).await;
    assert_eq!(said.ok()["Result"]["RetMsg"], "\"v2\"");

    // A function with async execution is always invoked asynchronously.
    function(
        &app,
        "async-fn",
        "Python3.10",
        "def main_handler(e, c):\n    return 1\n",
        json!({}),
    )
    .await;
    let a = app
        .api(
            "Invoke",
            json!({"FunctionName": "async-fn", "InvocationType": "RequestResponse"}),
        )
        .await;
    // SCF leaves RetMsg empty for an async invocation.
    assert_eq!(a.ok()["Result"]["RetMsg"], "");
    let id = a.ok()["Result"]["FunctionRequestId"]
        .as_str()
        .unwrap()
        .to_string();
    until_status(&app, &id, EventStatus::Finished).await;
    let bad = app
        .api(
            "Invoke",
            json!({"FunctionName": "async-fn", "InvocationType": "Sometimes"}),
        )
        .await;
    assert_eq!(bad.error_code(), "InvalidParameterValue");
}

#[tokio::test]
async fn handlers_run_in_a_clean_sandbox() {
    let app = app().await;
    let code = "import os, resource\ndef main_handler(event, context):\n    return {'uid': os.getuid(), 'env': sorted(os.environ), 'cwd_files': sorted(os.listdir('.')), 'nofile': resource.getrlimit(resource.RLIMIT_NOFILE)[0], 'stage': os.environ.get('STAGE')}\n";
    function(
        &app,
        "inspect",
        "Python3.10",
        code,
        json!({"Environment": {"Variables": [{"Key": "STAGE", "Value": "test"}]}}),
    )
    .await;
    let id = invoke(&app, "inspect", json!({})).await;
    let e = until_status(&app, &id, EventStatus::Finished).await;
    let r: Value = serde_json::from_str(&e.result.unwrap()).unwrap();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let uid = r["uid"].as_u64().unwrap();
        assert!(
            (200_000..300_000).contains(&uid),
            "root drops to the function's own user: {uid}"
        );
    }
    assert_eq!(r["stage"], "test");
    assert_eq!(r["nofile"], 1024);
    let env: Vec<String> = serde_json::from_value(r["env"].clone()).unwrap();
    assert!(
        env.contains(&"SCF_FUNCTIONNAME".to_string())
            && env.contains(&"TENCENTCLOUD_REGION".to_string())
    );
    for leak in [
        "DATABASE_URL",
        "SCF_SECRET_KEY",
        "CARGO",
        "RUST_LOG",
        "USER",
    ] {
        assert!(!env.iter().any(|k| k == leak), "{leak} leaked into {env:?}");
    }
    assert!(
        r["cwd_files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "index.py")
    );
}

#[tokio::test]
async fn new_code_is_picked_up_by_the_next_event() {
    let app = app().await;
    function(
        &app,
        "versioned",
        "Python3.10",
        "def main_handler(e, c):\n    return 'v1'\n",
        json!({}),
    )
    .await;
    let first = invoke(&app, "versioned", json!({})).await;
    assert_eq!(
        until_ended(&app, &first).await.result.as_deref(),
        Some(r#""v1""#)
    );
    app.state.clock.advance(Duration::from_secs(1));
    app.api(
        "UpdateFunctionCode",
        json!({"FunctionName": "versioned", "ZipFile": zip_base64(&[("index.py", "def main_handler(e, c):\n    return 'v2'\n")])}),
    )
    .await
    .ok();
    let second = invoke(&app, "versioned", json!({})).await;
    assert_eq!(
        until_ended(&app, &second).await.result.as_deref(),
        Some(r#""v2""#)
    );
    assert!(timeline(&app, &second).await[1].contains("cold start"));
}

#[tokio::test]
async fn the_console_test_tab_invokes_and_links_to_the_live_event() {
    let app = app().await;
    function(
        &app,
        "console-fn",
        "Python3.10",
        LONG_HANDLER,
        json!({"Timeout": 120}),
    )
    .await;
    let test = function_url("default", "console-fn", "test");
    let page = app.get(&test).await;
    assert_eq!(page.text(".tabs a[aria-current=page]"), "Test");
    assert!(page.text("#ClientContext").contains("key1"));
    assert!(page.count("#Sample option") >= 3);

    let loaded = app
        .post(
            &test,
            &[
                ("Sample", "Long-running task (5 steps of 1 s)"),
                ("_action", "load-sample"),
                ("ClientContext", "{}"),
            ],
        )
        .await;
    assert!(loaded.text("#ClientContext").contains("\"steps\": 5"));

    let bad = app
        .post(
            &test,
            &[("ClientContext", "{not json"), ("_action", "invoke")],
        )
        .await;
    assert_eq!(bad.status.as_u16(), 422);
    assert!(bad.field_error("ClientContext").contains("must be JSON"));
    assert_eq!(bad.text("#ClientContext"), "{not json", "the input is kept");
    // The handler receives an object: an empty editor, an array, a string or null is said.
    for (payload, says) in [
        ("  ", "Enter the event to send"),
        ("[1,2]", "not an array"),
        ("\"str\"", "not a string"),
        ("null", "not null"),
    ] {
        let refused = app
            .post(&test, &[("ClientContext", payload), ("_action", "invoke")])
            .await;
        assert_eq!(refused.status.as_u16(), 422, "{payload}");
        assert!(
            refused.field_error("ClientContext").contains(says),
            "{payload}: {}",
            refused.field_error("ClientContext")
        );
    }

    let posted = app
        .post(
            &test,
            &[
                ("ClientContext", "{\"from\": \"console\"}"),
                ("_action", "invoke"),
            ],
        )
        .await;
    let answer = app.follow(&posted).await;
    assert_eq!(answer.text(".answer h2"), "Event accepted");
    // The payload sent is back in the editor, and a reload invokes nothing.
    assert_eq!(answer.text("#ClientContext"), "{\"from\": \"console\"}");
    let reloaded = app.get(posted.location()).await;
    assert_eq!(reloaded.count(".answer"), 0);
    let link = answer.attr("a.request-id", "href").unwrap();
    let id = answer.text("a.request-id");
    assert_eq!(
        link,
        format!("{}/{id}", function_url("default", "console-fn", "events"))
    );
    until_started(&app, &id).await;

    // Its output so far shows while it runs, marked live.
    let live = wait_for(
        "the handler's first line, live",
        Duration::from_secs(10),
        || async {
            let page = app.get(&link).await;
            page.text(".event-logs").contains("working").then_some(page)
        },
    )
    .await;
    assert_eq!(live.text(".event .status"), "Running");
    assert!(live.text(".event h3").contains("Live"));
    // Without scripts the page reloads itself while the event runs.
    let reload = "<noscript><meta http-equiv=\"refresh\" content=\"3\"></noscript>";
    assert!(live.body.contains(reload));
    assert_eq!(
        live.attr("#event-detail", "hx-trigger").as_deref(),
        Some("every 1s")
    );
    assert!(live.text(".event").contains("\"from\": \"console\""));
    assert_eq!(event(&app, &id).await.invoke_type, "CONSOLE");
    let fragment = app.get_hx(&link).await;
    assert_eq!(fragment.count(".sidebar"), 0);
    assert_eq!(fragment.count("#event-detail"), 1);

    // Terminate from the page: a confirmation first, with how and why.
    let confirm_url = live.link(".event-actions a", "Terminate…").unwrap();
    let confirm = app.get(&confirm_url).await;
    assert!(confirm.text(".confirm h2").starts_with("Terminate event"));
    assert!(confirm.text(".confirm").contains("It is running."));
    let terminate = confirm.attr(".confirm form", "action").unwrap();
    // A reason is one line of at most 200 characters; a longer one is said, and nothing stops.
    let long = "x".repeat(201);
    let refused = app
        .post(&terminate, &[("GraceShutdown", "true"), ("Reason", &long)])
        .await;
    assert_eq!(refused.status.as_u16(), 422);
    assert!(refused.field_error("Reason").contains("201 characters"));
    assert_eq!(
        refused
            .attr("input[name=GraceShutdown][value=true]", "checked")
            .as_deref(),
        Some(""),
        "the choice made is kept"
    );
    assert_eq!(event(&app, &id).await.status, EventStatus::Running);
    let done = app
        .post(
            &terminate,
            &[("GraceShutdown", "true"), ("Reason", "stuck on\na lock")],
        )
        .await;
    assert_eq!(done.location(), link);
    // Said once, on the event's page.
    assert!(
        app.follow(&done)
            .await
            .text(".banner-ok")
            .starts_with("Termination asked: the handler got SIGTERM")
    );
    until_status(&app, &id, EventStatus::Aborted).await;
    let ended = app.get(&link).await;
    assert_eq!(ended.text(".event .status"), "Invocation terminated");
    assert!(
        ended.attr("#event-detail", "hx-trigger").is_none(),
        "no more polling once it ended"
    );
    assert!(!ended.body.contains(reload), "nor reloading");
    assert!(
        ended
            .text(".event-logs")
            .contains("[PLATFORM] Signal received successfully.")
    );
    // Who asked, how and why, on the timeline.
    let timeline = ended.texts(".timeline li");
    assert!(
        timeline.iter().any(|t| t
            .contains("Termination requested by admin (graceful: SIGTERM first): stuck on a lock")),
        "{timeline:?}"
    );
    assert!(
        timeline[0].contains("Queued (invoked by CONSOLE, admin)"),
        "{timeline:?}"
    );
    assert_eq!(ended.link(".event-actions a", "Terminate…"), None);
    let refused = app.post(&terminate, &[("GraceShutdown", "false")]).await;
    assert_eq!(refused.status.as_u16(), 400);
    let nothing = app.get(&confirm_url).await;
    assert_eq!(nothing.text(".confirm h2"), "Nothing to terminate");

    // Re-run with an edited payload: the new event links back, and the original forward.
    let rerun_url = ended.link(".event-actions a", "Re-run…").unwrap();
    let form = app.get(&rerun_url).await;
    assert!(
        form.text("#ClientContext")
            .contains("\"from\": \"console\"")
    );
    let action = form.attr("form[action$='/rerun']", "action").unwrap();
    // An emptied editor is said, not taken as "the same payload".
    let emptied = app.post(&action, &[("ClientContext", "")]).await;
    assert_eq!(emptied.status.as_u16(), 422);
    assert!(
        emptied
            .field_error("ClientContext")
            .contains("Enter the event")
    );
    let bad = app.post(&action, &[("ClientContext", "[1, 2]")]).await;
    assert_eq!(bad.status.as_u16(), 422);
    assert!(bad.field_error("ClientContext").contains("not an array"));
    assert_eq!(bad.text("#ClientContext"), "[1, 2]", "the edit is kept");
    let rerun = app
        .post(&action, &[("ClientContext", "{\"from\": \"re-run\"}")])
        .await;
    let again = app.follow(&rerun).await;
    assert!(again.text(".banner-ok").starts_with("Re-run of "));
    let new_id = again.text("#event-detail h2 code");
    assert_ne!(new_id, id);
    assert_eq!(
        again.link("#event-detail .facts a", &id).as_deref(),
        Some(link.as_str()),
        "the re-run links to its original"
    );
    assert!(
        again
            .texts("#event-detail .facts dd")
            .contains(&"admin".to_string()),
        "who re-ran it"
    );
    assert!(again.text(".event").contains("\"from\": \"re-run\""));
    let original = app.get(&link).await;
    assert_eq!(
        original.link(".reruns a", &new_id).as_deref(),
        Some(rerun.location()),
        "the original links to its re-run"
    );
    let timeline = again.texts(".timeline li");
    assert!(
        timeline[0].contains(&format!("a re-run of {id}")),
        "{timeline:?}"
    );
}

/// A synchronous run from the Test tab answers on the page its form redirects to: result,
/// logs and the payload sent; a reload runs nothing again, and the answer is its runner's only.
#[tokio::test]
async fn a_synchronous_test_run_is_shown_once_and_never_repeated_by_a_reload() {
    let app = app().await;
    let shared = shared_dir();
    let code = format!(
        "def main_handler(event, context):\n    open('{}/runs', 'a').write('x')\n    print('sync run', event['n'])\n    return {{'double': event['n'] * 2}}\n",
        shared.path().display()
    );
    function(
        &app,
        "sync-fn",
        "Python3.10",
        &code,
        json!({"AsyncRunEnable": "FALSE", "TraceEnable": "FALSE"}),
    )
    .await;
    let runs = || {
        std::fs::read_to_string(shared.path().join("runs"))
            .unwrap_or_default()
            .len()
    };
    let test = function_url("default", "sync-fn", "test");
    let posted = app
        .post(
            &test,
            &[
                ("ClientContext", "{\"n\": 21}"),
                ("InvocationType", "RequestResponse"),
                ("_action", "invoke"),
            ],
        )
        .await;
    assert_eq!(posted.status.as_u16(), 303);
    assert_eq!(posted.location(), test);
    assert_eq!(runs(), 1);
    let answer = app.follow(&posted).await;
    assert_eq!(answer.text(".answer h2"), "Invocation succeeded");
    assert!(
        answer.text(".answer pre").contains("\"double\":42"),
        "{}",
        answer.text(".answer")
    );
    assert!(answer.text(".answer").contains("sync run 21"));
    assert_eq!(
        answer.text("#ClientContext"),
        "{\"n\": 21}",
        "the payload sent is back"
    );
    // A reload shows the tab, runs nothing, and the answer was read once.
    let reloaded = app.follow(&posted).await;
    assert_eq!(reloaded.count(".answer"), 0);
    assert_eq!(runs(), 1);
    // Another user with the same redirect (and its cookie) does not see it.
    let again = app
        .post(
            &test,
            &[
                ("ClientContext", "{\"n\": 1}"),
                ("InvocationType", "RequestResponse"),
                ("_action", "invoke"),
            ],
        )
        .await;
    app.log_in_as_new("someone", "developer").await;
    assert_eq!(app.follow(&again).await.count(".answer"), 0);
}

/// Code that cannot load fails its event with SCF's codes: 437 when the handler's file or
/// function is not there, 430 when loading raises.
#[tokio::test]
async fn code_that_cannot_load_fails_with_scf_status_codes() {
    let app = app().await;
    for (name, runtime, file, code, expected, says) in [
        (
            "no-function",
            "Python3.10",
            "index.py",
            "def other(event, context):\n    return 1\n",
            437,
            "has no function 'main_handler'",
        ),
        (
            "no-file",
            "Python3.10",
            "other.py",
            "x = 1\n",
            437,
            "No module named 'index'",
        ),
        (
            "broken",
            "Python3.10",
            "index.py",
            "def main_handler(event, context)\n    return 1\n",
            430,
            "SyntaxError",
        ),
        (
            "no-function-js",
            "Nodejs18.15",
            "index.js",
            "exports.other = async () => 1;\n",
            437,
            "has no function 'main_handler'",
        ),
        (
            "no-file-js",
            "Nodejs18.15",
            "other.js",
            "exports.x = 1;\n",
            437,
            "Cannot find module",
        ),
        (
            "broken-js",
            "Nodejs18.15",
            "index.js",
            "exports.main_handler = async () => {\n",
            430,
            "SyntaxError",
        ),
    ] {
        // A package without the handler's file is refused at creation now: put one there,
        // then replace the package the way a broken deploy would, by hand.
        let mut params = json!({
            "FunctionName": name,
            "Runtime": runtime,
            "Handler": "index.main_handler",
            "AsyncRunEnable": "TRUE",
            "TraceEnable": "TRUE",
            "Code": {"ZipFile": zip_base64(&[(if runtime.starts_with("Nodejs") { "index.js" } else { "index.py" }, "x = 1")])},
        });
        if file.starts_with("index") {
            params["Code"]["ZipFile"] = zip_base64(&[(file, code)]).into();
        }
        let created = app.api("CreateFunction", params).await;
        assert!(
            created.error_code().is_empty(),
            "{name}: {}",
            created.page.body
        );
        app.api(
            "UpdateFunctionEventInvokeConfig",
            json!({"FunctionName": name, "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 0}], "MsgTTL": 600}}),
        )
        .await
        .ok();
        if !file.starts_with("index") {
            let f = app
                .state
                .store
                .get_function(&scf_console::store::FunctionKey {
                    region: REGION.into(),
                    namespace: "default".into(),
                    name: name.into(),
                })
                .await
                .unwrap()
                .unwrap();
            let update = scf_console::domain::function::CodeUpdate {
                handler: "index.main_handler".into(),
                files: vec![scf_console::store::CodeFile {
                    path: file.into(),
                    content: code.as_bytes().to_vec(),
                }],
                replace_all: true,
            };
            app.state
                .store
                .update_function_code(&f.key(), &update, app.state.clock.now_millis())
                .await
                .unwrap();
        }
        let id = invoke(&app, name, json!({})).await;
        let e = until_status(&app, &id, EventStatus::Failed).await;
        assert_eq!(e.status_code, Some(expected), "{name}: {:?}", e.error);
        assert!(
            e.error.as_deref().unwrap_or_default().contains(says),
            "{name}: {:?}",
            e.error
        );
    }
}

/// Python instances are forked from the fork server by default; started as interpreters of
/// their own (the fallback when it is off or fails), they behave the same.
#[tokio::test]
async fn python_instances_behave_the_same_without_the_fork_server() {
    let app = TestApp::with_engine(EngineConfig {
        fork_server: false,
        ..test_engine()
    })
    .await;
    app.add_key().await;
    let code = "import os, resource\ndef main_handler(event, context):\n    print('exit' if event.get('exit') else 'ok')\n    if event.get('exit'):\n        os._exit(5)\n    return {'uid': os.getuid(), 'nofile': resource.getrlimit(resource.RLIMIT_NOFILE)[0]}\n";
    function(&app, "spawned", "Python3.10", code, json!({})).await;
    let ok = invoke(&app, "spawned", json!({})).await;
    let e = until_status(&app, &ok, EventStatus::Finished).await;
    let r: Value = serde_json::from_str(&e.result.unwrap()).unwrap();
    assert_eq!(r["nofile"], 1024);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert!((200_000..300_000).contains(&r["uid"].as_u64().unwrap()));
    }
    let exited = invoke(&app, "spawned", json!({"exit": true})).await;
    let e = until_status(&app, &exited, EventStatus::Failed).await;
    assert_eq!(e.status_code, Some(439));
    assert!(e.error.unwrap().contains("exited with code 5"));
}

/// Invokes `function`, terminates the event through the API once it runs (graceful or forced)
/// and answers it once it ended ABORTED.
async fn terminated_once_running(
    app: &TestApp,
    function: &str,
    graceful: bool,
) -> (String, scf_console::store::EventRecord) {
    let id = invoke(app, function, json!({})).await;
    until_started(app, &id).await;
    // The handlers print once they have set up their signals: terminated before that, a
    // graceful stop would find no handler of its own to call.
    wait_for("the handler's first line", LIMIT, || async {
        app.state
            .engine
            .live_logs(&id)
            .filter(|logs| !logs.is_empty())
            .map(drop)
    })
    .await;
    app.api(
        "TerminateAsyncEvent",
        json!({"FunctionName": function, "InvokeRequestId": id, "GraceShutdown": graceful}),
    )
    .await
    .ok();
    let e = until_status(app, &id, EventStatus::Aborted).await;
    (id, e)
}
