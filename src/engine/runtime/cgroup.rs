//! Control groups, the kernel's own accounting of a group of processes: each instance gets
//! one with a memory limit (its MemorySize plus an allowance for the interpreter) and a limit
//! on its processes and threads, and the group is how every process an instance started is
//! found and killed, however it detached itself (`setsid`, double forks).
//!
//! cgroup v1 (separate `memory` and `pids` hierarchies) and v2 (one unified hierarchy) are
//! both read from `/proc/self/mountinfo` and `/proc/self/cgroup`. The server makes a folder of
//! its own under its current cgroup in each, and one per instance under that.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Memory an instance may use beyond its function's MemorySize: room for the interpreter and
/// the bootstrap (a Python instance starts at about 10 MB, a Node.js one at about 45 MB).
pub const ALLOWANCE_MB: u64 = 64;

/// Processes and threads one instance may have at once (Node.js alone starts about a dozen
/// threads).
pub const PIDS_PER_INSTANCE: u64 = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// Where this server keeps its instances' groups.
#[derive(Debug)]
pub struct Controllers {
    version: Version,
    /// v1: the server's folder in the memory hierarchy; v2: its folder.
    memory: PathBuf,
    /// v1: its folder in the pids hierarchy; v2: the same as `memory`.
    pids: PathBuf,
}

/// A mounted hierarchy: its mount point, the cgroup path at that point, and its controllers.
struct Mount {
    point: PathBuf,
    root: String,
    v2: bool,
    options: String,
}

fn mounts() -> io::Result<Vec<Mount>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let mut rest = after.split(' ');
            let fstype = rest.next()?;
            let options = rest.nth(1).unwrap_or_default();
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            Some(Mount {
                point: PathBuf::from(*fields.get(4)?),
                root: fields.get(3)?.to_string(),
                v2: fstype == "cgroup2",
                options: options.to_string(),
            })
        })
        .collect())
}

/// This process's place in each hierarchy, from `/proc/self/cgroup`: (controllers, path).
fn memberships() -> io::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string("/proc/self/cgroup")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect())
}

/// The folder of `path` (a cgroup path) under `mount`.
fn folder(mount: &Mount, path: &str) -> Option<PathBuf> {
    let relative = path.strip_prefix(mount.root.trim_end_matches('/'))?;
    Some(mount.point.join(relative.trim_start_matches('/')))
}

const PREFIX: &str = "scf-console-";

impl Controllers {
    /// Finds the memory and pids controllers and makes this server's folder under each, or
    /// says why that is not possible here.
    pub fn detect() -> Result<Controllers, String> {
        let mounts = mounts().map_err(|e| format!("cannot read the mount table: {e}"))?;
        let member = memberships().map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let v1 = |controller: &str| {
            let mount = mounts
                .iter()
                .find(|m| !m.v2 && m.options.split(',').any(|o| o == controller))?;
            let path = member
                .iter()
                .find(|(names, _)| names.split(',').any(|n| n == controller))?
                .1
                .clone();
            folder(mount, &path)
        };
        let name = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        if let (Some(memory), Some(pids)) = (v1("memory"), v1("pids")) {
            for base in [&memory, &pids] {
                remove_stale(base);
            }
            let (memory, pids) = (memory.join(&name), pids.join(&name));
            for dir in [&memory, &pids] {
                std::fs::create_dir(dir)
                    .map_err(|e| format!("cannot make a cgroup at {}: {e}", dir.display()))?;
            }
            return Ok(Controllers {
                version: Version::V1,
                memory,
                pids,
            });
        }
        let unified = mounts.iter().find(|m| m.v2).ok_or(
            "neither the memory and pids controllers of cgroup v1 nor cgroup v2 are mounted",
        )?;
        let path = member
            .iter()
            .find(|(names, _)| names.is_empty())
            .map(|(_, p)| p.clone())
            .ok_or("this process is in no cgroup v2 group")?;
        let own = folder(unified, &path).ok_or("this process's cgroup is outside the mount")?;
        let available = std::fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| available.split_whitespace().any(|x| x == c);
        if !(has("memory") && has("pids")) {
            return Err(format!(
                "cgroup v2 at {} offers no memory and pids controllers to this process (delegate them to its cgroup)",
                own.display()
            ));
        }
        remove_stale(&own);
        let dir = own.join(&name);
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cannot make a cgroup at {}: {e}", dir.display()))?;
        std::fs::write(dir.join("cgroup.subtree_control"), "+memory +pids").map_err(|e| {
            let _ = std::fs::remove_dir(&dir);
            format!(
                "cannot enable the memory and pids controllers under {}: {e}",
                dir.display()
            )
        })?;
        Ok(Controllers {
            version: Version::V2,
            memory: dir.clone(),
            pids: dir,
        })
    }

