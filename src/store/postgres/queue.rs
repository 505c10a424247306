//! EventQueue on PostgreSQL. Every node's engine writes here at once, so each batch locks the
//! events its runs write about (in id order, the order every locking statement here uses, so
//! two nodes never deadlock) before checking their fences, and claims skip the rows another
//! node is claiming (`FOR UPDATE SKIP LOCKED`) instead of waiting for them.

use super::*;
use crate::clock::Millis;
use crate::store::*;
use sqlx::{Postgres, Row, Transaction};

#[async_trait]
impl EventQueue for PgStore {
    async fn commit_events(
        &self,
        writes: &[EventWrite],
        claim: Option<&Claim>,
    ) -> StoreResult<Vec<ClaimedEvent>> {
        for write in writes {
            write.check()?;
        }
        let mut result = self.commit_batch(writes, claim).await;
        // Two transactions that each wait for the other (a deadlock PostgreSQL breaks by
        // failing one) wrote nothing: the batch is tried again rather than failed as if the
        // database were down.
        for _ in 0..3 {
            match &result {
                Err(sqlx::Error::Database(db))
                    if matches!(db.code().as_deref(), Some("40P01" | "40001")) =>
                {
                    tracing::info!(error = %db, "a batch of event writes met another node's; trying it again");
                    result = self.commit_batch(writes, claim).await;
                }
                _ => break,
            }
        }
        if result.is_ok() && writes.iter().any(|w| matches!(w, EventWrite::Insert(_))) {
            self.notify_queued().await;
        }
        // A claim alone says little of whether the database takes writes.
        if writes.is_empty() {
            return result.map_err(constraint);
        }
        self.track(result)
    }

