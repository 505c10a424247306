//! The console's one error type: every handler returns it, and it renders as a page a user can
//! act on. Internal failures are logged in full (inside the request's span, which carries its
//! request id) and shown without details.

use crate::engine::admission::Refusal;
use crate::service::{Refused, ServiceError};
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
    /// What the store holds stands in the way (a name taken, a namespace not empty).
    #[error("{0}")]
    Conflict(String),
    /// The input broke a rule, and there is no form to show it next to.
    #[error("{0}")]
    Unprocessable(String),
    /// The state of what the request names does not allow it now.
    #[error("{0}")]
    Refused(Refused),
    /// The user's role does not allow this, or the form did not come from this console.
    #[error("{0}")]
    Forbidden(String),
    /// The store cannot write now; the message says why and what did not happen.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(missing) => AppError::NotFound(missing.to_string()),
            ServiceError::Invalid(errors) => AppError::Unprocessable(
                errors
                    .first()
                    .map_or_else(|| errors.to_string(), |e| e.message.clone()),
            ),
            ServiceError::Conflict(e) => AppError::Conflict(e.message),
            ServiceError::Refused(r) => AppError::Refused(r),
            ServiceError::Forbidden(m) => AppError::Forbidden(m),
            ServiceError::Unavailable(m) => AppError::Unavailable(m),
            ServiceError::Internal(e) => AppError::Internal(e),
        }
    }
}

/// The status a refusal answers with, on an error page or on the page that was refused.
pub fn refused_status(r: &Refused) -> StatusCode {
    match r {
        Refused::Invocation(Refusal::RequestLimitExceeded { .. }) => StatusCode::TOO_MANY_REQUESTS,
        Refused::Invocation(Refusal::InsufficientBalance(_)) => StatusCode::PAYMENT_REQUIRED,
        Refused::Invocation(Refusal::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        Refused::Invocation(Refusal::ReservedNone) => StatusCode::TOO_MANY_REQUESTS,
        Refused::TraceOff { .. } | Refused::EventEnded(_) => StatusCode::BAD_REQUEST,
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
            AppError::Conflict(m) => error_page(StatusCode::CONFLICT, "Conflict", m),
            AppError::Unprocessable(m) => {
                error_page(StatusCode::UNPROCESSABLE_ENTITY, "Not accepted", m)
            }
            AppError::Refused(r) => {
                error_page(refused_status(r), "Not possible now", &r.to_string())
            }
            AppError::Forbidden(m) => error_page(StatusCode::FORBIDDEN, "Not allowed", m),
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

/// A whole page saying what went wrong, for answers that have no page of their own.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
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
