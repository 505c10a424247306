//! What operators see of a running server from outside: the metrics they scrape, the probes
//! their load balancer asks, and the log lines they search.

use crate::server::{Server, http_get, http_get_with, log_in};
use crate::support::api::zip_base64;
use crate::support::wait_for;
use serde_json::{Value, json};
use std::time::Duration;

/// The address of the metrics listener, from the server's log.
pub(crate) fn metrics_addr(server: &Server) -> String {
    server
        .log_text()
        .lines()
        .find_map(|line| line.split("metrics on http://").nth(1))
        .and_then(|rest| rest.split('/').next())
        .expect("the server logs where its metrics are")
        .to_string()
}

/// The value of one series of a scrape, as `name{labels}` is written in it.
pub(crate) fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .map(|value| value.trim().parse().expect("a number"))
    })
}

pub(crate) fn body(answer: &str) -> &str {
    answer.split("\r\n\r\n").nth(1).unwrap_or_default()
}

/// An async function with status trace, retried `retries` times after a failure.
fn create(server: &Server, name: &str, code: &str, retries: u32) {
    server.api(
        "CreateFunction",
        json!({"FunctionName": name, "Runtime": "Python3.10", "AsyncRunEnable": "TRUE",
               "TraceEnable": "TRUE", "Timeout": 30,
               "Code": {"ZipFile": zip_base64(&[("index.py", code)])}}),
    );
    server.api(
        "UpdateFunctionEventInvokeConfig",
        json!({"FunctionName": name, "AsyncTriggerConfig": {"RetryConfig": [{"RetryNum": retries}], "MsgTTL": 3600}}),
    );
}

fn invoke(server: &Server, name: &str) -> Value {
    invoke_as(server, name, "Event")
}

fn invoke_as(server: &Server, name: &str, invocation_type: &str) -> Value {
    server.api_answer(
        "Invoke",
        json!({"FunctionName": name, "InvocationType": invocation_type, "ClientContext": "{}"}),
    )
}

/// Three events that finish, one that fails after a retry, and a synchronous invocation of
/// a function that may run nothing; answers that invocation's refusal.
fn workload(server: &Server) -> Value {
    create(server, "echo", ECHO, 0);
    create(server, "fails", FAILS, 1);
    server.api(
        "CreateFunction",
        json!({"FunctionName": "reserved-none", "Runtime": "Python3.10",
               "Code": {"ZipFile": zip_base64(&[("index.py", ECHO)])}}),
    );
    server.api(
        "PutReservedConcurrencyConfig",
        json!({"FunctionName": "reserved-none", "ReservedConcurrencyMem": 0}),
    );
    for _ in 0..3 {
        assert!(invoke(server, "echo")["Error"].is_null());
    }
    assert!(invoke(server, "fails")["Error"].is_null());
    invoke_as(server, "reserved-none", "RequestResponse")
}

const ECHO: &str = "def main_handler(event, context):\n    return event\n";
const FAILS: &str = "def main_handler(event, context):\n    raise ValueError('bad input')\n";

