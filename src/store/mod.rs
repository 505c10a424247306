//! The store interface: everything scf-console keeps, behind one trait so that SQLite (the
//! embedded default) and a server database can stand behind it alike.

pub mod sqlite;

use crate::clock::Millis;
use crate::domain::function::{CodeUpdate, EnvVar, FunctionConfig, NewFunction};
use crate::domain::runtime::Runtime;
use async_trait::async_trait;
use std::sync::Arc;

/// Errors a caller can act on; anything else is a database failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique name is taken.
    #[error("already exists")]
    Conflict,
    /// A namespace still holds functions.
    #[error("namespace is not empty")]
    NotEmpty,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Where a function lives: region, namespace and name together identify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionKey {
    pub region: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub region: String,
    pub name: String,
    pub description: String,
    pub created_at: Millis,
    pub function_count: i64,
}

/// A stored function's settings (its code is read separately, only where it is shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub id: i64,
    pub region: String,
    pub namespace: String,
    pub name: String,
    pub runtime: String,
    pub handler: String,
    pub description: String,
    pub memory_size: u32,
    pub timeout: u32,
    pub environment: Vec<EnvVar>,
    pub async_run_enable: bool,
    pub trace_enable: bool,
    pub retry_num: u32,
    pub msg_ttl: u32,
    pub qps_limit: u32,
    /// When status trace was last turned off; its records age out from then.
    pub trace_disabled_at: Option<Millis>,
    pub created_at: Millis,
    pub modified_at: Millis,
}

impl Function {
    pub fn runtime(&self) -> Option<&'static Runtime> {
        Runtime::by_name(&self.runtime)
    }

    pub fn key(&self) -> FunctionKey {
        FunctionKey {
            region: self.region.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

pub use crate::domain::function::CodeFile;

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
}

#[derive(Debug, Clone)]
pub struct FunctionPage {
    pub functions: Vec<Function>,
    pub total: i64,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
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
    async fn update_function_config(
        &self,
        key: &FunctionKey,
        config: &FunctionConfig,
        now: Millis,
    ) -> StoreResult<Function>;
    async fn update_function_code(
        &self,
        key: &FunctionKey,
        code: &CodeUpdate,
        now: Millis,
    ) -> StoreResult<Function>;
    async fn delete_function(&self, key: &FunctionKey) -> StoreResult<()>;

    /// Fails with `Conflict` when the SecretId exists.
    async fn create_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    /// Creates or replaces a key given by configuration, enabling it.
    async fn put_api_key(&self, key: &ApiKey) -> StoreResult<()>;
    async fn get_api_key(&self, secret_id: &str) -> StoreResult<Option<ApiKey>>;
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>>;
    async fn set_api_key_enabled(&self, secret_id: &str, enabled: bool) -> StoreResult<()>;
    async fn delete_api_key(&self, secret_id: &str) -> StoreResult<()>;

    /// Flushes and closes connections on shutdown.
    async fn close(&self);
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store a database URL names, creating and migrating it.
pub async fn open(url: &str) -> anyhow::Result<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        anyhow::bail!(
            "PostgreSQL is not supported by this version of scf-console yet; use a sqlite:// URL"
        )
    } else {
        anyhow::bail!("DATABASE_URL must start with sqlite:// (got {url:?})")
    }
}
