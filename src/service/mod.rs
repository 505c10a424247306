//! The use cases behind both doors. The console (`web/`) and the SCF API (`scf/`) call these
//! and only translate their outcomes: into pages and status codes, or into SCF error codes.
//! Rules come from `domain/`; this is where store and engine calls are put in order, so that
//! each decision (is the name taken, may this event be seen, was the invocation accepted) is
//! made in one place and says the same thing whichever door asked.

pub mod events;
pub mod function_cache;
pub mod functions;
pub mod namespaces;

use crate::domain::event::EventStatus;
use crate::domain::rules::{FieldError, FieldErrors};
use crate::engine::admission::Refusal;
use crate::store::{FunctionKey, StoreError};
use std::fmt;

/// Why a use case did not do what it was asked. Every message is in the user's terms and is
/// the one every door shows.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    NotFound(Missing),
    /// The input broke rules: all of them, in form order.
    #[error("{0}")]
    Invalid(FieldErrors),
    /// What the store holds stands in the way: a name is taken, a namespace is not empty. The
    /// field it concerns and its SCF code come with it.
    #[error("{}", .0.message)]
    Conflict(FieldError),
    /// The request is fine, but the state of what it names does not allow it now.
    #[error("{0}")]
    Refused(Refused),
    /// The caller's role or ownership does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing could be accepted now (the store cannot write); the message says what did not
    /// happen.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// What a call named that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Namespace {
        region: String,
        name: String,
    },
    Function(FunctionKey),
    /// An async event, of a given function or of any.
    Event {
        request_id: String,
        function: Option<String>,
    },
    ApiKey(String),
    /// Something that went away between reading and writing it.
    Item,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Namespace { region, name } => {
                write!(f, "Namespace {name} does not exist in {region}.")
            }
            Missing::Function(key) => write!(
                f,
                "Function {} does not exist in namespace {} of {}.",
                key.name, key.namespace, key.region
            ),
            // Records end with retention, so a RequestId that worked yesterday may be gone.
            Missing::Event {
                request_id,
                function: Some(name),
            } => write!(
                f,
                "Function {name} has no async event {request_id}. Records are kept for the retention period after events end."
            ),
            Missing::Event {
                request_id,
                function: None,
            } => write!(
                f,
                "There is no async event {request_id}. Records are kept for the retention period after events end."
            ),
            Missing::ApiKey(id) => write!(f, "There is no API key {id}."),
            Missing::Item => f.write_str("That item no longer exists."),
        }
    }
}

/// A request the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Event status is neither recorded nor queried while status trace is off.
    TraceOff { function: String },
    /// Only queued and running events can be terminated.
    EventEnded(EventStatus),
    /// Admission refused the invocation (QPS limit, namespace in arrears): nothing was written.
    Invocation(Refusal),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::TraceOff { function } => write!(
                f,
                "Status trace is off for function {function}: async event status is not recorded or queried."
            ),
            Refused::EventEnded(status) => write!(
                f,
                "The current async event status does not support this operation: it is {} already, and only queued or running events can be terminated.",
                status.scf_name()
            ),
            Refused::Invocation(r) => write!(f, "{r} No event was recorded."),
        }
    }
}

impl From<FieldErrors> for ServiceError {
    fn from(errors: FieldErrors) -> Self {
        ServiceError::Invalid(errors)
    }
}

impl From<FieldError> for ServiceError {
    fn from(error: FieldError) -> Self {
        ServiceError::Invalid(error.into())
    }
}

/// The fallback for store outcomes a use case did not expect; the expected ones (a taken
/// name, a missing function) are mapped where they happen, with what they concern.
impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ServiceError::NotFound(Missing::Item),
            StoreError::Conflict => ServiceError::Conflict(FieldError::new(
                "",
                "ResourceInUse",
                "That name is already taken; nothing was changed.",
            )),
            StoreError::NotEmpty => ServiceError::Conflict(FieldError::new(
                "",
                "FailedOperation",
                "It still holds items; nothing was deleted.",
            )),
            e @ (StoreError::Database(_)
            | StoreError::IllegalTransition { .. }
            | StoreError::QuotaUsed) => ServiceError::Internal(e.into()),
        }
    }
}
