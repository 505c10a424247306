//! Event Management and ListAsyncEvents against a hand-built set of events whose answers are
//! known: every filter, sort, page, count, statistic and export.

use crate::support::api::*;
use crate::support::events::*;
use crate::support::*;
use scf_console::domain::event::EventStatus;
use serde_json::{Value, json};
use std::time::Duration;

const MIN: u64 = 60;

/// e1 finished (2 s) and e2 failed (5 s) at START; e3 aborted, e4 running, e5 queued 90
/// minutes later; now is START + 100 min.
async fn known_set() -> (TestApp, i64) {
    let app = paused_app().await;
    let f = traced_function(&app, "known").await;
    let clock = &app.state.clock;
    add_event(&app, f, "e1", "API").await;
    let e1 = claim(&app).await;
    clock.advance(Duration::from_secs(2));
    end(&app, e1, EventStatus::Finished, 200).await;
    clock.advance(Duration::from_secs(8));
    add_event(&app, f, "e2", "CONSOLE").await;
    let e2 = claim(&app).await;
    clock.advance(Duration::from_secs(5));
    end(&app, e2, EventStatus::Failed, 430).await;
    clock.advance(Duration::from_secs(90 * MIN - 15));
    add_event(&app, f, "e3", "API").await;
    let e3 = claim(&app).await;
    clock.advance(Duration::from_secs(1));
    end(&app, e3, EventStatus::Aborted, 499).await;
    clock.advance(Duration::from_secs(9));
    add_event(&app, f, "e4", "API").await;
    claim(&app).await;
    clock.advance(Duration::from_secs(10));
    add_event(&app, f, "e5", "CONSOLE").await;
    clock.advance(Duration::from_secs(10 * MIN - 20));
    (app, f)
}

fn events_url(query: &str) -> String {
    format!("{}?{query}", function_url("default", "known", "events"))
}

async fn listed(app: &TestApp, query: &str) -> Vec<String> {
    let page = app.get(&events_url(query)).await;
    assert_eq!(page.status.as_u16(), 200, "{query}");
    page.texts("table.events td.rid a")
        .into_iter()
        .map(|t| t.trim_end_matches('…').to_string())
        .collect()
}

#[tokio::test]
async fn filters_and_sorts_give_the_known_answers() {
    let (app, _) = known_set().await;
    let all = ["e5", "e4", "e3", "e2", "e1"];
    assert_eq!(listed(&app, "range=3d").await, all);
    assert_eq!(listed(&app, "").await, all, "the last 3 days by default");
    assert_eq!(listed(&app, "range=1h").await, ["e5", "e4", "e3"]);
    assert_eq!(
        listed(&app, "status=finished&status=failed").await,
        ["e2", "e1"]
    );
    assert_eq!(listed(&app, "status=running").await, ["e4"]);
    assert_eq!(
        listed(&app, "status=queued&status=aborted").await,
        ["e5", "e3"]
    );
    assert_eq!(listed(&app, "type=CONSOLE").await, ["e5", "e2"]);
    assert_eq!(listed(&app, "type=API&status=finished").await, ["e1"]);
    assert_eq!(listed(&app, "request_id=e3").await, ["e3"]);
    assert_eq!(
        listed(&app, "sort=start_asc").await,
        ["e1", "e2", "e3", "e4", "e5"]
    );
    assert_eq!(
        listed(
            &app,
            "sort=end_desc&status=finished&status=failed&status=aborted"
        )
        .await,
        ["e3", "e2", "e1"]
    );
    assert_eq!(
        listed(
            &app,
            "sort=end_asc&status=finished&status=failed&status=aborted"
        )
        .await,
        ["e1", "e2", "e3"]
    );
    // Custom ranges in UTC: START is 2026-11-29 10:00.
    assert_eq!(
        listed(
            &app,
            "range=custom&from=2026-11-29T10:00&to=2026-11-29T10:01"
        )
        .await,
        ["e2", "e1"]
    );
    assert_eq!(
        listed(&app, "end_from=2026-11-29T10:00&end_to=2026-11-29T10:01").await,
        ["e2", "e1"]
    );
    let bad = app
        .get(&events_url(
            "range=custom&from=2026-11-29T12:00&to=2026-11-29T10:00",
        ))
        .await;
    assert!(
        bad.text(".banner-error")
            .contains("needs a start before its end")
    );
    // What is not a time, or not offered, is said next to the filter, not silently dropped.
    let typed = app
        .get(&events_url(
            "range=custom&from=garbage&status=bogus&size=7&sort=xx&type=CRON",
        ))
        .await;
    let said = typed.texts(".banner-error");
    for expected in [
        "The custom range's start \"garbage\" is not a time: enter it as YYYY-MM-DDTHH:MM (UTC).",
        "Unknown status \"bogus\": it is left out of the filter.",
        "Unknown invocation type \"CRON\": it is left out of the filter.",
        "Unknown page size \"7\": pages hold 20, 50 or 100 events; showing 20.",
        "Unknown order \"xx\": newest start first.",
    ] {
        assert!(
            said.iter().any(|s| s.starts_with(expected)),
            "{expected} in {said:?}"
        );
    }

    let page = app.get(&events_url("status=finished&status=failed")).await;
    assert!(page.text(".count-line").starts_with("2 events match"));
    // Without scripts, no control that needs them: pause, live refresh and the time toggle
    // come hidden (app.js shows them); a plain Refresh link stands in.
    assert!(page.attr("[data-live]", "hidden").is_some());
    assert!(page.attr("[data-time-toggle]", "hidden").is_some());
    assert!(page.body.contains("<noscript><a class=\"btn btn-small\""));
    assert!(
        page.attr(".filters input[name=status][value=finished]", "checked")
            .is_some(),
        "filters show in the form"
    );
    assert!(
        page.attr(".filters input[name=status][value=queued]", "checked")
            .is_none()
    );
    let rows = page.texts("table.events tbody tr");
    assert!(
        rows[0].contains("Invocation failed")
            && rows[0].contains("5.0 s")
            && rows[0].contains("CONSOLE"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].contains("Invocation completed")
            && rows[1].contains("2.0 s")
            && rows[1].contains("API"),
        "{}",
        rows[1]
    );
    assert_eq!(
        page.attr("table.events td.rid a", "title").as_deref(),
        Some("e2")
    );
}

