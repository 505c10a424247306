//! The headline figures, measured from outside: the real `scf-console` binary (the one built
//! beside this benchmark) runs as a child process on a fresh data folder, and this process
//! drives it over loopback as any client would. Each figure is printed beside the limit it is a
//! ratio of, measured in the same run on the same machine: figures alone do not travel between
//! machines, ratios do.

use super::{ACCEPTED, ADMIN_PASSWORD, Client, Latencies, NOOP, REGION, SECRET_ID, SECRET_KEY};
use anyhow::Context;
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A handler that holds its worker: the engine stays busy with sleeping events, and what is
/// measured is accepting the rest.
const SLEEPER: &str = "import time\ndef main_handler(event, context):\n    time.sleep(3600)\n";
/// The functions a load is spread over: each stays below its QPS limit (1000/s by default)
/// up to 16,000 calls/s in all.
const FUNCTIONS: usize = 16;

/// The real server, started as its own process.
pub struct Server {
    child: tokio::process::Child,
    pub addr: String,
    /// Its metrics listener.
    metrics: String,
    dir: PathBuf,
    /// The PostgreSQL database it runs on (`None`: the SQLite file in `dir`).
    database: Option<String>,
}

impl Server {
    /// Starts `scf-console` with `workers` events at once (all of them open to one function).
    pub async fn start(workers: usize) -> anyhow::Result<Server> {
        let dir = std::env::temp_dir().join(format!("scf-bench-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        Self::start_in(dir, workers).await
    }

    /// The CPU time the server's process has used so far (all its threads, user and system),
    /// from `/proc`: per call, it compares two builds even when the machine's speed moves
    /// between runs, which throughput alone does not.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let pid = self.child.id().context("the server has exited")?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name, which is in parentheses and may hold spaces: the
        // state is field 3, utime and stime fields 14 and 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .context("a /proc stat line")?
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
            + fields.get(12).context("stime")?.parse::<u64>()?;
        // SAFETY: sysconf reads a constant of the system.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Ok(Duration::from_micros(ticks * 1_000_000 / per_second))
    }

    /// Starts `scf-console` on the data folder `dir` (removed when the server stops).
    pub async fn start_in(dir: PathBuf, workers: usize) -> anyhow::Result<Server> {
        Self::start_on(dir, workers, None).await
    }

    /// Starts `scf-console` on the data folder `dir`, with its store on the PostgreSQL database
    /// `database` when one is given.
    pub async fn start_on(
        dir: PathBuf,
        workers: usize,
        database: Option<String>,
    ) -> anyhow::Result<Server> {
        let exe = std::env::current_exe()?.with_file_name("scf-console");
        anyhow::ensure!(
            exe.exists(),
            "{} is missing: build it first (`cargo build --release`); scf-bench runs it as a process of its own",
            exe.display()
        );
        // Free ports, found by binding and letting go, so that no log line has to be read.
        let free_port = || -> anyhow::Result<u16> {
            Ok(std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port())
        };
        let (port, metrics_port) = (free_port()?, free_port()?);
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut command = tokio::process::Command::new(&exe);
        if let Some(url) = &database {
            command.env("DATABASE_URL", url);
        }
        let child = command
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&dir)
            // Scraped as Prometheus would, so that the figures are the cost with metrics on.
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .env("SCF_SECRET_ID", SECRET_ID)
            .env("SCF_SECRET_KEY", SECRET_KEY)
            .env("SCF_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("SCF_REGIONS", REGION)
            .env("SCF_WORKERS", workers.to_string())
            .env("SCF_FUNCTION_CONCURRENCY", workers.to_string())
            // As an operator runs it: warnings and errors only.
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let server = Server {
            child,
            addr: format!("127.0.0.1:{port}"),
            metrics: format!("127.0.0.1:{metrics_port}"),
            dir,
            database,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Client::connect(&server.addr).await.is_err() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "scf-console did not start; see {}",
                server.dir.join("server.log").display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(server)
    }

    /// One series of the server's `/metrics`, as `name{labels}` is written there.
    pub async fn metric(&self, series: &str) -> anyhow::Result<f64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&self.metrics).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        answer
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .with_context(|| format!("{series} is not in the server's metrics"))?
            .trim()
            .parse()
            .context("a metric's value")
    }

