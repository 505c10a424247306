//! The creation wizard: choose an empty function or a template, fill in the Function
//! Configuration (with Advanced Settings), Complete. Also the live validation fragment that
//! checks a field as the user types.

use super::form::{Fields, FormFields, FormWithFile, rule_field};
use super::parts::{AdvancedFields, retention_text};
use super::shell::{Section, Shell};
use super::{HxRequest, HxTriggerName, urls};
use crate::domain::function::{FunctionDraft, validate_function_name, validate_new_function};
use crate::domain::rules::FieldErrors;
use crate::domain::runtime::{Availability, CATALOGUE, Language};
use crate::domain::template::{self, FunctionTemplate, empty_code};
use crate::error::{AppError, AppResult};
use crate::service::{self, ServiceError};
use crate::state::AppState;
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/scf/{region}/{namespace}/functions/-/new",
            get(new_function).post(create).layer(DefaultBodyLimit::max(
                super::function_page::PACKAGE_FORM_LIMIT,
            )),
        )
        .route(
            "/scf/{region}/{namespace}/functions/-/validate",
            post(validate),
        )
}

#[derive(Deserialize, Default)]
struct NewQuery {
    /// `empty`, or a template id; absent on the first step.
    #[serde(default)]
    template: Option<String>,
    /// Template search text.
    #[serde(default)]
    q: String,
}

/// A template card of the first step.
pub struct Card {
    pub title: &'static str,
    pub summary: &'static str,
    pub language: &'static str,
    pub tags: &'static [&'static str],
    pub url: String,
}

/// The template cards, the part that search swaps in place.
#[derive(Template, WebTemplate)]
#[template(path = "wizard/cards.html")]
pub struct Cards {
    cards: Vec<Card>,
    search: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "wizard/choose.html")]
pub struct ChoosePage {
    shell: Shell,
    empty_url: String,
    cards: Cards,
}

/// One choice of the runtime selector.
pub struct RuntimeOption {
    pub name: &'static str,
    pub available: bool,
    /// "Python 3.11.2" when available, or why it is not.
    pub note: String,
    pub selected: bool,
    /// The handler skeleton to show when this runtime is picked for an empty function.
    pub skeleton: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "wizard/form.html")]
pub struct FormPage {
    shell: Shell,
    template_id: String,
    template_title: String,
    draft: FunctionDraft,
    errors: FieldErrors,
    runtimes: Vec<RuntimeOption>,
    advanced: AdvancedFields,
    choose_url: String,
    retention: String,
}

async fn new_function(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
    Query(query): Query<NewQuery>,
    HxRequest(hx): HxRequest,
) -> AppResult<Response> {
    let cards = cards(&region, &namespace, &query.q);
    if hx && query.template.is_none() {
        return Ok(cards.into_response());
    }
    let shell = Shell::load(
        &state,
        &region,
        &namespace,
        Section::Functions,
        "Create function",
    )
    .await?;
    let Some(template_id) = query.template else {
        return Ok(ChoosePage {
            empty_url: format!("{}?template=empty", shell.new_function_url()),
            shell,
            cards,
        }
        .into_response());
    };
    let draft = starting_draft(&state, &template_id)?;
    Ok(form_page(&state, shell, template_id, draft, FieldErrors::default(), 0).into_response())
}

fn cards(region: &str, namespace: &str, search: &str) -> Cards {
    let base = urls::new_function(region, namespace);
    Cards {
        cards: template::search(search)
            .into_iter()
            .map(|t| Card {
                title: t.title,
                summary: t.summary,
                language: t.language.label(),
                tags: t.tags,
                url: format!("{base}?template={}", t.id),
            })
            .collect(),
        search: search.trim().to_string(),
    }
}

/// What the form starts with: the template's code and settings, or an empty handler of the
/// newest Python this machine has (Node.js if there is no Python).
fn starting_draft(state: &AppState, template_id: &str) -> AppResult<FunctionDraft> {
    let ip = &state.interpreters;
    if template_id == "empty" {
        let language =
            if ip.newest(Language::Python).is_some() || ip.newest(Language::Nodejs).is_none() {
                Language::Python
            } else {
                Language::Nodejs
            };
        let runtime = ip.newest(language).map_or("", |r| r.name);
        return Ok(FunctionDraft::with_defaults(
            runtime,
            "index.main_handler",
            empty_code(language),
            false,
        ));
    }
    let t = FunctionTemplate::by_id(template_id).ok_or_else(|| {
        AppError::NotFound(format!(
            "There is no function template named {template_id}."
        ))
    })?;
    let runtime = ip.newest(t.language).map_or("", |r| r.name);
    // Templates made for async execution start with it and status trace on; the others leave
    // it to the user, as SCF's templates do, since it cannot change later.
    let mut draft = FunctionDraft::with_defaults(runtime, t.handler, t.code, t.async_execution);
    draft.function_name = t.function_name.to_string();
    draft.config.timeout = t.timeout.to_string();
    draft.config.description = t.summary.to_string();
    Ok(draft)
}

fn runtime_options(
    state: &AppState,
    language: Option<Language>,
    selected: &str,
) -> Vec<RuntimeOption> {
    CATALOGUE
        .iter()
        .filter(|r| language.is_none_or(|l| r.language == l))
        .map(|r| {
            let (available, note) = match state.interpreters.availability(r) {
                Availability::Available { interpreter } => (true, interpreter),
                Availability::Unavailable { reason } => (false, reason),
            };
            RuntimeOption {
                name: r.name,
                available,
                note,
                selected: r.name == selected,
                skeleton: empty_code(r.language),
            }
        })
        .collect()
}

