//! The function list (search, pages, delete) of a namespace.

use super::shell::{Section, Shell};
use super::{HxRequest, urls};
use crate::clock::{TimeFormat, format_time};
use crate::error::AppResult;
use crate::service;
use crate::state::AppState;
use crate::store::{Function, FunctionKey, FunctionQuery};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use time::UtcOffset;

pub const PAGE_SIZE: u32 = 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/scf/{region}/{namespace}/functions", get(list))
        .route(
            "/scf/{region}/{namespace}/functions/{name}/delete",
            get(confirm_delete).post(delete),
        )
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<String>,
}

/// One row of the list, formatted for display.
pub struct Row {
    pub name: String,
    pub url: String,
    pub delete_url: String,
    pub runtime: String,
    pub description: String,
    pub async_run_enable: bool,
    pub trace_enable: bool,
    pub created: String,
    pub created_iso: String,
    pub modified: String,
    pub modified_iso: String,
}

impl Row {
    fn new(shell: &Shell, f: &Function) -> Self {
        Row {
            url: shell.function_url(&f.name),
            delete_url: shell.tab_url(&f.name, "delete"),
            name: f.name.clone(),
            runtime: f.runtime.clone(),
            description: f.description.clone(),
            async_run_enable: f.async_run_enable,
            trace_enable: f.trace_enable,
            created: format_time(f.created_at, UtcOffset::UTC, TimeFormat::DateTime),
            created_iso: format_time(f.created_at, UtcOffset::UTC, TimeFormat::Rfc3339),
            modified: format_time(f.modified_at, UtcOffset::UTC, TimeFormat::DateTime),
            modified_iso: format_time(f.modified_at, UtcOffset::UTC, TimeFormat::Rfc3339),
        }
    }
}

/// The table with its pager: the part that search swaps in place.
#[derive(Template, WebTemplate)]
#[template(path = "functions/table.html")]
pub struct FunctionTable {
    rows: Vec<Row>,
    search: String,
    total: i64,
    page: u32,
    pages: u32,
    list_url: String,
    new_url: String,
}

impl FunctionTable {
    fn page_url(&self, page: u32) -> String {
        let mut url = format!("{}?page={page}", self.list_url);
        if !self.search.is_empty() {
            url.push_str("&q=");
            url.push_str(&urls::encode(&self.search));
        }
        url
    }

    pub fn prev_url(&self) -> Option<String> {
        (self.page > 1).then(|| self.page_url(self.page - 1))
    }

    pub fn next_url(&self) -> Option<String> {
        (self.page < self.pages).then(|| self.page_url(self.page + 1))
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "functions/list.html")]
pub struct ListPage {
    shell: Shell,
    table: FunctionTable,
    banner: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Path((region, namespace)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
    HxRequest(hx): HxRequest,
) -> AppResult<Response> {
    let shell = Shell::load(&state, &region, &namespace, Section::Functions, "Functions").await?;
    // A page number that is not a positive number shows the first page rather than an error.
    let page = query
        .page
        .as_deref()
        .and_then(|p| p.parse::<u32>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let search = query.q.trim().to_string();
    let result = state
        .store
        .list_functions(
            &region,
            &namespace,
            &FunctionQuery {
                search: search.clone(),
                offset: (page - 1).saturating_mul(PAGE_SIZE),
                limit: PAGE_SIZE,
                ..FunctionQuery::default()
            },
        )
        .await?;
    let pages = (result.total.max(1) as u32).div_ceil(PAGE_SIZE);
    let table = FunctionTable {
        rows: result
            .functions
            .iter()
            .map(|f| Row::new(&shell, f))
            .collect(),
        search,
        total: result.total,
        page,
        pages,
        list_url: shell.functions_url(),
        new_url: shell.new_function_url(),
    };
    if hx {
        return Ok(table.into_response());
    }
    Ok(ListPage {
        shell,
        table,
        banner: super::flash::notice(),
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "functions/delete.html")]
pub struct DeletePage {
    shell: Shell,
    name: String,
    runtime: String,
    events: i64,
    /// Its events queued or running now: deleting stops them.
    active: i64,
    /// How long its events stay readable: "3 days".
    kept: String,
}

async fn confirm_delete(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
) -> AppResult<DeletePage> {
    let shell = Shell::load(
        &state,
        &region,
        &namespace,
        Section::Functions,
        format!("Delete {name}"),
    )
    .await?;
    let key = FunctionKey {
        region,
        namespace,
        name,
    };
    let function = service::functions::get(&state, &key).await?;
    let active = crate::domain::event_query::EventFilter {
        statuses: vec![
            crate::domain::event::EventStatus::Queued,
            crate::domain::event::EventStatus::Running,
        ],
        ..Default::default()
    };
    Ok(DeletePage {
        shell,
        events: state.store.count_events(function.id).await?,
        active: state
            .store
            .count_matching_events(function.id, &active)
            .await?,
        name: function.name,
        runtime: function.runtime,
        kept: super::parts::retention_text(&state),
    })
}

async fn delete(
    State(state): State<AppState>,
    Path((region, namespace, name)): Path<(String, String, String)>,
) -> AppResult<Response> {
    let key = FunctionKey {
        region,
        namespace,
        name,
    };
    let function = service::functions::get(&state, &key).await?;
    service::functions::delete(&state, &function).await?;
    Ok(super::flash::redirect(
        &urls::functions(&key.region, &key.namespace),
        super::flash::Flash::Notice(format!("Function {} was deleted.", key.name)),
    ))
}
