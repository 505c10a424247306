//! SCF API errors: a code from the SCF error catalogue and a message in the user's terms.

use crate::domain::rules::{FieldError, FieldErrors};
use crate::engine::admission::Refusal;
use crate::service::{Missing, Refused, ServiceError};
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn internal() -> Self {
        ApiError::new(
            "InternalError",
            "An internal error occurred; nothing was changed. Try again, and check the server log for this RequestId if it persists.",
        )
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        // The console says "Enter a function name"; the API names the parameter.
        let code = if e.code == "MissingParameter" {
            "MissingParameter".to_string()
        } else {
            e.code.to_string()
        };
        ApiError::new(code, format!("{}: {}", e.field, e.message))
    }
}

impl From<FieldErrors> for ApiError {
    /// The API answers with the first broken rule, as SCF does.
    fn from(errors: FieldErrors) -> Self {
        errors
            .first()
            .cloned()
            .map(ApiError::from)
            .unwrap_or_else(ApiError::internal)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = ?e, "store error in API call");
        ApiError::internal()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(missing) => {
                let code = match &missing {
                    Missing::Namespace { .. } => "ResourceNotFound.Namespace",
                    Missing::Function(_) => "ResourceNotFound.Function",
                    Missing::Event { .. } => "ResourceNotFound.AsyncEvent",
                    Missing::ApiKey(_) | Missing::Item => "ResourceNotFound",
                };
                ApiError::new(code, missing.to_string())
            }
            ServiceError::Invalid(errors) => errors.into(),
            // Not a parameter's fault: said without the parameter's name.
            ServiceError::Conflict(e) => ApiError::new(e.code, e.message),
            ServiceError::Refused(r) => {
                let code = match &r {
                    Refused::TraceOff { .. } | Refused::EventEnded(_) => {
                        "FailedOperation.AsyncEventStatus"
                    }
                    Refused::Invocation(Refusal::RequestLimitExceeded { .. }) => {
                        "RequestLimitExceeded"
                    }
                    Refused::Invocation(Refusal::InsufficientBalance(_)) => {
                        "ResourceUnavailable.InsufficientBalance"
                    }
                    Refused::Invocation(Refusal::Unavailable(_)) => "InternalError",
                    Refused::Invocation(Refusal::ReservedNone) => {
                        "LimitExceeded.FunctionReservedConcurrencyMemory"
                    }
                };
                ApiError::new(code, r.to_string())
            }
            ServiceError::Forbidden(message) => ApiError::new("UnauthorizedOperation", message),
            ServiceError::Unavailable(message) => ApiError::new("InternalError", message),
            ServiceError::Internal(e) => {
                tracing::error!(error = ?e, "internal error in API call");
                ApiError::internal()
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
