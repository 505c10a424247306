//! Users (admins only): create, change role, reset password, delete. Account: one's own
//! password.

use super::auth::Viewer;
use super::form::{Fields, FormFields};
use super::shell::{Section, Shell};
use super::urls;
use crate::accounts;
use crate::clock::{TimeFormat, format_time};
use crate::domain::rules::FieldErrors;
use crate::domain::user::Role;
use crate::error::AppResult;
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
        .route("/scf/{region}/{namespace}/users", get(list).post(create))
        .route(
            "/scf/{region}/{namespace}/users/{user}/role",
            post(set_role),
        )
        .route(
            "/scf/{region}/{namespace}/users/{user}/password",
            post(reset_password),
        )
        .route(
            "/scf/{region}/{namespace}/users/{user}/delete",
            post(delete),
        )
        .route("/scf/{region}/{namespace}/account", get(account))
        .route(
            "/scf/{region}/{namespace}/account/password",
            post(change_password),
        )
}

pub struct Row {
    pub name: String,
    pub role: Role,
    pub created: String,
    pub created_iso: String,
    pub role_url: String,
    pub password_url: String,
    pub delete_url: String,
    pub is_me: bool,
}

/// What the create form holds, kept when it is refused.
#[derive(Default)]
pub struct NewUserForm {
    pub name: String,
    pub role: String,
    pub errors: FieldErrors,
}

#[derive(Template, WebTemplate)]
#[template(path = "users/list.html")]
pub struct ListPage {
    shell: Shell,
    rows: Vec<Row>,
    roles: [Role; 3],
    form: NewUserForm,
    banner: Option<String>,
    /// An error about one user's row (the last admin, a short password).
    row_error: Option<(String, String)>,
}

async fn page(
    state: &AppState,
    region: &str,
    namespace: &str,
    viewer: &Viewer,
    form: NewUserForm,
) -> AppResult<ListPage> {
    let shell = Shell::load(state, region, namespace, Section::Users, "Users").await?;
    let rows = state
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| Row {
            role_url: urls::user(region, namespace, &u.name, "role"),
            password_url: urls::user(region, namespace, &u.name, "password"),
            delete_url: urls::user(region, namespace, &u.name, "delete"),
            created: format_time(u.created_at, UtcOffset::UTC, TimeFormat::DateTime),
            created_iso: format_time(u.created_at, UtcOffset::UTC, TimeFormat::Rfc3339),
            is_me: u.name == viewer.user,
            role: u.role,
            name: u.name,
        })
        .collect();
    Ok(ListPage {
        shell,
        rows,
        roles: Role::ALL,
        form,
        banner: None,
        row_error: None,
    })
}

async fn list(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
    viewer: Viewer,
) -> AppResult<ListPage> {
    let mut page = page(&state, &region, &namespace, &viewer, NewUserForm::default()).await?;
    page.banner = super::flash::notice();
    Ok(page)
}

fn done(region: &str, namespace: &str, what: &str, user: &str) -> Response {
    let notice = match what {
        "created" => format!(
            "User {user} created. Give them their password; they can change it on their Account page."
        ),
        "role" => format!(
            "Role of {user} changed; it applies to their open sessions and API keys at once."
        ),
        "password" => format!("Password of {user} set; their sessions have ended."),
        _ => format!("User {user} deleted, with their sessions and API keys."),
    };
    super::flash::redirect(
        &urls::users(region, namespace),
        super::flash::Flash::Notice(notice),
    )
}

