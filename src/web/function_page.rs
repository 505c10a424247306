//! A function's page: the Configuration tab (settings, status trace on/off) and the Code tab.

use super::flash::Flash;
use super::form::{Fields, FormFields, FormWithFile, ZIP_FIELD};
use super::parts::{AdvancedFields, Header, load, retention_text};
use super::shell::Shell;
use super::urls;
use crate::domain::function::{CodeInput, handler_file, validate_config};
use crate::domain::rules::{FieldError, FieldErrors};
use crate::error::AppResult;
use crate::service::{self, ServiceError};
use crate::state::AppState;
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
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
            get(code)
                .post(save_code)
                .layer(DefaultBodyLimit::max(PACKAGE_FORM_LIMIT)),
        )
        .route(
            "/scf/{region}/{namespace}/functions/{name}/code/package.zip",
            get(download_code),
        )
        .route(
            "/scf/{region}/{namespace}/functions/{name}/concurrency",
            axum::routing::post(save_concurrency),
        )
}

/// A form that may carry a zip package: the largest package, and the rest of the form.
pub const PACKAGE_FORM_LIMIT: usize =
    crate::domain::package::ZIP_MAX_BYTES + super::FORM_BODY_LIMIT;

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

/// One file of the package, in the Code tab's list.
pub struct FileEntry {
    pub path: String,
    pub url: String,
    pub current: bool,
    pub size: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "function/code.html")]
pub struct CodePage {
    shell: Shell,
    header: Header,
    handler: String,
    /// The file in the editor, and its source.
    file: String,
    code: String,
    /// The file is not text: shown as a note, not in the editor.
    binary: bool,
    files: Vec<FileEntry>,
    /// The file in the editor, as stored (what Discard changes goes back to).
    file_url: String,
    download_url: String,
    errors: FieldErrors,
    banner: Option<String>,
}

#[derive(serde::Deserialize)]
struct CodeQuery {
    #[serde(default)]
    file: Option<String>,
}

fn size_text(bytes: usize) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
    }
}

/// The Code tab on one file of the package: the handler's file unless another is named.
async fn code_page(
    state: &AppState,
    (region, namespace, name): (&str, &str, &str),
    chosen: Option<&str>,
) -> AppResult<CodePage> {
    let (shell, f) = load(state, region, namespace, name).await?;
    let files = state.store.get_code(f.id).await?;
    let entry = f
        .runtime()
        .map(|r| handler_file(&f.handler, r))
        .unwrap_or_default();
    let file = chosen
        .filter(|c| files.iter().any(|f| f.path == *c))
        .unwrap_or(&entry)
        .to_string();
    let content = files.iter().find(|c| c.path == file);
    let (code, binary) = match content.map(|c| String::from_utf8(c.content.clone())) {
        Some(Ok(text)) => (text, false),
        Some(Err(_)) => (String::new(), true),
        None => (String::new(), false),
    };
    let tab = urls::function_tab(region, namespace, name, "code");
    let mut listed: Vec<FileEntry> = files
        .iter()
        .map(|c| FileEntry {
            url: format!("{tab}?file={}", urls::encode(&c.path)),
            current: c.path == file,
            size: size_text(c.content.len()),
            path: c.path.clone(),
        })
        .collect();
    listed.sort_by(|a, b| (a.path != entry, &a.path).cmp(&(b.path != entry, &b.path)));
    let file_url = if file == entry {
        tab.clone()
    } else {
        format!("{tab}?file={}", urls::encode(&file))
    };
    Ok(CodePage {
        header: Header::new(state, &shell, &f, "code"),
        shell,
        handler: f.handler.clone(),
        file,
        code,
        binary,
        files: listed,
        file_url,
        download_url: format!("{tab}/package.zip"),
        errors: FieldErrors::default(),
        banner: super::flash::notice(),
    })
}

async fn code(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    Query(q): Query<CodeQuery>,
) -> AppResult<CodePage> {
    code_page(&state, (&region, &namespace, &name), q.file.as_deref()).await
}

/// Saves the Code tab: the file in the editor (the handler's or another of the package), or a
/// whole zip package uploaded in its place.
async fn save_code(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    form: FormWithFile,
) -> AppResult<Response> {
    let (_, f) = load(&state, &region, &namespace, &name).await?;
    let fields = Fields(form.fields);
    let handler = fields.get("Handler").to_string();
    let code = fields.get("Code").replace("\r\n", "\n");
    let file = fields.get("File").to_string();
    let entry = f
        .runtime()
        .map(|r| handler_file(handler.trim(), r))
        .unwrap_or_default();
    // The upload form carries no code: without a file picked there is nothing to save.
    let upload = form.multipart && !fields.0.iter().any(|(k, _)| k == "Code");
    let input = match &form.zip {
        Some(zip) => match crate::domain::package::unzip(zip) {
            Ok(files) => Ok(CodeInput::Package(files)),
            Err(why) => Err(FieldErrors::from(zip_error(&why))),
        },
        None if upload => Err(FieldErrors::from(FieldError::new(
            ZIP_FIELD,
            "InvalidParameterValue.ZipFile",
            "Pick a zip file to upload; nothing was changed.",
        ))),
        None if file.is_empty() || file == entry => Ok(CodeInput::Inline(&code)),
        None => Ok(CodeInput::File {
            path: &file,
            text: &code,
        }),
    };
    let result = match input {
        Ok(input) => service::functions::update_code(&state, &f, &handler, input).await,
        Err(errors) => Err(ServiceError::Invalid(errors)),
    };
    let tab = urls::function_tab(&region, &namespace, &name, "code");
    match result {
        Ok(_) if form.zip.is_some() => Ok(super::flash::redirect(
            &tab,
            Flash::Notice("Package uploaded: it replaces every file of the function.".into()),
        )),
        Ok(_) => {
            let back = if file.is_empty() || file == entry {
                tab
            } else {
                format!("{tab}?file={}", urls::encode(&file))
            };
            Ok(super::flash::redirect(
                &back,
                Flash::Notice("Code saved.".into()),
            ))
        }
        Err(ServiceError::Invalid(errors)) => {
            let chosen = (!file.is_empty()).then_some(file.as_str());
            let mut page = code_page(&state, (&region, &namespace, &name), chosen).await?;
            // What the user typed stays in the form (an upload leaves the editor as stored).
            page.handler = handler;
            if !form.multipart {
                page.code = code;
            }
            page.errors = errors;
            page.banner = None;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// A package that cannot be used, said by the file input (which browsers empty after a send).
pub fn zip_error(why: &str) -> FieldError {
    FieldError::new(
        ZIP_FIELD,
        "InvalidParameterValue.ZipFile",
        format!("The zip package is not usable: {why}. Pick a zip file again."),
    )
}

/// The function's package as a zip, every file as stored.
async fn download_code(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
) -> AppResult<Response> {
    let (_, f) = load(&state, &region, &namespace, &name).await?;
    let files = state.store.get_code(f.id).await?;
    let zip = crate::domain::package::zip(&files)
        .map_err(|e| anyhow::anyhow!("packing the code of {}: {e}", f.name))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.zip\"", f.name),
            ),
        ],
        zip,
    )
        .into_response())
}
