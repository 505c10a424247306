//! The first process of an instance's PID namespace, the way bubblewrap and tini do it.
//!
//! A spawned instance (Node.js, or Python without the fork server) is started as this program
//! (`scf-console __instance-init …`) inside the namespaces its jail made, one of them a new
//! PID namespace that its children enter. It forks the namespace's init (pid 1), which mounts
//! the namespace's own `/proc` and forks the interpreter (pid 2), which drops to the
//! function's user and limits and execs. So the handler sees no process but its instance's;
//! orphans of what it starts are reaped by the init rather than left as zombies; and when the
//! interpreter ends, the init ends, and the kernel kills everything left in the namespace.
//!
//! The outer process stays the server's child: it ignores the group's SIGTERM (the
//! interpreter gets it and decides), and ends the way the interpreter ended, by exit code or
//! by the same signal, so the server sees what it would have seen without it. The fork
//! server (`zygote.py`) forks each child straight into a fresh namespace instead, as its
//! init, and reports the interpreter's ending itself: one process fewer where starts are
//! most frequent.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;

/// The first argument that makes the server binary run as an instance's init.
pub const ARG: &str = "__instance-init";

/// The init program, opened once: a spawned instance execs it as `/proc/self/fd/N` from
/// inside its own view of the file system, where the program's path may not exist (a binary
/// under `/tmp`, which the instance's view replaces).
#[derive(Debug)]
pub struct Program {
    file: std::os::fd::OwnedFd,
}

impl Program {
    pub fn open(path: &std::path::Path) -> std::io::Result<Program> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let file = std::fs::File::open(path)?;
        // Above 4: a child puts the protocol's pipes on 3 and 4 before it execs this.
        // SAFETY: duplicates a descriptor we own into a new one we then own.
        let fd = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 5) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just made and nothing else owns it.
        let file = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        Ok(Program { file })
    }

    /// The path a child execs it by. The descriptor closes on exec, after the kernel has
    /// opened the program through it.
    pub fn exec_path(&self) -> String {
        use std::os::fd::AsRawFd;
        format!("/proc/self/fd/{}", self.file.as_raw_fd())
    }
}

/// What the interpreter becomes: its user, group and resource limits, and its command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub uid: u32,
    pub gid: u32,
    /// `(resource, value)`, set on the interpreter only.
    pub limits: Vec<(u32, u64)>,
    pub program: Vec<CString>,
}

impl Plan {
    /// The arguments after [`ARG`]: `UID GID RESOURCE=VALUE… -- PROGRAM ARG…`.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args = vec![
            OsString::from(ARG),
            self.uid.to_string().into(),
            self.gid.to_string().into(),
        ];
        args.extend(
            self.limits
                .iter()
                .map(|(resource, value)| format!("{resource}={value}").into()),
        );
        args.push("--".into());
        args.extend(
            self.program
                .iter()
                .map(|a| OsString::from_vec(a.as_bytes().to_vec())),
        );
        args
    }

    fn parse(mut args: impl Iterator<Item = OsString>) -> Result<Plan, String> {
        let mut number = |what: &str| -> Result<u32, String> {
            args.next()
                .and_then(|a| a.to_str()?.parse().ok())
                .ok_or_else(|| format!("expected the {what}"))
        };
        let (uid, gid) = (number("user id")?, number("group id")?);
        let mut limits = Vec::new();
        for arg in args.by_ref() {
            if arg == "--" {
                break;
            }
            let text = arg.to_str().ok_or("a limit is not text")?;
            let (resource, value) = text
                .split_once('=')
                .and_then(|(r, v)| Some((r.parse().ok()?, v.parse().ok()?)))
                .ok_or_else(|| format!("{text:?} is not RESOURCE=VALUE"))?;
            limits.push((resource, value));
        }
        let program: Vec<CString> = args
            .map(|a| CString::new(a.into_vec()).map_err(|_| "an argument holds a nul byte"))
            .collect::<Result<_, _>>()?;
        if program.is_empty() {
            return Err("no program to run".into());
        }
        Ok(Plan {
            uid,
            gid,
            limits,
            program,
        })
    }
}

/// Runs as an instance's init when the process was started as one, and never returns then.
/// Call it first in `main`, before any thread or file exists.
pub fn run_if_asked() {
    let mut args = std::env::args_os();
    if args.nth(1).is_none_or(|a| a != ARG) {
        return;
    }
    let code = match Plan::parse(args) {
        Ok(plan) => outer(&plan),
        Err(e) => {
            eprintln!("scf-console: instance init: {e}");
            127
        }
    };
    std::process::exit(code);
}

fn fail(what: &str) -> ! {
    eprintln!(
        "scf-console: instance init: {what}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: ends this process at once; nothing of it needs to run on.
    unsafe { libc::_exit(127) }
}

fn set_signals(to: libc::sighandler_t) {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: sets the disposition of a signal of this single-threaded process.
        unsafe { libc::signal(signal, to) };
    }
}

