//! Warm instances per function, reused across events as SCF reuses them, with a per-function
//! concurrency limit. An instance is reused only for the function version it was started for.

use super::runtime::Instance;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

#[derive(Default)]
struct FunctionPool {
    idle: Vec<Instance>,
    permits: Option<Arc<Semaphore>>,
}

#[derive(Default)]
pub struct Pools {
    inner: Mutex<HashMap<i64, FunctionPool>>,
}

impl Pools {
    /// The semaphore limiting how many events of one function run at once.
    pub fn permits(&self, function_id: i64, per_function: usize) -> Arc<Semaphore> {
        let mut pools = self.inner.lock().expect("pool lock");
        pools
            .entry(function_id)
            .or_default()
            .permits
            .get_or_insert_with(|| Arc::new(Semaphore::new(per_function)))
            .clone()
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
