//! A console running in-process on a fresh SQLite file, and helpers to read its pages the way a
//! user sees them (CSS selectors over the HTML).

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use scf_console::app::router;
use scf_console::clock::Clock;
use scf_console::domain::runtime::Interpreters;
use scf_console::engine::EngineConfig;
use scf_console::engine::interpreters;
use scf_console::state::AppState;
use scf_console::web::urls::encode;
use scraper::{Html, Selector};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;
use tower::ServiceExt;

pub const REGION: &str = "ap-guangzhou";
/// 2026-11-29 10:00:00 UTC: tests run on a clock they control.
pub const START: i64 = 1_795_946_400_000;

/// The interpreters of this machine, asked once per test run.
pub async fn machine() -> Interpreters {
    static FOUND: OnceCell<Interpreters> = OnceCell::const_new();
    FOUND
        .get_or_init(|| async { interpreters::detect("/usr/bin/python3", "node").await })
        .await
        .clone()
}

/// The engine as tests run it: short grace periods so terminations are quick, and user ids of
/// its own, as a server on a machine of its own would have: the test consoles of one run
/// share the machine, and function ids repeat from one console to the next.
pub fn test_engine() -> EngineConfig {
    static CONSOLES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CONSOLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 90;
    EngineConfig {
        workers: 8,
        per_function: 4,
        grace_period: Duration::from_secs(2),
        shutdown_grace: Duration::from_secs(2),
        poll_interval: Duration::from_millis(100),
        uids: scf_console::engine::runtime::sandbox::UidRange {
            first: 200_000 + n * 1_000,
            count: 1_000,
        },
        // The server binary runs as a spawned instance's init, as it does in production.
        init: Some(env!("CARGO_BIN_EXE_scf-console").into()),
        ..EngineConfig::default()
    }
}

/// The pids, as the test sees them, of the interpreters running as `uid`: a handler knows its
/// own pid only inside its instance's PID namespace (where the interpreter is the second
/// process), so a test that must signal it finds it by its user.
pub fn interpreters_of(uid: u32) -> Vec<i32> {
    let field = |status: &str, name: &str| -> Option<String> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        Some(line.split_whitespace().nth(1)?.to_string())
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                return false;
            };
            let inner = status
                .lines()
                .find(|l| l.starts_with("NSpid:"))
                .and_then(|l| l.split_whitespace().last().map(str::to_string));
            field(&status, "Uid:") == Some(uid.to_string()) && inner.as_deref() == Some("2")
        })
        .collect()
}

/// Whether some process still holds the lock a handler took on `path` with `flock`: tests
/// follow a handler's processes by their locks, as their pids are those of the instance's
/// own PID namespace, not the ones the test sees.
pub fn still_locked(path: &std::path::Path) -> bool {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path).expect("the handler made its lock file");
    // SAFETY: flock on a descriptor of ours; the lock goes with the file when it drops.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
}

/// Waits until `check` answers Some, polling; fails the test after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Turns at the whole machine. Stories that load both cores for a minute (three servers running
/// ten thousand events) take it alone; stories timed against a person's patience (a browser
/// waiting for a page) take it together, so they never run beside such a load. Everything
/// else runs regardless.
pub static WHOLE_MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    /// The console session requests are sent with: the first admin's, unless a test logs in
    /// as someone else or logs out.
    pub login: Mutex<Option<Login>>,
    _dir: tempfile::TempDir,
    _schema: Option<postgres::Schema>,
}

