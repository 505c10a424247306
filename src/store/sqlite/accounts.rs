//! Users, sessions and the audit log on SQLite.

use super::*;
use crate::domain::user::Role;
use crate::store::*;

/// Whether `name` is the only admin, read inside the change's transaction: then it may lose
/// neither its role nor its account.
async fn is_last_admin(tx: &mut sqlx::SqliteConnection, name: &str) -> Result<bool, sqlx::Error> {
    let (is_admin, others): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(name = ?1), 0), COALESCE(SUM(name != ?1), 0) \
         FROM users WHERE role = 'admin'",
    )
    .bind(name)
    .fetch_one(tx)
    .await?;
    Ok(is_admin == 1 && others == 0)
}

#[async_trait]
impl Accounts for SqliteStore {
    async fn create_user(&self, user: &User) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at, password_changed_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.created_at)
        .bind(user.password_changed_at)
        .execute(&mut *self.writer.lock().await?)
        .await
        .map_err(constraint)?;
        Ok(())
    }

    async fn create_first_user(&self, user: &User) -> StoreResult<bool> {
        let created = sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at, password_changed_at) \
             SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM users)",
        )
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.created_at)
        .bind(user.password_changed_at)
        .execute(&mut *self.writer.lock().await?)
        .await?;
        Ok(created.rows_affected() == 1)
    }

    async fn get_user(&self, name: &str) -> StoreResult<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY name");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
    }

    async fn set_user_role(&self, name: &str, role: Role) -> StoreResult<()> {
        let mut conn = self.writer.lock().await?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await?;
        if role != Role::Admin && is_last_admin(&mut tx, name).await? {
            return Err(StoreError::NotEmpty);
        }
        let changed = sqlx::query("UPDATE users SET role = ? WHERE name = ?")
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
        let mut conn = self.writer.lock().await?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await?;
        let changed = sqlx::query(
            "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE name = ?",
        )
        .bind(password_hash)
        .bind(now)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        found(changed)?;
        sqlx::query("DELETE FROM sessions WHERE user_name = ? AND token_hash != ?")
            .bind(name)
            .bind(keep.unwrap_or(""))
            .execute(&mut *tx)
            .await?;
        // The session kept counts from the change, or the check against the change's time
        // would end it too.
        sqlx::query("UPDATE sessions SET created_at = ? WHERE user_name = ? AND token_hash = ?")
            .bind(now)
            .bind(name)
            .bind(keep.unwrap_or(""))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_user(&self, name: &str) -> StoreResult<()> {
        let mut conn = self.writer.lock().await?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await?;
        if is_last_admin(&mut tx, name).await? {
            return Err(StoreError::NotEmpty);
        }
        let deleted = sqlx::query("DELETE FROM users WHERE name = ?")
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
            sqlx::query("UPDATE api_keys SET owner = ? WHERE owner IS NULL")
                .bind(owner)
                .execute(&mut *self.writer.lock().await?)
                .await?
                .rows_affected(),
        )
    }

    async fn create_session(&self, s: &NewSession<'_>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_name, csrf_token, created_at, expires_at, source) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(s.token_hash)
        .bind(s.user)
        .bind(s.csrf_token)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.source)
        .execute(&mut *self.writer.lock().await?)
        .await
        .map_err(constraint)?;
        Ok(())
    }

    async fn session(&self, token_hash: &str, now: Millis) -> StoreResult<Option<Session>> {
        // A session older than the user's last password change is over, whichever process
        // changed it.
        let row = sqlx::query(
            "SELECT s.user_name, u.role, s.csrf_token, s.expires_at FROM sessions s \
             JOIN users u ON u.name = s.user_name \
             WHERE s.token_hash = ? AND s.expires_at > ? AND s.created_at >= u.password_changed_at",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(session_from_row).transpose()?)
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&mut *self.writer.lock().await?)
            .await?;
        Ok(())
    }

    async fn sweep_sessions(&self, now: Millis) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *self.writer.lock().await?)
            .await?
            .rows_affected())
    }

    async fn put_console_result(&self, r: &ConsoleResult<'_>, now: Millis) -> StoreResult<()> {
        let mut conn = self.writer.lock().await?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await?;
        sqlx::query("DELETE FROM console_results WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_results (token_hash, user_name, function_id, body, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
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
        Ok(sqlx::query_scalar(
            "DELETE FROM console_results WHERE token_hash = ? AND user_name = ? \
             AND function_id = ? AND expires_at > ? RETURNING body",
        )
        .bind(token_hash)
        .bind(user)
        .bind(function_id)
        .bind(now)
        .fetch_optional(&mut *self.writer.lock().await?)
        .await?)
    }

    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, via, source, action, target, outcome) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(e.at)
        .bind(&e.actor)
        .bind(e.via.as_str())
        .bind(&e.source)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.outcome)
        .execute(&mut *self.writer.lock().await?)
        .await?;
        Ok(())
    }

    async fn list_audit(&self, f: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT id, at, actor, via, source, action, target, outcome FROM audit_log WHERE 1 = 1",
        );
        if let Some(actor) = &f.actor {
            query.push(" AND actor = ").push_bind(actor.clone());
        }
        if let Some(action) = &f.action {
            query.push(" AND action = ").push_bind(action.clone());
        }
        if let Some(text) = &f.text {
            let pattern = like_pattern(text);
            query
                .push(" AND (target LIKE ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR outcome LIKE ")
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
        let rows = query.build().fetch_all(&self.reader).await?;
        Ok(rows.iter().map(audit_from_row).collect::<Result<_, _>>()?)
    }

    async fn sweep_audit(&self, cutoff: Millis, limit: u32) -> StoreResult<u64> {
        Ok(sqlx::query(
            "DELETE FROM audit_log WHERE id IN \
             (SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .execute(&mut *self.writer.lock().await?)
        .await?
        .rows_affected())
    }
}
