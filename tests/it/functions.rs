//! Living with functions: the list, search and pages, the Configuration and Code tabs, status
//! trace on and off, deletion.

use crate::support::*;
use axum::http::StatusCode;
use std::time::Duration;

#[tokio::test]
async fn the_list_shows_each_function_with_its_flags_newest_first() {
    let app = TestApp::new().await;
    app.create_function("default", "plain", &[("Description", "A sync function")])
        .await;
    app.state.clock.advance(Duration::from_secs(60));
    app.create_function(
        "default",
        "traced",
        &[
            ("AsyncRunEnable", "TRUE"),
            ("TraceEnable", "TRUE"),
            ("Runtime", "Nodejs18.15"),
            ("Code", "exports.main_handler = async () => 1;"),
        ],
    )
    .await;
    let page = app.get(&functions_url("default")).await;
    assert_eq!(page.texts("a.fn-name"), vec!["traced", "plain"]);
    let headers = page.texts("table.data th");
    for h in [
        "Name",
        "Runtime",
        "Description",
        "Async execution",
        "Status trace",
        "Created",
        "Modified",
    ] {
        assert!(headers.iter().any(|x| x == h), "{h} in {headers:?}");
    }
    let rows = page.texts("table.data tbody tr");
    assert!(
        rows[0].contains("Nodejs18.15") && rows[0].contains("On On"),
        "{}",
        rows[0]
    );
    assert!(rows[0].contains("2026-11-29 10:01:00"), "{}", rows[0]);
    assert!(
        rows[1].contains("A sync function") && rows[1].contains("Off —"),
        "{}",
        rows[1]
    );
    assert!(page.text(".pager").contains("2 functions"));
}

#[tokio::test]
async fn search_by_name_with_and_without_htmx() {
    let app = TestApp::new().await;
    for name in ["orders-api", "orders-worker", "billing", "under_score"] {
        app.create_function("default", name, &[]).await;
    }
    let page = app
        .get(&format!("{}?q=ORDERS", functions_url("default")))
        .await;
    assert_eq!(page.texts("a.fn-name"), vec!["orders-worker", "orders-api"]);
    assert_eq!(
        page.attr("#function-search", "value").as_deref(),
        Some("ORDERS")
    );

    let fragment = app
        .get_hx(&format!("{}?q=bill", functions_url("default")))
        .await;
    assert_eq!(fragment.texts("a.fn-name"), vec!["billing"]);
    assert_eq!(fragment.count("#function-table"), 1);
    assert_eq!(fragment.count(".sidebar"), 0);

    // `_` is a plain character, not a wildcard.
    let page = app
        .get(&format!("{}?q=r_s", functions_url("default")))
        .await;
    assert_eq!(page.texts("a.fn-name"), vec!["under_score"]);
    assert_eq!(page.count("a.fn-name"), 1);

    let none = app
        .get(&format!("{}?q=zzz", functions_url("default")))
        .await;
    assert!(
        none.text(".empty-state h2")
            .contains("No function matches “zzz”")
    );
}

#[tokio::test]
async fn long_lists_come_in_pages_of_twenty() {
    let app = TestApp::new().await;
    for i in 0..25 {
        app.create_function("default", &format!("fn-{i:02}"), &[])
            .await;
        app.state.clock.advance(Duration::from_secs(1));
    }
    let first = app.get(&functions_url("default")).await;
    assert_eq!(first.count("a.fn-name"), 20);
    assert_eq!(first.text("a.fn-name"), "fn-24");
    assert!(first.text(".pager").contains("25 functions · page 1 of 2"));
    assert_eq!(first.count(".pager a[rel=prev]"), 0);
    let next = first.attr(".pager a[rel=next]", "href").unwrap();
    let second = app.get(&next).await;
    assert_eq!(
        second.texts("a.fn-name"),
        vec!["fn-04", "fn-03", "fn-02", "fn-01", "fn-00"]
    );
    assert!(second.text(".pager").contains("page 2 of 2"));

    // Paging keeps the search.
    let searched = app
        .get(&format!("{}?q=fn-&page=1", functions_url("default")))
        .await;
    assert!(
        searched
            .attr(".pager a[rel=next]", "href")
            .unwrap()
            .contains("q=fn-")
    );
    // A nonsense page number shows the first page.
    let odd = app
        .get(&format!("{}?page=-3", functions_url("default")))
        .await;
    assert_eq!(odd.status, StatusCode::OK);
    assert_eq!(odd.text("a.fn-name"), "fn-24");
}

