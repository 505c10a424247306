//! What the two SQL backends share: their migrations embedded in the binary, the refusals of
//! their constraints and triggers, the column lists both schemas have alike, and rows read by
//! column name into the domain's types. Each backend keeps only what its dialect says
//! differently.

use super::{
    ApiKey, AuditEntry, EventRecord, Function, Session, StoreError, StoreResult, User, Via,
};
use crate::domain::event::EventStatus;
use crate::domain::user::Role;
use rust_embed::RustEmbed;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row, SqlSafeStr};
use std::borrow::Cow;

/// The migrations of folder `M` shipped in the binary, numbered by their file names
/// (`0001_schema.sql`).
pub(super) fn migrator<M: RustEmbed>() -> anyhow::Result<Migrator> {
    let mut migrations = Vec::new();
    for file in M::iter() {
        let (version, description) = file
            .trim_end_matches(".sql")
            .split_once('_')
            .ok_or_else(|| anyhow::anyhow!("migration {file} is not named NNNN_name.sql"))?;
        let sql = String::from_utf8(M::get(&file).expect("listed").data.into_owned())?;
        migrations.push(Migration::new(
            version.parse()?,
            Cow::Owned(description.replace('_', " ")),
            MigrationType::Simple,
            AssertSqlSafe(sql).into_sql_str(),
            false,
        ));
    }
    // Processes started together migrate once: the migrator holds the database's lock while
    // it runs, and the ones that waited find the migrations applied.
    Ok(Migrator::with_migrations(migrations))
}

/// What the triggers of both backends raise, mapped back to what they mean by [`constraint`].
const FUNCTION_DELETED: &str = "the function was deleted";
const QUOTA_USED: &str = "the namespace has used its invocation quota";

/// Maps a database's refusals (constraints, the store's own triggers) to what they mean for
/// the caller; anything else is the database failing.
pub(super) fn constraint(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict;
        }
        // The trigger events_of_deleted_functions refuses a deleted function's new events.
        if db.is_foreign_key_violation() || db.message() == FUNCTION_DELETED {
            return StoreError::NotFound;
        }
        // The quota triggers refuse accepts past their namespace's invocation quota.
        if db.message() == QUOTA_USED {
            return StoreError::QuotaUsed;
        }
    }
    StoreError::Database(e)
}

