//! Retention: records go once they ended longer ago than the retention, to the second, with
//! their timelines and statistics; queued and running events stay; the sweeper runs on its own
//! and reports on the System page.

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
    wait_for("the periodic sweep", Duration::from_secs(10), || async {
        (!exists(&app, "aged").await).then_some(())
    })
    .await;
    let after = app.get(&format!("/scf/{REGION}/default/system")).await;
    let facts = after.texts(".sweeper dd");
    assert!(facts[0].ends_with("UTC"), "{facts:?}");
    assert_eq!(facts[5], "1", "removed since start: {facts:?}");
    app.state.sweeper.stop().await;
}
