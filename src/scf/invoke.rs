//! Invocation actions: Invoke (sync and async), GetAsyncEventStatus, TerminateAsyncEvent.

use super::error::{ApiError, ApiResult};
use super::params::{self, parse};
use super::{Call, functions};
use crate::domain::event::{self, INVOKE_TYPE_API, Origin, status_code};
use crate::engine::SyncResult;
use crate::service;
use crate::service::events::{self, Invocation};
use serde::Deserialize;
use serde_json::{Value, json};

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
    functions::check_qualifier(call.action, req.qualifier.as_deref())?;
    let _ = (&req.log_type, &req.routing_key);
    // Served from memory when read a moment ago: an accept reads nothing from the store.
    let key = functions::function_key(call, &req.function_name, req.namespace)?;
    let f = service::functions::get_to_invoke(call.state, &key).await?;
    let wants_async = match req.invocation_type.as_deref() {
        None | Some("") | Some("RequestResponse") => false,
        Some("Event") => true,
        Some(other) => {
            return Err(ApiError::new(
                "InvalidParameterValue.InvocationType",
                format!("InvocationType is RequestResponse or Event, not {other:?}."),
            ));
        }
    };
    let payload = req.client_context.as_deref().unwrap_or("");
    match events::invoke(
        call.state,
        &f,
        payload,
        wants_async,
        Origin::new(INVOKE_TYPE_API, &call.by),
    )
    .await?
    {
        // SCF leaves everything but the RequestId empty for an async invocation.
        Invocation::Accepted { request_id } => Ok(json!({
            "Result": {
                "Log": "",
                "RetMsg": "",
                "ErrMsg": "",
                "MemUsage": 0,
                "Duration": 0,
                "BillDuration": 0,
                "FunctionRequestId": request_id,
                "InvokeResult": 0,
            }
        })),
        Invocation::Ran(r) => Ok(json!({
            "Result": {
                "Log": r.logs,
                "RetMsg": r.result.clone().unwrap_or_default(),
                "ErrMsg": error_object(&r),
                "MemUsage": r.memory_bytes,
                "Duration": (r.duration_ms * 1000.0).round() / 1000.0,
                "BillDuration": r.duration_ms.ceil() as u64,
                "FunctionRequestId": r.request_id,
                "InvokeResult": if r.status_code == 200 { 0 } else { r.status_code },
            }
        })),
    }
}

/// A failed synchronous invocation's error as SCF answers it in `ErrMsg`: its error object
/// (the handler's exception with the stack of the user's files, or what stopped it), as JSON.
fn error_object(r: &SyncResult) -> String {
    if r.status_code == status_code::SUCCESS {
        return String::new();
    }
    let object = match &r.raised {
        Some(e) => json!({
            "errorCode": 1,
            "errorMessage": format!("{}: {}", e.kind, e.message),
            "stackTrace": e.stack.trim_end(),
            "statusCode": r.status_code,
        }),
        None => json!({
            "errorCode": -1,
            "errorMessage": r.error.clone().unwrap_or_default(),
            "statusCode": r.status_code,
        }),
    };
    object.to_string()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct StatusRequest {
    invoke_request_id: String,
}

pub async fn get_async_event_status(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: StatusRequest = parse(call.action, params)?;
    let event = events::get_in_region(call.state, &call.region, &req.invoke_request_id).await?;
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
    let request = event::TerminateRequest {
        graceful: req.grace_shutdown.unwrap_or(false),
        by: call.by.clone(),
        reason: String::new(),
    };
    events::terminate(call.state, &f, &req.invoke_request_id, &request).await?;
    Ok(json!({}))
}
