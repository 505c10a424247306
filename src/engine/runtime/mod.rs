//! Runtime instances: a warm interpreter process per function, running our bootstrap, which
//! loads the user's handler once and then serves invocations one at a time. Requests and
//! answers travel on their own file descriptors (3 and 4), so everything the handler prints on
//! stdout and stderr is its log.

use crate::domain::event::status_code;
use crate::domain::function::{CodeFile, Function};
use crate::domain::runtime::{Interpreters, Language, Runtime};
use output::{AnswerLine, Answers, Logs, Now};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

pub mod cgroup;
pub mod init;
mod output;
pub mod sandbox;
pub mod zygote;

pub use output::{ANSWER_MAX_BYTES, LiveLogs};

const PYTHON_BOOTSTRAP: &str = include_str!("bootstrap.py");
const NODE_BOOTSTRAP: &str = include_str!("bootstrap.js");
const PYTHON_ZYGOTE: &str = include_str!("zygote.py");

/// Where instances live on disk: the bootstraps, and one read-only code folder per function
/// version. It sits under the system's temporary folder so that the unprivileged user the
/// sandbox switches to can reach it whatever the data folder's permissions.
///
/// A process killed outright cannot remove its folder, so each folder holds a lock file that
/// its process keeps an exclusive `flock` on for as long as it lives; the kernel lets go of it
/// however the process dies. At start, folders whose lock can be taken are left over, and go.
pub struct RuntimeDir {
    root: PathBuf,
    _lock: std::fs::File,
    code_dirs: CodeDirs,
}

/// The code folders in use, by path: shared by the instances of a version while any lives.
type CodeDirs = Arc<std::sync::Mutex<HashMap<PathBuf, Weak<CodeDir>>>>;

/// A function version's code folder. It goes when the last instance using it does, so the
/// code of old versions (and of deleted functions) does not pile up while the server runs.
pub struct CodeDir {
    path: PathBuf,
    live: CodeDirs,
}

