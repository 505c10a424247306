//! Who may use the console: logging in and out, sessions that end, guessers slowed down, forms
//! that only the console's own pages can send, the three roles on both doors, the Users and
//! Account pages, and the audit trail of it all.

use crate::support::api::{self, Options, SECRET_ID};
use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use std::time::Duration;

fn users_url() -> String {
    format!("/scf/{REGION}/default/users")
}

fn keys_url() -> String {
    format!("/scf/{REGION}/default/api-keys")
}

fn audit_url(query: &str) -> String {
    format!("/scf/{REGION}/default/audit?{query}")
}

fn namespaces_url() -> String {
    format!("/scf/{REGION}/default/namespaces")
}

async fn namespace_exists(app: &TestApp, name: &str) -> bool {
    app.state
        .store
        .get_namespace(REGION, name)
        .await
        .unwrap()
        .is_some()
}

async fn function_exists(app: &TestApp, name: &str) -> bool {
    let key = scf_console::store::FunctionKey {
        region: REGION.into(),
        namespace: "default".into(),
        name: name.into(),
    };
    app.state.store.get_function(&key).await.unwrap().is_some()
}

/// The rows of the audit page as (who, action, target, outcome).
async fn audit_rows(app: &TestApp, query: &str) -> Vec<[String; 4]> {
    let page = app.get(&audit_url(query)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let html = page.html();
    let row = scraper::Selector::parse("table.data tbody tr").unwrap();
    let cell = scraper::Selector::parse("td").unwrap();
    html.select(&row)
        .map(|tr| {
            let cells: Vec<String> = tr
                .select(&cell)
                .map(|td| td.text().collect::<String>().trim().to_string())
                .collect();
            let who = cells[1].split_whitespace().next().unwrap_or("").to_string();
            [who, cells[3].clone(), cells[4].clone(), cells[5].clone()]
        })
        .collect()
}

/// A newcomer opens a console page: the login page comes first and leads back to it.
#[tokio::test]
async fn the_console_asks_for_a_login_and_returns_to_the_page_asked_for() {
    let app = TestApp::new().await;
    let wanted = functions_url("default");
    let page = app
        .send_anonymous(Request::get(&wanted).body(Body::empty()).unwrap())
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let login_url = page.location().to_string();
    assert!(login_url.starts_with("/login?next="), "{login_url}");

    let form = app
        .send_anonymous(Request::get(&login_url).body(Body::empty()).unwrap())
        .await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(
        form.attr("input[name=next]", "value").as_deref(),
        Some(wanted.as_str())
    );
    assert_eq!(form.count("input[name=Password][type=password]"), 1);

    let wrong = app
        .send_anonymous(
            form_request("/login")
                .body(form_body(&[
                    ("UserName", "admin"),
                    ("Password", "not the password"),
                    ("next", &wanted),
                ]))
                .unwrap(),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text("[role=alert]")
            .contains("user name or password is wrong")
    );
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());
    assert_eq!(
        wrong.attr("#UserName", "value").as_deref(),
        Some("admin"),
        "the name is kept"
    );

    let ok = app
        .send_anonymous(
            form_request("/login")
                .body(form_body(&[
                    ("UserName", "admin"),
                    ("Password", ADMIN_PASSWORD),
                    ("next", &wanted),
                ]))
                .unwrap(),
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.location(), wanted);
    let cookie = ok.header("set-cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP cannot keep a Secure cookie: {cookie}"
    );

    // A link to another site as `next` leads home instead.
    let away = app
        .send_anonymous(
            form_request("/login")
                .body(form_body(&[
                    ("UserName", "admin"),
                    ("Password", ADMIN_PASSWORD),
                    ("next", "//evil.example/"),
                ]))
                .unwrap(),
        )
        .await;
    assert_eq!(away.location(), "/");

    let list = app.get(&wanted).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.text(".topbar-user").contains("admin"));
    assert!(list.text(".topbar-user").contains("Admin"));
}

