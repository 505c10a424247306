//! The Test tab: invoke a function with a JSON event. Async invocations answer with the
//! event's RequestId and a link to it; synchronous ones with the result and logs.

use super::form::{Fields, FormFields};
use super::parts::{Header, load};
use super::shell::Shell;
use super::urls;
use crate::domain::event::{INVOKE_TYPE_CONSOLE, validate_payload};
use crate::domain::rules::FieldErrors;
use crate::domain::template::SAMPLE_EVENTS;
use crate::engine::admission::Refusal;
use crate::engine::{InvokeError, SyncResult};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
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
    Ok(TestPage {
        header: Header::new(&state, &shell, &f, "test"),
        shell,
        payload: SAMPLE_EVENTS[0].1.to_string(),
        samples: samples(SAMPLE_EVENTS[0].0),
        async_only: f.async_run_enable,
        invocation_type: if f.async_run_enable {
            "Event"
        } else {
            "RequestResponse"
        }
        .into(),
        errors: FieldErrors::default(),
        answer: None,
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
    let asynchronous = f.async_run_enable || fields.get("InvocationType") == "Event";
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
    let payload = match validate_payload(&payload, asynchronous) {
        Ok(p) => p,
        Err(e) => {
            page.errors = e.into();
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let outcome = if asynchronous {
        state
            .engine
            .invoke_async(&f, payload, INVOKE_TYPE_CONSOLE)
            .await
            .map(|request_id| Answer::Accepted {
                url: urls::event(&region, &namespace, &name, &request_id),
                request_id,
            })
    } else {
        state
            .engine
            .invoke_sync(&f, &payload, INVOKE_TYPE_CONSOLE)
            .await
            .map(Answer::Ran)
    };
    match outcome {
        Ok(answer) => {
            page.answer = Some(answer);
            Ok(page.into_response())
        }
        Err(InvokeError::Refused(
            r @ (Refusal::RequestLimitExceeded { .. } | Refusal::InsufficientBalance(_)),
        )) => {
            let status = if matches!(r, Refusal::RequestLimitExceeded { .. }) {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::PAYMENT_REQUIRED
            };
            page.refused = Some(format!("Not invoked: {r} No event was recorded."));
            Ok((status, page).into_response())
        }
        Err(InvokeError::Refused(Refusal::Unavailable(e))) => {
            Err(AppError::Internal(anyhow::anyhow!(e)))
        }
        Err(e @ InvokeError::Store(_)) => Err(AppError::Unavailable(e.to_string())),
    }
}