/// After a known workload (see [`workload`]) the scrape counts exactly that, on a listener of
/// its own.
#[tokio::test(flavor = "multi_thread")]
async fn an_operator_scrapes_metrics_that_count_a_known_workload() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), |c| {
        c.args(["--metrics-listen", "127.0.0.1:0"]);
    });
    let metrics = metrics_addr(&server);
    let refused = workload(&server);
    assert!(!refused["Error"].is_null(), "{refused}");

    let scrape = wait_for("the workload to end", Duration::from_secs(60), || async {
        let scrape = body(&http_get(&metrics, "/metrics")).to_string();
        let ended = |status: &str| {
            sample(
                &scrape,
                &format!("scf_events_ended_total{{status=\"{status}\"}}"),
            )
        };
        (ended("finished") == Some(3.0) && ended("failed") == Some(1.0)).then_some(scrape)
    })
    .await;

    let invocations = |mode: &str, result: &str| {
        sample(
            &scrape,
            &format!(
                "scf_invocations_total{{mode=\"{mode}\",invoke_type=\"api\",result=\"{result}\"}}"
            ),
        )
    };
    assert_eq!(invocations("async", "accepted"), Some(4.0), "{scrape}");
    assert_eq!(invocations("sync", "reserved_none"), Some(1.0), "{scrape}");
    assert_eq!(invocations("sync", "accepted"), None, "{scrape}");
    assert_eq!(sample(&scrape, "scf_event_retries_total"), Some(1.0));
    // Five runs (the failing event ran twice), each on an instance, warm or started for it.
    let starts = |kind: &str| {
        sample(
            &scrape,
            &format!("scf_instance_starts_total{{runtime=\"Python3.10\",kind=\"{kind}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(starts("warm") + starts("cold"), 5.0, "{scrape}");
    assert!(
        starts("cold") >= 2.0,
        "one instance per function at least: {scrape}"
    );
    assert_eq!(
        sample(
            &scrape,
            "scf_instance_cold_start_seconds_count{runtime=\"Python3.10\"}"
        ),
        Some(starts("cold"))
    );
    assert!(sample(&scrape, "scf_instances{runtime=\"Python3.10\"}").unwrap() >= 1.0);
    assert_eq!(sample(&scrape, "scf_event_run_seconds_count"), Some(5.0));
    assert_eq!(
        sample(&scrape, "scf_event_queue_wait_seconds_count"),
        Some(4.0)
    );
    // Every API call, by its SCF action; refusals answer 200 with the error in the body.
    assert_eq!(
        sample(
            &scrape,
            "scf_http_request_duration_seconds_count{route=\"/\",method=\"POST\",status=\"200\",action=\"Invoke\"}"
        ),
        Some(5.0),
        "{scrape}"
    );
    assert_eq!(sample(&scrape, "scf_events_queued"), Some(0.0));
    assert_eq!(sample(&scrape, "scf_queue_oldest_age_seconds"), Some(0.0));
    assert_eq!(sample(&scrape, "scf_events_running"), Some(0.0));
    assert!(sample(&scrape, "scf_store_commit_batch_size_count").unwrap() >= 1.0);
    assert!(sample(&scrape, "scf_store_size_bytes").unwrap() > 0.0);
    assert_eq!(sample(&scrape, "scf_store_can_write"), Some(1.0));
    assert!(scrape.trim_end().ends_with("# EOF"), "{scrape}");

    // The listener serves the scrape and the probes, nothing of the console.
    let answer = http_get(&metrics, "/metrics");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{answer}"
    );
    assert!(http_get(&metrics, "/readyz").starts_with("HTTP/1.1 200"));
    assert!(http_get(&metrics, "/healthz").starts_with("HTTP/1.1 200"));
    assert!(http_get(&metrics, "/").starts_with("HTTP/1.1 404"));
    // And the console's port does not serve metrics without a login.
    let console = http_get(&server.addr, "/metrics");
    assert!(!console.contains("scf_invocations"), "{console}");
    // The System page says where they are, and offers the Grafana dashboard.
    let cookie = log_in(&server.addr, "admin", crate::support::ADMIN_PASSWORD);
    let system = http_get_with(&server.addr, "/scf/ap-guangzhou/default/system", &cookie);
    assert!(
        system.contains(&format!("http://{metrics}/metrics")),
        "{system}"
    );
    let dashboard = system
        .split("href=\"")
        .find(|s| s.starts_with("/static/grafana-dashboard.json"))
        .and_then(|s| s.split('"').next())
        .expect("a link to the dashboard")
        .replace("&amp;", "&");
    let answer = http_get(&server.addr, &dashboard);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"title\": \"scf-console\""));
}

/// A queued backlog shows as the queue's depth and the age of its oldest event.
#[tokio::test(flavor = "multi_thread")]
async fn the_queue_depth_and_its_oldest_age_show_a_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), |c| {
        c.args(["--metrics-listen", "127.0.0.1:0"]);
    });
    let metrics = metrics_addr(&server);
    create(&server, "held", ECHO, 0);
    // A reservation of 128 MB runs one event at a time; a slow first event holds the rest.
    let slow = "import time\ndef main_handler(event, context):\n    time.sleep(30)\n";
    server.api(
        "UpdateFunctionCode",
        json!({"FunctionName": "held", "ZipFile": zip_base64(&[("index.py", slow)])}),
    );
    server.api(
        "PutReservedConcurrencyConfig",
        json!({"FunctionName": "held", "ReservedConcurrencyMem": 128}),
    );
    for _ in 0..4 {
        assert!(invoke(&server, "held")["Error"].is_null());
    }
    let scrape = wait_for(
        "three events to wait a second",
        Duration::from_secs(30),
        || async {
            let scrape = body(&http_get(&metrics, "/metrics")).to_string();
            let queued = sample(&scrape, "scf_events_queued")?;
            let age = sample(&scrape, "scf_queue_oldest_age_seconds")?;
            (queued == 3.0 && age >= 1.0).then_some(scrape)
        },
    )
    .await;
    assert_eq!(sample(&scrape, "scf_events_running"), Some(1.0), "{scrape}");
}

