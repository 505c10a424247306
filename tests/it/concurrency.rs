//! Functions sharing one console's workers (8 in tests, 4 at most per function without a
//! reservation): one function's long events leave room for the others' events, a reserved
//! concurrency keeps room for its function and caps it, and both doors set it.

use crate::engine::{function, invoke, until_status};
use crate::support::api::Answer;
use crate::support::*;
use axum::http::StatusCode;
use scf_console::domain::event::EventStatus;
use serde_json::{Value, json};
use std::time::Duration;

const SLEEPER: &str = "import time\ndef main_handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return 'ok'\n";
const LIMIT: Duration = Duration::from_secs(30);

async fn sleeper(app: &TestApp, name: &str) {
    function(app, name, "Python3.10", SLEEPER, json!({"Timeout": 600})).await;
}

async fn invoke_n(app: &TestApp, name: &str, n: usize, sleep: u64) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(invoke(app, name, json!({ "sleep": sleep })).await);
    }
    ids
}

/// How many of `ids` are running and how many still queued.
async fn running_queued(app: &TestApp, ids: &[String]) -> (usize, usize) {
    let (mut running, mut queued) = (0, 0);
    for id in ids {
        match app.state.store.get_event(id).await.unwrap().unwrap().status {
            EventStatus::Running => running += 1,
            EventStatus::Queued => queued += 1,
            _ => {}
        }
    }
    (running, queued)
}

async fn until_counts(app: &TestApp, what: &str, ids: &[String], want: (usize, usize)) {
    wait_for(what, LIMIT, || async {
        (running_queued(app, ids).await == want).then_some(())
    })
    .await;
}

/// Asks the API to reserve `mem` MB for `name`.
async fn reserve(app: &TestApp, name: &str, mem: Value) -> Answer {
    app.api(
        "PutReservedConcurrencyConfig",
        json!({"FunctionName": name, "ReservedConcurrencyMem": mem}),
    )
    .await
}

/// The reservation the API reports for `name`.
async fn reserved(app: &TestApp, name: &str) -> Value {
    app.api(
        "GetReservedConcurrencyConfig",
        json!({"FunctionName": name}),
    )
    .await
    .ok()["ReservedMem"]
        .clone()
}

