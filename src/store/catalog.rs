//! The catalog: namespaces, functions with their code, API keys and namespace billing; what
//! the console and the API create, change and delete.

use super::StoreResult;
use crate::clock::Millis;
use crate::domain::event::TimelineEntry;
use crate::domain::function::{CodeFile, Function, FunctionKey};
use crate::domain::function::{CodeUpdate, FunctionConfig, NewFunction};
use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Namespace {
    pub region: String,
    pub name: String,
    pub description: String,
    pub created_at: Millis,
    pub function_count: i64,
}

/// How the function list is sorted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FunctionOrder {
    #[default]
    AddTime,
    ModTime,
    FunctionName,
}

/// A page of the function list, with the SCF ListFunctions filters.
#[derive(Debug, Clone, Default)]
pub struct FunctionQuery {
    /// Substring of the name, case-insensitive.
    pub search: String,
    /// Substring of the description, case-insensitive.
    pub description: String,
    /// Only these runtimes, when not empty.
    pub runtimes: Vec<String>,
    pub async_run_enable: Option<bool>,
    pub trace_enable: Option<bool>,
    /// Whether its instances may reach the network (SCF's PublicNetStatus).
    pub public_net: Option<bool>,
    /// A filter no function can match (a VPC, a tag, a status other than Active): none.
    pub matches_nothing: bool,
    pub order_by: FunctionOrder,
    pub ascending: bool,
    pub offset: u32,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub secret_id: String,
    pub secret_key: String,
    pub description: String,
    pub enabled: bool,
    pub created_at: Millis,
    /// The user the key acts for; `None` only for keys made before users existed, until the
    /// first admin adopts them.
    pub owner: Option<String>,
    /// Acts as read-only whatever its owner's role.
    pub read_only: bool,
    /// The owner's role when the key was read (not written).
    pub owner_role: Option<crate::domain::user::Role>,
}

impl ApiKey {
    /// The role calls signed with this key act with: the owner's, or read-only if the key is
    /// made so; a key without an owner acts for no one.
    pub fn role(&self) -> Option<crate::domain::user::Role> {
        use crate::domain::user::Role;
        let role = self.owner_role?;
        Some(if self.read_only {
            role.at_most(Role::ReadOnly)
        } else {
            role
        })
    }
}

#[derive(Debug, Clone)]
pub struct Reservation {
    pub function_id: i64,
    pub reserved_mem: u32,
    pub memory_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionPage {
    pub functions: Vec<Function>,
    pub total: i64,
}

/// A namespace's billing state, checked before an invocation is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Billing {
    pub suspended: bool,
    pub invocation_quota: Option<i64>,
    pub invocations_used: i64,
}

fn quota_used(namespace: &str, quota: i64) -> String {
    format!(
        "Namespace {namespace} has used its invocation quota ({quota}); raise the quota to invoke again."
    )
}

impl Billing {
    /// Why the namespace's invocations are refused, if they are: the rule the engine applies
    /// to every invocation and the console shows on every page of the namespace beforehand.
    pub fn refusal(&self, namespace: &str) -> Option<String> {
        if self.suspended {
            return Some(format!(
                "Namespace {namespace} is suspended: its invocations are refused until it is resumed."
            ));
        }
        match self.invocation_quota {
            Some(quota) if self.invocations_used >= quota => Some(quota_used(namespace, quota)),
            _ => None,
        }
    }

    /// Why an accept the store refused for the quota was refused, as the namespace's billing
    /// now reads: the quota may have been raised meanwhile, or removed.
    pub fn quota_refusal(&self, namespace: &str) -> String {
        self.refusal(namespace)
            .unwrap_or_else(|| quota_used(namespace, self.invocation_quota.unwrap_or(0)))
    }
}

#[async_trait]
pub trait Catalog: Send + Sync {
    /// Creates a namespace if missing; used for `default` in every region at start.
    async fn ensure_namespace(&self, region: &str, name: &str, now: Millis) -> StoreResult<()>;

