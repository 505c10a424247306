//! The real binary: starts on a fresh data folder, serves, and shuts down cleanly on Ctrl-C.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn http_get(addr: &str, path: &str) -> String {
    http_get_with(addr, path, "")
}

/// Logs in to the console at `addr` through its login form; answers the `Cookie:` header line
/// (with its CRLF) that requests of this session carry.
pub(crate) fn log_in(addr: &str, user: &str, password: &str) -> String {
    let body = format!(
        "UserName={}&Password={}",
        scf_console::web::urls::encode(user),
        scf_console::web::urls::encode(password)
    );
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    session_cookie(&response)
}

/// The `Cookie:` header line for the session a login answer opened.
pub(crate) fn session_cookie(login_answer: &str) -> String {
    let value = login_answer
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: scf_session=")
        })
        .and_then(|l| l.split_once('=').map(|(_, v)| v))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("the login opened no session: {login_answer}"));
    format!("Cookie: scf_session={value}\r\n")
}

/// A GET request with extra header lines (each ending in CRLF); answers the raw response.
pub(crate) fn http_get_with(addr: &str, path: &str, headers: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn the_binary_creates_its_database_serves_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_scf-console"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    // The log line that says where it listens is the readiness signal.
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut printed = None;
    let addr = loop {
        assert!(Instant::now() < deadline, "the server did not start");
        let line = lines.next().expect("server exited").unwrap();
        if let Some(password) = line
            .split("with password \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        {
            printed = Some(password.to_string());
        }
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    assert!(
        data.join("scf-console.db").exists(),
        "database created under the data folder"
    );

    // Nothing without a login; the first admin's password was printed once in the log.
    let root = http_get(&addr, "/");
    assert!(root.starts_with("HTTP/1.1 303"), "{root}");
    assert!(root.contains("location: /login?next=%2F"), "{root}");
    let password = printed.expect("the first admin's password is in the log before it listens");
    assert_eq!(password.len(), 20, "{password}");
    let cookie = log_in(&addr, "admin", &password);
    let root = http_get_with(&addr, "/", &cookie);
    assert!(
        root.contains("location: /scf/ap-guangzhou/default/functions"),
        "{root}"
    );
    let list = http_get_with(&addr, "/scf/ap-guangzhou/default/functions", &cookie);
    assert!(list.starts_with("HTTP/1.1 200"));
    assert!(list.contains("Function Service"));

    // Ctrl-C (SIGINT) stops it cleanly.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "clean exit, got {exit}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("scf-console stopped")),
        "{rest:?}"
    );
}