/// Behind a TLS proxy that says so, and only when told to trust it, the cookie is Secure.
#[tokio::test]
async fn the_session_cookie_is_secure_behind_a_trusted_https_proxy() {
    let app = TestApp::new().await;
    let login = |router: axum::Router| async move {
        let req = form_request("/login")
            .header("x-forwarded-proto", "https")
            .body(form_body(&[
                ("UserName", "admin"),
                ("Password", ADMIN_PASSWORD),
            ]))
            .unwrap();
        let res = tower::ServiceExt::oneshot(router, req).await.unwrap();
        res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_string()
    };
    let untrusted = login(app.router.clone()).await;
    assert!(!untrusted.contains("Secure"), "{untrusted}");
    let mut state = app.state.clone();
    state.trusted_proxy = true;
    let trusted = login(scf_console::app::router(state)).await;
    assert!(trusted.contains("; Secure"), "{trusted}");
}

#[tokio::test]
async fn logging_out_ends_the_session_for_good() {
    let app = TestApp::new().await;
    let before = app.session().unwrap();
    let out = app.post("/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/login");
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    // The old cookie opens nothing any more.
    let page = app.get(&functions_url("default")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().starts_with("/login"));
    assert_eq!(app.session().unwrap().cookie, before.cookie);
}

#[tokio::test]
async fn a_session_ends_when_its_time_is_up() {
    let app = TestApp::new().await;
    assert_eq!(
        app.get(&functions_url("default")).await.status,
        StatusCode::OK
    );
    app.state
        .clock
        .advance(Duration::from_secs(30 * 86_400 + 1));
    let page = app.get(&functions_url("default")).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().starts_with("/login"));
    // htmx is told to reload the whole page on the login page, not to swap it into a part.
    let part = app.get_hx(&functions_url("default")).await;
    assert_eq!(part.status, StatusCode::UNAUTHORIZED);
    assert!(part.header("hx-redirect").starts_with("/login?next="));
}

/// Someone guesses the admin's password: after five failures from one address even the right
/// password is refused for a while, every failure is logged and audited.
#[tokio::test]
async fn failed_logins_are_slowed_down_logged_and_audited() {
    let app = TestApp::new().await;
    let (log, _logging) = Log::capture();
    for i in 0..5 {
        let page = app.log_in("admin", &format!("guess-{i}-xxxxx")).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let limited = app.log_in("admin", ADMIN_PASSWORD).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        limited
            .text("[role=alert]")
            .contains("Too many failed logins"),
        "{}",
        limited.body
    );
    assert!(limited.headers.get(header::SET_COOKIE).is_none());
    assert!(
        log.text().contains("failed console login"),
        "{}",
        log.text()
    );
    assert!(log.text().contains("too many failed attempts"));
    // A megabyte "password" is refused unhashed.
    let huge = "x".repeat(1 << 20);
    assert_eq!(
        app.log_in("admin", &huge).await.status,
        StatusCode::UNAUTHORIZED
    );

    let refused: Vec<_> = audit_rows(&app, "action=Log+in")
        .await
        .into_iter()
        .filter(|r| r[3].starts_with("refused"))
        .collect();
    assert_eq!(refused.len(), 5, "{refused:?}");
    assert_eq!(refused[0][0], "admin");
}

