//! A function's page: the Configuration tab (settings, status trace on/off) and the Code tab.

use super::flash::Flash;
use super::form::{Fields, FormFields};
use super::parts::{AdvancedFields, Header, load, retention_text};
use super::shell::Shell;
use super::urls;
use crate::domain::function::{CodeInput, handler_file, validate_config};
use crate::domain::rules::FieldErrors;
use crate::error::AppResult;
use crate::service::{self, ServiceError};
use crate::state::AppState;
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/scf/{region}/{namespace}/functions/{name}", get(overview))
        .route(
            "/scf/{region}/{namespace}/functions/{name}/config",
            get(config).post(save_config),
        )
        .route(
            "/scf/{region}/{namespace}/functions/{name}/code",
            get(code).post(save_code),
        )
        .route(
            "/scf/{region}/{namespace}/functions/{name}/concurrency",
            axum::routing::post(save_concurrency),
        )
}

async fn overview(Path((region, namespace, name)): Path<(String, String, String)>) -> Redirect {
    Redirect::to(&urls::function_tab(&region, &namespace, &name, "config"))
}

#[derive(Template, WebTemplate)]
#[template(path = "function/config.html")]
pub struct ConfigPage {
    shell: Shell,
    header: Header,
    advanced: AdvancedFields,
    errors: FieldErrors,
    banner: Option<String>,
    /// Status trace is being turned off: ask before saving.
    confirm_trace_off: bool,
    retention: String,
    concurrency: ConcurrencyCard,
}

/// The function's reserved concurrency, what it means in events, and its form.
pub struct ConcurrencyCard {
    reserved_mem: Option<u32>,
    reserved_events: Option<u32>,
    memory_size: u32,
    /// Events at once for a function without a reservation.
    unreserved_cap: u32,
    running: u32,
    workers: u32,
    /// The form's value: what was typed, or what is stored.
    value: String,
    error: Option<String>,
}

impl ConfigPage {
    /// The tab showing `draft` with `errors`, its reservation card showing what is stored.
    fn new(
        state: &AppState,
        shell: Shell,
        f: &crate::store::Function,
        draft: crate::domain::function::ConfigDraft,
        errors: FieldErrors,
        extra_rows: usize,
    ) -> Self {
        ConfigPage {
            advanced: AdvancedFields::new(draft, f.async_run_enable, true, &errors, extra_rows),
            header: Header::new(state, &shell, f, "config"),
            shell,
            errors,
            banner: None,
            confirm_trace_off: false,
            retention: retention_text(state),
            concurrency: ConcurrencyCard::new(state, f, None, None),
        }
    }
}

impl ConcurrencyCard {
    fn new(
        state: &AppState,
        f: &crate::store::Function,
        value: Option<String>,
        error: Option<String>,
    ) -> Self {
        ConcurrencyCard {
            reserved_mem: f.reserved_mem,
            reserved_events: f.reserved_events(),
            memory_size: f.memory_size,
            unreserved_cap: state.engine.unreserved_cap(),
            running: state.engine.running_events(f.id),
            workers: state.engine.workers(),
            value: value
                .unwrap_or_else(|| f.reserved_mem.map(|m| m.to_string()).unwrap_or_default()),
            error,
        }
    }
}

async fn config(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
) -> AppResult<ConfigPage> {
    let (shell, f) = load(&state, &region, &namespace, &name).await?;
    let mut page = ConfigPage::new(
        &state,
        shell,
        &f,
        f.config_draft(),
        FieldErrors::default(),
        0,
    );
    page.banner = super::flash::notice();
    Ok(page)
}

