//! The sandbox around each instance: its own process group, resource limits, descriptors 3
//! and 4 for the protocol, and, when the server runs as root, a user of the function's own,
//! so that no function can read, signal or trace another's processes, code or scratch files.

use crate::domain::function::Function;
use crate::domain::runtime::Language;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The user and group ids functions run as: one of each per function, `first + id % count`,
/// from a range no account of the machine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidRange {
    pub first: u32,
    pub count: u32,
}

impl Default for UidRange {
    fn default() -> Self {
        UidRange {
            first: 200_000,
            count: 100_000,
        }
    }
}

impl std::str::FromStr for UidRange {
    type Err = String;

    /// `FIRST-LAST`, e.g. `200000-299999`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a range of user ids such as 200000-299999");
        let (first, last) = s.trim().split_once('-').ok_or_else(bad)?;
        let (first, last): (u32, u32) = (
            first.trim().parse().map_err(|_| bad())?,
            last.trim().parse().map_err(|_| bad())?,
        );
        if first < 1000 || last < first || last >= u32::MAX - 1 {
            return Err(format!(
                "{s:?}: the range must start at 1000 or above (away from system accounts) and end after it starts"
            ));
        }
        Ok(UidRange {
            first,
            count: last - first + 1,
        })
    }
}

impl std::fmt::Display for UidRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.first + (self.count - 1))
    }
}

/// Who an instance runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
}

impl UidRange {
    /// The identity of a function. As root, its own user and group; otherwise the server's
    /// own, as nothing else can be taken.
    pub fn for_function(&self, function_id: i64) -> Identity {
        if !is_root() {
            // SAFETY: getuid and getgid have no preconditions.
            return unsafe {
                Identity {
                    uid: libc::getuid(),
                    gid: libc::getgid(),
                }
            };
        }
        let id = self.first + (function_id.rem_euclid(i64::from(self.count)) as u32);
        Identity { uid: id, gid: id }
    }
}

/// Resource limits of one instance.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Address space in bytes; None where the runtime manages its own heap limit (V8 reserves
    /// far more address space than it uses, so Node.js gets `--max-old-space-size` instead).
    address_space: Option<u64>,
    file_size: u64,
    open_files: u64,
    processes: u64,
}

impl Limits {
    pub fn for_function(f: &Function, language: Language) -> Self {
        let mb = 1024 * 1024;
        Limits {
            // The interpreter itself needs room beyond the function's memory.
            address_space: match language {
                Language::Python => Some((u64::from(f.memory_size) + 256) * mb),
                Language::Nodejs => None,
            },
            file_size: 512 * mb,
            open_files: within_hard_limit(libc::RLIMIT_NOFILE, 1024),
            // Counted per user: every instance of the sandbox user shares it.
            processes: within_hard_limit(libc::RLIMIT_NPROC, 4096),
        }
    }
}

/// `want`, or less if this process may not go that high: a limit above the hard limit cannot
/// be set without privileges a container often lacks, and every instance would fail to start.
fn within_hard_limit(resource: libc::__rlimit_resource_t, want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(resource, &mut limit) } != 0 {
        return want;
    }
    want.min(limit.rlim_max)
}

impl Limits {
    /// Each limit as `(resource, value)`, without allocating (it runs between fork and exec).
    pub fn settings(&self) -> [Option<(libc::__rlimit_resource_t, u64)>; 5] {
        [
            self.address_space.map(|bytes| (libc::RLIMIT_AS, bytes)),
            Some((libc::RLIMIT_FSIZE, self.file_size)),
            Some((libc::RLIMIT_NOFILE, self.open_files)),
            Some((libc::RLIMIT_NPROC, self.processes)),
            Some((libc::RLIMIT_CORE, 0)),
        ]
    }