async fn terminate_all(app: &TestApp, name: &str, ids: &[String]) {
    for id in ids {
        app.api(
            "TerminateAsyncEvent",
            json!({"FunctionName": name, "InvokeRequestId": id}),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_functions_long_events_leave_room_for_anothers() {
    let app = TestApp::new().await;
    app.add_key().await;
    sleeper(&app, "nightly-export").await;
    sleeper(&app, "send-receipt").await;
    // Sixteen long events of one function: it gets its share (4 of the 8 workers), not all.
    let long = invoke_n(&app, "nightly-export", 16, 300).await;
    until_counts(&app, "the export to run its share", &long, (4, 12)).await;
    // Another team's quick event runs at once rather than after the export's events.
    let quick = invoke(&app, "send-receipt", json!({})).await;
    let done = until_status(&app, &quick, EventStatus::Finished).await;
    assert_eq!(done.status_code, Some(200));
    assert_eq!(running_queued(&app, &long).await, (4, 12));
    terminate_all(&app, "nightly-export", &long).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reservation_keeps_room_for_its_function_and_caps_it() {
    let app = TestApp::new().await;
    app.add_key().await;
    for name in ["billing", "reports", "ingest"] {
        sleeper(&app, name).await;
    }
    // 256 MB at 128 MB each: two events at once, kept for billing alone.
    reserve(&app, "billing", json!(256)).await.ok();
    assert_eq!(reserved(&app, "billing").await, 256);

    // The other two fill everything not reserved: 4 + 2 of the 6 left.
    let reports = invoke_n(&app, "reports", 4, 300).await;
    until_counts(&app, "reports to run", &reports, (4, 0)).await;
    let ingest = invoke_n(&app, "ingest", 4, 300).await;
    until_counts(&app, "ingest to take what is left", &ingest, (2, 2)).await;
    // Billing still starts at once, two at a time; its third waits for its own room.
    let billing = invoke_n(&app, "billing", 3, 300).await;
    until_counts(&app, "billing to run in its reservation", &billing, (2, 1)).await;
    assert_eq!(running_queued(&app, &ingest).await, (2, 2));

    // Raised, the reservation is billing's as soon as a slot frees: the next slot goes to its
    // waiting event, not to ingest's older ones (the others now use more than is left).
    reserve(&app, "billing", json!(384)).await.ok();
    assert_eq!(running_queued(&app, &billing).await, (2, 1));
    terminate_all(&app, "ingest", &ingest[..1]).await;
    until_counts(&app, "billing's third event to start", &billing, (3, 0)).await;
    assert_eq!(running_queued(&app, &ingest).await, (1, 2));

    // What cannot be reserved is refused in the SCF's terms, and nothing changes.
    for (mem, code) in [
        (
            json!(2048),
            "LimitExceeded.FunctionReservedConcurrencyMemory",
        ),
        (json!(-128), "InvalidParameterValue"),
        (json!(1_000_000_000_000_000u64), "InvalidParameterValue"),
    ] {
        let answer = reserve(&app, "reports", mem.clone()).await;
        assert!(
            answer.error_code().starts_with(code),
            "{mem}: {}",
            answer.error_code()
        );
    }
    // Billing holds 3 of the 8 and one stays unreserved: reports can have 4, not 5.
    let answer = reserve(&app, "reports", json!(640)).await;
    assert_eq!(
        answer.error_code(),
        "LimitExceeded.FunctionReservedConcurrencyMemory"
    );
    assert!(
        answer.error_message().contains("at most 4 (512 MB"),
        "{}",
        answer.error_message()
    );
    let list = app.api("ListFunctions", json!({})).await;
    let listed: Vec<(String, i64)> = list.ok()["Functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["FunctionName"].as_str().unwrap().to_string(),
                f["ReservedConcurrencyMem"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(listed.contains(&("billing".into(), 384)));
    assert!(listed.contains(&("reports".into(), 0)));

    app.api(
        "DeleteReservedConcurrencyConfig",
        json!({"FunctionName": "billing"}),
    )
    .await
    .ok();
    assert_eq!(reserved(&app, "billing").await, Value::Null);
    for (name, ids) in [
        ("reports", &reports),
        ("ingest", &ingest),
        ("billing", &billing),
    ] {
        terminate_all(&app, name, ids).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zero_reservation_stops_a_function_from_running() {
    let app = TestApp::new().await;
    app.add_key().await;
    function(
        &app,
        "paused",
        "Python3.10",
        SLEEPER,
        json!({"AsyncRunEnable": "FALSE", "TraceEnable": "FALSE"}),
    )
    .await;
    reserve(&app, "paused", json!(0)).await.ok();
    let answer = app
        .api(
            "Invoke",
            json!({"FunctionName": "paused", "InvocationType": "RequestResponse"}),
        )
        .await;
    // Invoke's own list has no code for it: its parent.
    assert_eq!(answer.error_code(), "LimitExceeded");
    assert!(
        answer
            .error_message()
            .contains("reserved concurrency is 0 MB")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_configuration_tab_sets_shows_and_removes_a_reservation() {
    let app = TestApp::new().await;
    app.create_function("default", "orders", &[]).await;
    let tab = function_url("default", "orders", "config");
    let page = app.get(&tab).await;
    assert!(
        page.text("#concurrency").contains("No reservation"),
        "{}",
        page.text("#concurrency")
    );
    let form = function_url("default", "orders", "concurrency");

    // More than the console has: the message says how much may be reserved, in MB.
    let refused = app.post(&form, &[("ReservedConcurrencyMem", "4096")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .field_error("ReservedConcurrencyMem")
            .contains("reserve at most 896 MB"),
        "{}",
        refused.field_error("ReservedConcurrencyMem")
    );
    assert_eq!(
        refused.attr("#ReservedConcurrencyMem", "value").as_deref(),
        Some("4096")
    );

    let saved = app.post(&form, &[("ReservedConcurrencyMem", "512")]).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    let page = app.follow(&saved).await;
    assert!(
        page.text(".banner-ok")
            .contains("Reserved concurrency saved.")
    );
    assert!(
        page.text("#concurrency")
            .contains("512 MB reserved: 4 events at once at 128 MB each"),
        "{}",
        page.text("#concurrency")
    );

    // A viewer sees it and has no form to change it.
    let admin = app.session();
    app.log_in_as_new("auditor", "read-only").await;
    let seen = app.get(&tab).await;
    assert!(seen.text("#concurrency").contains("512 MB reserved"));
    assert_eq!(seen.count("#ReservedConcurrencyMem"), 0);
    *app.login.lock().unwrap() = admin;

    let removed = app
        .post(
            &form,
            &[("_action", "remove"), ("ReservedConcurrencyMem", "512")],
        )
        .await;
    let page = app.follow(&removed).await;
    assert!(page.text(".banner-ok").contains("Reservation removed"));
    assert!(page.text("#concurrency").contains("No reservation"));
}
