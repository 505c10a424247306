//! scf-bench: measures scf-console against the performance targets of its design, on this
//! machine, and prints a table. Run it in release mode:
//!
//!     cargo run --release --bin scf-bench
//!
//! Each measurement starts its own server on a fresh SQLite file in the temporary folder.

use scf_console::app::{AppState, serve};
use scf_console::clock::Clock;
use scf_console::engine::{EngineConfig, interpreters};
use scf_console::scf::tc3::{SignInput, sha256_hex, sign, utc_date};
use scf_console::store::FunctionKey;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET_ID: &str = "AKIDbenchmark000000000000000000000";
const SECRET_KEY: &str = "benchmark-secret-key-0123456789ab";
const REGION: &str = "ap-guangzhou";

struct Options {
    seconds: u64,
    rate: u64,
    connections: usize,
    warm_events: usize,
    cold_events: usize,
}

fn options() -> Options {
    let mut o = Options {
        seconds: 5,
        rate: 5000,
        connections: 64,
        warm_events: 20_000,
        cold_events: 300,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        match (args[i].as_str(), value) {
            ("--seconds", Some(v)) => o.seconds = v,
            ("--rate", Some(v)) => o.rate = v,
            ("--connections", Some(v)) => o.connections = v as usize,
            ("--warm-events", Some(v)) => o.warm_events = v as usize,
            ("--cold-events", Some(v)) => o.cold_events = v as usize,
            _ => {
                eprintln!(
                    "usage: scf-bench [--seconds N] [--rate PER_SECOND] [--connections N] [--warm-events N] [--cold-events N]"
                );
                std::process::exit(2);
            }
        }
        i += 2;
    }
    o
}

/// A server on a fresh data folder, serving on a free port.
struct Bench {
    state: AppState,
    addr: String,
    dir: PathBuf,
}

impl Bench {
    async fn start(engine: EngineConfig) -> anyhow::Result<Bench> {
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
            Duration::from_secs(72 * 3600),
            engine,
        )
        .await?;
        scf_console::keys::put_configured(&state, SECRET_ID, SECRET_KEY).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        tokio::spawn(serve(listener, state.clone(), std::future::pending()));
        Ok(Bench { state, addr, dir })
    }

    async fn function(
        &self,
        name: &str,
        code: &str,
    ) -> anyhow::Result<scf_console::store::Function> {
        use base64::Engine as _;
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            w.start_file("index.py", zip::write::SimpleFileOptions::default())?;
            w.write_all(code.as_bytes())?;
            w.finish()?;
        }
        let zip = base64::engine::general_purpose::STANDARD.encode(buf.into_inner());
        let params = serde_json::json!({
            "FunctionName": name, "Runtime": "Python3.10", "AsyncRunEnable": "TRUE",
            "TraceEnable": "TRUE", "Code": {"ZipFile": zip},
        });
        let mut conn = Client::connect(&self.addr).await?;
        let (_, body) = conn
            .call(&self.addr, "CreateFunction", &params.to_string())
            .await?;
        anyhow::ensure!(!body.contains("\"Error\""), "CreateFunction failed: {body}");
        // The benchmark drives far more than the default QPS limit.
        let key = FunctionKey {
            region: REGION.into(),
            namespace: "default".into(),
            name: name.into(),
        };
        let f = self.state.store.get_function(&key).await?.expect("created");
        let mut config = scf_console::domain::function::validate_config(&f.config_draft(), true)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        config.qps_limit = scf_console::domain::function::QPS_LIMIT_MAX;
        Ok(self
            .state
            .store
            .update_function_config(&key, &config, Clock::System.now_millis())
            .await?)
    }

    async fn stop(self) {
        self.state.engine.shutdown().await;
        self.state.store.close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A keep-alive HTTP/1.1 connection that sends signed SCF API calls.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: &str) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            buf: Vec::with_capacity(4096),
        })
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

