//! SCF API 3.0: the one machine API of scf-console, wire-compatible with Tencent Cloud so that
//! the official SDKs and `tccli` work against it unchanged. `POST /` (or `GET /?…`) with an
//! `X-TC-Action` header lands here.

mod auth;
pub mod error;
mod events;
mod functions;
mod invoke;
mod namespaces;
pub mod params;
pub mod tc3;

use crate::domain::user::Permission;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use error::{ApiError, ApiResult};
use http_body_util::BodyExt;
use serde_json::{Map, Value};
use time::UtcOffset;

pub const VERSION: &str = "2018-04-16";

/// What every action handler gets: the state, the region the call is for, and the action name.
pub struct Call<'a> {
    pub state: &'a AppState,
    pub region: String,
    pub action: &'a str,
    /// Who calls, as timelines name them: `API key <SecretId>`.
    pub by: String,
}

impl Call<'_> {
    pub fn tz(&self) -> UtcOffset {
        self.state.timezone
    }
}

/// True when a request at `/` is an API call rather than a browser.
pub fn is_api_call(headers: &HeaderMap) -> bool {
    headers.contains_key("x-tc-action")
}

/// A code package comes inline as a base64 zip of up to 50 MB, with room for the other
/// parameters.
pub const CODE_BODY_LIMIT: usize = 72 * 1024 * 1024;
/// A synchronous event may be 6 MB; the rest is room for its JSON escaping and the other
/// parameters.
pub const INVOKE_BODY_LIMIT: usize = 7 * 1024 * 1024;
/// Every other action takes a few parameters.
pub const PARAMS_BODY_LIMIT: usize = 1024 * 1024;

/// The largest body `action` accepts; the body is read no further than this.
pub fn body_limit(action: &str) -> usize {
    match action {
        "CreateFunction" | "UpdateFunctionCode" => CODE_BODY_LIMIT,
        "Invoke" => INVOKE_BODY_LIMIT,
        _ => PARAMS_BODY_LIMIT,
    }
}

/// A bug that panics inside an action still answers in SCF's JSON (`InternalError`), which
/// the SDKs can read, rather than the console's HTML error page; it is logged with the action.
async fn panics_as_errors(
    action: &str,
    call: impl std::future::Future<Output = ApiResult<Value>>,
) -> ApiResult<Value> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(call).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let what = crate::error::panic_message(panic.as_ref());
            tracing::error!(action = %action, panic = %what, "an API action panicked");
            Err(ApiError::internal())
        }
    }
}

