//! Hostile clients against a real server on a local port: each request that once took the
//! server down or held its resources is refused with a clear answer, and the server goes on
//! serving everyone else.

use crate::support::api::{SECRET_ID, SECRET_KEY};
use crate::support::events::{add_events, function_id, paused_app};
use crate::support::*;
use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::routing;
use scf_console::app;
use scf_console::scf::tc3::{SignInput, sha256_hex, sign, utc_date};
use scf_console::state::ServerLimits;
use serde_json::Value;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// How long a test waits for something that should happen at once before calling it a hang.
const HANG: Duration = Duration::from_secs(15);

/// The login each served console's page requests carry: the attacks here come from a user
/// who has one, as anyone who can reach the forms does.
static SESSIONS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<SocketAddr, String>>,
> = std::sync::LazyLock::new(Default::default);

/// Serves `app` on a free local port with the given limits.
async fn serve(app: &TestApp, limits: ServerLimits) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut state = app.state.clone();
    state.limits = limits;
    tokio::spawn(app::serve(listener, state, std::future::pending()));
    let login = app.session().expect("the test console is logged in");
    SESSIONS.lock().unwrap().insert(
        addr,
        format!(
            "Cookie: scf_session={}\r\nX-CSRF-Token: {}\r\n",
            login.cookie, login.csrf
        ),
    );
    addr
}

fn session_headers(addr: SocketAddr) -> String {
    SESSIONS
        .lock()
        .unwrap()
        .get(&addr)
        .cloned()
        .unwrap_or_default()
}

/// An answer as read off the wire.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn page(&self) -> Page {
        Page {
            status: StatusCode::from_u16(self.status).unwrap(),
            headers: self.headers.clone(),
            body: self.text(),
            bytes: self.body.clone(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("expected JSON ({e}): {}", self.text()))
    }

    fn error_code(&self) -> String {
        self.json()["Response"]["Error"]["Code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn error_message(&self) -> String {
        self.json()["Response"]["Error"]["Message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// Reads until the server closes, keeping what arrived even if the close is a reset.
async fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return bytes,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
}

fn parse_reply(bytes: &[u8]) -> Reply {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {}", String::from_utf8_lossy(bytes)));
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (k, v) = line.split_once(':').unwrap();
        headers.append(
            HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(v.trim()).unwrap(),
        );
    }
    let mut body = bytes[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        body = dechunk(&body);
    } else if let Some(n) = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
    {
        assert!(body.len() >= n, "the answer was cut short");
        body.truncate(n);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size");
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        let start = eol + 2;
        assert!(rest.len() >= start + size + 2, "the stream was cut short");
        out.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
}

/// Sends one request on its own connection and reads the whole answer.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // A server may answer and close before an oversized request is all sent; the answer is
    // what counts.
    let _ = stream.write_all(request).await;
    let bytes = timeout(HANG, read_all(&mut stream))
        .await
        .expect("the server did not answer");
    parse_reply(&bytes)
}

async fn get(addr: SocketAddr, path: &str, extra_headers: &str) -> Reply {
    let session = session_headers(addr);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{session}{extra_headers}Connection: close\r\n\r\n"
    );
    exchange(addr, request.as_bytes()).await
}

async fn post_form(addr: SocketAddr, path: &str, body: &str) -> Reply {
    let session = session_headers(addr);
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{session}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    exchange(addr, request.as_bytes()).await
}

