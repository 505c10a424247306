//! A function owner's Monitoring and Logs tabs, against events whose times and logs are known.

use crate::support::events::*;
use crate::support::*;
use scf_console::domain::event::EventStatus;
use std::time::Duration;

/// Four events accepted now: e1 waits 1.5 s and runs 200 ms (finished, printing), e2 waits
/// 1.7 s and runs 3 s (failed, with a traceback), e3 waited 4.7 s and runs still, e4 waits.
/// Five events ran at once at the peak, as two servers saw it.
async fn watched() -> (TestApp, i64) {
    let app = paused_app().await;
    let f = traced_function(&app, "watched").await;
    let clock = &app.state.clock;
    let ids: Vec<String> = (1..=4).map(|i| format!("e{i}")).collect();
    add_events(&app, f, &ids, |_| clock.now_millis()).await;
    clock.advance(Duration::from_millis(1500));
    let e1 = claim(&app).await;
    clock.advance(Duration::from_millis(200));
    end_with_logs(
        &app,
        e1,
        EventStatus::Finished,
        200,
        Some("START RequestId: e1\nloading 3 rows\nsaved 3 rows\n"),
    )
    .await;
    let e2 = claim(&app).await;
    clock.advance(Duration::from_secs(3));
    end_with_logs(
        &app,
        e2,
        EventStatus::Failed,
        430,
        Some("START\nTraceback (most recent call last):\nValueError: bad row 7\n"),
    )
    .await;
    claim(&app).await;
    let minute = clock.now_millis() / 60_000;
    let store = &app.state.store;
    store
        .record_concurrency("node-a", &[(f, minute, 3)])
        .await
        .unwrap();
    store
        .record_concurrency("node-b", &[(f, minute, 2)])
        .await
        .unwrap();
    // A later, lower look of the same minute keeps the peak.
    store
        .record_concurrency("node-a", &[(f, minute, 1)])
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    (app, f)
}

fn tab(name: &str, tab: &str, query: &str) -> String {
    format!("{}?{query}", function_url("default", name, tab))
}

/// `(label, value)` of the tiles.
fn tiles(page: &Page) -> Vec<(String, String)> {
    page.texts(".tile .tile-label")
        .into_iter()
        .zip(page.texts(".tile strong"))
        .collect()
}

fn tile(page: &Page, label: &str) -> String {
    tiles(page)
        .into_iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("no tile {label}: {:?}", tiles(page)))
        .1
}

#[tokio::test]
async fn the_monitoring_tab_shows_invocations_errors_durations_waits_and_concurrency() {
    let (app, _) = watched().await;
    let page = app.get(&tab("watched", "monitoring", "")).await;
    assert_eq!(page.status.as_u16(), 200);
    assert_eq!(page.text("nav.tabs a[aria-current=page]"), "Monitoring");
    assert_eq!(page.text(".segmented a[aria-current=true]"), "Last hour");
    assert_eq!(tile(&page, "Invocations"), "4");
    assert_eq!(tile(&page, "Errors"), "1");
    assert_eq!(tile(&page, "Error rate"), "50.0%");
    assert_eq!(
        tile(&page, "Peak concurrency"),
        "5",
        "3 on one server and 2 on the other"
    );
    // The window's run times are read exactly, as Event Management reads them. Waits of 1.5
    // and 1.7 s fall in the bucket up to 2.5 s and 4.7 s in the one up to 5 s: their
    // percentiles, and the charts', are estimated within their bucket.
    assert_eq!(tile(&page, "Duration p50"), "200 ms");
    assert_eq!(tile(&page, "Duration p95"), "3.0 s");
    assert_eq!(tile(&page, "Queue wait p95"), "≈ 4.6 s");

    // Five charts, each with its numbers in a table.
    let headings = page.texts(".chart-grid h3");
    assert_eq!(
        headings,
        [
            "Invocations",
            "Errors",
            "Duration",
            "Queue wait",
            "Concurrency"
        ]
    );
    assert_eq!(page.count(".chart-grid figure.chart"), 5);
    assert_eq!(page.count("#chart-invocations rect.bar.total"), 1);
    assert_eq!(page.count("#chart-errors rect.bar.status-failed"), 1);
    let cells = page.texts(".chart-grid table td");
    assert_eq!(cells[0], "4", "invocations: {cells:?}");
    assert_eq!(cells[1], "1", "errors: {cells:?}");
    assert_eq!(cells[2..4], ["≈ 250 ms", "≈ 4.5 s"], "duration p50 and p95");
    assert_eq!(
        cells[4..6],
        ["≈ 1.9 s", "≈ 4.6 s"],
        "queue wait p50 and p95"
    );
    assert_eq!(cells[6], "5", "concurrency: {cells:?}");
    // One point per line in the hour's single minute.
    assert_eq!(page.count("#chart-duration circle.dot"), 2);

    // It refreshes itself in place, the same view.
    assert_eq!(
        page.attr("#monitoring-live", "hx-get").unwrap(),
        tab("watched", "monitoring", "range=1h")
    );
    assert_eq!(
        page.attr("#monitoring-live", "hx-select").unwrap(),
        "#monitoring-live"
    );

    // Three days: the same events, in one hourly bucket.
    let page = app.get(&tab("watched", "monitoring", "range=3d")).await;
    assert_eq!(page.text(".segmented a[aria-current=true]"), "Last 3 days");
    assert_eq!(tile(&page, "Invocations"), "4");
    // An unknown range is the default one.
    let page = app
        .get(&tab("watched", "monitoring", "range=forever"))
        .await;
    assert_eq!(page.status.as_u16(), 200);
    assert_eq!(page.text(".segmented a[aria-current=true]"), "Last hour");
}

