//! Admission: the checks an invocation passes before anything is written. Over the QPS limit,
//! or with the namespace in arrears, the call is refused and no event record exists.

use crate::clock::{Clock, Millis};
use crate::store::{Billing, DynStore, Function};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long another process's change of a namespace's billing may go unseen here.
const BILLING_TTL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// More invocations per second than the function's QPS limit.
    RequestLimitExceeded { limit: u32 },
    /// The namespace is suspended or has used its invocation quota.
    InsufficientBalance(String),
    /// The store could not be read.
    Unavailable(String),
    /// The function's reserved concurrency is 0: it runs nothing.
    ReservedNone,
}

impl std::fmt::Display for Refusal {
    /// Why, in the user's terms; the console and the API both say it this way.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::RequestLimitExceeded { limit } => write!(
                f,
                "The function's QPS limit ({limit} per second) is exceeded; try again shortly."
            ),
            Refusal::InsufficientBalance(why) | Refusal::Unavailable(why) => f.write_str(why),
            Refusal::ReservedNone => f.write_str(
                "The function's reserved concurrency is 0 MB, so it runs nothing; raise or delete the reservation.",
            ),
        }
    }
}

/// A token bucket per function: `limit` tokens, refilled at `limit` per second.
struct Bucket {
    tokens: f64,
    at: Millis,
}

/// Invocations the store granted this node in a function's current second, not used yet.
#[derive(Default)]
struct Granted {
    second: i64,
    left: u32,
    /// The store has none left for this second.
    spent: bool,
}

pub struct Admission {
    clock: Clock,
    buckets: Mutex<HashMap<i64, Bucket>>,
    /// With a store shared by several nodes: what each function has left here of its share.
    granted: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<Granted>>>>,
    /// The store keeps no shared count (SQLite): each process limits its own calls.
    local_only: std::sync::atomic::AtomicBool,
    /// Billing of namespaces without an invocation quota, as last read: an accept then reads
    /// nothing from the store. A namespace with a quota is read at every accept, so that once
    /// it is used up calls are refused before any write (the store itself holds the quota
    /// against accepts in flight at once; see `quota_used`).
    billing: Mutex<BillingCache>,
}

#[derive(Default)]
struct BillingCache {
    entries: HashMap<(String, String), (Billing, Instant)>,
    /// How many forgets there have been: a store read that began before one is not kept.
    generation: u64,
}

impl Admission {
    pub fn new(clock: Clock) -> Self {
        Admission {
            clock,
            buckets: Mutex::new(HashMap::new()),
            granted: Mutex::default(),
            local_only: std::sync::atomic::AtomicBool::new(false),
            billing: Mutex::default(),
        }
    }

    fn take_token(&self, function: &Function) -> Result<(), Refusal> {
        let limit = f64::from(function.qps_limit.max(1));
        let now = self.clock.now_millis();
        let mut buckets = self.buckets.lock().expect("admission lock");
        let bucket = buckets.entry(function.id).or_insert(Bucket {
            tokens: limit,
            at: now,
        });
        let elapsed = (now - bucket.at).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * limit).min(limit);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Refusal::RequestLimitExceeded {
                limit: function.qps_limit,
            })
        }
    }

    /// Checks the namespace's billing state, then takes a QPS token: from the count all nodes
    /// share when the store keeps one, from this process's own bucket otherwise.
    pub async fn admit(&self, store: &DynStore, function: &Function) -> Result<(), Refusal> {
        let billing = self.billing_of(store, function).await?;
        if let Some(why) = billing.refusal(&function.namespace) {
            return Err(Refusal::InsufficientBalance(why));
        }
        match self.take_shared(store, function).await? {
            Some(true) => Ok(()),
            Some(false) => Err(Refusal::RequestLimitExceeded {
                limit: function.qps_limit,
            }),
            None => self.take_token(function),
        }
    }

    /// One invocation of the function's current second, from what the store granted this
    /// node; asks for a few more when none is left. The limit then holds for all nodes
    /// together, counted when granted (no overshoot by accepts in flight); a node may hold a
    /// few it does not use by the end of the second, so the others may get fewer than the
    /// limit, never more. `None`: the store keeps no shared count.
    async fn take_shared(
        &self,
        store: &DynStore,
        function: &Function,
    ) -> Result<Option<bool>, Refusal> {
        use std::sync::atomic::Ordering;
        if self.local_only.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let share = self
            .granted
            .lock()
            .expect("admission lock")
            .entry(function.id)
            .or_default()
            .clone();
        // One ask of the store at a time per function: calls that arrive meanwhile wait for
        // its answer and use what it brought, rather than each asking for a share of its own,
        // which would leave this node holding many times what it uses and the others short.
        let mut g = share.lock().await;
        let second = self.clock.now_millis().div_euclid(1000);
        if g.second != second {
            *g = Granted {
                second,
                ..Granted::default()
            };
        }
        if g.left > 0 {
            g.left -= 1;
            return Ok(Some(true));
        }
        // The nodes together have used this second's limit: refused until the next one, with
        // no more asking.
        if g.spent {
            return Ok(Some(false));
        }
        let limit = function.qps_limit.max(1);
        let want = (limit / 50).clamp(1, 20);
        let got = store
            .take_invocations(function.id, second, want, limit)
            .await
            .map_err(|e| Refusal::Unavailable(format!("The QPS limit cannot be counted: {e}")))?;
        let Some(got) = got else {
            self.local_only.store(true, Ordering::Relaxed);
            return Ok(None);
        };
        if got == 0 {
            g.spent = true;
            return Ok(Some(false));
        }
        g.left = got - 1;
        Ok(Some(true))
    }

    async fn billing_of(&self, store: &DynStore, function: &Function) -> Result<Billing, Refusal> {
        let key = (function.region.clone(), function.namespace.clone());
        let generation = {
            let cache = self.billing.lock().expect("billing cache");
            if let Some((billing, at)) = cache.entries.get(&key)
                && at.elapsed() < BILLING_TTL
            {
                return Ok(*billing);
            }
            cache.generation
        };
        let billing = store
            .namespace_billing(&function.region, &function.namespace)
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?
            .unwrap_or_default();
        let mut cache = self.billing.lock().expect("billing cache");
        // Kept only without a quota, and unless a change was made meanwhile (the read may
        // predate it). Namespaces are few; the map stays small.
        if billing.invocation_quota.is_none() && cache.generation == generation {
            cache.entries.insert(key, (billing, Instant::now()));
        } else {
            cache.entries.remove(&key);
        }
        Ok(billing)
    }

    /// Why the store refused an accept for its namespace's quota (accepts in flight at once
    /// took what was left), in the words an accept refused here would have; the next accept
    /// reads the billing afresh.
    pub async fn quota_used(&self, store: &DynStore, function: &Function) -> Refusal {
        self.forget_billing(&function.region, &function.namespace);
        match self.billing_of(store, function).await {
            Ok(billing) => Refusal::InsufficientBalance(billing.quota_refusal(&function.namespace)),
            Err(unreadable) => unreadable,
        }
    }

    /// After this process changed a namespace's billing: the next accept reads it.
    pub fn forget_billing(&self, region: &str, namespace: &str) {
        let mut cache = self.billing.lock().expect("billing cache");
        cache
            .entries
            .remove(&(region.to_string(), namespace.to_string()));
        cache.generation += 1;
    }
}
