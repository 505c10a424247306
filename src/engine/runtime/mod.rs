//! Runtime instances: a warm interpreter process per function, running our bootstrap, which
//! loads the user's handler once and then serves invocations one at a time. Requests and
//! answers travel on their own file descriptors (3 and 4), so everything the handler prints on
//! stdout and stderr is its log.

use crate::domain::event::{LOG_MAX_BYTES, truncate};
use crate::domain::runtime::{Interpreters, Language, Runtime};
use crate::store::{CodeFile, Function};
use serde::Deserialize;
use serde_json::Value;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

mod sandbox;
pub mod zygote;

const PYTHON_BOOTSTRAP: &str = include_str!("bootstrap.py");
const NODE_BOOTSTRAP: &str = include_str!("bootstrap.js");
const PYTHON_ZYGOTE: &str = include_str!("zygote.py");
const END_OF_INVOCATION: &str = "\u{1e}SCF-INVOCATION-END\u{1e}";

/// Where instances live on disk: the bootstraps, and one read-only code folder per function
/// version. It sits under the system's temporary folder so that the unprivileged user the
/// sandbox switches to can reach it whatever the data folder's permissions.
pub struct RuntimeDir {
    root: PathBuf,
}

impl RuntimeDir {
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn create() -> std::io::Result<Self> {
        let root = std::env::temp_dir().join(format!("scf-console-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&root)?;
        sandbox::world_readable_dir(&root)?;
        std::fs::write(root.join("bootstrap.py"), PYTHON_BOOTSTRAP)?;
        std::fs::write(root.join("bootstrap.js"), NODE_BOOTSTRAP)?;
        std::fs::write(root.join("zygote.py"), PYTHON_ZYGOTE)?;
        for f in ["bootstrap.py", "bootstrap.js", "zygote.py"] {
            sandbox::world_readable_file(&root.join(f))?;
        }
        Ok(RuntimeDir { root })
    }

    /// Writes a function version's code once; instances of that version share it.
    pub fn code_dir(&self, function: &Function, files: &[CodeFile]) -> std::io::Result<PathBuf> {
        let dir = self
            .root
            .join(format!("fn-{}-{}", function.id, function.modified_at));
        if dir.join(".complete").exists() {
            return Ok(dir);
        }
        let staging = self.root.join(format!("staging-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&staging)?;
        for file in files {
            let path = staging.join(&file.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, &file.content)?;
        }
        std::fs::write(staging.join(".complete"), b"")?;
        sandbox::world_readable_tree(&staging)?;
        match std::fs::rename(&staging, &dir) {
            Ok(()) => Ok(dir),
            // Another worker wrote the same version first: use theirs.
            Err(_) if dir.join(".complete").exists() => {
                let _ = std::fs::remove_dir_all(&staging);
                Ok(dir)
            }
            Err(e) => Err(e),
        }
    }

    /// A private scratch folder for one instance (its TMPDIR).
    fn scratch_dir(&self, instance: &str) -> std::io::Result<PathBuf> {
        let dir = self.root.join(format!("tmp-{instance}"));
        std::fs::create_dir_all(&dir)?;
        sandbox::owned_by_sandbox_user(&dir)?;
        Ok(dir)
    }

    pub fn remove_scratch(&self, instance: &str) {
        let _ = std::fs::remove_dir_all(self.root.join(format!("tmp-{instance}")));
    }

    /// Versions no instance uses any more can go.
    pub fn remove_code_dirs_of(&self, function_id: i64, keep_version: Option<i64>) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        let prefix = format!("fn-{function_id}-");
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(version) = name.strip_prefix(&prefix)
                && keep_version.is_none_or(|k| version != k.to_string())
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The SCF context handed to the handler with each event.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Context {
    pub request_id: String,
    pub function_name: String,
    pub function_version: String,
    pub namespace: String,
    pub memory_limit_in_mb: u32,
    pub time_limit_in_ms: u64,
    pub tencentcloud_region: String,
    pub invoke_type: String,
}

/// The handler's error, as the bootstrap reports it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct HandlerError {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub stack: String,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    ready: Option<bool>,
    #[serde(default)]
    ok: Option<bool>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<HandlerError>,
}

/// How one invocation ended.
#[derive(Debug)]
pub enum Outcome {
    /// The handler returned.
    Returned(Value),
    /// The handler raised; the instance must be recycled.
    Raised(HandlerError),
    /// The handler ran past the timeout; the process group was killed.
    TimedOut,
    /// The process exited (or was killed from outside) while running.
    Exited(String),
    /// A user terminated the event; the process group was killed.
    Terminated { graceful: bool },
}

/// What a running invocation can be told from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Kill now.
    Kill,
    /// SIGTERM, then kill after the grace period.
    Term,
}

static INSTANCE_SEQ: AtomicU64 = AtomicU64::new(1);

/// The instance's process: started by us, or forked by the Python fork server (which reaps
/// it and tells us how it exited).
enum Process {
    Spawned(Child),
    Forked {
        pid: u32,
        exit: Option<tokio::sync::oneshot::Receiver<i32>>,
        code: Option<i32>,
    },
}

impl Process {
    fn pid(&self) -> Option<u32> {
        match self {
            Process::Spawned(child) => child.id(),
            Process::Forked { pid, .. } => Some(*pid),
        }
    }

    /// The exit code (negative: the signal that killed it), waiting up to `limit`.
    async fn exit_code(&mut self, limit: Duration) -> Option<i32> {
        match self {
            Process::Spawned(child) => {
                use std::os::unix::process::ExitStatusExt;
                let status = tokio::time::timeout(limit, child.wait()).await.ok()?.ok()?;
                status.code().or(status.signal().map(|s| -s))
            }
            Process::Forked { exit, code, .. } => {
                if code.is_none()
                    && let Some(rx) = exit.as_mut()
                {
                    *code = tokio::time::timeout(limit, rx).await.ok()?.ok();
                    *exit = None;
                }
                *code
            }
        }
    }
}

/// A started interpreter with the handler loaded.
pub struct Instance {
    pub id: String,
    /// The function version it runs: instances of an older version are not reused.
    pub version: (i64, i64),
    process: Process,
    requests: pipe::Sender,
    answers: tokio::io::Lines<BufReader<pipe::Receiver>>,
    logs: mpsc::UnboundedReceiver<String>,
    pub started: Instant,
    pub last_used: Instant,
    pub invocations: u64,
}

/// Why an instance did not start: the user's code failed to load, or the machine failed.
#[derive(Debug)]
pub enum StartError {
    Load { error: HandlerError, logs: String },
    System(std::io::Error),
}

fn pipe_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub struct Spawn<'a> {
    pub dir: &'a RuntimeDir,
    /// The Python fork server, when one runs: Python instances are forked from it.
    pub zygote: Option<&'a zygote::Zygote>,
    pub interpreters: &'a Interpreters,
    pub function: &'a Function,
    pub runtime: &'a Runtime,
    pub code_dir: &'a Path,
    pub region: &'a str,
}

impl Instance {
    /// Starts an instance and waits until its handler is loaded (the cold start).
    pub async fn start(spec: Spawn<'_>) -> Result<Instance, StartError> {
        let id = format!("i-{:06x}", INSTANCE_SEQ.fetch_add(1, Ordering::Relaxed));
        let lang = spec.runtime.language;
        let interpreter = spec.interpreters.for_language(lang).ok_or_else(|| {
            StartError::System(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no {} interpreter on this server", lang.interpreter()),
            ))
        })?;
        let f = spec.function;
        let (module, method) = f.handler.split_once('.').unwrap_or((&f.handler, ""));
        let scratch = spec.dir.scratch_dir(&id).map_err(StartError::System)?;

        // A clean environment: the function's variables and SCF's context variables only.
        let mut env: Vec<(String, String)> = f
            .environment
            .iter()
            .map(|v| (v.key.clone(), v.value.clone()))
            .collect();
        for (k, v) in [
            ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
            ("HOME", scratch.display().to_string()),
            ("TMPDIR", scratch.display().to_string()),
            ("LANG", "C.UTF-8".into()),
            ("PYTHONUNBUFFERED", "1".into()),
            ("PYTHONDONTWRITEBYTECODE", "1".into()),
            ("SCF_FUNCTIONNAME", f.name.clone()),
            ("SCF_NAMESPACE", f.namespace.clone()),
            ("SCF_FUNCTIONVERSION", "$LATEST".into()),
            ("SCF_RUNTIME", f.runtime.clone()),
            ("SCF_MEMORY_SIZE", f.memory_size.to_string()),
            ("SCF_TIMEOUT", f.timeout.to_string()),
            ("TENCENTCLOUD_REGION", spec.region.to_string()),
        ] {
            env.push((k.to_string(), v));
        }
        let (req_r, req_w) = pipe_pair().map_err(StartError::System)?;
        let (ans_r, ans_w) = pipe_pair().map_err(StartError::System)?;
        let (log_r, log_w) = pipe_pair().map_err(StartError::System)?;
        let limits = sandbox::Limits::for_function(f, lang);

        let forked = match (lang, spec.zygote.filter(|z| z.is_alive())) {
            (Language::Python, Some(zygote)) => {
                let request = serde_json::json!({
                    "module": module,
                    "method": method,
                    "cwd": spec.code_dir,
                    "env": env.iter().cloned().collect::<std::collections::HashMap<_, _>>(),
                    "limits": limits.to_json(),
                    "uid": sandbox::SANDBOX_UID,
                    "gid": sandbox::SANDBOX_GID,
                });
                let fds = vec![
                    req_r.try_clone().map_err(StartError::System)?,
                    ans_w.try_clone().map_err(StartError::System)?,
                    log_w.try_clone().map_err(StartError::System)?,
                ];
                match zygote.fork(request, fds).await {
                    Ok((pid, exit)) => Some(Process::Forked {
                        pid,
                        exit: Some(exit),
                        code: None,
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, "the Python fork server failed; starting the interpreter instead");
                        None
                    }
                }
            }
            _ => None,
        };
        let process = match forked {
            Some(p) => {
                drop((req_r, ans_w, log_w));
                p
            }
            None => {
                let mut cmd = Command::new(&interpreter.command);
                match lang {
                    Language::Python => {
                        cmd.arg("-u")
                            .arg("-B")
                            .arg(spec.dir.root.join("bootstrap.py"))
                            .arg(module)
                            .arg(method);
                    }
                    Language::Nodejs => {
                        cmd.arg(format!("--max-old-space-size={}", f.memory_size))
                            .arg(spec.dir.root.join("bootstrap.js"))
                            .arg(module)
                            .arg(method);
                    }
                }
                cmd.env_clear()
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .current_dir(spec.code_dir)
                    .stdin(Stdio::null())
                    .kill_on_drop(true)
                    .process_group(0);
                cmd.stdout(Stdio::from(log_w.try_clone().map_err(StartError::System)?));
                cmd.stderr(Stdio::from(log_w));
                let (req_fd, ans_fd) = (req_r.as_raw_fd(), ans_w.as_raw_fd());
                // SAFETY: the closure only makes async-signal-safe system calls (fcntl, dup2,
                // setrlimit, setgid, setuid, prctl) between fork and exec.
                unsafe {
                    cmd.pre_exec(move || sandbox::in_child(req_fd, ans_fd, &limits));
                }
                let child = cmd.spawn().map_err(StartError::System)?;
                drop((req_r, ans_w));
                Process::Spawned(child)
            }
        };

        let requests = pipe::Sender::from_owned_fd(req_w).map_err(StartError::System)?;
        let answers =
            BufReader::new(pipe::Receiver::from_owned_fd(ans_r).map_err(StartError::System)?)
                .lines();
        let log_pipe = pipe::Receiver::from_owned_fd(log_r).map_err(StartError::System)?;
        let (log_tx, logs) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(log_pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if log_tx.send(line).is_err() {
                    break;
                }
            }
        });

