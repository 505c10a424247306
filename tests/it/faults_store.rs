//! Storage faults and stops: a full disk, a commit that fails while events run, a graceful stop
//! with long events, a function deleted while its event runs, and data folders that cannot be
//! used. Every acknowledged RequestId must survive, nothing may run twice, and the server must
//! heal by itself once the fault clears.

use crate::engine::{
    event, finished_once, function, invoke, shared_dir, timeline, until_ended, until_started,
};
use crate::observability::{body, metrics_addr, sample};
use crate::server::{Server, http_get};
use crate::support::api::*;
use crate::support::*;
use scf_console::domain::event::EventStatus;
use scf_console::engine::EngineConfig;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

/// A handler that leaves one line per run in `proof/<RequestId>`, so a second run shows, and
/// returns `result` (a Python expression).
fn proving(proof: &Path, result: &str) -> String {
    format!(
        "def main_handler(event, context):\n    \
         with open('{}/' + context['request_id'], 'a') as f:\n        f.write('ran\\n')\n    \
         return {result}\n",
        proof.display()
    )
}

fn proving_handler(proof: &Path) -> String {
    proving(proof, "'ok'")
}

/// Returns 60 KB: no end of it fits in a full database (a small one may, in a page with room
/// left).
fn proving_bulky_handler(proof: &Path) -> String {
    proving(proof, "'r' * 60000")
}

/// A handler that waits for `proof/go`, proves it ran, then prints and returns 60 KB each:
/// its end needs fresh pages in the database.
fn gated_handler(proof: &Path) -> String {
    format!(
        "import os, time\n\
         def main_handler(event, context):\n    \
         with open('{dir}/' + context['request_id'], 'a') as f:\n        f.write('ran\\n')\n    \
         while not os.path.exists('{dir}/go'):\n        time.sleep(0.02)\n    \
         print('l' * 60000)\n    \
         return 'r' * 60000\n",
        dir = proof.display()
    )
}

fn runs(proof: &Path, request_id: &str) -> usize {
    std::fs::read_to_string(proof.join(request_id))
        .map_or(0, |s| s.lines().filter(|l| *l == "ran").count())
}

/// A console, its store (which the test can fill up), and the folder its handlers prove they
/// ran in.
type Fillable = (
    TestApp,
    std::sync::Arc<scf_console::store::sqlite::SqliteStore>,
    tempfile::TempDir,
);

/// A console whose store the test can fill up, the folder its handlers prove they ran in, and
/// a function `name` of the handler `code` writes for that folder.
async fn fillable(
    engine: EngineConfig,
    name: &str,
    code: fn(&Path) -> String,
    extra: serde_json::Value,
) -> Fillable {
    let (app, sqlite) = TestApp::with_sqlite(engine).await;
    app.add_key().await;
    let proof = shared_dir();
    function(&app, name, "Python3.10", &code(proof.path()), extra).await;
    (app, sqlite, proof)
}

/// A console whose store the test can fill up, with a function `orders` of the proving handler.
async fn orders(engine: EngineConfig) -> Fillable {
    fillable(engine, "orders", proving_handler, json!({})).await
}

/// A console whose store the test can fill up, with a function `reports` of the gated handler.
async fn reports(engine: EngineConfig) -> Fillable {
    fillable(engine, "reports", gated_handler, json!({"Timeout": 120})).await
}