/// The password of the first admin, `admin`, in every test console.
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// A logged-in session: the cookie's value and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Login {
    pub cookie: String,
    pub csrf: String,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_interpreters(machine().await).await
    }

    pub async fn with_interpreters(interpreters: Interpreters) -> Self {
        Self::with(interpreters, test_engine()).await
    }

    pub async fn with_engine(config: EngineConfig) -> Self {
        Self::with(machine().await, config).await
    }

    /// A console on a fresh store: a SQLite file, or with `SCF_TEST_STORE=postgres` a schema
    /// of its own on the test PostgreSQL, so the whole suite can run on either backend.
    pub async fn with(interpreters: Interpreters, engine: EngineConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if std::env::var("SCF_TEST_STORE").as_deref() == Ok("postgres") {
            let schema = postgres::Schema::create()
                .await
                .expect("SCF_TEST_STORE=postgres needs a PostgreSQL server");
            let store = scf_console::store::open(schema.url()).await.unwrap();
            let mut app = Self::on(dir, store, interpreters, engine).await;
            app._schema = Some(schema);
            return app;
        }
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = scf_console::store::open(&url).await.unwrap();
        Self::on(dir, store, interpreters, engine).await
    }

    /// A console whose SQLite store the test also holds, to make its disk fail on cue.
    pub async fn with_sqlite(
        engine: EngineConfig,
    ) -> (
        Self,
        std::sync::Arc<scf_console::store::sqlite::SqliteStore>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = std::sync::Arc::new(
            scf_console::store::sqlite::SqliteStore::open(&url)
                .await
                .unwrap(),
        );
        let app = Self::on(dir, store.clone(), machine().await, engine).await;
        (app, store)
    }

    /// A console on a database file that other consoles share, on the system clock: to the
    /// store and the engine it is another process on the same store.
    pub async fn sharing(db: &std::path::Path, engine: EngineConfig) -> Self {
        Self::sharing_url(&format!("sqlite://{}", db.display()), engine).await
    }

    /// A console on the store `url` names, which other consoles share, on the system clock.
    pub async fn sharing_url(url: &str, engine: EngineConfig) -> Self {
        let store = scf_console::store::open(url).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        Self::on_clock(dir, store, machine().await, engine, Clock::System).await
    }

    async fn on(
        dir: tempfile::TempDir,
        store: scf_console::store::DynStore,
        interpreters: Interpreters,
        engine: EngineConfig,
    ) -> Self {
        Self::on_clock(dir, store, interpreters, engine, Clock::manual(START)).await
    }

    async fn on_clock(
        dir: tempfile::TempDir,
        store: scf_console::store::DynStore,
        interpreters: Interpreters,
        engine: EngineConfig,
        clock: Clock,
    ) -> Self {
        AskEachTime::install();
        let state = AppState::with_engine(
            store,
            clock,
            vec![REGION.into(), "ap-shanghai".into()],
            interpreters,
            Duration::from_secs(72 * 3600),
            engine,
        )
        .await
        .unwrap();
        // Long enough that tests moving the clock by days stay logged in; expiry has its own.
        let mut state = state;
        state.sessions.ttl = Duration::from_secs(30 * 86_400);
        scf_console::accounts::ensure_first_admin(
            &state.store,
            state.clock.now_millis(),
            Some(ADMIN_PASSWORD),
        )
        .await
        .unwrap();
        let app = TestApp {
            router: router(state.clone()),
            state,
            login: Mutex::new(None),
            _dir: dir,
            _schema: None,
        };
        let page = app.log_in("admin", ADMIN_PASSWORD).await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "the first admin logs in"
        );
        app
    }

    /// Logs in through the login form; on success, later requests carry this session.
    pub async fn log_in(&self, user: &str, password: &str) -> Page {
        let page = self
            .send_anonymous(
                form_request("/login")
                    .body(form_body(&[("UserName", user), ("Password", password)]))
                    .unwrap(),
            )
            .await;
        let cookie = page
            .headers
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("scf_session="))
            .and_then(|v| v.split(';').next())
            .filter(|v| !v.is_empty())
            .map(str::to_string);
        if let Some(cookie) = cookie {
            let hash = scf_console::accounts::token_hash(&cookie);
            let session = self
                .state
                .store
                .session(&hash, self.state.clock.now_millis())
                .await
                .unwrap()
                .expect("a session after a successful login");
            *self.login.lock().unwrap() = Some(Login {
                cookie,
                csrf: session.csrf_token,
            });
        }
        page
    }

    /// Creates a user with `role` (as the first admin would) and logs in as them.
    pub async fn log_in_as_new(&self, user: &str, role: &str) -> Page {
        let password = format!("{user}-password");
        scf_console::accounts::create_user(&self.state, user, role, &password)
            .await
            .unwrap();
        self.log_in(user, &password).await
    }

    /// The session requests are sent with now.
    pub fn session(&self) -> Option<Login> {
        self.login.lock().unwrap().clone()
    }

    /// Sends without any session cookie or token, as someone who has not logged in.
    /// Sends a request as it comes: to the console as a browser sends it, asking for a
    /// compressed answer (as every browser does) and reading it decompressed, so every
    /// console test also goes through the compression layer.
    pub async fn send_anonymous(&self, mut req: Request<Body>) -> Page {
        let browser = !req.headers().contains_key("x-tc-action");
        if browser && !req.headers().contains_key(header::ACCEPT_ENCODING) {
            req.headers_mut().insert(
                header::ACCEPT_ENCODING,
                BROWSER_ACCEPT_ENCODING.parse().unwrap(),
            );
        }
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let raw = res.into_body().collect().await.unwrap().to_bytes();
        let bytes = match headers.get(header::CONTENT_ENCODING).map(|v| v.as_bytes()) {
            Some(b"gzip") => {
                use std::io::Read;
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&raw[..])
                    .read_to_end(&mut out)
                    .expect("a whole gzip body");
                out
            }
            Some(other) => panic!(
                "answered in an encoding the test cannot read: {}",
                String::from_utf8_lossy(other)
            ),
            None => raw.to_vec(),
        };
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }

    /// Serves the console on a free local port, as a browser needs it; answers its base URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(scf_console::app::serve(
            listener,
            self.state.clone(),
            std::future::pending(),
        ));
        format!("http://{addr}")
    }

    /// Sends as the logged-in user: with the session cookie, and with the CSRF token on a
    /// change (as the console's pages send it), unless the request carries its own.
    pub async fn send(&self, mut req: Request<Body>) -> Page {
        if let Some(login) = self.session() {
            let headers = req.headers_mut();
            if !headers.contains_key(header::COOKIE) {
                let cookie = format!("scf_session={}", login.cookie);
                headers.insert(header::COOKIE, cookie.parse().unwrap());
            }
            let reads = matches!(
                *req.method(),
                axum::http::Method::GET | axum::http::Method::HEAD
            );
            if !reads && !req.headers().contains_key("x-csrf-token") {
                let token = login.csrf.parse().unwrap();
                req.headers_mut().insert("x-csrf-token", token);
            }
        }
        self.send_anonymous(req).await
    }

    pub async fn get(&self, uri: &str) -> Page {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    /// A GET as htmx sends it, asking for a fragment.
    pub async fn get_hx(&self, uri: &str) -> Page {
        self.send(
            Request::get(uri)
                .header("HX-Request", "true")
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn post(&self, uri: &str, fields: &[(&str, &str)]) -> Page {
        self.send(form_request(uri).body(form_body(fields)).unwrap())
            .await
    }

    /// A POST as htmx sends it when the field `trigger` changes.
    pub async fn post_hx(&self, uri: &str, trigger: &str, fields: &[(&str, &str)]) -> Page {
        self.send(
            form_request(uri)
                .header("HX-Request", "true")
                .header("HX-Trigger-Name", trigger)
                .body(form_body(fields))
                .unwrap(),
        )
        .await
    }

    /// A form sent as `multipart/form-data`, as a browser sends one with a file input: the
    /// session's CSRF token first (where the console's forms put it), then `fields`, then
    /// `file` as `(field, file name, bytes)`.
    pub async fn post_multipart(
        &self,
        uri: &str,
        fields: &[(&str, &str)],
        file: Option<(&str, &str, &[u8])>,
    ) -> Page {
        let csrf = self.session().map(|l| l.csrf).unwrap_or_default();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        let (content_type, body) = multipart_body(&all, file);
        self.send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// Follows a redirect the way a browser does after a form post: with the one-time flash
    /// cookie the redirect set, if any.
    pub async fn follow(&self, page: &Page) -> Page {
        assert!(
            page.status.is_redirection(),
            "expected a redirect, got {}: {}",
            page.status,
            page.errors().join(" | ")
        );
        let mut cookies = Vec::new();
        if let Some(login) = self.session() {
            cookies.push(format!("scf_session={}", login.cookie));
        }
        cookies.extend(
            page.headers
                .get_all(header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter(|v| v.starts_with("scf_flash=") && !v.contains("Max-Age=0"))
                .filter_map(|v| v.split(';').next())
                .map(str::to_string),
        );
        self.send(
            Request::get(page.location())
                .header(header::COOKIE, cookies.join("; "))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// Creates a function through the wizard with the given fields on top of a valid empty
    /// Python function, and checks that it was created.
    pub async fn create_function(&self, namespace: &str, name: &str, extra: &[(&str, &str)]) {
        let mut fields = valid_function(name);
        for (k, v) in extra {
            fields.retain(|(fk, _)| fk != k);
            fields.push((k, v));
        }
        let page = self.post(&new_url(namespace), &fields).await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "creating {name}: {}",
            page.errors().join(" | ")
        );
    }
}

pub fn form_request(uri: &str) -> axum::http::request::Builder {
    Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
}

/// A `multipart/form-data` body and its content type.
pub fn multipart_body(
    fields: &[(&str, &str)],
    file: Option<(&str, &str, &[u8])>,
) -> (String, Vec<u8>) {
    let boundary = "----scfConsoleTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((name, file_name, bytes)) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/zip\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub fn form_body(fields: &[(&str, &str)]) -> Body {
    let encoded = fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    Body::from(encoded)
}

pub fn functions_url(namespace: &str) -> String {
    format!("/scf/{REGION}/{namespace}/functions")
}

pub fn new_url(namespace: &str) -> String {
    format!("/scf/{REGION}/{namespace}/functions/-/new")
}

pub fn validate_url(namespace: &str) -> String {
    format!("/scf/{REGION}/{namespace}/functions/-/validate")
}

pub fn function_url(namespace: &str, name: &str, tab: &str) -> String {
    format!("/scf/{REGION}/{namespace}/functions/{name}/{tab}")
}

/// A part of a function's event list with a URL of its own: `rows`, `stats`, `export.csv`,
/// `terminate`, ….
pub fn events_part_url(namespace: &str, name: &str, part: &str) -> String {
    format!("{}/-/{part}", function_url(namespace, name, "events"))
}

pub const PYTHON_CODE: &str = "def main_handler(event, context):\n    return event\n";

/// A complete, valid wizard form for an empty Python function.
pub fn valid_function(name: &str) -> Vec<(&str, &str)> {
    vec![
        ("template", "empty"),
        ("FunctionName", name),
        ("Runtime", "Python3.9"),
        ("Handler", "index.main_handler"),
        ("Code", PYTHON_CODE),
        ("Description", ""),
        ("MemorySize", "128"),
        ("Timeout", "3"),
        ("RetryNum", ""),
        ("MsgTTL", "21600"),
        ("PublicNetConfig", "TRUE"),
        ("Environment.Variables.0.Key", ""),
        ("Environment.Variables.0.Value", ""),
    ]
}

/// What Chromium sends as Accept-Encoding.
pub const BROWSER_ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body as text (decompressed), and as bytes for downloads that are not text.
    pub body: String,
    pub bytes: Vec<u8>,
}

impl Page {
    pub fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }

    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The visible text of every element matching a CSS selector, whitespace folded.
    pub fn texts(&self, selector: &str) -> Vec<String> {
        let sel = Selector::parse(selector).unwrap();
        self.html()
            .select(&sel)
            .map(|e| {
                e.text()
                    .collect::<String>()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    /// The text of the first element matching, or "" when none does.
    pub fn text(&self, selector: &str) -> String {
        self.texts(selector).into_iter().next().unwrap_or_default()
    }

    pub fn count(&self, selector: &str) -> usize {
        self.texts(selector).len()
    }

    pub fn attr(&self, selector: &str, attr: &str) -> Option<String> {
        let sel = Selector::parse(selector).unwrap();
        self.html()
            .select(&sel)
            .next()
            .and_then(|e| e.value().attr(attr).map(str::to_string))
    }

    /// The target of the first link matching `selector` whose text is `text`.
    pub fn link(&self, selector: &str, text: &str) -> Option<String> {
        let sel = Selector::parse(selector).unwrap();
        self.html()
            .select(&sel)
            .find(|e| e.text().collect::<String>().trim() == text)
            .and_then(|e| e.value().attr("href").map(str::to_string))
    }

    /// The message shown under a field, or "" when it has none.
    pub fn field_error(&self, field: &str) -> String {
        self.text(&format!("#err-{}", field.replace('.', "\\.")))
    }

    /// Every field message on the page.
    pub fn errors(&self) -> Vec<String> {
        self.texts(".field-error")
            .into_iter()
            .filter(|t| !t.is_empty())
            .chain(self.texts(".error-page p"))
            .collect()
    }
}

/// The server's log, as an operator reads it.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    /// What this thread logs from now until the guard is dropped.
    pub fn capture() -> (Log, tracing::subscriber::DefaultGuard) {
        AskEachTime::install();
        let log = Log::default();
        let guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(log.clone())
                .with_ansi(false)
                .finish(),
        );
        (log, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;

    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

/// The process-wide subscriber of the tests, which logs nothing. tracing caches, for every
/// thread at once, whether a log statement is wanted; a statement first met on a thread where
/// nobody listens would be cached as off and never reach a test's [`Log`]. Answering
/// "sometimes" makes each statement ask the subscriber of its own thread every time.
struct AskEachTime;

impl AskEachTime {
    /// Once per test binary, before the first test's console logs anything.
    fn install() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let _ = tracing::subscriber::set_global_default(AskEachTime);
        });
    }
}

impl tracing::Subscriber for AskEachTime {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        false
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, _: &tracing::Event<'_>) {}

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// The SCF API as a client sees it: signed calls to `POST /`.
pub mod api {
    use super::*;
    use scf_console::scf::tc3::{SignInput, sha256_hex, sign};
    use serde_json::Value;

    pub const SECRET_ID: &str = "AKIDtestsuite0000000000000000000000";
    pub const SECRET_KEY: &str = "testsuite-secret-key-0123456789ab";

    /// How a test wants its call signed and sent.
    pub struct Options<'a> {
        pub secret_id: &'a str,
        pub secret_key: &'a str,
        pub version: &'a str,
        pub region: Option<&'a str>,
        pub host: &'a str,
        /// Seconds to shift the signed timestamp from the server's clock.
        pub skew: i64,
        pub unsigned_payload: bool,
        pub get: bool,
    }

    impl Default for Options<'_> {
        fn default() -> Self {
            Options {
                secret_id: SECRET_ID,
                secret_key: SECRET_KEY,
                version: "2018-04-16",
                region: Some(REGION),
                host: "127.0.0.1:9000",
                skew: 0,
                unsigned_payload: false,
                get: false,
            }
        }
    }

    pub struct Answer {
        pub page: Page,
        pub json: Value,
    }

    impl Answer {
        /// The fields of a successful answer; fails the test with the error otherwise.
        pub fn ok(&self) -> &Value {
            let r = &self.json["Response"];
            assert!(
                r.get("Error").is_none(),
                "expected success, got {}",
                r["Error"]
            );
            r
        }

        pub fn error_code(&self) -> &str {
            self.json["Response"]["Error"]["Code"]
                .as_str()
                .unwrap_or("")
        }

        pub fn error_message(&self) -> &str {
            self.json["Response"]["Error"]["Message"]
                .as_str()
                .unwrap_or("")
        }
    }

    /// Flattens parameters the way the SDK does for GET: `Environment.Variables.0.Key=…`.
    fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out)
            }),
            Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| flatten(&format!("{prefix}.{i}"), v, out)),
            Value::String(s) => out.push((prefix.into(), s.clone())),
            other => out.push((prefix.into(), other.to_string())),
        }
    }

    impl TestApp {
        pub async fn add_key(&self) {
            scf_console::keys::put_configured(&self.state, SECRET_ID, SECRET_KEY)
                .await
                .unwrap();
        }

        pub async fn api(&self, action: &str, params: Value) -> Answer {
            self.api_with(action, params, &Options::default()).await
        }

        pub async fn api_with(&self, action: &str, params: Value, o: &Options<'_>) -> Answer {
            let timestamp = self.state.clock.now_millis() / 1000 + o.skew;
            let (uri, content_type, body, query) = if o.get {
                let mut pairs = Vec::new();
                flatten("", &params, &mut pairs);
                let query = pairs
                    .iter()
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                (
                    format!("/?{query}"),
                    "application/x-www-form-urlencoded",
                    String::new(),
                    query,
                )
            } else {
                (
                    "/".to_string(),
                    "application/json",
                    params.to_string(),
                    String::new(),
                )
            };
            let payload_hash = if o.unsigned_payload {
                sha256_hex(b"UNSIGNED-PAYLOAD")
            } else {
                sha256_hex(body.as_bytes())
            };
            let signature = sign(
                o.secret_key,
                &SignInput {
                    method: if o.get { "GET" } else { "POST" },
                    query: &query,
                    headers: &[("content-type", content_type), ("host", o.host)],
                    payload_hash: &payload_hash,
                    timestamp,
                },
            );
            let date = scf_console::scf::tc3::utc_date(timestamp);
            let mut req = Request::builder()
                .method(if o.get { "GET" } else { "POST" })
                .uri(uri)
                .header("Content-Type", content_type)
                .header("Host", o.host)
                .header("X-TC-Action", action)
                .header("X-TC-Version", o.version)
                .header("X-TC-Timestamp", timestamp.to_string())
                .header("X-TC-Language", "en-US")
                .header(
                    "Authorization",
                    format!(
                        "TC3-HMAC-SHA256 Credential={}/{date}/scf/tc3_request, SignedHeaders=content-type;host, Signature={signature}",
                        o.secret_id
                    ),
                );
            if let Some(region) = o.region {
                req = req.header("X-TC-Region", region);
            }
            if o.unsigned_payload {
                req = req.header("X-TC-Content-SHA256", "UNSIGNED-PAYLOAD");
            }
            let page = self.send(req.body(Body::from(body)).unwrap()).await;
            let json = serde_json::from_str(&page.body).unwrap_or(Value::Null);
            Answer { page, json }
        }
    }

    /// A base64 zip holding the given files, as the SDK sends `Code.ZipFile`.
    pub fn zip_base64(files: &[(&str, &str)]) -> String {
        use base64::Engine;
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            for (name, content) in files {
                w.start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                w.write_all(content.as_bytes()).unwrap();
            }
            w.finish().unwrap();
        }
        base64::engine::general_purpose::STANDARD.encode(buf.into_inner())
    }
}

