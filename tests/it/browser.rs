//! The documented flow, clicked through in headless Chromium over WebDriver (chromedriver).
//! Each story starts from a fresh server and ends with a screenshot in
//! `target/e2e-screenshots/`. Without Chromium the stories say so loudly and skip, except when
//! `CI` is set: there a missing browser is a failure.

use crate::support::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHROMIUM: &str = "/usr/bin/chromium";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(20);
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";

/// A WebDriver session on a chromedriver of our own.
struct Browser {
    driver: tokio::process::Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
    _turn: tokio::sync::RwLockReadGuard<'static, ()>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One WebDriver request; answers the `value` of the response, or the error.
async fn webdriver(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, Value> {
    let host = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host)
        .await
        .map_err(|e| json!({"error": e.to_string()}))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // Read the head, then exactly Content-Length bytes: chromedriver keeps connections open.
    let mut raw = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let (head, body_start, length) = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "chromedriver closed the connection");
        raw.extend_from_slice(&chunk[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            break (head, end + 4, length);
        }
    };
    while raw.len() < body_start + length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "chromedriver closed the connection");
        raw.extend_from_slice(&chunk[..n]);
    }
    let value: Value =
        serde_json::from_slice(&raw[body_start..body_start + length]).unwrap_or(Value::Null);
    if head.starts_with("HTTP/1.1 200") {
        Ok(value["value"].clone())
    } else {
        Err(value["value"].clone())
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or says why it cannot.
    async fn start() -> Option<Browser> {
        let driver_bin = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(driver_bin) = driver_bin.filter(|_| std::path::Path::new(CHROMIUM).exists())
        else {
            let why = "SKIPPED: the browser stories need Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)";
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("\n*** {why} ***\n");
            return None;
        };
        let turn = WHOLE_MACHINE.read().await;
        let port = free_port();
        let driver = tokio::process::Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        wait_for("chromedriver to answer", WAIT, || async {
            webdriver(&base, "GET", "/status", None)
                .await
                .ok()
                .filter(|v| v["ready"] == true)
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1360,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let session = webdriver(&base, "POST", "/session", Some(&caps))
            .await
            .expect("a browser session");
        Some(Browser {
            driver,
            base,
            session: session["sessionId"].as_str().unwrap().to_string(),
            _profile: profile,
            _turn: turn,
        })
    }

    async fn cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, Value> {
        let path = format!("/session/{}{path}", self.session);
        let body = (method == "POST").then_some(&body);
        webdriver(&self.base, method, &path, body).await
    }

    async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({"url": url})).await.unwrap();
    }

    async fn url(&self) -> String {
        self.cmd("GET", "/url", json!({}))
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn find(&self, css: &str) -> Option<String> {
        self.cmd(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        )
        .await
        .ok()
        .and_then(|v| v[ELEMENT].as_str().map(str::to_string))
    }

    /// Waits until the element is there (and, if asked, its text contains `text`).
    async fn wait(&self, css: &str, text: &str) -> String {
        wait_for(&format!("{css} showing {text:?}"), WAIT, || async {
            let el = self.find(css).await?;
            self.text(&el).await.contains(text).then_some(el)
        })
        .await
    }

    async fn text(&self, el: &str) -> String {
        self.cmd("GET", &format!("/element/{el}/text"), json!({}))
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    async fn property(&self, el: &str, name: &str) -> Value {
        self.cmd("GET", &format!("/element/{el}/property/{name}"), json!({}))
            .await
            .unwrap_or(Value::Null)
    }

    async fn click(&self, css: &str) {
        let el = self.wait(css, "").await;
        self.cmd("POST", &format!("/element/{el}/click"), json!({}))
            .await
            .unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let el = self.wait(css, "").await;
        self.cmd("POST", &format!("/element/{el}/clear"), json!({}))
            .await
            .unwrap();
        self.cmd(
            "POST",
            &format!("/element/{el}/value"),
            json!({"text": text}),
        )
        .await
        .unwrap();
    }

    /// Waits until a JavaScript condition holds in the page.
    async fn wait_js(&self, condition: &str) {
        let script = format!("return !!({condition});");
        wait_for(condition, WAIT, || async {
            (self.js(&script).await == Value::Bool(true)).then_some(())
        })
        .await;
    }

    async fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
        .unwrap()
    }

    /// Runs an asynchronous script: it calls its last argument with the answer.
    async fn js_async(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            json!({"script": script, "args": []}),
        )
        .await
        .unwrap()
    }

    /// Presses keys on whatever has the focus, as a keyboard user would.
    async fn press(&self, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}
        ]}]});
        self.cmd("POST", "/actions", actions).await.unwrap();
    }

    async fn type_text(&self, text: &str) {
        let keys: Vec<Value> = text
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.cmd(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": keys}]}),
        )
        .await
        .unwrap();
    }

    /// Tabs forward until the focused element satisfies a JavaScript condition on `el`.
    async fn tab_to(&self, condition: &str) {
        let script = format!(
            "const el = document.activeElement; return !!(el && el !== document.body && ({condition}));"
        );
        let in_editor = "return !!document.activeElement.closest('.cm-editor');";
        for _ in 0..80 {
            if self.js(&script).await == Value::Bool(true) {
                return;
            }
            // In the code editor Tab indents; Escape first lets the next Tab move on, as the
            // hint under the editor says.
            if self.js(in_editor).await == Value::Bool(true) {
                self.press(ESCAPE).await;
            }
            self.press(TAB).await;
        }
        panic!("Tab never reached an element where {condition}");
    }

    async fn screenshot(&self, name: &str) {
        let png = self.cmd("GET", "/screenshot", json!({})).await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    /// What the browser refused under the page's Content-Security-Policy since the last call:
    /// Chromium logs each refusal to the console.
    async fn policy_violations(&self) -> Vec<String> {
        let log = self
            .cmd("POST", "/se/log", json!({"type": "browser"}))
            .await
            .expect("the browser's console log");
        log.as_array()
            .unwrap()
            .iter()
            .filter_map(|entry| entry["message"].as_str())
            .filter(|m| m.contains("Content Security Policy"))
            .map(str::to_string)
            .collect()
    }

    async fn close(mut self) {
        let _ = self.cmd("DELETE", "", json!({})).await;
        let _ = self.driver.kill().await;
    }
}