    /// An async Python function of the default namespace with `code` as its handler's file.
    pub async fn function(&self, name: &str, code: &str, trace: bool) -> anyhow::Result<()> {
        let mut client = Client::connect(&self.addr).await?;
        api(
            &mut client,
            &self.addr,
            "CreateFunction",
            json!({
                "FunctionName": name,
                "Handler": "index.main_handler",
                "AsyncRunEnable": "TRUE",
                "TraceEnable": if trace { "TRUE" } else { "FALSE" },
                "Timeout": 3600,
                "Code": {"ZipFile": zip_base64("index.py", code)?},
            }),
        )
        .await?;
        Ok(())
    }

    /// Waits until the server has no queued or running event left (see [`Self::until`]).
    /// Finished events that status trace does not record are deleted as they end, so this
    /// works with trace on and off alike.
    async fn until_drained(&self) -> anyhow::Result<()> {
        // On the partial indexes of queued and running events: a count over all events would
        // read the finished ones too, and cost more the more trace keeps.
        self.until(
            "no event to be queued or running",
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM events INDEXED BY events_queue WHERE status = 0) \
                 OR EXISTS (SELECT 1 FROM events INDEXED BY events_running WHERE status = 1) \
                 THEN 1 ELSE 0 END",
            Duration::from_secs(600),
            |busy| busy == 0,
        )
        .await
    }

    /// Waits until `sql`, a count, satisfies `done`, watching the server's store from this
    /// process (read-only, as another SQLite reader): polling through its API would put load
    /// on the server being measured.
    async fn until(
        &self,
        what: &str,
        sql: &'static str,
        within: Duration,
        done: impl Fn(i64) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let count = self.count(sql).await?;
            if done(count) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "waited {within:?} for {what}; the count stands at {count}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A count from the server's store, read from this process. On PostgreSQL the SQLite
    /// index hints are left out.
    async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        let Some(url) = &self.database else {
            let pool = self.read_only().await?;
            let count = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
                .fetch_one(&pool)
                .await?;
            pool.close().await;
            return Ok(count);
        };
        let mut words = sql.split_whitespace().peekable();
        let mut portable = Vec::new();
        while let Some(word) = words.next() {
            if word == "INDEXED" && words.peek() == Some(&"BY") {
                words.next();
                words.next();
                continue;
            }
            portable.push(word);
        }
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(url).await?;
        // As a BIGINT, whatever integer type the count has.
        let sql = format!("SELECT ({})::BIGINT", portable.join(" "));
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        Ok(count)
    }

    /// The no-op functions the load is spread over, created with status trace on or off, and
    /// a first round of events for them, so that their instances start before any clock runs.
    async fn warm_noops(
        &self,
        connections: usize,
        workers: usize,
        trace: bool,
    ) -> anyhow::Result<Vec<String>> {
        let names: Vec<String> = (0..FUNCTIONS).map(|i| format!("noop-{i}")).collect();
        for name in &names {
            self.function(name, NOOP, trace).await?;
        }
        submit(&self.addr, connections, workers * FUNCTIONS, &names).await?;
        Ok(names)
    }

    /// Events of the benchmark's functions that ended (status trace keeps them).
    const ENDED: &'static str = "SELECT count(*) FROM events e JOIN functions f ON f.id = e.function_id \
         WHERE f.name LIKE 'noop-%' AND e.status >= 2";

    async fn ended(&self) -> anyhow::Result<u64> {
        Ok(self.count(Self::ENDED).await? as u64)
    }

    /// Waits until `count` events run.
    async fn until_running(&self, count: usize) -> anyhow::Result<()> {
        self.until(
            &format!("{count} events to run"),
            "SELECT count(*) FROM events INDEXED BY events_running WHERE status = 1",
            Duration::from_secs(60),
            |running| running as usize >= count,
        )
        .await
    }

    /// The server's store, opened read-only from this process.
    async fn read_only(&self) -> anyhow::Result<sqlx::SqlitePool> {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.dir.join("scf-console.db"))
            .read_only(true);
        Ok(sqlx::SqlitePool::connect_with(options).await?)
    }

    /// SIGTERM, as an operator stops it, then waits for it to go.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A run that stops early (an error) leaves no data folder behind; the child goes with its
/// handle (`kill_on_drop`), its instances with it.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One signed API call that must succeed; its `Response`.
async fn api(client: &mut Client, addr: &str, action: &str, body: Value) -> anyhow::Result<Value> {
    let (_, text) = client.call(addr, action, &body.to_string()).await?;
    let answer: Value = serde_json::from_str(&text).with_context(|| format!("{action}: {text}"))?;
    if let Some(error) = answer["Response"].get("Error") {
        anyhow::bail!("{action} was refused: {error}");
    }
    Ok(answer["Response"].clone())
}

