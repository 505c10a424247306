//! The frame around every console page: sidebar, region selector and namespace selector.

use super::urls;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// Which sidebar entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Functions,
    Namespaces,
    ApiKeys,
    Users,
    Audit,
    Account,
    System,
}

/// What the frame shows; every page template has one, and `base.html` renders it.
#[derive(Debug, Clone)]
pub struct Shell {
    pub region: String,
    pub namespace: String,
    pub regions: Vec<String>,
    pub namespaces: Vec<String>,
    pub section: Section,
    /// The `<title>` and the page heading.
    pub title: String,
    /// Why this namespace's invocations are refused (suspended, quota used), said on every page
    /// before anyone tries.
    pub billing: Option<String>,
}

impl Shell {
    /// Checks that the region is offered and the namespace exists, and gathers the selectors'
    /// choices. An unknown region or namespace is a 404 that says which one.
    pub async fn load(
        state: &AppState,
        region: &str,
        namespace: &str,
        section: Section,
        title: impl Into<String>,
    ) -> AppResult<Shell> {
        if !state.regions.iter().any(|r| r == region) {
            return Err(AppError::NotFound(format!(
                "Region {region} is not offered by this console. Choose one of: {}.",
                state.regions.join(", ")
            )));
        }
        let namespaces: Vec<String> = state
            .store
            .list_namespaces(region)
            .await?
            .into_iter()
            .map(|n| n.name)
            .collect();
        if !namespaces.iter().any(|n| n == namespace) {
            return Err(AppError::NotFound(format!(
                "Namespace {namespace} does not exist in region {region}."
            )));
        }
        let billing = state
            .store
            .namespace_billing(region, namespace)
            .await?
            .and_then(|b| b.refusal(namespace));
        Ok(Shell {
            billing,
            region: region.to_string(),
            namespace: namespace.to_string(),
            regions: state.regions.to_vec(),
            namespaces,
            section,
            title: title.into(),
        })
    }

    pub fn functions_url(&self) -> String {
        urls::functions(&self.region, &self.namespace)
    }

    pub fn new_function_url(&self) -> String {
        urls::new_function(&self.region, &self.namespace)
    }

    pub fn namespaces_url(&self) -> String {
        urls::namespaces(&self.region, &self.namespace)
    }

    pub fn function_url(&self, name: &str) -> String {
        urls::function(&self.region, &self.namespace, name)
    }

    pub fn tab_url(&self, name: &str, tab: &str) -> String {
        urls::function_tab(&self.region, &self.namespace, name, tab)
    }

    pub fn validate_url(&self) -> String {
        urls::validate(&self.region, &self.namespace)
    }

    pub fn api_keys_url(&self) -> String {
        urls::api_keys(&self.region, &self.namespace)
    }

    pub fn users_url(&self) -> String {
        urls::users(&self.region, &self.namespace)
    }

    pub fn audit_url(&self) -> String {
        urls::audit(&self.region, &self.namespace)
    }

    pub fn account_url(&self) -> String {
        urls::account(&self.region, &self.namespace)
    }

    pub fn in_users(&self) -> bool {
        self.section == Section::Users
    }

    pub fn in_audit(&self) -> bool {
        self.section == Section::Audit
    }

    pub fn in_account(&self) -> bool {
        self.section == Section::Account
    }

    pub fn system_url(&self) -> String {
        urls::system(&self.region, &self.namespace)
    }

    pub fn in_system(&self) -> bool {
        self.section == Section::System
    }

    pub fn in_api_keys(&self) -> bool {
        self.section == Section::ApiKeys
    }

    pub fn in_functions(&self) -> bool {
        self.section == Section::Functions
    }

    pub fn in_namespaces(&self) -> bool {
        self.section == Section::Namespaces
    }
}
