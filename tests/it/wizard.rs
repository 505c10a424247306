//! Creating a function: Create → empty function or template → Function Configuration →
//! Advanced Settings → Async Execution > Status Trace → Complete.

use crate::support::*;
use axum::http::StatusCode;
use scf_console::domain::runtime::{Interpreter, Interpreters};
use scf_console::domain::template::TEMPLATES;

#[tokio::test]
async fn the_first_step_offers_an_empty_function_or_searchable_templates() {
    let app = TestApp::new().await;
    let page = app.get(&new_url("default")).await;
    assert!(page.text(".start-choice").contains("Empty function"));
    assert!(page.text(".start-choice").contains("Function template"));
    let titles = page.texts(".template-card strong");
    assert!(titles.len() >= 4, "{titles:?}");
    for expected in [
        "Hello World (Python)",
        "Hello World (Node.js)",
        "Long-running async task (Python)",
        "Failing handler (Python)",
    ] {
        assert!(
            titles.iter().any(|t| t == expected),
            "{expected} in {titles:?}"
        );
    }

    // Search without JavaScript: the whole page, filtered.
    let page = app
        .get(&format!("{}?q=python+async", new_url("default")))
        .await;
    assert_eq!(
        page.texts(".template-card strong"),
        vec!["Long-running async task (Python)"]
    );

    // Search with htmx: only the cards.
    let fragment = app.get_hx(&format!("{}?q=error", new_url("default"))).await;
    assert_eq!(
        fragment.texts(".template-card strong"),
        vec!["Failing handler (Python)"]
    );
    assert_eq!(fragment.count(".sidebar"), 0, "a fragment has no frame");

    let none = app.get_hx(&format!("{}?q=cobol", new_url("default"))).await;
    assert!(none.text(".empty-inline").contains("No template matches"));
}