    /// Where instance groups go, for the start-up report.
    pub fn describe(&self) -> String {
        match self.version {
            Version::V1 => format!(
                "cgroup v1 ({} and {})",
                self.memory.display(),
                self.pids.display()
            ),
            Version::V2 => format!("cgroup v2 ({})", self.memory.display()),
        }
    }

    /// A group for one instance: at most `memory_mb` plus the allowance, and
    /// [`PIDS_PER_INSTANCE`] processes and threads.
    pub fn instance(&self, id: &str, memory_mb: u64) -> io::Result<InstanceGroup> {
        let bytes = (memory_mb + ALLOWANCE_MB) * 1024 * 1024;
        let mut group = InstanceGroup {
            dirs: Vec::new(),
            memory: self.memory.join(id),
            pids: self.pids.join(id),
            version: self.version,
        };
        for dir in [group.memory.clone(), group.pids.clone()] {
            if !group.dirs.contains(&dir) {
                std::fs::create_dir(&dir)?;
                group.dirs.push(dir);
            }
        }
        match self.version {
            Version::V1 => {
                std::fs::write(
                    group.memory.join("memory.limit_in_bytes"),
                    bytes.to_string(),
                )?;
                // Swap would let an instance go past its limit by the size of the swap.
                let _ = std::fs::write(
                    group.memory.join("memory.memsw.limit_in_bytes"),
                    bytes.to_string(),
                );
                std::fs::write(group.pids.join("pids.max"), PIDS_PER_INSTANCE.to_string())?;
            }
            Version::V2 => {
                std::fs::write(group.memory.join("memory.max"), bytes.to_string())?;
                let _ = std::fs::write(group.memory.join("memory.swap.max"), "0");
                std::fs::write(group.pids.join("pids.max"), PIDS_PER_INSTANCE.to_string())?;
            }
        }
        Ok(group)
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for dir in [&self.memory, &self.pids] {
            remove_tree(dir);
        }
    }
}

/// Folders of servers that are gone (`scf-console-<pid>-<uuid>` whose process no longer
/// exists) are removed; another live server's are left alone.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_tree(&entry.path());
        }
    }
}

/// Removes a cgroup folder and the groups under it; groups still holding processes stay.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// One instance's group.
#[derive(Debug)]
pub struct InstanceGroup {
    dirs: Vec<PathBuf>,
    memory: PathBuf,
    pids: PathBuf,
    version: Version,
}

impl InstanceGroup {
    /// `cgroup.procs` of each folder, open for writing, for a child about to exec to join by
    /// writing `0` (itself) to each. Opened only for a start: an instance holds no descriptor
    /// for its group while it lives, so groups cost nothing against the open-file limit.
    pub fn join_files(&self) -> io::Result<Vec<File>> {
        self.dirs
            .iter()
            .map(|dir| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.procs"))
            })
            .collect()
    }

    /// Puts a process started elsewhere (by the fork server) in the group.
    pub fn add(&self, pid: u32) -> io::Result<()> {
        for mut file in self.join_files()? {
            file.write_all(pid.to_string().as_bytes())?;
        }
        Ok(())
    }

    /// Whether the kernel killed a process of the group for going over the memory limit.
    pub fn out_of_memory(&self) -> bool {
        let (file, key) = match self.version {
            Version::V1 => ("memory.oom_control", "oom_kill"),
            Version::V2 => ("memory.events", "oom_kill"),
        };
        std::fs::read_to_string(self.memory.join(file))
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == key).then(|| v.trim().parse::<u64>().ok())?
                })
            })
            .is_some_and(|kills| kills > 0)
    }

    /// The processes in the group now.
    fn members(&self) -> Vec<i32> {
        std::fs::read_to_string(self.pids.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Kills every process of the group, again until none is left: one that forks while
    /// being killed has its child killed in the next round; the process limit bounds the
    /// rounds.
    pub fn kill_all(&self) {
        self.kill_all_but(&[]);
    }

    /// Kills every process of the group but those in `keep` (the instance's own).
    pub fn kill_all_but(&self, keep: &[u32]) {
        for _ in 0..100 {
            let members: Vec<i32> = self
                .members()
                .into_iter()
                .filter(|pid| !keep.contains(&(*pid as u32)))
                .collect();
            if members.is_empty() {
                return;
            }
            for pid in members {
                // SAFETY: kill has no memory effects; the pids come from the group's own list.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for InstanceGroup {
    fn drop(&mut self) {
        self.kill_all();
        let dirs = std::mem::take(&mut self.dirs);
        // A killed process leaves its group a moment after the signal, so removing the
        // folders may take a few tries: not on a thread that serves requests and events.
        let remove = move || {
            for dir in &dirs {
                for _ in 0..50 {
                    if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn_blocking(remove);
            }
            Err(_) => remove(),
        }
    }
}
