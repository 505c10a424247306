//! Retention: records go once they ended longer ago than the retention, to the second, with
//! their timelines and statistics; queued and running events stay; the sweeper runs on its own
//! and reports on the System page.

use crate::engine::timeline;
use crate::support::events::*;
use crate::support::*;
use scf_console::domain::event::EventStatus;
use scf_console::store::{ClaimBudget, EventWrite, TimelineEntry};
use serde_json::json;
use std::time::Duration;

const RETENTION: Duration = Duration::from_secs(72 * 3600);

/// Adds an event and ends it now.
async fn ended(app: &TestApp, f: i64, id: &str) {
    add_event(app, f, id, "API").await;
    let row = claim(app).await;
    end(app, row, EventStatus::Finished, 200).await;
}

async fn exists(app: &TestApp, id: &str) -> bool {
    app.state.store.get_event(id).await.unwrap().is_some()
}

#[tokio::test]
async fn records_go_exactly_when_the_retention_has_passed_since_they_ended() {
    let app = paused_app().await;
    let f = traced_function(&app, "kept").await;
    ended(&app, f, "older").await;
    app.state.clock.advance(Duration::from_secs(2));
    ended(&app, f, "newer").await;
    let status = app
        .api("GetAsyncEventStatus", json!({"InvokeRequestId": "older"}))
        .await;
    assert_eq!(status.ok()["Result"]["Status"], "FINISHED");

    // "older" ended retention + 1 s ago, "newer" retention - 1 s ago.
    app.state.clock.advance(RETENTION - Duration::from_secs(1));
    assert_eq!(app.state.sweeper.run_once().await.unwrap(), 1);
    assert!(!exists(&app, "older").await);
    assert!(exists(&app, "newer").await);
    let gone = app
        .api("GetAsyncEventStatus", json!({"InvokeRequestId": "older"}))
        .await;
    assert_eq!(gone.error_code(), "ResourceNotFound.AsyncEvent");
    let listed = app
        .api("ListAsyncEvents", json!({"FunctionName": "kept"}))
        .await;
    assert_eq!(listed.ok()["TotalCount"], 1, "the rollups forget it too");

    app.state.clock.advance(Duration::from_secs(2));
    assert_eq!(app.state.sweeper.run_once().await.unwrap(), 1);
    assert!(!exists(&app, "newer").await);
    let listed = app
        .api("ListAsyncEvents", json!({"FunctionName": "kept"}))
        .await;
    assert_eq!(listed.ok()["TotalCount"], 0);
    let page = app
        .get(&format!(
            "{}?range=3d",
            function_url("default", "kept", "events")
        ))
        .await;
    assert_eq!(
        page.texts("#event-stats .tile strong")[2],
        "0",
        "no finished events counted any more"
    );
}

#[tokio::test]
async fn queued_and_running_events_are_never_swept() {
    let app = paused_app().await;
    let f = traced_function(&app, "busy").await;
    add_event(&app, f, "running", "API").await;
    claim(&app).await;
    add_event(&app, f, "queued", "API").await;
    app.state.clock.advance(Duration::from_secs(10 * 24 * 3600));
    assert_eq!(app.state.sweeper.run_once().await.unwrap(), 0);
    assert!(exists(&app, "running").await && exists(&app, "queued").await);
}

#[tokio::test]
async fn large_sweeps_go_in_batches_with_their_timelines() {
    let app = paused_app().await;
    let f = traced_function(&app, "bulk").await;
    let n = 12_000;
    let ids: Vec<String> = (0..n).map(|i| format!("old-{i}")).collect();
    add_events(&app, f, &ids, |_| START).await;
    let claimed = app
        .state
        .store
        .claim_events(START, &ClaimBudget::up_to(n as u32), HAND, HELD_FOREVER)
        .await
        .unwrap();
    let finishes: Vec<EventWrite> = claimed
        .iter()
        .map(|c| EventWrite::Finish {
            event_id: c.id,
            run: hand_lease(c.attempt),
            traced: true,
            status_code: 200,
            result: None,
            error: None,
            logs: None,
            entry: TimelineEntry {
                at: START,
                status: EventStatus::Finished,
                detail: "done".into(),
            },
        })
        .collect();
    app.state.store.apply_event_writes(&finishes).await.unwrap();
    ended(&app, f, "recent").await;
    app.state.clock.advance(RETENTION + Duration::from_secs(1));
    ended(&app, f, "fresh").await;
    assert_eq!(app.state.sweeper.run_once().await.unwrap(), n as u64 + 1);
    let status = app.state.sweeper.status();
    assert_eq!(
        (status.runs, status.last_removed, status.total_removed),
        (1, n as u64 + 1, n as u64 + 1)
    );
    assert!(exists(&app, "fresh").await);
    let listed = app
        .api("ListAsyncEvents", json!({"FunctionName": "bulk"}))
        .await;
    assert_eq!(listed.ok()["TotalCount"], 1);
    assert!(
        app.state
            .store
            .event_timeline(claimed[0].id)
            .await
            .unwrap()
            .len()
            <= 1,
        "only the synthetic entry of a missing event"
    );
}

