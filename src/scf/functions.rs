//! Function actions: CreateFunction, GetFunction, ListFunctions, DeleteFunction,
//! UpdateFunctionConfiguration, UpdateFunctionCode and the async invoke config. The rules are
//! the domain's, shared with the console.

use super::Call;
use super::error::{ApiError, ApiResult};
use super::params::{self, parse};
use crate::clock::{TimeFormat, format_time};
use crate::domain::function::{
    CodeFile, CodeInput, ConfigDraft, EnvVar, FunctionDraft, bool_str, validate_function_name,
};
use crate::domain::namespace::{DEFAULT_NAMESPACE, is_valid_namespace_name};
use crate::service;
use crate::store::{Function, FunctionKey, FunctionOrder, FunctionQuery};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

/// The base64 text of a zip package is at most this long (50 MB of zip, as SCF allows).
const ZIP_BASE64_MAX: usize = crate::domain::package::ZIP_MAX_BYTES * 4 / 3 + 4;

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct EnvironmentParam {
    #[serde(default)]
    variables: Vec<VariableParam>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct VariableParam {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

impl EnvironmentParam {
    fn into_vars(self) -> Vec<EnvVar> {
        self.variables
            .into_iter()
            .map(|v| EnvVar {
                key: v.key,
                value: v.value,
            })
            .collect()
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CodeParam {
    zip_file: Option<String>,
    cos_bucket_name: Option<String>,
    cos_object_name: Option<String>,
    cos_bucket_region: Option<String>,
    demo_id: Option<String>,
    temp_cos_object_name: Option<String>,
    git_url: Option<String>,
    git_user_name: Option<String>,
    git_user_name_secret: Option<String>,
    git_password: Option<String>,
    git_password_secret: Option<String>,
    git_branch: Option<String>,
    git_directory: Option<String>,
    git_commit_id: Option<String>,
    image_config: Option<Value>,
}

impl CodeParam {
    /// Only inline zip packages exist here; COS and demo sources need Tencent Cloud.
    fn package(self) -> ApiResult<Vec<CodeFile>> {
        let other = [
            &self.cos_bucket_name,
            &self.cos_object_name,
            &self.cos_bucket_region,
            &self.demo_id,
            &self.temp_cos_object_name,
            &self.git_url,
            &self.git_user_name,
            &self.git_user_name_secret,
            &self.git_password,
            &self.git_password_secret,
            &self.git_branch,
            &self.git_directory,
            &self.git_commit_id,
        ];
        let image = self
            .image_config
            .as_ref()
            .is_some_and(|v| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty()));
        if image
            || other
                .iter()
                .any(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
        {
            return Err(ApiError::new(
                "UnsupportedOperation",
                "scf-console takes code as Code.ZipFile (a base64 zip); COS, Git, image and demo sources are not supported.",
            ));
        }
        match self.zip_file {
            Some(zip) if !zip.is_empty() => unzip(&zip),
            _ => Err(ApiError::new(
                "MissingParameter.Code",
                "Code.ZipFile is required: the function's code as a base64-encoded zip file.",
            )),
        }
    }
}

fn bad_zip(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "InvalidParameterValue.ZipFile",
        format!("Code.ZipFile is not a usable zip package: {why}."),
    )
}

/// Unpacks a base64 zip into files, by the package rules the console's upload follows too.
fn unzip(base64_zip: &str) -> ApiResult<Vec<CodeFile>> {
    if base64_zip.len() > ZIP_BASE64_MAX {
        return Err(bad_zip("it is larger than 50 MB"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_zip.trim())
        .map_err(|_| bad_zip("it is not valid base64"))?;
    crate::domain::package::unzip(&bytes).map_err(bad_zip)
}

/// The namespace a call names (default `default`), checked to exist.
async fn namespace(call: &Call<'_>, given: Option<String>) -> ApiResult<String> {
    let name = namespace_name(given)?;
    service::namespaces::get(call.state, &call.region, &name).await?;
    Ok(name)
}

/// The namespace a call names, `default` when it names none.
fn namespace_name(given: Option<String>) -> ApiResult<String> {
    let name = given
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    if !is_valid_namespace_name(&name) {
        return Err(ApiError::new(
            "InvalidParameterValue.Namespace",
            "Namespace names are 1-30 characters of letters, digits, - and _.",
        ));
    }
    Ok(name)
}

/// Only `$LATEST` exists: scf-console does not publish versions. The actions name a missing
/// version differently (DeleteFunction: `ResourceNotFound.Qualifier`); each gets its own.
pub(super) fn check_qualifier(action: &str, qualifier: Option<&str>) -> ApiResult<()> {
    match qualifier {
        None | Some("") | Some("$LATEST") => Ok(()),
        Some(q) => {
            let code = [
                "ResourceNotFound.Version",
                "ResourceNotFound.Qualifier",
                "ResourceNotFound.FunctionVersion",
            ]
            .into_iter()
            .find(|code| ApiError::is_listed(action, code))
            .unwrap_or("ResourceNotFound");
            Err(ApiError::new(
                code,
                format!("Version {q} does not exist; scf-console serves $LATEST only."),
            ))
        }
    }
}

/// Looks a function up by the name a call gives, once the names are well formed.
pub(super) async fn function(
    call: &Call<'_>,
    name: &str,
    namespace_name: Option<String>,
) -> ApiResult<Function> {
    let key = function_key(call, name, namespace_name)?;
    Ok(service::functions::get(call.state, &key).await?)
}

/// As [`function`], but a function deleted in the last 72 hours is still found when no other
/// has taken its name: the queries of its events' status answer for it.
pub(super) async fn function_or_deleted(
    call: &Call<'_>,
    name: &str,
    namespace_name: Option<String>,
) -> ApiResult<Function> {
    let key = function_key(call, name, namespace_name)?;
    Ok(service::functions::get_or_deleted(call.state, &key).await?)
}

/// The key a call names, once the names are well formed.
pub(super) fn function_key(
    call: &Call<'_>,
    name: &str,
    namespace_name: Option<String>,
) -> ApiResult<FunctionKey> {
    let namespace = self::namespace_name(namespace_name)?;
    validate_function_name(name).map_err(ApiError::from)?;
    Ok(FunctionKey {
        region: call.region.clone(),
        namespace,
        name: name.to_string(),
    })
}

fn environment_json(vars: &[EnvVar]) -> Value {
    json!({ "Variables": vars })
}

fn int_text(v: Option<i64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateFunctionRequest {
    function_name: String,
    code: Option<CodeParam>,
    handler: Option<String>,
    description: Option<String>,
    #[serde(default, deserialize_with = "params::int")]
    memory_size: Option<i64>,
    #[serde(default, deserialize_with = "params::int")]
    timeout: Option<i64>,
    environment: Option<EnvironmentParam>,
    runtime: Option<String>,
    namespace: Option<String>,
    #[serde(rename = "Type")]
    kind: Option<String>,
    install_dependency: Option<String>,
    code_source: Option<String>,
    async_run_enable: Option<String>,
    trace_enable: Option<String>,
    public_net_config: Option<PublicNetParam>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct EipConfigParam {
    eip_status: Option<String>,
    /// What GetFunction answers beside the status; sent back by read-modify-write clients.
    #[serde(default)]
    eip_address: Vec<String>,
}

/// SCF's PublicNetConfig: `PublicNetStatus` `ENABLE` or `DISABLE`; a fixed public IP (EIP)
/// is not offered, so `EipConfig` may only say `DISABLE`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PublicNetParam {
    public_net_status: Option<String>,
    eip_config: Option<EipConfigParam>,
}

impl PublicNetParam {
    /// The setting as a draft's flag, or the draft's own when the status is left out.
    fn into_flag(self, current: String) -> ApiResult<String> {
        let fixed_ip = self.eip_config.is_some_and(|e| {
            !e.eip_address.is_empty()
                || e.eip_status
                    .is_some_and(|s| !s.is_empty() && !s.eq_ignore_ascii_case("DISABLE"))
        });
        if fixed_ip {
            return Err(ApiError::new(
                "UnsupportedOperation",
                "scf-console has no fixed public IPs: EipConfig.EipStatus can only be DISABLE.",
            ));
        }
        match self
            .public_net_status
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("") => Ok(current),
            Some("ENABLE") => Ok(bool_str(true).into()),
            Some("DISABLE") => Ok(bool_str(false).into()),
            Some(_) => Err(ApiError::new(
                "InvalidParameterValue.PublicNetConfig",
                "PublicNetConfig.PublicNetStatus is ENABLE or DISABLE.",
            )),
        }
    }
}

fn public_net_json(f: &Function) -> Value {
    json!({
        "PublicNetStatus": if f.public_net { "ENABLE" } else { "DISABLE" },
        "EipConfig": { "EipStatus": "DISABLE", "EipAddress": [] },
    })
}

/// SCF's defaults for what CreateFunction leaves out.
const DEFAULT_RUNTIME: &str = "Python3.6";
const DEFAULT_HANDLER: &str = "index.main_handler";

pub async fn create(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: CreateFunctionRequest = parse(call.action, params)?;
    if req
        .kind
        .as_deref()
        .is_some_and(|t| !t.is_empty() && t != "Event")
    {
        return Err(ApiError::new(
            "UnsupportedOperation",
            "scf-console runs event functions only (Type Event).",
        ));
    }
    let _ = (&req.install_dependency, &req.code_source);
    let namespace = namespace(call, req.namespace).await?;
    let package = req
        .code
        .ok_or_else(|| {
            ApiError::new(
                "MissingParameter.Code",
                "Code is required: pass Code.ZipFile, the function's code as a base64-encoded zip file.",
            )
        })?
        .package()?;
    let async_run = req.async_run_enable.unwrap_or_default();
    let draft = FunctionDraft {
        function_name: req.function_name,
        runtime: req.runtime.unwrap_or_else(|| DEFAULT_RUNTIME.into()),
        handler: req.handler.unwrap_or_else(|| DEFAULT_HANDLER.into()),
        code: String::new(),
        package: Some(package),
        async_run_enable: async_run,
        config: ConfigDraft {
            description: req.description.unwrap_or_default(),
            memory_size: int_text(req.memory_size),
            timeout: int_text(req.timeout),
            environment: req.environment.unwrap_or_default().into_vars(),
            trace_enable: req.trace_enable.unwrap_or_default(),
            retry_num: String::new(),
            msg_ttl: String::new(),
            qps_limit: String::new(),
            public_net: match req.public_net_config {
                Some(p) => p.into_flag(bool_str(true).into())?,
                None => bool_str(true).into(),
            },
        },
    };
    service::functions::create(call.state, &call.region, &namespace, &draft).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GetFunctionRequest {
    function_name: Option<String>,
    qualifier: Option<String>,
    namespace: Option<String>,
    show_code: Option<String>,
}

fn function_id(f: &Function) -> String {
    format!("lam-{:08x}", f.id)
}

pub async fn get(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: GetFunctionRequest = parse(call.action, params)?;
    let Some(function_name) = req.function_name.filter(|n| !n.is_empty()) else {
        return Err(ApiError::new(
            "InvalidParameter.FunctionNameOrResourceIdRequired",
            "GetFunction needs a FunctionName.",
        ));
    };
    check_qualifier(call.action, req.qualifier.as_deref())?;
    let _ = req.show_code;
    let f = function(call, &function_name, req.namespace).await?;
    let code_size: usize = call
        .state
        .store
        .get_code(f.id)
        .await?
        .iter()
        .map(|c| c.content.len())
        .sum();
    let tz = call.tz();
    let mut answer = json!({
        "FunctionName": f.name,
        "FunctionId": function_id(&f),
        "Namespace": f.namespace,
        "Runtime": f.runtime,
        "Handler": f.handler,
        "Description": f.description,
        "MemorySize": f.memory_size,
        "Timeout": f.timeout,
        "Environment": environment_json(&f.environment),
        "AsyncRunEnable": bool_str(f.async_run_enable),
        "TraceEnable": bool_str(f.trace_enable),
        "CodeSize": code_size,
        "CodeInfo": "",
        "CodeResult": "success",
        "CodeError": "",
        "ErrNo": 0,
        "Status": "Active",
        "StatusDesc": "",
        "AvailableStatus": "Available",
        "Qualifier": "$LATEST",
        "FunctionVersion": "$LATEST",
        "Type": "Event",
        "InstallDependency": "FALSE",
        "L5Enable": "FALSE",
        "OnsEnable": "FALSE",
        "PublicNetConfig": public_net_json(&f),
        "UseGpu": "FALSE",
        "Triggers": [],
        "Layers": [],
        "Tags": [],
        "StatusReasons": [],
        "AddTime": format_time(f.created_at, tz, TimeFormat::DateTime),
        "ModTime": format_time(f.modified_at, tz, TimeFormat::DateTime),
    });
    if let (Value::Object(answer), Value::Object(absent)) = (&mut answer, absent_features()) {
        answer.extend(absent);
    }
    Ok(answer)
}

/// What SCF answers for features a function does not use: present and empty, so clients read
/// `resp.VpcConfig.VpcId` and can send the same values back.
fn absent_features() -> Value {
    json!({
        "VpcConfig": {"VpcId": "", "SubnetId": ""},
        "Role": "",
        "ClsLogsetId": "",
        "ClsTopicId": "",
        "EipConfig": {"EipFixed": "FALSE", "Eips": []},
        "AccessInfo": {"Host": "", "Vip": ""},
        "DeadLetterConfig": {"Type": "", "Name": "", "FilterType": ""},
        "CfsConfig": {"CfsInsList": []},
        "InitTimeout": INIT_TIMEOUT,
        "ImageConfig": {
            "ImageType": "", "ImageUri": "", "RegistryId": "", "EntryPoint": "",
            "Command": "", "Args": "", "ContainerImageAccelerate": false, "ImagePort": 0
        },
        "ProtocolType": "",
        "ProtocolParams": {"WSParams": {"IdleTimeOut": 0}},
        "InstanceConcurrencyConfig": {
            "DynamicEnabled": "FALSE", "MaxConcurrency": 1, "InstanceIsolationEnabled": "FALSE",
            "Type": "", "MixNodeConfig": [], "SessionConfig": {}
        },
        "DnsCache": "FALSE",
        "IntranetConfig": {"IpFixed": "DISABLE", "IpAddress": []},
    })
}

/// SCF's initialization timeout (s) of an event function: the time its code may take to load.
const INIT_TIMEOUT: i64 = 65;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct FilterParam {
    name: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ListFunctionsRequest {
    order: Option<String>,
    orderby: Option<String>,
    #[serde(default, deserialize_with = "params::int")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "params::int")]
    limit: Option<i64>,
    search_key: Option<String>,
    namespace: Option<String>,
    description: Option<String>,
    #[serde(default)]
    filters: Vec<FilterParam>,
}

/// `TRUE`/`FALSE` filter values: one of them narrows the list, both (or none) do not.
fn flag_filter(name: &str, values: &[String]) -> ApiResult<Option<bool>> {
    let mut on = false;
    let mut off = false;
    for v in values {
        match v.to_ascii_uppercase().as_str() {
            "TRUE" => on = true,
            "FALSE" => off = true,
            _ => {
                return Err(ApiError::new(
                    "InvalidParameterValue.Filters",
                    format!("Filter {name} takes TRUE or FALSE, not {v:?}."),
                ));
            }
        }
    }
    Ok(if on == off { None } else { Some(on) })
}

pub async fn list(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: ListFunctionsRequest = parse(call.action, params)?;
    let ascending = params::order(req.order.as_deref(), false)?;
    let order_by = match req.orderby.as_deref() {
        None | Some("") | Some("AddTime") => FunctionOrder::AddTime,
        Some("ModTime") => FunctionOrder::ModTime,
        Some("FunctionName") => FunctionOrder::FunctionName,
        Some(_) => {
            return Err(ApiError::new(
                // Not a code of its own in SCF's list for this action.
                "InvalidParameterValue",
                "Orderby is AddTime, ModTime or FunctionName.",
            ));
        }
    };
    let offset = params::offset(req.offset)?;
    let limit = params::limit(req.limit, 0)?;
    let mut query = FunctionQuery {
        search: req.search_key.unwrap_or_default(),
        description: req.description.unwrap_or_default(),
        order_by,
        ascending,
        offset,
        limit,
        ..FunctionQuery::default()
    };
    if req.filters.len() > 10 {
        return Err(ApiError::new(
            "InvalidParameterValue.Filters",
            "At most 10 filters are allowed.",
        ));
    }
    for filter in &req.filters {
        if filter.values.len() > 5 {
            return Err(ApiError::new(
                "InvalidParameterValue.Filters",
                format!("Filter {} takes at most 5 values.", filter.name),
            ));
        }
        // A value every function here has (or none has) narrows the list to all (or none).
        let every_function_has = |value: &str| filter.values.iter().any(|v| v == value);
        match filter.name.as_str() {
            "Runtime" => query.runtimes.extend(filter.values.iter().cloned()),
            "AsyncRunEnable" => query.async_run_enable = flag_filter(&filter.name, &filter.values)?,
            "TraceEnable" => query.trace_enable = flag_filter(&filter.name, &filter.values)?,
            "PublicNetStatus" => {
                let on = filter
                    .values
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case("ENABLE"));
                let off = filter
                    .values
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case("DISABLE"));
                query.public_net = (on != off).then_some(on);
                query.matches_nothing |= !on && !off;
            }
            // Every function here is an active event function.
            "Status" => query.matches_nothing |= !every_function_has("Active"),
            "Type" | "FunctionType" => query.matches_nothing |= !every_function_has("Event"),
            // Features no function here uses: a filter on them matches none.
            "VpcId" | "SubnetId" | "ClsTopicId" | "ClsLogsetId" | "Role" | "CfsId"
            | "CfsMountInsId" | "Eip" | "Stamp" => query.matches_nothing = true,
            tag if tag.starts_with("tag-") || tag.starts_with("tag:") => {
                query.matches_nothing = true
            }
            other => {
                return Err(ApiError::new(
                    "InvalidParameterValue.Filters",
                    format!(
                        "Filter {other} is not one of SCF's: Status, Runtime, Type, PublicNetStatus, AsyncRunEnable, TraceEnable, Stamp, VpcId, SubnetId, ClsTopicId, ClsLogsetId, Role, CfsId, CfsMountInsId, Eip or tag-<key>."
                    ),
                ));
            }
        }
    }
    let namespace = namespace(call, req.namespace).await?;
    let page = call
        .state
        .store
        .list_functions(&call.region, &namespace, &query)
        .await?;
    let tz = call.tz();
    let functions: Vec<Value> = page
        .functions
        .iter()
        .map(|f| {
            json!({
                "FunctionName": f.name,
                "FunctionId": function_id(f),
                "Namespace": f.namespace,
                "Runtime": f.runtime,
                "Description": f.description,
                "Status": "Active",
                "StatusDesc": "",
                "StatusReasons": [],
                "Type": "Event",
                "Tags": [],
                "AsyncRunEnable": bool_str(f.async_run_enable),
                "TraceEnable": bool_str(f.trace_enable),
                "ReservedConcurrencyMem": f.reserved_mem.unwrap_or(0),
                "TotalProvisionedConcurrencyMem": 0,
                "AddTime": format_time(f.created_at, tz, TimeFormat::DateTime),
                "ModTime": format_time(f.modified_at, tz, TimeFormat::DateTime),
            })
        })
        .collect();
    Ok(json!({ "Functions": functions, "TotalCount": page.total }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteFunctionRequest {
    function_name: String,
    namespace: Option<String>,
    qualifier: Option<String>,
}

pub async fn delete(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: DeleteFunctionRequest = parse(call.action, params)?;
    check_qualifier(call.action, req.qualifier.as_deref())?;
    let f = function(call, &req.function_name, req.namespace).await?;
    service::functions::delete(call.state, &f).await?;
    Ok(json!({}))
}

async fn save_config(call: &Call<'_>, f: &Function, draft: &ConfigDraft) -> ApiResult<Value> {
    service::functions::update_configuration(call.state, f, draft).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct UpdateConfigurationRequest {
    function_name: String,
    description: Option<String>,
    #[serde(default, deserialize_with = "params::int")]
    memory_size: Option<i64>,
    #[serde(default, deserialize_with = "params::int")]
    timeout: Option<i64>,
    runtime: Option<String>,
    environment: Option<EnvironmentParam>,
    namespace: Option<String>,
    install_dependency: Option<String>,
    publish: Option<String>,
    /// Not in the SDK's model, but SCF accepts it here, and so do we.
    trace_enable: Option<String>,
    public_net_config: Option<PublicNetParam>,
}

pub async fn update_configuration(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: UpdateConfigurationRequest = parse(call.action, params)?;
    let f = function(call, &req.function_name, req.namespace).await?;
    if let Some(runtime) = req
        .runtime
        .as_deref()
        .filter(|r| !r.is_empty() && *r != f.runtime)
    {
        return Err(ApiError::new(
            "InvalidParameterValue.Runtime",
            format!(
                "The runtime of {} is {}; changing it to {runtime} is not supported. Create a new function instead.",
                f.name, f.runtime
            ),
        ));
    }
    if req
        .publish
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("TRUE"))
    {
        return Err(ApiError::new(
            "UnsupportedOperation",
            "scf-console does not publish versions; leave Publish unset.",
        ));
    }
    let _ = req.install_dependency;
    let mut draft = f.config_draft();
    if let Some(d) = req.description {
        draft.description = d;
    }
    if req.memory_size.is_some() {
        draft.memory_size = int_text(req.memory_size);
    }
    if req.timeout.is_some() {
        draft.timeout = int_text(req.timeout);
    }
    if let Some(env) = req.environment {
        draft.environment = env.into_vars();
    }
    if let Some(t) = req.trace_enable {
        draft.trace_enable = t;
    }
    if let Some(p) = req.public_net_config {
        draft.public_net = p.into_flag(draft.public_net)?;
    }
    save_config(call, &f, &draft).await
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct UpdateCodeRequest {
    function_name: String,
    handler: Option<String>,
    zip_file: Option<String>,
    code: Option<CodeParam>,
    namespace: Option<String>,
    install_dependency: Option<String>,
    publish: Option<String>,
    code_source: Option<String>,
    cos_bucket_name: Option<String>,
    cos_object_name: Option<String>,
    cos_bucket_region: Option<String>,
}

pub async fn update_code(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: UpdateCodeRequest = parse(call.action, params)?;
    let f = function(call, &req.function_name, req.namespace).await?;
    let _ = (&req.install_dependency, &req.publish, &req.code_source);
    // The zip comes either at the top level (the older form) or inside Code.
    let code = match (req.zip_file.filter(|z| !z.is_empty()), req.code) {
        (Some(zip), _) => CodeParam {
            zip_file: Some(zip),
            cos_bucket_name: req.cos_bucket_name,
            cos_object_name: req.cos_object_name,
            cos_bucket_region: req.cos_bucket_region,
            ..CodeParam::default()
        },
        (None, Some(code)) => code,
        (None, None) => CodeParam {
            cos_bucket_name: req.cos_bucket_name,
            cos_object_name: req.cos_object_name,
            cos_bucket_region: req.cos_bucket_region,
            ..CodeParam::default()
        },
    };
    // UpdateFunctionCode's own code for a request without code.
    let package = code.package().map_err(|e| match e.code.as_str() {
        "MissingParameter.Code" => ApiError::new("InvalidParameterValue.Code", e.message),
        _ => e,
    })?;
    let handler = req.handler.unwrap_or_else(|| f.handler.clone());
    service::functions::update_code(call.state, &f, &handler, CodeInput::Package(package)).await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GetEventInvokeConfigRequest {
    function_name: String,
    namespace: Option<String>,
    qualifier: Option<String>,
}

pub async fn get_event_invoke_config(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: GetEventInvokeConfigRequest = parse(call.action, params)?;
    check_qualifier(call.action, req.qualifier.as_deref())?;
    let f = function(call, &req.function_name, req.namespace).await?;
    Ok(json!({
        "AsyncTriggerConfig": {
            "RetryConfig": [{ "RetryNum": f.retry_num }],
            "MsgTTL": f.msg_ttl,
        }
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RetryConfigParam {
    #[serde(default, deserialize_with = "params::int")]
    retry_num: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AsyncTriggerConfigParam {
    #[serde(default)]
    retry_config: Vec<RetryConfigParam>,
    #[serde(rename = "MsgTTL", default, deserialize_with = "params::int")]
    msg_ttl: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct UpdateEventInvokeConfigRequest {
    async_trigger_config: AsyncTriggerConfigParam,
    function_name: String,
    namespace: Option<String>,
}

pub async fn update_event_invoke_config(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: UpdateEventInvokeConfigRequest = parse(call.action, params)?;
    let f = function(call, &req.function_name, req.namespace).await?;
    let config = req.async_trigger_config;
    if config.retry_config.len() > 1 {
        return Err(ApiError::new(
            "InvalidParameterValue.AsyncTriggerConfig",
            "AsyncTriggerConfig.RetryConfig holds one entry.",
        ));
    }
    // As on SCF, the whole config is given: its retries and how long an event may wait.
    let (Some(retry_num), Some(msg_ttl)) = (
        config.retry_config.first().and_then(|r| r.retry_num),
        config.msg_ttl,
    ) else {
        return Err(ApiError::new(
            "InvalidParameterValue.AsyncTriggerConfig",
            "AsyncTriggerConfig needs RetryConfig (one entry with RetryNum) and MsgTTL.",
        ));
    };
    let mut draft = f.config_draft();
    draft.retry_num = retry_num.to_string();
    draft.msg_ttl = msg_ttl.to_string();
    save_config(call, &f, &draft).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(files: &[(&str, &str)]) -> String {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            for (name, content) in files {
                w.start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                w.write_all(content.as_bytes()).unwrap();
            }
            w.finish().unwrap();
        }
        base64::engine::general_purpose::STANDARD.encode(buf.into_inner())
    }

    #[test]
    fn packages_unzip_into_files() {
        let files = unzip(&zip_of(&[("index.py", "x = 1"), ("lib/util.py", "y = 2")])).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[1].path, "lib/util.py");
        assert_eq!(files[1].content, b"y = 2");
    }

    #[test]
    fn bad_packages_are_refused() {
        assert_eq!(
            unzip("%%%").unwrap_err().code,
            "InvalidParameterValue.ZipFile"
        );
        assert_eq!(
            unzip("aGVsbG8=").unwrap_err().code,
            "InvalidParameterValue.ZipFile"
        );
        assert!(
            unzip(&zip_of(&[("../evil.py", "x")]))
                .unwrap_err()
                .message
                .contains("unsafe path")
        );
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PutReservedConcurrencyRequest {
    function_name: String,
    #[serde(default, deserialize_with = "params::int")]
    reserved_concurrency_mem: Option<i64>,
    namespace: Option<String>,
}

pub async fn put_reserved_concurrency(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: PutReservedConcurrencyRequest = parse(call.action, params)?;
    let f = function(call, &req.function_name, req.namespace).await?;
    service::functions::put_reservation(call.state, &f, &int_text(req.reserved_concurrency_mem))
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ReservedConcurrencyRequest {
    function_name: String,
    namespace: Option<String>,
}

pub async fn get_reserved_concurrency(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: ReservedConcurrencyRequest = parse(call.action, params)?;
    let f = function(call, &req.function_name, req.namespace).await?;
    // SCF answers null for a function without a reservation.
    Ok(json!({ "ReservedMem": f.reserved_mem }))
}

pub async fn delete_reserved_concurrency(call: &Call<'_>, params: Value) -> ApiResult<Value> {
    let req: ReservedConcurrencyRequest = parse(call.action, params)?;
    let f = function(call, &req.function_name, req.namespace).await?;
    service::functions::delete_reservation(call.state, &f).await?;
    Ok(json!({}))
}