/// Creates a function in the wizard from a template, ticking Async Execution and Status Trace.
/// Serves `app` and logs the browser in as the first admin through the login page, which any
/// console page leads to first; answers the console's base URL.
async fn log_in(b: &Browser, app: &TestApp) -> String {
    let base = app.serve().await;
    b.goto(&format!("{base}/")).await;
    b.wait("#login-title", "Log in").await;
    b.fill("#UserName", "admin").await;
    b.fill("#Password", ADMIN_PASSWORD).await;
    b.click("button[type=submit]").await;
    b.wait(".topbar-user", "admin").await;
    base
}

async fn create_from_template(b: &Browser, base: &str, template_title: &str, name: &str) {
    b.goto(&format!("{base}/")).await;
    b.click(".sidebar a[href$='/functions']").await;
    b.click(".page-head a.btn-primary").await;
    b.wait("h1", "Create function").await;
    b.fill("#template-search", template_title).await;
    let card = b
        .wait("#template-cards .template-card", template_title)
        .await;
    b.cmd("POST", &format!("/element/{card}/click"), json!({}))
        .await
        .unwrap();
    b.wait("h2", "Basic settings").await;
    b.fill("#FunctionName", name).await;
    // Templates made for async execution come with it and Status Trace ticked, in Advanced
    // Settings shown open; the others leave both to the user, folded. Either way the story
    // ticks them itself, as the documented flow does.
    let made_for_async = b
        .js("return document.querySelector('#AsyncRunEnable').checked;")
        .await
        == Value::Bool(true);
    if made_for_async {
        assert_eq!(
            b.js("return document.querySelector('details.advanced').open && document.querySelector('#TraceEnable').checked;").await,
            Value::Bool(true),
            "{template_title}: shown open with Status Trace ticked"
        );
        b.click("#AsyncRunEnable").await;
    } else {
        b.click("details.advanced > summary").await;
    }
    b.wait("#AsyncRunEnable", "").await;
    let trace_row = b.find(".trace-option").await.unwrap();
    assert_eq!(
        b.property(&trace_row, "offsetParent").await,
        Value::Null,
        "Status Trace hides until async execution is ticked"
    );
    b.click("#AsyncRunEnable").await;
    let trace_row = b.wait(".trace-option", "Status Trace").await;
    assert_ne!(
        b.property(&trace_row, "offsetParent").await,
        Value::Null,
        "Status Trace appears"
    );
    b.click("#TraceEnable").await;
    b.click(".form-actions button.btn-primary").await;
    b.wait(".banner-ok", "Function created.").await;
}

