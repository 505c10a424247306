//! Warm instances per function, reused across events as SCF reuses them. An instance is reused only for the function version it was started for.
//! Live instances, idle or running, are capped: each holds descriptors and memory in this
//! process, so at the cap the least recently used idle instance makes room for a new one.

use super::runtime::{Instance, RuntimeDir};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct FunctionPool {
    idle: Vec<Instance>,
}

pub struct Pools {
    inner: Mutex<HashMap<i64, FunctionPool>>,
    /// One permit per live instance.
    capacity: Arc<Semaphore>,
    /// An instance went idle: one waiting for room may stop it now.
    idled: Notify,
}

/// Where a new event of a function version runs.
pub enum Room {
    /// An instance of its version went idle while it waited.
    Warm(Box<Instance>),
    /// Room for a new instance.
    Free(OwnedSemaphorePermit),
}

/// Why no room was made for a new instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// Every instance stayed busy for the whole wait.
    Busy,
    Stopping,
}

impl Pools {
    pub fn new(max_instances: usize) -> Pools {
        Pools {
            inner: Mutex::default(),
            capacity: Arc::new(Semaphore::new(max_instances.max(1))),
            idled: Notify::new(),
        }
    }

    /// Room for one more live instance of `version`: free room, or room made by stopping the
    /// least recently used idle instance (of any function), or room freed by an instance that
    /// ends within `wait`; or an instance of the version itself, should one go idle meanwhile.
    pub async fn room(
        &self,
        version: (i64, i64),
        dir: &RuntimeDir,
        wait: Duration,
        cancel: &CancellationToken,
    ) -> Result<Room, NoRoom> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let idled = self.idled.notified();
            tokio::pin!(idled);
            idled.as_mut().enable();
            if let Ok(permit) = Arc::clone(&self.capacity).try_acquire_owned() {
                return Ok(Room::Free(permit));
            }
            let (warm, stale) = self.take_idle(version);
            for old in stale {
                old.retire(dir).await;
            }
            if let Some(instance) = warm {
                return Ok(Room::Warm(Box::new(instance)));
            }
            if let Some(victim) = self.take_least_recently_used() {
                tracing::debug!(instance = %victim.id, "stopping the least recently used idle instance to make room");
                // Its permit comes back as it drops: to us, or to an event that waited longer.
                victim.retire(dir).await;
                continue;
            }
            tokio::select! {
                permit = Arc::clone(&self.capacity).acquire_owned() => {
                    return Ok(Room::Free(permit.expect("never closed")));
                }
                _ = idled => {}
                _ = tokio::time::sleep_until(deadline) => return Err(NoRoom::Busy),
                _ = cancel.cancelled() => return Err(NoRoom::Stopping),
            }
        }
    }

    /// Stops up to `count` of the least recently used idle instances: the machine ran out of
    /// descriptors or processes below the cap (a cap set too high, or others using them), and
    /// idle instances are what can be given back.
    pub async fn shed(&self, count: usize, dir: &RuntimeDir) -> usize {
        let mut stopped = 0;
        while stopped < count {
            let Some(victim) = self.take_least_recently_used() else {
                break;
            };
            victim.retire(dir).await;
            stopped += 1;
        }
        stopped
    }

    fn take_least_recently_used(&self) -> Option<Instance> {
        let mut pools = self.inner.lock().expect("pool lock");
        let (pool, index) = pools
            .values()
            .enumerate()
            .flat_map(|(p, pool)| {
                pool.idle
                    .iter()
                    .enumerate()
                    .map(move |(i, inst)| (p, i, inst.last_used))
            })
            .min_by_key(|&(_, _, used)| used)
            .map(|(p, i, _)| (p, i))?;
        let pool = pools.values_mut().nth(pool).expect("found above");
        Some(pool.idle.remove(index))
    }

    /// A warm instance of this version, if one is idle. Instances of older versions found on
    /// the way are handed back to be killed.
    pub fn take_idle(&self, version: (i64, i64)) -> (Option<Instance>, Vec<Instance>) {
        let mut pools = self.inner.lock().expect("pool lock");
        let Some(pool) = pools.get_mut(&version.0) else {
            return (None, Vec::new());
        };
        let (current, stale): (Vec<Instance>, Vec<Instance>) =
            pool.idle.drain(..).partition(|i| i.version == version);
        pool.idle = current;
        // The most recently used instance is the warmest.
        (pool.idle.pop(), stale)
    }

    /// Returns an instance after a successful invocation.
    pub fn put_idle(&self, instance: Instance) {
        let mut pools = self.inner.lock().expect("pool lock");
        pools
            .entry(instance.version.0)
            .or_default()
            .idle
            .push(instance);
        self.idled.notify_waiters();
    }

    /// Instances idle for longer than `idle_timeout`, removed from the pool to be killed.
    pub fn take_expired(&self, idle_timeout: Duration) -> Vec<Instance> {
        let now = Instant::now();
        let mut pools = self.inner.lock().expect("pool lock");
        let mut expired = Vec::new();
        for pool in pools.values_mut() {
            let (keep, old): (Vec<Instance>, Vec<Instance>) = pool
                .idle
                .drain(..)
                .partition(|i| now.duration_since(i.last_used) < idle_timeout);
            pool.idle = keep;
            expired.extend(old);
        }
        expired
    }

    /// Every idle instance, for shutdown.
    pub fn take_all(&self) -> Vec<Instance> {
        let mut pools = self.inner.lock().expect("pool lock");
        pools.values_mut().flat_map(|p| p.idle.drain(..)).collect()
    }

    pub fn idle_count(&self) -> usize {
        let pools = self.inner.lock().expect("pool lock");
        pools.values().map(|p| p.idle.len()).sum()
    }
}