/// Answers one API call. SCF answers errors with HTTP 200 and the error in the body, and the SDK
/// expects exactly that. The body is read only once the headers have passed, and never beyond
/// the action's limit.
pub async fn handle(state: &AppState, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let request_id = request_id_of(&parts);
    let action = header_str(&parts.headers, "x-tc-action")
        .unwrap_or_default()
        .to_string();
    let mut audited = Audited::default();
    let result = panics_as_errors(
        &action,
        call(
            state,
            &parts.method,
            &parts.uri,
            &parts.headers,
            body,
            &action,
            &mut audited,
        ),
    )
    .await
    .map_err(|e| e.listed_for(&action));
    if let Some(secret_id) = &audited.secret_id {
        let source = crate::app::client_address(state.trusted_proxy, &parts);
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("refused: {}", e.code),
        };
        let actor = crate::audit::Actor::api(secret_id, &source);
        crate::audit::record(state, &actor, &action, &audited.target, &outcome).await;
    }
    let response = match result {
        Ok(Value::Object(mut fields)) => {
            fields.insert("RequestId".into(), Value::String(request_id.clone()));
            serde_json::json!({ "Response": fields })
        }
        Ok(_) => unreachable!("actions answer with objects"),
        Err(e) => {
            // The code says why; the message stays with the caller, as it may quote what the
            // call carried (names, parameter values).
            tracing::info!(action = %action, code = %e.code, "API call refused");
            serde_json::json!({
                "Response": {
                    "Error": { "Code": e.code, "Message": e.message },
                    "RequestId": request_id,
                }
            })
        }
    };
    let body = serde_json::to_vec(&response).expect("JSON values serialize");
    (
        StatusCode::OK,
        // Exactly `application/json`: the Python SDK only reads errors with this content type.
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The request's id (`x-request-id`, set for every request before it reaches a handler), so
/// the RequestId a caller quotes is the one the server's log shows for its call.
fn request_id_of(parts: &axum::http::request::Parts) -> String {
    parts
        .extensions
        .get::<tower_http::request_id::RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What the audit log needs of a call that changes something: set once the caller is known.
#[derive(Default)]
struct Audited {
    secret_id: Option<String>,
    target: String,
}

/// What each action needs of the key's role. Reading (`Get…`, `List…`) is for every role;
/// everything else changes functions, events or namespaces.
fn permission(action: &str) -> Permission {
    if action.starts_with("Get") || action.starts_with("List") {
        Permission::Read
    } else {
        Permission::Develop
    }
}

/// Changes are audited; reads are not, nor are invocations, which Event Management records
/// and which would otherwise double every accept's writes.
fn is_audited(action: &str) -> bool {
    permission(action) != Permission::Read && action != "Invoke"
}

/// What a call was about: `region/namespace[/function[/RequestId]]`.
fn target_of(region: &str, params: &Value) -> String {
    let text = |name: &str| params.get(name).and_then(Value::as_str).unwrap_or_default();
    let namespace = match text("Namespace") {
        "" => crate::domain::namespace::DEFAULT_NAMESPACE,
        ns => ns,
    };
    [
        region,
        namespace,
        text("FunctionName"),
        text("InvokeRequestId"),
    ]
    .into_iter()
    .filter(|part| !part.is_empty())
    .collect::<Vec<_>>()
    .join("/")
}

async fn call(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    action: &str,
    audited: &mut Audited,
) -> ApiResult<Value> {
    let caller = auth::identify(state, headers).await?;
    let body = read_body(action, headers, body).await?;
    auth::verify(&caller, method, uri, headers, &body)?;
    let audit = is_audited(action);
    if audit {
        audited.secret_id = Some(caller.secret_id().to_string());
    }
    let needed = permission(action);
    if !caller.role.allows(needed) {
        return Err(ApiError::new(
            "UnauthorizedOperation",
            crate::domain::user::refusal(caller.role, needed),
        ));
    }
    match header_str(headers, "x-tc-version") {
        Some(VERSION) => {}
        Some(other) => {
            return Err(ApiError::new(
                "NoSuchVersion",
                format!("Version {other} does not exist; the SCF API version is {VERSION}."),
            ));
        }
        None => {
            return Err(ApiError::new(
                "MissingParameter",
                "The X-TC-Version header is required.",
            ));
        }
    }
    let region = match header_str(headers, "x-tc-region").filter(|r| !r.is_empty()) {
        None => state.default_region().to_string(),
        Some(r) if state.regions.iter().any(|x| x == r) => r.to_string(),
        Some(r) => {
            return Err(ApiError::new(
                "UnsupportedRegion",
                format!(
                    "Region {r} is not offered here; use one of {}.",
                    state.regions.join(", ")
                ),
            ));
        }
    };
    let params = read_params(method, uri, &body)?;
    if audit {
        audited.target = target_of(&region, &params);
    }
    let call = Call {
        state,
        region,
        action,
        by: format!("API key {}", caller.secret_id()),
    };
    let answer = match action {
        "CreateFunction" => functions::create(&call, params).await?,
        "GetFunction" => functions::get(&call, params).await?,
        "ListFunctions" => functions::list(&call, params).await?,
        "DeleteFunction" => functions::delete(&call, params).await?,
        "UpdateFunctionConfiguration" => functions::update_configuration(&call, params).await?,
        "UpdateFunctionCode" => functions::update_code(&call, params).await?,
        "GetFunctionEventInvokeConfig" => functions::get_event_invoke_config(&call, params).await?,
        "UpdateFunctionEventInvokeConfig" => {
            functions::update_event_invoke_config(&call, params).await?
        }
        "PutReservedConcurrencyConfig" => {
            functions::put_reserved_concurrency(&call, params).await?
        }
        "GetReservedConcurrencyConfig" => {
            functions::get_reserved_concurrency(&call, params).await?
        }
        "DeleteReservedConcurrencyConfig" => {
            functions::delete_reserved_concurrency(&call, params).await?
        }
        "Invoke" => invoke::invoke(&call, params).await?,
        "ListAsyncEvents" => events::list(&call, params).await?,
        "GetAsyncEventStatus" => invoke::get_async_event_status(&call, params).await?,
        "GetRequestStatus" => events::request_status(&call, params).await?,
        "GetAccount" => namespaces::account(&call, params).await?,
        "TerminateAsyncEvent" => invoke::terminate_async_event(&call, params).await?,
        "ListNamespaces" => namespaces::list(&call, params).await?,
        "CreateNamespace" => namespaces::create(&call, params).await?,
        "DeleteNamespace" => namespaces::delete(&call, params).await?,
        other if SCF_ACTIONS.contains(&other) => {
            return Err(ApiError::new(
                "UnsupportedOperation",
                format!(
                    "{other} is an SCF action that scf-console does not serve; see the README for the actions it does."
                ),
            ));
        }
        other => {
            return Err(ApiError::new(
                "InvalidAction",
                format!("The action {other:?} does not exist in the SCF API."),
            ));
        }
    };
    Ok(answer)
}

/// The actions served here (each has its error list in `error_codes.txt`).
#[cfg(test)]
pub(crate) const SERVED_ACTIONS: &[&str] = &[
    "CreateFunction",
    "GetFunction",
    "ListFunctions",
    "DeleteFunction",
    "UpdateFunctionConfiguration",
    "UpdateFunctionCode",
    "GetFunctionEventInvokeConfig",
    "UpdateFunctionEventInvokeConfig",
    "PutReservedConcurrencyConfig",
    "GetReservedConcurrencyConfig",
    "DeleteReservedConcurrencyConfig",
    "Invoke",
    "ListAsyncEvents",
    "GetAsyncEventStatus",
    "GetRequestStatus",
    "GetAccount",
    "TerminateAsyncEvent",
    "ListNamespaces",
    "CreateNamespace",
    "DeleteNamespace",
];

/// `action` as a metrics label: an SCF action as SCF spells it, or `unknown` for anything else
/// a client sent, so that no client can add label values.
pub fn action_label(action: &str) -> &'static str {
    SCF_ACTIONS
        .iter()
        .find(|&&known| known == action)
        .copied()
        .unwrap_or("unknown")
}

/// Every action of SCF API 2018-04-16, as the official SDK's client names them: one that is
/// not served here is unsupported, not unknown.
const SCF_ACTIONS: &[&str] = &[
    "CopyFunction",
    "CreateAlias",
    "CreateCustomDomain",
    "CreateFunction",
    "CreateNamespace",
    "CreateTrigger",
    "DeleteAlias",
    "DeleteCustomDomain",
    "DeleteFunction",
    "DeleteFunctionVersion",
    "DeleteLayerVersion",
    "DeleteNamespace",
    "DeleteProvisionedConcurrencyConfig",
    "DeleteReservedConcurrencyConfig",
    "DeleteTrigger",
    "GetAccount",
    "GetAlias",
    "GetAsyncEventStatus",
    "GetCustomDomain",
    "GetFunction",
    "GetFunctionAddress",
    "GetFunctionEventInvokeConfig",
    "GetFunctionLogs",
    "GetLayerVersion",
    "GetProvisionedConcurrencyConfig",
    "GetRequestStatus",
    "GetReservedConcurrencyConfig",
    "Invoke",
    "InvokeFunction",
    "ListAliases",
    "ListAsyncEvents",
    "ListCustomDomains",
    "ListFunctions",
    "ListLayerVersions",
    "ListLayers",
    "ListNamespaces",
    "ListTriggers",
    "ListVersionByFunction",
    "PublishLayerVersion",
    "PublishVersion",
    "PutProvisionedConcurrencyConfig",
    "PutReservedConcurrencyConfig",
    "PutTotalConcurrencyConfig",
    "TerminateAsyncEvent",
    "UpdateAlias",
    "UpdateCustomDomain",
    "UpdateFunctionCode",
    "UpdateFunctionConfiguration",
    "UpdateFunctionEventInvokeConfig",
    "UpdateNamespace",
    "UpdateTrigger",
    "UpdateTriggerStatus",
];

fn too_large(action: &str, limit: usize) -> ApiError {
    let what = if action.is_empty() {
        "this call"
    } else {
        action
    };
    ApiError::new(
        "RequestSizeLimitExceeded",
        format!(
            "The request body is larger than the {} that {what} accepts.",
            size_text(limit)
        ),
    )
}

fn size_text(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{} MB", bytes / (1024 * 1024))
    } else {
        format!("{} KB", bytes / 1024)
    }
}