/// With `--log-format json` each line is one JSON object, and the lines about an event carry
/// its RequestId, function and namespace.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_each_events_request_id_function_and_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("data"), |c| {
        c.args(["--log-format", "json"])
            .env("RUST_LOG", "info,scf_console::engine=debug");
    });
    create(&server, "logged", FAILS, 0);
    let answer = invoke(&server, "logged");
    let request_id = answer["Result"]["FunctionRequestId"]
        .as_str()
        .expect("accepted")
        .to_string();
    let line = wait_for(
        "the event's end in the log",
        Duration::from_secs(30),
        || async {
            server
                .log_text()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|l| l["message"] == "event ended")
        },
    )
    .await;
    assert_eq!(line["level"], "DEBUG");
    assert_eq!(line["status"], "FAILED");
    let span = &line["spans"][0];
    assert_eq!(span["name"], "event");
    assert_eq!(span["request_id"], request_id.as_str());
    assert_eq!(span["function"], "logged");
    assert_eq!(span["namespace"], "default");
    for l in server.log_text().lines() {
        let parsed: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(parsed["timestamp"].is_string(), "{l}");
    }
}

/// Waits for Prometheus's answer to `query` to hold a series, and answers the series.
async fn prometheus_query(prometheus: &str, query: &str) -> Vec<Value> {
    let path = format!("/api/v1/query?query={}", scf_console_query_encode(query));
    let answer = http_get(prometheus, &path);
    let json: Value =
        serde_json::from_str(body(&answer)).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(json["status"], "success", "{query}: {json}");
    json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn scf_console_query_encode(query: &str) -> String {
    form_urlencoded::byte_serialize(query.as_bytes()).collect()
}

/// A real Prometheus scrapes the server's metrics listener, and every query of the Grafana
/// dashboard in the repository answers from what it scraped.
#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scrapes_the_server_and_every_dashboard_query_answers() {
    const PROMETHEUS: &str = "/usr/bin/prometheus";
    if !std::path::Path::new(PROMETHEUS).exists() {
        let why = "SKIPPED: the Prometheus story needs Debian's prometheus (apt-get install -y prometheus)";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("\n*** {why} ***\n");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Swept every second, so the sweeper's panels have a sweep to show.
    let server = Server::start_with(&dir.path().join("data"), |c| {
        c.args(["--metrics-listen", "127.0.0.1:0", "--sweep-interval", "1s"]);
    });
    let target = metrics_addr(&server);
    let refused = workload(&server);
    assert!(!refused["Error"].is_null(), "{refused}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let web = format!("127.0.0.1:{port}");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: scf-console\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let mut prometheus = std::process::Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _stop = Kill(&mut prometheus);

    // Scraped: the accepts are there as the server counted them, and a rate needs two scrapes
    // after the events ended.
    let accepted = wait_for(
        "Prometheus to scrape the workload",
        Duration::from_secs(60),
        || async {
            // It answers 503 while it opens its database.
            if std::net::TcpStream::connect(&web).is_err()
                || !http_get(&web, "/-/ready").starts_with("HTTP/1.1 200")
            {
                return None;
            }
            let ended = prometheus_query(&web, "sum(scf_events_ended_total)").await;
            let done = ended.first().is_some_and(|s| s["value"][1] == "4");
            let swept = prometheus_query(&web, "scf_sweeper_last_run_timestamp > 0").await;
            let found = prometheus_query(
                &web,
                "scf_invocations_total{mode=\"async\",result=\"accepted\"}",
            )
            .await;
            (done && !found.is_empty() && !swept.is_empty()).then_some(found)
        },
    )
    .await;
    assert_eq!(accepted[0]["value"][1], "4");
    assert_eq!(accepted[0]["metric"]["job"], "scf-console");
    tokio::time::sleep(Duration::from_secs(3)).await;

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/static/grafana-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            // As Grafana sends it: its variables filled in.
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*");
            let series = prometheus_query(&web, &expr).await;
            // Panels of what this workload never did (takeovers, sweeps) answer zero, not
            // nothing: every query finds its metric.
            assert!(
                !series.is_empty(),
                "{}: {expr} answers no series",
                panel["title"]
            );
            queried += 1;
        }
    }
    assert!(queried >= 30, "{queried} queries");
}