/// A write that names one row: none changed means it is not there.
pub(super) fn found(rows: u64) -> StoreResult<()> {
    if rows == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// Escapes `%`, `_` and `\` so a search for `a_b` matches that text, not any character.
pub(super) fn like_pattern(search: &str) -> String {
    let mut out = String::with_capacity(search.len() + 2);
    out.push('%');
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(super) const API_KEY_SELECT: &str = "SELECT k.secret_id, k.secret_key, k.description, \
     k.enabled, k.created_at, k.owner, k.read_only, u.role AS owner_role \
     FROM api_keys k LEFT JOIN users u ON u.name = k.owner";

pub(super) const NAMESPACE_SELECT: &str = "SELECT n.region, n.name, n.description, n.created_at, \
     (SELECT COUNT(*) FROM functions f WHERE f.region = n.region AND f.namespace = n.name \
      AND f.deleted_at IS NULL) \
     AS function_count FROM namespaces n";

pub(super) const FUNCTION_COLUMNS: &str = "id, region, namespace, name, runtime, handler, \
     description, memory_size, timeout, environment, async_run_enable, trace_enable, retry_num, \
     msg_ttl, qps_limit, public_net, reserved_mem, trace_disabled_at, created_at, modified_at, \
     deleted_at";

pub(super) const USER_COLUMNS: &str = "name, role, password_hash, created_at, password_changed_at";

/// A whole event with its function's name, read by [`event_from_row`].
pub(super) const EVENT_RECORD_SELECT: &str = "SELECT e.id, e.request_id, e.function_id, \
     f.name AS function_name, f.region, f.namespace, e.qualifier, e.invoke_type, e.status, \
     e.status_code, e.attempt, e.traced, e.payload, e.result, e.error, e.logs, e.enqueued_at, \
     e.started_at, e.ended_at, e.invoked_by, e.rerun_of FROM events e \
     JOIN functions f ON f.id = e.function_id";

pub(super) const EVENT_SUMMARY_COLUMNS: &str = "id, request_id, status, status_code, \
     invoke_type, qualifier, attempt, enqueued_at, started_at, ended_at";

/// A type the store keeps in a column, read the same way from either backend's row.
pub(super) trait Stored: Sized {
    fn from_sqlite(row: &SqliteRow, column: &str) -> sqlx::Result<Self>;
    fn from_postgres(row: &PgRow, column: &str) -> sqlx::Result<Self>;
}

macro_rules! stored {
    ($($t:ty),*) => {$(
        impl Stored for $t {
            fn from_sqlite(row: &SqliteRow, column: &str) -> sqlx::Result<Self> {
                row.try_get(column)
            }
            fn from_postgres(row: &PgRow, column: &str) -> sqlx::Result<Self> {
                row.try_get(column)
            }
        }
    )*};
}
stored!(String, Option<String>, i64, Option<i64>, bool);

/// Counts and sizes: the domain's unsigned type, kept as a signed integer (PostgreSQL has no
/// unsigned one); a value out of its range is a decoding error, not a wrapped number.
impl Stored for Option<u32> {
    fn from_sqlite(row: &SqliteRow, column: &str) -> sqlx::Result<Self> {
        narrow(column, Option::<i64>::from_sqlite(row, column)?)
    }
    fn from_postgres(row: &PgRow, column: &str) -> sqlx::Result<Self> {
        narrow(column, Option::<i64>::from_postgres(row, column)?)
    }
}

impl Stored for u32 {
    fn from_sqlite(row: &SqliteRow, column: &str) -> sqlx::Result<Self> {
        narrow(column, Some(i64::from_sqlite(row, column)?)).map(|v| v.unwrap_or_default())
    }
    fn from_postgres(row: &PgRow, column: &str) -> sqlx::Result<Self> {
        narrow(column, Some(i64::from_postgres(row, column)?)).map(|v| v.unwrap_or_default())
    }
}

fn narrow(column: &str, value: Option<i64>) -> sqlx::Result<Option<u32>> {
    value
        .map(u32::try_from)
        .transpose()
        .map_err(|e| sqlx::Error::ColumnDecode {
            index: column.into(),
            source: Box::new(e),
        })
}

/// A row of either backend, read by column name.
pub(super) trait Columns {
    fn read<T: Stored>(&self, name: &str) -> sqlx::Result<T>;
}

impl Columns for SqliteRow {
    fn read<T: Stored>(&self, name: &str) -> sqlx::Result<T> {
        T::from_sqlite(self, name)
    }
}

impl Columns for PgRow {
    fn read<T: Stored>(&self, name: &str) -> sqlx::Result<T> {
        T::from_postgres(self, name)
    }
}

pub(super) fn status_of(code: i64) -> Result<EventStatus, sqlx::Error> {
    EventStatus::try_from(code).map_err(sqlx::Error::Protocol)
}

fn role_of(text: &str) -> Result<Role, sqlx::Error> {
    Role::parse(text).ok_or_else(|| sqlx::Error::Decode(format!("unknown role {text:?}").into()))
}

/// A row of [`FUNCTION_COLUMNS`].
pub(super) fn function_from_row(row: &impl Columns) -> Result<Function, sqlx::Error> {
    let environment: String = row.read("environment")?;
    Ok(Function {
        id: row.read("id")?,
        region: row.read("region")?,
        namespace: row.read("namespace")?,
        name: row.read("name")?,
        runtime: row.read("runtime")?,
        handler: row.read("handler")?,
        description: row.read("description")?,
        memory_size: row.read("memory_size")?,
        timeout: row.read("timeout")?,
        environment: serde_json::from_str(&environment)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        async_run_enable: row.read("async_run_enable")?,
        trace_enable: row.read("trace_enable")?,
        retry_num: row.read("retry_num")?,
        msg_ttl: row.read("msg_ttl")?,
        qps_limit: row.read("qps_limit")?,
        public_net: row.read("public_net")?,
        reserved_mem: row.read("reserved_mem")?,
        trace_disabled_at: row.read("trace_disabled_at")?,
        created_at: row.read("created_at")?,
        modified_at: row.read("modified_at")?,
        deleted_at: row.read("deleted_at")?,
    })
}

/// The function an `UPDATE … RETURNING` changed, or `NotFound` when it matched none.
pub(super) fn updated<R: Columns>(row: Option<R>) -> StoreResult<Function> {
    Ok(function_from_row(&row.ok_or(StoreError::NotFound)?)?)
}

/// A row of [`API_KEY_SELECT`].
pub(super) fn api_key_from_row(row: &impl Columns) -> Result<ApiKey, sqlx::Error> {
    let role: Option<String> = row.read("owner_role")?;
    Ok(ApiKey {
        secret_id: row.read("secret_id")?,
        secret_key: row.read("secret_key")?,
        description: row.read("description")?,
        enabled: row.read("enabled")?,
        created_at: row.read("created_at")?,
        owner: row.read("owner")?,
        read_only: row.read("read_only")?,
        owner_role: role.as_deref().and_then(Role::parse),
    })
}

/// A row of [`USER_COLUMNS`].
pub(super) fn user_from_row(row: &impl Columns) -> Result<User, sqlx::Error> {
    let role: String = row.read("role")?;
    Ok(User {
        name: row.read("name")?,
        role: role_of(&role)?,
        password_hash: row.read("password_hash")?,
        created_at: row.read("created_at")?,
        password_changed_at: row.read("password_changed_at")?,
    })
}

/// A session with its user's role (`user_name`, `role`, `csrf_token`, `expires_at`).
pub(super) fn session_from_row(row: &impl Columns) -> Result<Session, sqlx::Error> {
    let role: String = row.read("role")?;
    Ok(Session {
        user: row.read("user_name")?,
        role: role_of(&role)?,
        csrf_token: row.read("csrf_token")?,
        expires_at: row.read("expires_at")?,
    })
}

pub(super) fn audit_from_row(row: &impl Columns) -> Result<AuditEntry, sqlx::Error> {
    let via: String = row.read("via")?;
    Ok(AuditEntry {
        id: row.read("id")?,
        at: row.read("at")?,
        actor: row.read("actor")?,
        via: Via::parse(&via)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown door {via:?}").into()))?,
        source: row.read("source")?,
        action: row.read("action")?,
        target: row.read("target")?,
        outcome: row.read("outcome")?,
    })
}

/// A row of [`EVENT_RECORD_SELECT`].
pub(super) fn event_from_row(row: &impl Columns) -> Result<EventRecord, sqlx::Error> {
    Ok(EventRecord {
        id: row.read("id")?,
        request_id: row.read("request_id")?,
        function_id: row.read("function_id")?,
        function_name: row.read("function_name")?,
        region: row.read("region")?,
        namespace: row.read("namespace")?,
        qualifier: row.read("qualifier")?,
        invoke_type: row.read("invoke_type")?,
        status: status_of(row.read("status")?)?,
        status_code: row.read("status_code")?,
        attempt: row.read("attempt")?,
        traced: row.read("traced")?,
        payload: row.read("payload")?,
        result: row.read("result")?,
        error: row.read("error")?,
        logs: row.read("logs")?,
        enqueued_at: row.read("enqueued_at")?,
        started_at: row.read("started_at")?,
        ended_at: row.read("ended_at")?,
        invoked_by: row.read("invoked_by")?,
        rerun_of: row.read("rerun_of")?,
    })
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("a_b%"), "%a\\_b\\%%");
        assert_eq!(like_pattern(""), "%%");
    }
}
