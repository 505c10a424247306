//! Group commit: one task owns the engine's writes and applies everything that queued up while
//! the previous transaction committed in one transaction, so many concurrent accepts and
//! transitions share one fsync. Durability does not cost throughput.

use crate::store::{DynStore, EventWrite, StoreError};
use tokio::sync::{mpsc, oneshot};

/// As many writes as one transaction takes; more wait for the next.
const MAX_BATCH: usize = 2048;

type Reply = oneshot::Sender<Result<(), WriteError>>;

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
    #[error("the event writer has stopped")]
    Stopped,
}

#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<(EventWrite, Reply)>,
}

impl GroupCommit {
    /// Starts the writer task; it ends when every handle is dropped and the queue is empty.
    pub fn start(store: DynStore, tracker: &tokio_util::task::TaskTracker) -> Self {
        let (tx, rx) = mpsc::channel(16 * 1024);
        tracker.spawn(run(store, rx));
        GroupCommit { tx }
    }

    /// Writes and waits until the write is committed.
    pub async fn write(&self, write: EventWrite) -> Result<(), WriteError> {
        let done = self.queue(write).await?;
        done.await.map_err(|_| WriteError::Stopped)?
    }

    /// Puts a write in the queue and answers when it is there, not when it is committed: the
    /// writes queued after it commit in the same transaction or a later one, never before it.
    /// The receiver tells how it went, for a caller that wants to know later.
    pub async fn queue(
        &self,
        write: EventWrite,
    ) -> Result<oneshot::Receiver<Result<(), WriteError>>, WriteError> {
        // Refused alone, so it cannot fail the batch it would have joined.
        write
            .check()
            .map_err(|e| WriteError::Rejected(e.to_string()))?;
        let (reply, done) = oneshot::channel();
        self.tx
            .send((write, reply))
            .await
            .map_err(|_| WriteError::Stopped)?;
        Ok(done)
    }
}

async fn run(store: DynStore, mut rx: mpsc::Receiver<(EventWrite, Reply)>) {
    let mut batch: Vec<(EventWrite, Reply)> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let writes: Vec<EventWrite> = batch.iter().map(|(w, _)| w.clone()).collect();
        match store.apply_event_writes(&writes).await {
            Ok(()) => {
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(StoreError::Database(e)) => {
                // The disk (or the database) failed: nothing of the batch is durable, so every
                // write in it fails, and its callers hear why.
                let why = store
                    .write_health()
                    .fault()
                    .map_or_else(|| e.to_string(), |f| f.error);
                let why = WriteError::Fault(format!("the event store cannot write: {why}"));
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(why.clone()));
                }
            }
            Err(e) => {
                // One bad write (its function was deleted meanwhile) must not fail its
                // neighbours: apply them one by one.
                tracing::warn!(error = %e, writes = batch.len(), "group commit failed; applying writes one by one");
                for (write, reply) in batch.drain(..) {
                    let result = match store.apply_event_writes(std::slice::from_ref(&write)).await
                    {
                        Ok(()) => Ok(()),
                        Err(StoreError::Database(e)) => Err(WriteError::Fault(format!(
                            "the event store cannot write: {e}"
                        ))),
                        Err(StoreError::NotFound) => Err(WriteError::FunctionGone),
                        Err(e) => Err(WriteError::Rejected(e.to_string())),
                    };
                    if let Err(e) = &result {
                        // Named by kind and event, never with its payload or logs.
                        tracing::error!(error = %e, write = %write.describe(), "event write failed");
                    }
                    let _ = reply.send(result);
                }
            }
        }
    }
}
