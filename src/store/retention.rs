//! Retention: sweeping ended events, trimming rollups, the store's size and statistics; what
//! the sweeper and the System page use.

use super::StoreResult;
use crate::clock::Millis;
use async_trait::async_trait;

/// How big the store is on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreSize {
    /// The database file and its write-ahead log.
    pub bytes: u64,
    /// Pages freed by deletions, reused before the file grows.
    pub free_bytes: u64,
}

#[async_trait]
pub trait Retention: Send + Sync {
    /// Deletes up to `limit` events that ended before `cutoff` (with their timelines; the
    /// rollups follow by trigger). Queued and running events are never touched.
    async fn sweep_events(&self, cutoff: Millis, limit: u32) -> StoreResult<u64>;

    /// Removes up to `limit` functions deleted before `cutoff`, with whatever of theirs is
    /// left (their events ended when they were deleted, so the event sweep took most).
    async fn sweep_deleted_functions(&self, cutoff: Millis, limit: u32) -> StoreResult<u64>;

    /// Drops rollup rows older than `cutoff` that no longer count anything, and run-time
    /// histograms of minutes before it.
    async fn trim_rollups(&self, cutoff: Millis) -> StoreResult<u64>;

    async fn size(&self) -> StoreResult<StoreSize>;

    /// Refreshes the query planner's statistics of tables whose size changed a lot since they
    /// were last gathered; cheap when none did.
    async fn optimize(&self) -> StoreResult<()>;
}
