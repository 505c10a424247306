//! The event queue: accepts, claims with leases, renewals, takeovers, run transitions and
//! termination requests; what the engine of every node writes.

use super::{StoreError, StoreResult};
use crate::clock::Millis;
use crate::domain::event::EventStatus;
use crate::domain::event::{ClaimedEvent, TimelineEntry};
use crate::domain::function::FunctionKey;
use async_trait::async_trait;

/// An accepted invocation, written before the caller gets its RequestId.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub request_id: String,
    pub function_id: i64,
    pub invoke_type: String,
    pub traced: bool,
    pub payload: String,
    pub enqueued_at: Millis,
    /// Who invoked: a console user's name, or `API key <SecretId>`.
    pub invoked_by: Option<String>,
    /// The RequestId of the event this one re-runs.
    pub rerun_of: Option<String>,
}

/// Which run of an event a write belongs to: the node holding its lease, and the attempt. A
/// write lands only while the event is RUNNING under that same lease, so a run that lost its
/// event (terminated and taken over, deleted with its function, reclaimed by another node)
/// changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLease {
    /// The node id that claimed the event ('' for rows claimed before nodes had ids).
    pub owner: String,
    pub attempt: u32,
    /// For a takeover: the lease's expiry as read, so a lease renewed meanwhile is not taken.
    pub until: Option<Millis>,
}

/// The engine's writes, applied many to one transaction by the group-commit writer.
#[derive(Debug, Clone)]
pub enum EventWrite {
    Insert(NewEvent),
    /// A note on the timeline without a change of status (started on an instance).
    Note {
        event_id: i64,
        run: RunLease,
        entry: TimelineEntry,
    },
    /// The event ended. Untraced events are deleted instead: nothing of them is kept.
    Finish {
        event_id: i64,
        run: RunLease,
        traced: bool,
        status_code: i64,
        result: Option<String>,
        error: Option<String>,
        logs: Option<String>,
        entry: TimelineEntry,
    },
    /// Back to the queue for another attempt, not before `run_after`.
    Requeue {
        event_id: i64,
        run: RunLease,
        traced: bool,
        attempt: u32,
        run_after: Millis,
        error: Option<String>,
        logs: Option<String>,
        entry: TimelineEntry,
    },
}

impl RunLease {
    /// What a write of this run is fenced on besides its attempt.
    pub fn fence(&self) -> (&str, Option<Millis>) {
        (&self.owner, self.until)
    }
}

impl EventWrite {
    /// The lease of the run that writes (none for an accept).
    pub fn lease(&self) -> Option<&RunLease> {
        match self {
            EventWrite::Insert(_) => None,
            EventWrite::Note { run, .. }
            | EventWrite::Finish { run, .. }
            | EventWrite::Requeue { run, .. } => Some(run),
        }
    }

    /// The status move a write makes, if any (runs write from RUNNING).
    pub fn transition(&self) -> Option<(EventStatus, EventStatus)> {
        match self {
            EventWrite::Insert(_) | EventWrite::Note { .. } => None,
            EventWrite::Finish { entry, .. } | EventWrite::Requeue { entry, .. } => {
                Some((EventStatus::Running, entry.status))
            }
        }
    }

    /// Refuses a move the status machine does not allow, before anything is written: every
    /// backend checks its batches with it.
    pub fn check(&self) -> StoreResult<()> {
        match self.transition() {
            Some((from, to)) if !from.can_move_to(to) || self.lands_on() != Some(to) => {
                Err(StoreError::IllegalTransition { from, to })
            }
            _ => Ok(()),
        }
    }

    /// Where the write leaves the event: a finish ends it, a requeue queues it.
    fn lands_on(&self) -> Option<EventStatus> {
        match self {
            EventWrite::Finish { entry, .. } if entry.status.is_terminal() => Some(entry.status),
            EventWrite::Requeue { .. } => Some(EventStatus::Queued),
            _ => None,
        }
    }

    /// The write's kind and the event it is about, for logs: payloads and logs stay out.
    pub fn describe(&self) -> String {
        match self {
            EventWrite::Insert(e) => format!("insert {}", e.request_id),
            EventWrite::Note { event_id, run, .. } => {
                format!("note on event {event_id}, attempt {}", run.attempt)
            }
            EventWrite::Finish { event_id, run, .. } => {
                format!("end of event {event_id}, attempt {}", run.attempt)
            }
            EventWrite::Requeue { event_id, run, .. } => {
                format!("requeue of event {event_id}, attempt {}", run.attempt)
            }
        }
    }
}

/// What asking to terminate an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Termination {
    /// It had not started: it is ABORTED now.
    AbortedWhileQueued,
    /// It runs: the engine must stop it.
    Running,
    /// It had already ended (or is untraced and unknown).
    NotRunning(EventStatus),
}

/// A running event whose lease this node renewed, with a terminate request if a user (on any
/// node) asked for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewedLease {
    pub event_id: i64,
    pub terminate: Option<String>,
}

/// How many queued events a claim may take, and of which functions: the engine's concurrency
/// rules (reservations, each function's share) as numbers the store applies in one statement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClaimBudget {
    /// Events in all.
    pub limit: u32,
    /// Events of functions without a reservation, together.
    pub unreserved_limit: u32,
    /// Events of one function not named in `functions`.
    pub per_function: u32,
    /// `(function id, events, reserved)` for functions with their own allowance: those with
    /// a reservation, and those already running events here. A reserved function's events
    /// do not count against `unreserved_limit`.
    pub functions: Vec<(i64, u32, bool)>,
}