fn form_page(
    state: &AppState,
    shell: Shell,
    template_id: String,
    draft: FunctionDraft,
    errors: FieldErrors,
    extra_env_rows: usize,
) -> FormPage {
    let template = FunctionTemplate::by_id(&template_id);
    let advanced = AdvancedFields::new(
        draft.config.clone(),
        draft.is_async(),
        false,
        &errors,
        extra_env_rows,
    );
    FormPage {
        runtimes: runtime_options(state, template.map(|t| t.language), &draft.runtime),
        template_title: template.map_or("Empty function", |t| t.title).to_string(),
        choose_url: shell.new_function_url(),
        retention: retention_text(state),
        shell,
        template_id,
        draft,
        errors,
        advanced,
    }
}

async fn create(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
    form: FormWithFile,
) -> AppResult<Response> {
    let pairs = form.fields;
    let shell = Shell::load(
        &state,
        &region,
        &namespace,
        Section::Functions,
        "Create function",
    )
    .await?;
    let fields = Fields(pairs);
    let template_id = match fields.get("template") {
        "" => "empty".to_string(),
        t => t.to_string(),
    };
    let draft = fields.function_draft();
    // "Add variable" without JavaScript: show the form again with one more blank row.
    if fields.get("_action") == "add-env" {
        let (rows, error) = fields.added_env_rows(&draft.config.environment);
        let page = |errors| form_page(&state, shell, template_id, draft, errors, rows);
        return Ok(match error {
            Some(e) => invalid(page(FieldErrors::from(e))),
            None => page(FieldErrors::default()).into_response(),
        });
    }
    if let Some(e) = fields.env_limit_error() {
        let page = form_page(&state, shell, template_id, draft, FieldErrors::from(e), 0);
        return Ok(invalid(page));
    }
    // A zip package picked in the form replaces the code typed in it.
    let mut draft = draft;
    if let Some(zip) = &form.zip {
        match crate::domain::package::unzip(zip) {
            Ok(files) => draft.package = Some(files),
            Err(why) => {
                let errors = FieldErrors::from(super::function_page::zip_error(&why));
                return Ok(invalid(form_page(
                    &state,
                    shell,
                    template_id,
                    draft,
                    errors,
                    0,
                )));
            }
        }
    }
    let refused = |errors| {
        invalid(form_page(
            &state,
            shell,
            template_id,
            draft.clone(),
            errors,
            0,
        ))
    };
    match service::functions::create(&state, &region, &namespace, &draft).await {
        Ok(created) => Ok(super::auth::audited(
            super::flash::redirect(
                &urls::function_tab(&region, &namespace, &created.name, "config"),
                super::flash::Flash::Notice("Function created.".into()),
            ),
            Some(format!("{region}/{namespace}/{}", created.name)),
            None,
        )),
        Err(ServiceError::Invalid(errors)) => Ok(refused(errors)),
        Err(ServiceError::Conflict(taken)) => Ok(refused(FieldErrors::from(taken))),
        Err(e) => Err(e.into()),
    }
}

/// A form shown again with its errors: 422 tells scripts the input was refused, and browsers
/// still show the page.
fn invalid(page: impl IntoResponse) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
}

/// The message slot of one field, swapped in place as the user types.
#[derive(Template, WebTemplate)]
#[template(path = "fragments/field_error.html")]
pub struct FieldErrorSlot {
    field: String,
    message: Option<String>,
    /// Fields whose rules depend on the one that changed, refreshed out of band.
    also: Vec<(String, Option<String>)>,
}

/// Checks the whole form and answers with the message of the field that changed. Cross-field
/// rules (the timeout allowed with async execution) come out right because the whole form is
/// checked, through the same rules as Complete.
async fn validate(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
    HxTriggerName(trigger): HxTriggerName,
    FormFields(pairs): FormFields,
) -> AppResult<FieldErrorSlot> {
    let fields = Fields(pairs);
    let field = rule_field(trigger.as_deref().unwrap_or("")).to_string();
    let draft = fields.function_draft();
    let mut errors = validate_new_function(&draft, &state.interpreters)
        .err()
        .unwrap_or_default();
    if let Some(e) = fields.env_limit_error() {
        errors.push(e);
    }
    let mut message = errors.get(&field).map(str::to_string);
    // Async execution decides the timeout allowed and whether status trace may be on.
    let dependents: &[&str] = if field == "AsyncRunEnable" {
        &["Timeout", "TraceEnable"]
    } else {
        &[]
    };
    let also = dependents
        .iter()
        .map(|f| (f.to_string(), errors.get(f).map(str::to_string)))
        .collect();
    // The name's uniqueness is known only to the store; check it once the shape is right. The
    // Configuration tab has no name field, so this runs only in the wizard.
    let name = draft.function_name.trim();
    if field == "FunctionName" && message.is_none() && validate_function_name(name).is_ok() {
        message = service::functions::name_taken_in(&state, &region, &namespace, name)
            .await?
            .map(|taken| taken.message);
    }
    Ok(FieldErrorSlot {
        field,
        message,
        also,
    })
}
