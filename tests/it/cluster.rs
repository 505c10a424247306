//! Several scf-console nodes on one PostgreSQL database, as a team runs them when one machine is
//! not enough: they share the queue, wake each other, terminate each other's events, list each
//! other on the System page, and take over the events of one that was killed.

use crate::engine::{function, invoke, until_ended, until_started};
use crate::server::Server;
use crate::support::api::zip_base64;
use crate::support::postgres::Schema;
use crate::support::*;
use scf_console::domain::event::EventStatus;
use scf_console::engine::EngineConfig;
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Nodes as these tests run them: a short lease, so a dead one is noticed quickly.
fn node() -> EngineConfig {
    EngineConfig {
        workers: 8,
        per_function: 8,
        lease: Duration::from_secs(3),
        uids: scf_console::engine::runtime::sandbox::UidRange {
            first: 291_000,
            count: 1_000,
        },
        ..test_engine()
    }
}

/// The test's own view of the schema, to check what the nodes wrote.
async fn database(schema: &Schema) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(schema.url())
        .await
        .unwrap()
}

/// `each` async invocations of `function` on every node, all at once: their answers.
async fn burst(nodes: &[TestApp], each: usize, function: &str) -> Vec<api::Answer> {
    let calls = nodes.iter().flat_map(|node| {
        (0..each).map(move |_| {
            node.api(
                "Invoke",
                json!({"FunctionName": function, "InvocationType": "Event", "ClientContext": "{}"}),
            )
        })
    });
    futures_util::future::join_all(calls).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_node_is_woken_by_an_accept_on_another_node_not_by_its_poll() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    // It looks at the queue by itself only once a minute: only the notification can wake it.
    let runner = TestApp::sharing_url(
        schema.url(),
        EngineConfig {
            poll_interval: Duration::from_secs(60),
            ..node()
        },
    )
    .await;
    runner.add_key().await;
    // This node accepts and answers, but runs nothing.
    let front = TestApp::sharing_url(
        schema.url(),
        EngineConfig {
            workers: 0,
            ..node()
        },
    )
    .await;
    function(
        &runner,
        "woken",
        "Python3.10",
        "def main_handler(event, context):\n    return 'ran'\n",
        json!({}),
    )
    .await;
    // Once warm, so the figure below is the wake-up, not a cold start.
    let warm = invoke(&front, "woken", json!({})).await;
    until_ended(&front, &warm).await;

    let asked = Instant::now();
    let id = invoke(&front, "woken", json!({})).await;
    let ended = until_ended(&front, &id).await;
    let took = asked.elapsed();
    assert_eq!(ended.status, EventStatus::Finished);
    assert!(
        took < Duration::from_secs(5),
        "the idle node ran it {took:?} after the accept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_is_terminated_from_a_node_that_does_not_run_it() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let runner = TestApp::sharing_url(schema.url(), node()).await;
    runner.add_key().await;
    let other = TestApp::sharing_url(
        schema.url(),
        EngineConfig {
            workers: 0,
            ..node()
        },
    )
    .await;
    function(
        &runner,
        "sleeper",
        "Python3.10",
        "import time\ndef main_handler(event, context):\n    time.sleep(120)\n",
        json!({"Timeout": 300}),
    )
    .await;
    let id = invoke(&other, "sleeper", json!({})).await;
    until_started(&runner, &id).await;

    let asked = Instant::now();
    other
        .api(
            "TerminateAsyncEvent",
            json!({"FunctionName": "sleeper", "InvokeRequestId": id}),
        )
        .await
        .ok();
    let ended = until_ended(&other, &id).await;
    assert_eq!(
        (ended.status, ended.status_code),
        (EventStatus::Aborted, Some(499))
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_system_page_lists_every_node_of_the_database() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let one = TestApp::sharing_url(schema.url(), node()).await;
    let two = TestApp::sharing_url(schema.url(), node()).await;
    let url = format!("/scf/{REGION}/default/system");
    let rows = wait_for(
        "both nodes' heartbeats",
        Duration::from_secs(15),
        || async {
            let page = one.get(&url).await;
            let rows = page.texts("table.nodes tbody tr");
            (rows.len() == 2).then_some(rows)
        },
    )
    .await;
    let ids = [one.state.engine.node_id(), two.state.engine.node_id()];
    let mine = rows
        .iter()
        .find(|r| r.contains("this node"))
        .expect("this node is marked");
    assert!(mine.starts_with(&ids[0][..8]), "{rows:?}");
    assert!(rows.iter().all(|r| r.contains("live")), "{rows:?}");
    assert!(rows.iter().any(|r| r.starts_with(&ids[1][..8])), "{rows:?}");

    // A node that stops takes itself off the list.
    two.state.engine.shutdown().await;
    wait_for(
        "the stopped node to leave",
        Duration::from_secs(15),
        || async { (one.get(&url).await.texts("table.nodes tbody tr").len() == 1).then_some(()) },
    )
    .await;
}

/// Three nodes, ten thousand events invoked on all of them, one node killed while it runs
/// events: every accepted event ends exactly once, the killed node's runs are taken over.
#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_run_10000_events_exactly_once_though_one_is_killed() {
    const EVENTS: usize = 10_000;
    let Some(schema) = Schema::create().await else {
        return;
    };
    let _alone = WHOLE_MACHINE.write().await;
    let db = database(&schema).await;
    let dir = tempfile::tempdir().unwrap();
    let url = schema.url().to_string();
    let start = |n: usize| {
        let url = url.clone();
        Server::start_with(&dir.path().join(format!("node{n}")), move |c| {
            c.env("DATABASE_URL", &url)
                .env("SCF_LEASE", "3s")
                .env("SCF_SANDBOX_UIDS", "292000-292999");
        })
    };
    let servers = [start(0), start(1), start(2)];
    servers[0].api(
        "CreateFunction",
        json!({"FunctionName": "work", "Runtime": "Python3.10", "AsyncRunEnable": "TRUE",
               "TraceEnable": "TRUE", "Timeout": 30,
               "Code": {"ZipFile": zip_base64(&[("index.py",
                   "import time\ndef main_handler(event, context):\n    time.sleep(0.02)\n    return event['n']\n")])}}),
    );
    // A run lost with its node is run again.
    servers[0].api(
        "UpdateFunctionEventInvokeConfig",
        json!({"FunctionName": "work", "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": 1}], "MsgTTL": 3600}}),
    );
    let [first, doomed, third] = servers;
    let doomed_addr = format!("http://{}", doomed.addr);
    // The doomed node takes a sixth of the calls before it is killed; the others the rest.
    let doomed_share = EVENTS / 6;
    let survivor_share = (EVENTS - doomed_share) / 2;
    let invoke_all = |server: &Server, from: usize, count: usize| {
        (from..from + count)
            .map(|n| {
                let answer = server.api_answer(
                    "Invoke",
                    json!({"FunctionName": "work", "InvocationType": "Event",
                           "ClientContext": json!({"n": n}).to_string()}),
                );
                match answer["Result"]["FunctionRequestId"].as_str() {
                    Some(id) => id.to_string(),
                    None => panic!("refused: {answer}"),
                }
            })
            .collect::<Vec<_>>()
    };
    let runtime = tokio::runtime::Handle::current();
    let began = Instant::now();
    let (killed_at, accepted) = std::thread::scope(|s| {
        let a = s.spawn(|| invoke_all(&first, 0, survivor_share));
        let c = s.spawn(|| {
            invoke_all(
                &third,
                survivor_share,
                EVENTS - survivor_share - doomed_share,
            )
        });
        // Then it is killed (SIGKILL: no last renewal, no goodbye) at a moment it runs events.
        let b = s.spawn(|| {
            let mut doomed = doomed;
            let ids = invoke_all(&doomed, EVENTS - doomed_share, doomed_share);
            runtime.block_on(wait_for(
                "the doomed node to run events",
                Duration::from_secs(30),
                || async {
                    let running: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM events e JOIN nodes n ON n.id = e.lease_owner \
                         WHERE e.status = 1 AND n.address = $1",
                    )
                    .bind(&doomed_addr)
                    .fetch_one(&db)
                    .await
                    .unwrap();
                    (running > 0).then_some(())
                },
            ));
            doomed.child.kill().unwrap();
            doomed.child.wait().unwrap();
            (Instant::now(), ids)
        });
        let (killed_at, mut ids) = b.join().unwrap();
        ids.extend(a.join().unwrap());
        ids.extend(c.join().unwrap());
        (killed_at, ids)
    });
    // Every call was answered with a RequestId (a refusal fails the test where it happens).
    assert_eq!(accepted.len(), EVENTS);
    eprintln!("{} accepted in {:?}", accepted.len(), began.elapsed());
    let accepted_set: HashSet<&String> = accepted.iter().collect();
    assert_eq!(accepted_set.len(), accepted.len(), "RequestIds are unique");

    // Every accepted event ends; the survivors take over what the killed node ran.
    wait_for("every event to end", Duration::from_secs(300), || async {
        let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE status IN (0, 1)")
            .fetch_one(&db)
            .await
            .unwrap();
        (open == 0).then_some(())
    })
    .await;
    let ended: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT request_id, status, attempt FROM events")
            .fetch_all(&db)
            .await
            .unwrap();
    let stored: HashSet<&String> = ended.iter().map(|(id, _, _)| id).collect();
    assert_eq!(
        stored, accepted_set,
        "exactly the accepted events are stored"
    );
    let unfinished: Vec<_> = ended
        .iter()
        .filter(|(_, status, _)| *status != EventStatus::Finished.code())
        .collect();
    if let Some((id, _, _)) = unfinished.first() {
        let why: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT error, (SELECT string_agg(detail, ' | ' ORDER BY t.id) FROM event_timeline t \
             WHERE t.event_id = e.id) FROM events e WHERE request_id = $1",
        )
        .bind(id)
        .fetch_all(&db)
        .await
        .unwrap();
        panic!("{} did not finish, e.g. {id}: {why:?}", unfinished.len());
    }
    // Exactly one end on each timeline, whichever node wrote it.
    let ends_per_event: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM event_timeline WHERE status IN (2, 3, 4) \
         UNION ALL SELECT COUNT(*), 0 FROM events",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(
        ends_per_event[0].0, ends_per_event[0].1,
        "no event ended twice"
    );
    assert_eq!(
        ends_per_event[0].1, ends_per_event[1].0,
        "every event ended once"
    );
    let taken_over: Vec<(i64,)> = sqlx::query_as(
        "SELECT COUNT(*) FROM event_timeline WHERE detail LIKE '%stopped renewing its lease%'",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(
        taken_over[0].0 > 0,
        "the killed node's runs were taken over"
    );
    let again = ended.iter().filter(|(_, _, attempt)| *attempt > 1).count();
    assert!(
        again as i64 >= taken_over[0].0,
        "each taken-over event ran again"
    );
    // All three nodes ran events.
    let owners: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT lease_owner) FROM events")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(owners, 3);
    eprintln!(
        "{} events accepted on 3 nodes, {} taken over, all ended {:?} after the kill",
        accepted.len(),
        taken_over[0].0,
        killed_at.elapsed()
    );
    drop((first, third));
    db.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_qps_limit_holds_for_all_nodes_together() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(TestApp::sharing_url(schema.url(), node()).await);
    }
    nodes[0].add_key().await;
    function(
        &nodes[0],
        "limited",
        "Python3.10",
        "def main_handler(event, context):\n    return 1\n",
        json!({}),
    )
    .await;
    let form = [
        ("Description", ""),
        ("MemorySize", "128"),
        ("Timeout", "3"),
        ("AsyncRunEnable", "TRUE"),
        ("TraceEnable", "TRUE"),
        ("RetryNum", "0"),
        ("MsgTTL", "21600"),
        ("QpsLimit", "5"),
    ];
    let saved = nodes[0]
        .post(&function_url("default", "limited", "config"), &form)
        .await;
    assert_eq!(saved.status.as_u16(), 303, "{:?}", saved.errors());

    // Bursts of 30 calls at once, 10 on each node, for three seconds: each node alone would
    // let 5 a second through, 15 in all.
    let mut refused = 0;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for answer in burst(&nodes, 10, "limited").await {
            if answer.error_code() == "RequestLimitExceeded" {
                refused += 1;
            } else {
                answer.ok();
            }
        }
    }
    let db = database(&schema).await;
    let per_second: Vec<(i64, i64)> =
        sqlx::query_as("SELECT enqueued_at / 1000, COUNT(*) FROM events GROUP BY 1 ORDER BY 1")
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(refused > 0);
    // Counted when admitted: an event stamped a moment later may land in the next second, so
    // the seconds of the stamps may be one fewer than those the calls were admitted in, and a
    // second may show those admitted at the very end of the one before as well as its own
    // (at most twice the limit, however rarely). Each node alone would have let 15 a second
    // in, and the total over the run tells that apart.
    let total: i64 = per_second.iter().map(|&(_, n)| n).sum();
    let seconds = per_second.last().unwrap().0 - per_second[0].0 + 1;
    assert!(
        total <= 5 * (seconds + 1),
        "accepted per second: {per_second:?}"
    );
    assert!(
        per_second.iter().all(|&(_, n)| n <= 10),
        "accepted per second: {per_second:?}"
    );
    assert!(
        per_second.iter().any(|&(_, n)| n >= 4),
        "the limit is reached, not undercut: {per_second:?}"
    );
    db.close().await;
}

