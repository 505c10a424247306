//! API Keys: create (the SecretKey is shown once), disable, enable, delete.

use super::auth::Viewer;
use super::flash::Flash;
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
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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
    created: Option<NewKey>,
    /// Users a new key can be made for: everyone for an admin, else only oneself.
    owners: Vec<String>,
    owner: String,
    read_only: bool,
}

/// A key just created, shown once.
pub struct NewKey {
    secret_id: String,
    secret_key: String,
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
) -> AppResult<ListPage> {
    let (banner, created) = match super::flash::current() {
        Some(Flash::Notice(text)) => (Some(text), None),
        Some(Flash::Key {
            secret_id,
            secret_key,
        }) => (
            None,
            Some(NewKey {
                secret_id,
                secret_key,
            }),
        ),
        _ => (None, None),
    };
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
    viewer: Viewer,
) -> AppResult<ListPage> {
    page(
        &state,
        &region,
        &namespace,
        &viewer,
        KeyForm::empty(&viewer),
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
        // Shown once, by the page this redirects to (a reload does not create another), and
        // never again: nothing stores it for display.
        Ok(key) => {
            tracing::info!(secret_id = %key.secret_id, owner = %form.owner, "API key created in the console");
            let target = Some(key.secret_id.clone());
            let note = Some(format!(
                "owner {}{}",
                form.owner,
                if form.read_only { ", read-only" } else { "" }
            ));
            let shown = Flash::Key {
                secret_id: key.secret_id,
                secret_key: key.secret_key,
            };
            let to = urls::api_keys(&region, &namespace);
            Ok(super::auth::audited(
                super::flash::redirect(&to, shown),
                target,
                note,
            ))
        }
        Err(ServiceError::Invalid(errors)) => {
            form.errors = errors;
            let page = page(&state, &region, &namespace, &viewer, form).await?;
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
) -> AppResult<Response> {
    keys::managed_by(state.store.as_ref(), id, &viewer.user, viewer.role).await?;
    keys::set_enabled(state, id, enabled).await?;
    let notice = if enabled {
        "Key enabled: it can sign requests again."
    } else {
        "Key disabled: requests signed with it are refused."
    };
    Ok(super::flash::redirect(
        &urls::api_keys(region, namespace),
        Flash::Notice(notice.into()),
    ))
}

async fn enable(
    State(state): State<AppState>,
    Path((region, namespace, id)): Path<(String, String, String)>,
    viewer: Viewer,
) -> AppResult<Response> {
    set_enabled(&state, &viewer, &region, &namespace, &id, true).await
}

async fn disable(
    State(state): State<AppState>,
    Path((region, namespace, id)): Path<(String, String, String)>,
    viewer: Viewer,
) -> AppResult<Response> {
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
) -> AppResult<Response> {
    keys::managed_by(state.store.as_ref(), &id, &viewer.user, viewer.role).await?;
    keys::delete(&state, &id).await?;
    Ok(super::flash::redirect(
        &urls::api_keys(&region, &namespace),
        Flash::Notice("Key deleted.".into()),
    ))
}
