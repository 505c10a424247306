//! Catalog on SQLite.

use super::*;
use crate::store::*;
use sqlx::FromRow;

#[async_trait]
impl Catalog for SqliteStore {
    async fn ensure_namespace(&self, region: &str, name: &str, now: Millis) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO namespaces (region, name, created_at) VALUES (?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(region)
        .bind(name)
        .bind(now)
        .execute(&mut *self.writer.lock().await?)
        .await?;
        Ok(())
    }

    async fn list_namespaces(&self, region: &str) -> StoreResult<Vec<Namespace>> {
        // `default` first, then by name: the order of the namespace selector.
        let sql =
            format!("{NAMESPACE_SELECT} WHERE n.region = ? ORDER BY n.name != 'default', n.name");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(region)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows
            .iter()
            .map(Namespace::from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn get_namespace(&self, region: &str, name: &str) -> StoreResult<Option<Namespace>> {
        let sql = format!("{NAMESPACE_SELECT} WHERE n.region = ? AND n.name = ?");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(region)
            .bind(name)
            .fetch_optional(&self.reader)
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
            "INSERT INTO namespaces (region, name, description, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(region)
        .bind(name)
        .bind(description)
        .bind(now)
        .execute(&mut *self.writer.lock().await?)
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
        let mut conn = self.writer.lock().await?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await?;
        let functions: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM functions WHERE region = ? AND namespace = ? AND deleted_at IS NULL")
                .bind(region)
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        if functions > 0 {
            return Err(StoreError::NotEmpty);
        }
        // Deleted functions kept for their events' status go with their namespace.
        sqlx::query(
            "DELETE FROM functions WHERE region = ? AND namespace = ? AND deleted_at IS NOT NULL",
        )
        .bind(region)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query("DELETE FROM namespaces WHERE region = ? AND name = ?")
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
        fn filter(b: &mut QueryBuilder<Sqlite>, region: &str, namespace: &str, q: &FunctionQuery) {
            b.push(" WHERE region = ").push_bind(region);
            b.push(" AND namespace = ").push_bind(namespace);
            b.push(" AND deleted_at IS NULL");
            if !q.search.trim().is_empty() {
                b.push(" AND name LIKE ")
                    .push_bind(like_pattern(q.search.trim()))
                    .push(" ESCAPE '\\'");
            }
            if !q.description.trim().is_empty() {
                b.push(" AND description LIKE ")
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
                b.push(" AND 0");
            }
            if let Some(t) = q.trace_enable {
                b.push(" AND trace_enable = ").push_bind(t);
            }
        }
        let mut page = QueryBuilder::new(format!("SELECT {FUNCTION_COLUMNS} FROM functions"));
        filter(&mut page, region, namespace, query);
        let direction = if query.ascending { "ASC" } else { "DESC" };
        let column = match query.order_by {
            FunctionOrder::AddTime => "created_at",
            FunctionOrder::ModTime => "modified_at",
            FunctionOrder::FunctionName => "name",
        };
        page.push(format!(" ORDER BY {column} {direction}, id {direction}"));
        page.push(" LIMIT ").push_bind(query.limit);
        page.push(" OFFSET ").push_bind(query.offset);
        let rows = page.build().fetch_all(&self.reader).await?;

        let mut count = QueryBuilder::new("SELECT COUNT(*) FROM functions");
        filter(&mut count, region, namespace, query);
        let total: i64 = count.build_query_scalar().fetch_one(&self.reader).await?;
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
        let rows = sqlx::query(
            "SELECT path, content FROM function_files WHERE function_id = ? ORDER BY path",
        )
        .bind(function_id)
        .fetch_all(&self.reader)
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
        let mut conn = self.writer.lock().await?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await?;
        let sql = format!(
            "INSERT INTO functions (region, namespace, name, runtime, handler, description, \
             memory_size, timeout, environment, async_run_enable, trace_enable, retry_num, \
             msg_ttl, qps_limit, public_net, created_at, modified_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {FUNCTION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(region)
            .bind(namespace)
            .bind(&f.name)
            .bind(f.runtime.name)
            .bind(&f.handler)
            .bind(&f.config.description)
            .bind(f.config.memory_size)
            .bind(f.config.timeout)
            .bind(serde_json::to_string(&f.config.environment).expect("plain strings"))
            .bind(f.async_run_enable)
            .bind(f.config.trace_enable)
            .bind(f.config.retry_num)
            .bind(f.config.msg_ttl)
            .bind(f.config.qps_limit)
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
            "UPDATE functions SET description = ?, memory_size = ?, timeout = ?, environment = ?, \
             trace_disabled_at = ?, trace_enable = ?, retry_num = ?, msg_ttl = ?, qps_limit = ?, \
             public_net = ?, modified_at = ? \
             WHERE region = ? AND namespace = ? AND name = ? AND deleted_at IS NULL \
             RETURNING {FUNCTION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&c.description)
            .bind(c.memory_size)
            .bind(c.timeout)
            .bind(serde_json::to_string(&c.environment).expect("plain strings"))
            .bind(trace_disabled_at)
            .bind(c.trace_enable)
            .bind(c.retry_num)
            .bind(c.msg_ttl)
            .bind(c.qps_limit)
            .bind(c.public_net)
            .bind(now)
            .bind(&key.region)
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(&mut *self.writer.lock().await?)
            .await?;
        updated(row)
    }

    async fn update_function_code(
        &self,
        key: &FunctionKey,
        code: &CodeUpdate,
        now: Millis,
    ) -> StoreResult<Function> {
        let mut conn = self.writer.lock().await?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await?;
        let sql = format!(
            "UPDATE functions SET handler = ?, modified_at = ? \
             WHERE region = ? AND namespace = ? AND name = ? AND deleted_at IS NULL \
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
            sqlx::query("DELETE FROM function_files WHERE function_id = ?")
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
        let mut conn = self.writer.lock().await?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await?;
        // A deleted function holds no reservation.
        let id: i64 = sqlx::query_scalar(
            "UPDATE functions SET deleted_at = ?, reserved_mem = NULL \
             WHERE region = ? AND namespace = ? AND name = ? AND deleted_at IS NULL RETURNING id",
        )
        .bind(aborted.at)
        .bind(&key.region)
        .bind(&key.namespace)
        .bind(&key.name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let unended = format!("status IN ({QUEUED}, {RUNNING})");
        // Events status trace does not record have nothing to keep.
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM events WHERE function_id = ? AND traced = 0 AND {unended}"
        )))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO event_timeline (event_id, at, status, detail) \
             SELECT id, ?, ?, ? FROM events WHERE function_id = ? AND {unended}"
        )))
        .bind(aborted.at)
        .bind(aborted.status.code())
        .bind(&aborted.detail)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        // A run still going elsewhere finds its event ended: its writes are fenced off.
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE events SET status = ?, status_code = ?, ended_at = ?, error = ? \
             WHERE function_id = ? AND {unended}"
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
            "INSERT INTO api_keys (secret_id, secret_key, description, enabled, created_at, owner, read_only) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.secret_id)
        .bind(&key.secret_key)
        .bind(&key.description)
        .bind(key.enabled)
        .bind(key.created_at)
        .bind(&key.owner)
        .bind(key.read_only)
        .execute(&mut *self.writer.lock().await?)
        .await
        .map_err(constraint)?;
        Ok(())
    }

    async fn put_api_key(&self, key: &ApiKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (secret_id, secret_key, description, enabled, created_at, owner, read_only) \
             VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT (secret_id) DO UPDATE SET \
             secret_key = excluded.secret_key, description = excluded.description, enabled = 1, \
             owner = excluded.owner, read_only = excluded.read_only",
        )
        .bind(&key.secret_id)
        .bind(&key.secret_key)
        .bind(&key.description)
        .bind(key.created_at)
        .bind(&key.owner)
        .bind(key.read_only)
        .execute(&mut *self.writer.lock().await?)
        .await
        .map_err(constraint)?;
        Ok(())
    }

    async fn get_api_key(&self, secret_id: &str) -> StoreResult<Option<ApiKey>> {
        let sql = format!("{API_KEY_SELECT} WHERE k.secret_id = ?");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(secret_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(api_key_from_row).transpose()?)
    }

    async fn list_api_keys(&self, owner: Option<&str>) -> StoreResult<Vec<ApiKey>> {
        let sql = format!(
            "{API_KEY_SELECT} WHERE (?1 IS NULL OR k.owner = ?1) ORDER BY k.created_at, k.secret_id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(owner)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows
            .iter()
            .map(api_key_from_row)
            .collect::<Result<_, _>>()?)
    }

    async fn set_api_key_enabled(&self, secret_id: &str, enabled: bool) -> StoreResult<()> {
        found(
            sqlx::query("UPDATE api_keys SET enabled = ? WHERE secret_id = ?")
                .bind(enabled)
                .bind(secret_id)
                .execute(&mut *self.writer.lock().await?)
                .await?
                .rows_affected(),
        )
    }

    async fn delete_api_key(&self, secret_id: &str) -> StoreResult<()> {
        found(
            sqlx::query("DELETE FROM api_keys WHERE secret_id = ?")
                .bind(secret_id)
                .execute(&mut *self.writer.lock().await?)
                .await?
                .rows_affected(),
        )
    }

    async fn get_function_by_id(&self, id: i64) -> StoreResult<Option<Function>> {
        let sql = format!("SELECT {FUNCTION_COLUMNS} FROM functions WHERE id = ?");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(function_from_row).transpose()?)
    }

    async fn get_functions_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<Function>> {
        // The ids as one JSON array: one statement text whatever their number, so SQLite
        // prepares it once.
        let sql = format!(
            "SELECT {FUNCTION_COLUMNS} FROM functions WHERE id IN (SELECT value FROM json_each(?))"
        );
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        let ids = format!("[{}]", ids.join(","));
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(ids)
            .fetch_all(&self.reader)
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
            "UPDATE functions SET reserved_mem = ? \
             WHERE region = ? AND namespace = ? AND name = ? AND deleted_at IS NULL \
             RETURNING {FUNCTION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(reserved_mem)
            .bind(&key.region)
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(&mut *self.writer.lock().await?)
            .await?;
        updated(row)
    }

    async fn reservations(&self) -> StoreResult<Vec<Reservation>> {
        let rows = sqlx::query(
            "SELECT id, reserved_mem, memory_size FROM functions WHERE reserved_mem IS NOT NULL",
        )
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(Reservation {
                    function_id: r.try_get("id")?,
                    reserved_mem: r.try_get("reserved_mem")?,
                    memory_size: r.try_get("memory_size")?,
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
             WHERE region = ? AND name = ?",
        )
        .bind(region)
        .bind(namespace)
        .fetch_optional(&self.reader)
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
        found(sqlx::query(
            "UPDATE namespaces SET suspended = ?, invocation_quota = ? WHERE region = ? AND name = ?",
        )
        .bind(suspended)
        .bind(invocation_quota)
        .bind(region)
        .bind(namespace)
        .execute(&mut *self.writer.lock().await?)
        .await?.rows_affected())
    }
}

async fn write_files(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    function_id: i64,
    files: &[CodeFile],
) -> Result<(), sqlx::Error> {
    for file in files {
        sqlx::query(
            "INSERT INTO function_files (function_id, path, content) VALUES (?, ?, ?) \
             ON CONFLICT (function_id, path) DO UPDATE SET content = excluded.content",
        )
        .bind(function_id)
        .bind(&file.path)
        .bind(&file.content)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl SqliteStore {
    /// The function a key names among those `rest` (a condition on `deleted_at`, and an order)
    /// selects.
    async fn function_by_key(
        &self,
        key: &FunctionKey,
        rest: &'static str,
    ) -> StoreResult<Option<Function>> {
        let sql = format!(
            "SELECT {FUNCTION_COLUMNS} FROM functions \
             WHERE region = ? AND namespace = ? AND name = ? AND {rest}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(&key.region)
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(function_from_row).transpose()?)
    }
}
