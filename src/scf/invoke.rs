//! Invocation actions: Invoke (sync and async), GetAsyncEventStatus, TerminateAsyncEvent.

use super::error::{ApiError, ApiResult};
use super::params::{self, parse};
use super::{Call, functions};
use crate::domain::event::{EventStatus, INVOKE_TYPE_API, validate_payload};
use crate::engine::InvokeError;
use crate::engine::admission::Refusal;
use crate::store::{EventRecord, Termination};
use serde::Deserialize;
use serde_json::{Value, json};

/// An engine refusal in SCF's words: the call fails and no event record exists.
pub fn refusal(e: InvokeError) -> ApiError {
    match e {
        InvokeError::Refused(r @ Refusal::RequestLimitExceeded { .. }) => {
            ApiError::new("RequestLimitExceeded", r.to_string())
        }
        InvokeError::Refused(r @ Refusal::InsufficientBalance(_)) => {
            ApiError::new("ResourceUnavailable.InsufficientBalance", r.to_string())
        }
        InvokeError::Refused(Refusal::Unavailable(why)) => {
            tracing::error!(error = %why, "invocation could not be accepted");
            ApiError::internal()
        }
        // Said in full: the caller must know the RequestId it did not get is not its fault,
        // and that nothing will run.
        e @ InvokeError::Store(_) => ApiError::new("InternalError", e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct InvokeRequest {
    function_name: String,
    invocation_type: Option<String>,
    qualifier: Option<String>,
    client_context: Option<String>,
    log_type: Option<String>,
    namespace: Option<String>,
    routing_key: Option<Value>,
}

pub async fn invoke(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: InvokeRequest = parse(call.action, params)?;
    functions::check_qualifier(req.qualifier.as_deref())?;
    let _ = (&req.log_type, &req.routing_key);
    let f = functions::function(call, &req.function_name, req.namespace).await?;
    let asynchronous = match req.invocation_type.as_deref() {
        None | Some("") | Some("RequestResponse") => f.async_run_enable,
        Some("Event") => true,
        Some(other) => {
            return Err(ApiError::new(
                "InvalidParameterValue.InvocationType",
                format!("InvocationType is RequestResponse or Event, not {other:?}."),
            ));
        }
    };
    let payload = validate_payload(req.client_context.as_deref().unwrap_or(""), asynchronous)?;
    let engine = &call.state.engine;
    if asynchronous {
        let request_id = engine
            .invoke_async(&f, payload, INVOKE_TYPE_API)
            .await
            .map_err(refusal)?;
        return Ok(json!({
            "Result": {
                "Log": "",
                "RetMsg": "async invoke success",
                "ErrMsg": "",
                "MemUsage": 0,
                "Duration": 0,
                "BillDuration": 0,
                "FunctionRequestId": request_id,
                "InvokeResult": 0,
            }
        }));
    }
    let r = engine
        .invoke_sync(&f, &payload, INVOKE_TYPE_API)
        .await
        .map_err(refusal)?;
    Ok(json!({
        "Result": {
            "Log": r.logs,
            "RetMsg": r.result.unwrap_or_default(),
            "ErrMsg": r.error.unwrap_or_default(),
            "MemUsage": r.memory_bytes,
            "Duration": (r.duration_ms * 1000.0).round() / 1000.0,
            "BillDuration": r.duration_ms.ceil() as u64,
            "FunctionRequestId": r.request_id,
            "InvokeResult": if r.status_code == 200 { 0 } else { r.status_code },
        }
    }))
}

/// An event the caller may see: status trace must be on for its function, and must have been
/// on when the event was accepted.
async fn traced_event(call: &Call<'_>, request_id: &str) -> ApiResult<EventRecord> {
    let not_found = || {
        ApiError::new(
            "ResourceNotFound.AsyncEvent",
            format!("There is no async event {request_id}."),
        )
    };
    let event = call
        .state
        .store
        .get_event(request_id)
        .await?
        .ok_or_else(not_found)?;
    if event.region != call.region {
        return Err(not_found());
    }
    let f = call
        .state
        .store
        .get_function_by_id(event.function_id)
        .await?
        .ok_or_else(not_found)?;
    if !f.trace_enable || !event.traced {
        return Err(ApiError::new(
            "FailedOperation.AsyncEventStatus",
            format!(
                "Status trace is off for function {}: async event status is not recorded or queried.",
                f.name
            ),
        ));
    }
    Ok(event)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct StatusRequest {
    invoke_request_id: String,
}

pub async fn get_async_event_status(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: StatusRequest = parse(call.action, params)?;
    let event = traced_event(call, &req.invoke_request_id).await?;
    Ok(json!({
        "Result": {
            "Status": event.status.scf_name(),
            "StatusCode": event.status_code.unwrap_or(0),
            "InvokeRequestId": event.request_id,
        }
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct TerminateRequest {
    function_name: String,
    invoke_request_id: String,
    namespace: Option<String>,
    #[serde(default, deserialize_with = "params::boolean")]
    grace_shutdown: Option<bool>,
}

pub async fn terminate_async_event(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: TerminateRequest = parse(call.action, params)?;
    let f = functions::function(call, &req.function_name, req.namespace).await?;
    let not_found = || {
        ApiError::new(
            "ResourceNotFound.AsyncEvent",
            format!(
                "There is no async event {} of function {}.",
                req.invoke_request_id, f.name
            ),
        )
    };
    let event = call
        .state
        .store
        .get_event(&req.invoke_request_id)
        .await?
        .ok_or_else(not_found)?;
    if event.function_id != f.id {
        return Err(not_found());
    }
    match call
        .state
        .engine
        .terminate(&req.invoke_request_id, req.grace_shutdown.unwrap_or(false))
        .await
    {
        Ok(Termination::AbortedWhileQueued) | Ok(Termination::Running) => Ok(json!({})),
        Ok(Termination::NotRunning(status)) => Err(not_running(status)),
        Err(crate::store::StoreError::NotFound) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

fn not_running(status: EventStatus) -> ApiError {
    ApiError::new(
        "FailedOperation.AsyncEventStatus",
        format!(
            "The current async event status does not support this operation: it is {} already.",
            status.scf_name()
        ),
    )
}
