//! Group commit: one task owns the engine's writes and applies everything that queued up while
//! the previous transaction committed in one transaction, so many concurrent accepts and
//! transitions share one fsync. Durability does not cost throughput.
//!
//! The dispatcher's claims ride in the same transactions. A run hands its worker slot over
//! with its end: once the end commits, the slot goes to the claim made in the same
//! transaction, so an event's end and its successor's claim cost one commit, not two in turn.
//! Should the commit fail, the end is not recorded, nothing is claimed, and the slot stays with
//! the run that retries its end: a worker is free only once what it did is on disk.

use crate::domain::event::ClaimedEvent;
use crate::metrics::Metrics;
use crate::store::{Claim, DynStore, EventWrite, StoreError};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{Notify, OwnedSemaphorePermit, mpsc, oneshot};

/// As many writes as one transaction takes; more wait for the next.
const MAX_BATCH: usize = 2048;

type Reply = oneshot::Sender<Result<(), WriteError>>;

/// A run's worker slot, handed over with its end: it is taken once the end commits (by the
/// claim of the same transaction, or freed), and stays while the end waits for the store.
pub type Slot = Arc<Mutex<Option<OwnedSemaphorePermit>>>;

/// Makes the claim when its transaction begins, not when it was asked for, so that it fills
/// the slots freed while it waited: its argument is how many slots the ends of that
/// transaction hand over. `None` claims nothing.
pub type ClaimOrder = Box<dyn FnOnce(u32) -> Option<Claim> + Send>;

/// What a claim got: its events, and the slots the ends of its transaction handed over.
pub type Claimed = (Vec<ClaimedEvent>, Option<OwnedSemaphorePermit>);

type ClaimReply = oneshot::Sender<Result<Claimed, WriteError>>;

enum Job {
    Write(EventWrite, Reply, Option<Slot>),
    Claim(ClaimOrder, ClaimReply),
}

/// Why a write did not land.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The store cannot write now (disk full, read-only, I/O error, locked): worth trying again.
    #[error("{0}")]
    Fault(String),
    /// The write itself was refused.
    #[error("{0}")]
    Rejected(String),
    /// Its function was deleted meanwhile: the store takes no new event of it.
    #[error("its function was deleted meanwhile")]
    FunctionGone,
    /// It would take its namespace past its invocation quota: the store took it not.
    #[error("its namespace has used its invocation quota")]
    QuotaUsed,
    #[error("the event writer has stopped")]
    Stopped,
}

#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writer task; it ends when every handle is dropped and the queue is empty.
    /// `freed` is notified when slots are freed that no claim took.
    pub fn start(
        store: DynStore,
        tracker: &tokio_util::task::TaskTracker,
        freed: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(16 * 1024);
        tracker.spawn(run(store, rx, freed, metrics));
        GroupCommit { tx }
    }

    /// Writes and waits until the write is committed.
    pub async fn write(&self, write: EventWrite) -> Result<(), WriteError> {
        self.write_freeing(write, None).await
    }

    /// Writes and waits until the write is committed; `slot` is taken once it is.
    pub async fn write_freeing(
        &self,
        write: EventWrite,
        slot: Option<Slot>,
    ) -> Result<(), WriteError> {
        let done = self.send(write, slot).await?;
        done.await.map_err(|_| WriteError::Stopped)?
    }

    /// Puts a write in the queue and answers when it is there, not when it is committed: the
    /// writes queued after it commit in the same transaction or a later one, never before it.
    /// The receiver tells how it went, for a caller that wants to know later.
    pub async fn queue(
        &self,
        write: EventWrite,
    ) -> Result<oneshot::Receiver<Result<(), WriteError>>, WriteError> {
        self.send(write, None).await
    }

    async fn send(
        &self,
        write: EventWrite,
        slot: Option<Slot>,
    ) -> Result<oneshot::Receiver<Result<(), WriteError>>, WriteError> {
        // Refused alone, so it cannot fail the batch it would have joined.
        write
            .check()
            .map_err(|e| WriteError::Rejected(e.to_string()))?;
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Job::Write(write, reply, slot))
            .await
            .map_err(|_| WriteError::Stopped)?;
        Ok(done)
    }

    /// Claims queued events in the next transaction, with the writes queued by the time it
    /// begins; the claim is made by `order` then.
    pub async fn claim(&self, order: ClaimOrder) -> Result<Claimed, WriteError> {
        let (reply, claimed) = oneshot::channel();
        self.tx
            .send(Job::Claim(order, reply))
            .await
            .map_err(|_| WriteError::Stopped)?;
        claimed.await.map_err(|_| WriteError::Stopped)?
    }
}

/// Who waits for a write of the batch, and the slot it hands over.
type Waiter = (Reply, Option<Slot>);