#[tokio::test]
async fn an_hour_later_the_last_hour_is_empty_and_says_so() {
    let (app, _) = watched().await;
    app.state.clock.advance(Duration::from_secs(2 * 3600));
    let page = app.get(&tab("watched", "monitoring", "range=1h")).await;
    assert_eq!(tile(&page, "Invocations"), "0");
    assert_eq!(tile(&page, "Duration p50"), "—");
    assert_eq!(page.count(".empty-chart"), 5);
    let page = app.get(&tab("watched", "monitoring", "range=24h")).await;
    assert_eq!(tile(&page, "Invocations"), "4");
}

#[tokio::test]
async fn a_deleted_functions_monitoring_goes_with_it() {
    let (app, f) = watched().await;
    let now = app.state.clock.now_millis();
    let before = app
        .state
        .store
        .monitoring(f, (now - 3_600_000, now), 60_000)
        .await
        .unwrap();
    assert_eq!(before.concurrency.len(), 1);
    assert_eq!(before.queue_waits.len(), 1);
    let key = scf_console::store::FunctionKey {
        region: REGION.into(),
        namespace: "default".into(),
        name: "watched".into(),
    };
    let function = app.state.store.get_function(&key).await.unwrap().unwrap();
    app.state.engine.delete_function(&function).await.unwrap();
    // The sweeper removes deleted functions' rows once their events' retention ran out.
    app.state
        .clock
        .advance(app.state.event_retention + Duration::from_secs(3600));
    app.state.sweeper.run_once().await.unwrap();
    let after = app
        .state
        .store
        .monitoring(f, (now - 3_600_000, now), 60_000)
        .await
        .unwrap();
    assert_eq!(after, Default::default());
}

#[tokio::test]
async fn the_logs_tab_finds_an_events_logs_by_text_and_by_request_id() {
    let (app, _) = watched().await;
    let page = app.get(&tab("watched", "logs", "")).await;
    assert_eq!(page.status.as_u16(), 200);
    assert_eq!(page.text("nav.tabs a[aria-current=page]"), "Logs");
    // Newest first: e2 ended after e1; e3 runs and e4 waits, with no logs yet.
    assert_eq!(page.texts(".log-entry .request-id"), ["e2", "e1"]);
    assert_eq!(
        page.texts(".log-entry .status"),
        ["Invocation failed", "Invocation completed"]
    );
    assert_eq!(
        page.texts(".log-head .muted"),
        ["430", "3.0 s", "200", "200 ms"]
    );
    let link = page.attr(".log-entry a.request-id", "href").unwrap();
    assert_eq!(
        link,
        format!("{}/e2", function_url("default", "watched", "events"))
    );

    // Text, in any case: only the lines that match.
    let page = app.get(&tab("watched", "logs", "q=valueerror")).await;
    assert_eq!(page.texts(".log-entry .request-id"), ["e2"]);
    assert_eq!(page.text(".log-entry pre"), "ValueError: bad row 7");
    assert_eq!(
        page.text(".log-entry p.fine"),
        "2 more lines on the event's page"
    );
    let page = app.get(&tab("watched", "logs", "q=nothing+like+it")).await;
    assert_eq!(
        page.text(".card p.muted:not(.fine)"),
        "No event's logs match."
    );

    // A RequestId, whole (short ones can only be whole) and with the text.
    let page = app.get(&tab("watched", "logs", "request_id=e1")).await;
    assert_eq!(page.texts(".log-entry .request-id"), ["e1"]);
    let page = app
        .get(&tab("watched", "logs", "request_id=e1&q=rows"))
        .await;
    assert_eq!(page.text(".log-entry pre"), "loading 3 rows saved 3 rows");

    // Bad input is named, and the rest of the search still runs.
    let page = app
        .get(&tab("watched", "logs", "request_id=not-an-id!&q=START"))
        .await;
    assert_eq!(page.status.as_u16(), 200);
    assert!(page.text(".banner-error").contains("is not a RequestId"));
    assert_eq!(page.texts(".log-entry .request-id"), ["e2", "e1"]);
    let long = "x".repeat(500);
    let page = app.get(&tab("watched", "logs", &format!("q={long}"))).await;
    assert!(
        page.text(".banner-error")
            .contains("only its first 200 are searched")
    );
}

