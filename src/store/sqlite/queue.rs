//! EventQueue on SQLite.

use super::*;
use crate::store::*;

#[async_trait]
impl EventQueue for SqliteStore {
    async fn commit_events(
        &self,
        writes: &[EventWrite],
        claim: Option<&Claim>,
    ) -> StoreResult<Vec<ClaimedEvent>> {
        for write in writes {
            write.check()?;
        }
        let result = self.commit_batch(writes, claim).await;
        // A claim alone says little of whether the store takes writes: on a full disk, one
        // that changes rows in place may well commit while every end fails.
        if writes.is_empty() {
            return Ok(result?);
        }
        self.track(result)
    }

    async fn renew_leases(
        &self,
        owner: &str,
        runs: &[(i64, u32)],
        lease_until: Millis,
    ) -> StoreResult<Vec<RenewedLease>> {
        let mut renewed = Vec::with_capacity(runs.len());
        for chunk in runs.chunks(1000) {
            let mut b = QueryBuilder::<Sqlite>::new("UPDATE events SET lease_until = ");
            b.push_bind(lease_until).push(" FROM (");
            b.push_values(chunk, |mut row, (id, attempt)| {
                row.push_bind(*id).push_bind(*attempt).push_bind(owner);
            });
            b.push(") AS v WHERE events.id = v.column1 AND events.status = ")
                .push(RUNNING)
                .push(
                    " AND events.attempt = v.column2 AND events.lease_owner = v.column3 \
                     RETURNING events.id, events.terminate",
                );
            let rows = b.build().fetch_all(&mut *self.writer.lock().await?).await?;
            for row in rows {
                renewed.push(RenewedLease {
                    event_id: row.try_get("id")?,
                    terminate: row.try_get("terminate")?,
                });
            }
        }
        Ok(renewed)
    }

    async fn lease_owners(&self) -> StoreResult<Vec<String>> {
        let sql = format!(
            "SELECT DISTINCT lease_owner FROM events WHERE status = {RUNNING} AND lease_owner != ''"
        );
        Ok(sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_all(&self.reader)
            .await?)
    }

    async fn record_concurrency(
        &self,
        node: &str,
        peaks: &[(i64, Millis, u32)],
    ) -> StoreResult<()> {
        let mut conn = self.writer.lock().await?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await?;
        for &(function_id, minute, peak) in peaks {
            // A function deleted meanwhile has no row to record against; its peaks go.
            sqlx::query(
                "INSERT INTO function_concurrency (function_id, minute, node, peak) \
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM functions WHERE id = ?1) \
                 ON CONFLICT DO UPDATE SET peak = MAX(peak, excluded.peak)",
            )
            .bind(function_id)
            .bind(minute)
            .bind(node)
            .bind(peak)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn node_heartbeat(&self, beat: &NodeBeat) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO nodes (id, address, started_at, heartbeat_at, running) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET address = excluded.address, \
             heartbeat_at = excluded.heartbeat_at, running = excluded.running",
        )
        .bind(&beat.id)
        .bind(&beat.address)
        .bind(beat.started_at)
        .bind(beat.heartbeat_at)
        .bind(beat.running)
        .execute(&mut *self.writer.lock().await?)
        .await?;
        Ok(())
    }

    async fn forget_nodes(&self, id: Option<&str>, gone_before: Millis) -> StoreResult<()> {
        sqlx::query("DELETE FROM nodes WHERE id = ? OR heartbeat_at < ?")
            .bind(id)
            .bind(gone_before)
            .execute(&mut *self.writer.lock().await?)
            .await?;
        Ok(())
    }