async fn create(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
    viewer: Viewer,
    FormFields(pairs): FormFields,
) -> AppResult<Response> {
    let fields = Fields(pairs);
    let (name, role) = (fields.get("UserName"), fields.get("Role"));
    match accounts::create_user(&state, name, role, fields.get("Password")).await {
        Ok(user) => Ok(super::auth::audited(
            done(&region, &namespace, "created", &user.name),
            Some(user.name),
            Some(format!("role {}", user.role)),
        )),
        Err(ServiceError::Invalid(errors)) => {
            refused_form(&state, &region, &namespace, &viewer, name, role, errors).await
        }
        Err(ServiceError::Conflict(e)) => {
            refused_form(&state, &region, &namespace, &viewer, name, role, e.into()).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn refused_form(
    state: &AppState,
    region: &str,
    namespace: &str,
    viewer: &Viewer,
    name: &str,
    role: &str,
    errors: FieldErrors,
) -> AppResult<Response> {
    let form = NewUserForm {
        name: name.to_string(),
        role: role.to_string(),
        errors,
    };
    let page = page(state, region, namespace, viewer, form).await?;
    // The audit log names the user that was not made.
    let target = Some(name.trim().to_string());
    Ok(super::auth::audited(
        (StatusCode::UNPROCESSABLE_ENTITY, page),
        target,
        None,
    ))
}

/// A change to one user's row that was refused: the list again, the reason beside the row.
async fn refused_row(
    state: &AppState,
    region: &str,
    namespace: &str,
    viewer: &Viewer,
    user: &str,
    error: ServiceError,
) -> AppResult<Response> {
    let message = match error {
        ServiceError::Invalid(errors) => errors.first().map(|e| e.message.clone()),
        ServiceError::Conflict(e) => Some(e.message),
        e => return Err(e.into()),
    };
    let mut page = page(state, region, namespace, viewer, NewUserForm::default()).await?;
    page.row_error = message.map(|m| (user.to_string(), m));
    Ok((StatusCode::CONFLICT, page).into_response())
}

async fn set_role(
    State(state): State<AppState>,
    Path((region, namespace, user)): Path<(String, String, String)>,
    viewer: Viewer,
    FormFields(pairs): FormFields,
) -> AppResult<Response> {
    match accounts::set_role(&state, &user, Fields(pairs).get("Role")).await {
        Ok(role) => Ok(super::auth::audited(
            done(&region, &namespace, "role", &user),
            None,
            Some(format!("now {role}")),
        )),
        Err(e) => refused_row(&state, &region, &namespace, &viewer, &user, e).await,
    }
}

async fn reset_password(
    State(state): State<AppState>,
    Path((region, namespace, user)): Path<(String, String, String)>,
    viewer: Viewer,
    FormFields(pairs): FormFields,
) -> AppResult<Response> {
    match accounts::reset_password(&state, &user, Fields(pairs).get("Password")).await {
        Ok(()) => Ok(done(&region, &namespace, "password", &user)),
        Err(e) => refused_row(&state, &region, &namespace, &viewer, &user, e).await,
    }
}

async fn delete(
    State(state): State<AppState>,
    Path((region, namespace, user)): Path<(String, String, String)>,
    viewer: Viewer,
) -> AppResult<Response> {
    match accounts::delete_user(&state, &user).await {
        Ok(()) => Ok(done(&region, &namespace, "deleted", &user)),
        Err(e) => refused_row(&state, &region, &namespace, &viewer, &user, e).await,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "users/account.html")]
pub struct AccountPage {
    shell: Shell,
    user: String,
    role: Role,
    password_url: String,
    errors: FieldErrors,
    banner: Option<String>,
}

async fn account_page(
    state: &AppState,
    region: &str,
    namespace: &str,
    viewer: &Viewer,
) -> AppResult<AccountPage> {
    let shell = Shell::load(state, region, namespace, Section::Account, "Account").await?;
    Ok(AccountPage {
        shell,
        user: viewer.user.clone(),
        role: viewer.role,
        password_url: format!("{}/password", urls::account(region, namespace)),
        errors: FieldErrors::default(),
        banner: None,
    })
}

async fn account(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
    viewer: Viewer,
) -> AppResult<AccountPage> {
    let mut page = account_page(&state, &region, &namespace, &viewer).await?;
    page.banner = super::flash::notice();
    Ok(page)
}

async fn change_password(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
    viewer: Viewer,
    FormFields(pairs): FormFields,
) -> AppResult<Response> {
    let fields = Fields(pairs);
    let changed = accounts::change_own_password(
        &state,
        &viewer.user,
        fields.get("CurrentPassword"),
        fields.get("NewPassword"),
        &viewer.session_token,
    )
    .await;
    match changed {
        Ok(()) => Ok(super::auth::audited(
            super::flash::redirect(
                &urls::account(&region, &namespace),
                super::flash::Flash::Notice(
                    "Password changed. Your other sessions have ended; this one goes on.".into(),
                ),
            ),
            Some(viewer.user.clone()),
            None,
        )),
        Err(ServiceError::Invalid(errors)) => {
            let mut page = account_page(&state, &region, &namespace, &viewer).await?;
            page.errors = errors;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
