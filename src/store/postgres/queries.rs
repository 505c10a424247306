//! EventQueries on PostgreSQL.

use super::*;
use crate::clock::Millis;
use crate::domain::event_query::{EventFilter, EventOrderBy};
use crate::store::*;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

#[async_trait]
impl EventQueries for PgStore {
    async fn get_event(&self, request_id: &str) -> StoreResult<Option<EventRecord>> {
        let mut query =
            QueryBuilder::<Postgres>::new(format!("{EVENT_RECORD_SELECT} WHERE e.request_id = "));
        query.push_bind(request_id);
        let row = query.build().fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(event_from_row).transpose()?)
    }

    async fn get_events_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<EventRecord>> {
        let mut found = Vec::with_capacity(ids.len());
        // A few hundred whole events (payload, result and logs too) per answer, each chunk
        // bound as one array.
        for chunk in ids.chunks(500) {
            let mut b =
                QueryBuilder::<Postgres>::new(format!("{EVENT_RECORD_SELECT} WHERE e.id = ANY("));
            b.push_bind(chunk.to_vec()).push(")");
            let rows = b.build().fetch_all(&self.pool).await?;
            let mut records = rows
                .iter()
                .map(event_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            records.sort_by_key(|r| chunk.iter().position(|id| *id == r.id));
            found.extend(records);
        }
        Ok(found)
    }

    async fn list_events(
        &self,
        function_id: i64,
        filter: &EventFilter,
        page: &EventPageQuery,
    ) -> StoreResult<Vec<EventSummary>> {
        // Paging backwards reads the rows before the page's first one in the opposite
        // order, then turns them round.
        let backwards = page
            .before
            .filter(|_| filter.order_by == EventOrderBy::StartTime);
        let desc = !filter.ascending ^ backwards.is_some();
        // Queued and running events have no end: they come first in ascending end-time order
        // and last in descending, as on SQLite, where NULL is the smallest value (PostgreSQL
        // sorts it as the largest unless told). enqueued_at is never NULL, so its order is
        // written as the function's index is declared, or the planner would not match them.
        let (order_col, dir, nulls, cmp) = match (filter.order_by, desc) {
            (EventOrderBy::StartTime, true) => ("enqueued_at", "DESC", "", "<"),
            (EventOrderBy::StartTime, false) => ("enqueued_at", "ASC", "", ">"),
            (EventOrderBy::EndTime, true) => ("ended_at", "DESC", " NULLS LAST", "<"),
            (EventOrderBy::EndTime, false) => ("ended_at", "ASC", " NULLS FIRST", ">"),
        };
        let order = format!(" ORDER BY {order_col} {dir}{nulls}, id {dir} LIMIT ");
        let keyset = backwards.or(page
            .after
            .filter(|_| filter.order_by == EventOrderBy::StartTime));
        let wanted = i64::from(page.offset.saturating_add(page.limit));
        // One branch per status, each read in order from the status index and cut at the
        // rows wanted, then merged: a multi-status filter never sorts all matching rows.
        let branches: Vec<Option<EventStatus>> = if filter.statuses.is_empty() {
            vec![None]
        } else {
            filter.statuses.iter().copied().map(Some).collect()
        };
        let mut b = QueryBuilder::<Postgres>::new(format!("SELECT {EVENT_SUMMARY_COLUMNS} FROM ("));
        for (i, status) in branches.iter().enumerate() {
            if i > 0 {
                b.push(" UNION ALL ");
            }
            // PostgreSQL takes no index hints, and needs none here: with the function (and
            // status) compared for equality and the branch cut at the rows wanted, an ordered
            // scan that stops early is the cheapest plan, custom or generic, and the branches
            // are merged in order (Merge Append), never sorted. In start-time order that is
            // events_by_function_status (one status) or events_by_function (any); in end-time
            // order events_by_function_end, which must sort NULLs first to match.
            b.push(format!(
                "(SELECT {EVENT_SUMMARY_COLUMNS} FROM events WHERE {}",
                function_clause(filter)
            ));
            b.push_bind(function_id);
            b.push(" AND traced");
            if let Some(st) = status {
                b.push(" AND status = ").push_bind(st.code());
            }
            push_event_filter(&mut b, filter);
            if let Some((value, id)) = keyset {
                b.push(format!(" AND ({order_col}, id) {cmp} ("))
                    .push_bind(value)
                    .push(", ")
                    .push_bind(id)
                    .push(")");
            }
            b.push(order.as_str()).push_bind(wanted).push(")");
        }
        b.push(") AS page")
            .push(order.as_str())
            .push_bind(i64::from(page.limit))
            .push(" OFFSET ")
            .push_bind(i64::from(page.offset));
        let rows = b.build().fetch_all(&self.pool).await?;
        let mut found = rows
            .iter()
            .map(summary_from_row)
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        if backwards.is_some() {
            found.reverse();
        }
        Ok(found)
    }

    async fn count_matching_events(
        &self,
        function_id: i64,
        filter: &EventFilter,
    ) -> StoreResult<i64> {
        let count_rows = |from: Option<Millis>, to: Option<Millis>| {
            let mut b = QueryBuilder::<Postgres>::new(format!(
                "SELECT COUNT(*) FROM events WHERE {}",
                function_clause(filter)
            ));
            b.push_bind(function_id).push(" AND traced");
            push_statuses(&mut b, &filter.statuses);
            push_event_filter(
                &mut b,
                &EventFilter {
                    start: None,
                    ..filter.clone()
                },
            );
            if let Some(from) = from {
                b.push(" AND enqueued_at >= ").push_bind(from);
            }
            if let Some(to) = to {
                b.push(" AND enqueued_at < ").push_bind(to);
            }
            b
        };
        // The rollups know counts per minute of enqueue, status and invocation type: anything
        // finer (a RequestId, an end-time range) is counted on the events themselves.
        if filter.request_id.is_some()
            || filter.request_id_prefix.is_some()
            || filter.error_prefix.is_some()
            || filter.end.is_some()
        {
            let (from, to) = filter
                .start
                .map_or((None, None), |(f, t)| (Some(f), Some(t)));
            return Ok(count_rows(from, to)
                .build_query_scalar()
                .fetch_one(&self.pool)
                .await?);
        }
        let (first_minute, end_minute) = match filter.start {
            None => (i64::MIN, i64::MAX),
            Some((from, to)) => ((from + 59_999).div_euclid(60_000), to.div_euclid(60_000)),
        };
        let mut total: i64 = 0;
        if first_minute < end_minute {
            // SUM of BIGINT is NUMERIC in PostgreSQL: cast back to read it as i64.
            let mut b = QueryBuilder::<Postgres>::new(
                "SELECT COALESCE(SUM(count), 0)::BIGINT FROM event_rollups WHERE function_id = ",
            );
            b.push_bind(function_id);
            b.push(" AND minute >= ").push_bind(first_minute);
            b.push(" AND minute < ").push_bind(end_minute);
            push_statuses(&mut b, &filter.statuses);
            push_invoke_types(&mut b, &filter.invoke_types);
            total += b.build_query_scalar::<i64>().fetch_one(&self.pool).await?;
            // The partial minutes at both ends are counted row by row.
            if let Some((from, to)) = filter.start {
                for (f, t) in [(from, first_minute * 60_000), (end_minute * 60_000, to)] {
                    if f < t {
                        total += count_rows(Some(f), Some(t))
                            .build_query_scalar::<i64>()
                            .fetch_one(&self.pool)
                            .await?;
                    }
                }
            }
        } else if let Some((from, to)) = filter.start {
            total = count_rows(Some(from), Some(to))
                .build_query_scalar()
                .fetch_one(&self.pool)
                .await?;
        }
        Ok(total)
    }

    async fn event_stats(
        &self,
        function_id: i64,
        (from, to): (Millis, Millis),
        bucket: Millis,
        statuses: &[EventStatus],
        invoke_types: &[String],
    ) -> StoreResult<EventStats> {
        let (first, end) = (from.div_euclid(60_000), (to + 59_999).div_euclid(60_000));
        let bucket_minutes = (bucket / 60_000).max(1);
        let mut b = QueryBuilder::<Postgres>::new("SELECT (minute / ");
        b.push_bind(bucket_minutes)
            .push(") * ")
            .push_bind(bucket_minutes)
            .push(
                " AS bucket, status, SUM(count)::BIGINT AS n FROM event_rollups \
                 WHERE function_id = ",
            )
            .push_bind(function_id)
            .push(" AND minute >= ")
            .push_bind(first)
            .push(" AND minute < ")
            .push_bind(end);
        push_statuses(&mut b, statuses);
        push_invoke_types(&mut b, invoke_types);
        b.push(" GROUP BY bucket, status ORDER BY bucket");
        // The two rollups are read at the same time, on two of the pool's connections.
        let durations = sqlx::query(
            "SELECT bucket, SUM(count)::BIGINT AS n FROM event_durations \
             WHERE function_id = $1 AND minute >= $2 AND minute < $3 \
             GROUP BY bucket ORDER BY bucket",
        )
        .bind(function_id)
        .bind(first)
        .bind(end)
        .fetch_all(&self.pool);
        let (rows, durations) = tokio::try_join!(b.build().fetch_all(&self.pool), durations)?;
        let mut stats = EventStats::default();
        for r in &rows {
            let minute: i64 = r.try_get("bucket")?;
            let status = status_of(r.try_get("status")?)?;
            let n: i64 = r.try_get("n")?;
            if n == 0 {
                continue;
            }
            let at = minute * 60_000;
            if stats.series.last().is_none_or(|(b, _)| *b != at) {
                stats.series.push((at, [0; 5]));
            }
            let slot = status.code() as usize;
            stats.series.last_mut().expect("pushed").1[slot] += n;
            stats.by_status[slot] += n;
        }
        for r in &durations {
            stats
                .durations
                .push((r.try_get("bucket")?, r.try_get("n")?));
        }
        let ended: i64 = stats.durations.iter().map(|(_, n)| n).sum();
        if ended <= EXACT_DURATIONS_MAX {
            // The same window as the rollups: whole minutes of enqueue time.
            let ended_statuses: Vec<EventStatus> = [
                EventStatus::Finished,
                EventStatus::Failed,
                EventStatus::Aborted,
            ]
            .into_iter()
            .filter(|s| statuses.is_empty() || statuses.contains(s))
            .collect();
            let mut b = QueryBuilder::<Postgres>::new(
                "SELECT ended_at - started_at AS ran FROM events WHERE traced AND function_id = ",
            );
            b.push_bind(function_id)
                .push(" AND enqueued_at >= ")
                .push_bind(first * 60_000)
                .push(" AND enqueued_at < ")
                .push_bind(end * 60_000)
                .push(" AND started_at IS NOT NULL AND ended_at IS NOT NULL");
            if ended_statuses.is_empty() {
                b.push(" AND FALSE");
            } else {
                push_statuses(&mut b, &ended_statuses);
            }
            push_invoke_types(&mut b, invoke_types);
            b.push(" ORDER BY ran LIMIT ")
                .push_bind(EXACT_DURATIONS_MAX + 1);
            let exact: Vec<i64> = b.build_query_scalar().fetch_all(&self.pool).await?;
            // Ended while being read: the histogram is as good.
            if exact.len() as i64 <= EXACT_DURATIONS_MAX {
                stats.exact_durations = Some(exact);
            }
        }
        Ok(stats)
    }

    async fn top_errors(
        &self,
        function_id: i64,
        (from, to): (Millis, Millis),
        invoke_types: &[String],
        limit: u32,
    ) -> StoreResult<Vec<(String, i64)>> {
        // The status is written out, not bound: only then can PostgreSQL tell, in a generic
        // plan too, that the partial index of failed events answers the query, read backwards
        // (from the index alone where the table is vacuumed). Equal counts are ordered by the errors' bytes, as SQLite's
        // BINARY collation orders them, whatever the database's collation.
        let mut b = QueryBuilder::<Postgres>::new(format!(
            "SELECT error_head AS first, COUNT(*) AS n \
             FROM (SELECT error_head FROM events \
                   WHERE status = {} AND traced AND function_id = ",
            EventStatus::Failed.code()
        ));
        b.push_bind(function_id)
            .push(" AND enqueued_at >= ")
            .push_bind(from)
            .push(" AND enqueued_at < ")
            .push_bind(to);
        push_invoke_types(&mut b, invoke_types);
        b.push(" AND error_head IS NOT NULL ORDER BY enqueued_at DESC LIMIT ")
            .push_bind(TOP_ERRORS_SCANNED)
            .push(
                ") AS failed GROUP BY error_head \
                 ORDER BY n DESC, error_head COLLATE \"C\" LIMIT ",
            )
            .push_bind(i64::from(limit));
        let rows = b.build().fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get("first")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn reruns_of(&self, request_id: &str, limit: u32) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT request_id FROM events WHERE rerun_of = $1 ORDER BY enqueued_at, id LIMIT $2",
        )
        .bind(request_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn monitoring(
        &self,
        function_id: i64,
        (from, to): (Millis, Millis),
        bucket: Millis,
    ) -> StoreResult<MonitoringSeries> {
        let (first, end) = (from.div_euclid(60_000), (to + 59_999).div_euclid(60_000));
        let minutes = (bucket / 60_000).max(1);
        // Each an index range of one function's minutes; the three read at once.
        let grouped = |sql: &'static str| {
            sqlx::query(sql)
                .bind(minutes)
                .bind(function_id)
                .bind(first)
                .bind(end)
                .fetch_all(&self.pool)
        };
        let (run_times, queue_waits, concurrency) = tokio::try_join!(
            grouped(
                "SELECT (minute / $1) * $1 AS at, bucket AS k, SUM(count)::BIGINT AS n \
                 FROM event_durations \
                 WHERE function_id = $2 AND minute >= $3 AND minute < $4 \
                 GROUP BY at, k ORDER BY at, k"
            ),
            grouped(
                "SELECT (minute / $1) * $1 AS at, bucket AS k, SUM(count)::BIGINT AS n \
                 FROM event_waits \
                 WHERE function_id = $2 AND minute >= $3 AND minute < $4 \
                 GROUP BY at, k ORDER BY at, k"
            ),
            grouped(
                "SELECT (minute / $1) * $1 AS at, 0::BIGINT AS k, MAX(n) AS n FROM ( \
                     SELECT minute, SUM(peak)::BIGINT AS n FROM function_concurrency \
                     WHERE function_id = $2 AND minute >= $3 AND minute < $4 GROUP BY minute \
                 ) AS per_minute GROUP BY at ORDER BY at"
            ),
        )?;
        let rows = |rows: &[PgRow]| -> Result<Vec<(Millis, i64, i64)>, sqlx::Error> {
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get::<i64, _>("at")? * 60_000,
                        r.try_get("k")?,
                        r.try_get("n")?,
                    ))
                })
                .filter(|r| !matches!(r, Ok((_, _, 0))))
                .collect()
        };
        let histograms = |found: Vec<(Millis, i64, i64)>| {
            let mut series: Vec<(Millis, Vec<(i64, i64)>)> = Vec::new();
            for (at, upper, n) in found {
                if series.last().is_none_or(|(b, _)| *b != at) {
                    series.push((at, Vec::new()));
                }
                series.last_mut().expect("pushed").1.push((upper, n));
            }
            series
        };
        Ok(MonitoringSeries {
            run_times: histograms(rows(&run_times)?),
            queue_waits: histograms(rows(&queue_waits)?),
            concurrency: rows(&concurrency)?
                .into_iter()
                .map(|(at, _, n)| (at, n))
                .collect(),
        })
    }

    async fn event_logs(
        &self,
        function_id: i64,
        query: &LogQuery,
        limit: u32,
    ) -> StoreResult<Vec<EventLogs>> {
        let filter = EventFilter {
            request_id: query.request_id.clone(),
            request_id_prefix: query.request_id_prefix.clone(),
            ..EventFilter::default()
        };
        // The latest events first (the function's index), then their logs searched.
        let mut b = QueryBuilder::<Postgres>::new(
            "SELECT request_id, status, status_code, enqueued_at, started_at, ended_at, logs \
             FROM (SELECT id, request_id, status, status_code, enqueued_at, started_at, ended_at, \
             logs FROM events WHERE traced AND ",
        );
        b.push(function_clause(&filter)).push_bind(function_id);
        push_event_filter(&mut b, &filter);
        b.push(" ORDER BY enqueued_at DESC, id DESC LIMIT ")
            .push_bind(LOGS_SCANNED)
            .push(") AS latest WHERE logs IS NOT NULL AND logs <> ''");
        if let Some(text) = &query.text {
            // ILIKE ignores the case of letters without copying the logs, as lower() would;
            // the text's own wildcards are escaped. (It folds the case of letters beyond
            // ASCII too, by the database's locale, where SQLite's LIKE folds ASCII only.)
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            b.push(" AND logs ILIKE ")
                .push_bind(format!("%{escaped}%"))
                .push(" ESCAPE '\\'");
        }
        b.push(" ORDER BY enqueued_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = b.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(EventLogs {
                    request_id: r.try_get("request_id")?,
                    status: status_of(r.try_get("status")?)?,
                    status_code: r.try_get("status_code")?,
                    enqueued_at: r.try_get("enqueued_at")?,
                    started_at: r.try_get("started_at")?,
                    ended_at: r.try_get("ended_at")?,
                    logs: r.try_get("logs")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    async fn queue_depth(&self, now: Millis) -> StoreResult<QueueDepth> {
        // From the queue's partial index, ordered by due time: the count reads every entry
        // of it (an index-only scan where the table is vacuumed; its cost grows with the
        // queue), the oldest due is its first.
        let (queued, oldest_due_at) = sqlx::query_as(
            "SELECT COUNT(*), MIN(CASE WHEN run_after <= $1 THEN run_after END) \
             FROM events WHERE status = 0",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(QueueDepth {
            queued,
            oldest_due_at,
        })
    }

    async fn count_events(&self, function_id: i64) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE function_id = $1")
                .bind(function_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn stored_timeline(&self, event_id: i64) -> StoreResult<Option<StoredTimeline>> {
        // One read transaction, so the event and its entries are one snapshot: under
        // PostgreSQL's default READ COMMITTED each statement would take its own.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let Some(head) = sqlx::query(
            "SELECT enqueued_at, invoke_type, invoked_by, rerun_of FROM events WHERE id = $1",
        )
        .bind(event_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT at, status, detail FROM event_timeline WHERE event_id = $1 ORDER BY id",
        )
        .bind(event_id)
        .fetch_all(&mut *tx)
        .await?;
        let entries = rows
            .iter()
            .map(|r| {
                Ok(TimelineEntry {
                    at: r.try_get("at")?,
                    status: status_of(r.try_get("status")?)?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(Some(StoredTimeline {
            enqueued_at: head.try_get("enqueued_at")?,
            invoke_type: head.try_get("invoke_type")?,
            invoked_by: head.try_get("invoked_by")?,
            rerun_of: head.try_get("rerun_of")?,
            entries,
        }))
    }
}

fn push_statuses(b: &mut QueryBuilder<Postgres>, statuses: &[EventStatus]) {
    if !statuses.is_empty() {
        b.push(" AND status IN (");
        let mut list = b.separated(", ");
        for s in statuses {
            list.push_bind(s.code());
        }
        b.push(")");
    }
}

fn push_invoke_types(b: &mut QueryBuilder<Postgres>, types: &[String]) {
    if !types.is_empty() {
        b.push(" AND invoke_type IN (");
        let mut list = b.separated(", ");
        for t in types {
            list.push_bind(t.clone());
        }
        b.push(")");
    }
}

/// The function's condition. A RequestId prefix is searched on the RequestId index (a range
/// of a few rows) rather than walking the function's events: `+` keeps the planner from
/// choosing the function's index for it, which a generic plan (guessing that a bound range
/// holds 0.5% of all events) does, reading every entry of the function's to intersect them.
fn function_clause(filter: &EventFilter) -> &'static str {
    if filter.request_id_prefix.is_some() {
        "+function_id = "
    } else {
        "function_id = "
    }
}

/// The filter's conditions other than status (which the caller places itself).
fn push_event_filter(b: &mut QueryBuilder<Postgres>, f: &EventFilter) {
    push_invoke_types(b, &f.invoke_types);
    if let Some(id) = &f.request_id {
        b.push(" AND request_id = ").push_bind(id.clone());
    }
    if let Some(prefix) = &f.request_id_prefix {
        // A range of the RequestId index, in the column's collation so the index can seek it
        // (LIKE and starts_with() seek only an index in the C collation). The range holds
        // every RequestId that starts with the prefix in any common collation (RequestIds are
        // lower-case hex and `-`); starts_with() then keeps exactly those, as SQLite's
        // byte-wise range does.
        b.push(" AND request_id >= ").push_bind(prefix.clone());
        b.push(" AND request_id < ")
            .push_bind(format!("{prefix}\u{10FFFF}"));
        b.push(" AND starts_with(request_id, ")
            .push_bind(prefix.clone())
            .push(")");
    }
    if let Some(text) = &f.error_prefix {
        b.push(" AND error_head = ").push_bind(text.clone());
    }
    if let Some((from, to)) = f.start {
        b.push(" AND enqueued_at >= ").push_bind(from);
        b.push(" AND enqueued_at < ").push_bind(to);
    }
    if let Some((from, to)) = f.end {
        b.push(" AND ended_at >= ").push_bind(from);
        b.push(" AND ended_at < ").push_bind(to);
    }
}

/// One row of a list. `EventSummary`'s derived `FromRow` reads `attempt` as u32, which
/// PostgreSQL has no type for: it is read here as the BIGINT it is stored as.
fn summary_from_row(row: &PgRow) -> Result<EventSummary, sqlx::Error> {
    Ok(EventSummary {
        id: row.try_get("id")?,
        request_id: row.try_get("request_id")?,
        status: status_of(row.try_get("status")?)?,
        status_code: row.try_get("status_code")?,
        invoke_type: row.try_get("invoke_type")?,
        qualifier: row.try_get("qualifier")?,
        attempt: row.read("attempt")?,
        enqueued_at: row.try_get("enqueued_at")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
    })
}