#[tokio::test]
async fn statistics_count_each_status_with_failure_rate_and_durations() {
    let (app, _) = known_set().await;
    let page = app.get(&events_url("range=3d")).await;
    let labels = page.texts("#event-stats .tile > span");
    let values = page.texts("#event-stats .tile strong");
    let tiles: Vec<String> = labels
        .iter()
        .zip(&values)
        .map(|(l, v)| format!("{l}: {v}"))
        .collect();
    assert_eq!(
        tiles,
        [
            "Queued: 1",
            "Running: 1",
            "Invocation completed: 1",
            "Invocation failed: 1",
            "Invocation terminated: 1",
            "Failure rate: 33.3%",
            // Exact, from the three ended events' run times (1 s, 2 s, 5 s).
            "Duration p50: 2.0 s",
            "Duration p95: 5.0 s",
        ]
    );
    // A chart, with its numbers as a table for screen readers.
    assert!(page.count("#event-stats svg rect.bar") >= 3);
    assert_eq!(
        page.count("#event-stats table tbody tr"),
        2,
        "two hourly buckets hold events"
    );
    let window = app.get(&events_url("range=1h")).await;
    assert_eq!(
        window.texts("#event-stats .tile strong")[..3],
        ["1", "1", "0"]
    );
    // The fragment has its own URL.
    let stats = app
        .get_hx(&format!(
            "{}?range=3d&refresh=5",
            events_part_url("default", "known", "stats")
        ))
        .await;
    assert_eq!(stats.count(".sidebar"), 0);
    assert_eq!(
        stats.attr("#event-stats", "hx-trigger").as_deref(),
        Some("every 5s")
    );
}