/// A change needs the session's CSRF token, in the form or in htmx's header; a cookie alone
/// (all a forged request from another page would carry) changes nothing.
#[tokio::test]
async fn a_change_without_the_session_token_is_refused_and_changes_nothing() {
    let app = TestApp::new().await;
    let login = app.session().unwrap();
    let cookie = format!("scf_session={}", login.cookie);
    let create = |token: Option<&str>, header_token: Option<&str>, hx: bool, name: &str| {
        let mut fields = vec![("Namespace", name.to_string())];
        if let Some(t) = token {
            fields.push(("csrf", t.to_string()));
        }
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut req = form_request(&namespaces_url()).header(header::COOKIE, &cookie);
        if let Some(t) = header_token {
            req = req.header("x-csrf-token", t);
        }
        if hx {
            req = req.header("hx-request", "true");
        }
        req.body(form_body(&fields)).unwrap()
    };
    for (what, req) in [
        ("no token", create(None, None, false, "nothing1")),
        (
            "a wrong token",
            create(Some("forged"), None, false, "nothing2"),
        ),
        (
            "htmx with a wrong token",
            create(None, Some("forged"), true, "nothing3"),
        ),
        ("htmx without a token", create(None, None, true, "nothing4")),
    ] {
        let page = app.send_anonymous(req).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{what}");
        assert!(
            page.text("main").contains("Reload the page"),
            "{what}: {}",
            page.body
        );
    }
    for name in ["nothing1", "nothing2", "nothing3", "nothing4"] {
        assert!(!namespace_exists(&app, name).await, "{name} was created");
    }
    // The console's own form carries the token as a field, htmx as a header.
    let form = app.get(&namespaces_url()).await;
    let token = form
        .attr("form[action$='/namespaces'] input[name=csrf]", "value")
        .expect("the form carries the token");
    assert_eq!(token, login.csrf);
    assert!(
        form.attr("body", "hx-headers")
            .unwrap()
            .contains(&login.csrf)
    );
    let page = app
        .send_anonymous(create(Some(&login.csrf), None, false, "byform"))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = app
        .send_anonymous(create(None, Some(&login.csrf), true, "byhtmx"))
        .await;
    assert!(
        page.status.is_success() || page.status.is_redirection(),
        "{}",
        page.status
    );
    assert!(namespace_exists(&app, "byform").await);
    assert!(namespace_exists(&app, "byhtmx").await);
}

/// The SCF API has its own door: a console cookie opens nothing there.
#[tokio::test]
async fn the_api_takes_no_cookies() {
    let app = TestApp::new().await;
    let page = app
        .send(
            Request::post("/")
                .header("x-tc-action", "ListFunctions")
                .header("x-tc-version", "2018-04-16")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    let json: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(
        json["Response"]["Error"]["Code"],
        "AuthFailure.InvalidAuthorization"
    );
}

/// A read-only user sees everything and changes nothing: the buttons are not there, and the
/// server refuses what a hand-made request asks.
#[tokio::test]
async fn a_read_only_user_sees_everything_and_changes_nothing() {
    let app = TestApp::new().await;
    app.create_function("default", "shared", &[]).await;
    assert_eq!(
        app.log_in_as_new("reader", "read-only").await.status,
        StatusCode::SEE_OTHER
    );

    let list = app.get(&functions_url("default")).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("shared"), "it sees the function");
    assert!(list.link("a", "Create").is_none(), "no Create button");
    assert_eq!(list.count("a.link-danger"), 0, "no Delete links");
    let config = app.get(&function_url("default", "shared", "config")).await;
    assert_eq!(config.status, StatusCode::OK);
    assert_eq!(
        config.count("main form[method=post] button[type=submit]"),
        0,
        "{}",
        config.body
    );
    let test = app.get(&function_url("default", "shared", "test")).await;
    assert_eq!(test.count("main form[method=post]"), 0);
    let keys = app.get(&keys_url()).await;
    assert_eq!(keys.count("main form[method=post]"), 0);

    let mut fields = valid_function("planted");
    fields.push(("Handler", "index.main_handler"));
    let create = app.post(&new_url("default"), &fields).await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    assert!(create.text("main").contains("read-only"), "{}", create.body);
    assert!(!function_exists(&app, "planted").await);
    let invoke = app
        .post(
            &function_url("default", "shared", "test"),
            &[("Event", "{}")],
        )
        .await;
    assert_eq!(invoke.status, StatusCode::FORBIDDEN);
    let delete = app
        .post(&function_url("default", "shared", "delete"), &[])
        .await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);
    assert!(function_exists(&app, "shared").await);
    let key = app.post(&keys_url(), &[("Description", "mine")]).await;
    assert_eq!(key.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get(&users_url()).await.status, StatusCode::FORBIDDEN);
    // Its own password it may change.
    let own = app
        .post(
            &format!("/scf/{REGION}/default/account/password"),
            &[
                ("CurrentPassword", "reader-password"),
                ("NewPassword", "a new password"),
            ],
        )
        .await;
    assert_eq!(own.status, StatusCode::SEE_OTHER, "{}", own.body);
}

