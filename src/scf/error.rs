//! SCF API errors: a code from the SCF error catalogue and a message in the user's terms.

use crate::domain::rules::{FieldError, FieldErrors};
use crate::engine::admission::Refusal;
use crate::service::{Missing, Refused, ServiceError};
use crate::store::StoreError;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

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

    /// This error as `action` may answer it: a code outside the action's documented list (and
    /// outside API 3.0's common codes) becomes its nearest listed parent, e.g.
    /// `InvalidParameterValue.InvocationType` → `InvalidParameterValue` for Invoke, because
    /// clients branch on the documented codes. The message keeps the detail.
    pub fn listed_for(mut self, action: &str) -> Self {
        let Some(listed) = action_codes().get(action) else {
            return self; // not an action served here: InvalidAction or UnsupportedOperation
        };
        let mut code = self.code.as_str();
        while !COMMON_CODES.contains(&code) && !listed.contains(code) {
            match code.rfind('.') {
                Some(dot) => code = &code[..dot],
                None => break,
            }
        }
        if code.len() < self.code.len() {
            self.code.truncate(code.len());
        }
        self
    }

    /// Whether `code` is one `action` documents (its own list or the common codes).
    pub fn is_listed(action: &str, code: &str) -> bool {
        COMMON_CODES.contains(&code) || action_codes().get(action).is_some_and(|l| l.contains(code))
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

/// API 3.0's common error codes: any action may answer them.
const COMMON_CODES: &[&str] = &[
    "ActionOffline",
    "AuthFailure.InvalidAuthorization",
    "AuthFailure.InvalidSecretId",
    "AuthFailure.MFAFailure",
    "AuthFailure.SecretIdNotFound",
    "AuthFailure.SignatureExpire",
    "AuthFailure.SignatureFailure",
    "AuthFailure.TokenFailure",
    "AuthFailure.UnauthorizedOperation",
    "DryRunOperation",
    "FailedOperation",
    "InternalError",
    "InvalidAction",
    "InvalidParameter",
    "InvalidParameterValue",
    "InvalidRequest",
    "IpInBlacklist",
    "IpNotInWhitelist",
    "LimitExceeded",
    "MissingParameter",
    "NoSuchProduct",
    "NoSuchVersion",
    "RequestLimitExceeded",
    "RequestSizeLimitExceeded",
    "ResourceInUse",
    "ResourceInsufficient",
    "ResourceNotFound",
    "ResourceUnavailable",
    "ResponseSizeLimitExceeded",
    "ServiceUnavailable",
    "UnauthorizedOperation",
    "UnknownParameter",
    "UnsupportedOperation",
    "UnsupportedProtocol",
    "UnsupportedRegion",
];

/// Each served action's own codes, read once from `error_codes.txt`.
fn action_codes() -> &'static HashMap<&'static str, HashSet<&'static str>> {
    static CODES: OnceLock<HashMap<&'static str, HashSet<&'static str>>> = OnceLock::new();
    CODES.get_or_init(|| {
        let mut codes: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut action = None;
        for line in include_str!("error_codes.txt").lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                action = Some(name);
                codes.entry(name).or_default();
            } else if let Some(action) = action {
                codes.entry(action).or_default().insert(line);
            }
        }
        codes
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(action: &str, code: &str) -> String {
        ApiError::new(code, "m").listed_for(action).code
    }

    #[test]
    fn every_served_action_has_its_list() {
        for action in super::super::SERVED_ACTIONS {
            assert!(
                action_codes().contains_key(action),
                "{action} has no error list"
            );
        }
    }

    #[test]
    fn a_code_outside_the_actions_list_becomes_its_listed_parent() {
        assert_eq!(
            answered("Invoke", "InvalidParameterValue.InvocationType"),
            "InvalidParameterValue"
        );
        assert_eq!(
            answered("ListAsyncEvents", "FailedOperation.AsyncEventStatus"),
            "FailedOperation"
        );
        assert_eq!(
            answered("Invoke", "InvalidParameter.RequestTooLarge"),
            "InvalidParameter"
        );
    }

    #[test]
    fn listed_and_common_codes_stay() {
        assert_eq!(
            answered("GetAsyncEventStatus", "FailedOperation.AsyncEventStatus"),
            "FailedOperation.AsyncEventStatus"
        );
        assert_eq!(
            answered("CreateFunction", "InvalidParameterValue.MemorySize"),
            "InvalidParameterValue.MemorySize"
        );
        assert_eq!(
            answered("Invoke", "AuthFailure.SignatureExpire"),
            "AuthFailure.SignatureExpire"
        );
        assert_eq!(
            answered("Invoke", "RequestLimitExceeded"),
            "RequestLimitExceeded"
        );
        // Not an action served here: nothing to narrow against.
        assert_eq!(answered("NoSuchThing", "InvalidAction"), "InvalidAction");
    }
}