#[tokio::test]
async fn status_trace_off_shows_when_records_go_and_on_again_records_anew() {
    let app = paused_app().await;
    let f = traced_function(&app, "toggled").await;
    ended(&app, f, "before").await;
    app.api(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "toggled", "TraceEnable": "FALSE"}),
    )
    .await
    .ok();
    let page = app.get(&function_url("default", "toggled", "config")).await;
    assert!(
        page.text(".banner-info")
            .contains("cleared by 2026-12-02 10:00:00 UTC")
    );

    // Invocations while it is off run unrecorded.
    let off = app
        .api(
            "Invoke",
            json!({"FunctionName": "toggled", "InvocationType": "Event"}),
        )
        .await;
    let untraced = off.ok()["Result"]["FunctionRequestId"]
        .as_str()
        .unwrap()
        .to_string();
    let e = app.state.store.get_event(&untraced).await.unwrap().unwrap();
    assert!(
        !e.traced,
        "kept only as a queue entry, removed when it ends"
    );

    app.state.clock.advance(RETENTION + Duration::from_secs(1));
    app.state.sweeper.run_once().await.unwrap();
    assert!(
        !exists(&app, "before").await,
        "cleared within the retention after trace went off"
    );

    app.api(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "toggled", "TraceEnable": "TRUE"}),
    )
    .await
    .ok();
    let on = app
        .api(
            "Invoke",
            json!({"FunctionName": "toggled", "InvocationType": "Event"}),
        )
        .await;
    let traced = on.ok()["Result"]["FunctionRequestId"]
        .as_str()
        .unwrap()
        .to_string();
    let status = app
        .api("GetAsyncEventStatus", json!({"InvokeRequestId": traced}))
        .await;
    assert_eq!(status.ok()["Result"]["Status"], "RUNNING");
    let listed = app
        .api("ListAsyncEvents", json!({"FunctionName": "toggled"}))
        .await;
    let ids: Vec<&str> = listed.ok()["EventList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["InvokeRequestId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![traced.as_str()],
        "the event from while it was off is not listed"
    );
}

#[tokio::test]
async fn the_sweeper_runs_on_its_own_and_reports_on_the_system_page() {
    let app = paused_app().await;
    let f = traced_function(&app, "aging").await;
    ended(&app, f, "aged").await;
    app.state.clock.advance(RETENTION + Duration::from_secs(5));
    let before = app.get(&format!("/scf/{REGION}/default/system")).await;
    assert_eq!(before.text(".sidebar a[aria-current=page]"), "System");
    assert_eq!(before.text(".sweeper dd"), "not yet", "no sweep has run");
    assert!(before.text(".store-size").ends_with("MB"));

    app.state.sweeper.set_interval(Duration::from_millis(50));
    app.state.sweeper.start();
    // The page reports a sweep once the whole of it is done, a moment after its deletions.
    let facts = wait_for("the periodic sweep", Duration::from_secs(10), || async {
        let page = app.get(&format!("/scf/{REGION}/default/system")).await;
        let facts = page.texts(".sweeper dd");
        (facts[0] != "not yet").then_some(facts)
    })
    .await;
    assert!(!exists(&app, "aged").await);
    assert!(facts[0].ends_with("UTC"), "{facts:?}");
    assert_eq!(facts[5], "1", "removed since start: {facts:?}");
    app.state.sweeper.stop().await;
}