#[tokio::test]
async fn keys_create_prints_a_key_that_the_store_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scf-console"))
        .args([
            "keys",
            "create",
            "--description",
            "ci deploys",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {stdout}"))
    };
    let (id, key) = (field("SecretId:"), field("SecretKey:"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not shown again"));

    let url = format!("sqlite://{}", dir.path().join("scf-console.db").display());
    let store = scf_console::store::open(&url).await.unwrap();
    let stored = store
        .get_api_key(&id)
        .await
        .unwrap()
        .expect("the key is stored");
    assert_eq!(stored.secret_key, key);
    assert_eq!(stored.description, "ci deploys");
    assert!(stored.enabled);
    // On a fresh folder the command made the first admin too, who owns the key; the audit
    // log says where the key came from.
    assert_eq!(stored.owner.as_deref(), Some("admin"));
    assert_eq!(stored.role(), Some(scf_console::domain::user::Role::Admin));
    let audit = store
        .list_audit(&scf_console::store::AuditFilter {
            action: Some("Create API key".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].target, id);
    assert!(audit[0].outcome.contains("from the command line"));
}

/// A running scf-console binary on a data folder, with the test suite's API key.
pub(crate) struct Server {
    pub(crate) child: std::process::Child,
    pub(crate) addr: String,
    /// Every line the server has logged so far.
    pub(crate) log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    pub(crate) fn start(data: &std::path::Path) -> Server {
        Server::start_with(data, |_| {})
    }

    /// Starts it with more settings (environment, limits) given by `configure`.
    pub(crate) fn start_with(
        data: &std::path::Path,
        configure: impl FnOnce(&mut Command),
    ) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_scf-console"));
        command
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("RUST_LOG", "info")
            .env("SCF_SECRET_ID", crate::support::api::SECRET_ID)
            .env("SCF_SECRET_KEY", crate::support::api::SECRET_KEY)
            .env("SCF_ADMIN_PASSWORD", crate::support::ADMIN_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        configure(&mut command);
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let addr = loop {
            let line = lines.next().expect("server exited").unwrap();
            let addr = line
                .split("listening on ")
                .nth(1)
                .and_then(|rest| {
                    rest.strip_prefix("http://")
                        .or_else(|| rest.strip_prefix("https://"))
                })
                // Plain text ends the address with a space, a JSON line with a quote.
                .map(|rest| {
                    rest.split(|c: char| c.is_whitespace() || c == '"')
                        .next()
                        .unwrap()
                        .to_string()
                });
            log.lock().unwrap().push(line);
            if let Some(addr) = addr {
                break addr;
            }
        };
        // Keep reading the log so the server never blocks on a full pipe.
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        Server { child, addr, log }
    }

    /// The log so far, one line each.
    pub(crate) fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// A signed SCF API call over a real socket; fails the test unless it succeeds.
    pub(crate) fn api(&self, action: &str, params: serde_json::Value) -> serde_json::Value {
        let value = self.api_answer(action, params);
        assert!(value["Error"].is_null(), "{action}: {value}");
        value
    }

    /// A signed SCF API call over a real socket: its `Response`, success or error.
    pub(crate) fn api_answer(&self, action: &str, params: serde_json::Value) -> serde_json::Value {
        self.api_raw(action, ApiCall::Post(&params.to_string()))
    }

    /// An SCF API call over a real socket, signed as `call` says: its `Response`.
    pub(crate) fn api_raw(&self, action: &str, call: ApiCall<'_>) -> serde_json::Value {
        use scf_console::scf::tc3::{SignInput, sha256_hex, sign, utc_date};
        let (method, target, query, content_type, body) = match call {
            ApiCall::Post(body) | ApiCall::UnsignedPost(body) => {
                ("POST", "/".to_string(), "", "application/json", body)
            }
            ApiCall::Get(query) => (
                "GET",
                format!("/?{query}"),
                query,
                "application/x-www-form-urlencoded",
                "",
            ),
        };
        let unsigned = matches!(call, ApiCall::UnsignedPost(_));
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let signature = sign(
            crate::support::api::SECRET_KEY,
            &SignInput {
                method,
                query,
                headers: &[("content-type", content_type), ("host", &self.addr)],
                payload_hash: &sha256_hex(if unsigned {
                    b"UNSIGNED-PAYLOAD"
                } else {
                    body.as_bytes()
                }),
                timestamp,
            },
        );
        let unsigned_header = if unsigned {
            "X-TC-Content-SHA256: UNSIGNED-PAYLOAD\r\n"
        } else {
            ""
        };
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        write!(
            stream,
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             X-TC-Action: {action}\r\nX-TC-Version: 2018-04-16\r\nX-TC-Timestamp: {timestamp}\r\n{unsigned_header}\
             Authorization: TC3-HMAC-SHA256 Credential={}/{}/scf/tc3_request, SignedHeaders=content-type;host, Signature={signature}\r\n\
             Connection: close\r\n\r\n{body}",
            self.addr,
            body.len(),
            crate::support::api::SECRET_ID,
            utc_date(timestamp)
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let json = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        value["Response"].clone()
    }
}

/// How an API call is sent.
#[derive(Clone, Copy)]
pub(crate) enum ApiCall<'a> {
    /// A JSON body, signed.
    Post(&'a str),
    /// A JSON body left out of the signature (`UNSIGNED-PAYLOAD`).
    UnsignedPost(&'a str),
    /// Parameters in the (signed) query string.
    Get(&'a str),
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kill -9 during load, then restart: every accepted event is there and ends in exactly one
/// terminal state; events that were running are requeued while retries remain, failed after.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_loses_no_accepted_event() {
    use scf_console::domain::event::EventStatus;
    use serde_json::json;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let code =
        "import time\ndef main_handler(event, context):\n    time.sleep(1.5)\n    return 'done'\n";
    for (name, retries) in [("slow-retry", 1), ("slow-once", 0)] {
        server.api(
            "CreateFunction",
            json!({"FunctionName": name, "Runtime": "Python3.10", "AsyncRunEnable": "TRUE", "TraceEnable": "TRUE",
                   "Timeout": 30, "Code": {"ZipFile": crate::support::api::zip_base64(&[("index.py", code)])}}),
        );
        server.api(
            "UpdateFunctionEventInvokeConfig",
            json!({"FunctionName": name, "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": retries}], "MsgTTL": 3600}}),
        );
    }
    let mut accepted = Vec::new();
    for i in 0..12 {
        let name = if i % 2 == 0 {
            "slow-retry"
        } else {
            "slow-once"
        };
        let answer = server.api(
            "Invoke",
            json!({"FunctionName": name, "InvocationType": "Event", "ClientContext": "{}"}),
        );
        accepted.push((
            name,
            answer["Result"]["FunctionRequestId"]
                .as_str()
                .unwrap()
                .to_string(),
        ));
    }

    // Look at the store as the server writes it, and kill it once events are running.
    let url = format!("sqlite://{}", data.join("scf-console.db").display());
    let store = scf_console::store::open(&url).await.unwrap();
    let running =
        crate::support::wait_for("events to be running", Duration::from_secs(30), || async {
            let mut running = Vec::new();
            for (name, id) in &accepted {
                let e = store.get_event(id).await.unwrap().unwrap();
                let started = store
                    .event_timeline(e.id)
                    .await
                    .unwrap()
                    .iter()
                    .any(|t| t.detail.starts_with("Started"));
                if e.status == EventStatus::Running && started {
                    running.push((*name, id.clone()));
                }
            }
            (running.len() >= 2).then_some(running)
        })
        .await;
    let mut server = server;
    server.child.kill().unwrap(); // SIGKILL: no shutdown, no flush.
    server.child.wait().unwrap();

    let restarted = Server::start(&data);
    let ended = crate::support::wait_for("every event to end", Duration::from_secs(60), || async {
        let mut all = Vec::new();
        for (name, id) in &accepted {
            let e = store
                .get_event(id)
                .await
                .unwrap()
                .expect("every accepted event is kept");
            if !e.status.is_terminal() {
                return None;
            }
            all.push((*name, e));
        }
        Some(all)
    })
    .await;
    for (name, e) in &ended {
        let seen_running = running.iter().any(|(_, id)| *id == e.request_id);
        let steps: Vec<String> = store
            .event_timeline(e.id)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.detail)
            .collect();
        // Claimed events count as running too: the kill may have caught some between claim and
        // start, and those are recovered the same way.
        let recovered = steps
            .iter()
            .any(|s| s.contains("the server stopped while it ran"));
        assert!(
            recovered || !seen_running,
            "an event seen running was recovered: {steps:?}"
        );
        match (*name, recovered) {
            ("slow-retry", true) => {
                assert_eq!(
                    (e.status, e.attempt),
                    (EventStatus::Finished, 2),
                    "{steps:?}"
                );
                assert!(
                    steps
                        .iter()
                        .any(|s| s == "Requeued for attempt 2: the server stopped while it ran."),
                    "{steps:?}"
                );
            }
            ("slow-once", true) => {
                assert_eq!(
                    (e.status, e.status_code),
                    (EventStatus::Failed, Some(439)),
                    "{steps:?}"
                );
                assert!(
                    steps.last().unwrap().contains("no retries remain"),
                    "{steps:?}"
                );
            }
            _ => assert_eq!(
                (e.status, e.attempt),
                (EventStatus::Finished, 1),
                "{steps:?}"
            ),
        }
        let finals = steps
            .iter()
            .filter(|s| s.starts_with("Finished") || s.starts_with("Failed"))
            .count();
        assert_eq!(finals, 1, "exactly one terminal transition: {steps:?}");
    }
    // The API agrees with the store.
    let (_, first) = &accepted[0];
    let status = restarted.api("GetAsyncEventStatus", json!({"InvokeRequestId": first}));
    assert_eq!(status["Result"]["Status"], "FINISHED");
    store.close().await;
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

/// The database holds every function's code, environment values and the API SecretKeys: other
/// users of the machine can read none of it.
#[test]
fn the_data_folder_and_database_are_the_users_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    server.api("ListFunctions", serde_json::json!({}));
    assert_eq!(mode_of(&data), 0o700, "the data folder");
    for file in ["scf-console.db", "scf-console.db-wal", "scf-console.db-shm"] {
        assert_eq!(mode_of(&data.join(file)), 0o600, "{file}");
    }
    drop(server);

    // A folder and database the operator opened up are left so, with a warning and the fix.
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let db = data.join("scf-console.db");
    std::fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let server = Server::start(&data);
    server.api("ListFunctions", serde_json::json!({}));
    assert_eq!(mode_of(&data), 0o755);
    let log = server.log_text();
    assert!(
        log.contains(&format!("chmod 700 {}", data.display())),
        "{log}"
    );
    assert!(
        log.contains(&format!("chmod 600 {}", db.display())),
        "{log}"
    );
}

/// Neither the query of a GET call, nor a body, nor a signature, key or environment value
/// reaches the log, whether the call succeeds or is refused, even at the debug level.
#[test]
fn secrets_sent_to_the_api_never_reach_the_log() {
    use serde_json::json;
    const MARKER: &str = "s3cr3tMARKER7f1c";
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), |c| {
        c.env("RUST_LOG", "debug");
    });
    let code = "def main_handler(event, context):\n    return 1\n";
    server.api(
        "CreateFunction",
        json!({"FunctionName": "keeper", "Runtime": "Python3.10",
               "Environment": {"Variables": [{"Key": "TOKEN", "Value": MARKER}]},
               "Code": {"ZipFile": crate::support::api::zip_base64(&[("index.py", code)])}}),
    );
    let refused = [
        server.api_raw(
            "UpdateFunctionConfiguration",
            ApiCall::Get(&format!(
                "FunctionName=ghost&Environment.Variables.0.Key=TOKEN&Environment.Variables.0.Value={MARKER}"
            )),
        ),
        server.api_raw(
            "Invoke",
            ApiCall::Get(&format!("FunctionName={MARKER}&ClientContext={MARKER}")),
        ),
        server.api_raw(
            "Invoke",
            ApiCall::Post(&json!({"FunctionName": MARKER, "ClientContext": MARKER}).to_string()),
        ),
        server.api_raw(
            "Invoke",
            ApiCall::UnsignedPost(&json!({"FunctionName": "keeper", "ClientContext": MARKER}).to_string()),
        ),
    ];
    for answer in &refused {
        assert!(answer["Error"]["Code"].is_string(), "{answer}");
    }
    assert_eq!(refused[3]["Error"]["Code"], "AuthFailure.SignatureFailure");
    // A forged signature, in the query and in the Authorization header.
    let forged = http_get_with(
        &server.addr,
        &format!("/?FunctionName=ghost&Token={MARKER}"),
        &format!(
            "Content-Type: application/json\r\nX-TC-Action: GetFunction\r\nX-TC-Timestamp: 1\r\n\
             Authorization: TC3-HMAC-SHA256 \
             Credential=AKIDnobody/2026-01-01/scf/tc3_request, SignedHeaders=content-type;host, \
             Signature={MARKER}\r\n"
        ),
    );
    assert!(forged.contains("AuthFailure"), "{forged}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = server.log_text();
        if log.matches("API call refused").count() >= 5 || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(log.matches("API call refused").count() >= 5, "{log}");
    assert!(log.contains("function created"), "{log}");
    for secret in [
        MARKER,
        crate::support::api::SECRET_KEY,
        "Signature=",
        "FunctionName=",
    ] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
}

#[test]
fn unsigned_payloads_are_accepted_only_when_enabled() {
    let body = serde_json::json!({}).to_string();
    for (setting, code) in [
        (None, "AuthFailure.SignatureFailure"),
        (Some("false"), "AuthFailure.SignatureFailure"),
        (Some("true"), ""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start_with(&dir.path().join("data"), |c| {
            if let Some(value) = setting {
                c.env("SCF_ALLOW_UNSIGNED_PAYLOAD", value);
            }
        });
        let answer = server.api_raw("ListFunctions", ApiCall::UnsignedPost(&body));
        assert_eq!(
            answer["Error"]["Code"].as_str().unwrap_or_default(),
            code,
            "{setting:?}: {answer}"
        );
    }
}

/// A descriptor the server inherited from whoever started it (here fd 9, a file the test
/// holds) never reaches a function handler.
#[test]
fn inherited_descriptors_do_not_reach_handlers() {
    use serde_json::json;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("parent-secret");
    std::fs::write(&secret, "the parent's").unwrap();
    let file = std::fs::File::open(&secret).unwrap();
    let (dev, ino) = {
        let meta = file.metadata().unwrap();
        (meta.dev(), meta.ino())
    };
    let fd = file.as_raw_fd();
    let server = Server::start_with(&dir.path().join("data"), |c| {
        // SAFETY: dup2 is async-signal-safe; the copy on 9 is not close-on-exec.
        unsafe {
            c.pre_exec(move || {
                if libc::dup2(fd, 9) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    let python = "import os\n\
                  def main_handler(event, context):\n\
                  \x20   try:\n\
                  \x20       st = os.fstat(9)\n\
                  \x20       return '%d, %d' % (st.st_dev, st.st_ino)\n\
                  \x20   except OSError:\n\
                  \x20       return 'closed'\n";
    let node = "exports.main_handler = async () => {\n\
                \x20 try {\n\
                \x20   const st = require('fs').fstatSync(9);\n\
                \x20   return `${st.dev}, ${st.ino}`;\n\
                \x20 } catch (e) {\n\
                \x20   return 'closed';\n\
                \x20 }\n\
                };\n";
    // Both runtimes, which also shows that instances start under the server's private file
    // modes (as the sandbox user, when the tests run as root).
    for (name, runtime, file, code) in [
        ("fds-py", "Python3.10", "index.py", python),
        ("fds-js", "Nodejs18.15", "index.js", node),
    ] {
        server.api(
            "CreateFunction",
            json!({"FunctionName": name, "Runtime": runtime, "AsyncRunEnable": "FALSE",
                   "Code": {"ZipFile": crate::support::api::zip_base64(&[(file, code)])}}),
        );
        let answer = server.api(
            "Invoke",
            json!({"FunctionName": name, "ClientContext": "{}"}),
        );
        assert_eq!(answer["Result"]["InvokeResult"], 0, "{runtime}: {answer}");
        let seen = answer["Result"]["RetMsg"].as_str().unwrap();
        assert!(
            !seen.contains(&format!("{dev}, {ino}")),
            "{runtime}: the handler sees the parent's file on fd 9: {seen}"
        );
    }
    drop(file);
}

/// HTTPS served by the binary itself: a browser's client gets the console with HSTS; plain
/// HTTP on the same port gets no page; a certificate that cannot be used stops the start with
/// its file named.
#[tokio::test(flavor = "multi_thread")]
async fn the_binary_serves_https_with_hsts() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile::tempdir().unwrap();
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.key_pair.serialize_pem()).unwrap();
    let server = Server::start_with(&dir.path().join("data"), |c| {
        c.arg("--tls-cert").arg(&cert).arg("--tls-key").arg(&key);
    });
    assert!(
        server.log_text().contains("listening on https://"),
        "{}",
        server.log_text()
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(generated.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let send = |request: String| {
        let (client, addr) = (client.clone(), server.addr.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
                .connect(name, tcp)
                .await
                .expect("the handshake succeeds with the server's certificate");
            tls.write_all(request.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            let _ = tls.read_to_end(&mut answer).await;
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    // The session cookie is Secure: the browser never sends it over plain HTTP.
    let body = format!("UserName=admin&Password={}", crate::support::ADMIN_PASSWORD);
    let login = send(format!(
        "POST /login HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
    .await;
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    let set_cookie = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let cookie = session_cookie(&login);
    let page = send(format!(
        "GET /scf/ap-guangzhou/default/functions HTTP/1.1\r\nHost: localhost:{port}\r\n{cookie}Connection: close\r\n\r\n"
    ))
    .await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("Function Service"));
    assert!(
        page.to_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{page}"
    );

    // Plain HTTP on the HTTPS port: no page, and the server serves HTTPS on.
    let mut plain = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    let health = send(format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"
    ))
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // A key that does not belong to the certificate stops the start, naming both files.
    let other = rcgen::KeyPair::generate().unwrap();
    let wrong = dir.path().join("other-key.pem");
    std::fs::write(&wrong, other.serialize_pem()).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_scf-console"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data2"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&wrong)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("cannot be used together") && said.contains("other-key.pem"),
        "{said}"
    );
}

/// The start-up log says which isolation is in force; with SCF_REQUIRE_ISOLATION a server
/// that cannot give each function a user of its own (not root) refuses to start, saying why.
#[test]
fn the_log_says_which_isolation_is_in_force_and_the_server_can_insist_on_it() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root, to start the server both as root and as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), |c| {
        c.env("SCF_REQUIRE_ISOLATION", "true");
    });
    let log = server.log_text();
    assert!(
        log.contains("sandbox: each function runs as a user of its own, each instance in a control group, a PID namespace and a private view of the file system of its own"),
        "{log}"
    );
    drop(server);

    // The same binary as an ordinary user.
    let data = dir.path().join("as-nobody");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).unwrap();
    let run = |require: bool| {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_scf-console"))
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("SCF_ADMIN_PASSWORD", crate::support::ADMIN_PASSWORD)
            .env("TMPDIR", &data)
            .env("NO_COLOR", "1");
        if require {
            command.env("SCF_REQUIRE_ISOLATION", "true");
        }
        command
    };
    let refused = run(true).output().unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("SCF_REQUIRE_ISOLATION") && said.contains("does not run as root"),
        "{said}"
    );
    // Without the setting it starts, and warns.
    let mut child = run(false)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut warned = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        warned |= line.contains("sandbox: The server does not run as root");
        if line.contains("listening on") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        warned,
        "the start-up log warns that functions are not isolated"
    );
}