#[tokio::test]
async fn a_template_prefills_the_configuration() {
    let app = TestApp::new().await;
    let page = app
        .get(&format!(
            "{}?template=python-long-running-task",
            new_url("default")
        ))
        .await;
    assert_eq!(
        page.attr("#FunctionName", "value").as_deref(),
        Some("long-task")
    );
    assert_eq!(
        page.attr("#Handler", "value").as_deref(),
        Some("index.main_handler")
    );
    assert!(
        page.text("#Code")
            .contains("def main_handler(event, context):")
    );
    assert!(page.text("#Code").contains("time.sleep(interval)"));
    // Only the template's language is offered, newest runnable first.
    let runtimes = page.texts("#Runtime option:not([disabled])");
    assert!(
        runtimes.iter().all(|r| r.starts_with("Python")),
        "{runtimes:?}"
    );
    assert!(
        page.attr("#Runtime option[selected]", "value")
            .unwrap()
            .starts_with("Python3.")
    );
    // Made for async execution with status trace: both start ticked, in Advanced Settings
    // shown open, since async execution cannot change after Complete.
    assert!(page.attr("#AsyncRunEnable", "checked").is_some());
    assert!(page.attr("#TraceEnable", "checked").is_some());
    assert!(page.attr("details.advanced", "open").is_some());
    // Other templates leave async execution to the user, in Advanced Settings folded.
    let hello = app
        .get(&format!(
            "{}?template=python-hello-world",
            new_url("default")
        ))
        .await;
    assert!(hello.attr("#AsyncRunEnable", "checked").is_none());
    assert!(hello.attr("#TraceEnable", "checked").is_none());
    assert!(hello.attr("details.advanced", "open").is_none());

    let missing = app
        .get(&format!("{}?template=nope", new_url("default")))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_template_creates_a_valid_function_as_it_is() {
    let app = TestApp::new().await;
    for template in TEMPLATES {
        let form = app
            .get(&format!("{}?template={}", new_url("default"), template.id))
            .await;
        // Submit exactly what the form was prefilled with.
        let mut fields: Vec<(String, String)> = vec![("template".into(), template.id.into())];
        for name in [
            "FunctionName",
            "Handler",
            "MemorySize",
            "Timeout",
            "RetryNum",
            "MsgTTL",
        ] {
            fields.push((
                name.into(),
                form.attr(&format!("#{name}"), "value").unwrap_or_default(),
            ));
        }
        fields.push((
            "Runtime".into(),
            form.attr("#Runtime option[selected]", "value").unwrap(),
        ));
        fields.push(("Description".into(), form.text("#Description")));
        fields.push((
            "Code".into(),
            form.html()
                .select(&scraper::Selector::parse("#Code").unwrap())
                .next()
                .unwrap()
                .text()
                .collect(),
        ));
        for flag in ["AsyncRunEnable", "TraceEnable"] {
            if form.attr(&format!("#{flag}"), "checked").is_some() {
                fields.push((flag.into(), "TRUE".into()));
            }
        }
        let borrowed: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let created = app.post(&new_url("default"), &borrowed).await;
        assert_eq!(
            created.status,
            StatusCode::SEE_OTHER,
            "{}: {:?}",
            template.id,
            created.errors()
        );
        let page = app.follow(&created).await;
        assert_eq!(page.text("h1"), template.function_name);
        assert_eq!(page.text(".banner-ok"), "Function created.");
        let code = app
            .get(&function_url("default", template.function_name, "code"))
            .await;
        assert_eq!(
            code.text("#Code"),
            template
                .code
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
}

#[tokio::test]
async fn complete_with_async_execution_and_status_trace_opens_the_function_page() {
    let app = TestApp::new().await;
    let page = app
        .post(
            &new_url("default"),
            &[
                ("template", "empty"),
                ("FunctionName", "orders-worker"),
                ("Runtime", "Python3.10"),
                ("Handler", "index.main_handler"),
                ("Code", PYTHON_CODE),
                ("Description", "Processes orders"),
                ("MemorySize", "256"),
                ("Timeout", "3600"),
                ("AsyncRunEnable", "TRUE"),
                ("TraceEnable", "TRUE"),
                ("RetryNum", "1"),
                ("MsgTTL", "600"),
                ("Environment.Variables.0.Key", "STAGE"),
                ("Environment.Variables.0.Value", "prod"),
                ("Environment.Variables.1.Key", ""),
                ("Environment.Variables.1.Value", ""),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location(),
        "/scf/ap-guangzhou/default/functions/orders-worker/config"
    );
    let fn_page = app.follow(&page).await;
    assert_eq!(fn_page.text(".banner-ok"), "Function created.");
    // Said once: the page reloaded has no banner.
    assert_eq!(app.get(page.location()).await.count(".banner-ok"), 0);
    let facts = fn_page.text(".facts");
    for expected in ["Python3.10", "index.main_handler", "256 MB", "3600 s"] {
        assert!(facts.contains(expected), "{expected} in {facts}");
    }
    assert_eq!(fn_page.texts(".facts .badge"), vec!["On", "On"]);
    assert_eq!(fn_page.attr("#MemorySize", "value").as_deref(), Some("256"));
    assert_eq!(fn_page.attr("#RetryNum", "value").as_deref(), Some("1"));
    assert_eq!(fn_page.attr("#MsgTTL", "value").as_deref(), Some("600"));
    assert_eq!(
        fn_page.attr("#env-key-0", "value").as_deref(),
        Some("STAGE")
    );
    assert_eq!(
        fn_page.attr("#env-value-0", "value").as_deref(),
        Some("prod")
    );
    assert_eq!(fn_page.text("#Description"), "Processes orders");

    let list = app.get(&functions_url("default")).await;
    let row = list.text("table.data tbody tr");
    assert!(
        row.contains("orders-worker")
            && row.contains("Python3.10")
            && row.contains("Processes orders"),
        "{row}"
    );
}

#[tokio::test]
async fn status_trace_is_only_taken_with_async_execution() {
    let app = TestApp::new().await;
    // With scripts off, a ticked but hidden Status Trace box does not count.
    app.create_function("default", "sync-fn", &[("TraceEnable", "TRUE")])
        .await;
    let page = app.get(&function_url("default", "sync-fn", "config")).await;
    assert_eq!(
        page.count("#TraceEnable"),
        0,
        "no trace toggle without async execution"
    );
    assert!(
        page.text(".async-settings")
            .contains("Status trace needs async execution")
    );
    assert_eq!(page.texts(".facts .badge"), vec!["Off"]);
}

/// The field whose message is expected, the inputs that break its rule, and what the message says.
type RuleCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);

/// One bad input per rule: the message next to the field, the input kept, nothing created.
#[tokio::test]
async fn every_rule_is_checked_on_the_server_with_the_input_kept() {
    let app = TestApp::new().await;
    app.create_function("default", "taken", &[]).await;
    let long_description = "d".repeat(1001);
    let big_value = "v".repeat(4100);
    let cases: Vec<RuleCase> = vec![
        (
            "FunctionName",
            vec![("FunctionName", "9lives")],
            "start with a letter",
        ),
        (
            "FunctionName",
            vec![("FunctionName", "a")],
            "2-60 characters",
        ),
        (
            "FunctionName",
            vec![("FunctionName", "ends-with-")],
            "end with a letter or digit",
        ),
        (
            "FunctionName",
            vec![("FunctionName", "")],
            "Enter a function name",
        ),
        (
            "FunctionName",
            vec![("FunctionName", "taken")],
            "already exists in namespace default",
        ),
        ("Handler", vec![("Handler", "index")], "file.method"),
        ("Handler", vec![("Handler", "index.main1")], "file.method"),
        (
            "Description",
            vec![("Description", &long_description)],
            "at most 1000",
        ),
        ("MemorySize", vec![("MemorySize", "100")], "steps of 128"),
        ("MemorySize", vec![("MemorySize", "4096")], "at most 3072"),
        ("MemorySize", vec![("MemorySize", "lots")], "whole number"),
        ("Timeout", vec![("Timeout", "901")], "1 to 900 seconds"),
        ("Timeout", vec![("Timeout", "0")], "1 to 900 seconds"),
        (
            "Timeout",
            vec![("Timeout", "86401"), ("AsyncRunEnable", "TRUE")],
            "86400 seconds (24 hours)",
        ),
        (
            "Environment",
            vec![
                ("Environment.Variables.0.Key", "1BAD"),
                ("Environment.Variables.0.Value", "x"),
            ],
            "only letters, digits and _",
        ),
        (
            "Environment",
            vec![
                ("Environment.Variables.0.Key", "K"),
                ("Environment.Variables.0.Value", ""),
            ],
            "enter a value",
        ),
        (
            "Environment",
            vec![
                ("Environment.Variables.0.Key", "K"),
                ("Environment.Variables.0.Value", &big_value),
            ],
            "under 4 KB",
        ),
        ("RetryNum", vec![("RetryNum", "3")], "0 to 2"),
        ("MsgTTL", vec![("MsgTTL", "30")], "60 to 21600"),
        ("Runtime", vec![("Runtime", "Python3.12")], "unavailable"),
        ("Runtime", vec![("Runtime", "Ruby2.7")], "not a runtime"),
        ("Code", vec![("Code", "   ")], "needs code"),
    ];
    for (field, overrides, message) in cases {
        let mut fields = valid_function("fresh-name");
        for (k, v) in &overrides {
            fields.retain(|(fk, _)| fk != k);
            fields.push((k, v));
        }
        let page = app.post(&new_url("default"), &fields).await;
        assert_eq!(
            page.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field} {overrides:?}"
        );
        let shown = page.field_error(field);
        assert!(
            shown.contains(message),
            "{field} {overrides:?}: got {shown:?}"
        );
        assert!(page.text(".banner-error").contains("Your input is kept"));
        // The rest of the input is kept.
        let (k, v) = overrides[0];
        if let Some(id) = match k {
            "FunctionName" | "Handler" | "MemorySize" | "Timeout" | "RetryNum" | "MsgTTL" => {
                Some(k.to_string())
            }
            "Environment.Variables.0.Key" => Some("env-key-0".into()),
            _ => None,
        } {
            assert_eq!(
                page.attr(&format!("#{id}"), "value").as_deref(),
                Some(v),
                "{k} kept"
            );
        }
        assert!(
            page.text("#Code")
                .contains(if k == "Code" { "" } else { "def main_handler" })
        );
        // An advanced field's error opens Advanced Settings so it can be seen.
        let advanced =
            ["MemorySize", "Timeout", "Environment", "RetryNum", "MsgTTL"].contains(&field);
        assert_eq!(
            page.attr("details.advanced", "open").is_some(),
            advanced,
            "{field}"
        );
    }
    // Nothing was created along the way.
    let list = app.get(&functions_url("default")).await;
    assert_eq!(list.texts("a.fn-name"), vec!["taken"]);
}

#[tokio::test]
async fn several_mistakes_are_all_shown_at_once() {
    let app = TestApp::new().await;
    let mut fields = valid_function("1bad");
    fields.retain(|(k, _)| *k != "MemorySize" && *k != "Handler");
    fields.push(("MemorySize", "65"));
    fields.push(("Handler", "nodot"));
    let page = app.post(&new_url("default"), &fields).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!page.field_error("FunctionName").is_empty());
    assert!(!page.field_error("Handler").is_empty());
    assert!(!page.field_error("MemorySize").is_empty());
    assert!(
        page.text(".banner-error")
            .contains("3 settings need attention")
    );
}

#[tokio::test]
async fn fields_are_checked_live_as_the_user_types() {
    let app = TestApp::new().await;
    app.create_function("default", "taken", &[]).await;
    let validate = validate_url("default");

    let mut fields = valid_function("9lives");
    let slot = app.post_hx(&validate, "FunctionName", &fields).await;
    assert_eq!(slot.status, StatusCode::OK);
    assert!(
        slot.field_error("FunctionName")
            .contains("start with a letter")
    );
    assert_eq!(
        slot.count(".sidebar"),
        0,
        "only the message slot comes back"
    );

    fields = valid_function("taken");
    let slot = app.post_hx(&validate, "FunctionName", &fields).await;
    assert!(slot.field_error("FunctionName").contains("already exists"));

    fields = valid_function("fine-name");
    let slot = app.post_hx(&validate, "FunctionName", &fields).await;
    assert_eq!(
        slot.field_error("FunctionName"),
        "",
        "a good value clears the message"
    );
    assert_eq!(slot.count("#err-FunctionName"), 1, "the slot stays, empty");

    // Environment rows report under one slot.
    fields.push(("Environment.Variables.0.Key", "BAD KEY"));
    fields.push(("Environment.Variables.0.Value", "x"));
    fields.retain(|(k, v)| !(k.starts_with("Environment") && v.is_empty()));
    let slot = app
        .post_hx(&validate, "Environment.Variables.0.Key", &fields)
        .await;
    assert!(slot.field_error("Environment").contains("BAD KEY"));

    // Ticking async execution re-checks the timeout it governs.
    let mut fields = valid_function("fine-name");
    fields.retain(|(k, _)| *k != "Timeout");
    fields.push(("Timeout", "3600"));
    let slot = app.post_hx(&validate, "Timeout", &fields).await;
    assert!(slot.field_error("Timeout").contains("1 to 900"));
    fields.push(("AsyncRunEnable", "TRUE"));
    let slot = app.post_hx(&validate, "AsyncRunEnable", &fields).await;
    assert_eq!(
        slot.attr("#err-Timeout", "hx-swap-oob").as_deref(),
        Some("true")
    );
    assert_eq!(slot.field_error("Timeout"), "");
}

#[tokio::test]
async fn add_variable_works_without_javascript_and_keeps_the_input() {
    let app = TestApp::new().await;
    let mut fields = valid_function("env-fn");
    fields.retain(|(k, _)| !k.starts_with("Environment"));
    fields.extend([
        ("Environment.Variables.0.Key", "A"),
        ("Environment.Variables.0.Value", "1"),
        ("_action", "add-env"),
    ]);
    let page = app.post(&new_url("default"), &fields).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "the form again, nothing created"
    );
    assert_eq!(
        page.attr("#FunctionName", "value").as_deref(),
        Some("env-fn")
    );
    assert_eq!(page.attr("#env-key-0", "value").as_deref(), Some("A"));
    assert_eq!(
        page.count(".env-row"),
        3,
        "the variable, the blank row and the added row"
    );
    assert!(page.attr("details.advanced", "open").is_some());
    let list = app.get(&functions_url("default")).await;
    assert_eq!(list.count("a.fn-name"), 0);
}