impl CodeDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CodeDir {
    fn drop(&mut self) {
        // Under the lock, so that a start of the same version either finds this folder alive
        // or writes it anew after it is gone, never in between.
        let mut live = self.live.lock().expect("code dirs lock");
        if live.get(&self.path).is_some_and(|w| w.strong_count() == 0) {
            live.remove(&self.path);
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Runtime folders are named `scf-console-<uuid>` (`.new` while being set up).
const DIR_PREFIX: &str = "scf-console-";
const SETTING_UP: &str = ".new";
const LOCK_FILE: &str = ".lock";
/// A folder without a lock file (being created right now, or older than locks) is left alone
/// unless it is at least this old.
const UNLOCKED_AGE: Duration = Duration::from_secs(24 * 3600);

impl RuntimeDir {
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes the folders of dead processes, then makes this process's own.
    pub fn create() -> std::io::Result<Self> {
        let base = std::env::temp_dir();
        remove_stale(&base);
        let name = format!("{DIR_PREFIX}{}", uuid::Uuid::new_v4());
        // Set up under another name, so that nobody sees it before its lock is held.
        let staging = base.join(format!("{name}{SETTING_UP}"));
        std::fs::create_dir(&staging)?;
        let lock = lock_file(&staging.join(LOCK_FILE), true)?;
        if !try_lock(&lock)? {
            return Err(std::io::Error::other(
                "a new runtime folder is locked by someone else",
            ));
        }
        let root = base.join(name);
        std::fs::rename(&staging, &root)?;
        sandbox::enterable_dir(&root)?;
        std::fs::write(root.join("bootstrap.py"), PYTHON_BOOTSTRAP)?;
        std::fs::write(root.join("bootstrap.js"), NODE_BOOTSTRAP)?;
        std::fs::write(root.join("zygote.py"), PYTHON_ZYGOTE)?;
        for f in ["bootstrap.py", "bootstrap.js", "zygote.py"] {
            sandbox::world_readable_file(&root.join(f))?;
        }
        Ok(RuntimeDir {
            root,
            _lock: lock,
            code_dirs: CodeDirs::default(),
        })
    }

    /// A function version's code folder, written once while instances of that version share
    /// it.
    /// `version`: the function's id and modification time.
    pub fn code_dir(
        &self,
        version: (i64, i64),
        files: &[CodeFile],
        owner: sandbox::Identity,
    ) -> std::io::Result<Arc<CodeDir>> {
        let path = self.root.join(format!("fn-{}-{}", version.0, version.1));
        let mut live = self.code_dirs.lock().expect("code dirs lock");
        if let Some(dir) = live.get(&path).and_then(Weak::upgrade) {
            return Ok(dir);
        }
        self.write_code(&path, files, owner)?;
        let dir = Arc::new(CodeDir {
            path: path.clone(),
            live: Arc::clone(&self.code_dirs),
        });
        live.insert(path, Arc::downgrade(&dir));
        Ok(dir)
    }

    fn write_code(
        &self,
        dir: &Path,
        files: &[CodeFile],
        owner: sandbox::Identity,
    ) -> std::io::Result<()> {
        if dir.join(".complete").exists() {
            return Ok(());
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
        sandbox::private_code_tree(&staging, owner)?;
        match std::fs::rename(&staging, dir) {
            Ok(()) => Ok(()),
            // Another worker wrote the same version first: use theirs.
            Err(_) if dir.join(".complete").exists() => {
                let _ = std::fs::remove_dir_all(&staging);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A private scratch folder for one instance (its TMPDIR).
    fn scratch_dir(&self, instance: &str, owner: sandbox::Identity) -> std::io::Result<PathBuf> {
        let dir = self.root.join(format!("tmp-{instance}"));
        std::fs::create_dir_all(&dir)?;
        sandbox::owned_by(&dir, owner)?;
        Ok(dir)
    }

    pub fn remove_scratch(&self, instance: &str) {
        let _ = std::fs::remove_dir_all(self.root.join(format!("tmp-{instance}")));
    }
}

pub(super) fn lock_file(path: &Path, create: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .mode(0o600)
        // A lock file that is a symlink is nobody's lock: refuse it rather than follow it.
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Takes the exclusive lock without waiting: false if a live process holds it.
pub(super) fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Whether a name is one of ours: `scf-console-<uuid>`, or the same ending in `.new`.
fn is_runtime_dir_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
        return false;
    };
    let id = rest.strip_suffix(SETTING_UP).unwrap_or(rest);
    uuid::Uuid::parse_str(id).is_ok_and(|u| u.hyphenated().to_string() == id)
}

/// Removes runtime folders left by processes that are gone: only real folders (never a
/// symlink), owned by this user, named like ours, whose lock nobody holds.
pub fn remove_stale(base: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(base) else {
        return removed;
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        if !entry.file_name().to_str().is_some_and(is_runtime_dir_name) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.file_type().is_dir() || meta.uid() != me {
            continue;
        }
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= UNLOCKED_AGE);
        // A folder still being set up by a process starting now is not locked yet.
        if path.extension().is_some_and(|e| e == "new") && !old {
            continue;
        }
        let gone = match lock_file(&path.join(LOCK_FILE), false) {
            // Held until the folder is gone, so a process starting meanwhile skips it too.
            Ok(lock) => match try_lock(&lock) {
                Ok(true) => {
                    let removed = std::fs::remove_dir_all(&path);
                    drop(lock);
                    removed.is_ok()
                }
                _ => false,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // remove_dir_all never follows symlinks inside the folder.
                old && std::fs::remove_dir_all(&path).is_ok()
            }
            Err(_) => false,
        };
        if gone {
            tracing::info!(folder = %path.display(), "removed the runtime folder of a stopped server");
            removed.push(path);
        }
    }
    removed
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
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
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
    /// Loading failed because the handler's file or function is not there.
    #[serde(default)]
    missing: bool,
    /// How long the handler ran, by the bootstrap's own clock.
    #[serde(default)]
    ran_ms: Option<f64>,
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
    /// `killed`: a graceful terminate whose handler had not stopped when the grace period
    /// ended, so its process was killed.
    Terminated { graceful: bool, killed: bool },
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

/// An instance's own processes from the server's side, given the one it started: that one;
/// the init (pid 1 of the instance's namespace), which is the one started (a fork server's
/// child) or its child (a spawned instance's outer process); and the interpreter (pid 2),
/// last. What the handler started is none of them.
fn own_processes(started: u32) -> Vec<u32> {
    let children = |pid: u32| -> Vec<u32> {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    // Its pid in the innermost namespace it is in.
    let inner = |pid: u32| -> Option<u32> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
        line.split_whitespace().last()?.parse().ok()
    };
    let mut own = vec![started];
    let init = if inner(started) == Some(1) {
        Some(started)
    } else {
        let init = children(started).into_iter().find(|&c| inner(c) == Some(1));
        own.extend(init);
        init
    };
    if let Some(interpreter) =
        init.and_then(|init| children(init).into_iter().find(|&c| inner(c) == Some(2)))
    {
        own.push(interpreter);
    }
    own
}

/// A started interpreter with the handler loaded.
pub struct Instance {
    pub id: String,
    /// The function version it runs: instances of an older version are not reused.
    pub version: (i64, i64),
    process: Process,
    requests: pipe::Sender,
    answers: Answers,
    logs: Logs,
    /// End-of-output markers expected so far: one for loading, one per invocation.
    ends: u64,
    /// Its place under the engine's cap on live instances, and in the count of its runtime's,
    /// given back when it is dropped.
    capacity: Option<(OwnedSemaphorePermit, crate::metrics::Alive)>,
    pub started: Instant,
    pub last_used: Instant,
    pub invocations: u64,
    /// Its control group: every process it started is killed with it.
    group: Option<cgroup::InstanceGroup>,
    /// The function's MemorySize, for the message when it is exceeded.
    memory_mb: u32,
    /// Its own processes, as the server sees them: the one started (first), and with a PID
    /// namespace the init and the interpreter (last). Known once it is ready.
    own: Vec<u32>,
    /// Last, so the process is gone before its code folder may go.
    _code: Arc<CodeDir>,
}

/// Why an instance did not start: the user's code failed to load, the machine is out of
/// descriptors, processes or memory for now, or the machine failed otherwise.
#[derive(Debug)]
pub enum StartError {
    /// `code`: the SCF status code of the failure (a missing handler, an exception while
    /// loading, the process gone, loading too slow).
    Load {
        code: i64,
        error: HandlerError,
        logs: String,
    },
    /// Worth trying again shortly; nothing to do with the user's code.
    Capacity(std::io::Error),
    System(std::io::Error),
}

impl StartError {
    /// Sorts an I/O failure: running out of descriptors, processes or memory passes.
    pub fn from_io(e: std::io::Error) -> StartError {
        if is_exhaustion(&e) {
            StartError::Capacity(e)
        } else {
            StartError::System(e)
        }
    }
}

/// EMFILE, ENFILE (descriptors), EAGAIN (processes, from fork) and ENOMEM: the machine is full
/// right now, which says nothing about the code being started.
pub fn is_exhaustion(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::EAGAIN | libc::ENOMEM)
    )
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
    pub code_dir: &'a Arc<CodeDir>,
    pub region: &'a str,
    /// Who the instance runs as: its function's own user.
    pub identity: sandbox::Identity,
    /// Where its control group goes, if instances get one.
    pub cgroups: Option<&'a cgroup::Controllers>,
    /// Its private view of the file system, if instances get one.
    pub jail: Option<&'a Arc<sandbox::Jail>>,
    /// The program that runs as an instance's init ([`init`]); with a jail, a spawned
    /// instance gets a PID namespace of its own through it.
    pub init: Option<&'a init::Program>,
}

impl Instance {
    /// Starts an instance and waits until its handler is loaded (the cold start).
    pub async fn start(spec: Spawn<'_>) -> Result<Instance, StartError> {
        let id = format!("i-{:06x}", INSTANCE_SEQ.fetch_add(1, Ordering::Relaxed));
        let dir = spec.dir;
        let started = Self::start_as(spec, id.clone()).await;
        // A start that failed leaves no scratch folder behind (capacity failures retry often).
        if started.is_err() {
            dir.remove_scratch(&id);
        }
        started
    }

    async fn start_as(spec: Spawn<'_>, id: String) -> Result<Instance, StartError> {
        let lang = spec.runtime.language;
        let interpreter = spec.interpreters.for_language(lang).ok_or_else(|| {
            StartError::System(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no {} interpreter on this server", lang.interpreter()),
            ))
        })?;
        let f = spec.function;
        let (module, method) = f.handler.split_once('.').unwrap_or((&f.handler, ""));
        let scratch = spec
            .dir
            .scratch_dir(&id, spec.identity)
            .map_err(StartError::from_io)?;

        // A clean environment: the function's variables and SCF's context variables only.
        let mut env: Vec<(String, String)> = f
            .environment
            .iter()
            .map(|v| (v.key.clone(), v.value.clone()))
            .collect();
        // In a jail, /tmp is the instance's own; otherwise its scratch folder is.
        let tmp = match spec.jail {
            Some(_) => "/tmp".to_string(),
            None => scratch.display().to_string(),
        };
        for (k, v) in [
            ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
            ("HOME", tmp.clone()),
            ("TMPDIR", tmp),
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
        let (req_r, req_w) = pipe_pair().map_err(StartError::from_io)?;
        let (ans_r, ans_w) = pipe_pair().map_err(StartError::from_io)?;
        let (log_r, log_w) = pipe_pair().map_err(StartError::from_io)?;
        let limits = sandbox::Limits::for_function(f, lang);
        let group = match spec.cgroups {
            Some(c) => Some(
                c.instance(&id, u64::from(f.memory_size))
                    .map_err(StartError::from_io)?,
            ),
            None => None,
        };

        // What a forked child needs to become this instance. It goes to the child on the
        // instance's own request pipe, never through the fork server: the fork server's memory
        // is in every child it forks, so it must never hold one function's variables.
        let setup = serde_json::json!({
            "module": module,
            "method": method,
            "cwd": spec.code_dir.path(),
            "env": env.iter().cloned().collect::<std::collections::HashMap<_, _>>(),
            "limits": limits.to_json(),
            "uid": spec.identity.uid,
            "gid": spec.identity.gid,
            "jail": spec.jail.map(|j| j.to_json()),
            "network": f.public_net,
        });
        let forked = match (lang, spec.zygote.filter(|z| z.is_alive())) {
            (Language::Python, Some(zygote)) => {
                let request = serde_json::json!({});
                let fds = vec![
                    req_r.try_clone().map_err(StartError::from_io)?,
                    ans_w.try_clone().map_err(StartError::from_io)?,
                    log_w.try_clone().map_err(StartError::from_io)?,
                ];
                match zygote.fork(request, fds).await {
                    // The child waits for its setup line before doing anything, so it joins
                    // its group before the user's code can start a process.
                    Ok((pid, exit)) => {
                        if let Some(group) = &group {
                            group.add(pid).map_err(StartError::from_io)?;
                        }
                        Some(Process::Forked {
                            pid,
                            exit: Some(exit),
                            code: None,
                        })
                    }
                    // Starting an interpreter instead would only fail the same way, slower.
                    Err(e) if is_exhaustion(&e) => return Err(StartError::Capacity(e)),
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
                let mut program: Vec<std::ffi::OsString> = vec![interpreter.command.clone().into()];
                match lang {
                    Language::Python => {
                        program.extend([
                            "-u".into(),
                            "-B".into(),
                            spec.dir.root.join("bootstrap.py").into(),
                            module.into(),
                            method.into(),
                        ]);
                    }
                    Language::Nodejs => {
                        program.extend([
                            format!("--max-old-space-size={}", f.memory_size).into(),
                            spec.dir.root.join("bootstrap.js").into(),
                            module.into(),
                            method.into(),
                        ]);
                    }
                }
                use std::os::unix::ffi::{OsStrExt, OsStringExt};
                // In a jail, through the instance init: processes of its own.
                let init = spec.init.filter(|_| spec.jail.is_some());
                let mut cmd = match init {
                    Some(init_program) => {
                        let plan = init::Plan {
                            uid: spec.identity.uid,
                            gid: spec.identity.gid,
                            limits: limits.settings().into_iter().flatten().collect(),
                            program: program
                                .iter()
                                .map(|a| std::ffi::CString::new(a.clone().into_vec()))
                                .collect::<Result<_, _>>()
                                .map_err(|e| StartError::System(std::io::Error::other(e)))?,
                        };
                        let mut cmd = Command::new(init_program.exec_path());
                        cmd.arg0("scf-console").args(plan.to_args());
                        cmd
                    }
                    None => {
                        let mut cmd = Command::new(&program[0]);
                        cmd.args(&program[1..]);
                        cmd
                    }
                };
                cmd.env_clear()
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .current_dir(spec.code_dir.path())
                    .stdin(Stdio::null())
                    .kill_on_drop(true)
                    .process_group(0);
                cmd.stdout(Stdio::from(log_w.try_clone().map_err(StartError::from_io)?));
                cmd.stderr(Stdio::from(log_w));
                // Open until the child has joined, that is until `spawn` returns.
                let join_files = match &group {
                    Some(g) => g.join_files().map_err(StartError::from_io)?,
                    None => Vec::new(),
                };
                let setup = sandbox::ChildSetup {
                    requests: req_r.as_raw_fd(),
                    answers: ans_w.as_raw_fd(),
                    limits,
                    who: spec.identity,
                    cgroups: join_files.iter().map(AsRawFd::as_raw_fd).collect(),
                    jail: spec.jail.cloned(),
                    network: f.public_net,
                    own_pids: init.is_some(),
                    cwd: std::ffi::CString::new(spec.code_dir.path().as_os_str().as_bytes())
                        .map_err(|e| StartError::System(std::io::Error::other(e)))?,
                };
                // SAFETY: the closure only makes async-signal-safe system calls (write,
                // unshare, mount, mkdir, chdir, fcntl, dup2, setrlimit, setgid, setuid, prctl)
                // between fork and exec, on data prepared before it.
                unsafe {
                    cmd.pre_exec(move || sandbox::in_child(&setup));
                }
                let child = cmd.spawn().map_err(StartError::from_io)?;
                drop((req_r, ans_w, join_files));
                Process::Spawned(child)
            }
        };

        let mut requests = pipe::Sender::from_owned_fd(req_w).map_err(StartError::from_io)?;
        if matches!(process, Process::Forked { .. }) {
            let mut line = serde_json::to_vec(&setup).map_err(std::io::Error::other);
            if let Ok(line) = &mut line {
                line.push(b'\n');
            }
            let written = match line {
                Ok(line) => requests.write_all(&line).await,
                Err(e) => Err(e),
            };
            written.map_err(StartError::from_io)?;
        }
        let answers =
            Answers::new(pipe::Receiver::from_owned_fd(ans_r).map_err(StartError::from_io)?);
        let logs = Logs::read(pipe::Receiver::from_owned_fd(log_r).map_err(StartError::from_io)?);

        let mut instance = Instance {
            id,
            version: (f.id, f.modified_at),
            process,
            requests,
            answers,
            logs,
            ends: 1,
            capacity: None,
            started: Instant::now(),
            last_used: Instant::now(),
            invocations: 0,
            group,
            memory_mb: f.memory_size,
            own: Vec::new(),
            _code: Arc::clone(spec.code_dir),
        };
        // Loading the code counts against the function's timeout too.
        let ready = match tokio::time::timeout(
            Duration::from_secs(u64::from(f.timeout).max(1)),
            instance.answers.next(),
        )
        .await
        {
            Ok(answer) => Ok(answer),
            // As with invocations, a server that was not looking is no proof of a slow load.
            Err(elapsed) => match instance.answers.now() {
                Now::Ready(answer) => Ok(answer),
                Now::Partial | Now::Nothing => Err(elapsed),
            },
        };
        match ready {
            Ok(AnswerLine::Line(line)) => match serde_json::from_slice::<Answer>(&line) {
                Ok(Answer {
                    ready: Some(true), ..
                }) => {
                    instance.own = instance.pid().map(own_processes).unwrap_or_default();
                    Ok(instance)
                }
                Ok(Answer {
                    error: Some(error),
                    missing,
                    ..
                }) => {
                    let logs = instance.drain_logs_until_exit().await;
                    instance.kill().await;
                    let code = if missing {
                        status_code::HANDLER_NOT_FOUND
                    } else {
                        status_code::USER_ERROR
                    };
                    Err(StartError::Load { code, error, logs })
                }
                _ => {
                    instance.kill().await;
                    Err(StartError::System(std::io::Error::other(format!(
                        "the bootstrap answered {}",
                        shown(&line)
                    ))))
                }
            },
            Ok(_) => {
                let logs = instance.drain_logs_until_exit().await;
                instance.kill().await;
                Err(StartError::Load {
                    code: status_code::PROCESS_EXITED,
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
                    code: status_code::TIMEOUT,
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

    /// Resident memory of the instance's interpreter now, in bytes (0 when unknown).
    pub fn memory_usage(&self) -> u64 {
        let Some(pid) = self.own.last().copied().or(self.pid()) else {
            return 0;
        };
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

    /// Kills the whole process group and reaps the process, and everything else the instance
    /// started, wherever it went.
    pub async fn kill(&mut self) {
        self.signal_group(libc::SIGKILL);
        if let Some(group) = &self.group {
            group.kill_all();
        }
        match &mut self.process {
            Process::Spawned(child) => {
                let _ = child.kill().await;
            }
            forked => {
                let _ = forked.exit_code(Duration::from_secs(2)).await;
            }
        }
    }

    /// Stops the instance for good: kills it and removes its scratch folder. Its place under
    /// the cap is given back as it drops.
    pub async fn retire(mut self, dir: &RuntimeDir) {
        self.kill().await;
        dir.remove_scratch(&self.id);
    }

    /// Counts the instance against the engine's cap for as long as it lives.
    /// Takes its place under the cap on live instances, and in the count of live instances
    /// of its runtime; both are given back when it is dropped.
    pub fn hold(&mut self, permit: OwnedSemaphorePermit, alive: crate::metrics::Alive) {
        self.capacity = Some((permit, alive));
    }

    async fn drain_logs_until_exit(&mut self) -> String {
        self.logs.wait_closed(Duration::from_secs(2)).await;
        self.logs.take()
    }

    /// What the running invocation prints, as it prints it.
    pub fn live_logs(&self) -> LiveLogs {
        self.logs.live()
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
        self.ends += 1;
        let event: Value = serde_json::from_str(event).unwrap_or(Value::Null);
        let mut line =
            serde_json::to_string(&serde_json::json!({ "event": event, "context": context }))
                .expect("JSON values serialize");
        line.push('\n');
        if self.requests.write_all(line.as_bytes()).await.is_err() {
            let tail = self.drain_logs_until_exit().await;
            return (Outcome::Exited("the runtime process is gone".into()), tail);
        }
        let sent = Instant::now();
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut term_deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        let mut graceful = false;
        let outcome = loop {
            // Biased, answer first: when the server comes back from a pause, the answer and the
            // deadline can be ready together, and an answer must win.
            tokio::select! {
                biased;
                answer = self.answers.next() => {
                    break self.judge(answer, sent.elapsed(), timeout).await;
                }
                _ = &mut deadline, if term_deadline.is_none() => {
                    break self.at_deadline(timeout).await;
                }
                _ = async { term_deadline.as_mut().expect("set").await }, if term_deadline.is_some() => {
                    self.kill().await;
                    break Outcome::Terminated { graceful, killed: graceful };
                }
                signal = signals.recv() => match signal {
                    Some(Signal::Term) if term_deadline.is_none() => {
                        graceful = true;
                        self.logs.note("[PLATFORM] Signal received successfully.");
                        self.signal_group(libc::SIGTERM);
                        term_deadline = Some(Box::pin(tokio::time::sleep(grace)));
                    }
                    Some(Signal::Kill) => {
                        self.kill().await;
                        break Outcome::Terminated { graceful: false, killed: false };
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
                Outcome::Terminated {
                    graceful,
                    killed: false,
                }
            }
            other => other,
        };
        // The rest of this invocation's output: up to the end marker if the handler finished,
        // whatever the dead process left otherwise.
        // (A live process's pipe does not close: waiting for that would only add 2 s.)
        match outcome {
            Outcome::Returned(_) | Outcome::Raised(_) => {
                self.logs
                    .wait_ended(self.ends, Duration::from_secs(2))
                    .await;
            }
            _ => self.logs.wait_closed(Duration::from_secs(2)).await,
        }
        // What the handler started dies with its event: the instance stays warm for the next
        // one, its leftovers do not.
        if let Some(group) = &self.group {
            group.kill_all_but(&self.own);
        }
        self.last_used = Instant::now();
        (outcome, self.logs.take())
    }

    /// The deadline passed by the server's clock. That alone does not prove the handler ran
    /// long: the server may have been frozen (stopped, swapped out, starved of CPU) while the
    /// handler answered in time, and the reactor has not looked at the pipe since. So the pipe
    /// is read directly first; an answer found there is judged by the handler's own run time,
    /// which the bootstrap measures and which no pause of the server can stretch. Only a
    /// handler with nothing to say is killed as timed out.
    async fn at_deadline(&mut self, timeout: Duration) -> Outcome {
        let answer = match self.answers.now() {
            Now::Ready(answer) => Some(answer),
            // The bootstrap writes the answer after the handler returned; let it finish.
            Now::Partial => tokio::time::timeout(Duration::from_secs(2), self.answers.next())
                .await
                .ok(),
            Now::Nothing => None,
        };
        match answer {
            Some(answer) => {
                self.judge(answer, timeout + Duration::from_millis(1), timeout)
                    .await
            }
            None => {
                self.kill().await;
                Outcome::TimedOut
            }
        }
    }

    /// What an answer line means, `seen_after` the request was sent.
    async fn judge(
        &mut self,
        answer: AnswerLine,
        seen_after: Duration,
        timeout: Duration,
    ) -> Outcome {
        let line = match answer {
            AnswerLine::Line(line) => line,
            AnswerLine::TooLong => {
                self.kill().await;
                return Outcome::Raised(HandlerError {
                    kind: "ResultTooLarge".into(),
                    message: format!(
                        "the handler's answer is larger than {} MB; return less (results are kept up to 64 KB)",
                        ANSWER_MAX_BYTES / (1024 * 1024)
                    ),
                    stack: String::new(),
                });
            }
            AnswerLine::Closed => return Outcome::Exited(self.exit_description().await),
        };
        let Ok(answer) = serde_json::from_slice::<Answer>(&line) else {
            return Outcome::Exited(format!("the runtime answered {}", shown(&line)));
        };
        let ran = answer
            .ran_ms
            // The handler can write any number there: never panic on it.
            .map(|ms| Duration::try_from_secs_f64(ms.max(0.0) / 1000.0).unwrap_or(Duration::MAX));
        if !answered_in_time(ran, seen_after, timeout) {
            self.kill().await;
            return Outcome::TimedOut;
        }
        match answer {
            Answer {
                ok: Some(true),
                result,
                ..
            } => Outcome::Returned(result.unwrap_or(Value::Null)),
            Answer { error: Some(e), .. } => Outcome::Raised(e),
            _ => Outcome::Exited(format!("the runtime answered {}", shown(&line))),
        }
    }

    async fn exit_description(&mut self) -> String {
        let code = self.process.exit_code(Duration::from_secs(2)).await;
        if self
            .group
            .as_ref()
            .is_some_and(cgroup::InstanceGroup::out_of_memory)
        {
            return format!(
                "the function used more memory than its MemorySize allows ({} MB with the runtime's {} MB) and was stopped",
                self.memory_mb,
                cgroup::ALLOWANCE_MB
            );
        }
        match code {
            Some(code) if code >= 0 => format!("the process exited with code {code} while running"),
            Some(signal) => format!("the process was killed by signal {} while running", -signal),
            None => "the process stopped answering".into(),
        }
    }
}

/// An answer seen within the timeout by the server's clock is in time. One seen later is in
/// time if the handler's own run time, as the bootstrap measured it, is within the timeout: the
/// server was not looking, the handler was not late.
fn answered_in_time(ran: Option<Duration>, seen_after: Duration, timeout: Duration) -> bool {
    seen_after <= timeout || ran.is_none_or(|ran| ran <= timeout)
}

/// An unexpected answer, short enough for a message.
fn shown(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(200)]);
    format!("{text:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_seen_late_counts_by_the_handlers_own_time() {
        let s = Duration::from_secs;
        // Seen in time: whatever the bootstrap says.
        assert!(answered_in_time(Some(s(9)), s(2), s(3)));
        // The server was frozen: seen after 10 s, the handler ran 2 s of its 3.
        assert!(answered_in_time(Some(s(2)), s(10), s(3)));
        // Really late: the handler itself ran past its timeout.
        assert!(!answered_in_time(Some(s(5)), s(10), s(3)));
        assert!(answered_in_time(None, s(10), s(3)));
    }

    #[test]
    fn a_code_folder_goes_with_the_last_instance_of_its_version() {
        let dir = RuntimeDir::create().unwrap();
        let files = [CodeFile {
            path: "index.py".into(),
            content: b"def main_handler(e, c): pass\n".to_vec(),
        }];
        let first = dir
            .code_dir((7, 1), &files, sandbox::UidRange::default().for_function(7))
            .unwrap();
        let second = dir
            .code_dir((7, 1), &files, sandbox::UidRange::default().for_function(7))
            .unwrap();
        assert!(Arc::ptr_eq(&first, &second), "one folder per version");
        let path = first.path().to_path_buf();
        assert!(path.join("index.py").exists());
        drop(first);
        assert!(path.exists(), "an instance still uses it");
        drop(second);
        assert!(!path.exists(), "nothing uses it any more");
        // The same version again is written anew.
        let again = dir
            .code_dir((7, 1), &files, sandbox::UidRange::default().for_function(7))
            .unwrap();
        assert!(again.path().join("index.py").exists());
    }

    #[test]
    fn running_out_of_descriptors_or_processes_is_not_the_codes_fault() {
        for errno in [libc::EMFILE, libc::ENFILE, libc::EAGAIN, libc::ENOMEM] {
            let e = std::io::Error::from_raw_os_error(errno);
            assert!(matches!(StartError::from_io(e), StartError::Capacity(_)));
        }
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert!(matches!(StartError::from_io(e), StartError::System(_)));
    }
}
