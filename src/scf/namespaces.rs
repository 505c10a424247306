//! Namespace actions: ListNamespaces, CreateNamespace, DeleteNamespace.

use super::Call;
use super::error::{ApiError, ApiResult};
use super::params::{self, parse};
use crate::clock::{TimeFormat, format_time};
use crate::service;
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
                "InvalidParameterValue.Orderby",
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
