//! Two doors, one house: the same refusal, provoked through a console form, an htmx request and
//! the SCF API, is the same decision with the same words.

use crate::support::api::*;
use crate::support::events::*;
use crate::support::*;
use scf_console::domain::event::EventStatus;
use scf_console::engine::EngineConfig;
use scf_console::store::{EventWrite, NewEvent};
use serde_json::json;

/// The message of a console error page.
fn said(page: &Page) -> String {
    page.text(".error-page h1 + p")
}

fn event_url(function: &str, request_id: &str) -> String {
    format!(
        "{}/{request_id}",
        function_url("default", function, "events")
    )
}

#[tokio::test]
async fn with_status_trace_off_every_door_refuses_event_queries_in_the_same_words() {
    let app = paused_app().await;
    traced_function(&app, "quiet").await;
    let id = "00000000-0000-4000-8000-00000000d001";
    add_event(&app, function_id(&app, "quiet").await, id, "API").await;
    app.api(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "quiet", "TraceEnable": "FALSE"}),
    )
    .await
    .ok();
    let words =
        "Status trace is off for function quiet: async event status is not recorded or queried.";

    let page = app.get(&event_url("quiet", id)).await;
    let fragment = app.get_hx(&event_url("quiet", id)).await;
    let rows = app
        .get_hx(&events_part_url("default", "quiet", "rows"))
        .await;
    for (door, answer) in [("page", &page), ("fragment", &fragment), ("rows", &rows)] {
        assert_eq!(answer.status.as_u16(), 400, "{door}");
        assert_eq!(said(answer), words, "{door}");
    }
    let status = app
        .api("GetAsyncEventStatus", json!({"InvokeRequestId": id}))
        .await;
    let listed = app
        .api("ListAsyncEvents", json!({"FunctionName": "quiet"}))
        .await;
    // Each in the code of its action's list: ListAsyncEvents has no FailedOperation of its own.
    for (answer, code) in [
        (&status, "FailedOperation.AsyncEventStatus"),
        (&listed, "FailedOperation"),
    ] {
        assert_eq!(answer.error_code(), code);
        assert_eq!(answer.error_message(), words);
    }
}

#[tokio::test]
async fn another_functions_event_cannot_be_terminated_through_any_door() {
    let app = paused_app().await;
    traced_function(&app, "mine").await;
    traced_function(&app, "theirs").await;
    let id = "00000000-0000-4000-8000-00000000d002";
    add_event(&app, function_id(&app, "theirs").await, id, "API").await;
    let words = format!(
        "Function mine has no async event {id}. Records are kept for the retention period after events end."
    );

    let terminate = format!("{}/terminate", event_url("mine", id));
    let form = app.post(&terminate, &[("GraceShutdown", "false")]).await;
    let htmx = app
        .post_hx(&terminate, "GraceShutdown", &[("GraceShutdown", "false")])
        .await;
    for (door, answer) in [("form", &form), ("htmx", &htmx)] {
        assert_eq!(answer.status.as_u16(), 404, "{door}");
        assert_eq!(said(answer), words, "{door}");
    }
    let api = app
        .api(
            "TerminateAsyncEvent",
            json!({"FunctionName": "mine", "InvokeRequestId": id}),
        )
        .await;
    assert_eq!(api.error_code(), "ResourceNotFound.AsyncEvent");
    assert_eq!(api.error_message(), words);

    let untouched = app.state.store.get_event(id).await.unwrap().unwrap();
    assert_eq!(untouched.status, EventStatus::Queued);
}

