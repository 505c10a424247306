//! API Keys: create (the SecretKey is shown once), disable, enable, delete.

use super::auth::Viewer;
use super::form::{Fields, FormFields};
use super::shell::{Section, Shell};
use super::urls;
use crate::clock::{TimeFormat, format_time};
use crate::domain::rules::FieldErrors;
use crate::domain::user::Permission;
use crate::error::AppResult;
use crate::keys;
use crate::service::ServiceError;
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
    pub owner: String,
    pub read_only: bool,
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
    /// Users a new key can be made for: everyone for an admin, else only oneself.
    owners: Vec<String>,
    owner: String,
    read_only: bool,
}

#[derive(Deserialize, Default)]
struct Notice {
    #[serde(default)]
    done: Option<String>,
}

/// What the create form holds.
struct KeyForm {
    description: String,
    owner: String,
    read_only: bool,
    errors: FieldErrors,
}

impl KeyForm {
    fn empty(viewer: &Viewer) -> KeyForm {
        KeyForm {
            description: String::new(),
            owner: viewer.user.clone(),
            read_only: false,
            errors: FieldErrors::default(),
        }
    }
}

async fn page(
    state: &AppState,
    region: &str,
    namespace: &str,
    viewer: &Viewer,
    form: KeyForm,
    banner: Option<String>,
    created: Option<ApiKey>,
) -> AppResult<ListPage> {
    let shell = Shell::load(state, region, namespace, Section::ApiKeys, "API Keys").await?;
    // An admin sees and manages every key; everyone else their own.
    let admin = viewer.can(Permission::Administer);
    let owners = if admin {
        state
            .store
            .list_users()
            .await?
            .into_iter()
            .map(|u| u.name)
            .collect()
    } else {
        vec![viewer.user.clone()]
    };
    let rows = state
        .store
        .list_api_keys((!admin).then_some(viewer.user.as_str()))
        .await?
        .into_iter()
        .map(|k| Row {
            owner: k.owner.clone().unwrap_or_default(),
            read_only: k.read_only,
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
        description: form.description,
        errors: form.errors,
        banner,
        created,
        owners,
        owner: form.owner,
        read_only: form.read_only,
    })
}

async fn list(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
    Query(notice): Query<Notice>,
    viewer: Viewer,
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
        &viewer,
        KeyForm::empty(&viewer),
        banner,
        None,
    )
    .await
}

async fn create(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
    viewer: Viewer,
    FormFields(pairs): FormFields,
) -> AppResult<Response> {
    let fields = Fields(pairs);
    let mut form = KeyForm {
        description: fields.get("Description").to_string(),
        owner: match fields.get("Owner") {
            "" => viewer.user.clone(),
            owner => owner.to_string(),
        },
        read_only: fields.get("ReadOnly").eq_ignore_ascii_case("TRUE"),
        errors: FieldErrors::default(),
    };
    if form.owner != viewer.user {
        viewer.require(Permission::Administer)?;
    }
    let now = state.clock.now_millis();
    let created = keys::create(
        state.store.as_ref(),
        &form.owner,
        &form.description,
        form.read_only,
        now,
    )
    .await;
    match created {
        // Shown in the answer to the POST, never again: nothing stores it for display.
        Ok(key) => {
            tracing::info!(secret_id = %key.secret_id, owner = %form.owner, "API key created in the console");
            let target = Some(key.secret_id.clone());
            let note = Some(format!(
                "owner {}{}",
                form.owner,
                if form.read_only { ", read-only" } else { "" }
            ));
            let form = KeyForm::empty(&viewer);
            let page = page(&state, &region, &namespace, &viewer, form, None, Some(key)).await?;
            Ok(super::auth::audited(page, target, note))
        }
        Err(ServiceError::Invalid(errors)) => {
            form.errors = errors;
            let page = page(&state, &region, &namespace, &viewer, form, None, None).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn set_enabled(
    state: &AppState,
    viewer: &Viewer,
    region: &str,
    namespace: &str,
    id: &str,
    enabled: bool,
) -> AppResult<Redirect> {
    keys::managed_by(state.store.as_ref(), id, &viewer.user, viewer.role).await?;
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
    viewer: Viewer,
) -> AppResult<Redirect> {
    set_enabled(&state, &viewer, &region, &namespace, &id, true).await
}

async fn disable(
    State(state): State<AppState>,
    Path((region, namespace, id)): Path<(String, String, String)>,
    viewer: Viewer,
) -> AppResult<Redirect> {
    set_enabled(&state, &viewer, &region, &namespace, &id, false).await
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
    viewer: Viewer,
) -> AppResult<DeletePage> {
    let shell = Shell::load(
        &state,
        &region,
        &namespace,
        Section::ApiKeys,
        "Delete API key",
    )
    .await?;
    let key = keys::managed_by(state.store.as_ref(), &id, &viewer.user, viewer.role).await?;
    Ok(DeletePage {
        shell,
        secret_id: key.secret_id,
    })
}

async fn delete(
    State(state): State<AppState>,
    Path((region, namespace, id)): Path<(String, String, String)>,
    viewer: Viewer,
) -> AppResult<Redirect> {
    keys::managed_by(state.store.as_ref(), &id, &viewer.user, viewer.role).await?;
    keys::delete(&state, &id).await?;
    Ok(Redirect::to(&format!(
        "{}?done=deleted",
        urls::api_keys(&region, &namespace)
    )))
}
