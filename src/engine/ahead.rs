//! Events claimed ahead of a free worker, so that a worker done with one event starts the next
//! at once instead of waiting for its end to commit with the claim of a successor.
//!
//! Without them every event waits for a commit (its end's, which carries the next claim), and
//! a no-op handler keeps its interpreter busy for well under a tenth of that. With them a
//! worker runs the events it finds here back to back and leaves their ends to commit behind
//! it, many to a transaction.
//!
//! A claimed event is recorded RUNNING, and one claimed ahead waits here before it starts.
//! How many are claimed ahead follows how long runs take, function by function: as many as
//! a function's share of the workers would start within a horizon ([`HORIZON`] unless
//! configured) at its recent pace, none while its runs take longer than that. So an event shows
//! RUNNING before it starts only for about as long as a commit takes. Should the pace change (a
//! fast function's next run hangs), what waited here longer than [`STRANDED_AFTER`] goes back
//! to the queue for any worker of any node, and its function is claimed ahead no more until a
//! run shows its pace again.
//!
//! A worker takes the oldest event whose function may run one more at once: claims may take
//! more of a function than its concurrency allows, starts never do (see
//! [`Running::start`](super::concurrency::Running::start)).

use super::concurrency::Running;
use crate::store::{ClaimedEvent, Function};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How far ahead of its workers this node claims, in run time at the recent pace.
pub const HORIZON: Duration = Duration::from_millis(4);

/// Events claimed ahead per worker at most, however fast runs are.
pub const MAX_PER_WORKER: u32 = 32;

/// How long a claimed-ahead event may wait for a worker before it goes back to the queue.
pub const STRANDED_AFTER: Duration = Duration::from_secs(1);

/// A claimed event waiting for a worker, with what it needs to start.
pub struct Ready {
    pub event: ClaimedEvent,
    pub function: Arc<Function>,
    /// Its place in its function's concurrency, taken at its claim.
    pub running: Running,
    /// The claim that took it (see `Held`).
    pub claim: u64,
    since: Instant,
}

impl Ready {
    pub fn new(event: ClaimedEvent, function: Arc<Function>, running: Running, claim: u64) -> Self {
        Ready {
            event,
            function,
            running,
            claim,
            since: Instant::now(),
        }
    }
}

pub struct Ahead {
    workers: u32,
    horizon: Duration,
    state: Mutex<State>,
    /// Events to keep waiting here as of the last plan, for [`running_low`](Self::running_low).
    target: AtomicU32,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Ready>,
    /// Recent run time per function in microseconds, a moving average; absent until a run of
    /// the function shows it, and again once its events were stranded here.
    paces: HashMap<i64, u64>,
    /// Set as the server stops: what is claimed from then on goes straight back.
    closed: bool,
}

/// What the next claim may take ahead of the workers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Per function, how many of its events beyond its share may be claimed.
    pub by_function: HashMap<i64, u32>,
    /// How many in all, on top of those waiting.
    pub total: u32,
}

/// Functions whose pace is kept at most; beyond, the slow ones are forgotten first.
const MAX_PACES: usize = 1024;

impl Ahead {
    pub fn new(workers: usize, horizon: Duration) -> Self {
        Ahead {
            workers: u32::try_from(workers).unwrap_or(u32::MAX),
            horizon,
            state: Mutex::default(),
            target: AtomicU32::new(0),
        }
    }

    /// Puts a claimed event in line; once the server stops, hands it back instead.
    #[must_use]
    pub fn push(&self, ready: Ready) -> Option<Ready> {
        let mut state = self.state.lock().expect("ahead");
        if state.closed {
            return Some(ready);
        }
        state.queue.push_back(ready);
        None
    }

    /// The oldest event waiting for a worker whose function may run one more now, let start.
    pub fn pop(&self) -> Option<Ready> {
        let mut state = self.state.lock().expect("ahead");
        let startable = state.queue.iter_mut().position(|r| r.running.start())?;
        state.queue.remove(startable)
    }

    pub fn len(&self) -> usize {
        self.state.lock().expect("ahead").queue.len()
    }