async fn run(
    store: DynStore,
    mut rx: mpsc::Receiver<Job>,
    freed: Arc<Notify>,
    metrics: Arc<Metrics>,
) {
    // The writes of the transaction and, at the same index, who waits for each: kept apart so
    // that the writes go to the store as they are, without a copy of their payloads.
    let mut writes: Vec<EventWrite> = Vec::with_capacity(MAX_BATCH);
    let mut waiters: Vec<Waiter> = Vec::with_capacity(MAX_BATCH);
    // One claim per transaction; another one asked for meanwhile waits for the next.
    let mut claim: Option<(ClaimOrder, ClaimReply)> = None;
    let mut next_claim: Option<(ClaimOrder, ClaimReply)> = None;
    loop {
        if let Some(next) = next_claim.take() {
            claim = Some(next);
        } else {
            match rx.recv().await {
                Some(Job::Write(w, reply, slot)) => {
                    writes.push(w);
                    waiters.push((reply, slot));
                }
                Some(Job::Claim(order, reply)) => claim = Some((order, reply)),
                None => return,
            }
        }
        while writes.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Job::Write(w, reply, slot)) => {
                    writes.push(w);
                    waiters.push((reply, slot));
                }
                Ok(Job::Claim(order, reply)) if claim.is_none() => claim = Some((order, reply)),
                Ok(Job::Claim(order, reply)) => {
                    next_claim = Some((order, reply));
                    break;
                }
                Err(_) => break,
            }
        }
        let (order, claimed) = match claim.take() {
            Some((order, reply)) => {
                let handed_over = waiters
                    .iter()
                    .filter_map(|(_, slot)| slot.as_ref())
                    .filter_map(|slot| slot.lock().expect("slot").as_ref().map(|p| p.num_permits()))
                    .sum::<usize>();
                (order(handed_over as u32), Some(reply))
            }
            None => (None, None),
        };
        let began = Instant::now();
        let committed = store.commit_events(&writes, order.as_ref()).await;
        metrics.commit_time.observe(began.elapsed().as_secs_f64());
        metrics
            .commit_batch
            .observe((writes.len() + usize::from(order.is_some())) as f64);
        match committed {
            Ok(events) => {
                writes.clear();
                let mut slots: Option<OwnedSemaphorePermit> = None;
                for (reply, slot) in waiters.drain(..) {
                    slots = merge(slots, take(slot.as_ref()));
                    let _ = reply.send(Ok(()));
                }
                match claimed {
                    Some(reply) => {
                        let _ = reply.send(Ok((events, slots)));
                    }
                    // No claim rode along: the slots are free, and the dispatcher hears it.
                    None if slots.is_some() => {
                        drop(slots);
                        freed.notify_one();
                    }
                    None => {}
                }
            }
            Err(StoreError::Database(e)) => {
                // The disk (or the database) failed: nothing of the batch is durable, so every
                // write in it fails, and its callers hear why; nothing was claimed either, and
                // the slots stay with the runs that try their ends again.
                let why = store
                    .write_health()
                    .fault()
                    .map_or_else(|| e.to_string(), |f| f.error);
                let why = WriteError::Fault(format!("the event store cannot write: {why}"));
                writes.clear();
                for (reply, _) in waiters.drain(..) {
                    let _ = reply.send(Err(why.clone()));
                }
                if let Some(reply) = claimed {
                    let _ = reply.send(Err(why));
                }
            }
            Err(e) => {
                // Refused writes (a function deleted meanwhile, a namespace's quota without
                // room for the whole batch) must not fail their neighbours: the batch is
                // applied in halves, a refused half split again down to single writes, so
                // exactly the accepts that fit the quota are kept and a few refusals cost a
                // few dozen commits rather than one per write. The slots of the writes that
                // land are freed. The claim was made for slots some of them may not free: it
                // claims nothing, and the dispatcher, woken, asks again.
                tracing::info!(error = %e, writes = writes.len(), "group commit refused; applying the batch in parts");
                let results = apply_in_parts(&store, &writes).await;
                writes.clear();
                for ((reply, slot), result) in waiters.drain(..).zip(results) {
                    if result.is_ok() {
                        drop(take(slot.as_ref()));
                    }
                    let _ = reply.send(result);
                }
                if let Some(reply) = claimed {
                    let _ = reply.send(Ok((Vec::new(), None)));
                }
                freed.notify_one();
            }
        }
    }
}

/// Applies `writes` (whose batch was refused) in halves, splitting a refused part again until
/// its single refused writes are found: the outcome of each write, in order.
async fn apply_in_parts(store: &DynStore, writes: &[EventWrite]) -> Vec<Result<(), WriteError>> {
    let mut results: Vec<Option<Result<(), WriteError>>> = vec![None; writes.len()];
    let half = writes.len().div_ceil(2);
    // Parts still to apply, the next one last: earlier writes are applied first, so that of
    // accepts competing for a quota's last room the first to arrive are kept.
    let mut parts = vec![half..writes.len(), 0..half];
    while let Some(part) = parts.pop() {
        if part.is_empty() {
            continue;
        }
        match store.apply_event_writes(&writes[part.clone()]).await {
            Ok(()) => results[part].fill(Some(Ok(()))),
            Err(StoreError::Database(e)) => {
                let why = write_error(StoreError::Database(e));
                results[part].fill(Some(Err(why)));
            }
            Err(e) if part.len() == 1 => {
                let e = write_error(e);
                // A refusal its caller answers for is not a failure of the store; anything
                // else is named by kind and event, never with its payload or logs.
                if !matches!(e, WriteError::QuotaUsed | WriteError::FunctionGone) {
                    tracing::error!(error = %e, write = %writes[part.start].describe(), "event write failed");
                }
                results[part.start] = Some(Err(e));
            }
            Err(_) => {
                let middle = part.start + part.len().div_ceil(2);
                parts.push(middle..part.end);
                parts.push(part.start..middle);
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every write is applied"))
        .collect()
}

fn take(slot: Option<&Slot>) -> Option<OwnedSemaphorePermit> {
    slot.and_then(|s| s.lock().expect("slot").take())
}

/// Slots of one semaphore, as one permit.
pub fn merge(
    a: Option<OwnedSemaphorePermit>,
    b: Option<OwnedSemaphorePermit>,
) -> Option<OwnedSemaphorePermit> {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            a.merge(b);
            Some(a)
        }
        (a, b) => a.or(b),
    }
}

fn write_error(e: StoreError) -> WriteError {
    match e {
        StoreError::Database(e) => WriteError::Fault(format!("the event store cannot write: {e}")),
        StoreError::NotFound => WriteError::FunctionGone,
        StoreError::QuotaUsed => WriteError::QuotaUsed,
        e => WriteError::Rejected(e.to_string()),
    }
}
