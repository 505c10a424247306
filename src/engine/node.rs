//! This process as a node of the event queue: an id that its claims carry, and a lock file
//! that tells other processes on the same data folder whether it is still alive.
//!
//! Leases alone make takeover safe between any processes sharing a store: a node that stops
//! renewing loses its events when their lease runs out. The lock file makes it quick where it
//! can be: the kernel lets go of a `flock` however its process dies, so a lock file that
//! exists and that nobody holds belongs to a node that is gone for sure, and its events can be
//! taken over at once (after a crash, at the next start) instead of a lease later. A node
//! without a lock file here (another machine, or no data folder) is judged by its leases only.

use super::runtime::{lock_file, try_lock};
use std::path::{Path, PathBuf};

pub struct Node {
    id: String,
    lock: Option<NodeLock>,
}

struct NodeLock {
    dir: PathBuf,
    /// Held (exclusive `flock`) for as long as this process lives.
    _file: std::fs::File,
}

/// Lock files are named by node id while live, `<id>.new` while being set up.
const SETTING_UP: &str = ".new";

/// Node ids are 32 lowercase hex digits: a name that is safe as a file name, whatever a row
/// of the store says.
fn is_node_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Node {
    /// A new node id, with its lock file in `dir` when one is given (held before anything is
    /// claimed under the id).
    pub fn join(dir: Option<&Path>) -> anyhow::Result<Node> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let Some(dir) = dir else {
            return Ok(Node { id, lock: None });
        };
        Node::lock(id, dir)
            .map_err(|e| anyhow::anyhow!("cannot set up the node lock in {}: {e}", dir.display()))
    }

    fn lock(id: String, dir: &Path) -> std::io::Result<Node> {
        std::fs::create_dir_all(dir)?;
        // Locked under another name first, so that no one sees the file unlocked.
        let staging = dir.join(format!("{id}{SETTING_UP}"));
        let file = lock_file(&staging, true)?;
        if !try_lock(&file)? {
            return Err(std::io::Error::other(
                "a new node lock is held by someone else",
            ));
        }
        std::fs::rename(&staging, dir.join(&id))?;
        Ok(Node {
            id,
            lock: Some(NodeLock {
                dir: dir.to_path_buf(),
                _file: file,
            }),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// True only when `other` is gone for sure: its lock file is here and nobody holds it.
    pub fn is_gone(&self, other: &str) -> bool {
        let Some(lock) = &self.lock else { return false };
        if other == self.id || !is_node_id(other) {
            return false;
        }
        lock_file(&lock.dir.join(other), false)
            .and_then(|f| try_lock(&f))
            .unwrap_or(false)
    }

    /// Removes the lock files of gone nodes that hold no event any more (`holding`), and of
    /// starts that died while setting theirs up.
    pub fn forget_gone(&self, holding: &[String]) {
        let Some(lock) = &self.lock else { return };
        let Ok(entries) = std::fs::read_dir(&lock.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(SETTING_UP).unwrap_or(&name);
            if !is_node_id(id) || id == self.id || holding.iter().any(|h| h == id) {
                continue;
            }
            let free = lock_file(&entry.path(), false)
                .and_then(|f| try_lock(&f))
                .unwrap_or(false);
            if free {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Leaving for good: the lock file goes (the lock itself with the process).
    pub fn leave(&self) {
        if let Some(lock) = &self.lock {
            let _ = std::fs::remove_file(lock.dir.join(&self.id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_gone_only_once_its_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let a = Node::join(Some(dir.path())).unwrap();
        let b = Node::join(Some(dir.path())).unwrap();
        assert!(!a.is_gone(b.id()), "b lives");
        assert!(!a.is_gone(a.id()), "a node never judges itself");
        assert!(
            !a.is_gone("0123456789abcdef0123456789abcdef"),
            "unknown here"
        );
        assert!(!a.is_gone("../../etc/passwd"), "not a node id");
        let gone = b.id().to_string();
        drop(b); // as when its process dies: the kernel lets go of the lock
        assert!(a.is_gone(&gone));
        a.forget_gone(std::slice::from_ref(&gone));
        assert!(dir.path().join(&gone).exists(), "it still holds events");
        a.forget_gone(&[]);
        assert!(!dir.path().join(&gone).exists());
        assert!(dir.path().join(a.id()).exists());
        a.leave();
        assert!(!dir.path().join(a.id()).exists());
    }
}