/// Events put in the store by hand, with an engine that does not run them.
pub mod events {
    use super::*;
    use scf_console::domain::event::EventStatus;
    use scf_console::store::{ClaimBudget, EventWrite, FunctionKey, NewEvent, TimelineEntry};

    /// The engine is paused (no workers): events stay exactly as the test puts them.
    pub async fn paused_app() -> TestApp {
        let app = TestApp::with_engine(EngineConfig {
            workers: 0,
            ..test_engine()
        })
        .await;
        app.add_key().await;
        app
    }

    /// Creates a function with async execution and status trace in `default`; answers its id.
    pub async fn traced_function(app: &TestApp, name: &str) -> i64 {
        app.create_function(
            "default",
            name,
            &[("AsyncRunEnable", "TRUE"), ("TraceEnable", "TRUE")],
        )
        .await;
        function_id(app, name).await
    }

    pub async fn function_id(app: &TestApp, name: &str) -> i64 {
        app.state
            .store
            .get_function(&FunctionKey {
                region: REGION.into(),
                namespace: "default".into(),
                name: name.into(),
            })
            .await
            .unwrap()
            .unwrap()
            .id
    }

    pub async fn add_event(app: &TestApp, function_id: i64, id: &str, invoke_type: &str) {
        app.state
            .store
            .apply_event_writes(&[EventWrite::Insert(NewEvent {
                request_id: id.into(),
                function_id,
                invoke_type: invoke_type.into(),
                traced: true,
                payload: format!("{{\"id\": \"{id}\"}}"),
                enqueued_at: app.state.clock.now_millis(),
                invoked_by: None,
                rerun_of: None,
            })])
            .await
            .unwrap();
    }