#[tokio::test]
async fn a_missing_interpreter_is_shown_as_unavailable_not_hidden() {
    let app = TestApp::with_interpreters(Interpreters {
        python: Some(Interpreter {
            command: "python3".into(),
            version: (3, 10, 4),
        }),
        nodejs: None,
    })
    .await;
    let page = app
        .get(&format!("{}?template=empty", new_url("default")))
        .await;
    let node = page.text("#Runtime option[value='Nodejs18.15']");
    assert!(
        node.contains("unavailable: no node interpreter was found"),
        "{node}"
    );
    assert!(
        page.attr("#Runtime option[value='Nodejs18.15']", "disabled")
            .is_some()
    );
    let py311 = page.text("#Runtime option[value='Python3.11']");
    assert!(
        py311.contains("needs Python 3.11 or newer; this server has 3.10.4"),
        "{py311}"
    );
    assert!(
        page.text("#Runtime option[value='Python3.10']")
            .contains("runs on Python 3.10.4")
    );

    let mut fields = valid_function("node-fn");
    fields.retain(|(k, _)| *k != "Runtime");
    fields.push(("Runtime", "Nodejs18.15"));
    let refused = app.post(&new_url("default"), &fields).await;
    assert!(
        refused
            .field_error("Runtime")
            .contains("Nodejs18.15 is unavailable")
    );
}
