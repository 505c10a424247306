//! The Test tab: invoke a function with a JSON event. Async invocations answer with the
//! event's RequestId and a link to it; synchronous ones with the result and logs.

use super::flash::Flash;
use super::form::{Fields, FormFields};
use super::parts::{Header, load};
use super::shell::Shell;
use super::urls;
use crate::domain::event::{INVOKE_TYPE_CONSOLE, Origin};
use crate::domain::rules::FieldErrors;
use crate::domain::template::SAMPLE_EVENTS;
use crate::engine::SyncResult;
use crate::error::{AppResult, refused_status};
use crate::service::ServiceError;
use crate::service::events::{self, Invocation};
use crate::state::AppState;
use crate::store::ConsoleResult;
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/scf/{region}/{namespace}/functions/{name}/test",
        get(page).post(invoke),
    )
}

pub struct Sample {
    pub name: &'static str,
    pub json: &'static str,
    pub selected: bool,
}

/// What the last invocation answered.
pub enum Answer {
    Accepted { request_id: String, url: String },
    Ran(SyncResult),
}

#[derive(Template, WebTemplate)]
#[template(path = "function/test.html")]
pub struct TestPage {
    shell: Shell,
    header: Header,
    payload: String,
    samples: Vec<Sample>,
    /// Async execution functions are always invoked asynchronously.
    async_only: bool,
    invocation_type: String,
    errors: FieldErrors,
    answer: Option<Answer>,
    refused: Option<String>,
    trace_enable: bool,
}

/// A synchronous run's answer and the payload sent, kept for the page the form redirects to.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeptRun {
    result: SyncResult,
    payload: String,
}

/// How long a run's answer waits for its page.
const KEPT_FOR_MS: i64 = 10 * 60 * 1000;

async fn keep_run(state: &AppState, function_id: i64, run: KeptRun) -> AppResult<String> {
    let token = crate::accounts::random_token(24);
    let body = serde_json::to_string(&run).map_err(anyhow::Error::from)?;
    let now = state.clock.now_millis();
    state
        .store
        .put_console_result(
            &ConsoleResult {
                token_hash: &crate::accounts::token_hash(&token),
                user: &super::auth::user_name(),
                function_id,
                body: &body,
                expires_at: now + KEPT_FOR_MS,
            },
            now,
        )
        .await?;
    Ok(token)
}

async fn take_run(state: &AppState, token: &str, function_id: i64) -> AppResult<Option<KeptRun>> {
    let body = state
        .store
        .take_console_result(
            &crate::accounts::token_hash(token),
            &super::auth::user_name(),
            function_id,
            state.clock.now_millis(),
        )
        .await?;
    Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
}

fn samples(selected: &str) -> Vec<Sample> {
    SAMPLE_EVENTS
        .iter()
        .map(|(name, json)| Sample {
            name,
            json,
            selected: *name == selected,
        })
        .collect()
}

async fn page(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
) -> AppResult<TestPage> {
    let (shell, f) = load(&state, &region, &namespace, &name).await?;
    // Back from an accepted invocation: its RequestId, and the payload sent, when short; back
    // from a synchronous run: its answer and the payload, kept once for this user.
    let (answer, sent) = match super::flash::current() {
        Some(Flash::Accepted {
            request_id,
            payload,
        }) => (
            Some(Answer::Accepted {
                url: urls::event(&region, &namespace, &name, &request_id),
                request_id,
            }),
            payload,
        ),
        Some(Flash::Ran { token }) => match take_run(&state, &token, f.id).await? {
            Some(kept) => (Some(Answer::Ran(kept.result)), Some(kept.payload)),
            None => (None, None),
        },
        _ => (None, None),
    };
    Ok(TestPage {
        header: Header::new(&state, &shell, &f, "test"),
        shell,
        samples: samples(if sent.is_some() {
            ""
        } else {
            SAMPLE_EVENTS[0].0
        }),
        payload: sent.unwrap_or_else(|| SAMPLE_EVENTS[0].1.to_string()),
        async_only: f.async_run_enable,
        invocation_type: if f.async_run_enable {
            "Event"
        } else {
            "RequestResponse"
        }
        .into(),
        errors: FieldErrors::default(),
        answer,
        refused: None,
        trace_enable: f.trace_enable,
    })
}

async fn invoke(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
    FormFields(pairs): FormFields,
) -> AppResult<Response> {
    let (shell, f) = load(&state, &region, &namespace, &name).await?;
    let fields = Fields(pairs);
    let mut payload = fields.get("ClientContext").replace("\r\n", "\n");
    let mut sample = String::new();
    // "Load sample" without JavaScript: put the chosen sample in the editor.
    if fields.get("_action") == "load-sample"
        && let Some((n, json)) = SAMPLE_EVENTS
            .iter()
            .find(|(n, _)| *n == fields.get("Sample"))
    {
        payload = json.to_string();
        sample = n.to_string();
    }
    let wants_async = fields.get("InvocationType") == "Event";
    let asynchronous = events::runs_async(&f, wants_async);
    let mut page = TestPage {
        header: Header::new(&state, &shell, &f, "test"),
        shell,
        payload: payload.clone(),
        samples: samples(&sample),
        async_only: f.async_run_enable,
        invocation_type: if asynchronous {
            "Event"
        } else {
            "RequestResponse"
        }
        .into(),
        errors: FieldErrors::default(),
        answer: None,
        refused: None,
        trace_enable: f.trace_enable,
    };
    if fields.get("_action") == "load-sample" {
        return Ok(page.into_response());
    }
    match events::invoke(
        &state,
        &f,
        &payload,
        wants_async,
        Origin::new(INVOKE_TYPE_CONSOLE, &super::auth::user_name()),
    )
    .await
    {
        // Shown by the tab this redirects to, so that a reload does not invoke again.
        Ok(Invocation::Accepted { request_id }) => {
            let target = format!("{region}/{namespace}/{name}/{request_id}");
            let accepted = Flash::Accepted {
                request_id,
                payload: (payload.len() <= super::flash::MAX_PAYLOAD).then_some(payload),
            };
            let to = urls::function_tab(&region, &namespace, &name, "test");
            Ok(super::auth::audited(
                super::flash::redirect(&to, accepted),
                Some(target),
                Some("async event accepted".into()),
            ))
        }
        // Shown by the tab this redirects to, so that a reload does not run it again.
        Ok(Invocation::Ran(result)) => {
            let token = keep_run(&state, f.id, KeptRun { result, payload }).await?;
            let to = urls::function_tab(&region, &namespace, &name, "test");
            Ok(super::auth::audited(
                super::flash::redirect(&to, Flash::Ran { token }),
                None,
                Some("ran synchronously".into()),
            ))
        }
        Err(ServiceError::Invalid(errors)) => {
            page.errors = errors;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        // Said on the page, next to the payload the user may want to send again.
        Err(ServiceError::Refused(r)) => {
            let status = refused_status(&r);
            page.refused = Some(r.to_string());
            Ok((status, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
