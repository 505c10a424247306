//! Retention on PostgreSQL.

use super::*;
use crate::clock::Millis;
use crate::store::*;

#[async_trait]
impl Retention for PgStore {
    async fn sweep_events(&self, cutoff: Millis, limit: u32) -> StoreResult<u64> {
        let ended = [
            EventStatus::Finished,
            EventStatus::Failed,
            EventStatus::Aborted,
        ]
        .map(|s| s.code().to_string())
        .join(", ");
        // The batch is locked as it is chosen, skipping rows another transaction holds: two
        // nodes sweeping at once delete different batches instead of one waiting on the
        // other's, and each row's status and end are checked again on its latest version
        // before it goes, so a queued or running event is never deleted on a stale read.
        let sql = format!(
            "DELETE FROM events WHERE id IN (SELECT id FROM events \
             WHERE ended_at < $1 AND status IN ({ended}) ORDER BY ended_at LIMIT $2 \
             FOR UPDATE SKIP LOCKED)"
        );
        Ok(sqlx::query(AssertSqlSafe(sql))
            .bind(cutoff)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn sweep_deleted_functions(&self, cutoff: Millis, limit: u32) -> StoreResult<u64> {
        // Locked as chosen, skipping rows held elsewhere, as the events are.
        Ok(sqlx::query(
            "DELETE FROM functions WHERE id IN (SELECT id FROM functions \
             WHERE deleted_at < $1 ORDER BY deleted_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn trim_rollups(&self, cutoff: Millis) -> StoreResult<u64> {
        let minute = cutoff.div_euclid(60_000);
        // The rows appended since the last sweep are merged first (see `fold_rollups` in the
        // schema), in a transaction of their own: nodes keep appending meanwhile.
        let folded: i64 = sqlx::query_scalar("SELECT fold_rollups()")
            .fetch_one(&self.pool)
            .await?;
        let mut tx = self.pool.begin().await?;
        let a =
            sqlx::query("DELETE FROM event_rollups WHERE minute < $1 AND folded AND count <= 0")
                .bind(minute)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let mut b = 0;
        for histogram in [
            "DELETE FROM event_durations WHERE minute < $1",
            "DELETE FROM event_waits WHERE minute < $1",
            "DELETE FROM function_concurrency WHERE minute < $1",
        ] {
            b += sqlx::query(histogram)
                .bind(minute)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(folded as u64 + a + b)
    }

    async fn optimize(&self) -> StoreResult<()> {
        // Autovacuum gathers statistics on its own once a table changed by more than
        // autovacuum_analyze_threshold rows plus autovacuum_analyze_scale_factor of its size,
        // but only at its next round (a minute apart by default), and not at all where it is
        // turned off. The tables of this schema past that same mark are analyzed now, right
        // after a sweep changed the events by orders of magnitude; when none is, this is one
        // read of the statistics views. SKIP_LOCKED leaves a table another node or autovacuum
        // is analyzing already to it.
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.relname) \
             FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
             WHERE s.schemaname = current_schema() \
               AND s.n_mod_since_analyze > \
                   current_setting('autovacuum_analyze_threshold')::BIGINT \
                   + current_setting('autovacuum_analyze_scale_factor')::DOUBLE PRECISION \
                     * GREATEST(c.reltuples, 0) \
             ORDER BY s.relname",
        )
        .fetch_all(&self.pool)
        .await?;
        if !stale.is_empty() {
            let sql = format!("ANALYZE (SKIP_LOCKED) {}", stale.join(", "));
            sqlx::raw_sql(AssertSqlSafe(sql))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn size(&self) -> StoreResult<StoreSize> {
        // The tables of this schema with their indexes and TOAST, rather than the whole
        // database, which may hold other schemas (or other applications). The write-ahead
        // log is the server's, shared by every database on it, and is not counted.
        let bytes: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')",
        )
        .fetch_one(&self.pool)
        .await?;
        // Always 0: PostgreSQL keeps the space vacuum frees in each table's free space map,
        // reused before the table grows, but reads it only through extensions
        // (pg_freespacemap, pgstattuple) a database may not have, and an estimate from the
        // statistics views can be off by the size of the table itself.
        Ok(StoreSize {
            bytes: u64::try_from(bytes).unwrap_or(0),
            free_bytes: 0,
        })
    }
}