    /// The same limits, for the fork server to apply in its children.
    pub fn to_json(self) -> serde_json::Value {
        let mut limits = serde_json::json!({
            "fsize": self.file_size,
            "nofile": self.open_files,
            "nproc": self.processes,
            "core": 0,
        });
        if let Some(bytes) = self.address_space {
            limits["as"] = bytes.into();
        }
        limits
    }
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// What a spawned child becomes between fork and exec.
pub struct ChildSetup {
    pub requests: i32,
    pub answers: i32,
    pub limits: Limits,
    pub who: Identity,
    /// `cgroup.procs` of its control group, to join.
    pub cgroups: Vec<i32>,
    pub jail: Option<std::sync::Arc<Jail>>,
    /// The function may use the network; otherwise the jail gives it a network of its own.
    pub network: bool,
    /// The child execs the instance init ([`super::init`]) in a PID namespace of its own,
    /// which drops to the function's user and limits itself.
    pub own_pids: bool,
    /// Its working folder, entered again inside the jail's view.
    pub cwd: std::ffi::CString,
}

/// Runs in the child between fork and exec: only async-signal-safe calls.
pub fn in_child(setup: &ChildSetup) -> std::io::Result<()> {
    let (requests, answers, limits, who) =
        (setup.requests, setup.answers, &setup.limits, setup.who);
    // Into the instance's control group first, before anything else can start a process.
    for &fd in &setup.cgroups {
        // SAFETY: write from a static buffer to a descriptor opened before the fork.
        if unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) } != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: plain descriptor and identity system calls on the child's own state.
    unsafe {
        // Move both ends out of the way first, so that neither is overwritten when the other
        // lands on 3 or 4.
        let high_req = libc::fcntl(requests, libc::F_DUPFD, 10);
        let high_ans = libc::fcntl(answers, libc::F_DUPFD, 10);
        if high_req < 0 || high_ans < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::dup2(high_req, 3) < 0 || libc::dup2(high_ans, 4) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        libc::close(high_req);
        libc::close(high_ans);
    }
    // After the protocol's descriptors are in place, so nothing the jail opens can take a
    // number they need.
    if let Some(jail) = &setup.jail {
        jail.enter(setup.network, setup.own_pids)?;
        // The working folder was entered before the view changed; enter it again in the view.
        // SAFETY: chdir reads the nul-terminated path made before the fork.
        if unsafe { libc::chdir(setup.cwd.as_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    if setup.own_pids {
        // The init runs as root until it has mounted its namespace's /proc; the interpreter
        // it starts takes the user and limits. It dies with the server all the same.
        // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag on the calling process.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        return Ok(());
    }
    for (resource, value) in limits.settings().into_iter().flatten() {
        set_limit(resource, value)?;
    }
    if is_root() {
        // SAFETY: dropping privileges in the child only; the group goes first, while we may.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(who.gid) != 0
                || libc::setuid(who.uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    // If the server dies, its instances die with it rather than run on unobserved: the events
    // they ran are taken over and retried by the next node to look. Set after the user change, which
    // clears it. And nothing the handler executes may gain privileges (set-user-id programs).
    // SAFETY: prctl with PR_SET_PDEATHSIG and PR_SET_NO_NEW_PRIVS only sets flags on the
    // calling process.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0
            || libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Folders of ours everyone may enter but not list: the runtime folder, so that each instance
/// reaches the bootstrap and its own code folder without seeing which others exist.
pub fn enterable_dir(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o711))
}

/// The bootstrap files: ours, the same for every function, holding nothing secret.
pub fn world_readable_file(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

/// A function's code: readable by its own group only (root's otherwise), writable by nobody
/// but the server.
pub fn private_code_tree(path: &Path, who: Identity) -> std::io::Result<()> {
    let group = is_root().then_some(who.gid);
    let mode = |dir: bool| if dir { 0o750 } else { 0o640 };
    std::os::unix::fs::chown(path, None, group)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode(true)))?;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let is_dir = entry.file_type()?.is_dir();
        if is_dir {
            private_code_tree(&entry.path(), who)?;
        } else {
            std::os::unix::fs::chown(entry.path(), None, group)?;
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode(false)))?;
        }
    }
    Ok(())
}

