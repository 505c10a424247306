//! scf-bench: measures scf-console against the performance targets of its design, on this
//! machine, and prints tables. Build both binaries in release mode, then run it:
//!
//!     cargo build --release && target/release/scf-bench
//!
//! The accept and warm figures drive the real `scf-console` binary built beside it, as a
//! process of its own (see `outside`), each beside the limit it is a ratio of; the other parts
//! start a server inside this process to seed and time its store. Each measurement starts its
//! own server on a fresh SQLite file in the temporary folder.

use clap::{Parser, ValueEnum};
use scf_console::app::serve;
use scf_console::clock::{Clock, TimeFormat, format_time};
use scf_console::domain::event::EventStatus;
use scf_console::domain::function::{
    ConfigDraft, FunctionDraft, QPS_LIMIT_MAX, validate_new_function,
};
use scf_console::domain::namespace::DEFAULT_NAMESPACE;
use scf_console::domain::runtime::Language;
use scf_console::engine::{EngineConfig, interpreters};
use scf_console::scf::tc3::{SignInput, sha256_hex, sign, utc_date};
use scf_console::state::AppState;
use scf_console::store::{ClaimBudget, EventWrite, Function, NewEvent, RunLease, TimelineEntry};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod outside;

const SECRET_ID: &str = "AKIDbenchmark000000000000000000000";
const SECRET_KEY: &str = "benchmark-secret-key-0123456789ab";
/// The first admin's password, on the servers the benchmark starts.
const ADMIN_PASSWORD: &str = "bench-admin-password";
const REGION: &str = "ap-guangzhou";
/// A no-op Python handler, as the warm, cold and store measurements run it.
const NOOP: &str = "def main_handler(event, context):\n    return None\n";
/// What an accepted async Invoke answers with.
const ACCEPTED: &str = "FunctionRequestId";

/// Measures scf-console against the performance targets of its design, on this machine, and
/// prints a table. Each part starts its own server on a fresh SQLite file.
#[derive(Parser)]
#[command(name = "scf-bench")]
struct Options {
    /// Run only this part (all by default).
    #[arg(long, value_enum)]
    only: Option<Part>,
    /// Seconds of load for each accept measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Calls per second of the fixed-rate accepts of the sweep measurement.
    #[arg(long, value_name = "PER_SECOND", default_value_t = 5000)]
    rate: u64,
    /// Client connections sending the accept load.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Events the server runs at once (SCF_WORKERS), and warm interpreters the pipe limit is
    /// measured with; the server's default (8 per core, at least 8) when not given.
    #[arg(long)]
    workers: Option<usize>,
    /// Events of the warm end-to-end measurement.
    #[arg(long, default_value_t = 20_000)]
    warm_events: usize,
    /// Events of the cold-start measurement.
    #[arg(long, default_value_t = 300)]
    cold_events: usize,
    /// Stored-event sizes for the Event Management measurements, comma separated; 0 skips
    /// them.
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    stored: Vec<u64>,
    /// The PostgreSQL database of the `nodes` part (each run makes and drops a schema in it).
    #[arg(
        long,
        env = "SCF_BENCH_POSTGRES",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    postgres: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Accept,
    Warm,
    Cold,
    Events,
    Sweep,
    Churn,
    /// Several nodes on PostgreSQL beside one on SQLite (run only with `--only nodes`).
    Nodes,
}

/// A server on a fresh data folder, serving on a free port.
struct Bench {
    state: AppState,
    addr: String,
    dir: PathBuf,
}

impl Bench {
    async fn start(engine: EngineConfig) -> anyhow::Result<Bench> {
        Self::start_with_retention(engine, Duration::from_secs(72 * 3600)).await
    }