#[tokio::test]
async fn a_taken_function_name_is_refused_alike_by_the_wizard_its_live_check_and_the_api() {
    let app = TestApp::new().await;
    app.add_key().await;
    app.create_function("default", "taken", &[]).await;
    let words = "A function named taken already exists in namespace default. Choose another name.";

    let form = app
        .post(&new_url("default"), &valid_function("taken"))
        .await;
    assert_eq!(form.status.as_u16(), 422);
    assert_eq!(form.field_error("FunctionName"), words);
    let live = app
        .post_hx(
            &validate_url("default"),
            "FunctionName",
            &valid_function("taken"),
        )
        .await;
    assert_eq!(live.field_error("FunctionName"), words);
    let api = app
        .api(
            "CreateFunction",
            json!({
                "FunctionName": "taken",
                "Runtime": "Python3.9",
                "Code": {"ZipFile": zip_base64(&[("index.py", PYTHON_CODE)])},
            }),
        )
        .await;
    assert_eq!(api.error_code(), "ResourceInUse.Function");
    assert_eq!(api.error_message(), words);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_cannot_write_refuses_re_run_test_tab_and_invoke_in_the_same_words() {
    let (app, sqlite) = TestApp::with_sqlite(EngineConfig {
        workers: 0,
        ..test_engine()
    })
    .await;
    app.add_key().await;
    traced_function(&app, "orders").await;
    // Payloads large enough to need fresh pages, which the capped file cannot have.
    let payload = json!({"blob": "x".repeat(100 * 1024)}).to_string();
    let id = "00000000-0000-4000-8000-00000000d003";
    app.state
        .store
        .apply_event_writes(&[EventWrite::Insert(NewEvent {
            request_id: id.into(),
            function_id: function_id(&app, "orders").await,
            invoke_type: "API".into(),
            traced: true,
            payload: payload.clone(),
            enqueued_at: app.state.clock.now_millis(),
            invoked_by: None,
            rerun_of: None,
        })])
        .await
        .unwrap();
    let pages = sqlite.page_count().await.unwrap();
    sqlite.limit_pages(Some(pages)).await.unwrap();

    let rerun = app
        .post(&format!("{}/rerun", event_url("orders", id)), &[])
        .await;
    let test = function_url("default", "orders", "test");
    let fields = [
        ("InvocationType", "Event"),
        ("ClientContext", payload.as_str()),
    ];
    let test_form = app.post(&test, &fields).await;
    let test_htmx = app.post_hx(&test, "ClientContext", &fields).await;
    let api = app
        .api(
            "Invoke",
            json!({"FunctionName": "orders", "InvocationType": "Event", "ClientContext": payload}),
        )
        .await;

    let words = api.error_message().to_string();
    assert_eq!(api.error_code(), "InternalError");
    assert!(
        words.starts_with("The invocation was not accepted because the event store cannot write")
            && words.contains("SQLITE_FULL")
            && words.contains("Nothing was recorded and nothing will run"),
        "{words}"
    );
    for (door, answer) in [
        ("re-run", &rerun),
        ("test form", &test_form),
        ("test htmx", &test_htmx),
    ] {
        assert_eq!(answer.status.as_u16(), 503, "{door}");
        assert_eq!(said(answer), words, "{door}");
    }
    let f = function_id(&app, "orders").await;
    assert_eq!(
        app.state.store.count_events(f).await.unwrap(),
        1,
        "nothing refused was recorded"
    );
    sqlite.limit_pages(None).await.unwrap();
}

#[tokio::test]
async fn over_the_qps_limit_re_run_test_tab_and_invoke_are_refused_alike() {
    let app = paused_app().await;
    app.create_function(
        "default",
        "busy",
        &[
            ("AsyncRunEnable", "TRUE"),
            ("TraceEnable", "TRUE"),
            ("QpsLimit", "1"),
        ],
    )
    .await;
    let id = "00000000-0000-4000-8000-00000000d004";
    add_event(&app, function_id(&app, "busy").await, id, "API").await;
    // The clock stands still, so the one token of this second is gone for the whole test.
    app.api("Invoke", json!({"FunctionName": "busy"}))
        .await
        .ok();
    let words = "The function's QPS limit (1 per second) is exceeded; try again shortly. No event was recorded.";

    let rerun = app
        .post(&format!("{}/rerun", event_url("busy", id)), &[])
        .await;
    assert_eq!(rerun.status.as_u16(), 429);
    // Said above the re-run form, whose payload can be sent again.
    assert_eq!(rerun.text(".banner-error"), words);
    assert!(rerun.text("#ClientContext").contains(id));
    let test = app
        .post(
            &function_url("default", "busy", "test"),
            &[("ClientContext", "{}")],
        )
        .await;
    assert_eq!(test.status.as_u16(), 429);
    assert_eq!(test.text(".banner-error"), words);
    let api = app.api("Invoke", json!({"FunctionName": "busy"})).await;
    assert_eq!(api.error_code(), "RequestLimitExceeded");
    assert_eq!(api.error_message(), words);
}
