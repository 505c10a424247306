//! Namespaces of a region: list, create, delete (`default` can be neither created nor deleted).

use super::flash::Flash;
use super::form::{Fields, FormFields};
use super::shell::{Section, Shell};
use super::urls;
use crate::clock::{TimeFormat, format_time};
use crate::domain::namespace::{DEFAULT_NAMESPACE, validate_namespace_deletion};
use crate::domain::rules::FieldErrors;
use crate::error::AppResult;
use crate::service::{self, ServiceError};
use crate::state::AppState;
use crate::store::Namespace;
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use time::UtcOffset;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/scf/{region}/{namespace}/namespaces",
            get(list).post(create),
        )
        .route(
            "/scf/{region}/{namespace}/namespaces/{target}/delete",
            get(confirm_delete).post(delete),
        )
        .route(
            "/scf/{region}/{namespace}/namespaces/{target}/settings",
            get(settings).post(save_settings),
        )
}

#[derive(Template, WebTemplate)]
#[template(path = "namespaces/settings.html")]
pub struct SettingsPage {
    shell: Shell,
    target: String,
    suspended: bool,
    quota: String,
    used: i64,
    errors: FieldErrors,
    banner: Option<String>,
    settings_url: String,
}

async fn settings_page(
    state: &AppState,
    region: &str,
    namespace: &str,
    target: &str,
) -> AppResult<SettingsPage> {
    let shell = Shell::load(
        state,
        region,
        namespace,
        Section::Namespaces,
        format!("Namespace {target}"),
    )
    .await?;
    let billing = service::namespaces::billing(state, region, target).await?;
    Ok(SettingsPage {
        shell,
        target: target.to_string(),
        suspended: billing.suspended,
        quota: billing
            .invocation_quota
            .map(|q| q.to_string())
            .unwrap_or_default(),
        used: billing.invocations_used,
        errors: FieldErrors::default(),
        banner: None,
        settings_url: urls::namespace_settings(region, namespace, target),
    })
}

async fn settings(
    State(state): State<AppState>,
    Path((region, namespace, target)): Path<(String, String, String)>,
) -> AppResult<SettingsPage> {
    let mut page = settings_page(&state, &region, &namespace, &target).await?;
    page.banner = super::flash::notice();
    Ok(page)
}

async fn save_settings(
    State(state): State<AppState>,
    Path((region, namespace, target)): Path<(String, String, String)>,
    FormFields(pairs): FormFields,
) -> AppResult<Response> {
    let fields = Fields(pairs);
    let suspended = fields.get("Suspended").eq_ignore_ascii_case("TRUE");
    let quota = fields.get("InvocationQuota");
    match service::namespaces::set_billing(&state, &region, &target, suspended, quota).await {
        Ok(()) => Ok(super::flash::redirect(
            &urls::namespace_settings(&region, &namespace, &target),
            Flash::Notice("Billing settings saved.".into()),
        )),
        Err(ServiceError::Invalid(errors)) => {
            let mut page = settings_page(&state, &region, &namespace, &target).await?;
            page.suspended = suspended;
            page.quota = quota.to_string();
            page.errors = errors;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub struct Row {
    pub name: String,
    pub description: String,
    pub function_count: i64,
    pub created: String,
    pub created_iso: String,
    pub functions_url: String,
    pub settings_url: String,
    /// None for `default`, which cannot be deleted.
    pub delete_url: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "namespaces/list.html")]
pub struct ListPage {
    shell: Shell,
    rows: Vec<Row>,
    name: String,
    description: String,
    errors: FieldErrors,
    banner: Option<String>,
}

fn rows(region: &str, current: &str, namespaces: Vec<Namespace>) -> Vec<Row> {
    namespaces
        .into_iter()
        .map(|n| Row {
            functions_url: urls::functions(region, &n.name),
            settings_url: urls::namespace_settings(region, current, &n.name),
            delete_url: (n.name != DEFAULT_NAMESPACE)
                .then(|| urls::delete_namespace(region, current, &n.name)),
            created: format_time(n.created_at, UtcOffset::UTC, TimeFormat::DateTime),
            created_iso: format_time(n.created_at, UtcOffset::UTC, TimeFormat::Rfc3339),
            name: n.name,
            description: n.description,
            function_count: n.function_count,
        })
        .collect()
}

async fn page(
    state: &AppState,
    region: &str,
    namespace: &str,
    name: String,
    description: String,
    errors: FieldErrors,
    banner: Option<String>,
) -> AppResult<ListPage> {
    let shell = Shell::load(state, region, namespace, Section::Namespaces, "Namespaces").await?;
    let namespaces = state.store.list_namespaces(region).await?;
    Ok(ListPage {
        rows: rows(region, namespace, namespaces),
        shell,
        name,
        description,
        errors,
        banner,
    })
}

async fn list(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
) -> AppResult<ListPage> {
    let banner = super::flash::notice();
    page(
        &state,
        &region,
        &namespace,
        String::new(),
        String::new(),
        FieldErrors::default(),
        banner,
    )
    .await
}

async fn create(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
    FormFields(pairs): FormFields,
) -> AppResult<Response> {
    let fields = Fields(pairs);
    let name = fields.get("Namespace").trim().to_string();
    let description = fields.get("Description").trim().to_string();
    // Check the region before anything is written.
    Shell::load(
        &state,
        &region,
        &namespace,
        Section::Namespaces,
        "Namespaces",
    )
    .await?;
    let errors = match service::namespaces::create(&state, &region, &name, &description).await {
        Ok(_) => {
            let redirect = super::flash::redirect(
                &urls::namespaces(&region, &namespace),
                Flash::Notice(format!("Namespace {name} created.")),
            );
            return Ok(super::auth::audited(
                redirect,
                Some(format!("{region}/{name}")),
                None,
            ));
        }
        Err(ServiceError::Invalid(errors)) => errors,
        Err(ServiceError::Conflict(taken)) => FieldErrors::from(taken),
        Err(e) => return Err(e.into()),
    };
    let page = page(&state, &region, &namespace, name, description, errors, None).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "namespaces/delete.html")]
pub struct DeletePage {
    shell: Shell,
    target: String,
    function_count: i64,
    target_functions_url: String,
}

async fn confirm_delete(
    State(state): State<AppState>,
    Path((region, namespace, target)): Path<(String, String, String)>,
) -> AppResult<DeletePage> {
    let shell = Shell::load(
        &state,
        &region,
        &namespace,
        Section::Namespaces,
        format!("Delete namespace {target}"),
    )
    .await?;
    validate_namespace_deletion(&target).map_err(ServiceError::from)?;
    let ns = service::namespaces::get(&state, &region, &target).await?;
    Ok(DeletePage {
        target_functions_url: urls::functions(&region, &target),
        shell,
        target,
        function_count: ns.function_count,
    })
}

async fn delete(
    State(state): State<AppState>,
    Path((region, namespace, target)): Path<(String, String, String)>,
) -> AppResult<Response> {
    service::namespaces::delete(&state, &region, &target).await?;
    // Deleting the namespace you stand in takes you back to default.
    let here = if target == namespace {
        DEFAULT_NAMESPACE
    } else {
        namespace.as_str()
    };
    Ok(super::flash::redirect(
        &urls::namespaces(&region, here),
        Flash::Notice(format!("Namespace {target} deleted.")),
    ))
}
