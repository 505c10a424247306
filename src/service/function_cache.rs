//! Functions as invocations find them, kept for a moment: an invocation is then accepted
//! without reading the store for its function (each read is a round trip to SQLite's thread,
//! which is what an accept spends most of its time on). Only invocations read it: every change
//! reads the function fresh from the store, so it never builds on a stale copy.
//!
//! This process's own writes forget what they change at once (every function write of the
//! service layer goes through `functions::written`), and a read that raced such a write is not
//! kept (a generation counts the forgets). A write by another process sharing the store shows
//! here within [`TTL`], as a key disabled elsewhere does in the key cache; a function deleted
//! elsewhere meanwhile takes no async event (the store refuses its inserts).

use crate::store::{Function, FunctionKey};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long another process's change may go unseen here.
pub const TTL: Duration = Duration::from_secs(1);

/// Entries kept at most; beyond, the oldest half of the lookups start again from the store.
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct FunctionCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<FunctionKey, (Function, Instant)>,
    /// How many forgets there have been: a store read that began before one is not kept.
    generation: u64,
}

impl FunctionCache {
    /// The cached function, or the generation to hand to [`put`](Self::put) with what the
    /// store answers.
    pub fn get(&self, key: &FunctionKey) -> Result<Function, u64> {
        let inner = self.inner.lock().expect("function cache");
        inner
            .entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(f, _)| f.clone())
            .ok_or(inner.generation)
    }

    /// Keeps `f`, read from the store since [`get`](Self::get) answered `generation`, unless a
    /// write forgot something meanwhile (the read may predate it).
    pub fn put(&self, f: &Function, generation: u64) {
        let mut inner = self.inner.lock().expect("function cache");
        if inner.generation != generation {
            return;
        }
        let entries = &mut inner.entries;
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, at)| at.elapsed() < TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(f.key(), (f.clone(), Instant::now()));
    }

    pub fn forget(&self, key: &FunctionKey) {
        let mut inner = self.inner.lock().expect("function cache");
        inner.entries.remove(key);
        inner.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(name: &str) -> Function {
        Function {
            id: 1,
            region: "r".into(),
            namespace: "default".into(),
            name: name.into(),
            runtime: "Python3.10".into(),
            handler: "index.main_handler".into(),
            description: String::new(),
            memory_size: 128,
            timeout: 3,
            environment: vec![],
            async_run_enable: true,
            trace_enable: true,
            retry_num: 2,
            msg_ttl: 3600,
            qps_limit: 1000,
            public_net: true,
            reserved_mem: None,
            trace_disabled_at: None,
            created_at: 0,
            modified_at: 0,
            deleted_at: None,
        }
    }

    #[test]
    fn a_function_is_served_until_forgotten() {
        let cache = FunctionCache::default();
        let f = function("orders");
        let generation = cache.get(&f.key()).unwrap_err();
        cache.put(&f, generation);
        assert_eq!(cache.get(&f.key()).map(|c| c.name), Ok("orders".into()));
        cache.forget(&f.key());
        assert!(cache.get(&f.key()).is_err());
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_kept() {
        let cache = FunctionCache::default();
        let f = function("orders");
        // The read starts, a write forgets the function, then the read's old copy arrives.
        let generation = cache.get(&f.key()).unwrap_err();
        cache.forget(&f.key());
        cache.put(&f, generation);
        assert!(cache.get(&f.key()).is_err());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = FunctionCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            cache.put(&function(&format!("f{i}")), 0);
        }
        assert!(cache.inner.lock().unwrap().entries.len() <= MAX_ENTRIES);
    }
}
