//! Users, sessions and the audit log on PostgreSQL.

use super::*;
use crate::clock::Millis;
use crate::domain::user::Role;
use crate::store::*;
use sqlx::PgConnection;

/// Whether `name` is the only admin, read inside the change's transaction: then it may lose
/// neither its role nor its account.
///
/// The admins' rows are locked (in name order, so two of these never deadlock) until the
/// change commits. Two nodes demoting or deleting the last two admins at once then take turns,
/// and the second sees the first's change: an admin whose row changed meanwhile is re-read,
/// and no longer counts once demoted or deleted.
async fn is_last_admin(tx: &mut PgConnection, name: &str) -> Result<bool, sqlx::Error> {
    let admins: Vec<String> =
        sqlx::query_scalar("SELECT name FROM users WHERE role = 'admin' ORDER BY name FOR UPDATE")
            .fetch_all(tx)
            .await?;
    Ok(admins.len() == 1 && admins[0] == name)
}

#[async_trait]
impl Accounts for PgStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at, password_changed_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.created_at)
        .bind(user.password_changed_at)
        .execute(&self.pool)
        .await
        .map_err(constraint)?;
        Ok(())
    }

    async fn create_first_user(&self, user: &User) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        // Two nodes starting at once would each find no users and create their own first
        // admin. The table lock (which conflicts with itself and with every write to users,
        // not with reads) makes the second wait for the first to commit; its insert then sees
        // the first user and creates none.
        sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let created = sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at, password_changed_at) \
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM users)",
        )
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.created_at)
        .bind(user.password_changed_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(created.rows_affected() == 1)
    }

    async fn get_user(&self, name: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        // Names compare byte by byte (as on SQLite), whatever the database's collation.
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY name COLLATE \"C\"");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
    }

    async fn set_user_role(&self, name: &str, role: Role) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        if role != Role::Admin && is_last_admin(&mut tx, name).await? {
            return Err(StoreError::NotEmpty);
        }
        let changed = sqlx::query("UPDATE users SET role = $1 WHERE name = $2")
            .bind(role.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        found(changed)?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
        now: Millis,
        keep: Option<&str>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE name = $3",
        )
        .bind(password_hash)
        .bind(now)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        found(changed)?;
        sqlx::query("DELETE FROM sessions WHERE user_name = $1 AND token_hash != $2")
            .bind(name)
            .bind(keep.unwrap_or(""))
            .execute(&mut *tx)
            .await?;
        // The session kept counts from the change, or the check against the change's time
        // would end it too.
        sqlx::query("UPDATE sessions SET created_at = $1 WHERE user_name = $2 AND token_hash = $3")
            .bind(now)
            .bind(name)
            .bind(keep.unwrap_or(""))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_user(&self, name: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        if is_last_admin(&mut tx, name).await? {
            return Err(StoreError::NotEmpty);
        }
        let deleted = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        found(deleted)?;
        tx.commit().await?;
        Ok(())
    }

    async fn adopt_unowned_keys(&self, owner: &str) -> StoreResult<u64> {
        Ok(
            sqlx::query("UPDATE api_keys SET owner = $1 WHERE owner IS NULL")
                .bind(owner)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn create_session(&self, s: &NewSession<'_>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_name, csrf_token, created_at, expires_at, \
             source) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(s.token_hash)
        .bind(s.user)
        .bind(s.csrf_token)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.source)
        .execute(&self.pool)
        .await
        .map_err(constraint)?;
        Ok(())
    }

    async fn session(&self, token_hash: &str, now: Millis) -> StoreResult<Option<Session>> {
        // A session older than the user's last password change is over, whichever node
        // changed it.
        let row = sqlx::query(
            "SELECT s.user_name, u.role, s.csrf_token, s.expires_at FROM sessions s \
             JOIN users u ON u.name = s.user_name \
             WHERE s.token_hash = $1 AND s.expires_at > $2 \
             AND s.created_at >= u.password_changed_at",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(session_from_row).transpose()?)
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn sweep_sessions(&self, now: Millis) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn put_console_result(&self, r: &ConsoleResult<'_>, now: Millis) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM console_results WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_results (token_hash, user_name, function_id, body, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(r.token_hash)
        .bind(r.user)
        .bind(r.function_id)
        .bind(r.body)
        .bind(r.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn take_console_result(
        &self,
        token_hash: &str,
        user: &str,
        function_id: i64,
        now: Millis,
    ) -> StoreResult<Option<String>> {
        // One statement: of two takes at once, the second waits for the first's delete and
        // then finds nothing.
        Ok(sqlx::query_scalar(
            "DELETE FROM console_results WHERE token_hash = $1 AND user_name = $2 \
             AND function_id = $3 AND expires_at > $4 RETURNING body",
        )
        .bind(token_hash)
        .bind(user)
        .bind(function_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, via, source, action, target, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(e.at)
        .bind(&e.actor)
        .bind(e.via.as_str())
        .bind(&e.source)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.outcome)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        let mut query = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "SELECT id, at, actor, via, source, action, target, outcome FROM audit_log WHERE 1 = 1",
        );
        if let Some(actor) = &f.actor {
            query.push(" AND actor = ").push_bind(actor.clone());
        }
        if let Some(action) = &f.action {
            query.push(" AND action = ").push_bind(action.clone());
        }
        // ILIKE: the text matches case-insensitively, as SQLite's LIKE does.
        if let Some(text) = &f.text {
            let pattern = like_pattern(text);
            query
                .push(" AND (target ILIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR outcome ILIKE ")
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
        if let Some(since) = f.since {
            query.push(" AND at >= ").push_bind(since);
        }
        if let Some(before) = f.before_id {
            query.push(" AND id < ").push_bind(before);
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(f.limit));
        let rows = query.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(audit_from_row).collect::<Result<_, _>>()?)
    }

    async fn sweep_audit(&self, cutoff: Millis, limit: u32) -> StoreResult<u64> {
        Ok(sqlx::query(
            "DELETE FROM audit_log WHERE id IN \
             (SELECT id FROM audit_log WHERE at < $1 ORDER BY at LIMIT $2)",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}
