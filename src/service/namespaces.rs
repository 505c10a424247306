//! Namespaces of a region: look up, create, delete, and their billing state.

use super::{Missing, ServiceError, ServiceResult};
use crate::domain::namespace::{parse_quota, validate_namespace_deletion, validate_new_namespace};
use crate::domain::rules::FieldError;
use crate::state::AppState;
use crate::store::{Billing, Namespace, StoreError};

fn missing(region: &str, name: &str) -> ServiceError {
    ServiceError::NotFound(Missing::Namespace {
        region: region.into(),
        name: name.into(),
    })
}

pub async fn get(state: &AppState, region: &str, name: &str) -> ServiceResult<Namespace> {
    state
        .store
        .get_namespace(region, name)
        .await?
        .ok_or_else(|| missing(region, name))
}

pub async fn create(
    state: &AppState,
    region: &str,
    name: &str,
    description: &str,
) -> ServiceResult<Namespace> {
    validate_new_namespace(name, description)?;
    match state
        .store
        .create_namespace(region, name, description, state.clock.now_millis())
        .await
    {
        Ok(ns) => {
            tracing::info!(namespace = %name, region = %region, "namespace created");
            Ok(ns)
        }
        Err(StoreError::Conflict) => Err(ServiceError::Conflict(FieldError::new(
            "Namespace",
            "ResourceInUse.Namespace",
            format!("Namespace {name} already exists in {region}."),
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Deletes an empty namespace; one that still holds functions is kept, so nothing is lost by
/// accident.
pub async fn delete(state: &AppState, region: &str, name: &str) -> ServiceResult<()> {
    validate_namespace_deletion(name)?;
    let deleted = state.store.delete_namespace(region, name).await;
    state.engine.forget_billing(region, name);
    match deleted {
        Ok(()) => {
            tracing::info!(namespace = %name, region = %region, "namespace deleted");
            Ok(())
        }
        Err(StoreError::NotEmpty) => Err(ServiceError::Conflict(FieldError::new(
            "Namespace",
            "FailedOperation.DeleteNamespace",
            format!(
                "Namespace {name} still has functions; delete them first. Nothing was deleted."
            ),
        ))),
        Err(StoreError::NotFound) => Err(missing(region, name)),
        Err(e) => Err(e.into()),
    }
}

pub async fn billing(state: &AppState, region: &str, name: &str) -> ServiceResult<Billing> {
    state
        .store
        .namespace_billing(region, name)
        .await?
        .ok_or_else(|| missing(region, name))
}

/// Suspends or resumes a namespace and sets its invocation quota (empty: none).
pub async fn set_billing(
    state: &AppState,
    region: &str,
    name: &str,
    suspended: bool,
    quota: &str,
) -> ServiceResult<()> {
    let quota = parse_quota(quota)?;
    let written = state
        .store
        .set_namespace_billing(region, name, suspended, quota)
        .await;
    state.engine.forget_billing(region, name);
    match written {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound) => Err(missing(region, name)),
        Err(e) => Err(e.into()),
    }
}
