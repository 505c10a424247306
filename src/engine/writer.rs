//! Group commit: one task owns the engine's writes and applies everything that queued up while
//! the previous transaction committed in one transaction, so many concurrent accepts and
//! transitions share one fsync. Durability does not cost throughput.

use crate::store::{DynStore, EventWrite};
use tokio::sync::{mpsc, oneshot};

/// As many writes as one transaction takes; more wait for the next.
const MAX_BATCH: usize = 2048;

type Reply = oneshot::Sender<Result<(), String>>;

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
    pub async fn write(&self, write: EventWrite) -> Result<(), String> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((write, reply))
            .await
            .map_err(|_| "the event writer has stopped".to_string())?;
        done.await
            .map_err(|_| "the event writer has stopped".to_string())?
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
            Err(e) => {
                // One bad write must not fail its neighbours: apply them one by one.
                tracing::warn!(error = %e, writes = batch.len(), "group commit failed; applying writes one by one");
                for (write, reply) in batch.drain(..) {
                    let result = store
                        .apply_event_writes(std::slice::from_ref(&write))
                        .await
                        .map_err(|e| e.to_string());
                    if let Err(e) = &result {
                        tracing::error!(error = %e, ?write, "event write failed");
                    }
                    let _ = reply.send(result);
                }
            }
        }
    }
}