#[tokio::test]
async fn deleting_asks_first_then_removes_the_function() {
    let app = TestApp::new().await;
    app.create_function("default", "doomed", &[]).await;
    app.create_function("default", "keeper", &[]).await;
    let list = app.get(&functions_url("default")).await;
    let delete = list.attr("a.link-danger[href*=doomed]", "href").unwrap();
    let confirm = app.get(&delete).await;
    assert!(confirm.text(".confirm").contains("cannot be undone"));
    assert_eq!(confirm.text(".confirm button"), "Delete doomed");
    // Only the confirmation's POST deletes.
    assert_eq!(
        app.get(&functions_url("default")).await.count("a.fn-name"),
        2
    );

    let done = app.post(&delete, &[]).await;
    let list = app.follow(&done).await;
    assert_eq!(list.text(".banner-ok"), "Function doomed was deleted.");
    assert_eq!(list.texts("a.fn-name"), vec!["keeper"]);
    assert_eq!(
        app.get(&function_url("default", "doomed", "config"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.post(&delete, &[]).await.status, StatusCode::NOT_FOUND);
}

fn config_form<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("Description", "updated"),
        ("MemorySize", "512"),
        ("Timeout", "30"),
        ("RetryNum", "1"),
        ("MsgTTL", "120"),
        ("Environment.Variables.0.Key", "MODE"),
        ("Environment.Variables.0.Value", "fast"),
        ("AsyncRunEnable", "FALSE"),
    ];
    for (k, v) in overrides {
        fields.retain(|(fk, _)| fk != k);
        fields.push((k, v));
    }
    fields
}

#[tokio::test]
async fn the_configuration_tab_edits_settings_but_not_async_execution() {
    let app = TestApp::new().await;
    app.create_function("default", "tunable", &[]).await;
    let url = function_url("default", "tunable", "config");
    let page = app.get(&url).await;
    assert_eq!(page.text(".tabs a[aria-current=page]"), "Configuration");
    assert!(page.text(".async-settings").contains("cannot be changed"));
    assert_eq!(
        page.count("#AsyncRunEnable"),
        0,
        "async execution is locked"
    );
    assert!(page.attr("details.advanced", "open").is_some());
    // Public network access is on by default, as on SCF.
    assert!(page.attr("#PublicNetConfig", "checked").is_some());

    app.state.clock.advance(Duration::from_secs(90));
    // Trying to switch async execution on by hand changes nothing of it; the network box is
    // left unticked.
    let saved = app
        .post(&url, &config_form(&[("AsyncRunEnable", "TRUE")]))
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{:?}", saved.errors());
    let page = app.follow(&saved).await;
    assert_eq!(page.text(".banner-ok"), "Configuration saved.");
    assert_eq!(page.text("#Description"), "updated");
    assert_eq!(page.attr("#MemorySize", "value").as_deref(), Some("512"));
    assert_eq!(page.attr("#Timeout", "value").as_deref(), Some("30"));
    assert_eq!(page.attr("#RetryNum", "value").as_deref(), Some("1"));
    assert_eq!(page.attr("#MsgTTL", "value").as_deref(), Some("120"));
    assert_eq!(page.attr("#env-key-0", "value").as_deref(), Some("MODE"));
    assert!(
        page.text(".facts").contains("10:01:30"),
        "modified time moves"
    );
    let stored = app
        .state
        .store
        .get_function(&key("tunable"))
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.async_run_enable);
    assert!(!stored.public_net);
    assert!(page.attr("#PublicNetConfig", "checked").is_none());

    // A bad value: message by the field, input kept, nothing saved.
    let refused = app
        .post(
            &url,
            &config_form(&[("Timeout", "1000"), ("MemorySize", "1024")]),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.field_error("Timeout").contains("1 to 900"));
    assert_eq!(refused.attr("#Timeout", "value").as_deref(), Some("1000"));
    assert_eq!(
        refused.attr("#MemorySize", "value").as_deref(),
        Some("1024")
    );
    assert!(refused.text(".banner-error").contains("Nothing was saved"));
    let stored = app
        .state
        .store
        .get_function(&key("tunable"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.timeout, stored.memory_size), (30, 512));
}

