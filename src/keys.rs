//! API keys: created in the console, with `scf-console keys create`, or from configuration at
//! start. One place decides what a key is, whichever way it comes.

use crate::clock::Millis;
use crate::domain::api_key::{
    generate, validate_description, validate_secret_id, validate_secret_key,
};
use crate::service::{Missing, ServiceError, ServiceResult};
use crate::store::{ApiKey, Store, StoreError};

/// Creates a new enabled key with a generated SecretId and SecretKey.
pub async fn create(store: &dyn Store, description: &str, now: Millis) -> ServiceResult<ApiKey> {
    let description = description.trim();
    validate_description(description)?;
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
        };
        match store.create_api_key(&key).await {
            Ok(()) => return Ok(key),
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict.into())
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

/// Creates or updates the key named by `SCF_SECRET_ID` / `SCF_SECRET_KEY`.
pub async fn put_configured(
    state: &crate::state::AppState,
    secret_id: &str,
    secret_key: &str,
) -> anyhow::Result<()> {
    validate_secret_id(secret_id).map_err(|e| anyhow::anyhow!("SCF_SECRET_ID: {}", e.message))?;
    validate_secret_key(secret_key)
        .map_err(|e| anyhow::anyhow!("SCF_SECRET_KEY: {}", e.message))?;
    state
        .store
        .put_api_key(&ApiKey {
            secret_id: secret_id.to_string(),
            secret_key: secret_key.to_string(),
            description: "from the server's configuration".into(),
            enabled: true,
            created_at: state.clock.now_millis(),
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
}
