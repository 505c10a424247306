//! SCF API errors: a code from the SCF error catalogue and a message in the user's terms.

use crate::domain::rules::{FieldError, FieldErrors};
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

pub type ApiResult<T> = Result<T, ApiError>;
