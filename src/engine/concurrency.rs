//! Who may run how many events at once on this node. The node runs `workers` events at once.
//! A function with a reservation (SCF's reserved concurrency) has that many of them to itself,
//! and no more. Functions without one share the rest, each at most `per_function` of them,
//! so one function's long events always leave room for the others; and claims give every
//! function a turn before any gets a second one, so one function's backlog does not hold
//! back another's events queued behind it. The rules live here; the store applies them to
//! the queue as the numbers of a [`ClaimBudget`], and synchronous invocations wait on them.

use crate::store::queue::ClaimBudget;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

pub struct Concurrency {
    workers: u32,
    per_function: u32,
    state: Mutex<State>,
    /// An event ended: a synchronous invocation waiting for room may go.
    freed: Notify,
}

#[derive(Default)]
struct State {
    /// Events at once reserved per function.
    reserved: HashMap<i64, u32>,
    /// Events claimed here per function and not yet done with (running, or claimed ahead of
    /// a worker), synchronous ones included: what claims and synchronous invocations count.
    running: HashMap<i64, u32>,
    /// Of those, the events whose handler was let start: what a worker about to start one
    /// counts.
    started: HashMap<i64, u32>,
    /// Synchronous invocations waiting for room, per function: workers start no event in
    /// their way meanwhile (a worker ending one event starts the next within microseconds,
    /// and would otherwise always get the freed room first).
    sync_waiting: HashMap<i64, u32>,
    /// The most events of each function started at once since the last [`take_peaks`]
    /// (`Concurrency::take_peaks`), for its Monitoring tab.
    peaks: HashMap<i64, u32>,
}

impl State {
    /// The slots functions without a reservation share; always at least one, even when
    /// reservations made under other memory sizes add up to more than the workers.
    fn unreserved_pool(&self, workers: u32) -> u32 {
        let reserved: u32 = self.reserved.values().sum();
        workers.saturating_sub(reserved).max(1)
    }

    fn unreserved_running(&self) -> u32 {
        self.unreserved_in(&self.running)
    }

    fn unreserved_in(&self, counted: &HashMap<i64, u32>) -> u32 {
        counted
            .iter()
            .filter(|(id, _)| !self.reserved.contains_key(id))
            .map(|(_, n)| n)
            .sum()
    }

    fn running(&self, function_id: i64) -> u32 {
        self.running.get(&function_id).copied().unwrap_or(0)
    }

    /// Counts one more started event of a function, and its peak.
    fn start(&mut self, function_id: i64) {
        let started = self.started.entry(function_id).or_default();
        *started += 1;
        let now = *started;
        let peak = self.peaks.entry(function_id).or_default();
        *peak = (*peak).max(now);
    }

    /// Whether a synchronous invocation waits for the room an event of the function would
    /// take: that of the same function, or for functions without a reservation, the room
    /// they share.
    fn sync_in_the_way(&self, function_id: i64) -> bool {
        if self.sync_waiting.is_empty() {
            return false;
        }
        self.sync_waiting.contains_key(&function_id)
            || (!self.reserved.contains_key(&function_id)
                && self
                    .sync_waiting
                    .keys()
                    .any(|id| !self.reserved.contains_key(id)))
    }
}

/// Counts one claimed event of a function until dropped, and once it is let start, one
/// started event.
pub struct Running {
    of: Arc<Concurrency>,
    function_id: i64,
    started: bool,
}

impl Running {
    /// Lets the event start if its function has room for one more running now. An event
    /// claimed ahead of a worker waits for this: claimed, it counts against its function's
    /// claims, and only started events against how many may run at once.
    pub fn start(&mut self) -> bool {
        if self.started {
            return true;
        }
        let mut state = self.of.state.lock().expect("concurrency lock");
        if state.sync_in_the_way(self.function_id)
            || self.of.has_room(&state, self.function_id, &state.started) != Ok(true)
        {
            return false;
        }
        state.start(self.function_id);
        self.started = true;
        true
    }
}