async fn ready(app: &TestApp) -> (u16, String) {
    let page = app.get("/readyz").await;
    (page.status.as_u16(), page.body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_invocations_with_the_reason_loses_none_and_heals_by_itself() {
    let (app, sqlite, proof) = orders(test_engine()).await;
    assert_eq!(ready(&app).await.0, 200);

    // Room for a few 100 KB events, then the disk is full.
    let pages = sqlite.page_count().await.unwrap();
    sqlite.limit_pages(Some(pages + 120)).await.unwrap();
    let payload = json!({"blob": "x".repeat(100 * 1024)}).to_string();
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..30 {
        let answer = app
            .api(
                "Invoke",
                json!({"FunctionName": "orders", "InvocationType": "Event", "ClientContext": payload}),
            )
            .await;
        match answer.json["Response"]["Result"]["FunctionRequestId"].as_str() {
            Some(id) => accepted.push(id.to_string()),
            None => refused.push((
                answer.error_code().to_string(),
                answer.error_message().to_string(),
            )),
        }
    }
    assert!(!accepted.is_empty(), "some fit before the disk filled up");
    assert!(refused.len() >= 10, "the rest were refused: {refused:?}");
    for (code, message) in &refused {
        assert_eq!(code, "InternalError");
        assert!(
            message.contains("the event store cannot write")
                && message.contains("full")
                && message.contains("Nothing was recorded and nothing will run"),
            "{message}"
        );
    }
    // The server says so: readiness, and the System page.
    let (status, body) = ready(&app).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("cannot write") && body.contains("SQLITE_FULL"),
        "{body}"
    );
    let system = app.get(&format!("/scf/{REGION}/default/system")).await;
    assert!(
        system
            .text(".store-fault")
            .contains("The store cannot write"),
        "{}",
        system.body
    );
    assert_eq!(system.text(".store-writes"), "failing");

    // Space is freed: no restart, the store heals and says so.
    sqlite.limit_pages(None).await.unwrap();
    wait_for("the store to report ready", LIMIT, || async {
        (ready(&app).await.0 == 200).then_some(())
    })
    .await;
    for i in 0..5 {
        accepted.push(invoke(&app, "orders", json!({ "after": i })).await);
    }

    // Every acknowledged event ran exactly once; nothing refused was stored or ran.
    for id in &accepted {
        finished_once(&app, id).await;
        assert_eq!(runs(proof.path(), id), 1, "{id} ran once");
    }
    let function_id = crate::support::events::function_id(&app, "orders").await;
    assert_eq!(
        app.state.store.count_events(function_id).await.unwrap(),
        accepted.len() as i64,
        "only acknowledged events are stored"
    );
    let ran = std::fs::read_dir(proof.path()).unwrap().count();
    assert_eq!(ran, accepted.len(), "only acknowledged events ran");
}

/// A run hands its worker over with its end, to the claim of the next event in the same
/// commit. On a full disk that commit fails: the workers stay with the ends being tried
/// again, so the queued event behind them waits, unclaimed and unrun, until the ends land.
#[tokio::test(flavor = "multi_thread")]
async fn an_end_that_cannot_be_written_lands_once_the_disk_has_room() {
    let (app, sqlite, proof) = reports(EngineConfig {
        workers: 3,
        per_function: 3,
        ..test_engine()
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(invoke(&app, "reports", json!({ "n": i })).await);
    }
    for id in &ids {
        until_started(&app, id).await;
    }
    let waiting = invoke(&app, "reports", json!({ "n": 3 })).await;
    // The disk fills up while they run; then they finish.
    let pages = sqlite.page_count().await.unwrap();
    sqlite.limit_pages(Some(pages)).await.unwrap();
    std::fs::write(proof.path().join("go"), "").unwrap();
    wait_for("the failed end to show", LIMIT, || async {
        (ready(&app).await.0 == 503).then_some(())
    })
    .await;
    // Every end tried, and tried again.
    let failures = app.state.store.write_health().total_failures();
    wait_for("the ends to be tried again", LIMIT, || async {
        (app.state.store.write_health().total_failures() >= failures + 6).then_some(())
    })
    .await;
    for id in &ids {
        assert_eq!(event(&app, id).await.status, EventStatus::Running);
    }
    assert_eq!(event(&app, &waiting).await.status, EventStatus::Queued);
    assert_eq!(runs(proof.path(), &waiting), 0, "nothing new ran");

    sqlite.limit_pages(None).await.unwrap();
    let e = until_ended(&app, &waiting).await;
    assert_eq!((e.status, e.attempt), (EventStatus::Finished, 1));
    assert_eq!(runs(proof.path(), &waiting), 1);
    for id in &ids {
        let e = finished_once(&app, id).await;
        // The 60,000 characters returned, as a JSON string.
        assert_eq!(e.result.as_deref().map(str::len), Some(60002));
        assert!(e.logs.unwrap_or_default().starts_with("lll"));
        assert_eq!(runs(proof.path(), id), 1, "{id} ran once");
    }
    wait_for("ready again", LIMIT, || async {
        (ready(&app).await.0 == 200).then_some(())
    })
    .await;
}

/// Leases cannot be renewed while the disk is full; the node's own runs are not taken from it
/// for that: they finish once the disk has room, in their first attempt, having run once.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_for_longer_than_the_lease_takes_no_run_from_its_node() {
    let (app, sqlite, proof) = reports(EngineConfig {
        lease: Duration::from_secs(3),
        ..test_engine()
    })
    .await;
    let id = invoke(&app, "reports", json!({})).await;
    until_started(&app, &id).await;
    let pages = sqlite.page_count().await.unwrap();
    sqlite.limit_pages(Some(pages)).await.unwrap();
    std::fs::write(proof.path().join("go"), "").unwrap();
    // Far past the lease while nothing can be written: renewals fail, and every heartbeat
    // finds this node's lease run out.
    app.state.clock.advance(Duration::from_secs(600));
    let failures = app.state.store.write_health().total_failures();
    wait_for("heartbeats during the fault", LIMIT, || async {
        (app.state.store.write_health().total_failures() >= failures + 8).then_some(())
    })
    .await;

    sqlite.limit_pages(None).await.unwrap();
    let e = until_ended(&app, &id).await;
    let steps = timeline(&app, &id).await;
    assert_eq!(
        (e.status, e.attempt),
        (EventStatus::Finished, 1),
        "{steps:?}"
    );
    assert!(
        !steps.iter().any(|s| s.contains("lease")),
        "never taken over: {steps:?}"
    );
    assert_eq!(runs(proof.path(), &id), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_write_of_a_run_that_lost_its_event_changes_nothing() {
    use crate::support::events::*;
    let app = paused_app().await;
    app.create_function("default", "fenced", &[]).await;
    let f = function_id(&app, "fenced").await;
    add_event(&app, f, "00000000-0000-4000-8000-00000000fe11", "API").await;
    let id = claim(&app).await;
    // Another node takes the event over (its owner looked dead) and requeues it, as the
    // engine's takeover does.
    let now = app.state.clock.now_millis();
    let stranded = app
        .state
        .store
        .stranded_runs(now, &[HAND.to_string()], 10)
        .await
        .unwrap();
    assert_eq!(stranded.len(), 1);
    use scf_console::store::{EventWrite, TimelineEntry};
    let takeover = EventWrite::Requeue {
        event_id: id,
        run: stranded[0].lease.clone(),
        traced: true,
        attempt: 2,
        run_after: now,
        error: None,
        logs: None,
        entry: TimelineEntry {
            at: now,
            status: EventStatus::Queued,
            detail: "Requeued for attempt 2: the server stopped while it ran.".into(),
        },
    };
    app.state
        .store
        .apply_event_writes(&[takeover])
        .await
        .unwrap();
    let before = event(&app, "00000000-0000-4000-8000-00000000fe11").await;
    let steps_before = timeline(&app, "00000000-0000-4000-8000-00000000fe11").await;
    // The first run ends late and writes: fenced out, nothing changes.
    end(&app, id, EventStatus::Finished, 200).await;
    let after = event(&app, "00000000-0000-4000-8000-00000000fe11").await;
    assert_eq!(
        (after.status, after.attempt, after.status_code),
        (before.status, before.attempt, before.status_code)
    );
    assert_ne!(after.status, EventStatus::Finished);
    assert_eq!(
        timeline(&app, "00000000-0000-4000-8000-00000000fe11").await,
        steps_before
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_function_ends_its_running_event_and_touches_no_other_event() {
    let app = TestApp::with_engine(test_engine()).await;
    app.add_key().await;
    let proof = shared_dir();
    // The handler holds a lock on a file for as long as it lives.
    let doomed = format!(
        "import fcntl, time\n\
         def main_handler(event, context):\n    \
         f = open('{dir}/alive', 'w')\n    \
         fcntl.flock(f, fcntl.LOCK_EX)\n    \
         time.sleep(600)\n",
        dir = proof.path().display()
    );
    function(
        &app,
        "doomed",
        "Python3.10",
        &doomed,
        json!({"Timeout": 900}),
    )
    .await;
    let first = invoke(&app, "doomed", json!({})).await;
    until_started(&app, &first).await;
    let doomed_row = event(&app, &first).await.id;
    let alive = proof.path().join("alive");
    wait_for("the handler to hold its lock", LIMIT, || async {
        (alive.exists() && still_locked(&alive)).then_some(())
    })
    .await;

    // Asked first, the user is told the event runs and what deleting does to it.
    let confirm = app
        .get(&format!("/scf/{REGION}/default/functions/doomed/delete"))
        .await;
    assert!(
        confirm
            .text(".confirm")
            .contains("1 event is running or waiting to run. Deleting stops it at once"),
        "{}",
        confirm.text(".confirm")
    );
    let page = app
        .post(
            &format!("/scf/{REGION}/default/functions/doomed/delete"),
            &[],
        )
        .await;
    assert_eq!(page.status.as_u16(), 303, "{}", page.body);
    // It ends ABORTED and stays readable, like every event of a deleted function.
    let ended = app.state.store.get_event(&first).await.unwrap().unwrap();
    assert_eq!(
        (ended.status, ended.status_code),
        (EventStatus::Aborted, Some(499))
    );
    assert_eq!(
        ended.error.as_deref(),
        Some("Stopped: its function was deleted (499)")
    );
    wait_for(
        "the deleted function's handler to be gone",
        LIMIT,
        || async { (!still_locked(&alive)).then_some(()) },
    )
    .await;

    // The next event of another function gets a fresh id and only its own writes.
    function(
        &app,
        "survivor",
        "Python3.10",
        &proving_handler(proof.path()),
        json!({}),
    )
    .await;
    let second = invoke(&app, "survivor", json!({})).await;
    let e = until_ended(&app, &second).await;
    assert!(
        e.id > doomed_row,
        "ids are never reused ({} after {doomed_row})",
        e.id
    );
    assert_eq!(
        (e.status, e.result.as_deref()),
        (EventStatus::Finished, Some(r#""ok""#))
    );
    let steps = timeline(&app, &second).await;
    assert_eq!(
        steps.iter().filter(|s| s.contains("Finished")).count(),
        1,
        "{steps:?}"
    );
    assert!(!steps.iter().any(|s| s.contains("Terminated")), "{steps:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_server_puts_long_events_back_in_the_queue_and_the_next_start_runs_them() {
    let config = EngineConfig {
        shutdown_grace: Duration::from_millis(500),
        ..test_engine()
    };
    let app = TestApp::with_engine(config.clone()).await;
    app.add_key().await;
    let proof = shared_dir();
    for (name, retries) in [("long-retry", 1), ("long-once", 0)] {
        function(
            &app,
            name,
            "Python3.10",
            &gated_handler(proof.path()),
            json!({"Timeout": 120}),
        )
        .await;
        app.api(
            "UpdateFunctionEventInvokeConfig",
            json!({"FunctionName": name, "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": retries}], "MsgTTL": 3600}}),
        )
        .await
        .ok();
    }
    let retry = invoke(&app, "long-retry", json!({})).await;
    let once = invoke(&app, "long-once", json!({})).await;
    until_started(&app, &retry).await;
    until_started(&app, &once).await;

    app.state.engine.shutdown().await;

    let requeued = event(&app, &retry).await;
    assert_eq!(
        (requeued.status, requeued.attempt),
        (EventStatus::Queued, 2)
    );
    assert!(
        timeline(&app, &retry)
            .await
            .iter()
            .any(|s| s.ends_with("Requeued for attempt 2: the server stopped while it ran.")),
        "{:?}",
        timeline(&app, &retry).await
    );
    let failed = event(&app, &once).await;
    assert_eq!(
        (failed.status, failed.status_code),
        (EventStatus::Failed, Some(439))
    );
    assert!(
        failed
            .error
            .unwrap_or_default()
            .contains("the server stopped while it ran and no retries remain")
    );
    assert!(
        !timeline(&app, &once)
            .await
            .iter()
            .any(|s| s.contains("Terminated by a user")),
        "a stop is not a user's terminate"
    );

    // The next start runs the requeued event to its end.
    let restarted = scf_console::state::AppState::with_engine(
        app.state.store.clone(),
        app.state.clock.clone(),
        vec![REGION.into()],
        machine().await,
        Duration::from_secs(72 * 3600),
        config,
    )
    .await
    .unwrap();
    std::fs::write(proof.path().join("go"), "").unwrap();
    let e = until_ended(&app, &retry).await;
    assert_eq!((e.status, e.attempt), (EventStatus::Finished, 2));
    restarted.engine.shutdown().await;
}

/// Runs the real binary on a data folder that cannot be used; answers what it printed.
fn refused_start(data: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scf-console"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the server must refuse to start");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Mounts a tmpfs of `size` at `at` (root only), unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, options: &str) -> Option<Tmpfs> {
        if !is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root: the real disk-full tests must run there"
            );
            eprintln!("SKIPPED: mounting a small file system needs root");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs at {}", at.display());
        Some(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn an_unusable_data_folder_is_explained_with_its_path_and_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join("scf-console.db");
    let db_name = db.display().to_string();

    std::fs::write(&db, b"").unwrap();
    let said = refused_start(&data);
    assert!(
        said.contains(&db_name) && said.contains("is empty (0 bytes)"),
        "{said}"
    );
    assert!(said.contains("restore it from a backup"), "{said}");

    std::fs::write(&db, "a,b\n1,2\n".repeat(100)).unwrap();
    let said = refused_start(&data);
    assert!(
        said.contains(&db_name) && said.contains("is not an SQLite database"),
        "{said}"
    );
    std::fs::remove_file(&db).unwrap();

    let readonly = dir.path().join("readonly");
    let mount = Tmpfs::mount(&readonly, "ro,size=1m");
    if mount.is_none() {
        std::fs::create_dir_all(&readonly).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&readonly, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let said = refused_start(&readonly);
    assert!(
        said.contains(&readonly.display().to_string()) && said.contains("is not writable"),
        "{said}"
    );
    drop(mount);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_database_is_explained() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("scf-console.db");
    let url = format!("sqlite://{}", db.display());
    scf_console::store::open(&url).await.unwrap().close().await;
    // Another program holds the write lock.
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .unwrap();
    let said = tokio::task::spawn_blocking({
        let data = dir.path().to_path_buf();
        move || refused_start(&data)
    })
    .await
    .unwrap();
    assert!(
        said.contains(&db.display().to_string()) && said.contains("locked by another process"),
        "{said}"
    );
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
}

/// The story of the report: a data folder on a small file system fills up under 100 KB
/// invocations. Refused calls say why, acknowledged ones are all kept (also across a
/// restart), and once space is freed the same process accepts again.
#[tokio::test(flavor = "multi_thread")]
async fn a_real_full_disk_keeps_every_acknowledged_event_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Some(_fs) = Tmpfs::mount(&data, "size=8m") else {
        return;
    };
    // Ballast that the test deletes to free space.
    std::fs::write(data.join("ballast"), vec![0u8; 3 << 20]).unwrap();
    let server = Server::start_with(&data, |c| {
        c.args(["--metrics-listen", "127.0.0.1:0"]);
    });
    let metrics = metrics_addr(&server);
    let scrape = || body(&http_get(&metrics, "/metrics")).to_string();
    let code = "def main_handler(event, context):\n    return 'ok'\n";
    server.api(
        "CreateFunction",
        json!({"FunctionName": "ingest", "Runtime": "Python3.10", "AsyncRunEnable": "TRUE", "TraceEnable": "TRUE",
               "Code": {"ZipFile": zip_base64(&[("index.py", code)])}}),
    );
    let payload = json!({"blob": "x".repeat(100 * 1024)}).to_string();
    let invoke = |server: &Server| {
        server.api_answer(
            "Invoke",
            json!({"FunctionName": "ingest", "InvocationType": "Event", "ClientContext": payload}),
        )
    };
    let mut accepted = Vec::new();
    let mut refusals = 0;
    for _ in 0..120 {
        let answer = invoke(&server);
        match answer["Result"]["FunctionRequestId"].as_str() {
            Some(id) => accepted.push(id.to_string()),
            None => {
                assert_eq!(answer["Error"]["Code"], "InternalError", "{answer}");
                let message = answer["Error"]["Message"].as_str().unwrap();
                assert!(message.contains("cannot write"), "{message}");
                refusals += 1;
                if refusals >= 5 {
                    break;
                }
            }
        }
    }
    assert!(
        refusals >= 5,
        "the disk filled up ({} accepted)",
        accepted.len()
    );
    let readiness = http_get(&server.addr, "/readyz");
    assert!(readiness.starts_with("HTTP/1.1 503"), "{readiness}");
    // The metrics say it too, and count the refusals by their reason.
    let full = scrape();
    assert_eq!(sample(&full, "scf_store_can_write"), Some(0.0), "{full}");
    assert!(sample(&full, "scf_store_write_failures_total").unwrap() >= 1.0);
    let refused =
        "scf_invocations_total{mode=\"async\",invoke_type=\"api\",result=\"store_error\"}";
    assert_eq!(sample(&full, refused), Some(refusals as f64), "{full}");

    std::fs::remove_file(data.join("ballast")).unwrap();
    let healed = wait_for("accepts to succeed again", LIMIT, || async {
        let answer = invoke(&server);
        answer["Result"]["FunctionRequestId"]
            .as_str()
            .map(str::to_string)
    })
    .await;
    accepted.push(healed);
    for _ in 0..5 {
        let answer = invoke(&server);
        accepted.push(
            answer["Result"]["FunctionRequestId"]
                .as_str()
                .unwrap_or_else(|| panic!("{answer}"))
                .to_string(),
        );
    }
    wait_for("ready again", LIMIT, || async {
        http_get(&server.addr, "/readyz")
            .starts_with("HTTP/1.1 200")
            .then_some(())
    })
    .await;
    let healed = scrape();
    assert_eq!(
        sample(&healed, "scf_store_can_write"),
        Some(1.0),
        "{healed}"
    );
    let accepted_count =
        "scf_invocations_total{mode=\"async\",invoke_type=\"api\",result=\"accepted\"}";
    assert_eq!(sample(&healed, accepted_count), Some(accepted.len() as f64));

    // Stop it (SIGTERM), start it again: every acknowledged RequestId is there and ended once.
    let mut server = server;
    unsafe_sigterm(server.child.id());
    server.child.wait().unwrap();
    let restarted = Server::start(&data);
    for id in &accepted {
        let status = wait_for("the event to end", LIMIT, || async {
            let s = restarted.api_answer("GetAsyncEventStatus", json!({"InvokeRequestId": id}));
            let status = s["Result"]["Status"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: {s}"))
                .to_string();
            (status != "RUNNING").then_some(status)
        })
        .await;
        assert_eq!(status, "FINISHED", "{id}");
    }
}

fn unsafe_sigterm(pid: u32) {
    // SAFETY: kill has no memory preconditions; the pid is our own child's.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
}

/// Fast runs: the engine claims events ahead of its workers, which run them back to back and
/// leave their ends to commit behind them. The disk fills up under them: what ran had been
/// claimed (recorded RUNNING) before it started, nothing starts while the disk is full, and
/// once it has room every acknowledged event ends once, having run once.
#[tokio::test(flavor = "multi_thread")]
async fn events_claimed_ahead_stop_at_a_full_disk_and_each_ends_once() {
    let engine = EngineConfig {
        workers: 2,
        per_function: 1,
        claim_ahead: Duration::from_millis(200),
        ..test_engine()
    };
    let (app, sqlite, proof) = fillable(engine, "orders", proving_bulky_handler, json!({})).await;
    // Warm: its runs are known to be fast.
    for i in 0..3 {
        let id = invoke(&app, "orders", json!({ "warm": i })).await;
        until_ended(&app, &id).await;
    }
    let invokes = (0..300).map(|i| invoke(&app, "orders", json!({ "n": i })));
    let ids: Vec<String> = futures_util::future::join_all(invokes).await;
    let ran = || std::fs::read_dir(proof.path()).unwrap().count();
    wait_for("some of them to run", LIMIT, || async {
        (ran() >= 3 + 20).then_some(())
    })
    .await;
    let pages = sqlite.page_count().await.unwrap();
    sqlite.limit_pages(Some(pages)).await.unwrap();
    let failures = app.state.store.write_health().total_failures();
    wait_for("the ends to fail", LIMIT, || async {
        (app.state.store.write_health().total_failures() >= failures + 10).then_some(())
    })
    .await;
    // Whatever was claimed ahead has run or stopped by now; nothing more starts.
    let ran_while_full = ran();
    let failures = app.state.store.write_health().total_failures();
    wait_for("the ends to be tried again", LIMIT, || async {
        (app.state.store.write_health().total_failures() >= failures + 6).then_some(())
    })
    .await;
    assert_eq!(
        ran(),
        ran_while_full,
        "nothing started while the disk was full"
    );
    let mut queued = 0;
    for id in &ids {
        let e = event(&app, id).await;
        match runs(proof.path(), id) {
            0 => queued += usize::from(e.status == EventStatus::Queued),
            1 => assert_ne!(e.status, EventStatus::Queued, "{id} ran unclaimed"),
            n => panic!("{id} ran {n} times"),
        }
    }
    assert!(queued > 0, "the disk filled up before the backlog was done");

    sqlite.limit_pages(None).await.unwrap();
    for id in &ids {
        finished_once(&app, id).await;
        assert_eq!(runs(proof.path(), id), 1, "{id} ran once");
    }
}