    async fn start_with_retention(
        engine: EngineConfig,
        retention: Duration,
    ) -> anyhow::Result<Bench> {
        let dir = std::env::temp_dir().join(format!("scf-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let store =
            scf_console::store::open(&format!("sqlite://{}", dir.join("bench.db").display()))
                .await?;
        let interpreters = interpreters::detect("/usr/bin/python3", "node").await;
        let state = AppState::with_engine(
            store,
            Clock::System,
            vec![REGION.into()],
            interpreters,
            retention,
            engine,
        )
        .await?;
        // Keys belong to users: the bench's key to the first admin, made as at a first start.
        scf_console::accounts::ensure_first_admin(
            &state.store,
            state.clock.now_millis(),
            Some(ADMIN_PASSWORD),
        )
        .await?;
        scf_console::keys::put_configured(&state, SECRET_ID, SECRET_KEY).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        tokio::spawn(serve(listener, state.clone(), std::future::pending()));
        Ok(Bench { state, addr, dir })
    }

    /// An async, traced Python function with `code` as its handler's file, allowed far more
    /// calls per second than the default QPS limit, as the benchmark drives.
    async fn function(&self, name: &str, code: &str) -> anyhow::Result<Function> {
        let python = self
            .state
            .interpreters
            .newest(Language::Python)
            .ok_or_else(|| anyhow::anyhow!("no Python interpreter was found"))?;
        let draft = FunctionDraft {
            function_name: name.into(),
            runtime: python.name.into(),
            handler: "index.main_handler".into(),
            code: code.into(),
            async_run_enable: "TRUE".into(),
            config: ConfigDraft {
                trace_enable: "TRUE".into(),
                qps_limit: QPS_LIMIT_MAX.to_string(),
                public_net: "TRUE".into(),
                ..ConfigDraft::default()
            },
            ..FunctionDraft::default()
        };
        let new = validate_new_function(&draft, &self.state.interpreters)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(self
            .state
            .store
            .create_function(REGION, DEFAULT_NAMESPACE, &new, Clock::System.now_millis())
            .await?)
    }

    /// A server whose engine runs nothing (no workers), with these no-op functions: what it
    /// stores stays exactly as the benchmark puts it.
    async fn paused_with(names: &[&str]) -> anyhow::Result<(Bench, Vec<i64>)> {
        let bench = Bench::start(EngineConfig {
            workers: 0,
            ..EngineConfig::default()
        })
        .await?;
        let mut ids = Vec::new();
        for name in names {
            ids.push(bench.function(name, NOOP).await?.id);
        }
        Ok((bench, ids))
    }

    async fn stop(self) {
        let dir = self.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Stops the server and closes its store; its data folder stays.
    async fn close(self) -> PathBuf {
        self.state.engine.shutdown().await;
        self.state.store.close().await;
        self.dir
    }
}

/// A keep-alive HTTP/1.1 connection that sends signed SCF API calls.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The head of the last response read.
    head: String,
}

impl Client {
    async fn connect(addr: &str) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::with_capacity(4096),
            head: String::new(),
        })
    }

    /// Logs in as the first admin, as a user would: the session cookie the console pages need.
    async fn login(addr: &str) -> anyhow::Result<String> {
        let mut client = Client::connect(addr).await?;
        let admin = scf_console::accounts::FIRST_ADMIN;
        let form = format!("UserName={admin}&Password={ADMIN_PASSWORD}");
        let request = format!(
            "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n{form}",
            form.len()
        );
        client.stream.write_all(request.as_bytes()).await?;
        let (status, _) = client.read_response().await?;
        client
            .head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("set-cookie")
                    .then(|| v.trim().split(';').next().unwrap_or("").to_string())
            })
            .ok_or_else(|| anyhow::anyhow!("logging in answered {status} without a session"))
    }

    async fn call(
        &mut self,
        host: &str,
        action: &str,
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let timestamp = Clock::System.now_millis() / 1000;
        let signature = sign(
            SECRET_KEY,
            &SignInput {
                method: "POST",
                query: "",
                headers: &[("content-type", "application/json"), ("host", host)],
                payload_hash: &sha256_hex(body.as_bytes()),
                timestamp,
            },
        );
        let request = format!(
            "POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             X-TC-Action: {action}\r\nX-TC-Version: 2018-04-16\r\nX-TC-Timestamp: {timestamp}\r\n\
             X-TC-Region: {REGION}\r\nAuthorization: TC3-HMAC-SHA256 Credential={SECRET_ID}/{}/scf/tc3_request, \
             SignedHeaders=content-type;host, Signature={signature}\r\n\r\n{body}",
            body.len(),
            utc_date(timestamp)
        );
        self.stream.write_all(request.as_bytes()).await?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> anyhow::Result<(u16, String)> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
                let status: u16 = head
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while self.buf.len() < end + 4 + length {
                    self.fill().await?;
                }
                let body =
                    String::from_utf8_lossy(&self.buf[end + 4..end + 4 + length]).to_string();
                self.buf.drain(..end + 4 + length);
                self.head = head;
                return Ok((status, body));
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

struct Latencies(Vec<u64>);

impl Latencies {
    fn percentile(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let idx = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[idx] as f64 / 1000.0
    }
}

async fn wait_ended(state: &AppState, target: u64) -> Duration {
    let started = Instant::now();
    while state.metrics.ended_total() < target {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// Starts `count` bare interpreters (`python3 -c pass`) with `concurrency` at a time.
async fn spawn_rate(count: usize, concurrency: usize) -> anyhow::Result<f64> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..count {
        let permit = sem.clone().acquire_owned().await?;
        tasks.push(tokio::spawn(async move {
            let status = tokio::process::Command::new("/usr/bin/python3")
                .args(["-c", "pass"])
                .status()
                .await;
            drop(permit);
            status
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

fn row(what: &str, measured: String, target: &str) {
    println!("| {what:<62} | {measured:>22} | {target:<26} |");
}

/// Fills the store with `count` traced events over the last 3 days, for 4 functions (half of
/// them for the first), with a realistic mix of statuses.
async fn seed(bench: &Bench, functions: &[i64], count: u64, already: u64) -> anyhow::Result<()> {
    let span: i64 = 72 * 3600 * 1000 - 60_000;
    seed_window(
        bench,
        functions,
        count,
        already,
        Clock::System.now_millis() - span,
        span,
    )
    .await
}

/// Events seeded at once: each batch is inserted, claimed and ended as the engine would, so the
/// store keeps its rollups and timelines, and a batch's events start together.
const SEED_BATCH: u64 = 1000;

/// Seeds events enqueued evenly over `[from, from + span)`, through the store's own writes.
async fn seed_window(
    bench: &Bench,
    functions: &[i64],
    count: u64,
    already: u64,
    from: i64,
    span: i64,
) -> anyhow::Result<()> {
    let store = &bench.state.store;
    let total = already + count;
    let enqueued_at = |i: u64| from + i as i64 * span / total as i64;
    // Seeded events left running stay so for the whole run: their lease outlasts it.
    let lease_until = Clock::System.now_millis() + 30 * 24 * 3600 * 1000;
    let mut done = 0;
    while done < count {
        let n = SEED_BATCH.min(count - done);
        let batch = already + done..already + done + n;
        let inserts: Vec<EventWrite> = batch
            .clone()
            .map(|i| {
                EventWrite::Insert(NewEvent {
                    request_id: seed_request_id(i),
                    function_id: functions[seed_function(i)],
                    invoke_type: if i % 10 == 0 { "CONSOLE" } else { "API" }.into(),
                    traced: true,
                    payload: "{\"seed\":true}".into(),
                    enqueued_at: enqueued_at(i),
                    invoked_by: None,
                    rerun_of: None,
                })
            })
            .collect();
        store.apply_event_writes(&inserts).await?;
        let started_at = enqueued_at(batch.end - 1) + 5;
        let claimed = store
            .claim_events(
                started_at,
                &ClaimBudget::up_to(n as u32),
                SEED_OWNER,
                lease_until,
            )
            .await?;
        anyhow::ensure!(
            claimed.len() == n as usize
                && claimed
                    .iter()
                    .zip(batch.clone())
                    .all(|(c, i)| c.request_id == seed_request_id(i)),
            "claiming the seeded events took others: is the engine running?"
        );
        let ends: Vec<EventWrite> = claimed
            .iter()
            .zip(batch)
            .filter_map(|(c, i)| {
                let (status, status_code) = seed_outcome(i)?;
                Some(EventWrite::Finish {
                    event_id: c.id,
                    run: RunLease {
                        owner: SEED_OWNER.into(),
                        attempt: c.attempt,
                        until: None,
                    },
                    traced: true,
                    status_code,
                    result: None,
                    error: None,
                    logs: None,
                    entry: TimelineEntry {
                        at: started_at + (i % 37) as i64 * 3,
                        status,
                        detail: "seeded by scf-bench".into(),
                    },
                })
            })
            .collect();
        store.apply_event_writes(&ends).await?;
        done += n;
        eprint!("\rscf-bench: seeded {} of {count} events", done);
    }
    eprintln!();
    Ok(())
}

fn seed_request_id(i: u64) -> String {
    format!("seed-{i:010}")
}

/// Which of the 4 functions the i-th seeded event belongs to: half to the first.
fn seed_function(i: u64) -> usize {
    match (i % 2, i % 6) {
        (0, _) => 0,
        (_, 1) => 1,
        (_, 3) => 2,
        _ => 3,
    }
}

/// How the i-th seeded event ended: one in 100 failed, 1 in 250 aborted, 1 in 1000 is still
/// running (None), the rest finished.
/// The node the seeded events are claimed by: not a real node, so nothing ever renews or
/// takes over its leases before they run out.
const SEED_OWNER: &str = "seeded-by-the-benchmark";

fn seed_outcome(i: u64) -> Option<(EventStatus, i64)> {
    if i % 100 == 7 {
        Some((EventStatus::Failed, 430))
    } else if i % 250 == 11 {
        Some((EventStatus::Aborted, 499))
    } else if i % 1000 == 13 {
        None
    } else {
        Some((EventStatus::Finished, 200))
    }
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// Times `n` sequential GETs of a console URL (p50, p99 in ms).
/// Times `n` GETs of a console page as the logged-in user of `cookie` (p50, p99 in µs).
async fn time_get(
    addr: &str,
    cookie: &str,
    path: &str,
    n: usize,
    hx: bool,
) -> anyhow::Result<(f64, f64)> {
    let mut client = Client::connect(addr).await?;
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n{}\r\n",
            if hx { "HX-Request: true\r\n" } else { "" }
        );
        client.stream.write_all(request.as_bytes()).await?;
        let (status, _) = client.read_response().await?;
        anyhow::ensure!(status == 200, "GET {path} answered {status}");
        lat.push(started.elapsed().as_micros() as u64);
    }
    let mut l = Latencies(lat);
    Ok((l.percentile(0.5), l.percentile(0.99)))
}

async fn time_api(addr: &str, action: &str, body: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let mut client = Client::connect(addr).await?;
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let (status, text) = client.call(addr, action, body).await?;
        anyhow::ensure!(
            status == 200 && !text.contains("\"Error\""),
            "{action}: {text}"
        );
        lat.push(started.elapsed().as_micros() as u64);
    }
    let mut l = Latencies(lat);
    Ok((l.percentile(0.5), l.percentile(0.99)))
}

/// Event Management's page of the function `orders`, and the ListAsyncEvents body that asks
/// for its failed events of the last 24 hours: what each store's reads are timed with.
fn event_management_reads() -> (String, String) {
    let base = format!("/scf/{REGION}/default/functions/orders/events");
    let now = Clock::System.now_millis();
    let day_ago = format_time(
        now - 24 * 3600 * 1000,
        time::UtcOffset::UTC,
        TimeFormat::DateTime,
    );
    let in_an_hour = format_time(
        now + 3600 * 1000,
        time::UtcOffset::UTC,
        TimeFormat::DateTime,
    );
    let list_body = serde_json::json!({
        "FunctionName": "orders", "Status": ["FAILED"], "Limit": 20,
        "StartTimeInterval": {"Start": day_ago, "End": in_an_hour},
    })
    .to_string();
    (base, list_body)
}

async fn event_management(o: &Options) -> anyhow::Result<()> {
    let (bench, ids) = Bench::paused_with(&["orders", "billing", "mailer", "reports"]).await?;
    let (base, list_body) = event_management_reads();
    let n = 200;
    let idle_rss = rss_mb();
    let cookie = Client::login(&bench.addr).await?;
    let mut seeded = 0;
    let mut results = Vec::new();
    for &size in o.stored.iter().filter(|&&n| n > 0) {
        seed(&bench, &ids, size - seeded, seeded).await?;
        // As the retention sweeper does within a sweep interval of such growth.
        bench.state.store.optimize().await?;
        seeded = size;
        let reads = outside::time_reads(&bench.addr, &cookie, &base, &list_body, n).await?;
        results.push((size, reads, rss_mb()));
    }
    // The largest store again, now served by the real binary while it is saturated.
    let dir = bench.close().await;
    std::fs::rename(dir.join("bench.db"), dir.join("scf-console.db"))?;
    let workers = o.workers.unwrap_or_else(|| EngineConfig::default().workers);
    let (loaded, accepts, ends) =
        outside::reads_under_load(dir, o.connections, workers, &base, &list_body, n).await?;
    println!();
    println!(
        "| {:<62} | {:>22} | {:<26} |",
        "Event Management (p50 / p99 over 200 requests)", "measured", "target"
    );
    println!("|{}|{}|{}|", "-".repeat(64), "-".repeat(24), "-".repeat(28));
    let ms = |(p50, p99): (f64, f64)| format!("{p50:.2} / {p99:.2} ms");
    let list_target = |size: u64| {
        if size >= 10_000_000 {
            "p99 < 15 ms"
        } else {
            "p99 < 10 ms"
        }
    };
    let rows = |label: &str, size: u64, reads: &outside::Reads| {
        let target = list_target(size);
        row(
            &format!("{label}: Event Management page"),
            ms(reads.page),
            target,
        );
        row(
            &format!("{label}: rows fragment, status=failed"),
            ms(reads.rows),
            target,
        );
        row(
            &format!("{label}: ListAsyncEvents FAILED, last 24 h"),
            ms(reads.api),
            target,
        );
        row(
            &format!("{label}: statistics for 3 days"),
            ms(reads.stats),
            "p99 < 20 ms at 10M",
        );
    };
    for (size, reads, rss) in &results {
        let millions = *size as f64 / 1e6;
        rows(&format!("{millions}M events"), *size, reads);
        row(
            &format!("{millions}M events: process RSS (idle: {idle_rss:.0} MB)"),
            format!("{rss:.0} MB"),
            "flat as events grow",
        );
    }
    let largest = seeded as f64 / 1e6;
    row(
        &format!("{largest}M events, real server saturated: accepts / ends per second"),
        format!("{accepts:.0} / {ends:.0}"),
        "",
    );
    rows(&format!("{largest}M events, saturated"), seeded, &loaded);
    Ok(())
}

/// The warm and cold parts run one function: it gets every worker, as it would with a
/// reservation of all but one, rather than the half a function without one gets.
fn one_function(config: EngineConfig) -> EngineConfig {
    EngineConfig {
        per_function: config.workers,
        ..config
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = Options::parse();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let run = |part: Part| o.only.is_none_or(|only| only == part);
    eprintln!(
        "scf-bench: {cpus} cores; each part starts a fresh server (the whole run takes a few minutes)"
    );
    let mut lines: Vec<(String, String, &str)> = Vec::new();

    // The headline figures, from outside: the real binary as its own process, each beside the
    // limit it is a ratio of, measured in the same run.
    let workers = o.workers.unwrap_or_else(|| EngineConfig::default().workers);
    if run(Part::Accept) {
        outside::accepts(o.connections, o.seconds, workers).await?;
    }
    if run(Part::Warm) {
        outside::warm(o.connections, workers, o.warm_events).await?;
    }
    // Several nodes on PostgreSQL beside one on SQLite; only when asked for (it needs a
    // PostgreSQL server and takes minutes).
    if o.only == Some(Part::Nodes) {
        let (page, list_body) = event_management_reads();
        outside::nodes(
            &o.postgres,
            o.connections,
            o.seconds,
            workers,
            o.warm_events,
            &o.stored,
            &page,
            &list_body,
        )
        .await?;
    }

    if run(Part::Cold) {
        let cold_config = one_function(EngineConfig {
            reuse_instances: false,
            ..EngineConfig::default()
        });
        let concurrency = cold_config.workers;
        let spawn = spawn_rate(o.cold_events, concurrency).await?;
        let bench = Bench::start(cold_config).await?;
        let f = bench.function("noop", NOOP).await?;
        let started = Instant::now();
        for _ in 0..o.cold_events {
            bench
                .state
                .engine
                .invoke_async(&f, "{}".into(), "API")
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        wait_ended(&bench.state, o.cold_events as u64).await;
        let cold_rate = o.cold_events as f64 / started.elapsed().as_secs_f64();
        bench.stop().await;
        lines.push((
            format!("bare `python3 -c pass` spawns/s ({concurrency} at a time)"),
            format!("{spawn:.0}/s"),
            "",
        ));
        lines.push((
            format!("cold-start events/s ({} events, no reuse)", o.cold_events),
            format!("{cold_rate:.0}/s ({:.0}%)", cold_rate / spawn * 100.0),
            ">= 90% of bare spawns",
        ));
    }

    if !lines.is_empty() {
        println!();
        println!(
            "| {:<62} | {:>22} | {:<26} |",
            "measurement", "measured", "target"
        );
        println!("|{}|{}|{}|", "-".repeat(64), "-".repeat(24), "-".repeat(28));
        for (what, measured, target) in &lines {
            row(what, measured.clone(), target);
        }
    }
    if run(Part::Events) && o.stored.iter().any(|&n| n > 0) {
        event_management(&o).await?;
    }
    if run(Part::Sweep) {
        sweep_under_load(&o).await?;
    }
    if run(Part::Churn) {
        churn(&o).await?;
    }
    Ok(())
}

/// Accepts at a fixed rate without, then with, a sweep of 1M expired events running.
async fn sweep_under_load(o: &Options) -> anyhow::Result<()> {
    let (bench, ids) = Bench::paused_with(&["noop", "old-a", "old-b", "old-c"]).await?;
    let expired = 1_000_000;
    let day = 24 * 3600 * 1000;
    seed_window(
        &bench,
        &ids,
        expired,
        0,
        Clock::System.now_millis() - 5 * day,
        day,
    )
    .await?;
    let accepts = [outside::invoke_body("noop", "Event")];
    let rate = Some(o.rate as f64);
    let base = outside::load(
        &bench.addr,
        o.connections,
        o.seconds,
        rate,
        &accepts,
        ACCEPTED,
    )
    .await?;
    let (base_rate, mut base_lat, base_err) = (base.per_second, base.latencies, base.unexpected);
    let sweeper = bench.state.sweeper.clone();
    let sweep = tokio::spawn(async move {
        let started = Instant::now();
        let removed = sweeper.run_once().await;
        (removed, started.elapsed())
    });
    // Load for as long as the sweep takes, at least the usual duration.
    let mut rates = Vec::new();
    let mut lats = Vec::new();
    let mut errors = base_err;
    loop {
        let during = outside::load(
            &bench.addr,
            o.connections,
            o.seconds,
            rate,
            &accepts,
            ACCEPTED,
        )
        .await?;
        rates.push(during.per_second);
        lats.extend(during.latencies.0);
        errors += during.unexpected;
        if sweep.is_finished() {
            break;
        }
    }
    let (removed, took) = sweep.await?;
    let removed = removed?;
    let sweep_rate = rates.iter().sum::<f64>() / rates.len() as f64;
    let mut sweep_lat = Latencies(lats);
    bench.stop().await;
    println!();
    println!(
        "| {:<62} | {:>22} | {:<26} |",
        "retention sweep under load", "measured", "target"
    );
    println!("|{}|{}|{}|", "-".repeat(64), "-".repeat(24), "-".repeat(28));
    row(
        &format!("accepts at {}/s without a sweep: achieved, p99", o.rate),
        format!("{base_rate:.0}/s, {:.2} ms", base_lat.percentile(0.99)),
        "",
    );
    row(
        &format!("accepts at {}/s while sweeping: achieved, p99", o.rate),
        format!("{sweep_rate:.0}/s, {:.2} ms", sweep_lat.percentile(0.99)),
        "p99 +< 30 ms, rate -< 10%",
    );
    row(
        "  expired events removed by the sweep, and how long it took",
        format!("{removed} in {:.1} s", took.as_secs_f64()),
        "",
    );
    row("  refused or failed calls", format!("{errors}"), "0");
    Ok(())
}

/// Steady load with a short retention: the database file stays the same size, as the sweeper
/// frees pages and new events reuse them.
async fn churn(o: &Options) -> anyhow::Result<()> {
    let retention = Duration::from_secs(10);
    let bench = Bench::start_with_retention(EngineConfig::default(), retention).await?;
    bench.state.sweeper.set_interval(Duration::from_secs(1));
    bench.state.sweeper.start();
    let f = bench.function("noop", NOOP).await?;
    let minutes = (o.seconds * 12).max(60);
    let rate = 1000u64;
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(minutes) {
        let second = Instant::now();
        // Submitted concurrently, as many clients would, so commits are shared.
        let mut calls = Vec::new();
        for _ in 0..rate {
            let engine = bench.state.engine.clone();
            let f = f.clone();
            calls.push(tokio::spawn(async move {
                engine
                    .invoke_async(&f, "{\"churn\":true}".into(), "API")
                    .await
                    .is_ok()
            }));
        }
        for c in calls {
            sent += u64::from(c.await?);
        }
        let t = started.elapsed().as_secs() / 10 * 10;
        if t > 0 && samples.last().is_none_or(|(last, _)| *last != t) {
            let size = bench.state.store.size().await?;
            samples.push((t, size.bytes));
        }
        tokio::time::sleep(Duration::from_secs(1).saturating_sub(second.elapsed())).await;
    }
    let size = bench.state.store.size().await?;
    samples.push((started.elapsed().as_secs(), size.bytes));
    let removed = bench.state.sweeper.status().total_removed;
    bench.state.sweeper.stop().await;
    bench.stop().await;
    println!();
    println!(
        "| {:<62} | {:>22} | {:<26} |",
        format!("steady load: {rate} events/s, retention 10 s, sweep every 1 s"),
        "database size",
        "target"
    );
    println!("|{}|{}|{}|", "-".repeat(64), "-".repeat(24), "-".repeat(28));
    for (t, bytes) in samples {
        row(
            &format!("after {t} s"),
            format!("{:.1} MB", bytes as f64 / 1_048_576.0),
            "no growth without bound",
        );
    }
    row(
        "events sent / removed by the sweeper",
        format!("{sent} / {removed}"),
        "",
    );
    Ok(())
}
