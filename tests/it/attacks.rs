//! Attacks through the operator's own browser, each as the attacker's story: a page on another
//! site posts forms to the console, or a name of the attacker's is made to point at it (DNS
//! rebinding). What the attacker gets, and that nothing was written.

use crate::server::Server;
use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const EVIL: &str = "http://evil.example";

/// A wizard form post creating `name`, with the headers a browser would add.
fn create_request(name: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let body = valid_function(name)
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                scf_console::web::urls::encode(k),
                scf_console::web::urls::encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    let mut req = Request::post(new_url("default"))
        .header(header::HOST, "127.0.0.1:9000")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Body::from(body)).unwrap()
}

async fn exists(app: &TestApp, name: &str) -> bool {
    let page = app.get(&function_url("default", name, "config")).await;
    match page.status {
        StatusCode::OK => true,
        StatusCode::NOT_FOUND => false,
        other => panic!("looking for {name}: {other}"),
    }
}

fn assert_refused_as_cross_site(page: &Page) {
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(
        page.text("main").contains("came from another site"),
        "{}",
        page.body
    );
}

/// A page on evil.example holds a hidden form aimed at the console and submits it when the
/// operator opens it: the browser says where it came from, and the console refuses.
#[tokio::test]
async fn a_form_on_another_site_cannot_create_a_function() {
    let app = TestApp::new().await;
    let page = app
        .send(create_request(
            "planted",
            &[("origin", EVIL), ("sec-fetch-site", "cross-site")],
        ))
        .await;
    assert_refused_as_cross_site(&page);
    assert!(!exists(&app, "planted").await, "nothing was created");
}

/// A browser that sends no Sec-Fetch-Site still names the other site in Origin.
#[tokio::test]
async fn an_origin_of_another_site_is_enough_to_refuse() {
    let app = TestApp::new().await;
    let page = app
        .send(create_request("planted", &[("origin", EVIL)]))
        .await;
    assert_refused_as_cross_site(&page);
    assert!(!exists(&app, "planted").await);
}

/// A sandboxed frame or a data: page posts with `Origin: null`, hiding where it is from; that
/// is no page of the console either.
#[tokio::test]
async fn a_hidden_origin_is_refused_too() {
    let app = TestApp::new().await;
    let page = app
        .send(create_request("planted", &[("origin", "null")]))
        .await;
    assert_refused_as_cross_site(&page);
    assert!(!exists(&app, "planted").await);
}

/// Another site's script imitates htmx to create an API key; the answer is a refusal, and no
/// key exists.
#[tokio::test]
async fn an_htmx_request_from_another_site_is_refused() {
    let app = TestApp::new().await;
    let keys = format!("/scf/{REGION}/default/api-keys");
    let page = app
        .send(
            Request::post(&keys)
                .header(header::HOST, "127.0.0.1:9000")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("hx-request", "true")
                .header("origin", EVIL)
                .header("sec-fetch-site", "cross-site")
                .body(Body::from("Description=stolen"))
                .unwrap(),
        )
        .await;
    assert_refused_as_cross_site(&page);
    let list = app.get(&keys).await;
    assert!(!list.body.contains("stolen"), "no key was created");
}

/// The operator's own pages still work: same origin, by the browser's account and by Origin.
#[tokio::test]
async fn the_consoles_own_forms_still_work() {
    let app = TestApp::new().await;
    let page = app
        .send(create_request(
            "mine",
            &[
                ("origin", "http://127.0.0.1:9000"),
                ("sec-fetch-site", "same-origin"),
            ],
        ))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(exists(&app, "mine").await);
    // A script or curl sends neither header.
    app.create_function("default", "scripted", &[]).await;
    assert!(exists(&app, "scripted").await);
}

/// One raw request over a socket; answers the whole response as text.
fn raw(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn get_as(addr: &str, host: &str, path: &str) -> String {
    get_with(addr, host, path, "")
}

/// A GET with a session's `Cookie:` line, as a logged-in browser sends it.
fn get_with(addr: &str, host: &str, path: &str, cookie: &str) -> String {
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n"),
    )
}

/// A signed CreateFunction, signed for the host it names, as a rebinding page holding a
/// leaked key would send it.
fn create_function_as(addr: &str, host: &str, name: &str) -> String {
    use scf_console::scf::tc3::{SignInput, sha256_hex, sign, utc_date};
    let body = json!({
        "FunctionName": name,
        "Runtime": "Python3.9",
        "Handler": "index.main_handler",
        "Code": {"ZipFile": api::zip_base64(&[("index.py", "def main_handler(e, c):\n    return 1\n")])},
    })
    .to_string();
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signature = sign(
        api::SECRET_KEY,
        &SignInput {
            method: "POST",
            query: "",
            headers: &[("content-type", "application/json"), ("host", host)],
            payload_hash: &sha256_hex(body.as_bytes()),
            timestamp,
        },
    );
    raw(
        addr,
        &format!(
            "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             X-TC-Action: CreateFunction\r\nX-TC-Version: 2018-04-16\r\nX-TC-Region: {REGION}\r\nX-TC-Timestamp: {timestamp}\r\n\
             Authorization: TC3-HMAC-SHA256 Credential={}/{}/scf/tc3_request, SignedHeaders=content-type;host, Signature={signature}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len(),
            api::SECRET_ID,
            utc_date(timestamp)
        ),
    )
}

fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or_default()
}

fn header_of<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    let head = response.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// evil.example is made to resolve to 127.0.0.1 after the operator opened it: its script now
/// talks to the console as its own origin, but every request names evil.example, and the
/// console does not answer to that name, neither pages nor the API.
#[test]
fn a_rebound_name_gets_no_page_and_no_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let addr = &server.addr;
    let port = addr.rsplit(':').next().unwrap();
    let rebound = format!("evil.example:{port}");

    let page = get_as(addr, &rebound, &format!("/scf/{REGION}/default/api-keys"));
    assert!(status_line(&page).starts_with("HTTP/1.1 421"), "{page}");
    assert!(page.contains("localhost,127.0.0.1,[::1]"), "{page}");
    assert!(page.contains("--allowed-hosts"), "{page}");
    assert!(!page.contains("SecretId"), "{page}");

    let api = create_function_as(addr, &rebound, "rebound");
    assert!(status_line(&api).starts_with("HTTP/1.1 421"), "{api}");
    let missing = server.api_answer("GetFunction", json!({"FunctionName": "rebound"}));
    assert_eq!(
        missing["Error"]["Code"], "ResourceNotFound.Function",
        "nothing was created: {missing}"
    );

    // The names of this machine still reach it.
    let cookie = crate::server::log_in(addr, "admin", ADMIN_PASSWORD);
    for host in [addr.to_string(), format!("localhost:{port}")] {
        let page = get_with(
            addr,
            &host,
            &format!("/scf/{REGION}/default/functions"),
            &cookie,
        );
        assert!(status_line(&page).starts_with("HTTP/1.1 200"), "{page}");
    }
    let made = create_function_as(addr, addr, "direct");
    assert!(status_line(&made).starts_with("HTTP/1.1 200"), "{made}");
}

/// Behind a public name the operator lists it; then that name is served and the local ones,
/// no longer listed, are not.
#[test]
fn a_public_name_is_served_once_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), |cmd| {
        cmd.env("SCF_ALLOWED_HOSTS", "console.example.com");
    });
    let addr = &server.addr;
    let page = get_as(addr, "console.example.com", "/");
    assert!(status_line(&page).starts_with("HTTP/1.1 303"), "{page}");
    let local = get_as(addr, addr, "/");
    assert!(status_line(&local).starts_with("HTTP/1.1 421"), "{local}");
    assert!(
        local.contains("--allowed-hosts console.example.com,127.0.0.1:"),
        "{local}"
    );
    // A load balancer's health check names whatever address it probes.
    let health = get_as(addr, addr, "/healthz");
    assert!(status_line(&health).starts_with("HTTP/1.1 200"), "{health}");
}

/// Every answer tells the browser to run only the console's own code, not to guess types, to
/// keep the URL to itself and never to frame the console: pages, assets, API answers, 404s
/// and refusals alike.
#[test]
fn every_answer_carries_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let addr = &server.addr;
    let cookie = crate::server::log_in(addr, "admin", ADMIN_PASSWORD);
    let list = get_with(
        addr,
        addr,
        &format!("/scf/{REGION}/default/functions"),
        &cookie,
    );
    let asset_path = list
        .split("href=\"")
        .filter_map(|s| s.split('"').next())
        .find(|href| href.starts_with("/static/") && href.contains("app"))
        .expect("the stylesheet's URL")
        .to_string();
    let answers = [
        ("a page", list),
        ("a static asset", get_as(addr, addr, &asset_path)),
        (
            "an API answer",
            create_function_as(addr, addr, "with-headers"),
        ),
        ("a 404", get_with(addr, addr, "/no/such/page", &cookie)),
        ("the way to the login page", get_as(addr, addr, "/")),
        ("a 421", get_as(addr, "evil.example", "/")),
    ];
    for (what, response) in answers {
        let csp = header_of(&response, "content-security-policy")
            .unwrap_or_else(|| panic!("{what} has no CSP: {response}"));
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(directive), "{what}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
        assert_eq!(
            header_of(&response, "x-content-type-options"),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            header_of(&response, "referrer-policy"),
            Some("same-origin"),
            "{what}"
        );
        assert_eq!(
            header_of(&response, "x-frame-options"),
            Some("DENY"),
            "{what}"
        );
    }
}
