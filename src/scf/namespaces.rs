//! Namespace actions: ListNamespaces, CreateNamespace, DeleteNamespace; and GetAccount, the
//! region's usage and limits across namespaces.

use super::Call;
use super::error::{ApiError, ApiResult};
use super::params::{self, parse};
use crate::clock::{TimeFormat, format_time};
use crate::domain::function::{
    MEMORY_DEFAULT, MSG_TTL_MAX, MSG_TTL_MIN, RETRY_NUM_MAX, TIMEOUT_MAX_ASYNC,
};
use crate::service;
use crate::store::FunctionQuery;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct SearchKeyParam {
    key: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ListNamespacesRequest {
    #[serde(default, deserialize_with = "params::int")]
    limit: Option<i64>,
    #[serde(default, deserialize_with = "params::int")]
    offset: Option<i64>,
    orderby: Option<String>,
    order: Option<String>,
    #[serde(default)]
    search_key: Vec<SearchKeyParam>,
}

pub async fn list(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: ListNamespacesRequest = parse(call.action, params)?;
    let limit = params::limit(req.limit, 0)?;
    let offset = params::offset(req.offset)?;
    let descending = !params::order(req.order.as_deref(), true)?;
    let mut namespaces = call.state.store.list_namespaces(&call.region).await?;
    for key in &req.search_key {
        let value = key.value.to_lowercase();
        match key.key.as_str() {
            "Namespace" => namespaces.retain(|n| n.name.to_lowercase().contains(&value)),
            "Description" => namespaces.retain(|n| n.description.to_lowercase().contains(&value)),
            other => {
                return Err(ApiError::new(
                    "InvalidParameterValue.SearchKey",
                    format!(
                        "SearchKey.Key {other:?} is not supported; use Namespace or Description."
                    ),
                ));
            }
        }
    }
    // A region holds few namespaces: sorting and paging them here is simplest.
    match req.orderby.as_deref() {
        None | Some("") | Some("Name") => namespaces.sort_by(|a, b| a.name.cmp(&b.name)),
        Some("Updatetime") => namespaces.sort_by_key(|n| n.created_at),
        Some(_) => {
            return Err(ApiError::new(
                // Not a code of its own in SCF's list for this action.
                "InvalidParameterValue",
                "Orderby is Name or Updatetime.",
            ));
        }
    }
    if descending {
        namespaces.reverse();
    }
    let total = namespaces.len();
    let tz = call.tz();
    let page: Vec<Value> = namespaces
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .map(|n| {
            json!({
                "Name": n.name,
                "Description": n.description,
                "Type": "default",
                "AddTime": format_time(n.created_at, tz, TimeFormat::DateTime),
                "ModTime": format_time(n.created_at, tz, TimeFormat::DateTime),
            })
        })
        .collect();
    Ok(json!({ "Namespaces": page, "TotalCount": total }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateNamespaceRequest {
    namespace: String,
    description: Option<String>,
}

pub async fn create(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: CreateNamespaceRequest = parse(call.action, params)?;
    let description = req.description.unwrap_or_default();
    service::namespaces::create(call.state, &call.region, &req.namespace, &description).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteNamespaceRequest {
    namespace: String,
}

pub async fn delete(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: DeleteNamespaceRequest = parse(call.action, params)?;
    service::namespaces::delete(call.state, &call.region, &req.namespace).await?;
    Ok(json!({}))
}

/// GetAccount: the region's usage and limits, as deploy tools read them. Concurrency is in MB
/// as SCF counts it: this console runs `SCF_WORKERS` events at once, counted at the default
/// memory size, and what reservations hold of it.
pub async fn account(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct GetAccountRequest {}
    let _: GetAccountRequest = parse(call.action, params)?;
    let workers = call.state.engine.workers();
    let total_mem = u64::from(workers) * u64::from(MEMORY_DEFAULT);
    let namespaces = call.state.store.list_namespaces(&call.region).await?;
    let mut usage = Vec::with_capacity(namespaces.len());
    let mut limits = Vec::with_capacity(namespaces.len());
    let mut allocated_total: u64 = 0;
    for n in &namespaces {
        let page = call
            .state
            .store
            .list_functions(
                &call.region,
                &n.name,
                &FunctionQuery {
                    limit: ACCOUNT_FUNCTIONS_LISTED,
                    ..FunctionQuery::default()
                },
            )
            .await?;
        let allocated: u64 = page
            .functions
            .iter()
            .filter_map(|f| f.reserved_mem)
            .map(u64::from)
            .sum();
        allocated_total += allocated;
        usage.push(json!({
            "Functions": page.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            "Namespace": n.name,
            "FunctionsCount": n.function_count,
            "TotalConcurrencyMem": total_mem,
            "TotalAllocatedConcurrencyMem": allocated,
            "TotalAllocatedProvisionedMem": 0,
        }));
        limits.push(json!({
            "FunctionsCount": n.function_count,
            "Trigger": {
                "Cos": 0, "Timer": 0, "Cmq": 0, "Total": 0, "Ckafka": 0, "Apigw": 0,
                "Cls": 0, "Clb": 0, "Mps": 0, "Cm": 0, "Vod": 0, "Eb": 0
            },
            "Namespace": n.name,
            "ConcurrentExecutions": workers,
            "TimeoutLimit": TIMEOUT_MAX_ASYNC,
            "TestModelLimit": 0,
            "InitTimeoutLimit": 300,
            "RetryNumLimit": RETRY_NUM_MAX,
            "MinMsgTTL": MSG_TTL_MIN,
            "MaxMsgTTL": MSG_TTL_MAX,
        }));
    }
    Ok(json!({
        "AccountUsage": {
            "NamespacesCount": namespaces.len(),
            "Namespace": usage,
            "TotalConcurrencyMem": total_mem,
            "TotalAllocatedConcurrencyMem": allocated_total,
            "UserConcurrencyMemLimit": total_mem,
        },
        "AccountLimit": {
            "NamespacesCount": namespaces.len(),
            "Namespace": limits,
        },
    }))
}

/// GetAccount names at most this many functions per namespace (it counts them all).
const ACCOUNT_FUNCTIONS_LISTED: u32 = 1000;