/// A folder only the function's user may use (its instance's TMPDIR).
pub fn owned_by(path: &Path, who: Identity) -> std::io::Result<()> {
    if is_root() {
        std::os::unix::fs::chown(path, Some(who.uid), Some(who.gid))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use super::UidRange;

    #[test]
    fn descriptor_paths_are_written_without_allocating() {
        let mut buf = [0u8; 32];
        for (fd, text) in [
            (0, "/proc/self/fd/0"),
            (7, "/proc/self/fd/7"),
            (250, "/proc/self/fd/250"),
            (i32::MAX, "/proc/self/fd/2147483647"),
        ] {
            let path = super::fd_path(fd, &mut buf);
            // SAFETY: fd_path writes a nul-terminated string into `buf`.
            let written = unsafe { std::ffi::CStr::from_ptr(path) };
            assert_eq!(written.to_str().unwrap(), text);
        }
    }

    #[test]
    fn uid_ranges_are_read_and_bounded() {
        let r: UidRange = "200000-299999".parse().unwrap();
        assert_eq!((r.first, r.count), (200_000, 100_000));
        for bad in ["0-100", "300-200", "5000", "a-b", "2000-1999"] {
            assert!(bad.parse::<UidRange>().is_err(), "{bad}");
        }
    }
}

/// The private view of the file system an instance gets when the server is root: mount, IPC
/// and UTS namespaces of its own; an empty tmpfs of SCF's 512 MB as `/tmp` (its TMPDIR and
/// HOME); empty ones as `/var/tmp` and `/dev/shm`, so nothing written there outlives the
/// instance or reaches another function; a `/proc` that shows only its own user's processes;
/// the runtime folder (bootstrap and code) mounted back read-only; and the data folder covered. Prepared once by the engine; entered by each child
/// between fork and exec (spawned instances, [`Jail::enter`]) or by the fork server's child
/// (`zygote.py`, from [`Jail::to_json`]), the same steps in the same order.
#[derive(Debug)]
pub struct Jail {
    runtime_root: std::ffi::CString,
    /// The folders to make in the new `/tmp` down to the runtime folder; empty when the
    /// runtime folder is not under `/tmp`.
    parents: Vec<std::ffi::CString>,
    /// Covered with an empty read-only tmpfs (the data folder).
    hidden: Vec<std::ffi::CString>,
    runtime_path: std::path::PathBuf,
    hidden_paths: Vec<std::path::PathBuf>,
}

/// SCF's temporary space per instance.
pub const TMP_SIZE_MB: u64 = 512;
/// `/var/tmp` and `/dev/shm` of an instance.
const SMALL_TMP_SIZE_MB: u64 = 64;
/// `/proc/self/fd/<fd>` with its nul, written without allocating (between fork and exec).
fn fd_path(fd: i32, buf: &mut [u8; 32]) -> *const libc::c_char {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let (mut n, mut len) = (fd.unsigned_abs(), 0);
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[PREFIX.len() + i] = digits[len - 1 - i];
    }
    buf[PREFIX.len() + len] = 0;
    buf.as_ptr().cast()
}

/// Brings up `lo` in a new network namespace (it starts down), so that a handler without
/// the network can still talk to itself. System calls only.
fn loopback_up() -> std::io::Result<()> {
    // SAFETY: socket, ioctl and close on a zeroed ifreq naming "lo", all on our own descriptor.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        let mut ok = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) == 0;
        if ok {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            ok = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) == 0;
        }
        let error = std::io::Error::last_os_error();
        libc::close(fd);
        if ok { Ok(()) } else { Err(error) }
    }
}