        let mut instance = Instance {
            id,
            version: (f.id, f.modified_at),
            process,
            requests,
            answers,
            logs,
            started: Instant::now(),
            last_used: Instant::now(),
            invocations: 0,
        };
        // Loading the code counts against the function's timeout too.
        let ready = tokio::time::timeout(
            Duration::from_secs(u64::from(f.timeout).max(1)),
            instance.answers.next_line(),
        )
        .await;
        match ready {
            Ok(Ok(Some(line))) => match serde_json::from_str::<Answer>(&line) {
                Ok(Answer {
                    ready: Some(true), ..
                }) => Ok(instance),
                Ok(Answer {
                    error: Some(error), ..
                }) => {
                    let logs = instance.drain_logs_until_exit().await;
                    instance.kill().await;
                    Err(StartError::Load { error, logs })
                }
                _ => {
                    instance.kill().await;
                    Err(StartError::System(std::io::Error::other(format!(
                        "the bootstrap answered {line:?}"
                    ))))
                }
            },
            Ok(_) => {
                let logs = instance.drain_logs_until_exit().await;
                instance.kill().await;
                Err(StartError::Load {
                    error: HandlerError {
                        kind: "ProcessExited".into(),
                        message: "the runtime exited while loading the code".into(),
                        stack: String::new(),
                    },
                    logs,
                })
            }
            Err(_) => {
                instance.kill().await;
                Err(StartError::Load {
                    error: HandlerError {
                        kind: "Timeout".into(),
                        message: format!(
                            "loading the code took longer than the {} s timeout",
                            f.timeout
                        ),
                        stack: String::new(),
                    },
                    logs: String::new(),
                })
            }
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Resident memory of the instance now, in bytes (0 when unknown).
    pub fn memory_usage(&self) -> u64 {
        let Some(pid) = self.pid() else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    }

    fn signal_group(&self, signal: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill on a process group we created; a stale id at worst fails.
            unsafe {
                libc::kill(-(pid as i32), signal);
            }
        }
    }