async fn invoke_from_test_tab(b: &Browser, payload: &str) -> String {
    b.click(".tabs a[href$='/test']").await;
    b.fill("#ClientContext", payload).await;
    b.click("button[value=invoke]").await;
    let link = b.wait("a.request-id", "").await;
    b.text(&link).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_flow_in_a_real_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let function = |base: &str, name: &str| format!("{base}/scf/{REGION}/default/functions/{name}");

    // 1. Function Service → Create → the Python long-running template → Advanced Settings →
    //    Async Execution → Status Trace → Complete.
    let app = TestApp::new().await;
    let base = log_in(&b, &app).await;
    create_from_template(&b, &base, "Long-running async task (Python)", "story-one").await;
    assert!(b.url().await.ends_with("/functions/story-one/config"));
    b.wait(".banner-ok", "Function created.").await;
    let facts = b.wait(".facts", "Python3").await;
    assert!(b.text(&facts).await.contains("On"));
    b.screenshot("1-created-with-status-trace").await;

    // 2. Test tab → invoke → follow the RequestId → Event Management shows it Running, then
    //    Finished without a reload; the details show logs and timeline.
    let app = TestApp::new().await;
    let base = log_in(&b, &app).await;
    create_from_template(&b, &base, "Long-running async task (Python)", "story-two").await;
    // Six seconds of steps: long enough to be seen Running by a page opened a few clicks later.
    let request_id = invoke_from_test_tab(&b, r#"{"steps": 6, "interval": 1}"#).await;
    b.click("a.request-id").await;
    b.wait(".event .status", "").await;
    assert!(b.url().await.ends_with(&request_id));
    b.goto(&format!(
        "{}/events?refresh=2",
        function(&base, "story-two")
    ))
    .await;
    b.js("window.__stillTheSamePage = true; return true;").await;
    b.wait("#event-rows .status", "Running").await;
    b.wait("#event-rows .status", "Invocation completed").await;
    b.wait_js("[...document.querySelectorAll('#event-stats .tile')].some(t => t.textContent.includes('Invocation completed') && t.querySelector('strong').textContent.trim() === '1')").await;
    assert_eq!(
        b.js("return window.__stillTheSamePage === true;").await,
        Value::Bool(true),
        "no page reload"
    );
    b.screenshot("2-event-management-live").await;
    b.click("#event-rows td.rid a").await;
    let logs = b.wait(".event-logs", "Task complete").await;
    assert!(b.text(&logs).await.contains("Step 6/6 done"));
    b.wait(".timeline", "cold start").await;
    b.screenshot("2-event-details").await;

    // 3. Invoke again → terminate gracefully → Aborted with 499.
    let again = invoke_from_test_tab(&b, r#"{"steps": 30, "interval": 1}"#).await;
    b.click("a.request-id").await;
    b.wait(".event .status", "Running").await;
    // Its progress shows as it is printed, not when the attempt ends.
    b.wait(".event-logs", "Step 2/30").await;
    b.wait(".event h3", "Live").await;
    assert_eq!(
        b.text(&b.find(".event .status").await.unwrap()).await,
        "Running"
    );
    wait_for("the handler to start", WAIT, || async {
        let t = b.find(".timeline").await?;
        b.text(&t)
            .await
            .contains("Started on instance")
            .then_some(())
    })
    .await;
    // Terminate asks first: how, and why (the reason goes on the timeline).
    b.click(".event-actions .btn-danger-outline").await;
    b.wait(".confirm h2", "Terminate event").await;
    b.click("input[name=GraceShutdown][value=true]").await;
    b.fill("#Reason", "story three is done").await;
    b.click(".confirm button.btn-danger").await;
    b.wait(".banner-ok", "Termination asked").await;
    b.wait(".event .status", "Invocation terminated").await;
    b.wait(
        ".timeline",
        "Termination requested by admin (graceful: SIGTERM first): story three is done",
    )
    .await;
    let facts = b.wait(".event .facts", "499").await;
    assert!(b.text(&facts).await.contains("499"));
    b.wait(".event-logs", "[PLATFORM] Signal received successfully.")
        .await;
    assert!(b.url().await.ends_with(&again));
    b.screenshot("3-terminated-gracefully").await;

    // 4. The failing template → its event fails with the error and stack trace.
    let app = TestApp::new().await;
    let base = log_in(&b, &app).await;
    create_from_template(&b, &base, "Failing handler (Python)", "story-four").await;
    invoke_from_test_tab(&b, r#"{"order": {"id": "A-1"}}"#).await;
    b.click("a.request-id").await;
    b.wait(".event .status", "Invocation failed").await;
    let error = b.wait(".event .output-error", "OrderValidationError").await;
    assert!(b.text(&error).await.contains("Traceback"));
    b.screenshot("4-failed-with-stack-trace").await;

    // 5. Bad input in the wizard: the messages sit by their fields, the rest is kept.
    let app = TestApp::new().await;
    let base = log_in(&b, &app).await;
    b.goto(&format!(
        "{base}/scf/{REGION}/default/functions/-/new?template=python-hello-world"
    ))
    .await;
    b.fill("#FunctionName", "9-lives").await;
    b.wait("#err-FunctionName", "start with a letter").await; // checked live, as typed
    b.click("details.advanced > summary").await;
    b.fill("#MemorySize", "5000").await;
    b.fill("#Description", "kept after the error").await;
    b.click(".form-actions button.btn-primary").await;
    b.wait(".banner-error", "not created").await;
    b.wait("#err-MemorySize", "at most 3072 MB").await;
    b.wait("#err-FunctionName", "start with a letter").await;
    let name = b.find("#FunctionName").await.unwrap();
    assert_eq!(b.property(&name, "value").await, "9-lives");
    let description = b.find("#Description").await.unwrap();
    assert_eq!(
        b.property(&description, "value").await,
        "kept after the error"
    );
    b.screenshot("5-wizard-errors").await;

    // 6. Status trace turned off → Event Management says records are not kept, and when the
    //    existing ones go.
    let app = TestApp::new().await;
    let base = log_in(&b, &app).await;
    create_from_template(&b, &base, "Hello World (Python)", "story-six").await;
    b.click("#TraceEnable").await;
    b.click(".form-actions button.btn-primary").await;
    b.wait(".confirm", "Turn off status trace?").await;
    b.click(".confirm button.btn-danger").await;
    b.wait(".banner-info", "cleared by").await;
    b.click(".tabs a[href$='/events']").await;
    let notice = b.wait(".trace-off", "Status trace is off").await;
    assert!(b.text(&notice).await.contains("not recorded"));
    b.screenshot("6-status-trace-off").await;

    // 7. Keyboard only: the wizard with Tab, Space and Enter.
    let app = TestApp::new().await;
    let base = log_in(&b, &app).await;
    b.goto(&format!("{base}/scf/{REGION}/default/functions"))
        .await;
    b.tab_to("el.textContent.trim() === 'Create'").await;
    b.press(ENTER).await;
    b.wait("h1", "Create function").await;
    b.tab_to("el.textContent.includes('Empty function')").await;
    b.press(ENTER).await;
    b.wait("h2", "Basic settings").await;
    b.tab_to("el.id === 'FunctionName'").await;
    b.type_text("by-keyboard").await;
    b.tab_to("el.tagName === 'SUMMARY'").await;
    b.press(ENTER).await;
    b.tab_to("el.id === 'AsyncRunEnable'").await;
    b.press(" ").await;
    b.tab_to("el.id === 'TraceEnable'").await;
    b.press(" ").await;
    b.tab_to("el.textContent.trim() === 'Complete'").await;
    b.press(ENTER).await;
    b.wait(".banner-ok", "Function created.").await;
    b.wait("h1", "by-keyboard").await;
    let badges = b.js("return [...document.querySelectorAll('.facts .badge')].map(e => e.textContent).join(',');").await;
    assert_eq!(
        badges, "On,On",
        "async execution and status trace, ticked by keyboard"
    );
    b.screenshot("7-keyboard-only").await;

    assert_eq!(b.policy_violations().await, Vec::<String>::new());
    b.close().await;
}

/// Every page of the console works under its Content-Security-Policy: the browser refuses
/// nothing on them, and would say so if it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_needs_no_inline_code_or_style() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::new().await;
    app.create_function(
        "default",
        "policed",
        &[("AsyncRunEnable", "TRUE"), ("TraceEnable", "TRUE")],
    )
    .await;
    let base = log_in(&b, &app).await;
    let console = format!("{base}/scf/{REGION}/default");
    for (path, shows) in [
        ("/functions", "policed"),
        ("/functions/-/new", "Create function"),
        (
            "/functions/-/new?template=python-hello-world",
            "Basic settings",
        ),
        ("/functions/policed/config", "policed"),
        ("/functions/policed/code", "policed"),
        ("/functions/policed/test", "policed"),
        ("/functions/policed/events?refresh=2", "policed"),
        ("/namespaces", "Namespaces"),
        ("/api-keys", "API Keys"),
        ("/system", "System"),
        ("/nowhere", "Not found"),
    ] {
        b.goto(&format!("{console}{path}")).await;
        b.wait("body", shows).await;
        b.wait_js("window.htmx && document.readyState === 'complete'")
            .await;
        assert_eq!(b.policy_violations().await, Vec::<String>::new(), "{path}");
    }
    // The events page keeps refreshing itself by htmx polling under the policy.
    b.goto(&format!("{console}/functions/policed/events?refresh=1"))
        .await;
    // With scripts, the controls that need them show (they are hidden without).
    b.wait_js("!document.querySelector('[data-live]').hidden && !document.querySelector('[data-time-toggle]').hidden")
        .await;
    b.js("document.getElementById('event-rows').dataset.seen = 'old'; return true;")
        .await;
    b.wait_js("!document.getElementById('event-rows').dataset.seen")
        .await;

    // The check sees what the browser refuses: an inline style is one.
    b.js("document.head.insertAdjacentHTML('beforeend', '<style>body { color: red }</style>'); return true;")
        .await;
    let refused = wait_for("the refusal to be logged", WAIT, || async {
        Some(b.policy_violations().await).filter(|v| !v.is_empty())
    })
    .await;
    assert!(refused[0].contains("style"), "{refused:?}");
    b.close().await;
}

/// On a phone (390 px wide) no page of the console scrolls sideways: the navigation and the
/// function's tabs scroll in their own rows, wide tables in their own boxes, and a 59-letter
/// function name does not push the page wider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_main_page_fits_a_phone() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::new().await;
    app.add_key().await;
    let long = "a-function-with-a-very-long-name-that-goes-on-and-on-and-on";
    app.create_function(
        "default",
        long,
        &[("AsyncRunEnable", "TRUE"), ("TraceEnable", "TRUE")],
    )
    .await;
    for n in 0..3 {
        app.api(
            "Invoke",
            json!({"FunctionName": long, "InvocationType": "Event", "ClientContext": json!({"n": n}).to_string()}),
        )
        .await
        .ok();
    }
    let base = log_in(&b, &app).await;
    b.cmd(
        "POST",
        "/goog/cdp/execute",
        json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
            "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}}),
    )
    .await
    .unwrap();
    let console = format!("{base}/scf/{REGION}/default");
    for (path, shows) in [
        ("/functions".to_string(), long),
        (
            "/functions/-/new?template=empty".to_string(),
            "Create function",
        ),
        (format!("/functions/{long}/config"), "Reserved concurrency"),
        (format!("/functions/{long}/code"), long),
        (format!("/functions/{long}/test"), "Test event"),
        (format!("/functions/{long}/events"), "Invocation completed"),
        (format!("/functions/{long}/monitoring"), "Peak concurrency"),
        (format!("/functions/{long}/logs"), "Text in the logs"),
        ("/namespaces".to_string(), "Namespaces"),
        ("/api-keys".to_string(), "API Keys"),
        ("/users".to_string(), "Users"),
        ("/audit".to_string(), "Audit log"),
        ("/system".to_string(), "System"),
    ] {
        b.goto(&format!("{console}{path}")).await;
        b.wait("body", shows).await;
        let widths = b
            .js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth];")
            .await;
        let (scroll, client) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
        assert_eq!(client, 390, "{path}: the phone's width");
        assert!(
            scroll <= client,
            "{path} scrolls sideways: {scroll} px in {client}"
        );
    }
    b.goto(&format!("{console}/functions/{long}/events")).await;
    b.wait("table.events", "Invocation completed").await;
    b.screenshot("phone-event-management").await;
    b.close().await;
}