/// A namespace's invocation quota counts accepts in flight at once, wherever they arrive:
/// bursts of calls on every node at once, far more than the quota, and exactly the quota is
/// accepted, counted and stored; every other call is refused as arrears.
async fn bursts_on_every_node_take_exactly_the_quota(nodes: &[TestApp]) {
    const QUOTA: usize = 40;
    nodes[0].add_key().await;
    function(
        &nodes[0],
        "metered",
        "Python3.10",
        "def main_handler(event, context):\n    return 1\n",
        json!({}),
    )
    .await;
    let settings = format!("/scf/{REGION}/default/namespaces/default/settings");
    nodes[0]
        .post(&settings, &[("InvocationQuota", &QUOTA.to_string())])
        .await;
    let mut accepted = HashSet::new();
    let mut refused = 0;
    for _ in 0..3 {
        for answer in burst(nodes, 30, "metered").await {
            if answer.error_code() == "ResourceUnavailable.InsufficientBalance" {
                assert!(
                    answer
                        .error_message()
                        .contains(&format!("has used its invocation quota ({QUOTA})")),
                    "{}",
                    answer.error_message()
                );
                refused += 1;
            } else {
                let id = answer.ok()["Result"]["FunctionRequestId"].as_str().unwrap();
                accepted.insert(id.to_string());
            }
        }
    }
    assert_eq!(accepted.len(), QUOTA, "{refused} refused");
    assert_eq!(refused, 3 * 30 * nodes.len() - QUOTA);
    let page = nodes[nodes.len() - 1].get(&settings).await;
    assert!(
        page.text(".hint")
            .contains(&format!("Used so far: {QUOTA}")),
        "{}",
        page.text(".hint")
    );
    let stored = nodes[0]
        .api(
            "ListAsyncEvents",
            json!({"FunctionName": "metered", "Limit": 100}),
        )
        .await;
    assert_eq!(stored.ok()["TotalCount"], QUOTA);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_invocation_quota_holds_for_two_processes_on_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("scf-console.db");
    let one = TestApp::sharing(&db, node()).await;
    let two = TestApp::sharing(&db, node()).await;
    bursts_on_every_node_take_exactly_the_quota(&[one, two]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_invocation_quota_holds_for_all_nodes_together() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(TestApp::sharing_url(schema.url(), node()).await);
    }
    bursts_on_every_node_take_exactly_the_quota(&nodes).await;
}