    /// Kills the whole process group and reaps the process.
    pub async fn kill(&mut self) {
        self.signal_group(libc::SIGKILL);
        match &mut self.process {
            Process::Spawned(child) => {
                let _ = child.kill().await;
            }
            forked => {
                let _ = forked.exit_code(Duration::from_secs(2)).await;
            }
        }
    }

    async fn drain_logs_until_exit(&mut self) -> String {
        let mut out = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(line) = self.logs.recv().await {
                push_line(&mut out, &line);
            }
        })
        .await;
        truncate(&out, LOG_MAX_BYTES)
    }

    /// Runs one event. `signals` may ask to terminate it.
    pub async fn invoke(
        &mut self,
        event: &str,
        context: &Context,
        timeout: Duration,
        grace: Duration,
        signals: &mut mpsc::Receiver<Signal>,
    ) -> (Outcome, String) {
        self.invocations += 1;
        let event: Value = serde_json::from_str(event).unwrap_or(Value::Null);
        let mut line =
            serde_json::to_string(&serde_json::json!({ "event": event, "context": context }))
                .expect("JSON values serialize");
        line.push('\n');
        let mut logs = String::new();
        if self.requests.write_all(line.as_bytes()).await.is_err() {
            let tail = self.drain_logs_until_exit().await;
            return (Outcome::Exited("the runtime process is gone".into()), tail);
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut term_deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        let mut graceful = false;
        let mut ended = false;
        let outcome = loop {
            tokio::select! {
                answer = self.answers.next_line() => {
                    match answer {
                        Ok(Some(text)) => match serde_json::from_str::<Answer>(&text) {
                            Ok(a) if a.ok == Some(true) => break Outcome::Returned(a.result.unwrap_or(Value::Null)),
                            Ok(Answer { error: Some(e), .. }) => break Outcome::Raised(e),
                            _ => break Outcome::Exited(format!("the runtime answered {text:?}")),
                        },
                        _ => break Outcome::Exited(self.exit_description().await),
                    }
                }
                Some(line) = self.logs.recv() => {
                    if line == END_OF_INVOCATION {
                        ended = true;
                    } else {
                        push_line(&mut logs, &line);
                    }
                }
                _ = &mut deadline, if term_deadline.is_none() => {
                    self.kill().await;
                    break Outcome::TimedOut;
                }
                _ = async { term_deadline.as_mut().expect("set").await }, if term_deadline.is_some() => {
                    self.kill().await;
                    break Outcome::Terminated { graceful };
                }
                signal = signals.recv() => match signal {
                    Some(Signal::Term) if term_deadline.is_none() => {
                        graceful = true;
                        push_line(&mut logs, "[PLATFORM] Signal received successfully.");
                        self.signal_group(libc::SIGTERM);
                        term_deadline = Some(Box::pin(tokio::time::sleep(grace)));
                    }
                    Some(Signal::Kill) => {
                        self.kill().await;
                        break Outcome::Terminated { graceful: false };
                    }
                    _ => {}
                },
            }
        };
        // A terminated handler that answered in its grace period is still terminated.
        let outcome = match outcome {
            Outcome::Returned(_) | Outcome::Raised(_) | Outcome::Exited(_)
                if term_deadline.is_some() =>
            {
                self.kill().await;
                Outcome::Terminated { graceful }
            }
            other => other,
        };
        // Collect the rest of this invocation's output: up to the end marker if the handler
        // finished, or whatever the dead process left otherwise.
        match outcome {
            Outcome::Returned(_) | Outcome::Raised(_) if !ended => {
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(line) = self.logs.recv().await {
                        if line == END_OF_INVOCATION {
                            break;
                        }
                        push_line(&mut logs, &line);
                    }
                })
                .await;
            }
            Outcome::Returned(_) | Outcome::Raised(_) => {}
            _ => {
                let tail = self.drain_logs_until_exit().await;
                push_line(&mut logs, tail.trim_end_matches('\n'));
            }
        }
        self.last_used = Instant::now();
        (
            outcome,
            truncate(logs.trim_end_matches('\n'), LOG_MAX_BYTES),
        )
    }

    async fn exit_description(&mut self) -> String {
        match self.process.exit_code(Duration::from_secs(2)).await {
            Some(code) if code >= 0 => format!("the process exited with code {code} while running"),
            Some(signal) => format!("the process was killed by signal {} while running", -signal),
            None => "the process stopped answering".into(),
        }
    }
}

fn push_line(out: &mut String, line: &str) {
    if line.is_empty() && out.is_empty() {
        return;
    }
    // Keep a little more than the cap so truncation can mark the cut.
    if out.len() <= LOG_MAX_BYTES {
        out.push_str(line);
        out.push('\n');
    }
}