/// Deleting a function frees its name at once, ends its queued and running events, and keeps
/// their status readable through the API for the retention (72 hours, as SCF keeps them), even
/// after a new function took the name; then the sweeper removes the deleted function with them.
#[tokio::test]
async fn a_deleted_functions_events_stay_readable_for_72_hours_and_its_name_is_free_at_once() {
    let app = paused_app().await;
    let f = traced_function(&app, "nightly").await;
    ended(&app, f, "finished-before").await;
    add_event(&app, f, "was-running", "API").await;
    let running_row = claim(&app).await;
    add_event(&app, f, "still-queued", "API").await;

    app.api("DeleteFunction", json!({"FunctionName": "nightly"}))
        .await
        .ok();
    let gone = app
        .api("GetFunction", json!({"FunctionName": "nightly"}))
        .await;
    assert_eq!(gone.error_code(), "ResourceNotFound.Function");
    let listed = app.api("ListFunctions", json!({})).await;
    assert_eq!(listed.ok()["TotalCount"], 0);

    // Every event is still there, and none is left unended.
    let status = |id: &'static str| {
        let app = &app;
        async move {
            let a = app
                .api("GetAsyncEventStatus", json!({"InvokeRequestId": id}))
                .await;
            let r = &a.ok()["Result"];
            (
                r["Status"].as_str().unwrap().to_string(),
                r["StatusCode"].as_i64().unwrap(),
            )
        }
    };
    assert_eq!(status("finished-before").await, ("FINISHED".into(), 200));
    assert_eq!(status("was-running").await, ("ABORTED".into(), 499));
    assert_eq!(status("still-queued").await, ("ABORTED".into(), 499));
    assert!(
        timeline(&app, "still-queued")
            .await
            .iter()
            .any(|s| s.contains("Stopped: its function was deleted (499)"))
    );
    let request = app
        .api(
            "GetRequestStatus",
            json!({"FunctionName": "nightly", "FunctionRequestId": "was-running"}),
        )
        .await;
    let item = &request.ok()["Data"][0];
    assert_eq!(item["RetCode"], -1);
    assert_eq!(item["RetMsg"], "Stopped: its function was deleted (499)");
    let events = app
        .api("ListAsyncEvents", json!({"FunctionName": "nightly"}))
        .await;
    assert_eq!(events.ok()["TotalCount"], 3);

    // The run that held "was-running" ends late: its write is fenced off.
    end(&app, running_row, EventStatus::Finished, 200).await;
    assert_eq!(status("was-running").await, ("ABORTED".into(), 499));
    // An invocation accepted as the function went is refused at its insert.
    let late = app
        .state
        .store
        .apply_event_writes(&[EventWrite::Insert(scf_console::store::NewEvent {
            request_id: "too-late".into(),
            function_id: f,
            invoke_type: "API".into(),
            traced: true,
            payload: "{}".into(),
            enqueued_at: app.state.clock.now_millis(),
            invoked_by: None,
            rerun_of: None,
        })])
        .await;
    assert!(
        matches!(late, Err(scf_console::store::StoreError::NotFound)),
        "{late:?}"
    );

    // The name is free: a new function takes it, with events of its own.
    traced_function(&app, "nightly").await;
    let events = app
        .api("ListAsyncEvents", json!({"FunctionName": "nightly"}))
        .await;
    assert_eq!(
        events.ok()["TotalCount"],
        0,
        "the new function has none yet"
    );
    let old = app
        .api(
            "GetRequestStatus",
            json!({"FunctionName": "nightly", "FunctionRequestId": "finished-before"}),
        )
        .await;
    assert_eq!(
        old.ok()["Data"][0]["RetCode"],
        0,
        "the old one's still answer"
    );
    // Deleted again: both deleted functions' events answer.
    app.api("DeleteFunction", json!({"FunctionName": "nightly"}))
        .await
        .ok();
    let old = app
        .api(
            "GetRequestStatus",
            json!({"FunctionName": "nightly", "FunctionRequestId": "finished-before"}),
        )
        .await;
    assert_eq!(old.ok()["Data"][0]["RetCode"], 0, "after two deletions");

    // After the retention, the sweeper removes the deleted function and its events.
    app.state.clock.advance(RETENTION + Duration::from_secs(1));
    app.state.sweeper.run_once().await.unwrap();
    for id in ["finished-before", "was-running", "still-queued"] {
        assert!(!exists(&app, id).await, "{id}");
    }
    let key = scf_console::store::FunctionKey {
        region: REGION.into(),
        namespace: "default".into(),
        name: "nightly".into(),
    };
    assert!(
        app.state
            .store
            .get_deleted_function(&key)
            .await
            .unwrap()
            .is_none()
    );
    assert!(app.state.store.get_function(&key).await.unwrap().is_none());
}

/// A namespace whose functions were all deleted can be deleted, events kept or not.
#[tokio::test]
async fn a_namespace_with_only_deleted_functions_can_be_deleted() {
    let app = paused_app().await;
    app.api("CreateNamespace", json!({"Namespace": "batch"}))
        .await
        .ok();
    app.create_function(
        "batch",
        "once",
        &[("AsyncRunEnable", "TRUE"), ("TraceEnable", "TRUE")],
    )
    .await;
    let call = app
        .api(
            "Invoke",
            json!({"FunctionName": "once", "Namespace": "batch", "InvocationType": "Event"}),
        )
        .await;
    let id = call.ok()["Result"]["FunctionRequestId"]
        .as_str()
        .unwrap()
        .to_string();
    app.api(
        "DeleteFunction",
        json!({"FunctionName": "once", "Namespace": "batch"}),
    )
    .await
    .ok();
    assert!(exists(&app, &id).await);
    app.api("DeleteNamespace", json!({"Namespace": "batch"}))
        .await
        .ok();
    assert!(!exists(&app, &id).await, "its events went with it");
}