/// A normal user still gets the console after the hostile request.
async fn still_serving(addr: SocketAddr) {
    let reply = get(addr, &functions_url("default"), "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.text().contains("Functions"));
}

const HOST: &str = "127.0.0.1:9000";

/// The head of an API call signed with the test key; `query` is the raw query string of a GET.
fn signed_head(app: &TestApp, method: &str, action: &str, query: &str, body: &[u8]) -> String {
    let timestamp = app.state.clock.now_millis() / 1000;
    let content_type = if method == "GET" {
        "application/x-www-form-urlencoded"
    } else {
        "application/json"
    };
    let signature = sign(
        SECRET_KEY,
        &SignInput {
            method,
            query,
            headers: &[("content-type", content_type), ("host", HOST)],
            payload_hash: &sha256_hex(body),
            timestamp,
        },
    );
    let target = if query.is_empty() {
        "/".to_string()
    } else {
        format!("/?{query}")
    };
    format!(
        "{method} {target} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: {content_type}\r\nX-TC-Action: {action}\r\nX-TC-Version: 2018-04-16\r\nX-TC-Region: {REGION}\r\nX-TC-Timestamp: {timestamp}\r\nAuthorization: TC3-HMAC-SHA256 Credential={SECRET_ID}/{date}/scf/tc3_request, SignedHeaders=content-type;host, Signature={signature}\r\nConnection: close\r\n",
        date = utc_date(timestamp)
    )
}

fn env_extra_attack() -> &'static str {
    "_action=add-env&_env_extra=1000000000000000"
}

#[tokio::test]
async fn asking_the_wizard_for_a_quadrillion_variable_rows_gets_a_message_not_a_crash() {
    let app = TestApp::new().await;
    let addr = serve(&app, ServerLimits::default()).await;

    let reply = post_form(addr, &new_url("default"), env_extra_attack()).await;
    assert_eq!(reply.status, 422);
    let page = reply.page();
    assert_eq!(
        page.field_error("Environment"),
        "A function can have at most 100 environment variables."
    );
    assert_eq!(page.count(".env-row"), 100);

    // A million rows, the size that once answered with a 927 MB page, is refused the same way.
    let reply = post_form(
        addr,
        &new_url("default"),
        "_action=add-env&_env_extra=1000000",
    )
    .await;
    assert_eq!(reply.status, 422);
    assert!(reply.body.len() < 1024 * 1024, "{} bytes", reply.body.len());

    // A form of thousands of fields is refused before it is decoded.
    let flood = vec!["a=1"; 5000].join("&");
    let reply = post_form(addr, &new_url("default"), &flood).await;
    assert_eq!(reply.status, 400);
    assert!(
        reply
            .page()
            .errors()
            .contains(&"The form sent 5000 fields; a console form has at most 1000.".to_string())
    );

    // Asking for one more row, as the button does, still works.
    let reply = post_form(addr, &new_url("default"), "_action=add-env&_env_extra=1").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.page().count(".env-row"), 3);
    still_serving(addr).await;
}

#[tokio::test]
async fn the_configuration_form_bounds_variable_rows_too() {
    let app = TestApp::new().await;
    app.create_function("default", "configured", &[]).await;
    let addr = serve(&app, ServerLimits::default()).await;
    let config = function_url("default", "configured", "config");

    let reply = post_form(addr, &config, env_extra_attack()).await;
    assert_eq!(reply.status, 422);
    let page = reply.page();
    assert_eq!(
        page.field_error("Environment"),
        "A function can have at most 100 environment variables."
    );
    assert!(page.count(".env-row") <= 100);

    // A variable typed into row 5000 is refused, not silently dropped.
    let reply = post_form(
        addr,
        &config,
        "MemorySize=128&Timeout=3&QpsLimit=1000&MsgTTL=21600&Environment.Variables.5000.Key=K&Environment.Variables.5000.Value=v",
    )
    .await;
    assert_eq!(reply.status, 422);
    assert!(
        reply
            .page()
            .field_error("Environment")
            .contains("at most 100")
    );
    still_serving(addr).await;
}

#[tokio::test]
async fn a_signed_query_nested_sixteen_thousand_deep_is_invalid_parameter() {
    let app = TestApp::new().await;
    app.add_key().await;
    let addr = serve(&app, ServerLimits::default()).await;

    let query = format!("{}=1", vec!["a"; 16_000].join("."));
    let head = signed_head(&app, "GET", "ListFunctions", &query, b"");
    let reply = exchange(addr, format!("{head}\r\n").as_bytes()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.error_code(), "InvalidParameter");
    assert!(
        reply.error_message().contains("at most 256 are accepted"),
        "{}",
        reply.error_message()
    );

    // Short names are held to SCF's depth as well.
    let head = signed_head(&app, "GET", "ListFunctions", "a.a.a.a.a.a.a.a.a=1", b"");
    let reply = exchange(addr, format!("{head}\r\n").as_bytes()).await;
    assert_eq!(reply.error_code(), "InvalidParameter");
    assert_eq!(
        reply.error_message(),
        "The parameter a.a.a.a.a.a.a.a.a is nested more than 8 levels deep."
    );
    still_serving(addr).await;
}

