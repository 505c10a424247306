//! Catalog on PostgreSQL.

use super::*;
use crate::clock::Millis;
use crate::domain::function::{CodeUpdate, FunctionConfig, NewFunction};
use crate::store::*;
use sqlx::{FromRow, Postgres, QueryBuilder, Row};

#[async_trait]
impl Catalog for PgStore {
    async fn ensure_namespace(&self, region: &str, name: &str, now: Millis) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO namespaces (region, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(region)
        .bind(name)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_namespaces(&self, region: &str) -> StoreResult<Vec<Namespace>> {
        // `default` first, then by name: the order of the namespace selector. Names compare
        // byte by byte (as on SQLite), whatever the database's collation.
        let sql = format!(
            "{NAMESPACE_SELECT} WHERE n.region = $1 \
             ORDER BY n.name != 'default', n.name COLLATE \"C\""
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(region)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(Namespace::from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn get_namespace(&self, region: &str, name: &str) -> StoreResult<Option<Namespace>> {
        let sql = format!("{NAMESPACE_SELECT} WHERE n.region = $1 AND n.name = $2");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(region)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(Namespace::from_row).transpose()?)
    }

    async fn create_namespace(
        &self,
        region: &str,
        name: &str,
        description: &str,
        now: Millis,
    ) -> StoreResult<Namespace> {
        sqlx::query(
            "INSERT INTO namespaces (region, name, description, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(region)
        .bind(name)
        .bind(description)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(constraint)?;
        Ok(Namespace {
            region: region.into(),
            name: name.into(),
            description: description.into(),
            created_at: now,
            function_count: 0,
        })
    }

    async fn delete_namespace(&self, region: &str, name: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // The namespace's row is locked first. A function being created in it holds a key
        // share lock on the row (its foreign key) until it commits: this waits for it, and the
        // count below sees it. One created after waits for this deletion and then finds no
        // namespace. Without the lock the count could miss a function committed meanwhile.
        let exists =
            sqlx::query("SELECT 1 FROM namespaces WHERE region = $1 AND name = $2 FOR UPDATE")
                .bind(region)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        if !exists {
            return Err(StoreError::NotFound);
        }
        let functions: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM functions \
             WHERE region = $1 AND namespace = $2 AND deleted_at IS NULL",
        )
        .bind(region)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if functions > 0 {
            return Err(StoreError::NotEmpty);
        }
        // Deleted functions kept for their events' status go with their namespace.
        sqlx::query(
            "DELETE FROM functions \
             WHERE region = $1 AND namespace = $2 AND deleted_at IS NOT NULL",
        )
        .bind(region)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query("DELETE FROM namespaces WHERE region = $1 AND name = $2")
            .bind(region)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_functions(
        &self,
        region: &str,
        namespace: &str,
        query: &FunctionQuery,
    ) -> StoreResult<FunctionPage> {
        // One WHERE clause for the page and its count, so they always agree.
        fn filter(
            b: &mut QueryBuilder<Postgres>,
            region: &str,
            namespace: &str,
            q: &FunctionQuery,
        ) {
            b.push(" WHERE region = ").push_bind(region);
            b.push(" AND namespace = ").push_bind(namespace);
            b.push(" AND deleted_at IS NULL");
            // ILIKE: the searches are case-insensitive, as SQLite's LIKE is.
            if !q.search.trim().is_empty() {
                b.push(" AND name ILIKE ")
                    .push_bind(like_pattern(q.search.trim()))
                    .push(" ESCAPE '\\'");
            }
            if !q.description.trim().is_empty() {
                b.push(" AND description ILIKE ")
                    .push_bind(like_pattern(q.description.trim()))
                    .push(" ESCAPE '\\'");
            }
            if !q.runtimes.is_empty() {
                b.push(" AND runtime IN (");
                let mut list = b.separated(", ");
                for r in &q.runtimes {
                    list.push_bind(r.as_str());
                }
                b.push(")");
            }
            if let Some(a) = q.async_run_enable {
                b.push(" AND async_run_enable = ").push_bind(a);
            }
            if let Some(p) = q.public_net {
                b.push(" AND public_net = ").push_bind(p);
            }
            if q.matches_nothing {
                b.push(" AND FALSE");
            }
            if let Some(t) = q.trace_enable {
                b.push(" AND trace_enable = ").push_bind(t);
            }
        }
        let mut page = QueryBuilder::new(format!("SELECT {FUNCTION_COLUMNS} FROM functions"));
        filter(&mut page, region, namespace, query);
        let direction = if query.ascending { "ASC" } else { "DESC" };
        // Names compare byte by byte (as on SQLite), whatever the database's collation.
        let column = match query.order_by {
            FunctionOrder::AddTime => "created_at",
            FunctionOrder::ModTime => "modified_at",
            FunctionOrder::FunctionName => "name COLLATE \"C\"",
        };
        page.push(format!(" ORDER BY {column} {direction}, id {direction}"));
        page.push(" LIMIT ").push_bind(i64::from(query.limit));
        page.push(" OFFSET ").push_bind(i64::from(query.offset));
        let rows = page.build().fetch_all(&self.pool).await?;

        let mut count = QueryBuilder::new("SELECT COUNT(*) FROM functions");
        filter(&mut count, region, namespace, query);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        Ok(FunctionPage {
            functions: rows
                .iter()
                .map(function_from_row)
                .collect::<Result<_, _>>()?,
            total,
        })
    }

    async fn get_function(&self, key: &FunctionKey) -> StoreResult<Option<Function>> {
        self.function_by_key(key, "deleted_at IS NULL").await
    }

    async fn get_code(&self, function_id: i64) -> StoreResult<Vec<CodeFile>> {
        // Paths compare byte by byte (as on SQLite), whatever the database's collation.
        let rows = sqlx::query(
            "SELECT path, content FROM function_files WHERE function_id = $1 \
             ORDER BY path COLLATE \"C\"",
        )
        .bind(function_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(CodeFile {
                    path: r.try_get("path")?,
                    content: r.try_get("content")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn create_function(
        &self,
        region: &str,
        namespace: &str,
        f: &NewFunction,
        now: Millis,
    ) -> StoreResult<Function> {
        let mut tx = self.pool.begin().await?;
        // A name taken by a live function fails on the partial unique index (`Conflict`), a
        // missing namespace on the foreign key (`NotFound`), even against a creation or a
        // namespace deletion on another node.
        let sql = format!(
            "INSERT INTO functions (region, namespace, name, runtime, handler, description, \
             memory_size, timeout, environment, async_run_enable, trace_enable, retry_num, \
             msg_ttl, qps_limit, public_net, created_at, modified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
             RETURNING {FUNCTION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(region)
            .bind(namespace)
            .bind(&f.name)
            .bind(f.runtime.name)
            .bind(&f.handler)
            .bind(&f.config.description)
            .bind(i64::from(f.config.memory_size))
            .bind(i64::from(f.config.timeout))
            .bind(serde_json::to_string(&f.config.environment).expect("plain strings"))
            .bind(f.async_run_enable)
            .bind(f.config.trace_enable)
            .bind(i64::from(f.config.retry_num))
            .bind(i64::from(f.config.msg_ttl))
            .bind(i64::from(f.config.qps_limit))
            .bind(f.config.public_net)
            .bind(now)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(constraint)?;
        let function = function_from_row(&row)?;
        write_files(&mut tx, function.id, &f.files).await?;
        tx.commit().await?;
        Ok(function)
    }

    async fn update_function_config(
        &self,
        key: &FunctionKey,
        c: &FunctionConfig,
        trace_disabled_at: Option<Millis>,
        now: Millis,
    ) -> StoreResult<Function> {
        let sql = format!(
            "UPDATE functions SET description = $1, memory_size = $2, timeout = $3, \
             environment = $4, trace_disabled_at = $5, trace_enable = $6, retry_num = $7, \
             msg_ttl = $8, qps_limit = $9, public_net = $10, modified_at = $11 \
             WHERE region = $12 AND namespace = $13 AND name = $14 AND deleted_at IS NULL \
             RETURNING {FUNCTION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&c.description)
            .bind(i64::from(c.memory_size))
            .bind(i64::from(c.timeout))
            .bind(serde_json::to_string(&c.environment).expect("plain strings"))
            .bind(trace_disabled_at)
            .bind(c.trace_enable)
            .bind(i64::from(c.retry_num))
            .bind(i64::from(c.msg_ttl))
            .bind(i64::from(c.qps_limit))
            .bind(c.public_net)
            .bind(now)
            .bind(&key.region)
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(&self.pool)
            .await?;
        updated(row)
    }

    async fn update_function_code(
        &self,
        key: &FunctionKey,
        code: &CodeUpdate,
        now: Millis,
    ) -> StoreResult<Function> {
        let mut tx = self.pool.begin().await?;
        // The update locks the function's row until commit: two code changes to one function
        // (on two nodes) apply one after the other, and a deletion waits for this one.
        let sql = format!(
            "UPDATE functions SET handler = $1, modified_at = $2 \
             WHERE region = $3 AND namespace = $4 AND name = $5 AND deleted_at IS NULL \
             RETURNING {FUNCTION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&code.handler)
            .bind(now)
            .bind(&key.region)
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let function = function_from_row(&row)?;
        if code.replace_all {
            sqlx::query("DELETE FROM function_files WHERE function_id = $1")
                .bind(function.id)
                .execute(&mut *tx)
                .await?;
        }
        write_files(&mut tx, function.id, &code.files).await?;
        tx.commit().await?;
        Ok(function)
    }

    async fn delete_function(
        &self,
        key: &FunctionKey,
        aborted: &TimelineEntry,
        status_code: i64,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // The lock waits for accepts in flight (they hold the row in key-share mode, see
        // `events_of_deleted_functions`, which only FOR UPDATE conflicts with), so the events
        // below include theirs, and accepts after it are refused.
        sqlx::query(
            "SELECT id FROM functions \
             WHERE region = $1 AND namespace = $2 AND name = $3 AND deleted_at IS NULL FOR UPDATE",
        )
        .bind(&key.region)
        .bind(&key.namespace)
        .bind(&key.name)
        .execute(&mut *tx)
        .await?;
        // A deleted function holds no reservation.
        let id: i64 = sqlx::query_scalar(
            "UPDATE functions SET deleted_at = $1, reserved_mem = NULL \
             WHERE region = $2 AND namespace = $3 AND name = $4 AND deleted_at IS NULL \
             RETURNING id",
        )
        .bind(aborted.at)
        .bind(&key.region)
        .bind(&key.namespace)
        .bind(&key.name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let unended = format!("status IN ({QUEUED}, {RUNNING})");
        // The unended events are locked (in id order, as every statement locking events does)
        // before they are read: a claim or an end on another node cannot move one between its
        // timeline entry and its abort. Claims skip them; ends wait and are fenced off after.
        sqlx::query(AssertSqlSafe(format!(
            "SELECT id FROM events WHERE function_id = $1 AND {unended} ORDER BY id FOR UPDATE"
        )))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        // Events status trace does not record have nothing to keep.
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM events WHERE function_id = $1 AND NOT traced AND {unended}"
        )))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO event_timeline (event_id, at, status, detail) \
             SELECT id, $1, $2, $3 FROM events WHERE function_id = $4 AND {unended} ORDER BY id"
        )))
        .bind(aborted.at)
        .bind(aborted.status.code())
        .bind(&aborted.detail)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        // A run still going elsewhere finds its event ended: its writes are fenced off.
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE events SET status = $1, status_code = $2, ended_at = $3, error = $4 \
             WHERE function_id = $5 AND {unended}"
        )))
        .bind(aborted.status.code())
        .bind(status_code)
        .bind(aborted.at)
        .bind(&aborted.detail)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_deleted_function(&self, key: &FunctionKey) -> StoreResult<Option<Function>> {
        self.function_by_key(
            key,
            "deleted_at IS NOT NULL ORDER BY deleted_at DESC LIMIT 1",
        )
        .await
    }

    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (secret_id, secret_key, description, enabled, created_at, \
             owner, read_only) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.secret_id)
        .bind(&key.secret_key)
        .bind(&key.description)
        .bind(key.enabled)
        .bind(key.created_at)
        .bind(&key.owner)
        .bind(key.read_only)
        .execute(&self.pool)
        .await
        .map_err(constraint)?;
        Ok(())
    }

    async fn put_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (secret_id, secret_key, description, enabled, created_at, \
             owner, read_only) VALUES ($1, $2, $3, TRUE, $4, $5, $6) \
             ON CONFLICT (secret_id) DO UPDATE SET \
             secret_key = EXCLUDED.secret_key, description = EXCLUDED.description, \
             enabled = TRUE, owner = EXCLUDED.owner, read_only = EXCLUDED.read_only",
        )
        .bind(&key.secret_id)
        .bind(&key.secret_key)
        .bind(&key.description)
        .bind(key.created_at)
        .bind(&key.owner)
        .bind(key.read_only)
        .execute(&self.pool)
        .await
        .map_err(constraint)?;
        Ok(())
    }

    async fn get_api_key(&self, secret_id: &str) -> StoreResult<Option<ApiKey>> {
        let sql = format!("{API_KEY_SELECT} WHERE k.secret_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(secret_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(api_key_from_row).transpose()?)
    }

    async fn list_api_keys(&self, owner: Option<&str>) -> StoreResult<Vec<ApiKey>> {
        // SecretIds compare byte by byte (as on SQLite), whatever the database's collation.
        let sql = format!(
            "{API_KEY_SELECT} WHERE ($1::TEXT IS NULL OR k.owner = $1) \
             ORDER BY k.created_at, k.secret_id COLLATE \"C\""
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(owner)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(api_key_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn set_api_key_enabled(&self, secret_id: &str, enabled: bool) -> StoreResult<()> {
        found(
            sqlx::query("UPDATE api_keys SET enabled = $1 WHERE secret_id = $2")
                .bind(enabled)
                .bind(secret_id)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn delete_api_key(&self, secret_id: &str) -> StoreResult<()> {
        found(
            sqlx::query("DELETE FROM api_keys WHERE secret_id = $1")
                .bind(secret_id)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn get_function_by_id(&self, id: i64) -> StoreResult<Option<Function>> {
        let sql = format!("SELECT {FUNCTION_COLUMNS} FROM functions WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(function_from_row).transpose()?)
    }

    async fn get_functions_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<Function>> {
        // The ids as one array: one statement text whatever their number, so it is prepared
        // once per connection.
        let sql = format!("SELECT {FUNCTION_COLUMNS} FROM functions WHERE id = ANY($1)");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(function_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn set_reserved_concurrency(
        &self,
        key: &FunctionKey,
        reserved_mem: Option<u32>,
    ) -> StoreResult<Function> {
        let sql = format!(
            "UPDATE functions SET reserved_mem = $1 \
             WHERE region = $2 AND namespace = $3 AND name = $4 AND deleted_at IS NULL \
             RETURNING {FUNCTION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(reserved_mem.map(i64::from))
            .bind(&key.region)
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(&self.pool)
            .await?;
        updated(row)
    }

    async fn reservations(&self) -> StoreResult<Vec<Reservation>> {
        let rows = sqlx::query(
            "SELECT id, reserved_mem, memory_size FROM functions WHERE reserved_mem IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(Reservation {
                    function_id: r.try_get("id")?,
                    reserved_mem: r.read("reserved_mem")?,
                    memory_size: r.read("memory_size")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn namespace_billing(
        &self,
        region: &str,
        namespace: &str,
    ) -> StoreResult<Option<Billing>> {
        let row = sqlx::query(
            "SELECT suspended, invocation_quota, invocations_used FROM namespaces \
             WHERE region = $1 AND name = $2",
        )
        .bind(region)
        .bind(namespace)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| {
                Ok::<_, sqlx::Error>(Billing {
                    suspended: r.try_get("suspended")?,
                    invocation_quota: r.try_get("invocation_quota")?,
                    invocations_used: r.try_get("invocations_used")?,
                })
            })
            .transpose()?)
    }

    async fn set_namespace_billing(
        &self,
        region: &str,
        namespace: &str,
        suspended: bool,
        invocation_quota: Option<i64>,
    ) -> StoreResult<()> {
        found(
            sqlx::query(
                "UPDATE namespaces SET suspended = $1, invocation_quota = $2 \
                 WHERE region = $3 AND name = $4",
            )
            .bind(suspended)
            .bind(invocation_quota)
            .bind(region)
            .bind(namespace)
            .execute(&self.pool)
            .await?
            .rows_affected(),
        )
    }
}

async fn write_files(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    function_id: i64,
    files: &[CodeFile],
) -> Result<(), sqlx::Error> {
    for file in files {
        sqlx::query(
            "INSERT INTO function_files (function_id, path, content) VALUES ($1, $2, $3) \
             ON CONFLICT (function_id, path) DO UPDATE SET content = EXCLUDED.content",
        )
        .bind(function_id)
        .bind(&file.path)
        .bind(&file.content)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl PgStore {
    /// The function a key names among those `rest` (a condition on `deleted_at`, and an order)
    /// selects.
    async fn function_by_key(
        &self,
        key: &FunctionKey,
        rest: &'static str,
    ) -> StoreResult<Option<Function>> {
        let sql = format!(
            "SELECT {FUNCTION_COLUMNS} FROM functions \
             WHERE region = $1 AND namespace = $2 AND name = $3 AND {rest}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&key.region)
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(function_from_row).transpose()?)
    }
}