#[tokio::test]
async fn pages_follow_a_cursor_and_the_rows_have_their_own_url() {
    let app = paused_app().await;
    let f = traced_function(&app, "many").await;
    for i in 0..45 {
        add_event(&app, f, &format!("ev-{i:02}"), "API").await;
        app.state.clock.advance(Duration::from_secs(1));
    }
    let base = function_url("default", "many", "events");
    let first = app.get(&format!("{base}?size=20")).await;
    assert_eq!(first.count("table.events tbody tr"), 20);
    assert!(first.text(".count-line").starts_with("45 events match"));
    let next = first.attr("#event-rows a[rel=next]", "href").unwrap();
    assert!(next.contains("after="), "{next}");
    let second = app.get(&next).await;
    assert_eq!(
        second.attr("table.events td.rid a", "title").as_deref(),
        Some("ev-24")
    );
    let third = app
        .get(&second.attr("#event-rows a[rel=next]", "href").unwrap())
        .await;
    assert_eq!(third.count("table.events tbody tr"), 5);
    assert_eq!(third.count("#event-rows a[rel=next]"), 0);
    assert_eq!(
        third.attr("table.events td.rid a", "title").as_deref(),
        Some("ev-04")
    );

    // And back: each page links the one before it, the first links none.
    let back = app
        .get(&third.attr("#event-rows a[rel=prev]", "href").unwrap())
        .await;
    assert!(
        back.attr("#event-rows a[rel=prev]", "href")
            .unwrap()
            .contains("before=")
    );
    assert_eq!(
        back.attr("table.events td.rid a", "title").as_deref(),
        Some("ev-24")
    );
    assert_eq!(back.count("table.events tbody tr"), 20);
    let front = app
        .get(&back.attr("#event-rows a[rel=prev]", "href").unwrap())
        .await;
    assert_eq!(
        front.attr("table.events td.rid a", "title").as_deref(),
        Some("ev-44")
    );
    assert_eq!(front.count("#event-rows a[rel=prev]"), 0);
    assert_eq!(front.count("table.events tbody tr"), 20);

    // Live refresh swaps the rows from their own URL, keeping the page's position.
    let rows_url = second.attr("#event-rows", "hx-get").unwrap();
    assert!(
        rows_url.contains("/events/-/rows?") && rows_url.contains("after="),
        "{rows_url}"
    );
    let rows = app.get_hx(&rows_url).await;
    assert_eq!(rows.count(".sidebar"), 0);
    assert_eq!(
        rows.attr("table.events td.rid a", "title").as_deref(),
        Some("ev-24")
    );
    let paused = app.get(&format!("{base}?refresh=0")).await;
    assert!(
        paused.attr("#event-rows", "hx-trigger").is_none(),
        "refresh off: no polling"
    );
}

