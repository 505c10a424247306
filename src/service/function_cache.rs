//! Functions as lookups by name find them, kept for a moment: an invocation is then accepted
//! without reading the store for its function (each read is a round trip to SQLite's thread,
//! which is what an accept spends most of its time on).
//!
//! This process's own writes forget what they change at once (every function write of the
//! service layer goes through `functions::written`); a write by another process sharing the
//! store shows here within [`TTL`], as a key disabled elsewhere does in the key cache. A
//! function deleted elsewhere meanwhile takes no event: the store refuses its inserts.

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
    entries: Mutex<HashMap<FunctionKey, (Function, Instant)>>,
}

impl FunctionCache {
    pub fn get(&self, key: &FunctionKey) -> Option<Function> {
        let entries = self.entries.lock().expect("function cache");
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(f, _)| f.clone())
    }

    pub fn put(&self, f: &Function) {
        let mut entries = self.entries.lock().expect("function cache");
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, at)| at.elapsed() < TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(f.key(), (f.clone(), Instant::now()));
    }

    pub fn forget(&self, key: &FunctionKey) {
        self.entries.lock().expect("function cache").remove(key);
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
        assert!(cache.get(&f.key()).is_none());
        cache.put(&f);
        assert_eq!(cache.get(&f.key()).map(|c| c.name), Some("orders".into()));
        cache.forget(&f.key());
        assert!(cache.get(&f.key()).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = FunctionCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            cache.put(&function(&format!("f{i}")));
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