fn zip_base64(file: &str, content: &str) -> anyhow::Result<String> {
    use base64::Engine;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        zip.start_file(file, zip::write::SimpleFileOptions::default())?;
        zip.write_all(content.as_bytes())?;
        zip.finish()?;
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(buf.into_inner()))
}

pub fn invoke_body(function: &str, invocation_type: &str) -> String {
    json!({"FunctionName": function, "InvocationType": invocation_type, "ClientContext": "{\"n\":1}"})
        .to_string()
}

/// What a load of signed calls achieved.
pub struct Load {
    pub calls: u64,
    pub per_second: f64,
    pub latencies: Latencies,
    /// Calls answered otherwise than expected.
    pub unexpected: u64,
}

/// `load` against `server`, with the server's CPU time per call in µs.
async fn load_timed(
    server: &Server,
    connections: usize,
    seconds: u64,
    rate: Option<f64>,
    bodies: &[String],
    expect: &'static str,
) -> anyhow::Result<(Load, f64)> {
    let before = server.cpu_time()?;
    let done = load(&server.addr, connections, seconds, rate, bodies, expect).await?;
    let used = server.cpu_time()? - before;
    let per_call = used.as_secs_f64() * 1e6 / done.calls.max(1) as f64;
    Ok((done, per_call))
}

/// Sends signed `Invoke` calls over `connections` keep-alive connections for `seconds`: as fast
/// as each connection is answered (`rate` None), or on a fixed schedule with latency measured
/// from when each call was due, so that queueing is not hidden. Connection k sends `bodies[k %
/// n]`; an answer is as expected when it contains `expect`.
pub async fn load(
    addr: &str,
    connections: usize,
    seconds: u64,
    rate: Option<f64>,
    bodies: &[String],
    expect: &'static str,
) -> anyhow::Result<Load> {
    let start = Instant::now() + Duration::from_millis(50);
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for k in 0..connections {
        let addr = addr.to_string();
        let body = bodies[k % bodies.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&addr).await?;
            let mut latencies = Vec::new();
            let mut unexpected = 0u64;
            let mut i: u64 = 0;
            loop {
                let due = match rate {
                    Some(r) => {
                        start
                            + Duration::from_secs_f64(
                                (i * connections as u64 + k as u64) as f64 / r,
                            )
                    }
                    None => Instant::now().max(start),
                };
                if due >= deadline {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                let (status, text) = client.call(&addr, "Invoke", &body).await?;
                // Only answers as expected count (a refusal is no accept).
                if status == 200 && text.contains(expect) {
                    latencies.push(due.elapsed().as_micros() as u64);
                } else {
                    unexpected += 1;
                }
                i += 1;
            }
            Ok::<_, anyhow::Error>((latencies, unexpected))
        }));
    }
    let mut all = Vec::new();
    let mut unexpected = 0;
    for t in tasks {
        let (l, u) = t.await??;
        all.extend(l);
        unexpected += u;
    }
    let elapsed = (Instant::now() - start).as_secs_f64();
    Ok(Load {
        calls: all.len() as u64,
        per_second: all.len() as f64 / elapsed,
        latencies: Latencies(all),
        unexpected,
    })
}