    /// Puts `ids` in the store at once as queued traced API events of the function, the i-th
    /// accepted at `at(i)`.
    pub async fn add_events(
        app: &TestApp,
        function_id: i64,
        ids: &[String],
        at: impl Fn(usize) -> i64,
    ) {
        let writes: Vec<EventWrite> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                EventWrite::Insert(NewEvent {
                    request_id: id.clone(),
                    function_id,
                    invoke_type: "API".into(),
                    traced: true,
                    payload: "{}".into(),
                    enqueued_at: at(i),
                    invoked_by: None,
                    rerun_of: None,
                })
            })
            .collect();
        app.state.store.apply_event_writes(&writes).await.unwrap();
    }

    /// The node that claims events by hand in these tests. It holds them until the test ends
    /// them: its lease never runs out, and no lock says it is gone.
    pub const HAND: &str = "claimed-by-the-test";
    pub const HELD_FOREVER: i64 = i64::MAX / 2;

    /// The lease a run claimed by hand writes under.
    pub fn hand_lease(attempt: u32) -> scf_console::store::RunLease {
        scf_console::store::RunLease {
            owner: HAND.into(),
            attempt,
            until: None,
        }
    }

    /// Claims the oldest queued event (RUNNING, started now) and returns its row id.
    pub async fn claim(app: &TestApp) -> i64 {
        let now = app.state.clock.now_millis();
        app.state
            .store
            .claim_events(now, &ClaimBudget::up_to(1), HAND, HELD_FOREVER)
            .await
            .unwrap()[0]
            .id
    }

    pub async fn end(app: &TestApp, event_id: i64, status: EventStatus, code: i64) {
        end_with_logs(app, event_id, status, code, None).await;
    }

    /// Ends an event claimed by hand, with what its handler printed.
    pub async fn end_with_logs(
        app: &TestApp,
        event_id: i64,
        status: EventStatus,
        code: i64,
        logs: Option<&str>,
    ) {
        let entry = TimelineEntry {
            at: app.state.clock.now_millis(),
            status,
            detail: "ended by the test".into(),
        };
        app.state
            .store
            .apply_event_writes(&[EventWrite::Finish {
                event_id,
                // Events claimed by hand run their first attempt.
                run: hand_lease(1),
                traced: true,
                status_code: code,
                result: None,
                error: None,
                logs: logs.map(str::to_string),
                entry,
            }])
            .await
            .unwrap();
    }
}