/// The engine counts how many events of a function ran at once, as they start, and writes the
/// peak of each minute for the Monitoring tab.
#[tokio::test(flavor = "multi_thread")]
async fn the_engine_records_the_most_events_that_ran_at_once() {
    let app = TestApp::new().await;
    app.add_key().await;
    app.create_function(
        "default",
        "sleepy",
        &[
            ("AsyncRunEnable", "TRUE"),
            ("TraceEnable", "TRUE"),
            (
                "Code",
                "import time\ndef main_handler(event, context):\n    time.sleep(2)\n    return 'ok'\n",
            ),
        ],
    )
    .await;
    let f = function_id(&app, "sleepy").await;
    for _ in 0..3 {
        app.api(
            "Invoke",
            serde_json::json!({"FunctionName": "sleepy", "InvocationType": "Event", "ClientContext": "{}"}),
        )
        .await
        .ok();
    }
    let now = app.state.clock.now_millis();
    let peaks = wait_for(
        "the peak to be written",
        Duration::from_secs(60),
        || async {
            let s = app
                .state
                .store
                .monitoring(f, (now - 3_600_000, now + 120_000), 60_000)
                .await
                .unwrap();
            (!s.concurrency.is_empty()).then_some(s.concurrency)
        },
    )
    .await;
    assert_eq!(peaks.iter().map(|(_, n)| *n).max(), Some(3), "{peaks:?}");
}

/// Anyone can send any method, path and `X-TC-Action`: none of it becomes a new label value
/// of the HTTP metrics beyond the routes, GET/POST/other and SCF's own action names at `/`.
#[tokio::test]
async fn what_clients_send_adds_no_metric_series() {
    let app = TestApp::new().await;
    for (method, path, action) in [
        ("PUT", "/no/such/page", "Invoke"),
        ("BREW", "/anything-at-all", "CreateFunction"),
        ("PATCH", "/scf/ap-guangzhou/default/functions", "Invoke"),
        ("POST", "/", "NoSuchAction"),
        ("POST", "/", "ListFunctions"),
    ] {
        let req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("x-tc-action", action)
            .header("host", "localhost")
            .body(axum::body::Body::empty())
            .unwrap();
        app.send_anonymous(req).await;
    }
    let scrape = app.state.metrics.render();
    let series: Vec<&str> = scrape
        .lines()
        .filter(|l| l.starts_with("scf_http_request_duration_seconds_count"))
        .collect();
    let route = |r: &str| format!("route=\"{r}\"");
    for line in &series {
        assert!(
            !line.contains("BREW") && !line.contains("PATCH") && !line.contains("PUT"),
            "{line}"
        );
        if !line.contains(&route("/")) {
            assert!(
                line.contains("action=\"\""),
                "an action off the API's route: {line}"
            );
        }
    }
    // Two unmatched paths, one series.
    let unmatched: Vec<_> = series
        .iter()
        .filter(|l| l.contains(&route("unmatched")))
        .collect();
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    assert!(unmatched[0].contains("method=\"other\""));
    assert!(unmatched[0].ends_with(" 2"), "{}", unmatched[0]);
    // At `/`, SCF's own names, and one name for the rest.
    assert!(
        series
            .iter()
            .any(|l| l.contains("action=\"ListFunctions\""))
    );
    assert!(series.iter().any(|l| l.contains("action=\"unknown\"")));
    assert!(!scrape.contains("NoSuchAction"));
}

/// An event put back in the queue (waiting for room, a server stopping) or retried left the
/// queue once: its wait is counted once, from accept to its first claim.
#[tokio::test]
async fn a_wait_is_counted_once_however_often_the_event_goes_back() {
    use scf_console::store::{EventWrite, TimelineEntry};
    let app = paused_app().await;
    let f = traced_function(&app, "bounced").await;
    let clock = &app.state.clock;
    add_event(&app, f, "b1", "API").await;
    clock.advance(Duration::from_millis(40));
    let id = claim(&app).await;
    for attempt in [1, 1, 2] {
        clock.advance(Duration::from_secs(5));
        let entry = TimelineEntry {
            at: clock.now_millis(),
            status: EventStatus::Queued,
            detail: "put back by the test".into(),
        };
        app.state
            .store
            .apply_event_writes(&[EventWrite::Requeue {
                event_id: id,
                // Each run was its first attempt's; the last one fails into a retry.
                run: hand_lease(1),
                traced: true,
                attempt,
                run_after: clock.now_millis(),
                error: None,
                logs: None,
                entry,
            }])
            .await
            .unwrap();
        let again = claim(&app).await;
        assert_eq!(again, id);
    }
    let now = clock.now_millis();
    let s = app
        .state
        .store
        .monitoring(f, (now - 3_600_000, now + 60_000), 60_000)
        .await
        .unwrap();
    assert_eq!(s.queue_waits.len(), 1);
    assert_eq!(s.queue_waits[0].1, vec![(50, 1)], "one wait of 40 ms");
}
