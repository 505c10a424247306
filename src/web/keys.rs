//! API Keys: create (the SecretKey is shown once), disable, enable, delete.

use super::form::{Fields, FormFields};
use super::shell::{Section, Shell};
use super::urls;
use crate::clock::{TimeFormat, format_time};
use crate::domain::rules::FieldErrors;
use crate::error::AppResult;
use crate::keys;
use crate::service::{Missing, ServiceError};
use crate::state::AppState;
use crate::store::ApiKey;
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use time::UtcOffset;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/scf/{region}/{namespace}/api-keys", get(list).post(create))
        .route(
            "/scf/{region}/{namespace}/api-keys/{id}/enable",
            post(enable),
        )
        .route(
            "/scf/{region}/{namespace}/api-keys/{id}/disable",
            post(disable),
        )
        .route(
            "/scf/{region}/{namespace}/api-keys/{id}/delete",
            get(confirm_delete).post(delete),
        )
}

pub struct Row {
    pub secret_id: String,
    pub description: String,
    pub enabled: bool,
    pub created: String,
    pub created_iso: String,
    pub enable_url: String,
    pub disable_url: String,
    pub delete_url: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "keys/list.html")]
pub struct ListPage {
    shell: Shell,
    rows: Vec<Row>,
    description: String,
    errors: FieldErrors,
    banner: Option<String>,
    /// A key just created: the only time its SecretKey is shown.
    created: Option<ApiKey>,
}

#[derive(Deserialize, Default)]
struct Notice {
    #[serde(default)]
    done: Option<String>,
}

async fn page(
    state: &AppState,
    region: &str,
    namespace: &str,
    description: String,
    errors: FieldErrors,
    banner: Option<String>,
    created: Option<ApiKey>,
) -> AppResult<ListPage> {
    let shell = Shell::load(state, region, namespace, Section::ApiKeys, "API Keys").await?;
    let rows = state
        .store
        .list_api_keys()
        .await?
        .into_iter()
        .map(|k| Row {
            enable_url: urls::api_key(region, namespace, &k.secret_id, "enable"),
            disable_url: urls::api_key(region, namespace, &k.secret_id, "disable"),
            delete_url: urls::api_key(region, namespace, &k.secret_id, "delete"),
            created: format_time(k.created_at, UtcOffset::UTC, TimeFormat::DateTime),
            created_iso: format_time(k.created_at, UtcOffset::UTC, TimeFormat::Rfc3339),
            secret_id: k.secret_id,
            description: k.description,
            enabled: k.enabled,
        })
        .collect();
    Ok(ListPage {
        shell,
        rows,
        description,
        errors,
        banner,
        created,
    })
}

async fn list(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
    Query(notice): Query<Notice>,
) -> AppResult<ListPage> {
    let banner = notice.done.map(|what| match what.as_str() {
        "enabled" => "Key enabled: it can sign requests again.".to_string(),
        "disabled" => "Key disabled: requests signed with it are refused.".to_string(),
        _ => "Key deleted.".to_string(),
    });
    page(
        &state,
        &region,
        &namespace,
        String::new(),
        FieldErrors::default(),
        banner,
        None,
    )
    .await
}

async fn create(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
    FormFields(pairs): FormFields,
) -> AppResult<Response> {
    let description = Fields(pairs).get("Description").to_string();
    match keys::create(state.store.as_ref(), &description, state.clock.now_millis()).await {
        // Shown in the answer to the POST, never again: nothing stores it for display.
        Ok(key) => {
            tracing::info!(secret_id = %key.secret_id, "API key created in the console");
            Ok(page(
                &state,
                &region,
                &namespace,
                String::new(),
                FieldErrors::default(),
                None,
                Some(key),
            )
            .await?
            .into_response())
        }
        Err(ServiceError::Invalid(errors)) => {
            let page = page(&state, &region, &namespace, description, errors, None, None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn set_enabled(
    state: &AppState,
    region: &str,
    namespace: &str,
    id: &str,
    enabled: bool,
) -> AppResult<Redirect> {
    keys::set_enabled(state, id, enabled).await?;
    Ok(Redirect::to(&format!(
        "{}?done={}",
        urls::api_keys(region, namespace),
        if enabled { "enabled" } else { "disabled" }
    )))
}

async fn enable(
    State(state): State<AppState>,
    Path((region, namespace, id)): Path<(String, String, String)>,
) -> AppResult<Redirect> {
    set_enabled(&state, &region, &namespace, &id, true).await
}

async fn disable(
    State(state): State<AppState>,
    Path((region, namespace, id)): Path<(String, String, String)>,
) -> AppResult<Redirect> {
    set_enabled(&state, &region, &namespace, &id, false).await
}

#[derive(Template, WebTemplate)]
#[template(path = "keys/delete.html")]
pub struct DeletePage {
    shell: Shell,
    secret_id: String,
}

async fn confirm_delete(
    State(state): State<AppState>,
    Path((region, namespace, id)): Path<(String, String, String)>,
) -> AppResult<DeletePage> {
    let shell = Shell::load(
        &state,
        &region,
        &namespace,
        Section::ApiKeys,
        "Delete API key",
    )
    .await?;
    let key = state
        .store
        .get_api_key(&id)
        .await?
        .ok_or_else(|| ServiceError::NotFound(Missing::ApiKey(id.clone())))?;
    Ok(DeletePage {
        shell,
        secret_id: key.secret_id,
    })
}

async fn delete(
    State(state): State<AppState>,
    Path((region, namespace, id)): Path<(String, String, String)>,
) -> AppResult<Redirect> {
    keys::delete(&state, &id).await?;
    Ok(Redirect::to(&format!(
        "{}?done=deleted",
        urls::api_keys(&region, &namespace)
    )))
}
