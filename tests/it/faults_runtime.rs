//! The runtime under attack, on real processes: handlers that print without end or between
//! events, more functions than the server may keep warm, instances and a server that are
//! frozen, and servers killed outright. Each story checks what a user sees of the event, and
//! that the server neither grows without bound nor leaves anything behind.

use crate::engine::{function, invoke, shared_dir, until_ended};
use crate::server::Server;
use crate::support::api::*;
use crate::support::*;
use scf_console::domain::event::{EventStatus, LOG_MAX_BYTES, TRUNCATED_MARK};
use scf_console::engine::EngineConfig;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const MB: u64 = 1024 * 1024;

async fn app_with(config: EngineConfig) -> TestApp {
    let app = TestApp::with_engine(config).await;
    app.add_key().await;
    app
}

/// The user-visible shape of a cut log: at most the cap, and the mark exactly once, at the end.
fn assert_capped(logs: &str) {
    assert!(
        logs.len() <= LOG_MAX_BYTES + TRUNCATED_MARK.len(),
        "log of {} bytes",
        logs.len()
    );
    assert!(logs.ends_with(TRUNCATED_MARK), "the cut is marked");
    assert_eq!(logs.matches(TRUNCATED_MARK).count(), 1, "marked once");
}

/// This process's memory, in bytes: (resident now, peak resident since the last reset).
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap()
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Starts counting peak memory from now (Linux: "5" resets VmHWM to the current RSS).
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Memory stories measure this whole process, so they take turns.
static MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn a_50_mb_line_without_newline_gets_a_capped_log_and_the_server_stays_small() {
    let _turn = MEMORY.lock().await;
    let app = app_with(test_engine()).await;
    let code = "import sys\ndef main_handler(event, context):\n    sys.stdout.write('x' * 50_000_000)\n    return 'printed'\n";
    function(&app, "shouter", "Python3.10", code, json!({"Timeout": 60})).await;

    reset_peak_memory();
    let (rss_before, _) = memory();
    let id = invoke(&app, "shouter", json!({})).await;
    let done = until_ended(&app, &id).await;
    let (rss_after, peak) = memory();

    assert_eq!(done.status, EventStatus::Finished);
    assert_eq!(done.status_code, Some(200));
    assert_eq!(done.result.as_deref(), Some(r#""printed""#));
    let logs = done.logs.unwrap();
    assert_capped(&logs);
    assert!(logs.starts_with("xxxx"));
    // Buffering the line whole costs 50 MB, and as much again to copy it into the log.
    assert!(
        peak.saturating_sub(rss_before) < 32 * MB,
        "peak grew by {} MB",
        (peak - rss_before) / MB
    );
    assert!(rss_after.saturating_sub(rss_before) < 64 * MB);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handler_printing_forever_times_out_with_a_capped_log_and_the_server_stays_small() {
    let _turn = MEMORY.lock().await;
    let app = app_with(test_engine()).await;
    let code = "import sys\ndef main_handler(event, context):\n    line = 'y' * 65536\n    while True:\n        sys.stdout.write(line)\n";
    function(
        &app,
        "chatterbox",
        "Python3.10",
        code,
        json!({"Timeout": 3}),
    )
    .await;

    reset_peak_memory();
    let (rss_before, _) = memory();
    let id = invoke(&app, "chatterbox", json!({})).await;
    let done = until_ended(&app, &id).await;
    let (_, peak) = memory();

    assert_eq!(done.status, EventStatus::Failed);
    assert_eq!(done.status_code, Some(433));
    assert_capped(&done.logs.unwrap());
    assert!(
        peak.saturating_sub(rss_before) < 64 * MB,
        "peak grew by {} MB",
        (peak - rss_before) / MB
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn output_printed_between_events_is_not_in_the_next_events_log() {
    let _turn = MEMORY.lock().await;
    let app = app_with(test_engine()).await;
    let shared = shared_dir();
    let code = r#"
import sys, threading

def chatter(done):
    # Starts once the event that started it has answered, so all of this is printed idle.
    started.wait()
    for i in range(2000):
        print("background chatter", i, "z" * 10000)
    sys.stdout.write("no newline at the end")
    sys.stdout.flush()
    open(done, "w").write("done")

started = threading.Event()

def main_handler(event, context):
    if "done" in event:
        threading.Thread(target=chatter, args=(event["done"],)).start()
        return "started"
    started.set()
    print("a quiet event")
    return "ok"
"#;
    function(&app, "noisy", "Python3.10", code, json!({"Timeout": 30})).await;
    let done = shared.path().join("done");
    let first = invoke(&app, "noisy", json!({"done": done})).await;
    assert_eq!(until_ended(&app, &first).await.status_code, Some(200));

    // The second event wakes the chatter, then runs while it prints, so its log may hold
    // some; a third one, after the chatter finished, must hold none of it.
    reset_peak_memory();
    let (rss_before, _) = memory();
    let second = invoke(&app, "noisy", json!({})).await;
    assert_eq!(until_ended(&app, &second).await.status_code, Some(200));
    wait_for("the idle chatter to finish", LIMIT, || async {
        done.exists().then_some(())
    })
    .await;
    let third = invoke(&app, "noisy", json!({})).await;
    let third = until_ended(&app, &third).await;
    assert_eq!(third.status_code, Some(200));
    assert_eq!(third.logs.as_deref(), Some("a quiet event"));
    let (_, peak) = memory();
    // 20 MB were printed while idle; none of it is kept.
    assert!(peak.saturating_sub(rss_before) < 64 * MB);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_room_for_two_instances_events_of_five_functions_all_finish() {
    let app = app_with(EngineConfig {
        max_instances: 2,
        ..test_engine()
    })
    .await;
    let code = "def main_handler(event, context):\n    print('function', event['n'])\n    return event['n']\n";
    for n in 0..5 {
        function(&app, &format!("fn-{n}"), "Python3.10", code, json!({})).await;
    }
    let mut ids = Vec::new();
    for round in 0..2 {
        for n in 0..5 {
            let id = invoke(&app, &format!("fn-{n}"), json!({"n": n, "round": round})).await;
            ids.push((n, id));
        }
    }
    for (n, id) in ids {
        let done = until_ended(&app, &id).await;
        assert_eq!(done.status, EventStatus::Finished, "{:?}", done.error);
        assert_eq!(done.status_code, Some(200));
        assert_eq!(done.result, Some(n.to_string()));
        assert_eq!(done.logs, Some(format!("function {n}")));
    }
    assert!(app.state.engine.idle_instances() <= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_stopped_past_its_timeout_times_out_with_433() {
    let app = app_with(test_engine()).await;
    let shared = shared_dir();
    let code = "import os, time\ndef main_handler(event, context):\n    open(event['uid'], 'w').write(str(os.getuid()))\n    time.sleep(1)\n    return 'too late'\n";
    function(&app, "frozen", "Python3.10", code, json!({"Timeout": 2})).await;
    let uid_file = shared.path().join("uid");
    let id = invoke(&app, "frozen", json!({"uid": uid_file})).await;
    let uid: u32 = wait_for("the handler to run", LIMIT, || async {
        std::fs::read_to_string(&uid_file).ok()?.parse().ok()
    })
    .await;
    let pid = match interpreters_of(uid)[..] {
        [pid] => pid,
        ref found => panic!("one interpreter runs as {uid}, found {found:?}"),
    };
    // SAFETY: a signal to the handler's process, which this test just learned the id of.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let done = until_ended(&app, &id).await;
    assert_eq!(done.status, EventStatus::Failed);
    assert_eq!(done.status_code, Some(433));
    assert!(done.error.unwrap().contains("timed out after 2 seconds"));
}

/// The whole server (this test's single runtime thread) is frozen past the handlers' timeout
/// while they answer in time: their answers are recorded, not timeouts. Eight at once, as the
/// order in which a thawed server looks at an answer and a deadline must not matter.
#[tokio::test(flavor = "current_thread")]
async fn answers_given_in_time_are_kept_when_the_server_was_frozen_past_the_timeout() {
    // All eight at once, each on a worker of its own.
    let app = app_with(scf_console::engine::EngineConfig {
        per_function: 8,
        ..test_engine()
    })
    .await;
    let shared = shared_dir();
    let code = "import os, time\ndef main_handler(event, context):\n    open(event['running'], 'w').write('yes')\n    while not os.path.exists(event['go']):\n        time.sleep(0.01)\n    return 'answered in time'\n";
    function(&app, "prompt", "Python3.10", code, json!({"Timeout": 5})).await;
    let go = shared.path().join("go");
    let mut events = Vec::new();
    for n in 0..8 {
        let running = shared.path().join(format!("running-{n}"));
        let id = invoke(&app, "prompt", json!({"running": running, "go": go})).await;
        events.push((id, running));
    }
    wait_for("every handler to run", LIMIT, || async {
        events
            .iter()
            .all(|(_, running)| running.exists())
            .then_some(())
    })
    .await;
    std::fs::write(&go, "go").unwrap();
    // The freeze itself: nothing of the server runs on this thread for 6 s, as if it were
    // stopped. The handlers answer at once; the server's deadlines pass meanwhile.
    std::thread::sleep(Duration::from_secs(6));
    for (id, _) in &events {
        let done = until_ended(&app, id).await;
        assert_eq!(done.status, EventStatus::Finished, "{:?}", done.error);
        assert_eq!(done.status_code, Some(200));
        assert_eq!(done.result.as_deref(), Some(r#""answered in time""#));
    }
}

/// A scf-console binary on its own data folder and temporary folder, with the test suite's API
/// key, and optionally a lower open-file limit and more settings.
fn start_server(data: &Path, tmp: &Path, nofile: Option<u64>, env: &[(&str, &str)]) -> Server {
    Server::start_with(data, |cmd| {
        cmd.env("TMPDIR", tmp).envs(env.iter().copied());
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe and only touches the child.
            unsafe {
                cmd.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
    })
}

/// 120 functions, each kept warm, would need some 360 descriptors in the server alone; with
/// an open-file limit of 384 the server keeps (384 - 256) / 8 = 16 and stops the least
/// recently used to start the next. Every event finishes; none is blamed on the user's code.
#[tokio::test(flavor = "multi_thread")]
async fn with_few_descriptors_events_of_many_functions_all_finish() {
    many_functions_under_384_descriptors(&[]).await;
}

/// With the cap set too high for the machine, starts fail for want of descriptors: that is
/// not the code's fault (never 405), idle instances are stopped to give some back, and the
/// event goes back to the queue and finishes.
#[tokio::test(flavor = "multi_thread")]
async fn with_the_instance_cap_set_too_high_running_out_of_descriptors_is_survived() {
    many_functions_under_384_descriptors(&[("SCF_MAX_INSTANCES", "100000")]).await;
}

async fn many_functions_under_384_descriptors(env: &[(&str, &str)]) {
    // The sandbox user must reach the runtime folder inside.
    let dir = shared_dir();
    let data = dir.path().join("data");
    let server = start_server(&data, dir.path(), Some(384), env);
    let code = "def main_handler(event, context):\n    return event['n']\n";
    let zip = zip_base64(&[("index.py", code)]);
    let mut ids = Vec::new();
    for n in 0..120 {
        let name = format!("fn-{n}");
        server.api(
            "CreateFunction",
            json!({"FunctionName": name, "Runtime": "Python3.10", "AsyncRunEnable": "TRUE",
                   "TraceEnable": "TRUE", "Code": {"ZipFile": zip}}),
        );
        let answer = server.api(
            "Invoke",
            json!({"FunctionName": name, "InvocationType": "Event", "ClientContext": json!({"n": n}).to_string()}),
        );
        let id = answer["Result"]["FunctionRequestId"].as_str().unwrap();
        ids.push((n, id.to_string()));
    }
    let url = format!("sqlite://{}", data.join("scf-console.db").display());
    let store = scf_console::store::open(&url).await.unwrap();
    for (n, id) in &ids {
        let done = wait_for(
            &format!("event {n} to end"),
            Duration::from_secs(120),
            || async {
                let e = store.get_event(id).await.unwrap()?;
                e.status.is_terminal().then_some(e)
            },
        )
        .await;
        assert_eq!(
            done.status_code,
            Some(200),
            "event {n}: {:?} {:?}",
            done.error,
            done.logs
        );
        assert_eq!(done.result, Some(n.to_string()));
    }
}

fn runtime_folders(tmp: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("scf-console-")
        })
        .collect();
    found.sort();
    found
}

#[test]
fn a_server_killed_with_9_leaves_no_runtime_folder_after_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let live = start_server(&dir.path().join("live"), &tmp, None, &[]);
    let live_folders = runtime_folders(&tmp);
    assert_eq!(live_folders.len(), 1);

    let mut killed = start_server(&dir.path().join("killed"), &tmp, None, &[]);
    let killed_folder = runtime_folders(&tmp)
        .into_iter()
        .find(|f| !live_folders.contains(f))
        .expect("the second server's runtime folder");
    killed.child.kill().unwrap(); // SIGKILL: no clean-up of its own
    killed.child.wait().unwrap();
    assert!(killed_folder.exists());

    // Links out of a stale folder, and a link named like one, lead to what is not ours to
    // delete.
    let precious = dir.path().join("precious");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("keep"), "keep").unwrap();
    std::os::unix::fs::symlink(&precious, killed_folder.join("link")).unwrap();
    let decoy = tmp.join(format!("scf-console-{}", uuid::Uuid::new_v4()));
    std::os::unix::fs::symlink(&precious, &decoy).unwrap();

    let _next = start_server(&dir.path().join("next"), &tmp, None, &[]);
    assert!(!killed_folder.exists(), "the dead server's folder is gone");
    assert!(live_folders[0].exists(), "the live server's folder stays");
    assert!(precious.join("keep").exists());
    assert!(std::fs::symlink_metadata(&decoy).is_ok());
    drop(live);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_handler_printing_50_mb_gets_a_capped_log() {
    let app = app_with(test_engine()).await;
    let code = "exports.main_handler = async () => { process.stdout.write('x'.repeat(50000000)); console.log('after'); return 'printed'; };";
    app.api(
        "CreateFunction",
        json!({"FunctionName": "node-shouter", "Runtime": "Nodejs18.15", "Handler": "index.main_handler",
               "AsyncRunEnable": "TRUE", "TraceEnable": "TRUE", "Timeout": 60,
               "Code": {"ZipFile": zip_base64(&[("index.js", code)])}}),
    )
    .await
    .ok();
    let id = invoke(&app, "node-shouter", json!({})).await;
    let done = until_ended(&app, &id).await;
    assert_eq!(done.status_code, Some(200), "{:?}", done.error);
    assert_eq!(done.result.as_deref(), Some(r#""printed""#));
    assert_capped(&done.logs.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_answer_fails_the_event_clearly_and_a_huge_error_is_cut() {
    let _turn = MEMORY.lock().await;
    let app = app_with(test_engine()).await;
    let code = "def main_handler(event, context):\n    if event.get('raise'):\n        raise ValueError('e' * 1_000_000)\n    return 'r' * 20_000_000\n";
    function(
        &app,
        "oversized",
        "Python3.10",
        code,
        json!({"Timeout": 60}),
    )
    .await;

    reset_peak_memory();
    let (rss_before, _) = memory();
    let id = invoke(&app, "oversized", json!({})).await;
    let done = until_ended(&app, &id).await;
    let (_, peak) = memory();
    assert_eq!(done.status, EventStatus::Failed);
    assert_eq!(done.status_code, Some(430));
    let error = done.error.unwrap();
    assert!(
        error.starts_with("ResultTooLarge: the handler's answer is larger than 8 MB"),
        "{error}"
    );
    // At most the answer bound is read, not the 20 MB answer.
    assert!(
        peak.saturating_sub(rss_before) < 32 * MB,
        "peak grew by {} MB",
        (peak - rss_before) / MB
    );

    let id = invoke(&app, "oversized", json!({"raise": true})).await;
    let done = until_ended(&app, &id).await;
    assert_eq!(done.status_code, Some(430));
    let error = done.error.unwrap();
    assert!(error.starts_with("ValueError: eeee"), "{}", &error[..40]);
    assert_capped(&error);
}

/// The Node.js bootstrap on its own, with a server that is slow to read the log pipe (busy, or
/// starved of CPU): a handler that printed more than the pipe holds still gets its answer out,
/// after its output. Once a handler has used `process.stdout`, Node makes the pipe non-blocking
/// and queues what it cannot write; a marker written straight to the descriptor then failed
/// with EAGAIN and left the instance hanging with no answer.
#[test]
fn a_node_instance_answers_after_its_output_when_the_server_reads_slowly() {
    use std::io::{BufRead, Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    if which("node").is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI needs node");
        eprintln!("SKIPPED: node is not installed");
        return;
    }
    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two new descriptors into the array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors are new and owned by nobody else.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }
    let code = tempfile::tempdir().unwrap();
    std::fs::write(
        code.path().join("index.js"),
        "exports.main_handler = async () => { process.stdout.write('x'.repeat(5000000)); console.log('after'); return 'printed'; };",
    )
    .unwrap();
    let (req_r, req_w) = pipe();
    let (ans_r, ans_w) = pipe();
    let (log_r, log_w) = pipe();
    let (fd3, fd4) = (req_r.as_raw_fd(), ans_w.as_raw_fd());
    let mut command = Command::new("node");
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/engine/runtime/bootstrap.js"
        ))
        .args(["index", "main_handler"])
        .current_dir(code.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_w.try_clone().unwrap()))
        .stderr(Stdio::from(log_w));
    // SAFETY: fcntl and dup2 are async-signal-safe. Copies above 10 first, so that neither
    // source is already 3 or 4 (dup2 onto itself would keep close-on-exec).
    unsafe {
        command.pre_exec(move || {
            let (a, b) = (
                libc::fcntl(fd3, libc::F_DUPFD, 10),
                libc::fcntl(fd4, libc::F_DUPFD, 10),
            );
            if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    // The builder holds copies of the log pipe's write end: only the instance may keep one.
    drop((command, req_r, ans_w));
    let mut answers = std::io::BufReader::new(std::fs::File::from(ans_r));
    let mut requests = std::fs::File::from(req_w);
    let mut line = String::new();
    answers.read_line(&mut line).unwrap();
    assert!(line.contains("\"ready\":true"), "{line}");

    requests
        .write_all(b"{\"event\":{},\"context\":{\"request_id\":\"r1\"}}\n")
        .unwrap();
    // The server is busy: nobody reads the log pipe for a while.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = answers.read_line(&mut line);
        let _ = done_tx.send(line);
    });
    let early = done_rx.recv_timeout(Duration::from_millis(500));
    assert!(early.is_err(), "the answer waits for the output: {early:?}");
    let mut logs = std::fs::File::from(log_r);
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = logs.read_to_end(&mut all);
        all
    });
    let answer = done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the instance answers once its output is read");
    assert!(answer.contains("\"result\":\"printed\""), "{answer}");
    let _ = child.kill();
    let _ = child.wait();
    let logs = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    assert!(
        logs.contains("after\n"),
        "the handler's whole output came first"
    );
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    })
}

/// Handlers replace `process.stdout.write` (to add a prefix, say) with a version that drops the
/// callback; the instance's own framing must not depend on it.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_handler_that_replaces_stdout_write_still_answers_with_its_logs() {
    let app = app_with(test_engine()).await;
    let code = "const orig = process.stdout.write.bind(process.stdout);\n\
                process.stdout.write = (chunk) => orig('[app] ' + chunk);\n\
                exports.main_handler = async () => { console.log('working'); return 'done'; };";
    function(
        &app,
        "prefixed",
        "Nodejs18.15",
        code,
        json!({"Timeout": 10}),
    )
    .await;
    for _ in 0..2 {
        let id = invoke(&app, "prefixed", json!({})).await;
        let done = until_ended(&app, &id).await;
        assert_eq!(done.status_code, Some(200), "{:?}", done.error);
        assert_eq!(done.result.as_deref(), Some(r#""done""#));
        assert!(done.logs.unwrap_or_default().contains("[app] working"));
    }
}