/// A PostgreSQL schema of its own per test on the test database (`SCF_TEST_POSTGRES`, by
/// default the local server's `test` database), so tests run side by side without seeing each
/// other's rows; dropped when the test ends.
pub mod postgres {
    use sqlx::Connection;

    /// The server the tests use.
    pub fn server() -> String {
        std::env::var("SCF_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
    }

    /// Test schemas are named with the second they were made, so that a run can drop what
    /// earlier runs left (a test that failed, or a run that was killed).
    const PREFIX: &str = "scf_test_";
    const LEFT_OVER_AFTER_SECS: u64 = 3600;

    pub struct Schema {
        name: String,
        url: String,
    }

    fn unix_secs() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    impl Schema {
        /// A fresh schema, or `None` (said loudly; a failure under CI) when no PostgreSQL
        /// answers.
        pub async fn create() -> Option<Schema> {
            let server = server();
            let mut conn = match sqlx::PgConnection::connect(&server).await {
                Ok(conn) => conn,
                Err(e) => {
                    let why = format!(
                        "SKIPPED: the PostgreSQL tests need a server at {server} (SCF_TEST_POSTGRES): {e}"
                    );
                    assert!(std::env::var_os("CI").is_none(), "{why}");
                    eprintln!("\n*** {why} ***\n");
                    return None;
                }
            };
            static SWEPT: std::sync::Once = std::sync::Once::new();
            let mut sweep = false;
            SWEPT.call_once(|| sweep = true);
            if sweep {
                drop_left_over(&mut conn).await;
            }
            let name = format!("{PREFIX}{}_{}", unix_secs(), uuid::Uuid::new_v4().simple());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let separator = if server.contains('?') { '&' } else { '?' };
            let url = format!("{server}{separator}options=-c%20search_path%3D{name}");
            Some(Schema { name, url })
        }

        pub fn url(&self) -> &str {
            &self.url
        }
    }

    /// Drops the test schemas of runs more than an hour old.
    async fn drop_left_over(conn: &mut sqlx::PgConnection) {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::TEXT FROM pg_namespace WHERE starts_with(nspname, 'scf_test_')",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap_or_default();
        let cutoff = unix_secs().saturating_sub(LEFT_OVER_AFTER_SECS);
        for name in names {
            let made: Option<u64> = name
                .strip_prefix(PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|secs| secs.parse().ok());
            if made.is_some_and(|made| made < cutoff) {
                let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {name} CASCADE"
                )))
                .execute(&mut *conn)
                .await;
            }
        }
    }

    impl Drop for Schema {
        /// Dropped from a thread of its own, not waited for: the stores of the test may still
        /// hold a transaction that their runtime, being dropped too, rolls back only later.
        fn drop(&mut self) {
            let (server, name) = (server(), self.name.clone());
            std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        let mut conn = sqlx::PgConnection::connect(&server).await.ok()?;
                        sqlx::query("SET lock_timeout = '60s'")
                            .execute(&mut conn)
                            .await
                            .ok()?;
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP SCHEMA IF EXISTS {name} CASCADE"
                        )))
                        .execute(&mut conn)
                        .await
                        .ok()
                    })
            });
        }
    }
}