    /// What the next claim may take ahead: for each function whose runs are fast, as many as
    /// its share of the workers would start within the horizon at its pace (at most
    /// [`MAX_PER_WORKER`] per worker of its share); none for the others.
    pub fn plan(&self, share: impl Fn(i64) -> u32) -> Plan {
        let horizon = u64::try_from(self.horizon.as_micros()).unwrap_or(u64::MAX);
        let (fast, waiting): (Vec<(i64, u32)>, usize) = {
            let state = self.state.lock().expect("ahead");
            let fast = state
                .paces
                .iter()
                .map(|(&f, &pace)| (f, (horizon / pace.max(1)).min(u64::from(MAX_PER_WORKER))))
                .filter(|&(_, per_worker)| per_worker > 0)
                .map(|(f, per_worker)| (f, per_worker as u32))
                .collect();
            (fast, state.queue.len())
        };
        let by_function: HashMap<i64, u32> = fast
            .into_iter()
            .map(|(f, per_worker)| (f, share(f).saturating_mul(per_worker)))
            .filter(|&(_, n)| n > 0)
            .collect();
        let target = by_function
            .values()
            .fold(0u32, |sum, &n| sum.saturating_add(n))
            .min(self.workers.saturating_mul(MAX_PER_WORKER));
        self.target.store(target, Ordering::Relaxed);
        let waiting = u32::try_from(waiting).unwrap_or(u32::MAX);
        Plan {
            by_function,
            total: target.saturating_sub(waiting),
        }
    }

    /// Whether so few wait that the next claim should top them up.
    pub fn running_low(&self) -> bool {
        let target = u64::from(self.target.load(Ordering::Relaxed));
        target > 0 && (self.len() as u64) * 2 <= target
    }

    /// A run of the function took `took`: its pace moves an eighth of the way towards it. The
    /// first run sets it, so a slow first run claims nothing ahead.
    pub fn ran(&self, function_id: i64, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let horizon = u64::try_from(self.horizon.as_micros()).unwrap_or(u64::MAX);
        let mut state = self.state.lock().expect("ahead");
        if state.paces.len() >= MAX_PACES && !state.paces.contains_key(&function_id) {
            state.paces.retain(|_, pace| *pace < horizon);
            if state.paces.len() >= MAX_PACES {
                state.paces.clear();
            }
        }
        state
            .paces
            .entry(function_id)
            .and_modify(|pace| *pace = *pace - *pace / 8 + took / 8)
            .or_insert(took);
    }

    /// The events that waited longer than `after`: the workers are held by longer runs than
    /// their functions' pace foretold, so those functions are claimed ahead no more until a
    /// run shows their pace again.
    pub fn stranded(&self, after: Duration) -> Vec<Ready> {
        let mut state = self.state.lock().expect("ahead");
        // In line in the order they were claimed, so the stranded ones come first.
        let stale = state
            .queue
            .iter()
            .take_while(|r| r.since.elapsed() > after)
            .count();
        let stranded: Vec<Ready> = state.queue.drain(..stale).collect();
        for ready in &stranded {
            state.paces.remove(&ready.event.function_id);
        }
        stranded
    }

    /// Every waiting event, for good: the server stops.
    pub fn close(&self) -> Vec<Ready> {
        let mut state = self.state.lock().expect("ahead");
        state.closed = true;
        state.queue.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share_of_two(_: i64) -> u32 {
        2
    }

    #[test]
    fn nothing_is_claimed_ahead_until_runs_are_known_to_be_fast() {
        let ahead = Ahead::new(4, HORIZON);
        assert_eq!(ahead.plan(share_of_two), Plan::default(), "no run yet");
        ahead.ran(7, Duration::from_millis(50));
        assert_eq!(ahead.plan(share_of_two).total, 0, "slower than the horizon");
        for _ in 0..64 {
            ahead.ran(7, Duration::from_micros(100));
        }
        // 4 ms of 100 µs runs: 40 per worker, capped at 32, for each of its 2 workers.
        let plan = ahead.plan(share_of_two);
        assert_eq!(plan.by_function, HashMap::from([(7, 64)]));
        assert_eq!(plan.total, 64);
        assert!(ahead.running_low());
    }

    #[test]
    fn only_fast_functions_are_claimed_ahead_and_never_beyond_the_workers() {
        let ahead = Ahead::new(2, HORIZON);
        ahead.ran(1, Duration::from_micros(200));
        ahead.ran(2, Duration::from_secs(2));
        ahead.ran(3, Duration::from_micros(100));
        let plan = ahead.plan(share_of_two);
        assert_eq!(plan.by_function, HashMap::from([(1, 40), (3, 64)]));
        assert_eq!(plan.total, 2 * MAX_PER_WORKER);
    }

    #[test]
    fn a_pace_that_slows_down_stops_claiming_ahead() {
        let ahead = Ahead::new(2, HORIZON);
        ahead.ran(1, Duration::from_micros(200));
        assert_eq!(ahead.plan(share_of_two).total, 40);
        for _ in 0..40 {
            ahead.ran(1, Duration::from_secs(2));
        }
        assert_eq!(ahead.plan(share_of_two).total, 0);
        assert!(!ahead.running_low());
    }
}