/// A developer works on functions and its own keys, not on users, billing or others' keys.
#[tokio::test]
async fn a_developer_builds_functions_but_manages_no_one_else() {
    let app = TestApp::new().await;
    app.add_key().await; // the admin's key, from the configuration
    app.log_in_as_new("dev", "developer").await;

    app.create_function("default", "devfn", &[]).await;
    let created = app
        .post(&keys_url(), &[("Description", "dev laptop")])
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let keys = app.get(&keys_url()).await;
    let shown = keys.texts("table.data tbody td code");
    assert_eq!(shown.len(), 1, "only its own key: {shown:?}");
    assert!(!shown.contains(&SECRET_ID.to_string()));

    for (what, url) in [
        ("disable", format!("{}/{SECRET_ID}/disable", keys_url())),
        ("delete", format!("{}/{SECRET_ID}/delete", keys_url())),
    ] {
        let page = app.post(&url, &[]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{what}");
        assert!(
            page.text("main").contains("belongs to admin"),
            "{}",
            page.body
        );
    }
    assert!(
        app.state
            .store
            .get_api_key(SECRET_ID)
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    // A key for someone else: only an admin makes those.
    let other = app
        .post(&keys_url(), &[("Description", "x"), ("Owner", "admin")])
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get(&users_url()).await.status, StatusCode::FORBIDDEN);
    let billing = app
        .post(
            &format!("{}/default/settings", namespaces_url()),
            &[("Suspended", "TRUE")],
        )
        .await;
    assert_eq!(billing.status, StatusCode::FORBIDDEN);
    let list = app.get(&functions_url("default")).await;
    assert!(list.link(".sidebar a", "Users").is_none(), "no Users entry");
}

/// API keys act with their owner's role, and a read-only key only reads.
#[tokio::test]
async fn api_keys_act_with_their_owners_role() {
    let app = TestApp::new().await;
    let make_key = |owner: &'static str, read_only: bool| {
        let state = app.state.clone();
        async move {
            let now = state.clock.now_millis();
            scf_console::keys::create(state.store.as_ref(), owner, "t", read_only, now)
                .await
                .unwrap()
        }
    };
    scf_console::accounts::create_user(&app.state, "reader", "read-only", "reader-password")
        .await
        .unwrap();
    scf_console::accounts::create_user(&app.state, "dev", "developer", "dev-password-1")
        .await
        .unwrap();
    let keys = [
        ("admin read-only key", make_key("admin", true).await, false),
        (
            "read-only user's key",
            make_key("reader", false).await,
            false,
        ),
        ("developer's key", make_key("dev", false).await, true),
        ("admin's key", make_key("admin", false).await, true),
    ];
    for (i, (what, key, may_change)) in keys.iter().enumerate() {
        let o = Options {
            secret_id: &key.secret_id,
            secret_key: &key.secret_key,
            ..Options::default()
        };
        let list = app.api_with("ListFunctions", json!({}), &o).await;
        list.ok();
        let name = format!("byapi{i}");
        let create = app
            .api_with(
                "CreateFunction",
                json!({
                    "FunctionName": name,
                    "Runtime": "Python3.9",
                    "Handler": "index.main_handler",
                    "Code": {"ZipFile": api::zip_base64(&[("index.py", "def main_handler(e, c):\n    return 1\n")])},
                }),
                &o,
            )
            .await;
        if *may_change {
            create.ok();
        } else {
            assert_eq!(create.error_code(), "UnauthorizedOperation", "{what}");
            assert!(create.error_message().contains("read-only"), "{what}");
        }
        assert_eq!(function_exists(&app, &name).await, *may_change, "{what}");
    }
    // Demoting the developer applies to its key at once.
    scf_console::accounts::set_role(&app.state, "dev", "read-only")
        .await
        .unwrap();
    let (_, dev_key, _) = &keys[2];
    let o = Options {
        secret_id: &dev_key.secret_id,
        secret_key: &dev_key.secret_key,
        ..Options::default()
    };
    let after = app
        .api_with("DeleteFunction", json!({"FunctionName": "byapi2"}), &o)
        .await;
    assert_eq!(after.error_code(), "UnauthorizedOperation");
}

