//! API keys: created in the console, with `scf-console keys create`, or from configuration at
//! start. One place decides what a key is, whichever way it comes.

use crate::clock::Millis;
use crate::domain::api_key::{
    generate, validate_description, validate_secret_id, validate_secret_key,
};
use crate::domain::rules::FieldError;
use crate::store::{ApiKey, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{}", .0.message)]
    Invalid(FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a new enabled key with a generated SecretId and SecretKey.
pub async fn create(store: &dyn Store, description: &str, now: Millis) -> Result<ApiKey, KeyError> {
    let description = description.trim();
    validate_description(description).map_err(KeyError::Invalid)?;
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

/// Creates or updates the key named by `SCF_SECRET_ID` / `SCF_SECRET_KEY`.
pub async fn put_configured(
    state: &crate::app::AppState,
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
    Ok(())
}