fn key(name: &str) -> scf_console::store::FunctionKey {
    scf_console::store::FunctionKey {
        region: REGION.into(),
        namespace: "default".into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn turning_status_trace_off_is_confirmed_and_says_when_records_are_cleared() {
    let app = TestApp::new().await;
    app.create_function(
        "default",
        "traced",
        &[("AsyncRunEnable", "TRUE"), ("TraceEnable", "TRUE")],
    )
    .await;
    let url = function_url("default", "traced", "config");
    let on = [("AsyncRunEnable", "TRUE"), ("TraceEnable", "TRUE")];
    let off = [("AsyncRunEnable", "TRUE")];

    // Unticking asks first and saves nothing.
    let ask = app.post(&url, &config_form(&off)).await;
    assert_eq!(ask.status, StatusCode::OK);
    let question = ask.text(".confirm");
    assert!(question.contains("Turn off status trace?"), "{question}");
    assert!(
        question.contains("Recording, statistics and query of async event status stop"),
        "{question}"
    );
    assert!(question.contains("cleared within 3 days"), "{question}");
    assert_eq!(
        ask.attr("#MemorySize", "value").as_deref(),
        Some("512"),
        "the edits wait in the form"
    );
    assert!(
        app.state
            .store
            .get_function(&key("traced"))
            .await
            .unwrap()
            .unwrap()
            .trace_enable
    );

    // Confirming saves, and the page says when the last records go.
    let mut confirmed = config_form(&off);
    confirmed.push(("ConfirmTraceOff", "yes"));
    let saved = app.post(&url, &confirmed).await;
    let page = app.follow(&saved).await;
    let notice = page.text(".banner-info");
    assert!(notice.contains("Status trace is off"), "{notice}");
    assert!(
        notice.contains("cleared by 2026-12-02 10:00:00 UTC"),
        "{notice}"
    );
    assert_eq!(page.texts(".facts .badge"), vec!["On", "Off"]);

    // Saving other settings later keeps the original clearing time.
    app.state.clock.advance(Duration::from_secs(3600));
    let page = app.follow(&app.post(&url, &config_form(&off)).await).await;
    assert!(
        page.text(".banner-info")
            .contains("cleared by 2026-12-02 10:00:00 UTC")
    );

    // Turning it back on needs no confirmation.
    let page = app.follow(&app.post(&url, &config_form(&on)).await).await;
    assert_eq!(page.count(".banner-info"), 0);
    assert_eq!(page.texts(".facts .badge"), vec!["On", "On"]);
}

#[tokio::test]
async fn the_code_tab_edits_the_handler_file() {
    let app = TestApp::new().await;
    app.create_function("default", "coder", &[]).await;
    let url = function_url("default", "coder", "code");
    let page = app.get(&url).await;
    assert_eq!(page.text(".tabs a[aria-current=page]"), "Code");
    assert_eq!(page.text("label[for=Code]"), "index.py");
    assert_eq!(
        page.attr("#Handler", "value").as_deref(),
        Some("index.main_handler")
    );

    let new_code = "def main_handler(event, context):\r\n    return {'ok': True}\r\n";
    let saved = app
        .post(
            &url,
            &[("Handler", "index.main_handler"), ("Code", new_code)],
        )
        .await;
    let page = app.follow(&saved).await;
    assert_eq!(page.text(".banner-ok"), "Code saved.");
    let files = app
        .state
        .store
        .get_code(
            app.state
                .store
                .get_function(&key("coder"))
                .await
                .unwrap()
                .unwrap()
                .id,
        )
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        String::from_utf8(files[0].content.clone()).unwrap(),
        "def main_handler(event, context):\n    return {'ok': True}\n"
    );

    // A new handler file: the code goes there, and the old file is listed, not lost.
    let page = app
        .follow(
            &app.post(
                &url,
                &[
                    ("Handler", "app.run"),
                    ("Code", "def run(event, context):\n    pass\n"),
                ],
            )
            .await,
        )
        .await;
    assert_eq!(page.text("label[for=Code]"), "app.py");
    assert_eq!(page.texts(".file-list li code"), ["app.py", "index.py"]);

    let refused = app
        .post(&url, &[("Handler", "bad"), ("Code", "x = 1")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.field_error("Handler").contains("file.method"));
    assert_eq!(refused.text("#Code"), "x = 1", "the edit is kept");
}

fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(crate::support::api::zip_base64(files))
        .unwrap()
}

fn unzip_of(bytes: &[u8]) -> Vec<(String, String)> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut files = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).unwrap();
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        files.push((entry.name().unwrap().to_string(), text));
    }
    files.sort();
    files
}