#[tokio::test]
async fn a_query_of_thousands_of_parameters_or_a_huge_name_is_invalid_parameter() {
    let app = TestApp::new().await;
    app.add_key().await;
    let addr = serve(&app, ServerLimits::default()).await;

    let many: Vec<String> = (0..5000).map(|i| format!("P{i}=1")).collect();
    let query = many.join("&");
    let head = signed_head(&app, "GET", "ListFunctions", &query, b"");
    let reply = exchange(addr, format!("{head}\r\n").as_bytes()).await;
    assert_eq!(reply.error_code(), "InvalidParameter");
    assert!(
        reply
            .error_message()
            .contains("5000 parameters; at most 1000"),
        "{}",
        reply.error_message()
    );

    let query = format!("{}=1", "N".repeat(20_000));
    let head = signed_head(&app, "GET", "ListFunctions", &query, b"");
    let reply = exchange(addr, format!("{head}\r\n").as_bytes()).await;
    assert_eq!(reply.error_code(), "InvalidParameter");
    assert!(reply.error_message().contains("at most 256"));

    // The same key still lists functions.
    let head = signed_head(&app, "GET", "ListFunctions", "Limit=5", b"");
    let reply = exchange(addr, format!("{head}\r\n").as_bytes()).await;
    assert!(
        reply.json()["Response"]["Functions"].is_array(),
        "{}",
        reply.text()
    );
    still_serving(addr).await;
}

#[tokio::test]
async fn a_request_head_over_400_kb_is_refused() {
    let app = TestApp::new().await;
    let addr = serve(&app, ServerLimits::default()).await;

    let path = format!("/?q={}", "x".repeat(500 * 1024));
    let reply = get(addr, &path, "").await;
    assert_eq!(reply.status, 431);
    let many: String = (0..200).map(|i| format!("X-Filler-{i}: 1\r\n")).collect();
    let reply = get(addr, "/healthz", &many).await;
    assert_eq!(reply.status, 431);
    still_serving(addr).await;
}