/// Reads the body up to the action's limit. A declared length over it is refused unread.
async fn read_body(action: &str, headers: &HeaderMap, body: Body) -> ApiResult<Bytes> {
    let limit = body_limit(action);
    let declared = header_str(headers, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(action, limit));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(action, limit)),
        Err(e) => {
            let cause = error_chain(e.as_ref());
            Err(ApiError::new(
                "InvalidParameter",
                format!("The request body could not be read: {cause}."),
            ))
        }
    }
}

/// The innermost cause says what happened ("the request body did not arrive within 120s").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

fn read_params(method: &Method, uri: &Uri, body: &Bytes) -> ApiResult<Value> {
    if *method == Method::GET {
        params::check_query_size(uri.query().unwrap_or_default())?;
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(uri.query().unwrap_or_default())?;
        return params::unflatten(&pairs);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            "InvalidParameter",
            format!("The request body is not valid JSON: {e}."),
        )
    })
}

fn serde_urlencoded_pairs(query: &str) -> ApiResult<Vec<(String, String)>> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::new("InvalidParameter", "The query string is malformed."))?,
    )
    .map(|q| q.0)
    .map_err(|_| ApiError::new("InvalidParameter", "The query string is malformed."))
}

#[cfg(test)]
mod tests {
    use super::panics_as_errors;
    use serde_json::json;

    #[tokio::test]
    async fn a_panicking_action_answers_internal_error() {
        let answer = panics_as_errors("Invoke", async {
            if json!(1).is_number() {
                panic!("a bug in an action");
            }
            Ok(json!({}))
        })
        .await;
        assert_eq!(answer.unwrap_err().code, "InternalError");
        let fine = panics_as_errors("Invoke", async { Ok(json!({"Result": 1})) }).await;
        assert_eq!(fine.unwrap(), json!({"Result": 1}));
    }
}
