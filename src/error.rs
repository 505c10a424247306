//! The console's one error type: every handler returns it, and it renders as a page a user can
//! act on. Internal failures are logged in full (inside the request's span, which carries its
//! request id) and shown without details.

use crate::store::StoreError;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// The store cannot write now; the message says why and what did not happen.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound("That item no longer exists.".into()),
            other => AppError::Internal(other.into()),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            AppError::NotFound(m) => error_page(StatusCode::NOT_FOUND, "Not found", m),
            AppError::BadRequest(m) => error_page(StatusCode::BAD_REQUEST, "Bad request", m),
            AppError::Unavailable(m) => {
                error_page(StatusCode::SERVICE_UNAVAILABLE, "The store cannot write", m)
            }
            AppError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                internal_error_response()
            }
        }
    }
}

/// What a caught panic says, for the log.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// The 500 page, without details; the caller has logged what happened.
pub fn internal_error_response() -> Response {
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The console could not complete this request. Nothing was changed; try again, and if it keeps failing, check the server log for this request's id.",
    )
}

fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let page = ErrorPage {
        status: status.as_u16(),
        title,
        message,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "error page failed to render");
            (status, message.to_string()).into_response()
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