/// Sends signed async Invoke calls: as fast as possible (`rate` None), or on a fixed schedule
/// with latency measured from when each call was due (so queueing is not hidden).
async fn accept_load(
    addr: &str,
    connections: usize,
    seconds: u64,
    rate: Option<u64>,
) -> anyhow::Result<(u64, f64, Latencies, u64)> {
    let start = Instant::now() + Duration::from_millis(50);
    let deadline = start + Duration::from_secs(seconds);
    let body = serde_json::json!({"FunctionName": "noop", "InvocationType": "Event", "ClientContext": "{\"n\":1}"}).to_string();
    let mut tasks = Vec::new();
    for k in 0..connections {
        let addr = addr.to_string();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&addr).await?;
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut i: u64 = 0;
            loop {
                let due = match rate {
                    Some(r) => {
                        start
                            + Duration::from_secs_f64(
                                (i * connections as u64 + k as u64) as f64 / r as f64,
                            )
                    }
                    None => Instant::now().max(start),
                };
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let (status, text) = client.call(&addr, "Invoke", &body).await?;
                latencies.push(due.elapsed().as_micros() as u64);
                if status != 200 || !text.contains("FunctionRequestId") {
                    errors += 1;
                }
                i += 1;
            }
            Ok::<_, anyhow::Error>((latencies, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await??;
        all.extend(l);
        errors += e;
    }
    let elapsed = (Instant::now() - start).as_secs_f64();
    Ok((
        all.len() as u64,
        all.len() as f64 / elapsed,
        Latencies(all),
        errors,
    ))
}

async fn wait_ended(state: &AppState, target: u64) -> Duration {
    let started = Instant::now();
    while state.engine.stats.ended() < target {
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
    println!("| {what:<58} | {measured:>22} | {target:<26} |");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!(
        "scf-bench: {cpus} cores; each line starts a fresh server (this takes about a minute)"
    );

    // 1. Accepts: the engine is paused (no workers), so only the accept path is measured.
    let paused = EngineConfig {
        workers: 0,
        ..EngineConfig::default()
    };
    let bench = Bench::start(paused.clone()).await?;
    bench
        .function(
            "noop",
            "def main_handler(event, context):\n    return None\n",
        )
        .await?;
    let (n_sat, sat_rate, mut sat_lat, sat_err) =
        accept_load(&bench.addr, o.connections, o.seconds, None).await?;
    bench.stop().await;
    let bench = Bench::start(paused).await?;
    bench
        .function(
            "noop",
            "def main_handler(event, context):\n    return None\n",
        )
        .await?;
    let (n_fixed, fixed_rate, mut fixed_lat, fixed_err) =
        accept_load(&bench.addr, o.connections, o.seconds, Some(o.rate)).await?;
    bench.stop().await;

    // 2. Warm end to end: no-op Python events on warm instances.
    let bench = Bench::start(EngineConfig::default()).await?;
    let f = bench
        .function(
            "noop",
            "def main_handler(event, context):\n    return None\n",
        )
        .await?;
    let warmup = 200;
    for _ in 0..warmup {
        bench
            .state
            .engine
            .invoke_async(&f, "{}".into(), "API")
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    wait_ended(&bench.state, warmup).await;
    let started = Instant::now();
    let submit = {
        let engine = bench.state.engine.clone();
        let f = f.clone();
        let n = o.warm_events;
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for chunk in 0..32 {
                let engine = engine.clone();
                let f = f.clone();
                tasks.push(tokio::spawn(async move {
                    for _ in (chunk..n).step_by(32) {
                        let _ = engine.invoke_async(&f, "{}".into(), "API").await;
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    };
    wait_ended(&bench.state, warmup + o.warm_events as u64).await;
    submit.await?;
    let warm_rate = o.warm_events as f64 / started.elapsed().as_secs_f64();
    let warm_cold_starts = bench.state.engine.stats.cold_starts.load(Ordering::Relaxed);
    bench.stop().await;

    // 3. Cold start every event, beside the bare spawn rate of the same interpreter.
    let cold_config = EngineConfig {
        reuse_instances: false,
        ..EngineConfig::default()
    };
    let concurrency = cold_config.workers;
    let spawn = spawn_rate(o.cold_events, concurrency).await?;
    let bench = Bench::start(cold_config).await?;
    let f = bench
        .function(
            "noop",
            "def main_handler(event, context):\n    return None\n",
        )
        .await?;
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

    println!();
    println!(
        "| {:<58} | {:>22} | {:<26} |",
        "measurement", "measured", "target"
    );
    println!("|{}|{}|{}|", "-".repeat(60), "-".repeat(24), "-".repeat(28));
    row(
        &format!(
            "async accepts/s at saturation ({} connections, {n_sat} calls)",
            o.connections
        ),
        format!("{sat_rate:.0}/s"),
        ">= 10000/s",
    );
    row(
        "  p50 / p99 latency at saturation",
        format!(
            "{:.2} / {:.2} ms",
            sat_lat.percentile(0.5),
            sat_lat.percentile(0.99)
        ),
        "",
    );
    row(
        &format!(
            "async accepts at a fixed {}/s ({n_fixed} calls, achieved)",
            o.rate
        ),
        format!("{fixed_rate:.0}/s"),
        "",
    );
    row(
        "  p50 / p99 latency at the fixed rate",
        format!(
            "{:.2} / {:.2} ms",
            fixed_lat.percentile(0.5),
            fixed_lat.percentile(0.99)
        ),
        "p99 < 10 ms at 5000/s",
    );
    row(
        "  refused or failed calls",
        format!("{}", sat_err + fixed_err),
        "0",
    );
    row(
        &format!(
            "warm no-op Python events/s end to end ({} events)",
            o.warm_events
        ),
        format!("{warm_rate:.0}/s"),
        ">= 3000/s",
    );
    row(
        "  cold starts during the warm run",
        format!("{warm_cold_starts}"),
        "",
    );
    row(
        &format!("bare `python3 -c pass` spawns/s ({concurrency} at a time)"),
        format!("{spawn:.0}/s"),
        "",
    );
    row(
        &format!("cold-start events/s ({} events, no reuse)", o.cold_events),
        format!("{cold_rate:.0}/s ({:.0}%)", cold_rate / spawn * 100.0),
        ">= 90% of bare spawns",
    );
    Ok(())
}