/// An admin manages users on the Users page; the last admin cannot be removed by mistake.
#[tokio::test]
async fn an_admin_manages_users_and_cannot_remove_the_last_admin() {
    let app = TestApp::new().await;
    let bad = app
        .post(
            &users_url(),
            &[
                ("UserName", "Bad Name"),
                ("Role", "root"),
                ("Password", "short"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.field_error("UserName").contains("lower-case"));
    assert!(bad.field_error("Role").contains("Choose a role"));
    assert!(bad.field_error("Password").contains("at least 10"));
    assert_eq!(bad.attr("#UserName", "value").as_deref(), Some("Bad Name"));

    let made = app
        .post(
            &users_url(),
            &[
                ("UserName", "carol"),
                ("Role", "developer"),
                ("Password", "carol-password"),
            ],
        )
        .await;
    let page = app.follow(&made).await;
    assert!(page.text("[role=status]").contains("User carol created"));
    assert!(page.text("#user-carol").contains("carol"));
    let again = app
        .post(
            &users_url(),
            &[
                ("UserName", "carol"),
                ("Role", "developer"),
                ("Password", "carol-password"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(again.field_error("UserName").contains("already exists"));

    for (url, fields) in [
        (
            format!("{}/admin/role", users_url()),
            vec![("Role", "developer")],
        ),
        (format!("{}/admin/delete", users_url()), vec![]),
    ] {
        let page = app.post(&url, &fields).await;
        assert_eq!(page.status, StatusCode::CONFLICT, "{url}");
        assert!(
            page.text("#user-admin").contains("would leave no admin"),
            "{}",
            page.body
        );
    }
    let admin = app.state.store.get_user("admin").await.unwrap().unwrap();
    assert_eq!(admin.role, scf_console::domain::user::Role::Admin);

    // carol logs in elsewhere; an admin resets her password: that session ends.
    let admin_login = app.session().unwrap();
    app.log_in("carol", "carol-password").await;
    let carol_login = app.session().unwrap();
    *app.login.lock().unwrap() = Some(admin_login);
    let reset = app
        .post(
            &format!("{}/carol/password", users_url()),
            &[("Password", "new-carol-password")],
        )
        .await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER);
    let hash = scf_console::accounts::token_hash(&carol_login.cookie);
    let now = app.state.clock.now_millis();
    assert!(app.state.store.session(&hash, now).await.unwrap().is_none());
    // Deleting her takes her keys with her.
    let now = app.state.clock.now_millis();
    scf_console::keys::create(app.state.store.as_ref(), "carol", "", false, now)
        .await
        .unwrap();
    let gone = app
        .post(&format!("{}/carol/delete", users_url()), &[])
        .await;
    assert!(
        app.follow(&gone)
            .await
            .text("[role=status]")
            .contains("deleted")
    );
    assert!(app.state.store.get_user("carol").await.unwrap().is_none());
    assert!(
        app.state
            .store
            .list_api_keys(Some("carol"))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn changing_ones_own_password_needs_the_current_one_and_ends_other_sessions() {
    let app = TestApp::new().await;
    let url = format!("/scf/{REGION}/default/account/password");
    let first = app.session().unwrap();
    app.log_in("admin", ADMIN_PASSWORD).await;
    let second = app.session().unwrap();
    let wrong = app
        .post(
            &url,
            &[
                ("CurrentPassword", "nope"),
                ("NewPassword", "brand-new-password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong
            .field_error("CurrentPassword")
            .contains("not your current password")
    );
    let short = app
        .post(
            &url,
            &[
                ("CurrentPassword", ADMIN_PASSWORD),
                ("NewPassword", "short"),
            ],
        )
        .await;
    assert!(short.field_error("NewPassword").contains("at least 10"));
    let ok = app
        .post(
            &url,
            &[
                ("CurrentPassword", ADMIN_PASSWORD),
                ("NewPassword", "brand-new-password"),
            ],
        )
        .await;
    assert!(
        app.follow(&ok)
            .await
            .text("[role=status]")
            .contains("Password changed")
    );
    // This session goes on; the other one is over.
    assert_eq!(
        app.get(&functions_url("default")).await.status,
        StatusCode::OK
    );
    *app.login.lock().unwrap() = Some(first);
    assert_eq!(
        app.get(&functions_url("default")).await.status,
        StatusCode::SEE_OTHER
    );
    *app.login.lock().unwrap() = Some(second);
    assert_eq!(
        app.log_in("admin", ADMIN_PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.log_in("admin", "brand-new-password").await.status,
        StatusCode::SEE_OTHER
    );
}

/// A scripted session, then the audit log: each change with who, from where, what and how it
/// ended; filters narrow it; a refused change is there too.
#[tokio::test]
async fn the_audit_log_tells_who_did_what_to_what() {
    let app = TestApp::new().await;
    app.add_key().await;
    app.create_function("default", "audited", &[]).await;
    let saved = app
        .post(
            &function_url("default", "audited", "config"),
            &[
                ("MemorySize", "256"),
                ("Timeout", "3"),
                ("Description", "changed"),
            ],
        )
        .await;
    assert!(
        saved.status.is_redirection() || saved.status.is_success(),
        "{}",
        saved.status
    );
    app.post(
        &function_url("default", "audited", "test"),
        &[("ClientContext", "{}")],
    )
    .await;
    app.api("DeleteFunction", json!({"FunctionName": "audited"}))
        .await
        .ok();
    app.api("ListFunctions", json!({})).await.ok();
    app.log_in_as_new("reader", "read-only").await;
    app.post(&namespaces_url(), &[("Namespace", "sneaky")])
        .await;

    let rows = audit_rows(&app, "window=all").await;
    let has = |who: &str, action: &str, target: &str, outcome: &str| {
        rows.iter().any(|r| {
            r[0] == who && r[1] == action && r[2].contains(target) && r[3].starts_with(outcome)
        })
    };
    assert!(has("admin", "Log in", "admin", "ok"), "{rows:#?}");
    assert!(
        has("admin", "Create function", "ap-guangzhou/default", "ok"),
        "{rows:#?}"
    );
    assert!(
        has(
            "admin",
            "Change function configuration",
            "ap-guangzhou/default/audited",
            "ok"
        ),
        "{rows:#?}"
    );
    assert!(
        has(
            "admin",
            "Invoke function",
            "ap-guangzhou/default/audited",
            "ok"
        ),
        "{rows:#?}"
    );
    assert!(
        has(
            SECRET_ID,
            "DeleteFunction",
            "ap-guangzhou/default/audited",
            "ok"
        ),
        "{rows:#?}"
    );
    assert!(
        has("reader", "Create namespace", "", "refused"),
        "{rows:#?}"
    );
    assert!(
        !rows.iter().any(|r| r[1] == "ListFunctions"),
        "reads are not audited"
    );
    // Newest first.
    assert_eq!(rows[0][1], "Create namespace");

    let only_api = audit_rows(&app, &format!("actor={SECRET_ID}&window=all")).await;
    assert_eq!(only_api.len(), 1, "{only_api:?}");
    let only_invokes = audit_rows(&app, "action=Invoke+function&window=all").await;
    assert_eq!(only_invokes.len(), 1);
    let by_text = audit_rows(&app, "q=audited&window=all").await;
    assert!(by_text.iter().all(|r| r[2].contains("audited")));
    assert!(by_text.len() >= 4);
}

/// Audit entries last the audit retention (90 days by default), swept like events.
#[tokio::test]
async fn audit_entries_are_swept_after_the_audit_retention() {
    let app = TestApp::new().await;
    app.create_function("default", "old", &[]).await;
    let before = app
        .state
        .store
        .list_audit(&scf_console::store::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .len();
    assert!(before >= 2);
    app.state.clock.advance(Duration::from_secs(89 * 86_400));
    app.state.sweeper.run_once().await.unwrap();
    let kept = app
        .state
        .store
        .list_audit(&scf_console::store::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .len();
    assert_eq!(kept, before, "younger than 90 days: kept");
    app.state.clock.advance(Duration::from_secs(2 * 86_400));
    app.state.sweeper.run_once().await.unwrap();
    let left = app
        .state
        .store
        .list_audit(&scf_console::store::AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// What a forged request asks, where it is sent, and its form.
type Forged<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);

/// The attacks of a page that gets the operator's browser to send the console's own forms with
/// the operator's cookie (from a sibling subdomain, where SameSite does not help, or from a
/// page of the console's own origin): each change the console offers, sent without the
/// session's token, is refused, and nothing is written.
#[tokio::test]
async fn forged_changes_with_the_cookie_but_no_token_write_nothing() {
    let app = events::paused_app().await;
    app.create_function(
        "default",
        "victim",
        &[("AsyncRunEnable", "TRUE"), ("TraceEnable", "TRUE")],
    )
    .await;
    let id = events::function_id(&app, "victim").await;
    events::add_event(&app, id, "queued-one", "API").await;
    let cookie = format!("scf_session={}", app.session().unwrap().cookie);
    let keys_before = app.state.store.list_api_keys(None).await.unwrap();

    let victim = |tab: &str| function_url("default", "victim", tab);
    let mut planted = valid_function("planted");
    planted.push(("Handler", "index.main_handler"));
    let attacks: Vec<Forged> = vec![
        ("create a function", new_url("default"), planted),
        (
            "invoke it",
            victim("test"),
            vec![("ClientContext", "{}"), ("InvocationType", "Event")],
        ),
        (
            "create an API key",
            keys_url(),
            vec![("Description", "for me")],
        ),
        (
            "disable the operator's key",
            format!("{}/{SECRET_ID}/disable", keys_url()),
            vec![],
        ),
        (
            "suspend the namespace",
            format!("{}/default/settings", namespaces_url()),
            vec![("Suspended", "TRUE")],
        ),
        (
            "terminate its events",
            format!(
                "{}?range=3d",
                events_part_url("default", "victim", "terminate")
            ),
            vec![("GraceShutdown", "false")],
        ),
        ("delete the function", victim("delete"), vec![]),
        (
            "make itself a user",
            users_url(),
            vec![
                ("UserName", "mallory"),
                ("Role", "admin"),
                ("Password", "mallory-password"),
            ],
        ),
        ("log the operator out", "/logout".into(), vec![]),
    ];
    for (what, url, fields) in &attacks {
        for site in ["same-site", "same-origin"] {
            let req = form_request(url)
                .header(header::COOKIE, &cookie)
                .header("sec-fetch-site", site)
                .body(form_body(fields))
                .unwrap();
            let page = app.send_anonymous(req).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{what} ({site})");
        }
    }
    assert!(!function_exists(&app, "planted").await);
    assert!(function_exists(&app, "victim").await);
    assert_eq!(
        app.state.store.list_api_keys(None).await.unwrap(),
        keys_before
    );
    let billing = app
        .state
        .store
        .namespace_billing(REGION, "default")
        .await
        .unwrap()
        .unwrap();
    assert!(!billing.suspended);
    let event = app
        .state
        .store
        .get_event("queued-one")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event.status,
        scf_console::domain::event::EventStatus::Queued
    );
    assert!(app.state.store.get_user("mallory").await.unwrap().is_none());
    // Still logged in, and the audit log has each refusal.
    assert_eq!(
        app.get(&functions_url("default")).await.status,
        StatusCode::OK
    );
    let refused = audit_rows(&app, "q=CSRF&window=all").await;
    // Those marked same-site were refused by the site check before their token was looked
    // at; those from the console's own origin by the token, which the audit log says.
    assert_eq!(refused.len(), attacks.len() - 1, "{refused:#?}");
}

/// Guesses sent all at once, before any is answered, still stop at the limit: attempts count
/// before their password is hashed.
#[tokio::test]
async fn a_burst_of_parallel_guesses_stops_at_the_limit() {
    let app = TestApp::new().await;
    let names: Vec<String> = (0..40).map(|i| format!("guess{i}")).collect();
    let pages = futures_util::future::join_all(
        names
            .iter()
            .map(|name| app.log_in(name, "a-wrong-password")),
    )
    .await;
    let count = |status| pages.iter().filter(|p| p.status == status).count();
    assert_eq!(count(StatusCode::UNAUTHORIZED), 20, "hashed and refused");
    assert_eq!(count(StatusCode::TOO_MANY_REQUESTS), 20, "refused unhashed");
}