const fn c(bytes: &'static [u8]) -> &'static std::ffi::CStr {
    match std::ffi::CStr::from_bytes_with_nul(bytes) {
        Ok(s) => s,
        Err(_) => panic!("a C string constant without its nul"),
    }
}

impl Jail {
    /// `runtime_root`: the runtime folder instances need; `hidden`: folders they must not see.
    pub fn new(runtime_root: &Path, hidden: &[std::path::PathBuf]) -> std::io::Result<Jail> {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let cstr = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
        let mut parents = Vec::new();
        if let Ok(below) = runtime_root.strip_prefix("/tmp") {
            let mut path = std::path::PathBuf::from("/tmp");
            for part in below.components() {
                path.push(part);
                parents.push(cstr(&path)?);
            }
        }
        // What is under /tmp is gone with the new /tmp anyway, and cannot be mounted over.
        let hidden_paths: Vec<_> = hidden
            .iter()
            .filter(|p| p.is_dir() && !p.starts_with("/tmp"))
            .cloned()
            .collect();
        Ok(Jail {
            runtime_root: cstr(runtime_root)?,
            parents,
            hidden: hidden_paths
                .iter()
                .map(|p| cstr(p))
                .collect::<Result<_, _>>()?,
            runtime_path: runtime_root.to_path_buf(),
            hidden_paths,
        })
    }

    /// A jail for this machine, tried once in a throwaway child, or why there can be none.
    pub fn usable(runtime_root: &Path, hidden: &[std::path::PathBuf]) -> Result<Jail, String> {
        if !is_root() {
            return Err("private views of the file system need the server to run as root".into());
        }
        let jail = Jail::new(runtime_root, hidden)
            .map_err(|e| format!("the runtime folder cannot be opened: {e}"))?;
        // SAFETY: the child only enters the jail (system calls) and exits.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => {
                return Err(format!(
                    "cannot try it: {}",
                    std::io::Error::last_os_error()
                ));
            }
            0 => {
                // The strictest view: a network and processes of its own as well.
                let code = match jail.enter(false, true) {
                    Ok(()) => 0,
                    Err(e) => e.raw_os_error().unwrap_or(1).clamp(1, 255),
                };
                // SAFETY: _exit in the forked child, without running the parent's destructors.
                unsafe { libc::_exit(code) }
            }
            _ => {}
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok(jail)
        } else if libc::WIFEXITED(status) {
            Err(format!(
                "making a private view of the file system failed here: {}",
                std::io::Error::from_raw_os_error(libc::WEXITSTATUS(status))
            ))
        } else {
            Err("this machine does not let the server make mount namespaces (a container without CAP_SYS_ADMIN?)".into())
        }
    }

    /// The same view, for the fork server's child to enter.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "runtime_root": self.runtime_path,
            "hidden": self.hidden_paths,
            "tmp_mb": TMP_SIZE_MB,
            "small_tmp_mb": SMALL_TMP_SIZE_MB,
        })
    }

    /// Enters the view; without `network`, in a network namespace of its own that holds only
    /// its loopback, so no connection leaves the instance; with `own_pids`, its children in a
    /// PID namespace of their own. Runs between fork and exec: system
    /// calls only, on strings made before the fork.
    pub fn enter(&self, network: bool, own_pids: bool) -> std::io::Result<()> {
        let check = |r: i32| {
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        let none = std::ptr::null::<libc::c_char>();
        let tmpfs = c(b"tmpfs\0").as_ptr();
        let flags = libc::MS_NOSUID | libc::MS_NODEV;
        // SAFETY: mount, mkdir and unshare read only the nul-terminated strings passed, which
        // live in `self` or are static.
        unsafe {
            let own_network = if network { 0 } else { libc::CLONE_NEWNET };
            // Its children, not itself, are in the new PID namespace: the instance init.
            let own_pids = if own_pids { libc::CLONE_NEWPID } else { 0 };
            check(libc::unshare(
                libc::CLONE_NEWNS
                    | libc::CLONE_NEWIPC
                    | libc::CLONE_NEWUTS
                    | own_network
                    | own_pids,
            ))?;
            if !network {
                loopback_up()?;
            }
            // Nothing mounted here may reach the server's view, or the other way round.
            check(libc::mount(
                none,
                c(b"/\0").as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            // Opened in the new namespace: a folder of another one cannot be mounted from. It
            // is mounted back from `/proc/self/fd/…` once `/tmp` is covered.
            let held = if self.parents.is_empty() {
                -1
            } else {
                let fd = libc::open(
                    self.runtime_root.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                );
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                fd
            };
            let mut held_path = [0u8; 32];
            check(libc::mount(
                tmpfs,
                c(b"/tmp\0").as_ptr(),
                tmpfs,
                flags,
                c(b"size=512m,mode=1777\0").as_ptr().cast(),
            ))?;
            for small in [c(b"/var/tmp\0"), c(b"/dev/shm\0")] {
                if libc::access(small.as_ptr(), libc::F_OK) == 0 {
                    check(libc::mount(
                        tmpfs,
                        small.as_ptr(),
                        tmpfs,
                        flags,
                        c(b"size=64m,mode=1777\0").as_ptr().cast(),
                    ))?;
                }
            }
            // A /proc of its own that shows only its own user's processes: no other function's
            // and not the server's (whose command line could carry settings).
            check(libc::mount(
                c(b"proc\0").as_ptr(),
                c(b"/proc\0").as_ptr(),
                c(b"proc\0").as_ptr(),
                flags | libc::MS_NOEXEC,
                c(b"hidepid=invisible\0").as_ptr().cast(),
            ))?;
            if !self.parents.is_empty() {
                for dir in &self.parents {
                    check(libc::mkdir(dir.as_ptr(), 0o711))?;
                }
                check(libc::mount(
                    fd_path(held, &mut held_path),
                    self.runtime_root.as_ptr(),
                    none,
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ))?;
                check(libc::mount(
                    none,
                    self.runtime_root.as_ptr(),
                    none,
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | flags,
                    std::ptr::null(),
                ))?;
                libc::close(held);
            }
            for dir in &self.hidden {
                check(libc::mount(
                    tmpfs,
                    dir.as_ptr(),
                    tmpfs,
                    flags | libc::MS_RDONLY | libc::MS_NOEXEC,
                    c(b"size=4k,mode=0755\0").as_ptr().cast(),
                ))?;
            }
        }
        Ok(())
    }
}