/// Code is written as in SCF's online editor (CodeMirror: highlighting, line numbers, the
/// textarea it stands for is what the form sends), and Event Management's export downloads
/// in the browser, both formats, with the columns chosen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_editor_and_both_exports_in_a_real_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::new().await;
    app.add_key().await;
    app.create_function(
        "default",
        "exporter",
        &[
            ("AsyncRunEnable", "TRUE"),
            ("TraceEnable", "TRUE"),
            (
                "Code",
                "def main_handler(event, context):\n    print('got', event['n'])\n    return event\n",
            ),
        ],
    )
    .await;
    let base = log_in(&b, &app).await;
    let function = format!("{base}/scf/{REGION}/default/functions/exporter");

    // The editor: line numbers and highlighted Python, named by the file it edits.
    b.goto(&format!("{function}/code")).await;
    b.wait(".cm-editor .cm-lineNumbers", "1").await;
    assert_eq!(
        b.js("return [getComputedStyle(document.querySelector('#Code')).display, document.querySelector('.cm-content').getAttribute('aria-label'), document.querySelectorAll('.cm-content span[class]').length > 0];").await,
        json!(["none", "index.py", true])
    );
    b.click(".cm-content").await;
    // Ctrl+End: the end of the file.
    let (ctrl, end) = ("\u{E009}", "\u{E010}");
    b.cmd(
        "POST",
        "/actions",
        json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": ctrl}, {"type": "keyDown", "value": end},
            {"type": "keyUp", "value": end}, {"type": "keyUp", "value": ctrl}]}]}),
    )
    .await
    .unwrap();
    b.type_text("# typed in the editor").await;
    b.click(".form-actions button.btn-primary").await;
    b.wait(".banner-ok", "Code saved.").await;
    let f = app
        .state
        .store
        .get_function(&scf_console::store::FunctionKey {
            region: REGION.into(),
            namespace: "default".into(),
            name: "exporter".into(),
        })
        .await
        .unwrap()
        .unwrap();
    let code = app.state.store.get_code(f.id).await.unwrap();
    let saved = String::from_utf8(code[0].content.clone()).unwrap();
    assert!(
        saved.trim_end().ends_with("# typed in the editor"),
        "{saved}"
    );
    b.screenshot("code-editor").await;

    // Three events, run to their end.
    for n in 0..3 {
        app.api(
            "Invoke",
            json!({"FunctionName": "exporter", "InvocationType": "Event", "ClientContext": json!({"n": n}).to_string()}),
        )
        .await
        .ok();
    }
    wait_for("three events to finish", WAIT, || async {
        let page = app
            .get(&format!(
                "{}?status=finished",
                function_url("default", "exporter", "events")
            ))
            .await;
        page.text(".count-line")
            .starts_with("3 events")
            .then_some(())
    })
    .await;

    // Downloads land in a folder of the test's own.
    let downloads = tempfile::tempdir().unwrap();
    b.cmd(
        "POST",
        "/goog/cdp/execute",
        json!({"cmd": "Browser.setDownloadBehavior", "params": {
            "behavior": "allow", "downloadPath": downloads.path().display().to_string()}}),
    )
    .await
    .unwrap();
    let downloaded = |name: &'static str| {
        let path = downloads.path().join(name);
        async move {
            wait_for(&format!("{name} to download"), WAIT, || async {
                let text = std::fs::read_to_string(&path).ok()?;
                // Chromium writes to a .crdownload file and renames it when whole.
                text.ends_with('\n').then_some(text)
            })
            .await
        }
    };
    b.goto(&format!("{function}/events")).await;
    b.click("details.export > summary").await;
    b.click(".export-form input[name=col][value=payload]").await;
    b.click(".export-form button[type=submit]").await;
    let csv = downloaded("exporter-events.csv").await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "InvokeRequestId,Status,StatusCode,InvokeType,Qualifier,StartTime,EndTime,DurationMs,Attempts,Payload"
    );
    assert_eq!(lines.len(), 4, "{csv}");
    for n in 0..3 {
        assert!(
            lines[1..]
                .iter()
                .any(|l| l.contains(",FINISHED,200,API,$LATEST,")
                    && l.ends_with(&format!("\"{{\"\"n\"\":{n}}}\""))),
            "{n} in {csv}"
        );
    }
    // The form stays open after a download: NDJSON now, with the logs instead.
    b.click(".export-form input[name=format][value=ndjson]")
        .await;
    b.click(".export-form input[name=col][value=payload]").await;
    b.click(".export-form input[name=col][value=logs]").await;
    b.click(".export-form button[type=submit]").await;
    let ndjson = downloaded("exporter-events.ndjson").await;
    let records: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{ndjson}");
    for r in &records {
        assert_eq!(r["Status"], "FINISHED");
        assert!(
            r["Logs"]
                .as_str()
                .is_some_and(|logs| logs.starts_with("got ")),
            "the handler's output: {r}"
        );
        assert!(
            r.get("Payload").is_none(),
            "only the columns asked for: {r}"
        );
    }

    // Times: UTC as written, or the browser's zone everywhere once chosen, remembered.
    b.cmd(
        "POST",
        "/goog/cdp/execute",
        json!({"cmd": "Emulation.setTimezoneOverride", "params": {"timezoneId": "Asia/Shanghai"}}),
    )
    .await
    .unwrap();
    b.goto(&format!("{function}/events")).await;
    b.click("#event-rows td.rid a").await;
    let queued = b.wait("#event-detail .facts time", "UTC").await;
    let utc = b.text(&queued).await;
    assert!(utc.ends_with(" UTC"), "{utc}");
    b.click("[data-time-toggle]").await;
    b.wait("[data-time-toggle]", "Times: local (UTC+08:00)")
        .await;
    let shown = |css: &'static str| {
        let b = &b;
        async move {
            b.js(&format!(
                "return [...document.querySelectorAll('{css}')].map(e => e.textContent.trim());"
            ))
            .await
        }
    };
    let hour = |text: &str| text[11..13].parse::<u32>().unwrap();
    let facts = shown("#event-detail .facts time").await;
    let local = facts[0].as_str().unwrap();
    assert!(local.ends_with(" UTC+08:00"), "{local}");
    assert_eq!(hour(local), (hour(&utc) + 8) % 24, "{utc} → {local}");
    for step in shown(".timeline time").await.as_array().unwrap() {
        assert!(step.as_str().unwrap().ends_with("UTC+08:00"), "{step}");
    }
    assert!(
        shown(".facts dd time").await[0]
            .as_str()
            .unwrap()
            .ends_with("UTC+08:00"),
        "the function's Modified time too"
    );
    // The list, its statistics window and its zone labels follow, after a reload too.
    b.goto(&format!("{function}/events")).await;
    b.wait("[data-time-toggle]", "Times: local").await;
    assert_eq!(
        shown("#event-rows th [data-zone]").await,
        json!(["UTC+08:00"])
    );
    let window = shown("#event-stats .section-head time").await;
    assert!(
        window
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.as_str().unwrap().ends_with("UTC+08:00")),
        "{window}"
    );
    b.screenshot("times-local").await;
    b.click("[data-time-toggle]").await;
    b.wait("[data-time-toggle]", "Times: UTC").await;
    assert!(
        shown("#event-stats .section-head time").await[0]
            .as_str()
            .unwrap()
            .ends_with(" UTC")
    );
    assert_eq!(b.policy_violations().await, Vec::<String>::new());
    b.close().await;
}

