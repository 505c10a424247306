//! Users, their sessions, and the audit log: what login, roles and the audit trail keep.

use super::StoreResult;
use crate::clock::Millis;
use crate::domain::user::Role;
use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub created_at: Millis,
    pub password_changed_at: Millis,
}

/// A session as a request sees it: whose, with the user's role now (a role changed by an
/// admin applies to open sessions at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub csrf_token: String,
    pub expires_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession<'a> {
    /// SHA-256 of the cookie, hex.
    pub token_hash: &'a str,
    pub user: &'a str,
    pub csrf_token: &'a str,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub source: &'a str,
}

/// The answer of a console action kept for the page its form redirects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleResult<'a> {
    /// SHA-256 of the one-time token the redirect carries, hex.
    pub token_hash: &'a str,
    pub user: &'a str,
    pub function_id: i64,
    pub body: &'a str,
    pub expires_at: Millis,
}

/// Who acted through which door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A console user; the actor is the user name.
    Console,
    /// An SCF API call; the actor is the SecretId.
    Api,
    /// The server itself (the first admin, keys from configuration).
    System,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Console => "console",
            Via::Api => "api",
            Via::System => "system",
        }
    }

    pub fn parse(text: &str) -> Option<Via> {
        [Via::Console, Via::Api, Via::System]
            .into_iter()
            .find(|v| v.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Millis,
    pub actor: String,
    pub via: Via,
    /// The client's address.
    pub source: String,
    /// What was done, e.g. `Delete function` or `Invoke`.
    pub action: String,
    /// What it was done to, e.g. `ap-guangzhou/default/hello`.
    pub target: String,
    /// `ok`, or why it did not happen.
    pub outcome: String,
}

/// Which entries to list: each filter is optional, text matches are substrings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Matched against the target and the outcome.
    pub text: Option<String>,
    pub since: Option<Millis>,
    /// Entries older than this id, for the next page.
    pub before_id: Option<i64>,
    pub limit: u32,
}

#[async_trait]
pub trait Accounts: Send + Sync {
    /// Fails with `Conflict` when the name is taken.
    async fn create_user(&self, user: &User) -> StoreResult<()>;

    /// Creates `user` only if there are no users at all; true if it did. Two processes
    /// starting at once on one store create one first admin.
    async fn create_first_user(&self, user: &User) -> StoreResult<bool>;

    async fn get_user(&self, name: &str) -> StoreResult<Option<User>>;

    async fn list_users(&self) -> StoreResult<Vec<User>>;

    /// Changes a role; refused with `NotEmpty` if it would leave no admin.
    async fn set_user_role(&self, name: &str, role: Role) -> StoreResult<()>;

    /// Replaces the password and ends the user's sessions except `keep` (the one that
    /// changed it, if any).
    async fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
        now: Millis,
        keep: Option<&str>,
    ) -> StoreResult<()>;

    /// Deletes a user with their sessions and keys; refused with `NotEmpty` for the last admin.
    async fn delete_user(&self, name: &str) -> StoreResult<()>;

    /// Gives keys made before users existed to `owner`.
    async fn adopt_unowned_keys(&self, owner: &str) -> StoreResult<u64>;

    async fn create_session(&self, session: &NewSession<'_>) -> StoreResult<()>;

    /// The live session with this token hash, if it has not expired.
    async fn session(&self, token_hash: &str, now: Millis) -> StoreResult<Option<Session>>;

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;

    /// Deletes sessions that expired before `now`.
    async fn sweep_sessions(&self, now: Millis) -> StoreResult<u64>;

    /// Keeps the answer of a console action for the page it redirects to, for `user` only,
    /// until `expires_at`; removes the expired ones.
    async fn put_console_result(&self, result: &ConsoleResult<'_>, now: Millis) -> StoreResult<()>;

    /// Takes (reads and deletes) a kept answer, if it is `user`'s, for `function_id`, and has
    /// not expired.
    async fn take_console_result(
        &self,
        token_hash: &str,
        user: &str,
        function_id: i64,
        now: Millis,
    ) -> StoreResult<Option<String>>;

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;

    /// Newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>>;

    /// Deletes up to `limit` entries older than `cutoff`.
    async fn sweep_audit(&self, cutoff: Millis, limit: u32) -> StoreResult<u64>;
}
