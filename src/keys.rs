//! API keys: created in the console, with `scf-console keys create`, or from configuration at
//! start. One place decides what a key is, whichever way it comes.

use crate::clock::Millis;
use crate::domain::api_key::{
    generate, validate_description, validate_secret_id, validate_secret_key,
};
use crate::service::{Missing, ServiceError, ServiceResult};
use crate::store::{ApiKey, Store, StoreError};

/// Creates a new enabled key for `owner` with a generated SecretId and SecretKey; a read-only
/// key acts as read-only whatever its owner's role.
pub async fn create(
    store: &dyn Store,
    owner: &str,
    description: &str,
    read_only: bool,
    now: Millis,
) -> ServiceResult<ApiKey> {
    let description = description.trim();
    validate_description(description)?;
    if store.get_user(owner).await?.is_none() {
        return Err(crate::domain::rules::FieldError::new(
            "Owner",
            "InvalidParameterValue",
            format!("There is no user {owner} to own the key."),
        )
        .into());
    }
    // A generated SecretId is 32 random characters: a clash is practically impossible, but a
    // second try costs nothing.
    for _ in 0..2 {
        let generated = generate();
        let key = ApiKey {
            secret_id: generated.secret_id,
            secret_key: generated.secret_key,
            description: description.to_string(),
            enabled: true,
            created_at: now,
            owner: Some(owner.to_string()),
            read_only,
            owner_role: None,
        };
        match store.create_api_key(&key).await {
            Ok(()) => return Ok(key),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
}

/// Whether `user` (with `role`) may enable, disable or delete `key`: their own, or any as an
/// admin.
pub fn may_manage(key: &ApiKey, user: &str, role: crate::domain::user::Role) -> bool {
    role.allows(crate::domain::user::Permission::Administer) || key.owner.as_deref() == Some(user)
}

/// The key `secret_id`, if `user` may manage it; another user's key is refused by name.
pub async fn managed_by(
    store: &dyn Store,
    secret_id: &str,
    user: &str,
    role: crate::domain::user::Role,
) -> ServiceResult<ApiKey> {
    let key = store
        .get_api_key(secret_id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(Missing::ApiKey(secret_id.into())))?;
    if may_manage(&key, user, role) {
        Ok(key)
    } else {
        Err(ServiceError::Forbidden(format!(
            "API key {secret_id} belongs to {}; only its owner or an admin can change it.",
            key.owner.as_deref().unwrap_or("no one")
        )))
    }
}

/// Enables or disables a key; requests signed with a disabled key are refused at once.
pub async fn set_enabled(
    state: &crate::state::AppState,
    secret_id: &str,
    enabled: bool,
) -> ServiceResult<()> {
    let changed = state.store.set_api_key_enabled(secret_id, enabled).await;
    // After the change, so that no lookup in between caches the old state again.
    state.keys.forget(secret_id);
    changed.map_err(|e| not_found_as_missing(e, secret_id))?;
    tracing::info!(secret_id = %secret_id, enabled, "API key changed");
    Ok(())
}

pub async fn delete(state: &crate::state::AppState, secret_id: &str) -> ServiceResult<()> {
    let deleted = state.store.delete_api_key(secret_id).await;
    state.keys.forget(secret_id);
    deleted.map_err(|e| not_found_as_missing(e, secret_id))?;
    tracing::info!(secret_id = %secret_id, "API key deleted");
    Ok(())
}

fn not_found_as_missing(e: StoreError, secret_id: &str) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::NotFound(Missing::ApiKey(secret_id.into())),
        e => e.into(),
    }
}

/// Creates or updates the key named by `SCF_SECRET_ID` / `SCF_SECRET_KEY`, owned by the first
/// admin.
pub async fn put_configured(
    state: &crate::state::AppState,
    secret_id: &str,
    secret_key: &str,
) -> anyhow::Result<()> {
    validate_secret_id(secret_id).map_err(|e| anyhow::anyhow!("SCF_SECRET_ID: {}", e.message))?;
    validate_secret_key(secret_key)
        .map_err(|e| anyhow::anyhow!("SCF_SECRET_KEY: {}", e.message))?;
    let owner = crate::accounts::an_admin(state.store.as_ref())
        .await?
        .ok_or_else(|| anyhow::anyhow!("SCF_SECRET_ID: there is no admin to own the key"))?;
    state
        .store
        .put_api_key(&ApiKey {
            secret_id: secret_id.to_string(),
            secret_key: secret_key.to_string(),
            description: "from the server's configuration".into(),
            enabled: true,
            created_at: state.clock.now_millis(),
            owner: Some(owner),
            read_only: false,
            owner_role: None,
        })
        .await?;
    state.keys.forget(secret_id);
    Ok(())
}

/// Recently used keys, so that signature checks do not read the store on every call. Entries
/// live a few seconds (a key created by `scf-console keys create` in another process works
/// within that time); changes made through this server drop them at once.
#[derive(Default)]
pub struct KeyCache {
    entries:
        std::sync::Mutex<std::collections::HashMap<String, (Option<ApiKey>, std::time::Instant)>>,
}

const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl KeyCache {
    pub async fn lookup(
        &self,
        store: &dyn Store,
        secret_id: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        if let Some((key, at)) = self.entries.lock().expect("key cache").get(secret_id)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(key.clone());
        }
        let key = store.get_api_key(secret_id).await?;
        let mut entries = self.entries.lock().expect("key cache");
        // Unknown ids are remembered too, but the map must not grow without bound.
        if entries.len() > 10_000 {
            entries.clear();
        }
        entries.insert(
            secret_id.to_string(),
            (key.clone(), std::time::Instant::now()),
        );
        Ok(key)
    }

    pub fn forget(&self, secret_id: &str) {
        self.entries.lock().expect("key cache").remove(secret_id);
    }

    /// After a user's role changes or a user goes: every cached key may act differently.
    pub fn forget_all(&self) {
        self.entries.lock().expect("key cache").clear();
    }
}