/// Sets or removes the reserved concurrency, from its own form on the Configuration tab.
async fn save_concurrency(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    FormFields(pairs): FormFields,
) -> AppResult<Response> {
    let (shell, f) = load(&state, &region, &namespace, &name).await?;
    let fields = Fields(pairs);
    let remove = fields.get("_action") == "remove";
    let raw = fields.get("ReservedConcurrencyMem").to_string();
    let outcome = if remove {
        service::functions::delete_reservation(&state, &f).await
    } else {
        service::functions::put_reservation(&state, &f, &raw).await
    };
    match outcome {
        Ok(updated) => {
            let detail = match updated.reserved_mem {
                Some(mb) => format!("reserved concurrency {mb} MB"),
                None => "reserved concurrency removed".into(),
            };
            let notice = if remove {
                "Reservation removed: the function shares the unreserved concurrency again."
            } else {
                "Reserved concurrency saved."
            };
            Ok(super::auth::audited(
                super::flash::redirect(
                    &urls::function_tab(&region, &namespace, &name, "config"),
                    Flash::Notice(notice.into()),
                ),
                None,
                Some(detail),
            ))
        }
        Err(ServiceError::Invalid(errors)) => {
            let message = errors.iter().next().map(|e| e.message.clone());
            let mut page = ConfigPage::new(
                &state,
                shell,
                &f,
                f.config_draft(),
                FieldErrors::default(),
                0,
            );
            page.concurrency = ConcurrencyCard::new(&state, &f, Some(raw), message);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn save_config(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    FormFields(pairs): FormFields,
) -> AppResult<Response> {
    let (shell, f) = load(&state, &region, &namespace, &name).await?;
    let fields = Fields(pairs);
    let draft = fields.config_draft();
    let page = |errors: FieldErrors, extra_rows: usize, confirm_trace_off: bool| {
        let mut page =
            ConfigPage::new(&state, shell.clone(), &f, draft.clone(), errors, extra_rows);
        page.confirm_trace_off = confirm_trace_off;
        page
    };
    if fields.get("_action") == "add-env" {
        let (rows, error) = fields.added_env_rows(&draft.environment);
        return Ok(match error {
            Some(e) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                page(FieldErrors::from(e), rows, false),
            )
                .into_response(),
            None => page(FieldErrors::default(), rows, false).into_response(),
        });
    }
    if let Some(e) = fields.env_limit_error() {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            page(FieldErrors::from(e), 0, false),
        )
            .into_response());
    }
    // Turning status trace off stops recording and starts the clock on existing records, so it
    // is confirmed first; the confirmation re-posts the same form. A form with errors shows
    // them rather than the question.
    if f.trace_enable && !draft.is_trace_enabled() && fields.get("ConfirmTraceOff") != "yes" {
        return Ok(match validate_config(&draft, f.async_run_enable) {
            Ok(_) => page(FieldErrors::default(), 0, true).into_response(),
            Err(errors) => {
                (StatusCode::UNPROCESSABLE_ENTITY, page(errors, 0, false)).into_response()
            }
        });
    }
    let trace_change = match (f.trace_enable, draft.is_trace_enabled()) {
        (true, false) => Some("status trace turned off".to_string()),
        (false, true) => Some("status trace turned on".to_string()),
        _ => None,
    };
    match service::functions::update_configuration(&state, &f, &draft).await {
        Ok(_) => Ok(super::auth::audited(
            super::flash::redirect(
                &urls::function_tab(&region, &namespace, &name, "config"),
                Flash::Notice("Configuration saved.".into()),
            ),
            None,
            trace_change,
        )),
        Err(ServiceError::Invalid(errors)) => {
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page(errors, 0, false)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "function/code.html")]
pub struct CodePage {
    shell: Shell,
    header: Header,
    handler: String,
    code: String,
    file: String,
    /// The other files of the package, listed so the user knows they exist.
    other_files: Vec<String>,
    errors: FieldErrors,
    banner: Option<String>,
}

async fn code(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
) -> AppResult<CodePage> {
    let (shell, f) = load(&state, &region, &namespace, &name).await?;
    let files = state.store.get_code(f.id).await?;
    let file = f
        .runtime()
        .map(|r| handler_file(&f.handler, r))
        .unwrap_or_default();
    let code = files
        .iter()
        .find(|c| c.path == file)
        .map(|c| String::from_utf8_lossy(&c.content).into_owned())
        .unwrap_or_default();
    Ok(CodePage {
        header: Header::new(&state, &shell, &f, "code"),
        shell,
        handler: f.handler.clone(),
        code,
        other_files: files
            .into_iter()
            .map(|c| c.path)
            .filter(|p| *p != file)
            .collect(),
        file,
        errors: FieldErrors::default(),
        banner: super::flash::notice(),
    })
}

async fn save_code(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    FormFields(pairs): FormFields,
) -> AppResult<Response> {
    let (shell, f) = load(&state, &region, &namespace, &name).await?;
    let fields = Fields(pairs);
    let handler = fields.get("Handler").to_string();
    let code = fields.get("Code").replace("\r\n", "\n");
    match service::functions::update_code(&state, &f, &handler, CodeInput::Inline(&code)).await {
        Ok(_) => Ok(super::flash::redirect(
            &urls::function_tab(&region, &namespace, &name, "code"),
            Flash::Notice("Code saved.".into()),
        )),
        Err(ServiceError::Invalid(errors)) => {
            let file = f
                .runtime()
                .map(|r| handler_file(&handler, r))
                .unwrap_or_default();
            let page = CodePage {
                header: Header::new(&state, &shell, &f, "code"),
                shell,
                handler,
                code,
                file,
                other_files: Vec::new(),
                errors,
                banner: None,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
