//! The console: server-rendered pages and htmx fragments. Every page works as plain HTML forms
//! and links; htmx only swaps parts of a page in place.

pub mod assets;
mod audit;
pub mod auth;
mod chart;
mod event_page;
mod events_tab;
pub mod flash;
mod form;
mod function_page;
mod functions;
mod keys;
mod logs_tab;
pub mod metrics;
mod monitoring;
mod namespaces;
mod parts;
mod shell;
mod system;
mod test_tab;
pub mod urls;
mod users;
mod wizard;

use crate::domain::namespace::DEFAULT_NAMESPACE;
use crate::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use std::convert::Infallible;

pub use shell::Shell;

pub fn routes() -> Router<AppState> {
    Router::new()
        // Browsers get the console; calls with X-TC-Action get the SCF API, which reads the
        // body itself, after the signature headers pass and up to the action's own limit.
        .route("/", get(root).post(root))
        .route("/switch", get(switch))
        .route("/static/{*path}", get(assets::serve))
        // Browsers ask for it whatever the page links.
        .route(
            "/favicon.ico",
            get(|| async { Redirect::permanent(&assets::url("favicon.svg")) }),
        )
        .merge(functions::routes())
        .merge(wizard::routes())
        .merge(function_page::routes())
        .merge(namespaces::routes())
        .merge(keys::routes())
        .merge(test_tab::routes())
        .merge(system::routes())
        .merge(events_tab::routes())
        .merge(monitoring::routes())
        .merge(logs_tab::routes())
        .merge(event_page::routes())
        .merge(auth::routes())
        .merge(users::routes())
        .merge(audit::routes())
        .fallback(|| async {
            crate::error::AppError::NotFound("There is no page at this address.".into())
        })
        .layer(DefaultBodyLimit::max(FORM_BODY_LIMIT))
}

/// The largest console form: the inline code of the editor, percent-encoded (a byte can
/// become three), with room for the other fields. The SCF API reads its bodies itself, with
/// its own limits per action.
pub const FORM_BODY_LIMIT: usize = 3 * crate::domain::function::CODE_MAX_BYTES + 64 * 1024;

async fn root(State(state): State<AppState>, request: Request) -> Response {
    if crate::scf::is_api_call(request.headers()) {
        return crate::scf::handle(&state, request).await;
    }
    if request.method() == Method::GET {
        Redirect::to(&urls::functions(state.default_region(), DEFAULT_NAMESPACE)).into_response()
    } else {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "POST / is the SCF API: send the X-TC-Action header.",
        )
            .into_response()
    }
}

#[derive(Deserialize)]
struct SwitchQuery {
    region: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// Target of the region and namespace selectors (plain GET forms): a new region starts in its
/// `default` namespace.
async fn switch(Query(q): Query<SwitchQuery>) -> Redirect {
    let namespace = q
        .namespace
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    Redirect::to(&urls::functions(&q.region, &namespace))
}

/// True when htmx made the request and wants a fragment rather than the whole page.
pub struct HxRequest(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for HxRequest {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let header = |name: &str| parts.headers.get(name).is_some_and(|v| v == "true");
        // A boosted request navigates, so it wants the whole page.
        Ok(HxRequest(header("hx-request") && !header("hx-boosted")))
    }
}

/// The name of the field whose input triggered an htmx request (`HX-Trigger-Name`).
pub struct HxTriggerName(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for HxTriggerName {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(HxTriggerName(
            parts
                .headers
                .get("hx-trigger-name")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        ))
    }
}
