//! The sandbox around each instance: its own process group, resource limits, descriptors 3
//! and 4 for the protocol, and an unprivileged user when the server runs as root.

use crate::domain::function::Function;
use crate::domain::runtime::Language;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The user instances run as when the server is root (`nobody`).
pub const SANDBOX_UID: u32 = 65534;
pub const SANDBOX_GID: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
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

/// Runs in the child between fork and exec: only async-signal-safe calls.
pub fn in_child(requests: i32, answers: i32, limits: &Limits) -> std::io::Result<()> {
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
    if let Some(bytes) = limits.address_space {
        set_limit(libc::RLIMIT_AS, bytes)?;
    }
    set_limit(libc::RLIMIT_FSIZE, limits.file_size)?;
    set_limit(libc::RLIMIT_NOFILE, limits.open_files)?;
    set_limit(libc::RLIMIT_NPROC, limits.processes)?;
    set_limit(libc::RLIMIT_CORE, 0)?;
    if is_root() {
        // SAFETY: dropping privileges in the child only; the group goes first, while we may.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(SANDBOX_GID) != 0
                || libc::setuid(SANDBOX_UID) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    // If the server dies, its instances die with it rather than run on unobserved: the events
    // they ran are taken over and retried by the next node to look. Set after the user change, which
    // clears it.
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag on the calling process.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

pub fn world_readable_dir(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

pub fn world_readable_file(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
}

/// Code is readable by the sandbox user, and writable by nobody but the server.
pub fn world_readable_tree(path: &Path) -> std::io::Result<()> {
    world_readable_dir(path)?;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            world_readable_tree(&entry.path())?;
        } else {
            world_readable_file(&entry.path())?;
        }
    }
    Ok(())
}

/// A folder the instance may write to (its TMPDIR).
pub fn owned_by_sandbox_user(path: &Path) -> std::io::Result<()> {
    if is_root() {
        std::os::unix::fs::chown(path, Some(SANDBOX_UID), Some(SANDBOX_GID))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}