    async fn list_namespaces(&self, region: &str) -> StoreResult<Vec<Namespace>>;

    async fn get_namespace(&self, region: &str, name: &str) -> StoreResult<Option<Namespace>>;

    /// Fails with `Conflict` when the name is taken in the region.
    async fn create_namespace(
        &self,
        region: &str,
        name: &str,
        description: &str,
        now: Millis,
    ) -> StoreResult<Namespace>;

    /// Fails with `NotEmpty` while the namespace holds functions, so nothing is lost by accident.
    async fn delete_namespace(&self, region: &str, name: &str) -> StoreResult<()>;

    async fn list_functions(
        &self,
        region: &str,
        namespace: &str,
        query: &FunctionQuery,
    ) -> StoreResult<FunctionPage>;

    async fn get_function(&self, key: &FunctionKey) -> StoreResult<Option<Function>>;

    async fn get_code(&self, function_id: i64) -> StoreResult<Vec<CodeFile>>;

    /// Fails with `Conflict` when the name is taken in the namespace, `NotFound` when the
    /// namespace does not exist.
    async fn create_function(
        &self,
        region: &str,
        namespace: &str,
        function: &NewFunction,
        now: Millis,
    ) -> StoreResult<Function>;

    /// Saves the settings; `trace_disabled_at` as [`Function::trace_disabled_after`] decides.
    async fn update_function_config(
        &self,
        key: &FunctionKey,
        config: &FunctionConfig,
        trace_disabled_at: Option<Millis>,
        now: Millis,
    ) -> StoreResult<Function>;

    async fn update_function_code(
        &self,
        key: &FunctionKey,
        code: &CodeUpdate,
        now: Millis,
    ) -> StoreResult<Function>;

    /// Deletes a function: its name is free at once, while its events stay readable (as SCF
    /// keeps status records 72 hours) until the sweeper removes the function and them. Its
    /// queued and running events end now, ABORTED with `status_code` and `aborted` on their
    /// timelines.
    async fn delete_function(
        &self,
        key: &FunctionKey,
        aborted: &TimelineEntry,
        status_code: i64,
    ) -> StoreResult<()>;

    /// The most recently deleted function of this name the store still keeps, for the
    /// queries of its events.
    async fn get_deleted_function(&self, key: &FunctionKey) -> StoreResult<Option<Function>>;

    /// Fails with `Conflict` when the SecretId exists.
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()>;

    /// Creates or replaces a key given by configuration, enabling it.
    async fn put_api_key(&self, key: &ApiKey) -> StoreResult<()>;

    async fn get_api_key(&self, secret_id: &str) -> StoreResult<Option<ApiKey>>;

    /// Every key, or those of one owner.
    async fn list_api_keys(&self, owner: Option<&str>) -> StoreResult<Vec<ApiKey>>;

    async fn set_api_key_enabled(&self, secret_id: &str, enabled: bool) -> StoreResult<()>;

    async fn delete_api_key(&self, secret_id: &str) -> StoreResult<()>;

    async fn get_function_by_id(&self, id: i64) -> StoreResult<Option<Function>>;

    /// The functions of these ids that the store keeps (deleted ones too), in one read.
    async fn get_functions_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<Function>>;

    /// Sets (`Some`) or removes a function's reserved concurrency, in MB. Not a change of the
    /// function: its modification time, and so its warm instances, stay.
    async fn set_reserved_concurrency(
        &self,
        key: &FunctionKey,
        reserved_mem: Option<u32>,
    ) -> StoreResult<Function>;

    /// Every function with a reservation: `(id, reserved MB, MemorySize)`.
    async fn reservations(&self) -> StoreResult<Vec<Reservation>>;

    async fn namespace_billing(
        &self,
        region: &str,
        namespace: &str,
    ) -> StoreResult<Option<Billing>>;

    async fn set_namespace_billing(
        &self,
        region: &str,
        namespace: &str,
        suspended: bool,
        invocation_quota: Option<i64>,
    ) -> StoreResult<()>;
}
