//! Console users: passwords, the first admin, logins and their rate limit, sessions, and the
//! changes an admin makes to users. The console's pages only translate these outcomes.

use crate::audit::{self, Actor};
use crate::clock::Millis;
use crate::domain::rules::{FieldError, FieldErrors};
use crate::domain::user::{self, Role};
use crate::service::{ServiceError, ServiceResult};
use crate::state::AppState;
use crate::store::{DynStore, NewSession, Session, StoreError, User};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The name of the first admin, created on first start.
pub const FIRST_ADMIN: &str = "admin";

/// Hashing takes tens of milliseconds of CPU and 19 MiB on purpose; at most this many run at
/// once, so a burst of logins queues instead of taking every core and a lot of memory.
static HASHING: Semaphore = Semaphore::const_new(2);

async fn on_hashing_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let _permit = HASHING.acquire().await.expect("never closed");
    tokio::task::spawn_blocking(work)
        .await
        .expect("password hashing does not panic")
}

/// An argon2id hash (the crate's default parameters) with a fresh random salt, as a PHC string.
pub async fn hash_password(password: &str) -> anyhow::Result<String> {
    let password = password.to_string();
    on_hashing_thread(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        let hash = argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
        Ok(hash.to_string())
    })
    .await
}

/// A hash of a password nobody has, checked when the user does not exist, so a login takes
/// as long whether or not the name is known.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2NmLWNvbnNvbGUtZGVjb3k$0G5dP3o4lX9vVnq8QY7tq0m8Vh8b0c2pG0wq4n0Yk7c";

pub async fn verify_password(hash: &str, password: &str) -> bool {
    let (hash, password) = (hash.to_string(), password.to_string());
    on_hashing_thread(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
}

/// Random text for session cookies, CSRF tokens and generated passwords: `bytes` random bytes,
/// URL-safe base64.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine;
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system provides randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// What the store keeps of a session cookie: its SHA-256, so the database alone logs no one in.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An admin (the first by name): the owner of keys that come with the server rather than from a
/// user.
pub async fn an_admin(
    store: &dyn crate::store::Store,
) -> crate::store::StoreResult<Option<String>> {
    Ok(store
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.role == Role::Admin)
        .map(|u| u.name))
}

/// Creates the first admin if there are no users: with `configured` as its password
/// (`SCF_ADMIN_PASSWORD`), or a generated one printed once in the log. Keys made before users
/// existed become the first admin's.
pub async fn ensure_first_admin(
    store: &DynStore,
    now: Millis,
    configured: Option<&str>,
) -> anyhow::Result<()> {
    if store.list_users().await?.is_empty() {
        let (password, generated) = match configured {
            Some(p) => {
                user::validate_password(p, "Password")
                    .map_err(|e| anyhow::anyhow!("SCF_ADMIN_PASSWORD: {}", e.message))?;
                (p.to_string(), false)
            }
            // Letters and digits only, so it can be pasted into a shell or a form as it is.
            None => (crate::domain::api_key::random_text(20), true),
        };
        let admin = User {
            name: FIRST_ADMIN.into(),
            role: Role::Admin,
            password_hash: hash_password(&password).await?,
            created_at: now,
            password_changed_at: now,
        };
        if store.create_first_user(&admin).await? {
            if generated {
                // The one place a password is ever written out: the operator needs it to log
                // in, and it can be changed on the Account page at once.
                tracing::warn!(
                    "first start: created console user {FIRST_ADMIN:?} with password {password:?}; \
                     it is shown only this once; log in and change it on the Account page, or set \
                     SCF_ADMIN_PASSWORD before the first start"
                );
            } else {
                tracing::info!(
                    "first start: created console user {FIRST_ADMIN:?} with the password from SCF_ADMIN_PASSWORD"
                );
            }
            audit::record_system(store, now, "Create user", FIRST_ADMIN, "ok").await;
        }
    }
    if let Some(admin) = an_admin(store.as_ref()).await? {
        let adopted = store.adopt_unowned_keys(&admin).await?;
        if adopted > 0 {
            tracing::info!(owner = %admin, keys = adopted, "API keys made before users existed now belong to an admin");
        }
    }
    Ok(())
}

/// Why a login failed, as the login page says it.
#[derive(Debug)]
pub enum LoginError {
    /// The same words whether the name or the password was wrong.
    Invalid,
    /// Too many failures from this address (for this name): try again after the wait.
    Limited(Duration),
    Internal(anyhow::Error),
}

/// A session that just started: the cookie's value (never stored) and what it opens.
pub struct NewLogin {
    pub token: String,
    pub session: Session,
}