fn ids(answer: &Answer) -> Vec<String> {
    answer.ok()["EventList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["InvokeRequestId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn list_async_events_answers_with_scf_fields_filters_and_paging() {
    let (app, _) = known_set().await;
    let list = |params: Value| {
        let app = &app;
        async move {
            let mut p = json!({"FunctionName": "known"});
            for (k, v) in params.as_object().unwrap() {
                p[k] = v.clone();
            }
            app.api("ListAsyncEvents", p).await
        }
    };
    let all = list(json!({})).await;
    assert_eq!(all.ok()["TotalCount"], 5);
    assert_eq!(ids(&all), ["e5", "e4", "e3", "e2", "e1"]);
    let e1 = &all.ok()["EventList"][4];
    assert_eq!(
        *e1,
        json!({"InvokeRequestId": "e1", "InvokeType": "API", "Qualifier": "$LATEST", "Status": "FINISHED",
               "StartTime": "2026-11-29 10:00:00.000", "EndTime": "2026-11-29 10:00:02.000"})
    );
    assert_eq!(
        all.ok()["EventList"][0]["Status"],
        "RUNNING",
        "queued shows as RUNNING"
    );
    assert_eq!(
        all.ok()["EventList"][0]["EndTime"],
        "",
        "no end time while running"
    );

    let running = list(json!({"Status": ["RUNNING"]})).await;
    assert_eq!(
        (ids(&running), running.ok()["TotalCount"].as_i64()),
        (vec!["e5".to_string(), "e4".into()], Some(2))
    );
    let by_type = list(json!({"InvokeType": ["CONSOLE"], "Order": "ASC"})).await;
    assert_eq!(ids(&by_type), ["e2", "e5"]);
    let paged = list(json!({"Limit": 2, "Offset": 1})).await;
    assert_eq!(
        (ids(&paged), paged.ok()["TotalCount"].as_i64()),
        (vec!["e4".to_string(), "e3".into()], Some(5))
    );
    let by_end = list(
        json!({"Orderby": "EndTime", "Order": "ASC", "Status": ["FINISHED", "FAILED", "ABORTED"]}),
    )
    .await;
    assert_eq!(ids(&by_end), ["e1", "e2", "e3"]);
    let one = list(json!({"InvokeRequestId": "e2"})).await;
    assert_eq!(
        (ids(&one), one.ok()["TotalCount"].as_i64()),
        (vec!["e2".to_string()], Some(1))
    );

    // Left-closed, right-open: e1 at 10:00:00 is in, e2 at 10:00:10 is out.
    let interval = list(json!({"StartTimeInterval": {"Start": "2026-11-29 10:00:00", "End": "2026-11-29 10:00:10"}})).await;
    assert_eq!(
        (ids(&interval), interval.ok()["TotalCount"].as_i64()),
        (vec!["e1".to_string()], Some(1))
    );
    // A window of whole minutes and partial ones counts exactly (rollups plus edges).
    let wide = list(json!({"StartTimeInterval": {"Start": "2026-11-29 10:00:05", "End": "2026-11-29 11:30:15"}})).await;
    assert_eq!(ids(&wide), ["e4", "e3", "e2"]);
    assert_eq!(wide.ok()["TotalCount"], 3);
    let ended = list(
        json!({"EndTimeInterval": {"Start": "2026-11-29 10:00:00", "End": "2026-11-29 10:00:16"}}),
    )
    .await;
    assert_eq!(ids(&ended), ["e2", "e1"]);
    // The same over GET, as the SDK flattens it.
    let get = app
        .api_with(
            "ListAsyncEvents",
            json!({"FunctionName": "known", "Status": ["FAILED", "ABORTED"]}),
            &Options {
                get: true,
                ..Options::default()
            },
        )
        .await;
    assert_eq!(ids(&get), ["e3", "e2"]);

    for (params, code) in [
        (json!({"Limit": 101}), "InvalidParameterValue.Limit"),
        (json!({"Limit": 0}), "InvalidParameterValue.Limit"),
        (json!({"Order": "UP"}), "InvalidParameterValue.Order"),
        (json!({"Orderby": "Duration"}), "InvalidParameterValue"),
        (json!({"Status": ["DONE"]}), "InvalidParameterValue.Status"),
        (
            json!({"InvokeType": ["no spaces please"]}),
            "InvalidParameterValue.InvokeType",
        ),
        (
            json!({"Namespace": "bad ns"}),
            "InvalidParameterValue.Namespace",
        ),
        (
            json!({"Namespace": "nowhere"}),
            "ResourceNotFound.Namespace",
        ),
        (
            json!({"FunctionName": "ghost"}),
            "ResourceNotFound.Function",
        ),
        (json!({"Qualifier": "2"}), "ResourceNotFound.Version"),
        (
            json!({"StartTimeInterval": {"Start": "yesterday", "End": "2026-11-29 10:00:00"}}),
            "InvalidParameterValue",
        ),
        // An interval has both ends, as on SCF.
        (
            json!({"StartTimeInterval": {"Start": "2026-11-29 10:00:00"}}),
            "InvalidParameterValue",
        ),
        (
            json!({"StartTimeInterval": {"Start": "2026-11-29 11:00:00", "End": "2026-11-29 10:00:00"}}),
            "InvalidParameterValue",
        ),
        (json!({"Offset": -1}), "InvalidParameterValue"),
    ] {
        let a = list(params.clone()).await;
        assert_eq!(a.error_code(), code, "{params}");
    }
}

#[tokio::test]
async fn jump_to_a_time_in_either_order() {
    let app = paused_app().await;
    let f = traced_function(&app, "spread").await;
    let ids: Vec<String> = (0..30).map(|i| format!("sp-{i:02}")).collect();
    add_events(&app, f, &ids, |i| START + i as i64 * 60_000).await;
    app.state.clock.advance(Duration::from_secs(30 * 60));
    let base = function_url("default", "spread", "events");
    // START is 2026-11-29T10:00Z; sp-10 was accepted at 10:10.
    let newest_first = app.get(&format!("{base}?at=2026-11-29T10:10")).await;
    assert_eq!(
        newest_first
            .attr("table.events td.rid a", "title")
            .as_deref(),
        Some("sp-10")
    );
    assert!(
        newest_first.count("#event-rows a[rel=prev]") == 1,
        "there are newer ones"
    );
    let oldest_first = app
        .get(&format!("{base}?sort=start_asc&at=2026-11-29T10:10"))
        .await;
    assert_eq!(
        oldest_first.texts("table.events td.rid a")[..2],
        ["sp-10…", "sp-11…"]
    );
    let bad = app.get(&format!("{base}?at=soon")).await;
    assert!(
        bad.text(".banner-error")
            .contains("Cannot jump to \"soon\"")
    );
    assert_eq!(
        bad.attr("table.events td.rid a", "title").as_deref(),
        Some("sp-29")
    );
    // The jump form keeps the filter.
    let form = app.get(&format!("{base}?status=queued")).await;
    assert_eq!(
        form.attr(".jump input[name=status]", "value").as_deref(),
        Some("queued")
    );
}

#[tokio::test]
async fn a_requestid_prefix_finds_its_events() {
    let app = paused_app().await;
    let f = traced_function(&app, "prefixed").await;
    let ids: Vec<String> = [
        "4f1c2a00-0000-4000-8000-000000000001",
        "4f1c2b00-0000-4000-8000-000000000002",
        "9a000000-0000-4000-8000-000000000003",
    ]
    .map(str::to_string)
    .to_vec();
    add_events(&app, f, &ids, |i| START - 10 + i as i64).await;
    let base = function_url("default", "prefixed", "events");
    let found = |q: &'static str| {
        let app = &app;
        let base = &base;
        async move {
            app.get(&format!("{base}?{q}"))
                .await
                .texts("table.events td.rid a")
        }
    };
    assert_eq!(found("request_id=4F1C2").await, ["4f1c2b00…", "4f1c2a00…"]);
    assert_eq!(found("request_id=4f1c2a").await, ["4f1c2a00…"]);
    assert_eq!(
        found("request_id=9a000000-0000-4000-8000-000000000003").await,
        ["9a000000…"]
    );
    assert!(found("request_id=ffff").await.is_empty());
    let page = app.get(&format!("{base}?request_id=4f1c2")).await;
    assert!(page.text(".count-line").starts_with("2 events match"));
    let bad = app
        .get(&format!("{base}?request_id=%27%20OR%201%3D1"))
        .await;
    assert!(
        bad.text(".banner-error")
            .contains("is not a RequestId or the start of one")
    );
    assert_eq!(
        bad.count("table.events tbody tr"),
        3,
        "left out of the filter"
    );
}

#[tokio::test]
async fn top_errors_are_grouped_and_lead_to_their_events_and_statistics_follow_the_filter() {
    use scf_console::store::EventWrite;
    let app = paused_app().await;
    let f = traced_function(&app, "flaky").await;
    let errors = [
        "KeyError: 'order'\nTraceback (most recent call last):\n  File \"/var/user/index.py\"",
        "ValueError: bad amount\nTraceback",
        "KeyError: 'order'\nTraceback (most recent call last):\n  other frames",
        "KeyError: 'order'",
        // Starts like the first, but is another error: its link must not list it.
        "KeyError: 'order_id'",
    ];
    for (i, error) in errors.iter().enumerate() {
        add_event(&app, f, &format!("f{i}"), "API").await;
        let id = claim(&app).await;
        app.state
            .store
            .apply_event_writes(&[EventWrite::Finish {
                event_id: id,
                run: hand_lease(1),
                traced: true,
                status_code: 430,
                result: None,
                error: Some(error.to_string()),
                logs: None,
                entry: scf_console::store::TimelineEntry {
                    at: app.state.clock.now_millis(),
                    status: EventStatus::Failed,
                    detail: "failed in the test".into(),
                },
            }])
            .await
            .unwrap();
    }
    add_event(&app, f, "ok", "API").await;
    let ok = claim(&app).await;
    end(&app, ok, EventStatus::Finished, 200).await;
    let base = function_url("default", "flaky", "events");
    let page = app.get(&base).await;
    assert_eq!(
        page.texts(".top-errors li"),
        [
            "KeyError: 'order' 3",
            "KeyError: 'order_id' 1",
            "ValueError: bad amount 1"
        ]
    );
    let link = page.link(".top-errors a", "KeyError: 'order'").unwrap();
    assert!(
        link.contains("status=failed") && link.contains("error="),
        "{link}"
    );
    let filtered = app.get(&link).await;
    assert_eq!(
        filtered.texts("table.events td.rid a"),
        ["f3…", "f2…", "f0…"]
    );
    assert!(
        filtered
            .text(".error-filter")
            .contains("Error starts with KeyError: 'order'")
    );
    // The statistics follow the status filter: other statuses are not counted.
    let tiles = filtered.texts("#event-stats .tile strong");
    assert_eq!(tiles[..5], ["—", "—", "—", "5", "—"]);
    // A failure rate among failed events alone would be 100%: it is not given.
    assert_eq!(tiles[5], "—");
    assert!(
        filtered
            .text("#event-stats")
            .contains("Statistics follow the status and invoke type filters.")
    );
    let everything = page.texts("#event-stats .tile strong");
    assert_eq!(everything[..6], ["0", "0", "1", "5", "0", "83.3%"]);
}

#[tokio::test]
async fn failed_events_are_re_run_in_bulk_after_the_count_is_shown() {
    let app = paused_app().await;
    let f = traced_function(&app, "bulk-rerun").await;
    for (i, status) in [
        EventStatus::Failed,
        EventStatus::Finished,
        EventStatus::Failed,
    ]
    .into_iter()
    .enumerate()
    {
        add_event(&app, f, &format!("r{i}"), "API").await;
        let id = claim(&app).await;
        end(
            &app,
            id,
            status,
            if status == EventStatus::Failed {
                430
            } else {
                200
            },
        )
        .await;
    }
    let base = function_url("default", "bulk-rerun", "events");
    // A developer does it, as any user who may invoke.
    app.log_in_as_new("dev", "developer").await;
    let page = app.get(&base).await;
    // All failed matching: the count first.
    let all = page
        .link(".tool-links a", "Re-run failed matching…")
        .unwrap();
    let confirm = app.get(&all).await;
    assert_eq!(confirm.text(".card h2"), "Re-run 2 events?");
    let action = confirm.attr(".card form", "action").unwrap();
    let done = app.post(&action, &[]).await;
    assert_eq!(done.location(), base);
    assert_eq!(
        app.follow(&done).await.text(".banner-ok"),
        "2 events re-run."
    );
    let listed = app.get(&base).await;
    assert!(listed.text(".count-line").starts_with("5 events match"));
    // The re-runs link to their originals.
    let rerun_ids: Vec<String> = listed
        .texts("table.events td.rid a")
        .into_iter()
        .filter(|t| !t.starts_with('r'))
        .collect();
    assert_eq!(rerun_ids.len(), 2);

    // Selected rows: the ticked ones only.
    let selected = app.get(&format!("{base}/-/rerun?id=r1")).await;
    assert_eq!(selected.text(".card h2"), "Re-run 1 event?");
    assert_eq!(
        selected
            .attr(".card form input[name=id]", "value")
            .as_deref(),
        Some("r1")
    );
    let none = app.get(&format!("{base}/-/rerun")).await;
    assert_eq!(none.text(".card h2"), "Nothing to re-run");
    // Over the QPS limit, the refused ones are counted and said.
    let form = [
        ("Description", ""),
        ("MemorySize", "128"),
        ("Timeout", "3"),
        ("AsyncRunEnable", "TRUE"),
        ("TraceEnable", "TRUE"),
        ("RetryNum", "0"),
        ("MsgTTL", "21600"),
        ("QpsLimit", "1"),
    ];
    let saved = app
        .post(&function_url("default", "bulk-rerun", "config"), &form)
        .await;
    assert_eq!(saved.status.as_u16(), 303, "{:?}", saved.errors());
    app.state.clock.advance(Duration::from_secs(1));
    let done = app
        .post(&format!("{base}/-/rerun"), &[("id", "r0"), ("id", "r2")])
        .await;
    let said = app.follow(&done).await.text(".banner-ok");
    assert!(
        said.starts_with("1 event re-run. 1 refused: The function's QPS limit (1 per second)"),
        "{said}"
    );
}

#[tokio::test]
async fn exports_add_the_columns_asked_for_in_the_export_form() {
    let (app, _) = known_set().await;
    let page = app.get(&events_url("status=failed&sort=start_asc")).await;
    // The form carries the list's filter and offers the heavy columns.
    let action = page.attr(".export-form", "action").unwrap();
    assert!(action.ends_with("/events/-/export"));
    let hidden: Vec<(String, String)> = page
        .html()
        .select(&scraper::Selector::parse(".export-form input[type=hidden]").unwrap())
        .map(|e| {
            (
                e.value().attr("name").unwrap().to_string(),
                e.value().attr("value").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        hidden,
        [
            ("status".to_string(), "failed".to_string()),
            ("sort".to_string(), "start_asc".to_string())
        ]
    );
    assert_eq!(
        page.texts(".export-form fieldset:nth-of-type(2) label"),
        ["Payload", "Result", "Error", "Logs"]
    );
    let csv = app
        .get(&format!(
            "{action}?status=failed&format=csv&col=payload&col=logs"
        ))
        .await;
    assert_eq!(csv.status.as_u16(), 200);
    assert_eq!(csv.header("content-type"), "text/csv; charset=utf-8");
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(
        lines,
        [
            "InvokeRequestId,Status,StatusCode,InvokeType,Qualifier,StartTime,EndTime,DurationMs,Attempts,Payload,Logs",
            "e2,FAILED,430,CONSOLE,$LATEST,2026-11-29T10:00:10.000Z,2026-11-29T10:00:15.000Z,5000,1,\"{\"\"id\"\": \"\"e2\"\"}\",",
        ]
    );
    let nd = app
        .get(&format!("{action}?type=CONSOLE&format=ndjson&col=payload&col=result&col=error&col=logs&col=bogus"))
        .await;
    assert!(
        nd.header("content-disposition")
            .contains("known-events.ndjson")
    );
    let records: Vec<Value> = nd
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["Payload"], "{\"id\": \"e5\"}");
    assert_eq!(records[1]["Payload"], "{\"id\": \"e2\"}");
    for column in ["Result", "Error", "Logs"] {
        assert_eq!(records[1][column], Value::Null, "{column}");
    }
    assert!(records[0].get("bogus").is_none());
}

#[tokio::test]
async fn filter_addresses_hold_only_what_was_chosen_and_follow_the_user_to_an_event() {
    let (app, _) = known_set().await;
    // The form sends every field; the address keeps the chosen ones, defaults left out.
    let submitted = app
        .get(&events_url(
            "status=finished&request_id=&range=3d&from=&to=&end_from=&end_to=&sort=start_desc&size=50",
        ))
        .await;
    assert_eq!(submitted.status.as_u16(), 303);
    assert_eq!(submitted.location(), events_url("status=finished&size=50"));
    let page = app.get(submitted.location()).await;
    assert_eq!(page.status.as_u16(), 200);
    // The links it writes say no more.
    assert_eq!(
        page.attr("#event-rows", "hx-get").unwrap(),
        events_part_url("default", "known", "rows") + "?status=finished&size=50"
    );
    let unfiltered = app.get(&function_url("default", "known", "events")).await;
    assert_eq!(
        unfiltered.attr("#event-rows", "hx-get").unwrap(),
        events_part_url("default", "known", "rows")
    );
    // An event opened from the list keeps the way back to the same filter.
    let event = page.attr("table.events td.rid a", "href").unwrap();
    assert!(
        event.ends_with("/events/e1?status=finished&size=50"),
        "{event}"
    );
    let opened = app.get(&event).await;
    assert_eq!(
        opened.link(".tabs a", "Event Management").unwrap(),
        events_url("status=finished&size=50")
    );
    // Only what the list understands is carried over.
    let odd = app
        .get(&format!(
            "{}/e1?status=finished&evil=%22%3E&size=7",
            function_url("default", "known", "events")
        ))
        .await;
    assert_eq!(
        odd.link(".tabs a", "Event Management").unwrap(),
        events_url("status=finished")
    );
}

#[tokio::test]
async fn exports_stream_every_matching_record() {
    let (app, _) = known_set().await;
    let csv = app
        .get(&format!(
            "{}?status=finished&status=failed",
            events_part_url("default", "known", "export.csv")
        ))
        .await;
    assert_eq!(csv.header("content-type"), "text/csv; charset=utf-8");
    assert!(
        csv.header("content-disposition")
            .contains("known-events.csv")
    );
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(
        lines[0],
        "InvokeRequestId,Status,StatusCode,InvokeType,Qualifier,StartTime,EndTime,DurationMs,Attempts"
    );
    assert_eq!(
        lines[1..],
        [
            "e2,FAILED,430,CONSOLE,$LATEST,2026-11-29T10:00:10.000Z,2026-11-29T10:00:15.000Z,5000,1",
            "e1,FINISHED,200,API,$LATEST,2026-11-29T10:00:00.000Z,2026-11-29T10:00:02.000Z,2000,1",
        ]
    );
    let nd = app
        .get(&format!(
            "{}?type=CONSOLE",
            events_part_url("default", "known", "export.ndjson")
        ))
        .await;
    assert_eq!(nd.header("content-type"), "application/x-ndjson");
    let records: Vec<Value> = nd
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["InvokeRequestId"], "e5");
    assert_eq!(records[0]["EndTime"], Value::Null);
    assert_eq!(records[1]["StatusCode"], 430);

    // Past one page of the stream, nothing is lost.
    let app2 = paused_app().await;
    let f = traced_function(&app2, "bulk").await;
    let ids: Vec<String> = (0..2500).map(|i| format!("b-{i:05}")).collect();
    add_events(&app2, f, &ids, |i| START + i as i64).await;
    app2.state.clock.advance(Duration::from_secs(10));
    let all = app2
        .get(&events_part_url("default", "bulk", "export.ndjson"))
        .await;
    assert_eq!(all.body.lines().count(), 2500);
}

#[tokio::test]
async fn bulk_terminate_shows_the_count_first() {
    let (app, _) = known_set().await;
    let confirm = app
        .get(&format!(
            "{}?range=3d",
            events_part_url("default", "known", "terminate")
        ))
        .await;
    assert!(
        confirm.text(".confirm h2").contains("Terminate 2 events?"),
        "{}",
        confirm.text(".confirm")
    );
    let only_console = app
        .get(&format!(
            "{}?type=CONSOLE",
            events_part_url("default", "known", "terminate")
        ))
        .await;
    assert!(
        only_console
            .text(".confirm h2")
            .contains("Terminate 1 event?")
    );
    let action = confirm.attr(".confirm form", "action").unwrap();
    let done = app.post(&action, &[("GraceShutdown", "false")]).await;
    assert!(!done.location().contains("done"), "{}", done.location());
    let shown = app.follow(&done).await;
    assert_eq!(shown.text(".banner-ok"), "2 events asked to terminate.");
    // Shown once: a reload is the list again, without the banner.
    assert_eq!(app.get(done.location()).await.count(".banner-ok"), 0);
    // The queued one ends at once; the running one (claimed by the test, not by a worker)
    // is left to the engine, which would stop it.
    let e5 = app.state.store.get_event("e5").await.unwrap().unwrap();
    assert_eq!(
        (e5.status, e5.status_code),
        (EventStatus::Aborted, Some(499))
    );
    let left = app
        .get(&events_part_url("default", "known", "terminate"))
        .await;
    assert_eq!(
        left.text(".confirm h2"),
        "Terminate 1 event?",
        "the running one, until the engine stops it"
    );
    let nothing = app
        .get(&format!(
            "{}?status=finished",
            events_part_url("default", "known", "terminate")
        ))
        .await;
    assert_eq!(nothing.text(".confirm h2"), "Nothing to terminate");
}

#[tokio::test]
async fn re_run_invokes_again_with_the_same_payload() {
    let (app, _) = known_set().await;
    let again = app
        .post(
            &format!("{}/e2/rerun", function_url("default", "known", "events")),
            &[],
        )
        .await;
    assert_eq!(again.status.as_u16(), 303);
    let new_id = again.location().rsplit('/').next().unwrap().to_string();
    assert_ne!(new_id, "e2");
    let e = app.state.store.get_event(&new_id).await.unwrap().unwrap();
    assert_eq!(
        (e.payload.as_str(), e.invoke_type.as_str()),
        ("{\"id\": \"e2\"}", "CONSOLE")
    );
}

#[tokio::test]
async fn with_status_trace_off_the_tab_says_so_and_offers_to_turn_it_on() {
    let (app, _) = known_set().await;
    app.api(
        "UpdateFunctionConfiguration",
        json!({"FunctionName": "known", "TraceEnable": "FALSE"}),
    )
    .await
    .ok();
    let page = app.get(&events_url("")).await;
    let notice = page.text(".trace-off");
    assert!(notice.contains("Status trace is off"), "{notice}");
    assert!(
        notice.contains("cleared by 2026-12-02 11:40:00 UTC"),
        "{notice}"
    );
    assert_eq!(page.count("table.events"), 0, "no query results");
    assert_eq!(page.count("#event-stats"), 0);
    // Said once, in the tab's card, not again in a banner above it.
    assert_eq!(page.body.matches("Status trace is off").count(), 1);
    assert_eq!(
        app.get(&events_part_url("default", "known", "rows"))
            .await
            .status
            .as_u16(),
        400
    );
    let listed = app
        .api("ListAsyncEvents", json!({"FunctionName": "known"}))
        .await;
    assert_eq!(listed.error_code(), "FailedOperation");

    let on = app
        .post(&events_part_url("default", "known", "trace-on"), &[])
        .await;
    let page = app.follow(&on).await;
    assert_eq!(page.count("table.events"), 1);
    assert_eq!(page.texts(".facts .badge"), vec!["On", "On"]);
}

#[tokio::test]
async fn an_event_whose_id_is_a_word_of_the_list_opens_from_the_list() {
    let app = paused_app().await;
    let f = traced_function(&app, "worded").await;
    let ids = [
        "rows",
        "stats",
        "terminate",
        "trace-on",
        "export.csv",
        "export.ndjson",
    ];
    for id in ids {
        add_event(&app, f, id, "API").await;
    }
    let list = app.get(&function_url("default", "worded", "events")).await;
    for id in ids {
        let link = list
            .attr(&format!("table.events a[title='{id}']"), "href")
            .unwrap_or_else(|| panic!("{id} is listed"));
        let event = app.get(&link).await;
        assert_eq!(event.status.as_u16(), 200, "{id}");
        assert_eq!(event.text("#event-detail code.request-id"), id);
    }
}
