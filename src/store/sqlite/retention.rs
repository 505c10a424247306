//! Retention on SQLite.

use super::*;
use crate::store::*;

#[async_trait]
impl Retention for SqliteStore {
    async fn sweep_events(&self, cutoff: Millis, limit: u32) -> StoreResult<u64> {
        let ended = [
            EventStatus::Finished,
            EventStatus::Failed,
            EventStatus::Aborted,
        ]
        .map(|s| s.code().to_string())
        .join(", ");
        let sql = format!(
            "DELETE FROM events WHERE id IN (SELECT id FROM events \
             WHERE ended_at < ? AND status IN ({ended}) ORDER BY ended_at LIMIT ?)"
        );
        Ok(sqlx::query(AssertSqlSafe(sql))
            .bind(cutoff)
            .bind(limit)
            .execute(&mut *self.writer.lock().await?)
            .await?
            .rows_affected())
    }

    async fn sweep_deleted_functions(&self, cutoff: Millis, limit: u32) -> StoreResult<u64> {
        Ok(sqlx::query(
            "DELETE FROM functions WHERE id IN (SELECT id FROM functions \
             WHERE deleted_at < ? ORDER BY deleted_at LIMIT ?)",
        )
        .bind(cutoff)
        .bind(limit)
        .execute(&mut *self.writer.lock().await?)
        .await?
        .rows_affected())
    }

    async fn trim_rollups(&self, cutoff: Millis) -> StoreResult<u64> {
        let minute = cutoff.div_euclid(60_000);
        let mut conn = self.writer.lock().await?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await?;
        let a = sqlx::query("DELETE FROM event_rollups WHERE minute < ? AND count <= 0")
            .bind(minute)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let mut b = 0;
        for histogram in [
            "DELETE FROM event_durations WHERE minute < ?",
            "DELETE FROM event_waits WHERE minute < ?",
            "DELETE FROM function_concurrency WHERE minute < ?",
        ] {
            b += sqlx::query(histogram)
                .bind(minute)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(a + b)
    }

    async fn optimize(&self) -> StoreResult<()> {
        sqlx::query(OPTIMIZE)
            .execute(&mut *self.writer.lock().await?)
            .await?;
        Ok(())
    }

    async fn size(&self) -> StoreResult<StoreSize> {
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&self.reader)
            .await?;
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&self.reader)
            .await?;
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&self.reader)
            .await?;
        let wal = std::fs::metadata(format!("{}-wal", self.path.display())).map_or(0, |m| m.len());
        Ok(StoreSize {
            bytes: (page_size * pages) as u64 + wal,
            free_bytes: (page_size * free) as u64,
        })
    }
}