/// Sends `count` async invocations over `connections` connections, as fast as they are
/// accepted; connection k invokes `functions[k % n]`.
async fn submit(
    addr: &str,
    connections: usize,
    count: usize,
    functions: &[String],
) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for k in 0..connections {
        let addr = addr.to_string();
        let body = invoke_body(&functions[k % functions.len()], "Event");
        let mine = (k..count).step_by(connections).count();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(&addr).await?;
            for _ in 0..mine {
                let (_, text) = client.call(&addr, "Invoke", &body).await?;
                anyhow::ensure!(text.contains(ACCEPTED), "refused: {text}");
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Round trips per second to `workers` warm `python3` processes over pipes, one JSON line out
/// and one back as a handler call would be, with the interpreter the functions run on: what
/// the engine could do at most with those workers.
async fn pipe_round_trips(workers: usize, seconds: u64) -> anyhow::Result<f64> {
    const ECHO: &str = "import sys, json\n\
                        for line in sys.stdin:\n    \
                        event = json.loads(line)\n    \
                        sys.stdout.write(json.dumps({'result': None, 'event': event}) + '\\n')\n    \
                        sys.stdout.flush()\n";
    // The clock starts once every process has answered a first line, so that starting them is
    // not counted.
    let ready = std::sync::Arc::new(tokio::sync::Barrier::new(workers));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let ready = ready.clone();
        tasks.push(tokio::spawn(async move {
            let mut child = tokio::process::Command::new("/usr/bin/python3")
                .args(["-c", ECHO])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let mut stdin = child.stdin.take().context("stdin")?;
            let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
            let mut line = String::new();
            stdin.write_all(b"{\"n\": 1}\n").await?;
            stdout.read_line(&mut line).await?;
            ready.wait().await;
            let started = Instant::now();
            let deadline = started + Duration::from_secs(seconds);
            let mut trips = 0u64;
            while Instant::now() < deadline {
                stdin.write_all(b"{\"n\": 1}\n").await?;
                line.clear();
                stdout.read_line(&mut line).await?;
                trips += 1;
            }
            let rate = trips as f64 / started.elapsed().as_secs_f64();
            drop(stdin);
            let _ = child.wait().await;
            Ok::<_, anyhow::Error>(rate)
        }));
    }
    let mut rate = 0.0;
    for t in tasks {
        rate += t.await??;
    }
    Ok(rate)
}

fn ratio(measured: f64, limit: f64) -> String {
    let percent = measured / limit * 100.0;
    if percent < 10.0 {
        format!("{percent:.1}%")
    } else {
        format!("{percent:.0}%")
    }
}

/// Durable accepts against the same HTTP and TC3 path refused before it writes, both at
/// saturation; then accepts at half the saturation rate, with their latency.
pub async fn accepts(connections: usize, seconds: u64, workers: usize) -> anyhow::Result<()> {
    let names: Vec<String> = (0..FUNCTIONS).map(|i| format!("sleeper-{i}")).collect();
    let start = || async {
        let server = Server::start(workers).await?;
        for name in &names {
            server.function(name, SLEEPER, true).await?;
        }
        Ok::<_, anyhow::Error>(server)
    };
    let events: Vec<String> = names.iter().map(|n| invoke_body(n, "Event")).collect();
    // The same call with an InvocationType no function has: read, verified and refused after
    // the function is looked up, before admission and the write.
    let refused: Vec<String> = names.iter().map(|n| invoke_body(n, "Never")).collect();

    let server = start().await?;
    let (limit, limit_cpu) = load_timed(
        &server,
        connections,
        seconds,
        None,
        &refused,
        "InvalidParameterValue",
    )
    .await?;
    server.stop().await;
    let server = start().await?;
    let (mut saturated, saturated_cpu) =
        load_timed(&server, connections, seconds, None, &events, ACCEPTED).await?;
    // The group commit as the server itself saw it, from its metrics.
    let batch = server.metric("scf_store_commit_batch_size_sum").await?
        / server.metric("scf_store_commit_batch_size_count").await?;
    let commit_ms = 1000.0 * server.metric("scf_store_commit_seconds_sum").await?
        / server.metric("scf_store_commit_seconds_count").await?;
    server.stop().await;
    let half = saturated.per_second / 2.0;
    let server = start().await?;
    let mut paced = load(
        &server.addr,
        connections,
        seconds,
        Some(half),
        &events,
        ACCEPTED,
    )
    .await?;
    server.stop().await;

    header();
    row3(
        "the same call refused before the store (no write)",
        format!("{:.0}/s", limit.per_second),
        "limit".into(),
        "",
    );
    row3(
        &format!(
            "durable async accepts at saturation ({connections} connections, {} calls)",
            saturated.calls
        ),
        format!("{:.0}/s", saturated.per_second),
        ratio(saturated.per_second, limit.per_second),
        ">= 70% of the limit",
    );
    row3(
        "  server CPU per call: refused / durable accept (their ratio)",
        format!("{limit_cpu:.0} / {saturated_cpu:.0} us"),
        ratio(limit_cpu, saturated_cpu),
        "",
    );
    row3(
        "  group commit, from the server's /metrics: writes / ms per commit",
        format!("{batch:.1} / {commit_ms:.2} ms"),
        String::new(),
        "",
    );
    row3(
        "  p50 / p99 at saturation",
        format!(
            "{:.1} / {:.1} ms",
            saturated.latencies.percentile(0.5),
            saturated.latencies.percentile(0.99)
        ),
        String::new(),
        "",
    );
    row3(
        &format!("accepts at half that rate ({half:.0}/s), achieved"),
        format!("{:.0}/s", paced.per_second),
        String::new(),
        "",
    );
    row3(
        "  p50 / p99 at half the saturation rate",
        format!(
            "{:.1} / {:.1} ms",
            paced.latencies.percentile(0.5),
            paced.latencies.percentile(0.99)
        ),
        String::new(),
        "p99 < 10 ms",
    );
    row3(
        "  against Celery 5 + Redis (560 accepts/s, measured once)",
        format!("{:.1}x", saturated.per_second / 560.0),
        String::new(),
        ">= 15x",
    );
    row3(
        "  calls answered otherwise than expected",
        format!(
            "{}",
            limit.unexpected + saturated.unexpected + paced.unexpected
        ),
        String::new(),
        "0",
    );
    Ok(())
}

/// Warm no-op events per second end to end: accepted over HTTP, run, ended.
async fn warm_rate(
    connections: usize,
    workers: usize,
    events: usize,
    trace: bool,
) -> anyhow::Result<f64> {
    let server = Server::start(workers).await?;
    let names = server.warm_noops(connections, workers, trace).await?;
    server.until_drained().await?;
    let started = Instant::now();
    submit(&server.addr, connections, events, &names).await?;
    server.until_drained().await?;
    let rate = events as f64 / started.elapsed().as_secs_f64();
    server.stop().await;
    Ok(rate)
}

/// Warm no-op events per second run from a backlog: the events are accepted while every
/// worker is held by a sleeping event of another function, then the sleepers are terminated and
/// the clock runs until the queue is empty. This is the engine alone (claim, run, end), with no
/// accept competing for the two cores, which is what the pipe limit is a limit of.
async fn drain_rate(
    connections: usize,
    workers: usize,
    events: usize,
    trace: bool,
) -> anyhow::Result<f64> {
    let server = Server::start(workers).await?;
    let names = server.warm_noops(connections, workers, trace).await?;
    server.until_drained().await?;
    // Every worker held.
    server.function("sleeper", SLEEPER, false).await?;
    let mut client = Client::connect(&server.addr).await?;
    let mut sleepers = Vec::new();
    for _ in 0..workers {
        let answer = api(
            &mut client,
            &server.addr,
            "Invoke",
            json!({"FunctionName": "sleeper", "InvocationType": "Event"}),
        )
        .await?;
        let id = answer["Result"][ACCEPTED]
            .as_str()
            .context("an accepted Invoke answers its RequestId")?;
        sleepers.push(id.to_string());
    }
    server.until_running(workers).await?;
    submit(&server.addr, connections, events, &names).await?;
    // A fresh connection: the server closes one left idle while the backlog was submitted.
    let mut client = Client::connect(&server.addr).await?;
    let started = Instant::now();
    for id in &sleepers {
        api(
            &mut client,
            &server.addr,
            "TerminateAsyncEvent",
            json!({"FunctionName": "sleeper", "InvokeRequestId": id}),
        )
        .await?;
    }
    server.until_drained().await?;
    let rate = events as f64 / started.elapsed().as_secs_f64();
    server.stop().await;
    Ok(rate)
}

/// Warm no-op events end to end against round trips to the same number of warm interpreters
/// over pipes, with status trace on and off.
pub async fn warm(connections: usize, workers: usize, events: usize) -> anyhow::Result<()> {
    let pipes = pipe_round_trips(workers, 5).await?;
    let drained = drain_rate(connections, workers, events, true).await?;
    let drained_untraced = drain_rate(connections, workers, events, false).await?;
    let rate = warm_rate(connections, workers, events, true).await?;
    let untraced = warm_rate(connections, workers, events, false).await?;

    header();
    row3(
        &format!("round trips to {workers} warm python3 processes over pipes"),
        format!("{pipes:.0}/s"),
        "limit".into(),
        "",
    );
    row3(
        &format!(
            "warm no-op Python events run from a backlog ({events} over {FUNCTIONS} functions, {workers} workers)"
        ),
        format!("{drained:.0}/s"),
        ratio(drained, pipes),
        ">= 25% of the limit",
    );
    row3(
        "the same with status trace off",
        format!("{drained_untraced:.0}/s"),
        ratio(drained_untraced, pipes),
        "",
    );
    row3(
        "  status trace on against off",
        format!("{:.0}%", drained / drained_untraced * 100.0),
        String::new(),
        ">= 85% (costs <= 15%)",
    );
    row3(
        "warm no-op events end to end (accepted over HTTP while they run)",
        format!("{rate:.0}/s"),
        ratio(rate, pipes),
        "",
    );
    row3(
        "the same with status trace off",
        format!("{untraced:.0}/s"),
        ratio(untraced, pipes),
        "",
    );
    row3(
        "  end to end against Celery 5 + Redis (270/s, measured once)",
        format!("{:.1}x", rate / 270.0),
        String::new(),
        ">= 15x",
    );
    Ok(())
}

fn header() {
    println!();
    println!(
        "| {:<78} | {:>16} | {:>8} | {:<22} |",
        "measured from outside the server's process", "measured", "ratio", "target"
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(80),
        "-".repeat(18),
        "-".repeat(10),
        "-".repeat(24)
    );
}

fn row3(what: &str, measured: String, ratio: String, target: &str) {
    println!("| {what:<78} | {measured:>16} | {ratio:>8} | {target:<22} |");
}

/// Event Management's reads, p50 and p99 in ms.
pub struct Reads {
    pub page: (f64, f64),
    pub rows: (f64, f64),
    pub api: (f64, f64),
    pub stats: (f64, f64),
}

/// Times Event Management's reads of `function` (`page` is its events page) on the real
/// server, `n` of each, one after the other as a user clicks.
pub async fn time_reads(
    addr: &str,
    cookie: &str,
    page: &str,
    list_body: &str,
    n: usize,
) -> anyhow::Result<Reads> {
    use super::{time_api, time_get};
    // Warm the caches once, as a user's first look would.
    time_get(addr, cookie, page, 3, false).await?;
    Ok(Reads {
        page: time_get(addr, cookie, page, n, false).await?,
        rows: time_get(
            addr,
            cookie,
            &format!("{page}/-/rows?status=failed&range=3d"),
            n,
            true,
        )
        .await?,
        api: time_api(addr, "ListAsyncEvents", list_body, n).await?,
        stats: time_get(addr, cookie, &format!("{page}/-/stats?range=3d"), n, true).await?,
    })
}

/// Event Management's reads on the real server started on `dir` (a store seeded beforehand),
/// while it accepts invocations as fast as it can and its engine runs them at its saturation
/// rate: the worst moment for a user to look. Answers the reads, and the accepts and ends per
/// second meanwhile.
pub async fn reads_under_load(
    dir: PathBuf,
    connections: usize,
    workers: usize,
    page: &str,
    list_body: &str,
    n: usize,
) -> anyhow::Result<(Reads, f64, f64)> {
    let server = Server::start_in(dir, workers).await?;
    let names = server.warm_noops(connections, workers, true).await?;
    // The seeded store keeps events that look running for good: this waits for the first
    // events to end rather than for an idle queue.
    let first = (workers * FUNCTIONS) as i64;
    server
        .until(
            "the first events to end",
            Server::ENDED,
            Duration::from_secs(120),
            |ended| ended >= first,
        )
        .await?;
    let cookie = Client::login(&server.addr).await?;
    let bodies: Vec<String> = names.iter().map(|f| invoke_body(f, "Event")).collect();
    let ended_before = server.ended().await?;
    // Longer than the reads take on a saturated two-core machine (about 40 s), so that they
    // all run under the load; the rest of it only costs waiting.
    let seconds = 120;
    let addr = server.addr.clone();
    let load =
        tokio::spawn(
            async move { load(&addr, connections, seconds, None, &bodies, ACCEPTED).await },
        );
    // Once the backlog has built up, the engine runs at its saturation rate.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let reads = time_reads(&server.addr, &cookie, page, list_body, n).await?;
    let ended = (server.ended().await? - ended_before) as f64;
    let engine_rate = ended / (started.elapsed().as_secs_f64() + 2.0);
    let finished_early = load.is_finished();
    let accepts = load.await??;
    anyhow::ensure!(
        !finished_early,
        "the load ended before the reads did: raise its duration"
    );
    anyhow::ensure!(
        accepts.unexpected == 0,
        "{} invocations were refused",
        accepts.unexpected
    );
    server.stop().await;
    Ok((reads, accepts.per_second, engine_rate))
}

/// Servers on one store: one on a SQLite file (`nodes` 0), or `nodes` on a schema of their own
/// in the PostgreSQL database `postgres`.
struct Cluster {
    servers: Vec<Server>,
    /// The database and the schema made for this cluster, dropped when it stops.
    schema: Option<(String, String)>,
}

impl Cluster {
    async fn start(postgres: &str, nodes: usize, workers: usize) -> anyhow::Result<Cluster> {
        if nodes == 0 {
            return Ok(Cluster {
                servers: vec![Server::start(workers).await?],
                schema: None,
            });
        }
        use sqlx::Connection;
        let name = format!("scf_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(postgres)
            .await
            .with_context(|| format!("connecting to {postgres} (--postgres)"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let separator = if postgres.contains('?') { '&' } else { '?' };
        let url = format!("{postgres}{separator}options=-c%20search_path%3D{name}");
        let mut servers = Vec::new();
        for _ in 0..nodes {
            let dir = std::env::temp_dir().join(format!("scf-bench-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir)?;
            servers.push(Server::start_on(dir, workers, Some(url.clone())).await?);
        }
        Ok(Cluster {
            servers,
            schema: Some((postgres.to_string(), name)),
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        for server in self.servers {
            server.stop().await;
        }
        if let Some((postgres, name)) = self.schema {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&postgres).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE")))
                .execute(&mut conn)
                .await?;
            conn.close().await?;
        }
        Ok(())
    }

    /// Durable accepts per second at saturation, the load spread evenly over the nodes.
    async fn accepts(&self, connections: usize, seconds: u64) -> anyhow::Result<f64> {
        let names: Vec<String> = (0..FUNCTIONS).map(|i| format!("sleeper-{i}")).collect();
        for name in &names {
            self.servers[0].function(name, SLEEPER, true).await?;
        }
        let events: Vec<String> = names.iter().map(|n| invoke_body(n, "Event")).collect();
        let per_node = connections.div_ceil(self.servers.len());
        let loads = self
            .servers
            .iter()
            .map(|s| load(&s.addr, per_node, seconds, None, &events, ACCEPTED));
        let mut rate = 0.0;
        for done in futures_util::future::join_all(loads).await {
            let done = done?;
            anyhow::ensure!(
                done.unexpected == 0,
                "{} calls were refused",
                done.unexpected
            );
            rate += done.per_second;
        }
        Ok(rate)
    }

    /// Warm no-op events per second end to end, accepted evenly on the nodes, run wherever.
    async fn warm(&self, connections: usize, workers: usize, events: usize) -> anyhow::Result<f64> {
        let first = &self.servers[0];
        let names = first.warm_noops(connections, workers, true).await?;
        // Every node's instances warm too.
        for server in &self.servers[1..] {
            submit(&server.addr, connections, workers * FUNCTIONS, &names).await?;
        }
        first.until_drained().await?;
        let per_node = events / self.servers.len();
        let started = Instant::now();
        let sent = self.servers.iter().map(|s| {
            submit(
                &s.addr,
                connections.div_ceil(self.servers.len()),
                per_node,
                &names,
            )
        });
        for done in futures_util::future::join_all(sent).await {
            done?;
        }
        first.until_drained().await?;
        Ok((per_node * self.servers.len()) as f64 / started.elapsed().as_secs_f64())
    }
}

/// Event Management's reads on a node of PostgreSQL holding each of `sizes` events, seeded
/// straight into its schema (as many as the SQLite part seeds, the same mix of functions and
/// outcomes over the last three days) with the store's triggers keeping the rollups.
async fn pg_reads(
    postgres: &str,
    workers: usize,
    sizes: &[u64],
    page: &str,
    list_body: &str,
    n: usize,
) -> anyhow::Result<Vec<(u64, Reads)>> {
    let cluster = Cluster::start(postgres, 1, workers).await?;
    let server = &cluster.servers[0];
    for name in ["orders", "billing", "mailer", "reports"] {
        server.function(name, super::NOOP, true).await?;
    }
    let url = server.database.clone().context("a PostgreSQL node")?;
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM functions ORDER BY id")
        .fetch_all(&db)
        .await?;
    let cookie = super::Client::login(&server.addr).await?;
    let span: i64 = 72 * 3600 * 1000 - 60_000;
    let from = scf_console::clock::Clock::System.now_millis() - span;
    let mut seeded = 0u64;
    let mut measured = Vec::new();
    for &size in sizes.iter().filter(|&&n| n > 0) {
        while seeded < size {
            let upto = (seeded + 500_000).min(size);
            // The same functions, statuses and errors as the SQLite part's seed: half the
            // events for the first function; one in 100 failed, one in 250 aborted. Their run
            // times go to the duration rollups as the trigger of an event's end puts them.
            sqlx::query(
                "WITH seeded AS ( \
                  INSERT INTO events (request_id, function_id, invoke_type, status, status_code, \
                      traced, payload, error, error_head, enqueued_at, started_at, ended_at, run_after) \
                  SELECT 'seed-' || lpad(i::TEXT, 10, '0'), \
                      ($1::BIGINT[])[CASE WHEN i % 2 = 0 THEN 1 WHEN i % 6 = 1 THEN 2 \
                                          WHEN i % 6 = 3 THEN 3 ELSE 4 END], \
                      CASE WHEN i % 10 = 0 THEN 'CONSOLE' ELSE 'API' END, \
                      st, CASE st WHEN 2 THEN 200 WHEN 3 THEN 430 ELSE 499 END, TRUE, '{\"seed\":true}', \
                      CASE st WHEN 3 THEN 'SeededError: seed ' || (i % 5) END, \
                      CASE st WHEN 3 THEN 'SeededError: seed ' || (i % 5) END, \
                      at, at + 5, at + 5 + (i % 37) * 3, at \
                  FROM generate_series($2::BIGINT, $3::BIGINT - 1) AS i, \
                      LATERAL (SELECT $4::BIGINT + i * $5::BIGINT / $6::BIGINT AS at, \
                          CASE WHEN i % 100 = 7 THEN 3 WHEN i % 250 = 11 THEN 4 ELSE 2 END AS st) v \
                  RETURNING function_id, enqueued_at, started_at, ended_at) \
                 INSERT INTO event_durations (function_id, minute, bucket, count) \
                 SELECT function_id, enqueued_at / 60000, time_bucket(ended_at - started_at), COUNT(*) \
                 FROM seeded GROUP BY 1, 2, 3",
            )
            .bind(&ids)
            .bind(seeded as i64)
            .bind(upto as i64)
            .bind(from)
            .bind(span)
            // Spread over the whole window at each size, as the SQLite part seeds: the events
            // added for a larger size fill the same three days more densely.
            .bind(size as i64)
            .execute(&db)
            .await?;
            seeded = upto;
            eprint!("\rscf-bench: seeded {seeded} of {size} events on PostgreSQL");
        }
        eprintln!();
        // The rollups too: read right after seeding, before autovacuum would have looked.
        sqlx::query("VACUUM (ANALYZE) events, event_rollups, event_durations")
            .execute(&db)
            .await?;
        measured.push((
            size,
            time_reads(&server.addr, &cookie, page, list_body, n).await?,
        ));
    }
    db.close().await;
    cluster.stop().await?;
    Ok(measured)
}

/// Accepts and warm events with several nodes on one PostgreSQL database, beside one node on
/// SQLite, in one run: each figure is a ratio of the SQLite node's. Then Event Management's
/// reads on PostgreSQL at each of `stored` events.
#[allow(clippy::too_many_arguments)]
pub async fn nodes(
    postgres: &str,
    connections: usize,
    seconds: u64,
    workers: usize,
    events: usize,
    stored: &[u64],
    page: &str,
    list_body: &str,
) -> anyhow::Result<()> {
    let mut measured = Vec::new();
    for nodes in [0, 1, 2, 3] {
        let cluster = Cluster::start(postgres, nodes, workers).await?;
        let accepts = cluster.accepts(connections, seconds).await?;
        cluster.stop().await?;
        let cluster = Cluster::start(postgres, nodes, workers).await?;
        let warm = cluster.warm(connections, workers, events).await?;
        cluster.stop().await?;
        measured.push((nodes, accepts, warm));
    }
    let (_, sqlite_accepts, sqlite_warm) = measured[0];
    header();
    for (nodes, accepts, warm) in measured {
        let store = match nodes {
            0 => "SQLite, 1 node".to_string(),
            1 => "PostgreSQL, 1 node".to_string(),
            n => format!("PostgreSQL, {n} nodes"),
        };
        row3(
            &format!("{store}: durable async accepts at saturation"),
            format!("{accepts:.0}/s"),
            if nodes == 0 {
                "limit".into()
            } else {
                ratio(accepts, sqlite_accepts)
            },
            "",
        );
        row3(
            &format!("{store}: warm no-op events end to end ({events}, {workers} workers a node)"),
            format!("{warm:.0}/s"),
            if nodes == 0 {
                "limit".into()
            } else {
                ratio(warm, sqlite_warm)
            },
            "",
        );
    }
    if stored.iter().all(|&n| n == 0) {
        return Ok(());
    }
    let reads = pg_reads(postgres, workers, stored, page, list_body, 200).await?;
    let ms = |(p50, p99): (f64, f64)| format!("{p50:.2} / {p99:.2} ms");
    for (size, r) in reads {
        let millions = size as f64 / 1e6;
        let list = if size >= 10_000_000 {
            "p99 < 15 ms"
        } else {
            "p99 < 10 ms"
        };
        let label = format!("PostgreSQL, {millions}M events, p50 / p99");
        row3(
            &format!("{label}: Event Management page"),
            ms(r.page),
            String::new(),
            list,
        );
        row3(
            &format!("{label}: rows fragment, status=failed"),
            ms(r.rows),
            String::new(),
            list,
        );
        row3(
            &format!("{label}: ListAsyncEvents FAILED, last 24 h"),
            ms(r.api),
            String::new(),
            list,
        );
        row3(
            &format!("{label}: statistics for 3 days"),
            ms(r.stats),
            String::new(),
            "p99 < 20 ms at 10M",
        );
    }
    Ok(())
}