fn count_down(counted: &mut HashMap<i64, u32>, function_id: i64) {
    if let Some(n) = counted.get_mut(&function_id) {
        *n -= 1;
        if *n == 0 {
            counted.remove(&function_id);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        {
            let mut state = self.of.state.lock().expect("concurrency lock");
            count_down(&mut state.running, self.function_id);
            if self.started {
                count_down(&mut state.started, self.function_id);
            }
        }
        self.of.freed.notify_waiters();
    }
}

/// Counts a synchronous invocation waiting for room until dropped, however the wait ends.
struct SyncWaiting {
    of: Arc<Concurrency>,
    function_id: i64,
}

impl Drop for SyncWaiting {
    fn drop(&mut self) {
        let mut state = self.of.state.lock().expect("concurrency lock");
        count_down(&mut state.sync_waiting, self.function_id);
    }
}

/// A synchronous invocation that cannot run at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedNone;

impl Concurrency {
    pub fn new(workers: usize, per_function: usize) -> Arc<Self> {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Arc::new(Concurrency {
            workers: clamp(workers),
            per_function: clamp(per_function).max(1),
            state: Mutex::default(),
            freed: Notify::new(),
        })
    }

    /// The reservations in force, as events at once per function; whether they changed.
    pub fn set_reservations(&self, reserved: impl IntoIterator<Item = (i64, u32)>) -> bool {
        let reserved: HashMap<i64, u32> = reserved.into_iter().collect();
        let mut state = self.state.lock().expect("concurrency lock");
        if state.reserved == reserved {
            return false;
        }
        state.reserved = reserved;
        drop(state);
        // A raised reservation may let a waiting synchronous invocation go.
        self.freed.notify_waiters();
        true
    }

    /// The most events of one function without a reservation at once.
    fn unreserved_cap(&self, state: &State) -> u32 {
        self.per_function.min(state.unreserved_pool(self.workers))
    }

    /// Whether one more event of the function fits beside those in `counted`: its
    /// reservation, or its share of the workers without one.
    fn has_room(
        &self,
        state: &State,
        function_id: i64,
        counted: &HashMap<i64, u32>,
    ) -> Result<bool, ReservedNone> {
        let n = counted.get(&function_id).copied().unwrap_or(0);
        Ok(match state.reserved.get(&function_id) {
            Some(0) => return Err(ReservedNone),
            Some(&reserved) => n < reserved,
            None => {
                n < self.unreserved_cap(state)
                    && state.unreserved_in(counted) < state.unreserved_pool(self.workers)
            }
        })
    }

    /// What a claim of up to `free` events may take, some of them ahead of a free worker:
    /// a function named in `ahead` may have that many more claimed than its share, which then
    /// bounds only how many of its events start at once (see [`Running::start`]); and the
    /// claim may take `ahead_total` more than the workers without a reservation have room for.
    pub fn budget(&self, free: u32, ahead: &HashMap<i64, u32>, ahead_total: u32) -> ClaimBudget {
        let state = self.state.lock().expect("concurrency lock");
        let cap = self.unreserved_cap(&state);
        // Places of the shared workers not running anything: functions not claimed ahead take
        // no more than that each, so that the allowance of those claimed ahead is not spent
        // on events that wait for a worker (functions whose pace is unknown or slow).
        let room = state
            .unreserved_pool(self.workers)
            .saturating_sub(state.unreserved_in(&state.started));
        let unreserved = |id: &i64, n: u32| match ahead.get(id) {
            Some(&extra) => cap.saturating_add(extra).saturating_sub(n),
            None => cap.saturating_sub(n).min(room),
        };
        let extra = |id: &i64| ahead.get(id).copied().unwrap_or(0);
        let mut functions: Vec<(i64, u32, bool)> = state
            .reserved
            .iter()
            .map(|(id, &reserved)| {
                let allowed = match reserved {
                    0 => 0,
                    n => n.saturating_add(extra(id)),
                };
                (*id, allowed.saturating_sub(state.running(*id)), true)
            })
            .collect();
        functions.extend(
            state
                .running
                .iter()
                .filter(|(id, _)| !state.reserved.contains_key(id))
                .map(|(id, &n)| (*id, unreserved(id, n), false)),
        );
        functions.extend(
            ahead
                .iter()
                .filter(|(id, _)| {
                    !state.reserved.contains_key(id) && !state.running.contains_key(id)
                })
                .map(|(&id, _)| (id, unreserved(&id, 0), false)),
        );
        ClaimBudget {
            limit: free,
            unreserved_limit: state
                .unreserved_pool(self.workers)
                .saturating_sub(state.unreserved_running())
                .saturating_add(ahead_total),
            per_function: cap.min(room),
            functions,
        }
    }

    /// How many events of the function may run at once.
    pub fn share(&self, function_id: i64) -> u32 {
        let state = self.state.lock().expect("concurrency lock");
        match state.reserved.get(&function_id) {
            Some(&reserved) => reserved,
            None => self.unreserved_cap(&state),
        }
    }

    /// Counts a claimed event, which its claim's budget made room for; it has yet to start.
    pub fn claimed(self: &Arc<Self>, function_id: i64) -> Running {
        let mut state = self.state.lock().expect("concurrency lock");
        *state.running.entry(function_id).or_default() += 1;
        Running {
            of: Arc::clone(self),
            function_id,
            started: false,
        }
    }

    /// Room for a synchronous invocation: at once when the function runs fewer than its share,
    /// otherwise when one of the events in its way ends. Events claimed ahead of a worker are
    /// not in its way: they start only when there is room.
    pub async fn acquire(self: &Arc<Self>, function_id: i64) -> Result<Running, ReservedNone> {
        let mut waiting: Option<SyncWaiting> = None;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut state = self.state.lock().expect("concurrency lock");
                if self.has_room(&state, function_id, &state.started)? {
                    *state.running.entry(function_id).or_default() += 1;
                    state.start(function_id);
                    return Ok(Running {
                        of: Arc::clone(self),
                        function_id,
                        started: true,
                    });
                }
                if waiting.is_none() {
                    *state.sync_waiting.entry(function_id).or_default() += 1;
                    waiting = Some(SyncWaiting {
                        of: Arc::clone(self),
                        function_id,
                    });
                }
            }
            freed.await;
        }
    }

    /// The most events at once of a function without a reservation, as things stand.
    pub fn unreserved_cap_now(&self) -> u32 {
        let state = self.state.lock().expect("concurrency lock");
        self.unreserved_cap(&state)
    }

    /// The most events of each function that ran at once here since the last call (functions
    /// that ran none are left out); the count starts again from what runs now.
    pub fn take_peaks(&self) -> Vec<(i64, u32)> {
        let mut state = self.state.lock().expect("concurrency lock");
        let State { started, peaks, .. } = &mut *state;
        let taken = std::mem::replace(peaks, started.clone());
        taken.into_iter().filter(|&(_, n)| n > 0).collect()
    }

    /// Events of a function running here now (started, not only claimed).
    pub fn running(&self, function_id: i64) -> u32 {
        let state = self.state.lock().expect("concurrency lock");
        state.started.get(&function_id).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowance(b: &ClaimBudget, id: i64) -> Option<(u32, bool)> {
        b.functions
            .iter()
            .find(|f| f.0 == id)
            .map(|&(_, n, r)| (n, r))
    }

    #[test]
    fn functions_without_a_reservation_share_what_is_left_each_up_to_their_cap() {
        let c = Concurrency::new(16, 8);
        let b = c.budget(16, &HashMap::new(), 0);
        assert_eq!((b.limit, b.unreserved_limit, b.per_function), (16, 16, 8));
        let _running: Vec<_> = (0..8).map(|_| c.claimed(1)).collect();
        let b = c.budget(8, &HashMap::new(), 0);
        // Function 1 is at its cap; the others may take the 8 left.
        assert_eq!(allowance(&b, 1), Some((0, false)));
        assert_eq!((b.unreserved_limit, b.per_function), (8, 8));
    }

    #[test]
    fn a_reservation_is_kept_for_its_function_and_caps_it() {
        let c = Concurrency::new(16, 8);
        c.set_reservations([(7, 4)]);
        let b = c.budget(16, &HashMap::new(), 0);
        assert_eq!(allowance(&b, 7), Some((4, true)));
        assert_eq!(b.unreserved_limit, 12);
        let _held: Vec<_> = (0..3).map(|_| c.claimed(7)).collect();
        assert_eq!(
            allowance(&c.budget(13, &HashMap::new(), 0), 7),
            Some((1, true))
        );
        // Reservations adding up past the workers still leave one slot to the rest.
        c.set_reservations([(7, 10), (8, 10)]);
        assert_eq!(c.budget(16, &HashMap::new(), 0).unreserved_limit, 1);
        assert_eq!(c.budget(16, &HashMap::new(), 0).per_function, 1);
    }

    #[test]
    fn events_claimed_ahead_start_only_within_their_functions_share() {
        let c = Concurrency::new(4, 1);
        let b = c.budget(1, &HashMap::from([(1, 3)]), 3);
        assert_eq!(allowance(&b, 1), Some((4, false)));
        assert_eq!((b.unreserved_limit, b.per_function), (4 + 3, 1));
        let mut claimed: Vec<Running> = (0..4).map(|_| c.claimed(1)).collect();
        assert!(claimed[0].start());
        assert!(!claimed[1].start(), "one at once");
        assert_eq!(c.running(1), 1);
        drop(claimed.remove(0));
        assert!(claimed[0].start());
    }

    #[tokio::test]
    async fn events_claimed_ahead_do_not_hold_up_a_synchronous_invocation() {
        let c = Concurrency::new(4, 1);
        let mut waiting: Vec<Running> = (0..3).map(|_| c.claimed(1)).collect();
        let sync = c.acquire(1).await.unwrap();
        assert!(
            !waiting[0].start(),
            "the synchronous run takes the function's place"
        );
        let second = tokio::spawn({
            let c = Arc::clone(&c);
            async move { c.acquire(1).await.map(drop) }
        });
        while c.state.lock().unwrap().sync_waiting.is_empty() {
            tokio::task::yield_now().await;
        }
        drop(sync);
        assert!(
            !waiting[0].start(),
            "a synchronous invocation waiting for the room gets it first"
        );
        second.await.unwrap().unwrap();
        assert!(waiting[0].start());
        assert!(c.state.lock().unwrap().sync_waiting.is_empty());
    }

    #[tokio::test]
    async fn a_synchronous_invocation_waits_for_room_and_a_zero_reservation_refuses_it() {
        let c = Concurrency::new(4, 1);
        let first = c.acquire(1).await.unwrap();
        let waiting = tokio::spawn({
            let c = Arc::clone(&c);
            async move { c.acquire(1).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        waiting.await.unwrap().unwrap();
        assert_eq!(c.running(1), 0);
        c.set_reservations([(2, 0)]);
        assert_eq!(c.acquire(2).await.err(), Some(ReservedNone));
    }
}