pub async fn login(
    state: &AppState,
    name: &str,
    password: &str,
    source: &str,
) -> Result<NewLogin, LoginError> {
    // Bounded before anything is hashed or stored: a megabyte "password" is not worth a look.
    let name = name.trim();
    if name.len() > user::NAME_MAX_CHARS || password.len() > user::PASSWORD_MAX_BYTES {
        return Err(LoginError::Invalid);
    }
    // Counted as a failure before the password is checked, so a burst of parallel guesses
    // cannot all get past the limit while the first ones are still being hashed.
    if let Err(wait) = state.logins.attempt(name, source) {
        tracing::warn!(user = %name, %source, "login refused: too many failed attempts");
        return Err(LoginError::Limited(wait));
    }
    let now = state.clock.now_millis();
    let found = state
        .store
        .get_user(name)
        .await
        .map_err(|e| LoginError::Internal(e.into()))?;
    let hash = found
        .as_ref()
        .map_or(DECOY_HASH, |u| u.password_hash.as_str());
    let verified = verify_password(hash, password).await && found.is_some();
    let actor = Actor::console(name, source);
    let Some(user) = found.filter(|_| verified) else {
        tracing::warn!(user = %name, %source, "failed console login");
        audit::record(
            state,
            &actor,
            "Log in",
            name,
            "refused: wrong user name or password",
        )
        .await;
        return Err(LoginError::Invalid);
    };
    state.logins.succeeded(name, source);
    let token = random_token(32);
    let session = Session {
        user: user.name.clone(),
        role: user.role,
        csrf_token: random_token(32),
        expires_at: now + state.sessions.ttl.as_millis() as Millis,
    };
    state
        .store
        .create_session(&NewSession {
            token_hash: &token_hash(&token),
            user: &user.name,
            csrf_token: &session.csrf_token,
            created_at: now,
            expires_at: session.expires_at,
            source,
        })
        .await
        .map_err(|e| LoginError::Internal(e.into()))?;
    tracing::info!(user = %user.name, %source, "console login");
    audit::record(state, &actor, "Log in", &user.name, "ok").await;
    Ok(NewLogin { token, session })
}

pub async fn logout(state: &AppState, actor: &Actor, token: &str) -> ServiceResult<()> {
    state.store.delete_session(&token_hash(token)).await?;
    audit::record(state, actor, "Log out", &actor.name, "ok").await;
    Ok(())
}

/// The session a cookie opens, if it is live.
pub async fn session(state: &AppState, token: &str) -> ServiceResult<Option<Session>> {
    if token.len() > 64 {
        return Ok(None);
    }
    Ok(state
        .store
        .session(&token_hash(token), state.clock.now_millis())
        .await?)
}

fn last_admin(field: &'static str, what: &str) -> ServiceError {
    ServiceError::Conflict(FieldError::new(
        field,
        "FailedOperation",
        format!("{what} would leave no admin; make another user admin first."),
    ))
}

fn no_such_user(name: &str) -> ServiceError {
    ServiceError::Conflict(FieldError::new(
        "UserName",
        "ResourceNotFound",
        format!("There is no user {name}."),
    ))
}

pub async fn create_user(
    state: &AppState,
    name: &str,
    role: &str,
    password: &str,
) -> ServiceResult<User> {
    let name = name.trim();
    let role = user::validate_new_user(name, role, password)?;
    let now = state.clock.now_millis();
    let user = User {
        name: name.to_string(),
        role,
        password_hash: hash_password(password).await?,
        created_at: now,
        password_changed_at: now,
    };
    match state.store.create_user(&user).await {
        Ok(()) => Ok(user),
        Err(StoreError::Conflict) => Err(ServiceError::Conflict(FieldError::new(
            "UserName",
            "ResourceInUse",
            format!("User {name} already exists."),
        ))),
        Err(e) => Err(e.into()),
    }
}

pub async fn set_role(state: &AppState, name: &str, role: &str) -> ServiceResult<Role> {
    let role = user::parse_role(role)?;
    match state.store.set_user_role(name, role).await {
        Ok(()) => {
            // Keys act with their owner's role: none may keep acting with the old one.
            state.keys.forget_all();
            Ok(role)
        }
        Err(StoreError::NotEmpty) => Err(last_admin("Role", "Changing the last admin's role")),
        Err(StoreError::NotFound) => Err(no_such_user(name)),
        Err(e) => Err(e.into()),
    }
}

pub async fn delete_user(state: &AppState, name: &str) -> ServiceResult<()> {
    match state.store.delete_user(name).await {
        Ok(()) => {
            state.keys.forget_all();
            Ok(())
        }
        Err(StoreError::NotEmpty) => Err(last_admin("UserName", "Deleting the last admin")),
        Err(StoreError::NotFound) => Err(no_such_user(name)),
        Err(e) => Err(e.into()),
    }
}

/// Sets a user's password (an admin's reset): every session of theirs ends.
pub async fn reset_password(state: &AppState, name: &str, password: &str) -> ServiceResult<()> {
    user::validate_password(password, "Password")?;
    let hash = hash_password(password).await?;
    match state
        .store
        .set_user_password(name, &hash, state.clock.now_millis(), None)
        .await
    {
        Err(StoreError::NotFound) => Err(no_such_user(name)),
        other => Ok(other?),
    }
}