    async fn nodes(&self) -> StoreResult<Vec<NodeBeat>> {
        let rows = sqlx::query(
            "SELECT id, address, started_at, heartbeat_at, running FROM nodes \
             ORDER BY started_at DESC, id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NodeBeat {
                    id: r.try_get("id")?,
                    address: r.try_get("address")?,
                    started_at: r.try_get("started_at")?,
                    heartbeat_at: r.try_get("heartbeat_at")?,
                    running: r.try_get("running")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn stranded_runs(
        &self,
        now: Millis,
        dead_owners: &[String],
        limit: u32,
    ) -> StoreResult<Vec<StrandedRun>> {
        let mut b = QueryBuilder::<Sqlite>::new(
            "SELECT e.id, e.request_id, e.attempt, e.traced, e.terminate, e.lease_owner, \
             e.lease_until, f.retry_num, f.name, f.namespace, f.region FROM events e JOIN functions f ON f.id = e.function_id \
             WHERE e.status = ",
        );
        b.push(RUNNING)
            .push(" AND (e.lease_until IS NULL OR e.lease_until < ")
            .push_bind(now);
        if !dead_owners.is_empty() {
            b.push(" OR e.lease_owner IN (");
            let mut list = b.separated(", ");
            for owner in dead_owners {
                list.push_bind(owner);
            }
            b.push(")");
        }
        b.push(") ORDER BY e.id LIMIT ").push_bind(limit);
        let rows = b.build().fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| {
                Ok(StrandedRun {
                    id: r.try_get("id")?,
                    request_id: r.try_get("request_id")?,
                    traced: r.try_get("traced")?,
                    terminate: r.try_get("terminate")?,
                    retry_num: r.try_get("retry_num")?,
                    function: FunctionKey {
                        region: r.try_get("region")?,
                        namespace: r.try_get("namespace")?,
                        name: r.try_get("name")?,
                    },
                    lease: RunLease {
                        owner: r.try_get("lease_owner")?,
                        attempt: r.try_get("attempt")?,
                        until: r.try_get("lease_until")?,
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn request_termination(
        &self,
        request_id: &str,
        mode: &str,
        aborted: &TimelineEntry,
        requested: &TimelineEntry,
        status_code: i64,
    ) -> StoreResult<Termination> {
        let mut conn = self.writer.lock().await?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await?;
        let row = sqlx::query("SELECT id, status, traced FROM events WHERE request_id = ?")
            .bind(request_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let id: i64 = row.try_get("id")?;
        let traced: bool = row.try_get("traced")?;
        let status = status_of(row.try_get("status")?)?;
        let outcome = match status {
            EventStatus::Queued if !traced => {
                sqlx::query("DELETE FROM events WHERE id = ? AND status = ?")
                    .bind(id)
                    .bind(status.code())
                    .execute(&mut *tx)
                    .await?;
                Termination::AbortedWhileQueued
            }
            EventStatus::Queued => {
                if !status.can_move_to(aborted.status) {
                    return Err(StoreError::IllegalTransition {
                        from: status,
                        to: aborted.status,
                    });
                }
                sqlx::query(
                    "UPDATE events SET status = ?, status_code = ?, ended_at = ?, terminate = ? \
                     WHERE id = ? AND status = ?",
                )
                .bind(aborted.status.code())
                .bind(status_code)
                .bind(aborted.at)
                .bind(mode)
                .bind(id)
                .bind(status.code())
                .execute(&mut *tx)
                .await?;
                add_timeline(&mut tx, id, aborted).await?;
                Termination::AbortedWhileQueued
            }
            EventStatus::Running => {
                sqlx::query("UPDATE events SET terminate = ? WHERE id = ? AND status = ?")
                    .bind(mode)
                    .bind(id)
                    .bind(status.code())
                    .execute(&mut *tx)
                    .await?;
                if traced {
                    add_timeline(&mut tx, id, requested).await?;
                }
                Termination::Running
            }
            other => Termination::NotRunning(other),
        };
        tx.commit().await?;
        Ok(outcome)
    }
}

impl SqliteStore {
    /// Applies a batch of the engine's writes in one transaction. Every kind of write goes in
    /// as one statement for the whole batch: each statement is a round trip to SQLite's
    /// thread, and a batch may hold thousands of writes.
    ///
    /// Writes about a run are fenced on the lease that owns them: they change an event only
    /// while it is RUNNING under the same owner and attempt (and, for a takeover, the lease it
    /// read). A run that lost its event (taken over by another node, deleted with its
    /// function) writes nothing.
    async fn commit_batch(
        &self,
        writes: &[EventWrite],
        claim: Option<&Claim>,
    ) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
        if writes.is_empty() {
            // A claim alone is one statement: no transaction around it.
            let Some(claim) = claim else {
                return Ok(Vec::new());
            };
            return claim_in(&mut *self.writer.lock().await?, claim).await;
        }
        // A batch of accepts alone (the whole batch while invocations arrive faster than
        // events end) is one statement: SQLite commits it by itself, taking the write lock
        // when it begins as `BEGIN IMMEDIATE` does, with two round trips to its thread fewer.
        if claim.is_none() && writes.len() <= INSERTS_PER_STATEMENT {
            let inserts: Option<Vec<&NewEvent>> = writes
                .iter()
                .map(|w| match w {
                    EventWrite::Insert(e) => Some(e),
                    _ => None,
                })
                .collect();
            if let Some(inserts) = inserts {
                insert_events(&mut *self.writer.lock().await?, &inserts).await?;
                return Ok(Vec::new());
            }
        }
        let mut conn = self.writer.lock().await?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await?;
        let fenced_out = apply_in(&mut tx, writes).await?;
        let claimed = match claim {
            Some(claim) => claim_in(&mut tx, claim).await?,
            None => Vec::new(),
        };
        tx.commit().await?;
        if fenced_out > 0 {
            tracing::warn!(
                writes = fenced_out,
                "writes of runs that no longer own their events were ignored"
            );
        }
        Ok(claimed)
    }
}

/// Accepts per INSERT statement; a batch of accepts up to this size is one statement.
const INSERTS_PER_STATEMENT: usize = 1000;

/// Stores accepted events, in one statement. Each counts against its namespace's invocation
/// quota through the trigger `events_count_invocations`, in the same statement.
async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[&NewEvent],
) -> Result<(), sqlx::Error> {
    // The first timeline entry (queued) is not stored: it is read from the event's own
    // columns, which saves a row per accept.
    let mut b = QueryBuilder::<Sqlite>::new(
        "INSERT INTO events (request_id, function_id, invoke_type, status, traced, \
             payload, enqueued_at, run_after, invoked_by, rerun_of) ",
    );
    b.push_values(events, |mut row, e| {
        row.push_bind(&e.request_id)
            .push_bind(e.function_id)
            .push_bind(&e.invoke_type)
            .push_bind(EventStatus::Queued.code())
            .push_bind(e.traced)
            .push_bind(&e.payload)
            .push_bind(e.enqueued_at)
            .push_bind(e.enqueued_at)
            .push_bind(&e.invoked_by)
            .push_bind(&e.rerun_of);
    });
    b.build().execute(conn).await?;
    Ok(())
}

/// Applies `writes` in the transaction; answers how many of them were fenced out.
async fn apply_in(tx: &mut SqliteConnection, writes: &[EventWrite]) -> Result<u64, sqlx::Error> {
    let mut inserts = Vec::new();
    let mut finishes = Vec::new();
    let mut requeues = Vec::new();
    let mut deletes: Vec<(i64, &RunLease)> = Vec::new();
    let mut timeline: Vec<(i64, &RunLease, &TimelineEntry)> = Vec::new();
    for write in writes {
        match write {
            EventWrite::Insert(e) => inserts.push(e),
            EventWrite::Note {
                event_id,
                run,
                entry,
            } => timeline.push((*event_id, run, entry)),
            EventWrite::Finish {
                event_id,
                run,
                traced: false,
                ..
            } => deletes.push((*event_id, run)),
            EventWrite::Finish {
                event_id,
                run,
                entry,
                ..
            } => {
                finishes.push(write);
                timeline.push((*event_id, run, entry));
            }
            EventWrite::Requeue {
                event_id,
                run,
                traced,
                entry,
                ..
            } => {
                requeues.push(write);
                if *traced {
                    timeline.push((*event_id, run, entry));
                }
            }
        }
    }

    for chunk in inserts.chunks(INSERTS_PER_STATEMENT) {
        insert_events(&mut *tx, chunk).await?;
    }
    // Rows of one statement share their fence's owner (and takeover lease), bound once per
    // statement rather than per row: a batch is nearly always one node's own writes, and
    // SQLite parses every batch statement afresh, so each bind per row costs on every accept.
    let mut fences: Vec<Fence> = Vec::new();
    for run in timeline
        .iter()
        .map(|t| t.1)
        .chain(deletes.iter().map(|d| d.1))
        .chain(finishes.iter().chain(&requeues).filter_map(|w| w.lease()))
    {
        let fence = (run.owner.as_str(), run.until);
        if !fences.contains(&fence) {
            fences.push(fence);
        }
    }
    let mut fenced_out = 0u64;
    // Timeline entries go first, while the fence (RUNNING under this lease) still holds for
    // the transitions of this same batch.
    for &fence in &fences {
        let rows: Vec<_> = timeline.iter().filter(|t| t.1.fence() == fence).collect();
        for chunk in rows.chunks(1000) {
            let mut b = QueryBuilder::<Sqlite>::new(
                "INSERT INTO event_timeline (event_id, at, status, detail) \
                     SELECT v.column1, v.column2, v.column3, v.column4 FROM (",
            );
            b.push_values(
                chunk.iter().enumerate(),
                |mut row, (i, (event_id, run, entry))| {
                    row.push_bind(*event_id)
                        .push_bind(entry.at)
                        .push_bind(entry.status.code())
                        .push_bind(&entry.detail)
                        .push_bind(run.attempt)
                        .push_bind(i as i64);
                },
            );
            b.push(") AS v JOIN events e ON e.id = v.column1 AND e.attempt = v.column5 AND ");
            push_lease_fence(&mut b, "e", fence);
            // In the order written, so an event's entries read in order.
            b.push(" ORDER BY v.column6");
            let done = b.build().execute(&mut *tx).await?.rows_affected();
            fenced_out += chunk.len() as u64 - done;
        }
    }
    for &fence in &fences {
        let of_fence = |w: &&&EventWrite| w.lease().map(RunLease::fence) == Some(fence);
        let rows: Vec<_> = finishes.iter().filter(of_fence).collect();
        for chunk in rows.chunks(1000) {
            // The error's first line, cut, kept apart for the top errors (see
            // `events_failed_errors`).
            let mut b = QueryBuilder::<Sqlite>::new(format!(
                "UPDATE events SET status = v.column2, status_code = v.column3, \
                     result = v.column4, error = v.column5, logs = v.column6, ended_at = v.column7, \
                     error_head = substr(CASE WHEN instr(v.column5, char(10)) > 0 \
                       THEN substr(v.column5, 1, instr(v.column5, char(10)) - 1) \
                       ELSE v.column5 END, 1, {TOP_ERROR_CHARS}), \
                     lease_until = NULL FROM ("
            ));
            b.push_values(chunk, |mut row, w| {
                if let EventWrite::Finish {
                    event_id,
                    run,
                    status_code,
                    result,
                    error,
                    logs,
                    entry,
                    ..
                } = w
                {
                    row.push_bind(*event_id)
                        .push_bind(entry.status.code())
                        .push_bind(*status_code)
                        .push_bind(result)
                        .push_bind(error)
                        .push_bind(logs)
                        .push_bind(entry.at)
                        .push_bind(run.attempt);
                }
            });
            b.push(") AS v WHERE events.id = v.column1 AND events.attempt = v.column8 AND ");
            push_lease_fence(&mut b, "events", fence);
            let done = b.build().execute(&mut *tx).await?.rows_affected();
            fenced_out += chunk.len() as u64 - done;
        }
        let rows: Vec<_> = requeues.iter().filter(of_fence).collect();
        for chunk in rows.chunks(1000) {
            let mut b = QueryBuilder::<Sqlite>::new("UPDATE events SET status = ");
            b.push(QUEUED).push(
                ", attempt = v.column2, run_after = v.column3, lease_until = NULL, \
                     lease_owner = '', error = v.column4, logs = v.column5 FROM (",
            );
            b.push_values(chunk, |mut row, w| {
                if let EventWrite::Requeue {
                    event_id,
                    run,
                    attempt,
                    run_after,
                    error,
                    logs,
                    ..
                } = w
                {
                    row.push_bind(*event_id)
                        .push_bind(*attempt)
                        .push_bind(*run_after)
                        .push_bind(error)
                        .push_bind(logs)
                        .push_bind(run.attempt);
                }
            });
            b.push(") AS v WHERE events.id = v.column1 AND events.attempt = v.column6 AND ");
            push_lease_fence(&mut b, "events", fence);
            let done = b.build().execute(&mut *tx).await?.rows_affected();
            fenced_out += chunk.len() as u64 - done;
        }
        let rows: Vec<_> = deletes.iter().filter(|d| d.1.fence() == fence).collect();
        for chunk in rows.chunks(1000) {
            let mut b = QueryBuilder::<Sqlite>::new("DELETE FROM events WHERE ");
            push_lease_fence(&mut b, "events", fence);
            b.push(" AND (id, attempt) IN (");
            b.push_values(chunk, |mut row, (id, run)| {
                row.push_bind(*id).push_bind(run.attempt);
            });
            b.push(")");
            let done = b.build().execute(&mut *tx).await?.rows_affected();
            fenced_out += chunk.len() as u64 - done;
        }
    }
    Ok(fenced_out)
}

/// A write's fence: the owner of the lease, and for a takeover the lease's expiry as read.
type Fence<'a> = (&'a str, Option<Millis>);

/// The fence of a run's writes, past the per-row attempt: the event is RUNNING under the same
/// owner (and, for a takeover, the same lease it read).
fn push_lease_fence(b: &mut QueryBuilder<Sqlite>, table: &str, (owner, until): Fence<'_>) {
    b.push(format_args!(
        "{table}.status = {RUNNING} AND {table}.lease_owner = "
    ))
    .push_bind(owner.to_string());
    if let Some(until) = until {
        b.push(format_args!(" AND {table}.lease_until = "))
            .push_bind(until);
    }
}

async fn add_timeline(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    event_id: i64,
    entry: &TimelineEntry,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO event_timeline (event_id, at, status, detail) VALUES (?, ?, ?, ?)")
        .bind(event_id)
        .bind(entry.at)
        .bind(entry.status.code())
        .bind(&entry.detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Makes `claim` on the connection (in the batch's transaction, or alone).
async fn claim_in(
    conn: &mut SqliteConnection,
    claim: &Claim,
) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
    let budget = &claim.budget;
    let (queued, running) = (QUEUED, RUNNING);
    // The functions with queued events, found by skipping from one to the next in the
    // queue's per-function index (a loose index scan: one seek per function, whatever
    // their backlogs; named, because the planner would otherwise walk the index of all
    // events, ended ones included); then each one's oldest due events, at most its allowance;
    // then turns: every function's first event before anyone's second, within the limits.
    let sql = format!(
        "WITH RECURSIVE \
         fns(fid) AS ( \
             SELECT (SELECT function_id FROM events INDEXED BY events_queue_by_function \
                     WHERE status = {queued} ORDER BY function_id LIMIT 1) \
             UNION ALL \
             SELECT (SELECT function_id FROM events INDEXED BY events_queue_by_function \
                     WHERE status = {queued} AND function_id > fid \
                     ORDER BY function_id LIMIT 1) FROM fns WHERE fid IS NOT NULL), \
         allowance(fid, events, reserved) AS ( \
             SELECT fid, COALESCE(json_extract(?5, '$.\"' || fid || '\"[0]'), ?6), \
                    COALESCE(json_extract(?5, '$.\"' || fid || '\"[1]'), 0) \
             FROM fns WHERE fid IS NOT NULL), \
         due AS ( \
             SELECT e.id, e.run_after, a.reserved, a.events, \
                    ROW_NUMBER() OVER (PARTITION BY e.function_id ORDER BY e.run_after, e.id) AS turn \
             FROM allowance a JOIN events e ON e.id IN ( \
                 SELECT id FROM events WHERE status = {queued} AND function_id = a.fid \
                     AND run_after <= ?4 ORDER BY run_after, id LIMIT ?7) \
             WHERE a.events > 0), \
         allowed AS ( \
             SELECT id, run_after, turn, reserved, \
                    ROW_NUMBER() OVER (PARTITION BY reserved ORDER BY turn, run_after, id) AS place \
             FROM due WHERE turn <= events) \
         UPDATE events SET status = {running}, started_at = ?1, lease_owner = ?2, lease_until = ?3 \
         WHERE status = {queued} AND id IN ( \
             SELECT id FROM allowed WHERE reserved OR place <= ?8 \
             ORDER BY turn, run_after, id LIMIT ?7) \
         RETURNING id, request_id, function_id, invoke_type, attempt, traced, payload, \
                   enqueued_at, terminate"
    );
    let allowances: serde_json::Map<String, serde_json::Value> = budget
        .functions
        .iter()
        .map(|&(id, events, reserved)| (id.to_string(), serde_json::json!([events, reserved])))
        .collect();
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(claim.now)
        .bind(&claim.owner)
        .bind(claim.lease_until)
        .bind(claim.now)
        .bind(serde_json::Value::Object(allowances).to_string())
        .bind(budget.per_function)
        .bind(budget.limit)
        .bind(budget.unreserved_limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut claimed = rows
        .iter()
        .map(|r| {
            Ok(ClaimedEvent {
                id: r.try_get("id")?,
                request_id: r.try_get("request_id")?,
                function_id: r.try_get("function_id")?,
                invoke_type: r.try_get("invoke_type")?,
                attempt: r.try_get("attempt")?,
                traced: r.try_get("traced")?,
                payload: r.try_get("payload")?,
                enqueued_at: r.try_get("enqueued_at")?,
                terminate: r.try_get("terminate")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // RETURNING gives no order guarantee: run them oldest first.
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}