/// axe-core (from npm), where the test run installed it: `.ci/run` does, into the build folder.
fn axe_source() -> Option<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/npm/node_modules/axe-core/axe.min.js");
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(_) => {
            let why = "SKIPPED: the accessibility check needs axe-core: npm install --prefix target/npm axe-core";
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("\n*** {why} ***\n");
            None
        }
    }
}

/// Every main page passes axe-core's checks (WCAG 2.x A and AA and best practices) with no
/// serious or critical violation, in light and in dark mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_main_page_passes_axe_in_light_and_dark_mode() {
    let Some(axe) = axe_source() else {
        return;
    };
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::new().await;
    app.add_key().await;
    app.create_function(
        "default",
        "checked",
        &[
            ("AsyncRunEnable", "TRUE"),
            ("TraceEnable", "TRUE"),
            (
                "Code",
                "def main_handler(event, context):\n    print('n', event['n'])\n    if event['n'] == 1:\n        raise ValueError('odd')\n    return event\n",
            ),
        ],
    )
    .await;
    let mut request_id = String::new();
    for n in 0..3 {
        let answer = app
            .api(
                "Invoke",
                json!({"FunctionName": "checked", "InvocationType": "Event", "ClientContext": json!({"n": n}).to_string()}),
            )
            .await;
        request_id = answer.ok()["Result"]["FunctionRequestId"]
            .as_str()
            .unwrap()
            .to_string();
    }
    wait_for("the events to end", WAIT, || async {
        let page = app.get(&function_url("default", "checked", "events")).await;
        (page.count("#event-rows .status-running, #event-rows .status-queued") == 0
            && page.count("table.events tbody tr") == 3)
            .then_some(())
    })
    .await;
    let base = log_in(&b, &app).await;
    let console = format!("{base}/scf/{REGION}/default");
    let pages = [
        "/functions".to_string(),
        "/functions/-/new".to_string(),
        "/functions/-/new?template=python-long-running-task".to_string(),
        "/functions/checked/config".to_string(),
        "/functions/checked/code".to_string(),
        "/functions/checked/test".to_string(),
        "/functions/checked/events".to_string(),
        "/functions/checked/monitoring".to_string(),
        "/functions/checked/logs".to_string(),
        "/functions/checked/logs?q=odd&request_id=zz".to_string(),
        format!("/functions/checked/events/{request_id}"),
        format!("/functions/checked/events/{request_id}/rerun"),
        "/functions/checked/delete".to_string(),
        "/namespaces".to_string(),
        "/api-keys".to_string(),
        "/users".to_string(),
        "/account".to_string(),
        "/audit".to_string(),
        "/system".to_string(),
    ];
    let check = format!(
        "{axe}\n;const done = arguments[arguments.length - 1];\n\
         axe.run(document, {{resultTypes: ['violations']}}).then(r => done(r.violations\n\
           .filter(v => v.impact === 'serious' || v.impact === 'critical')\n\
           .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', '))))\n\
         .catch(e => done(['axe failed: ' + e]));"
    );
    let mut found = Vec::new();
    for scheme in ["light", "dark"] {
        b.cmd(
            "POST",
            "/goog/cdp/execute",
            json!({"cmd": "Emulation.setEmulatedMedia", "params": {
                "features": [{"name": "prefers-color-scheme", "value": scheme}]}}),
        )
        .await
        .unwrap();
        for path in &pages {
            b.goto(&format!("{console}{path}")).await;
            b.wait_js("window.htmx && document.readyState === 'complete'")
                .await;
            let violations = b.js_async(&check).await;
            for v in violations.as_array().expect("a list of violations") {
                found.push(format!("{scheme} {path}: {}", v.as_str().unwrap()));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
    b.close().await;
}

/// What users of job dashboards reach for: a reload after Invoke invokes nothing, an event is
/// re-run with its payload edited and the two link to each other, failed rows are ticked and
/// re-run together after the count is shown, and a function deleted while an event runs says
/// so first and takes the event with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_rerun_bulk_rerun_and_delete_while_running_in_a_real_browser() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let app = TestApp::new().await;
    app.add_key().await;
    app.create_function(
        "default",
        "jobs",
        &[
            ("AsyncRunEnable", "TRUE"),
            ("TraceEnable", "TRUE"),
            ("Timeout", "60"),
            (
                "Code",
                "import time\ndef main_handler(event, context):\n    if event.get('sleep'):\n        time.sleep(event['sleep'])\n    if event.get('fail'):\n        raise RuntimeError('asked to fail')\n    return event\n",
            ),
        ],
    )
    .await;
    let base = log_in(&b, &app).await;
    let function = format!("{base}/scf/{REGION}/default/functions/jobs");
    let count = || async {
        app.get(&function_url("default", "jobs", "events"))
            .await
            .text(".count-line")
    };

    // Invoke, then reload: the answer is gone and nothing more is invoked.
    b.goto(&format!("{function}/test")).await;
    let first = invoke_from_test_tab(&b, r#"{"fail": true}"#).await;
    b.js("location.reload(); return true;").await;
    b.wait_js("document.readyState === 'complete' && !document.querySelector('.answer')")
        .await;
    assert!(
        count().await.starts_with("1 event match"),
        "{}",
        count().await
    );

    // Re-run with an edited payload: the new event and its original link both ways.
    b.goto(&format!("{function}/events/{first}")).await;
    b.wait(".event .status", "Invocation failed").await;
    b.click(".event-actions a[href$='/rerun']").await;
    b.wait("h2", "Re-run event").await;
    b.fill("#ClientContext", r#"{"edited": true}"#).await;
    b.click("form button.btn-primary").await;
    b.wait(".banner-ok", "Re-run of").await;
    b.wait(".event .status", "Invocation completed").await;
    b.wait(".event .output", "edited").await;
    b.click("#event-detail .facts a").await;
    b.wait("#event-detail h2", &first).await;
    b.wait(".reruns", "Re-run as").await;

    // Two more failures; tick the failed rows, re-run them after the count is shown.
    for _ in 0..2 {
        app.api(
            "Invoke",
            json!({"FunctionName": "jobs", "InvocationType": "Event", "ClientContext": "{\"fail\": true}"}),
        )
        .await
        .ok();
    }
    b.goto(&format!("{function}/events?status=failed")).await;
    b.wait_js("document.querySelectorAll('#event-rows tbody tr').length === 3")
        .await;
    b.js("document.querySelectorAll('#event-rows [data-select]').forEach((c, i) => { if (i < 2) c.click(); }); return true;")
        .await;
    b.click("#bulk-rerun button").await;
    b.wait(".card h2", "Re-run 2 events?").await;
    b.click(".card button.btn-primary").await;
    b.wait(".banner-ok", "2 events re-run.").await;
    b.screenshot("bulk-rerun").await;

    // Delete while an event runs: said first, then the event goes with the function.
    app.api(
        "Invoke",
        json!({"FunctionName": "jobs", "InvocationType": "Event", "ClientContext": "{\"sleep\": 30}"}),
    )
    .await
    .ok();
    wait_for("the sleeping event to run", WAIT, || async {
        app.get(&format!(
            "{}?status=running",
            function_url("default", "jobs", "events")
        ))
        .await
        .text(".count-line")
        .starts_with("1 event")
        .then_some(())
    })
    .await;
    b.goto(&format!("{function}/delete")).await;
    b.wait(
        ".confirm .banner-error",
        "1 event is running or waiting to run.",
    )
    .await;
    b.click(".confirm button.btn-danger").await;
    b.wait(".banner-ok", "deleted").await;
    let f = app
        .state
        .store
        .get_function(&scf_console::store::FunctionKey {
            region: REGION.into(),
            namespace: "default".into(),
            name: "jobs".into(),
        })
        .await
        .unwrap();
    assert!(f.is_none());
    assert_eq!(b.policy_violations().await, Vec::<String>::new());
    b.close().await;
}