    async fn renew_leases(
        &self,
        owner: &str,
        runs: &[(i64, u32)],
        lease_until: Millis,
    ) -> StoreResult<Vec<RenewedLease>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, attempts): (Vec<i64>, Vec<i64>) =
            runs.iter().map(|&(id, a)| (id, i64::from(a))).unzip();
        // Locked in id order first, as every batch locks them.
        let sql = format!(
            "WITH held AS ( \
                 SELECT e.id FROM events e \
                 JOIN UNNEST($1::BIGINT[], $2::BIGINT[]) AS v(id, attempt) ON v.id = e.id \
                 WHERE e.status = {RUNNING} AND e.attempt = v.attempt AND e.lease_owner = $3 \
                 ORDER BY e.id FOR UPDATE OF e) \
             UPDATE events SET lease_until = $4 FROM held WHERE events.id = held.id \
             RETURNING events.id, events.terminate"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(&ids)
            .bind(&attempts)
            .bind(owner)
            .bind(lease_until)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(RenewedLease {
                    event_id: row.try_get("id")?,
                    terminate: row.try_get("terminate")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn lease_owners(&self) -> StoreResult<Vec<String>> {
        let sql = format!(
            "SELECT DISTINCT lease_owner FROM events WHERE status = {RUNNING} AND lease_owner <> ''"
        );
        Ok(sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn record_concurrency(
        &self,
        node: &str,
        peaks: &[(i64, Millis, u32)],
    ) -> StoreResult<()> {
        if peaks.is_empty() {
            return Ok(());
        }
        let mut functions = Vec::with_capacity(peaks.len());
        let mut minutes = Vec::with_capacity(peaks.len());
        let mut values = Vec::with_capacity(peaks.len());
        for &(function_id, minute, peak) in peaks {
            functions.push(function_id);
            minutes.push(minute);
            values.push(i64::from(peak));
        }
        // A function deleted meanwhile has no row to record against; its peaks go. One row per
        // key (an upsert may not touch a row twice), in key order (no deadlock between nodes).
        sqlx::query(
            "INSERT INTO function_concurrency AS c (function_id, minute, node, peak) \
             SELECT v.f, v.m, $4, MAX(v.p) \
             FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[]) AS v(f, m, p) \
             WHERE EXISTS (SELECT 1 FROM functions WHERE id = v.f) \
             GROUP BY v.f, v.m ORDER BY v.f, v.m \
             ON CONFLICT (function_id, minute, node) \
             DO UPDATE SET peak = GREATEST(c.peak, EXCLUDED.peak)",
        )
        .bind(&functions)
        .bind(&minutes)
        .bind(&values)
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_invocations(
        &self,
        function_id: i64,
        second: i64,
        want: u32,
        limit: u32,
    ) -> StoreResult<Option<u32>> {
        let granted: i64 = sqlx::query_scalar("SELECT take_invocations($1, $2, $3, $4)")
            .bind(function_id)
            .bind(second)
            .bind(i64::from(want))
            .bind(i64::from(limit))
            .fetch_one(&self.pool)
            .await?;
        // At most `want`, which is a u32.
        Ok(Some(u32::try_from(granted).unwrap_or(0)))
    }

    async fn node_heartbeat(&self, beat: &NodeBeat) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO nodes (id, address, started_at, heartbeat_at, running) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET \
             address = EXCLUDED.address, heartbeat_at = EXCLUDED.heartbeat_at, \
             running = EXCLUDED.running",
        )
        .bind(&beat.id)
        .bind(&beat.address)
        .bind(beat.started_at)
        .bind(beat.heartbeat_at)
        .bind(i64::from(beat.running))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn forget_nodes(&self, id: Option<&str>, gone_before: Millis) -> StoreResult<()> {
        sqlx::query("DELETE FROM nodes WHERE id = $1 OR heartbeat_at < $2")
            .bind(id)
            .bind(gone_before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn nodes(&self) -> StoreResult<Vec<NodeBeat>> {
        let rows = sqlx::query(
            "SELECT id, address, started_at, heartbeat_at, running FROM nodes \
             ORDER BY started_at DESC, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NodeBeat {
                    id: r.try_get("id")?,
                    address: r.try_get("address")?,
                    started_at: r.try_get("started_at")?,
                    heartbeat_at: r.try_get("heartbeat_at")?,
                    running: r.read("running")?,
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
        let sql = format!(
            "SELECT e.id, e.request_id, e.attempt, e.traced, e.terminate, e.lease_owner, \
             e.lease_until, f.retry_num, f.name, f.namespace, f.region \
             FROM events e JOIN functions f ON f.id = e.function_id \
             WHERE e.status = {RUNNING} \
               AND (e.lease_until IS NULL OR e.lease_until < $1 OR e.lease_owner = ANY($2)) \
             ORDER BY e.id LIMIT $3"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now)
            .bind(dead_owners)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StrandedRun {
                    id: r.try_get("id")?,
                    request_id: r.try_get("request_id")?,
                    traced: r.try_get("traced")?,
                    terminate: r.try_get("terminate")?,
                    retry_num: r.read("retry_num")?,
                    function: FunctionKey {
                        region: r.try_get("region")?,
                        namespace: r.try_get("namespace")?,
                        name: r.try_get("name")?,
                    },
                    lease: RunLease {
                        owner: r.try_get("lease_owner")?,
                        attempt: r.read("attempt")?,
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
        let mut tx = self.pool.begin().await?;
        // Locked: the node running it, or a claim, cannot move it while this decides.
        let row =
            sqlx::query("SELECT id, status, traced FROM events WHERE request_id = $1 FOR UPDATE")
                .bind(request_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        let id: i64 = row.try_get("id")?;
        let traced: bool = row.try_get("traced")?;
        let status = status_of(row.try_get("status")?)?;
        let outcome = match status {
            EventStatus::Queued if !traced => {
                sqlx::query("DELETE FROM events WHERE id = $1")
                    .bind(id)
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
                    "UPDATE events SET status = $1, status_code = $2, ended_at = $3, terminate = $4 \
                     WHERE id = $5",
                )
                .bind(aborted.status.code())
                .bind(status_code)
                .bind(aborted.at)
                .bind(mode)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                add_timeline(&mut tx, id, aborted).await?;
                Termination::AbortedWhileQueued
            }
            EventStatus::Running => {
                sqlx::query("UPDATE events SET terminate = $1 WHERE id = $2")
                    .bind(mode)
                    .bind(id)
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

impl PgStore {
    /// Applies a batch of the engine's writes, then the claim, in one transaction. Each kind of
    /// write is one statement for the whole batch, its rows passed as arrays.
    ///
    /// Writes about a run are fenced on the lease that owns them: they change an event only
    /// while it is RUNNING under the same owner and attempt (and, for a takeover, the lease it
    /// read). The events concerned are locked first, so a takeover on another node cannot slip
    /// between a run's timeline entry and its end.
    async fn commit_batch(
        &self,
        writes: &[EventWrite],
        claim: Option<&Claim>,
    ) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
        if writes.is_empty() {
            let Some(claim) = claim else {
                return Ok(Vec::new());
            };
            let mut tx = self.pool.begin().await?;
            let claimed = claim_in(&mut tx, claim).await?;
            tx.commit().await?;
            return Ok(claimed);
        }
        let mut tx = self.pool.begin().await?;
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

/// A run's fence, as columns: the event, its attempt, its owner and (for a takeover) the lease
/// it read.
#[derive(Default)]
struct Fences {
    ids: Vec<i64>,
    attempts: Vec<i64>,
    owners: Vec<String>,
    untils: Vec<Option<Millis>>,
}

impl Fences {
    fn push(&mut self, event_id: i64, run: &RunLease) {
        self.ids.push(event_id);
        self.attempts.push(i64::from(run.attempt));
        self.owners.push(run.owner.clone());
        self.untils.push(run.until);
    }

    fn len(&self) -> u64 {
        self.ids.len() as u64
    }
}

/// The fence of a run's writes, on table `e` joined with the arrays as `v`.
fn fence() -> String {
    format!(
        "e.status = {RUNNING} AND e.attempt = v.attempt AND e.lease_owner = v.owner \
         AND (v.until IS NULL OR e.lease_until = v.until)"
    )
}

/// Applies `writes` in the transaction; answers how many of them were fenced out.
async fn apply_in(
    tx: &mut Transaction<'_, Postgres>,
    writes: &[EventWrite],
) -> Result<u64, sqlx::Error> {
    let mut inserts = Vec::new();
    let mut timeline = Fences::default();
    let (mut at, mut status, mut detail) = (Vec::new(), Vec::new(), Vec::new());
    let mut finishes = Fences::default();
    let mut finish = FinishColumns::default();
    let mut requeues = Fences::default();
    let mut requeue = RequeueColumns::default();
    let mut deletes = Fences::default();
    let mut locked = Vec::new();
    for write in writes {
        let entry = match write {
            EventWrite::Insert(e) => {
                inserts.push(e);
                continue;
            }
            EventWrite::Note {
                event_id,
                run,
                entry,
            } => Some((event_id, run, entry)),
            EventWrite::Finish {
                event_id,
                run,
                traced: false,
                ..
            } => {
                deletes.push(*event_id, run);
                None
            }
            EventWrite::Finish {
                event_id,
                run,
                status_code,
                result,
                error,
                logs,
                entry,
                ..
            } => {
                finishes.push(*event_id, run);
                finish.status.push(entry.status.code());
                finish.status_code.push(*status_code);
                finish.result.push(result.clone());
                finish.error.push(error.clone());
                finish.logs.push(logs.clone());
                finish.ended_at.push(entry.at);
                Some((event_id, run, entry))
            }
            EventWrite::Requeue {
                event_id,
                run,
                traced,
                attempt,
                run_after,
                error,
                logs,
                entry,
            } => {
                requeues.push(*event_id, run);
                requeue.attempt.push(i64::from(*attempt));
                requeue.run_after.push(*run_after);
                requeue.error.push(error.clone());
                requeue.logs.push(logs.clone());
                traced.then_some((event_id, run, entry))
            }
        };
        if let EventWrite::Note { event_id, .. }
        | EventWrite::Finish { event_id, .. }
        | EventWrite::Requeue { event_id, .. } = write
        {
            locked.push(*event_id);
        }
        if let Some((event_id, run, entry)) = entry {
            timeline.push(*event_id, run);
            at.push(entry.at);
            status.push(entry.status.code());
            detail.push(entry.detail.clone());
        }
    }

    if !inserts.is_empty() {
        insert_events(tx, &inserts).await?;
    }
    if locked.is_empty() {
        return Ok(0);
    }
    locked.sort_unstable();
    locked.dedup();
    sqlx::query("SELECT id FROM events WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&locked)
        .execute(&mut **tx)
        .await?;

    let fence = fence();
    let mut fenced_out = 0u64;
    // Timeline entries go first, while the fence (RUNNING under this lease) still holds for
    // the transitions of this same batch; in the order written, so an event's entries read in
    // order.
    if !timeline.ids.is_empty() {
        let sql = format!(
            "INSERT INTO event_timeline (event_id, at, status, detail) \
             SELECT v.id, v.at, v.status, v.detail \
             FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::BIGINT[], \
                         $5::BIGINT[], $6::BIGINT[], $7::TEXT[]) \
                  WITH ORDINALITY AS v(id, attempt, owner, until, at, status, detail, ord) \
             JOIN events e ON e.id = v.id AND {fence} ORDER BY v.ord"
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(&timeline.ids)
            .bind(&timeline.attempts)
            .bind(&timeline.owners)
            .bind(&timeline.untils)
            .bind(&at)
            .bind(&status)
            .bind(&detail)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        fenced_out += timeline.len() - done;
    }
    if !finishes.ids.is_empty() {
        // The error's first line, cut, kept apart for the top errors (`events_failed_errors`).
        let sql = format!(
            "UPDATE events e SET status = v.status, status_code = v.status_code, \
                 result = v.result, error = v.error, logs = v.logs, ended_at = v.ended_at, \
                 error_head = substr(split_part(v.error, chr(10), 1), 1, {TOP_ERROR_CHARS}), \
                 lease_until = NULL \
             FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], \
                         $6::BIGINT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BIGINT[]) \
                  AS v(id, attempt, owner, until, status, status_code, result, error, logs, ended_at) \
             WHERE e.id = v.id AND {fence}"
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(&finishes.ids)
            .bind(&finishes.attempts)
            .bind(&finishes.owners)
            .bind(&finishes.untils)
            .bind(&finish.status)
            .bind(&finish.status_code)
            .bind(&finish.result)
            .bind(&finish.error)
            .bind(&finish.logs)
            .bind(&finish.ended_at)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        fenced_out += finishes.len() - done;
    }
    if !requeues.ids.is_empty() {
        let sql = format!(
            "UPDATE events e SET status = {QUEUED}, attempt = v.next, run_after = v.run_after, \
                 lease_until = NULL, lease_owner = '', error = v.error, logs = v.logs \
             FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], \
                         $6::BIGINT[], $7::TEXT[], $8::TEXT[]) \
                  AS v(id, attempt, owner, until, next, run_after, error, logs) \
             WHERE e.id = v.id AND {fence}"
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(&requeues.ids)
            .bind(&requeues.attempts)
            .bind(&requeues.owners)
            .bind(&requeues.untils)
            .bind(&requeue.attempt)
            .bind(&requeue.run_after)
            .bind(&requeue.error)
            .bind(&requeue.logs)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        fenced_out += requeues.len() - done;
    }
    if !deletes.ids.is_empty() {
        let sql = format!(
            "DELETE FROM events e \
             USING UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::BIGINT[]) \
                   AS v(id, attempt, owner, until) \
             WHERE e.id = v.id AND {fence}"
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(&deletes.ids)
            .bind(&deletes.attempts)
            .bind(&deletes.owners)
            .bind(&deletes.untils)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        fenced_out += deletes.len() - done;
    }
    Ok(fenced_out)
}

#[derive(Default)]
struct FinishColumns {
    status: Vec<i64>,
    status_code: Vec<i64>,
    result: Vec<Option<String>>,
    error: Vec<Option<String>>,
    logs: Vec<Option<String>>,
    ended_at: Vec<Millis>,
}

#[derive(Default)]
struct RequeueColumns {
    attempt: Vec<i64>,
    run_after: Vec<Millis>,
    error: Vec<Option<String>>,
    logs: Vec<Option<String>>,
}

/// Stores accepted events, in one statement. Each counts against its namespace's invocation
/// quota through the trigger `events_after_insert`, in the same statement.
async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[&NewEvent],
) -> Result<(), sqlx::Error> {
    // The first timeline entry (queued) is not stored: it is read from the event's own columns.
    let sql = format!(
        "INSERT INTO events (request_id, function_id, invoke_type, status, traced, payload, \
             enqueued_at, run_after, invoked_by, rerun_of) \
         SELECT v.request_id, v.function_id, v.invoke_type, {QUEUED}, v.traced, v.payload, \
             v.enqueued_at, v.enqueued_at, v.invoked_by, v.rerun_of \
         FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::BOOLEAN[], $5::TEXT[], \
                     $6::BIGINT[], $7::TEXT[], $8::TEXT[]) WITH ORDINALITY \
              AS v(request_id, function_id, invoke_type, traced, payload, enqueued_at, \
                   invoked_by, rerun_of, ord) \
         ORDER BY v.ord"
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(
            events
                .iter()
                .map(|e| e.request_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.function_id).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.invoke_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.traced).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.payload.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(events.iter().map(|e| e.enqueued_at).collect::<Vec<_>>())
        .bind(
            events
                .iter()
                .map(|e| e.invoked_by.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            events
                .iter()
                .map(|e| e.rerun_of.as_deref())
                .collect::<Vec<_>>(),
        )
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn add_timeline(
    tx: &mut Transaction<'_, Postgres>,
    event_id: i64,
    entry: &TimelineEntry,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO event_timeline (event_id, at, status, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(event_id)
    .bind(entry.at)
    .bind(entry.status.code())
    .bind(&entry.detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Makes `claim` in the transaction.
async fn claim_in(
    tx: &mut Transaction<'_, Postgres>,
    claim: &Claim,
) -> Result<Vec<ClaimedEvent>, sqlx::Error> {
    let budget = &claim.budget;
    // The functions with queued events, found by skipping from one to the next in the
    // queue's per-function index (one seek per function, whatever their backlogs); then each
    // one's oldest due events, at most its allowance, skipping those another node is claiming
    // right now; then turns: every function's first event before anyone's second, within the
    // limits. Rows locked here and not claimed in the end are let go at commit.
    let sql = format!(
        "WITH RECURSIVE \
         fns(fid) AS ( \
             SELECT (SELECT function_id FROM events WHERE status = {QUEUED} \
                     ORDER BY function_id LIMIT 1) \
             UNION ALL \
             SELECT (SELECT function_id FROM events WHERE status = {QUEUED} AND function_id > fid \
                     ORDER BY function_id LIMIT 1) FROM fns WHERE fid IS NOT NULL), \
         allowance(fid, events, reserved) AS ( \
             SELECT fid, COALESCE(($5::JSONB -> fid::TEXT ->> 0)::BIGINT, $6), \
                    COALESCE(($5::JSONB -> fid::TEXT ->> 1)::BOOLEAN, FALSE) \
             FROM fns WHERE fid IS NOT NULL), \
         due AS ( \
             SELECT d.id, d.run_after, a.reserved, a.events, \
                    ROW_NUMBER() OVER (PARTITION BY a.fid ORDER BY d.run_after, d.id) AS turn \
             FROM allowance a CROSS JOIN LATERAL ( \
                 SELECT id, run_after FROM events \
                 WHERE status = {QUEUED} AND function_id = a.fid AND run_after <= $4 \
                 ORDER BY run_after, id LIMIT LEAST(a.events, $7) \
                 FOR UPDATE SKIP LOCKED) d \
             WHERE a.events > 0), \
         allowed AS ( \
             SELECT id, run_after, turn, reserved, \
                    ROW_NUMBER() OVER (PARTITION BY reserved ORDER BY turn, run_after, id) AS place \
             FROM due WHERE turn <= events), \
         chosen AS ( \
             SELECT id FROM allowed WHERE reserved OR place <= $8 \
             ORDER BY turn, run_after, id LIMIT $7) \
         UPDATE events e SET status = {RUNNING}, started_at = $1, lease_owner = $2, lease_until = $3 \
         FROM chosen WHERE e.id = chosen.id AND e.status = {QUEUED} \
         RETURNING e.id, e.request_id, e.function_id, e.invoke_type, e.attempt, e.traced, \
                   e.payload, e.enqueued_at, e.terminate"
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
        .bind(i64::from(budget.per_function))
        .bind(i64::from(budget.limit))
        .bind(i64::from(budget.unreserved_limit))
        .fetch_all(&mut **tx)
        .await?;
    let mut claimed = rows
        .iter()
        .map(|r| {
            Ok(ClaimedEvent {
                id: r.try_get("id")?,
                request_id: r.try_get("request_id")?,
                function_id: r.try_get("function_id")?,
                invoke_type: r.try_get("invoke_type")?,
                attempt: r.read("attempt")?,
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