/// Closes every descriptor but `keep`: the init and the outer process hold nothing of the
/// instance's, so its pipes close when the interpreter's end does.
fn close_all_but(keep: i32) {
    // SAFETY: closing our own descriptors; none is used after this but `keep`.
    unsafe {
        if keep > 0 {
            libc::syscall(libc::SYS_close_range, 0, keep - 1, 0);
        }
        libc::syscall(libc::SYS_close_range, keep + 1, u32::MAX, 0);
    }
}

/// The server's child, outside the namespace: waits for the init and ends as the
/// interpreter did.
fn outer(plan: &Plan) -> i32 {
    set_signals(libc::SIG_IGN);
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        fail("pipe");
    }
    let (status_r, status_w) = (fds[0], fds[1]);
    // SAFETY: this process has one thread; the child runs ordinary code.
    let init = unsafe { libc::fork() };
    match init {
        -1 => fail("fork"),
        0 => namespace_init(plan, status_w),
        _ => {}
    }
    close_all_but(status_r);
    let mut status = 0;
    // SAFETY: waits for our own child.
    while unsafe { libc::waitpid(init, &mut status, 0) } < 0 {
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            fail("waitpid");
        }
    }
    let mut raw = [0u8; 4];
    // SAFETY: reads at most 4 bytes into the array.
    let read = unsafe { libc::read(status_r, raw.as_mut_ptr().cast(), raw.len()) };
    if read != 4 {
        // The init died without a word (killed with the instance): end as killed.
        return 128 + libc::SIGKILL;
    }
    let interpreter = i32::from_ne_bytes(raw);
    if libc::WIFSIGNALED(interpreter) {
        let signal = libc::WTERMSIG(interpreter);
        // SAFETY: restores the default action and raises the signal on this process.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
        128 + signal
    } else {
        libc::WEXITSTATUS(interpreter)
    }
}

/// Pid 1 of the instance's namespace: its own `/proc`, the interpreter, and the reaping.
fn namespace_init(plan: &Plan, status_w: i32) -> ! {
    // SAFETY: flags of this process; mount reads static strings.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            fail("prctl");
        }
        if libc::getpid() != 1 {
            eprintln!("scf-console: instance init: not the first process of a PID namespace");
            libc::_exit(127);
        }
        // The view of processes of this namespace, not of the one the jail's /proc shows.
        if libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            c"hidepid=invisible".as_ptr().cast(),
        ) != 0
        {
            fail("mount /proc");
        }
    }
    // SAFETY: single-threaded; the child only sets itself up and execs.
    let interpreter = unsafe { libc::fork() };
    match interpreter {
        -1 => fail("fork"),
        0 => interpreter_exec(plan),
        _ => {}
    }
    close_all_but(status_w);
    loop {
        let mut status = 0;
        // SAFETY: reaps any child: the interpreter, or an orphan of what it started.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == interpreter {
            // SAFETY: writes the 4 bytes of the status, then ends the namespace.
            unsafe {
                libc::write(status_w, status.to_ne_bytes().as_ptr().cast(), 4);
                libc::_exit(0);
            }
        }
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
            // SAFETY: nothing left to wait for.
            unsafe { libc::_exit(0) };
        }
    }
}

/// Pid 2: the function's user and limits, then the interpreter.
fn interpreter_exec(plan: &Plan) -> ! {
    set_signals(libc::SIG_DFL);
    for &(resource, value) in &plan.limits {
        let limit = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(resource as _, &limit) } != 0 {
            fail("setrlimit");
        }
    }
    let mut argv: Vec<*const libc::c_char> = plan.program.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: identity and flag changes of this process, then exec with nul-terminated
    // strings that live until it.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(plan.gid) != 0
            || libc::setuid(plan.uid) != 0
        {
            fail("changing to the function's user");
        }
        // Set after the user change, which clears it.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
            || libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
        {
            fail("prctl");
        }
        libc::execvp(argv[0], argv.as_ptr());
    }
    fail("exec")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_goes_through_its_arguments_unchanged() {
        let plan = Plan {
            uid: 200_123,
            gid: 200_123,
            limits: vec![(9, 1024), (6, 128)],
            program: vec![
                CString::new("/usr/bin/node").unwrap(),
                CString::new("--max-old-space-size=128").unwrap(),
                CString::new("a b -- c").unwrap(),
            ],
        };
        let args = plan.to_args();
        assert_eq!(args[0], ARG);
        assert_eq!(Plan::parse(args.into_iter().skip(1)).unwrap(), plan);
        for bad in [
            vec!["x"],
            vec!["1", "2", "--"],
            vec!["1", "2", "as", "--", "p"],
        ] {
            let args = bad.into_iter().map(OsString::from);
            assert!(Plan::parse(args).is_err());
        }
    }
}