#[tokio::test]
async fn every_file_of_a_package_can_be_read_edited_downloaded_and_replaced() {
    let app = TestApp::new().await;
    app.create_function("default", "multi", &[]).await;
    let url = function_url("default", "multi", "code");
    // A two-file package, uploaded from the Code tab.
    let package = zip_of(&[
        (
            "index.py",
            "from lib.util import greet\ndef main_handler(event, context):\n    return greet()\n",
        ),
        ("lib/util.py", "def greet():\n    return 'hi'\n"),
    ]);
    let uploaded = app
        .post_multipart(
            &url,
            &[("Handler", "index.main_handler")],
            Some(("ZipFile", "package.zip", &package)),
        )
        .await;
    assert_eq!(
        uploaded.status,
        StatusCode::SEE_OTHER,
        "{:?}",
        uploaded.errors()
    );
    let page = app.follow(&uploaded).await;
    assert!(page.text(".banner-ok").starts_with("Package uploaded"));
    // Every file is listed, the handler's first, and opens in the editor.
    assert_eq!(
        page.texts(".file-list li code"),
        ["index.py", "lib/util.py"]
    );
    assert_eq!(page.text(".file-list a[aria-current=page]"), "index.py");
    assert!(
        page.attr("#Code", "data-code-language")
            .unwrap()
            .starts_with("Python"),
        "the editor highlights the function's language"
    );
    let util = page.link(".file-list a", "lib/util.py").unwrap();
    let opened = app.get(&util).await;
    assert_eq!(opened.text("label[for=Code]"), "lib/util.py");
    assert!(opened.text("#Code").contains("return 'hi'"));
    assert_eq!(
        opened.attr("input[name=File]", "value").as_deref(),
        Some("lib/util.py")
    );
    let saved = app
        .post(
            &url,
            &[
                ("Handler", "index.main_handler"),
                ("File", "lib/util.py"),
                ("Code", "def greet():\n    return 'hello'\n"),
            ],
        )
        .await;
    assert_eq!(saved.location(), util, "back to the file edited");
    // A file that is not in the package is not made up.
    let refused = app
        .post(
            &url,
            &[
                ("Handler", "index.main_handler"),
                ("File", "lib/nope.py"),
                ("Code", "x = 1"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.field_error("Code").contains("no file lib/nope.py"));
    // Nor may an edit of another file leave the handler pointing at a missing one.
    let lost = app
        .post(
            &url,
            &[
                ("Handler", "gone.main_handler"),
                ("File", "lib/util.py"),
                ("Code", "x = 1"),
            ],
        )
        .await;
    assert_eq!(lost.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        lost.field_error("Handler")
            .contains("gone.py is not in the package")
    );

    // The download is the package as stored, the edit included.
    let zip = app.get(&format!("{url}/package.zip")).await;
    assert_eq!(zip.header("content-type"), "application/zip");
    assert!(zip.header("content-disposition").contains("multi.zip"));
    assert_eq!(
        unzip_of(&zip.bytes),
        [
            ("index.py".to_string(), "from lib.util import greet\ndef main_handler(event, context):\n    return greet()\n".to_string()),
            ("lib/util.py".to_string(), "def greet():\n    return 'hello'\n".to_string()),
        ]
    );

    // A package that cannot be used is said by the file input, and nothing changes.
    for (bytes, says) in [
        (b"not a zip".to_vec(), "not usable"),
        (zip_of(&[("../escape.py", "x")]), "unsafe path"),
    ] {
        let bad = app
            .post_multipart(
                &url,
                &[("Handler", "index.main_handler")],
                Some(("ZipFile", "bad.zip", &bytes)),
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            bad.field_error("ZipFile").contains(says),
            "{}",
            bad.field_error("ZipFile")
        );
    }
    assert_eq!(
        unzip_of(&app.get(&format!("{url}/package.zip")).await.bytes).len(),
        2
    );
    // Upload without a file picked: said by the file input, nothing changes.
    let nothing = app
        .post_multipart(&url, &[("Handler", "index.main_handler")], None)
        .await;
    assert_eq!(nothing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(nothing.field_error("ZipFile").contains("Pick a zip file"));
    assert!(
        nothing.text("#Code").contains("from lib.util import greet"),
        "the editor shows the stored code"
    );
    // Another file of the package may be emptied (an __init__.py).
    let emptied = app
        .post(
            &url,
            &[
                ("Handler", "index.main_handler"),
                ("File", "lib/util.py"),
                ("Code", ""),
            ],
        )
        .await;
    assert_eq!(
        emptied.status,
        StatusCode::SEE_OTHER,
        "{:?}",
        emptied.errors()
    );
    // A multipart form without this session's token changes nothing.
    let (content_type, body) = multipart_body(
        &[("Handler", "index.main_handler")],
        Some(("ZipFile", "p.zip", &package)),
    );
    let cookie = format!("scf_session={}", app.session().unwrap().cookie);
    let forged = app
        .send_anonymous(
            axum::http::Request::post(&url)
                .header("content-type", content_type)
                .header("cookie", cookie)
                .body(axum::body::Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_wizard_creates_a_function_from_an_uploaded_zip() {
    let app = TestApp::new().await;
    let package = zip_of(&[
        (
            "index.py",
            "def main_handler(event, context):\n    return 'zipped'\n",
        ),
        ("data/words.txt", "one\ntwo\n"),
    ]);
    let mut fields = valid_function("zipped");
    fields.retain(|(k, _)| *k != "Code");
    let created = app
        .post_multipart(
            &new_url("default"),
            &fields,
            Some(("ZipFile", "fn.zip", &package)),
        )
        .await;
    assert_eq!(
        created.status,
        StatusCode::SEE_OTHER,
        "{:?}",
        created.errors()
    );
    let code = app.get(&function_url("default", "zipped", "code")).await;
    assert_eq!(
        code.texts(".file-list li code"),
        ["index.py", "data/words.txt"]
    );
    let bad = app
        .post_multipart(
            &new_url("default"),
            &valid_function("unzipped"),
            Some(("ZipFile", "x.zip", b"junk")),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.field_error("ZipFile").contains("Pick a zip file again"));
    assert_eq!(
        bad.attr("#FunctionName", "value").as_deref(),
        Some("unzipped"),
        "the form is kept"
    );
}

/// Every word the console uses in its own URLs, so none of them can be taken from a user who
/// names a function with it.
const CONSOLE_WORDS: &[&str] = &[
    "new",
    "validate",
    "rows",
    "stats",
    "terminate",
    "trace-on",
    "config",
    "code",
    "test",
    "events",
    "delete",
    "rerun",
    "settings",
];

#[tokio::test]
async fn a_function_named_like_a_console_page_opens_from_the_list() {
    let app = TestApp::new().await;
    for name in CONSOLE_WORDS {
        app.create_function(
            "default",
            name,
            &[("AsyncRunEnable", "TRUE"), ("TraceEnable", "TRUE")],
        )
        .await;
    }
    let list = app.get(&functions_url("default")).await;
    for name in CONSOLE_WORDS {
        let link = list
            .link("a.fn-name", name)
            .unwrap_or_else(|| panic!("{name} is listed"));
        let opened = app.get(&link).await;
        assert!(opened.status.is_redirection(), "{name}: {}", opened.status);
        let overview = app.follow(&opened).await;
        assert_eq!(overview.status, StatusCode::OK, "{name}");
        assert_eq!(overview.text(".page-head h1"), *name);
        assert_eq!(overview.text(".tabs [aria-current=page]"), "Configuration");
        let events = app.get(&function_url("default", name, "events")).await;
        assert_eq!(events.status, StatusCode::OK, "{name}");
        assert_eq!(events.text(".page-head h1"), *name);
    }
}
