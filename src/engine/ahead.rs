//! Events claimed ahead of a free worker, so that a worker done with one event starts the next
//! at once instead of waiting for its end to commit with the claim of a successor.
//!
//! Without them every event waits for a commit (its end's, which carries the next claim), and
//! a no-op handler keeps its interpreter busy for well under a tenth of that. With them a
//! worker runs the events it finds here back to back and leaves their ends to commit behind
//! it, many to a transaction.
//!
//! A claimed event is recorded RUNNING, and one claimed ahead waits here before it starts.
//! How many are claimed ahead follows how long runs take: as many as the workers would start
//! within a horizon ([`HORIZON`] unless configured) at the recent pace, none while runs take
//! longer than that. So an event shows RUNNING before it starts only for about as long as a
//! commit takes. Should the pace change (a fast function's next run hangs), what waited here
//! longer than [`STRANDED_AFTER`] goes back to the queue for any worker of any node.
//!
//! A worker takes the oldest event whose function may run one more at once: claims may take
//! more of a function than its concurrency allows, starts never do (see
//! [`Running::start`](super::concurrency::Running::start)).

use super::concurrency::Running;
use crate::store::{ClaimedEvent, Function};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
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
    queue: Mutex<VecDeque<Ready>>,
    /// Recent run time in microseconds, a moving average; `u64::MAX` until the first run.
    pace_us: AtomicU64,
}

impl Ahead {
    pub fn new(workers: usize, horizon: Duration) -> Self {
        Ahead {
            workers: u32::try_from(workers).unwrap_or(u32::MAX),
            horizon,
            queue: Mutex::default(),
            pace_us: AtomicU64::new(u64::MAX),
        }
    }

    pub fn push(&self, ready: Ready) {
        self.queue.lock().expect("ahead").push_back(ready);
    }

    /// The oldest event waiting for a worker whose function may run one more now, let start.
    pub fn pop(&self) -> Option<Ready> {
        let mut queue = self.queue.lock().expect("ahead");
        let startable = queue.iter_mut().position(|ready| ready.running.start())?;
        queue.remove(startable)
    }

    pub fn len(&self) -> usize {
        self.queue.lock().expect("ahead").len()
    }

    /// Events to claim ahead on top of those waiting: none while runs are slow.
    pub fn wanted(&self) -> u32 {
        let target = self.target();
        target.saturating_sub(u32::try_from(self.len()).unwrap_or(u32::MAX))
    }

    /// Whether so few wait that the next claim should top them up.
    pub fn running_low(&self) -> bool {
        let target = self.target();
        target > 0 && (self.len() as u64) * 2 <= u64::from(target)
    }

    fn target(&self) -> u32 {
        let pace = self.pace_us.load(Ordering::Relaxed).max(1);
        let horizon = u64::try_from(self.horizon.as_micros()).unwrap_or(u64::MAX);
        let per_worker = (horizon / pace).min(u64::from(MAX_PER_WORKER));
        self.workers.saturating_mul(per_worker as u32)
    }

    /// A run took `took`: the pace moves an eighth of the way towards it. The first run sets
    /// it, so a slow first run claims nothing ahead.
    pub fn ran(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .pace_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |pace| {
                Some(if pace == u64::MAX {
                    took
                } else {
                    pace - pace / 8 + took / 8
                })
            });
    }

    /// Every waiting event, when the oldest has waited longer than `after`: the workers are
    /// held by longer runs than the pace foretold.
    pub fn stranded(&self, after: Duration) -> Vec<Ready> {
        let mut queue = self.queue.lock().expect("ahead");
        match queue.front() {
            Some(oldest) if oldest.since.elapsed() > after => {
                // The pace misled: nothing more is claimed ahead until a run shows it again.
                self.pace_us.store(u64::MAX, Ordering::Relaxed);
                queue.drain(..).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Every waiting event (the server stops).
    pub fn take_all(&self) -> Vec<Ready> {
        self.queue.lock().expect("ahead").drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_claimed_ahead_until_runs_are_known_to_be_fast() {
        let ahead = Ahead::new(2, HORIZON);
        assert_eq!(ahead.wanted(), 0, "no run yet");
        ahead.ran(Duration::from_millis(50));
        assert_eq!(ahead.wanted(), 0, "slower than the horizon");
        for _ in 0..64 {
            ahead.ran(Duration::from_micros(100));
        }
        // 4 ms of 100 µs runs: 40 per worker, capped at 32.
        assert_eq!(ahead.wanted(), 2 * MAX_PER_WORKER);
        assert!(ahead.running_low());
    }

    #[test]
    fn a_pace_that_slows_down_stops_claiming_ahead() {
        let ahead = Ahead::new(2, HORIZON);
        ahead.ran(Duration::from_micros(200));
        assert_eq!(ahead.wanted(), 2 * 20);
        for _ in 0..40 {
            ahead.ran(Duration::from_secs(2));
        }
        assert_eq!(ahead.wanted(), 0);
        assert!(!ahead.running_low());
    }
}