impl ClaimBudget {
    /// Up to `limit` due events, whoever they belong to.
    pub fn up_to(limit: u32) -> Self {
        ClaimBudget {
            limit,
            unreserved_limit: limit,
            per_function: limit,
            functions: Vec::new(),
        }
    }
}

/// A RUNNING event whose node is gone: its lease ran out, or its owner is known dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrandedRun {
    pub id: i64,
    pub request_id: String,
    pub traced: bool,
    pub terminate: Option<String>,
    /// The function's RetryNum, which decides whether it runs again.
    pub retry_num: u32,
    /// Its function, for the log.
    pub function: FunctionKey,
    pub lease: RunLease,
}

/// A node serving this store, as its last heartbeat said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeBeat {
    pub id: String,
    /// Where it listens, as it was started (`127.0.0.1:8080`), or '' before it listens.
    pub address: String,
    pub started_at: Millis,
    pub heartbeat_at: Millis,
    /// Events running on it at its heartbeat.
    pub running: u32,
}

/// A claim of queued events for a node's free slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub now: Millis,
    pub budget: ClaimBudget,
    /// The node that will run them.
    pub owner: String,
    pub lease_until: Millis,
}

#[async_trait]
pub trait EventQueue: Send + Sync {
    /// Applies the engine's writes, then makes `claim`, in one transaction (one fsync for all
    /// of them): the runs that end free the slots the claim fills, so the two share a commit
    /// rather than each waiting for its own. The claim moves due queued events to RUNNING, held
    /// by its owner until its lease ends, as many as its budget allows: each function's oldest
    /// first, functions taking turns. Nothing is written, and nothing claimed, unless all of it
    /// commits.
    async fn commit_events(
        &self,
        writes: &[EventWrite],
        claim: Option<&Claim>,
    ) -> StoreResult<Vec<ClaimedEvent>>;

    /// Applies the engine's writes in one transaction.
    async fn apply_event_writes(&self, writes: &[EventWrite]) -> StoreResult<()> {
        self.commit_events(writes, None).await.map(drop)
    }

    /// Claims alone (see [`commit_events`](Self::commit_events)).
    async fn claim_events(
        &self,
        now: Millis,
        budget: &ClaimBudget,
        owner: &str,
        lease_until: Millis,
    ) -> StoreResult<Vec<ClaimedEvent>> {
        let claim = Claim {
            now,
            budget: budget.clone(),
            owner: owner.to_string(),
            lease_until,
        };
        self.commit_events(&[], Some(&claim)).await
    }

    /// Extends the leases `owner` still holds of `runs` (`(event id, attempt)`) and returns
    /// them, with their terminate requests; a run left out was lost (taken over or deleted).
    async fn renew_leases(
        &self,
        owner: &str,
        runs: &[(i64, u32)],
        lease_until: Millis,
    ) -> StoreResult<Vec<RenewedLease>>;

    /// Records the most events of functions that ran at once on `node` in minutes:
    /// `(function id, minute, peak)`, kept as the larger of what was recorded and this.
    async fn record_concurrency(&self, node: &str, peaks: &[(i64, Millis, u32)])
    -> StoreResult<()>;

    /// The nodes holding RUNNING events (other than `''`), to learn which of them are gone.
    async fn lease_owners(&self) -> StoreResult<Vec<String>>;

    /// Takes up to `want` of the `limit` invocations function `function_id` may have in the
    /// second `second` (Unix seconds), for every node of the store together; answers how many
    /// it got. `None`: the store keeps no shared count, and each process limits its own calls.
    async fn take_invocations(
        &self,
        function_id: i64,
        second: i64,
        want: u32,
        limit: u32,
    ) -> StoreResult<Option<u32>> {
        let _ = (function_id, second, want, limit);
        Ok(None)
    }

    /// Records that `beat.id` is alive: the System page lists every node this way.
    async fn node_heartbeat(&self, beat: &NodeBeat) -> StoreResult<()>;

    /// Removes a node: it stopped, or last beat before `gone_before` (`None`: only `id`).
    async fn forget_nodes(&self, id: Option<&str>, gone_before: Millis) -> StoreResult<()>;

    /// The nodes that beat, most recently started first.
    async fn nodes(&self) -> StoreResult<Vec<NodeBeat>>;

    /// RUNNING events whose lease ended before `now`, or whose owner is one of `dead_owners`.
    async fn stranded_runs(
        &self,
        now: Millis,
        dead_owners: &[String],
        limit: u32,
    ) -> StoreResult<Vec<StrandedRun>>;

    /// Marks a request to terminate (`mode`: `grace` or `force`): a queued event is aborted at
    /// once with `aborted` on its timeline and `status_code`; a running one is flagged for the
    /// node running it, with `requested` on its timeline (who asked, and why).
    async fn request_termination(
        &self,
        request_id: &str,
        mode: &str,
        aborted: &TimelineEntry,
        requested: &TimelineEntry,
        status_code: i64,
    ) -> StoreResult<Termination>;
}
