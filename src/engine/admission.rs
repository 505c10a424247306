//! Admission: the checks an invocation passes before anything is written. Over the QPS limit,
//! or with the namespace in arrears, the call is refused and no event record exists.

use crate::clock::{Clock, Millis};
use crate::store::{DynStore, Function};
use std::collections::HashMap;
use std::sync::Mutex;

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

pub struct Admission {
    clock: Clock,
    buckets: Mutex<HashMap<i64, Bucket>>,
}

impl Admission {
    pub fn new(clock: Clock) -> Self {
        Admission {
            clock,
            buckets: Mutex::new(HashMap::new()),
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

    /// Checks the namespace's billing state, then takes a QPS token.
    pub async fn admit(&self, store: &DynStore, function: &Function) -> Result<(), Refusal> {
        let billing = store
            .namespace_billing(&function.region, &function.namespace)
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?
            .unwrap_or_default();
        if let Some(why) = billing.refusal(&function.namespace) {
            return Err(Refusal::InsufficientBalance(why));
        }
        self.take_token(function)
    }
}