#[tokio::test]
async fn a_client_that_sends_half_a_request_head_is_disconnected_after_the_header_timeout() {
    let app = TestApp::new().await;
    let limits = ServerLimits {
        header_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    };
    let addr = serve(&app, limits).await;

    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    timeout(HANG, read_all(&mut slow))
        .await
        .expect("the half-sent request kept its connection open");
    assert!(started.elapsed() >= Duration::from_millis(250));

    // A keep-alive connection left idle after its answer is closed the same way.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = timeout(HANG, read_all(&mut idle))
        .await
        .expect("the idle connection was kept open");
    assert!(String::from_utf8_lossy(&answered).starts_with("HTTP/1.1 200"));
    still_serving(addr).await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = TestApp::new().await;
    let limits = ServerLimits {
        max_connections: 1,
        ..ServerLimits::default()
    };
    let addr = serve(&app, limits).await;

    // The first client holds the only connection, kept alive after its answer.
    let mut first = TcpStream::connect(addr).await.unwrap();
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = timeout(HANG, first.read(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // The second is not served while the first is open…
    let mut second = TcpStream::connect(addr).await.unwrap();
    second
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let waited = timeout(Duration::from_millis(500), second.read(&mut buf)).await;
    assert!(waited.is_err(), "served beyond the cap: {waited:?}");

    // …and is served as soon as the first closes.
    drop(first);
    let bytes = timeout(HANG, read_all(&mut second))
        .await
        .expect("the waiting client was never served");
    let reply = parse_reply(&bytes);
    assert_eq!((reply.status, reply.text().as_str()), (200, "ok"));
}

/// Sends the head of a 70 MB call and a little of its body, then waits for the answer without
/// sending the rest: a server that buffers the body first never answers.
async fn answer_to_a_huge_body(addr: SocketAddr, head: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("{head}Content-Length: {}\r\n\r\n", 70 * 1024 * 1024);
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(&[b'{'; 1024]).await.unwrap();
    let bytes = timeout(HANG, read_all(&mut stream))
        .await
        .expect("the server waited for the whole body");
    parse_reply(&bytes)
}

#[tokio::test]
async fn a_huge_body_is_refused_from_its_headers_without_being_read() {
    let app = TestApp::new().await;
    app.add_key().await;
    let addr = serve(&app, ServerLimits::default()).await;
    let base = format!(
        "POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\nX-TC-Action: CreateFunction\r\nX-TC-Version: 2018-04-16\r\nX-TC-Timestamp: {}\r\n",
        app.state.clock.now_millis() / 1000
    );

    let garbled = format!("{base}Authorization: garbage\r\n");
    let reply = answer_to_a_huge_body(addr, &garbled).await;
    assert_eq!(reply.error_code(), "AuthFailure.InvalidAuthorization");

    let unknown = format!(
        "{base}Authorization: TC3-HMAC-SHA256 Credential=AKIDnobody/2026-11-29/scf/tc3_request, SignedHeaders=content-type;host, Signature=00\r\n"
    );
    let reply = answer_to_a_huge_body(addr, &unknown).await;
    assert_eq!(reply.error_code(), "AuthFailure.SecretIdNotFound");

    // A known key, but more than an Invoke may carry: refused by its declared length.
    let head = signed_head(&app, "POST", "Invoke", "", b"");
    let reply = answer_to_a_huge_body(addr, &head).await;
    assert_eq!(reply.error_code(), "RequestSizeLimitExceeded");
    assert!(
        reply.error_message().contains("7 MB that Invoke accepts"),
        "{}",
        reply.error_message()
    );
    still_serving(addr).await;
}

#[tokio::test]
async fn a_body_sent_too_slowly_is_refused_after_the_body_timeout() {
    let app = TestApp::new().await;
    app.add_key().await;
    let limits = ServerLimits {
        body_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    };
    let addr = serve(&app, limits).await;

    let head = signed_head(&app, "POST", "ListFunctions", "", b"{}");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{head}Content-Length: 100\r\n\r\n{{").as_bytes())
        .await
        .unwrap();
    let bytes = timeout(HANG, read_all(&mut stream))
        .await
        .expect("the trickled body held the server");
    let reply = parse_reply(&bytes);
    assert_eq!(reply.error_code(), "InvalidParameter");
    assert!(
        reply
            .error_message()
            .contains("did not arrive within 300ms"),
        "{}",
        reply.error_message()
    );

    // A console form trickled the same way gets a plain refusal.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST {} HTTP/1.1\r\nHost: localhost\r\n{}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nFunctionName=",
                new_url("default"),
                session_headers(addr),
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let bytes = timeout(HANG, read_all(&mut stream))
        .await
        .expect("the trickled form held the server");
    let reply = parse_reply(&bytes);
    assert_eq!(reply.status, 400);
    assert!(
        reply.text().contains("did not arrive within 300ms"),
        "{}",
        reply.text()
    );
    still_serving(addr).await;
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("the export is valid gzip");
    text
}

const BROWSER: &str = "Accept-Encoding: gzip, deflate, br\r\n";

#[tokio::test]
async fn exports_reach_a_browser_whole_through_gzip() {
    let app = paused_app().await;
    app.create_function(
        "default",
        "exported",
        &[("AsyncRunEnable", "TRUE"), ("TraceEnable", "TRUE")],
    )
    .await;
    let f = function_id(&app, "exported").await;
    let addr = serve(&app, ServerLimits::default()).await;
    let events = function_url("default", "exported", "events");
    let export = |kind: &'static str| {
        let url = format!("{events}/-/export.{kind}");
        async move {
            let reply = get(addr, &url, BROWSER).await;
            assert_eq!(reply.status, 200, "{kind}");
            assert_eq!(reply.header("content-encoding"), "gzip", "{kind}");
            gunzip(&reply.body)
        }
    };

    // No events yet: the CSV is its header row, the NDJSON empty.
    let csv = export("csv").await;
    assert_eq!(
        csv,
        "InvokeRequestId,Status,StatusCode,InvokeType,Qualifier,StartTime,EndTime,DurationMs,Attempts\n"
    );
    assert_eq!(export("ndjson").await, "");

    let mut added = 0;
    for count in [3, 1500] {
        let ids: Vec<String> = (added..added + count)
            .map(|i| format!("x-{i:05}"))
            .collect();
        add_events(&app, f, &ids, |i| START + (added + i) as i64).await;
        added += count;
        app.state.clock.advance(Duration::from_secs(10));

        let csv = export("csv").await;
        let rows: Vec<&str> = csv.lines().skip(1).collect();
        assert_eq!(rows.len(), added, "every event in the CSV");
        assert!(rows.iter().all(|r| r.contains(",RUNNING,")));
        let ndjson = export("ndjson").await;
        let ids: std::collections::BTreeSet<String> = ndjson
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["InvokeRequestId"].to_string())
            .collect();
        assert_eq!(ids.len(), added, "every event once in the NDJSON");
    }
    still_serving(addr).await;
}

async fn handler_with_a_bug() -> &'static str {
    panic!("a handler bug")
}

#[tokio::test]
async fn a_handler_that_panics_gets_a_500_and_the_server_keeps_serving() {
    // The test's runtime has one thread, so the server's tasks log here.
    let (log, _logging) = Log::capture();
    let routes = Router::new()
        .route("/boom", routing::get(handler_with_a_bug))
        .route("/healthz", routing::get(|| async { "ok" }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ServerLimits::default();
    tokio::spawn(async move {
        let app = app::with_layers(routes, limits.body_timeout, Default::default());
        app::serve_router(listener, app, &limits, None, std::future::pending()).await
    });

    let reply = get(addr, "/boom?secret=1", "").await;
    assert_eq!(reply.status, 500);
    assert!(
        reply.text().contains("Something went wrong"),
        "{}",
        reply.text()
    );
    assert!(!reply.text().contains("a handler bug"), "no details leak");
    assert!(!reply.header("x-request-id").is_empty());
    let logged = log.text();
    let line = logged
        .lines()
        .find(|l| l.contains("request handler panicked"))
        .unwrap_or_else(|| panic!("the panic was not logged: {logged}"));
    assert!(line.contains("method=GET"), "{line}");
    assert!(line.contains("route=/boom"), "{line}");
    assert!(line.contains("a handler bug"), "{line}");
    assert!(
        !logged.contains("secret=1"),
        "the query was logged: {logged}"
    );

    let reply = get(addr, "/healthz", "").await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "ok"));
}

#[tokio::test]
async fn shutting_down_lets_a_request_in_flight_finish_and_takes_no_new_ones() {
    let release = Arc::new(tokio::sync::Notify::new());
    let started = Arc::new(tokio::sync::Notify::new());
    let (r, s) = (release.clone(), started.clone());
    let routes = Router::new().route(
        "/slow",
        routing::get(move || {
            let (release, started) = (r.clone(), s.clone());
            async move {
                started.notify_one();
                release.notified().await;
                "finished"
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let limits = ServerLimits::default();
    let server = tokio::spawn(async move {
        let app = app::with_layers(routes, limits.body_timeout, Default::default());
        app::serve_router(listener, app, &limits, None, async {
            let _ = stopped.await;
        })
        .await
    });

    let in_flight = tokio::spawn(get(addr, "/slow", ""));
    timeout(HANG, started.notified()).await.unwrap();
    stop.send(()).unwrap();
    // New clients are no longer taken once the listener is gone.
    wait_for("the listener to close", HANG, || async {
        TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
    assert!(
        !server.is_finished(),
        "the server waits for the request in flight"
    );

    release.notify_one();
    let reply = timeout(HANG, in_flight).await.unwrap().unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (200, "finished"));
    timeout(HANG, server).await.unwrap().unwrap().unwrap();
}