/// Changes one's own password, proven by the current one; other sessions end, this one stays.
pub async fn change_own_password(
    state: &AppState,
    name: &str,
    current: &str,
    new: &str,
    session_token: &str,
) -> ServiceResult<()> {
    let mut errors = FieldErrors::default();
    let user = state
        .store
        .get_user(name)
        .await?
        .ok_or_else(|| no_such_user(name))?;
    if current.len() > user::PASSWORD_MAX_BYTES
        || !verify_password(&user.password_hash, current).await
    {
        errors.push(FieldError::new(
            "CurrentPassword",
            "InvalidParameterValue",
            "This is not your current password.",
        ));
    }
    if let Err(e) = user::validate_password(new, "NewPassword") {
        errors.push(e);
    }
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let hash = hash_password(new).await?;
    // The session that changed it was opened before the change: it is renewed below, so the
    // user stays logged in here and nowhere else.
    let now = state.clock.now_millis();
    let keep = token_hash(session_token);
    state
        .store
        .set_user_password(name, &hash, now, Some(&keep))
        .await?;
    Ok(())
}

/// Failed logins counted per address and per name from an address, in a sliding window: a
/// guesser is slowed down without letting anyone lock a user out from elsewhere.
pub struct LoginLimiter {
    window: Duration,
    per_name: u32,
    per_source: u32,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Entries kept at most; past it the oldest windows are dropped first.
const LIMITER_ENTRIES: usize = 10_000;

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter {
            window: Duration::from_secs(15 * 60),
            per_name: 5,
            per_source: 20,
            failures: Mutex::default(),
        }
    }
}

impl LoginLimiter {
    fn keys(name: &str, source: &str) -> [String; 2] {
        [format!("{source}\n{name}"), source.to_string()]
    }

    /// Counts an attempt as a failure, unless this address (or this name from it) failed too
    /// often already: then how long to wait.
    pub fn attempt(&self, name: &str, source: &str) -> Result<(), Duration> {
        let mut failures = self.failures.lock().expect("login limiter");
        let keys = Self::keys(name, source);
        let wait = keys
            .iter()
            .zip([self.per_name, self.per_source])
            .filter_map(|(key, limit)| {
                let (count, started) = failures.get(key)?;
                let left = self.window.checked_sub(started.elapsed())?;
                (*count >= limit).then_some(left)
            })
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        if failures.len() >= LIMITER_ENTRIES {
            let window = self.window;
            failures.retain(|_, (_, started)| started.elapsed() < window);
            if failures.len() >= LIMITER_ENTRIES {
                failures.clear();
            }
        }
        for key in keys {
            let entry = failures.entry(key).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= self.window {
                *entry = (0, Instant::now());
            }
            entry.0 += 1;
        }
        Ok(())
    }

    /// The attempt was right after all: it no longer counts, and the name's count from that
    /// address starts again.
    pub fn succeeded(&self, name: &str, source: &str) {
        let [by_name, by_source] = Self::keys(name, source);
        let mut failures = self.failures.lock().expect("login limiter");
        failures.remove(&by_name);
        if let Some((count, _)) = failures.get_mut(&by_source) {
            *count = count.saturating_sub(1);
        }
    }
}

/// How sessions are kept.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// A session ends this long after login.
    pub ttl: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            ttl: Duration::from_secs(12 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hash = hash_password("correct horse").await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse").await);
        assert!(!verify_password(&hash, "correct horsf").await);
        // The decoy is a real hash, so an unknown name costs a full verification too.
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
        assert!(!verify_password(DECOY_HASH, "").await);
        assert!(!verify_password("not a hash", "x").await);
    }

    #[test]
    fn the_limiter_counts_per_name_and_per_address() {
        let limiter = LoginLimiter::default();
        for _ in 0..5 {
            assert_eq!(limiter.attempt("admin", "10.0.0.1"), Ok(()));
        }
        assert!(limiter.attempt("admin", "10.0.0.1").is_err());
        // Another address may still try that name; the same address another name.
        assert_eq!(limiter.attempt("admin", "10.0.0.2"), Ok(()));
        limiter.succeeded("admin", "10.0.0.2");
        assert_eq!(limiter.attempt("alice", "10.0.0.1"), Ok(()));
        for i in 0..14 {
            assert_eq!(limiter.attempt(&format!("user{i}"), "10.0.0.1"), Ok(()));
        }
        assert!(
            limiter.attempt("bob", "10.0.0.1").is_err(),
            "20 from one address"
        );
        // A success gives its attempt back.
        limiter.succeeded("user0", "10.0.0.1");
        assert_eq!(limiter.attempt("bob", "10.0.0.1"), Ok(()));
        assert!(limiter.attempt("admin", "10.0.0.1").is_err());
    }
}
