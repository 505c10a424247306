//! The console's door: every page needs a login, every change a CSRF token and a role that
//! allows it, and every change is written to the audit log. What each route needs and how its
//! changes are named is in one table here (`rule`), so a new route cannot slip past by
//! forgetting a check in its handler: a route not in the table needs an admin.

use super::form::FormFields;
use crate::accounts::{self, LoginError};
use crate::app::{client_address, client_uses_https};
use crate::audit::{self, Actor};
use crate::domain::user::{self, Permission, Role};
use crate::error::AppError;
use crate::state::AppState;
use askama::Template;
use askama_web::WebTemplate;
use axum::body::Body;
use axum::extract::{MatchedPath, Query, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{RequestPartsExt, Router};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde::Deserialize;

pub const SESSION_COOKIE: &str = "scf_session";
/// The form field and the header that carry the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The logged-in user a request is made by.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: String,
    pub role: Role,
    pub csrf_token: String,
    pub source: String,
    /// The session cookie's value, to end or keep this session.
    pub session_token: String,
}

impl Viewer {
    pub fn can(&self, permission: Permission) -> bool {
        self.role.allows(permission)
    }

    pub fn actor(&self) -> Actor {
        Actor::console(&self.user, &self.source)
    }

    /// Refuses unless the role allows `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), AppError> {
        if self.can(permission) {
            Ok(())
        } else {
            Err(AppError::Forbidden(user::refusal(self.role, permission)))
        }
    }
}

tokio::task_local! {
    /// The viewer of the request being answered, for templates: every form needs the CSRF
    /// token and every page shows buttons by role, and passing the viewer through each page
    /// struct would repeat it in all of them.
    static VIEWER: Viewer;
}

fn with_viewer<T>(f: impl FnOnce(&Viewer) -> T, default: T) -> T {
    VIEWER.try_with(f).unwrap_or(default)
}

/// The CSRF token of the current session (for `<input name="csrf">` and `hx-headers`).
pub fn csrf_token() -> String {
    with_viewer(|v| v.csrf_token.clone(), String::new())
}

pub fn user_name() -> String {
    with_viewer(|v| v.user.clone(), String::new())
}

pub fn role_label() -> &'static str {
    with_viewer(|v| v.role.label(), "")
}

/// Whether the current user may change functions, events and namespaces.
pub fn can_develop() -> bool {
    with_viewer(|v| v.can(Permission::Develop), false)
}

pub fn can_manage_keys() -> bool {
    with_viewer(|v| v.can(Permission::OwnKeys), false)
}

pub fn is_admin() -> bool {
    with_viewer(|v| v.can(Permission::Administer), false)
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Viewer {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Viewer>()
            .cloned()
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a console route without the gate")))
    }
}

/// What a handler tells the audit log about a change it made, beyond what the route says:
/// what was made (a new function's name, a new key's SecretId) and how (status trace turned
/// off). A change answered with a page rather than a redirect is audited only with this, so a
/// form shown again (a confirmation, an added row) is not taken for a change.
#[derive(Debug, Clone, Default)]
pub struct Audited {
    pub target: Option<String>,
    pub note: Option<String>,
}

/// Marks `response` as a change made, for the audit log.
pub fn audited(
    response: impl IntoResponse,
    target: Option<String>,
    note: Option<String>,
) -> Response {
    let mut response = response.into_response();
    response.extensions_mut().insert(Audited { target, note });
    response
}

/// What a route asks of the user, and the audit log's name for what a change does.
struct Rule {
    permission: Permission,
    /// `None` for requests that change nothing (a form check).
    audit: Option<&'static str>,
}

/// The one table of what each console route needs. Reading needs a login; a change needs the
/// permission named here; a change not listed needs an admin, so a new route is closed until
/// it is given its place.
fn rule(method: &Method, route: &str) -> Rule {
    use Permission::*;
    let read = |audit| Rule {
        permission: Read,
        audit,
    };
    let needs = |permission, audit: &'static str| Rule {
        permission,
        audit: Some(audit),
    };
    let route = route
        .strip_prefix("/scf/{region}/{namespace}")
        .unwrap_or(route);
    if matches!(*method, Method::GET | Method::HEAD) {
        return if route.starts_with("/users") {
            Rule {
                permission: Administer,
                audit: None,
            }
        } else {
            read(None)
        };
    }
    match route {
        "/functions/-/validate" => Rule {
            permission: Develop,
            audit: None,
        },
        "/functions/-/new" => needs(Develop, "Create function"),
        "/functions/{name}/delete" => needs(Develop, "Delete function"),
        "/functions/{name}/config" => needs(Develop, "Change function configuration"),
        "/functions/{name}/code" => needs(Develop, "Change function code"),
        "/functions/{name}/concurrency" => needs(Develop, "Change reserved concurrency"),
        "/functions/{name}/test" => needs(Develop, "Invoke function"),
        "/functions/{name}/events/-/terminate" => needs(Develop, "Terminate events"),
        "/functions/{name}/events/-/trace-on" => needs(Develop, "Turn status trace on"),
        "/functions/{name}/events/-/rerun" => needs(Develop, "Re-run events"),
        "/functions/{name}/events/{request_id}/terminate" => needs(Develop, "Terminate event"),
        "/functions/{name}/events/{request_id}/rerun" => needs(Develop, "Re-run event"),
        "/namespaces" => needs(Develop, "Create namespace"),
        "/namespaces/{target}/delete" => needs(Develop, "Delete namespace"),
        "/namespaces/{target}/settings" => needs(Administer, "Change billing"),
        // Which keys: the handler checks the key is the user's own, unless an admin asks.
        "/api-keys" => needs(OwnKeys, "Create API key"),
        "/api-keys/{id}/enable" => needs(OwnKeys, "Enable API key"),
        "/api-keys/{id}/disable" => needs(OwnKeys, "Disable API key"),
        "/api-keys/{id}/delete" => needs(OwnKeys, "Delete API key"),
        "/users" => needs(Administer, "Create user"),
        "/users/{user}/role" => needs(Administer, "Change user role"),
        "/users/{user}/password" => needs(Administer, "Reset user password"),
        "/users/{user}/delete" => needs(Administer, "Delete user"),
        "/account/password" => read(Some("Change own password")),
        "/logout" => read(None),
        _ => needs(Administer, "Change"),
    }
}

/// Pages anyone may see: the login page, health checks, assets, and the SCF API (which has its
/// own door: TC3 signatures, and no cookies).
fn is_public(req: &Request) -> bool {
    let path = req.uri().path();
    matches!(path, "/login" | "/healthz" | "/readyz" | "/favicon.ico")
        || path.starts_with("/static/")
        || (path == "/" && crate::scf::is_api_call(req.headers()))
}

pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Where a request without a login goes: the login page, which comes back here afterwards.
fn to_login(req: &Request) -> Response {
    let back = if req.method() == Method::GET {
        req.uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string()
    } else {
        // A form sent after the session ended cannot be replayed; the page it came from can.
        "/".to_string()
    };
    let target = format!("/login?next={}", urlencode(&back));
    if req.headers().get("hx-request").is_some_and(|v| v == "true") {
        // htmx would swap the login page into a fragment; it reloads the whole page instead.
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        if let Ok(value) = HeaderValue::from_str(&target) {
            response.headers_mut().insert("hx-redirect", value);
        }
        return response;
    }
    Redirect::to(&target).into_response()
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Constant-time comparison, so a token cannot be guessed byte by byte from timings.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The CSRF token a change carries: the header htmx sends, or the field of a plain form. A
/// form body is read (within the console's form limit) and put back for the handler.
async fn sent_token(req: Request) -> Result<(Request, Option<String>), Response> {
    if let Some(token) = req.headers().get(CSRF_HEADER) {
        let token = token.to_str().ok().map(str::to_string);
        return Ok((req, token));
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if let Some(boundary) = multipart_boundary(&content_type) {
        return Ok(multipart_token(req, &boundary).await);
    }
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Ok((req, None));
    }
    let (parts, body) = req.into_parts();
    let bytes = match http_body_util::Limited::new(body, super::FORM_BODY_LIMIT)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(AppError::BadRequest(
                "The form is larger than the console accepts.".into(),
            )
            .into_response());
        }
        Err(_) => {
            return Err(AppError::BadRequest(
                "The form did not arrive whole; send it again.".into(),
            )
            .into_response());
        }
    };
    let token = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned());
    Ok((Request::from_parts(parts, Body::from(bytes)), token))
}

/// The CSRF token of a multipart form (a zip upload): the console's forms put the `csrf` field
/// first, so only the start of the body is read (a few KB, not the upload) and the body goes
/// on, whole, to the handler.
async fn multipart_token(req: Request, boundary: &str) -> (Request, Option<String>) {
    const HEAD: usize = 4096;
    let (parts, body) = req.into_parts();
    let mut stream = body.into_data_stream();
    let mut head: Vec<u8> = Vec::new();
    let mut failed = None;
    while head.len() < HEAD {
        match stream.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(e)) => {
                failed = Some(e);
                break;
            }
            None => break,
        }
    }
    let token = first_part_token(&head, boundary);
    let rest = futures_util::stream::iter(failed.map(Err)).chain(stream);
    let body = Body::from_stream(
        futures_util::stream::once(async move { Ok(axum::body::Bytes::from(head)) }).chain(rest),
    );
    (Request::from_parts(parts, body), token)
}

/// The boundary of a `multipart/form-data` content type (quoted or not).
fn multipart_boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// The value of a multipart body's first part when that part is the `csrf` field.
fn first_part_token(head: &[u8], boundary: &str) -> Option<String> {
    // Lossy: the head may end inside a later part (a file's bytes), which is not read.
    let text = String::from_utf8_lossy(head);
    let first = text.strip_prefix(&format!("--{boundary}\r\n"))?;
    let (headers, rest) = first.split_once("\r\n\r\n")?;
    let named_csrf = headers.lines().any(|h| {
        h.to_ascii_lowercase().starts_with("content-disposition:")
            && h.contains(&format!("name=\"{CSRF_FIELD}\""))
            && !h.contains("filename=")
    });
    let (value, _) = rest.split_once(&format!("\r\n--{boundary}"))?;
    named_csrf.then(|| value.to_string())
}

/// What a change was done to, from the route's parameters: `ap-guangzhou/default/hello`,
/// `ap-guangzhou/default/hello/<RequestId>`, a key's SecretId or a user's name.
///
/// Users and keys are not in a region: the region and namespace in their URLs are only where
/// the console was looking, and are left out.
fn target_of(route: &str, params: &RawPathParams) -> String {
    let global = ["/users", "/api-keys", "/account"]
        .iter()
        .any(|page| route.contains(page));
    params
        .iter()
        .filter(|(name, _)| !(global && matches!(*name, "region" | "namespace")))
        .map(|(_, v)| v.to_string())
        .collect::<Vec<_>>()
        .join("/")
}

fn outcome_of(status: StatusCode) -> String {
    match status.as_u16() {
        200..=399 => "ok".into(),
        403 => "refused: not allowed".into(),
        404 => "refused: not found".into(),
        409 => "refused: conflict".into(),
        422 => "refused: invalid input".into(),
        429 => "refused: limit reached".into(),
        code => format!("failed ({code})"),
    }
}

/// Answers a refused change, and writes the refusal to the audit log if the route is audited.
async fn refuse(
    state: &AppState,
    viewer: &Viewer,
    action: Option<&str>,
    target: &str,
    why: &str,
    refusal: AppError,
) -> Response {
    if let Some(action) = action {
        let outcome = format!("refused: {why}");
        audit::record(state, &viewer.actor(), action, target, &outcome).await;
    }
    refusal.into_response()
}

/// The gate in front of every console route.
pub async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if is_public(&req) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let source = client_address(state.trusted_proxy, &parts);
    let token = cookie(&parts.headers, SESSION_COOKIE).map(str::to_string);
    let session = match token.as_deref() {
        Some(token) => match accounts::session(&state, token).await {
            Ok(session) => session,
            Err(e) => return AppError::from(e).into_response(),
        },
        None => None,
    };
    let (Some(session), Some(token)) = (session, token) else {
        return to_login(&Request::from_parts(parts, body));
    };
    let viewer = Viewer {
        user: session.user,
        role: session.role,
        csrf_token: session.csrf_token,
        source,
        session_token: token,
    };
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map_or_else(String::new, |m| m.as_str().to_string());
    let rule = rule(&parts.method, &route);
    let target = match parts.extract::<RawPathParams>().await {
        Ok(params) => target_of(&route, &params),
        Err(_) => String::new(),
    };
    parts.extensions.insert(viewer.clone());
    // A one-time message from the action that redirected here: shown by a full page, then
    // cleared (htmx fragments leave it for the page).
    let reads_page = parts.method == Method::GET;
    let full_page = reads_page && !parts.headers.contains_key("hx-request");
    let flash = reads_page
        .then(|| super::flash::read(&parts.headers))
        .flatten();
    let secure = client_uses_https(&state, &parts.headers);
    let mut req = Request::from_parts(parts, body);
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let (checked, sent) = match sent_token(req).await {
            Ok(pair) => pair,
            Err(response) => return response,
        };
        req = checked;
        if !sent.is_some_and(|t| same_token(&t, &viewer.csrf_token)) {
            tracing::warn!(user = %viewer.user, source = %viewer.source, %route, "refused a change without this session's CSRF token");
            let refusal = AppError::Forbidden(
                "This form is out of date or did not come from this console, so nothing was changed. Reload the page and try again."
                    .into(),
            );
            return refuse(
                &state,
                &viewer,
                rule.audit,
                &target,
                "no valid CSRF token",
                refusal,
            )
            .await;
        }
    }
    if let Err(refusal) = viewer.require(rule.permission) {
        return refuse(
            &state,
            &viewer,
            rule.audit,
            &target,
            "not allowed for the role",
            refusal,
        )
        .await;
    }
    let brought = flash.is_some();
    let mut response = VIEWER
        .scope(viewer.clone(), super::flash::scope(flash, next.run(req)))
        .await;
    let shown = full_page && response.status().is_success();
    super::flash::settle(&mut response, brought, shown, secure);
    if let Some(action) = rule.audit {
        let status = response.status();
        let told = response.extensions().get::<Audited>();
        let outcome = match (status.is_success(), told) {
            // A page shown again with nothing done.
            (true, None) => None,
            _ if status.is_success() || status.is_redirection() => {
                Some(match told.and_then(|t| t.note.as_deref()) {
                    Some(note) => format!("ok: {note}"),
                    None => "ok".to_string(),
                })
            }
            _ => Some(outcome_of(status)),
        };
        if let Some(outcome) = outcome {
            let target = told.and_then(|t| t.target.clone()).unwrap_or(target);
            audit::record(&state, &viewer.actor(), action, &target, &outcome).await;
        }
    }
    response
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
}

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    next: String,
    user_name: String,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct AfterLogin {
    #[serde(default)]
    next: Option<String>,
}

/// Only a path on this server may be the page after login, never another site: browsers
/// read `//host`, `/\\host` and a path with a tab or newline after its slash as another site,
/// so only printable ASCII without backslashes passes, and never two leading slashes.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.len() <= 2048
                && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The login page; someone already logged in goes straight on.
async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AfterLogin>,
) -> Response {
    let next = local_path(q.next.as_deref());
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Ok(Some(_)) = accounts::session(&state, token).await
    {
        return Redirect::to(&next).into_response();
    }
    LoginPage {
        next,
        user_name: String::new(),
        error: None,
    }
    .into_response()
}

fn session_cookie(state: &AppState, headers: &HeaderMap, value: &str, max_age: u64) -> HeaderValue {
    let secure = if client_uses_https(state, headers) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .expect("tokens are URL-safe base64")
}

/// The client's address, as the gate and the audit log see it.
pub struct Source(pub String);

impl axum::extract::FromRequestParts<AppState> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Source(client_address(state.trusted_proxy, parts)))
    }
}

async fn login(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    FormFields(pairs): FormFields,
) -> Response {
    let fields = super::form::Fields(pairs);
    let name = fields.get("UserName").trim().to_string();
    let next = local_path(Some(fields.get("next")));
    let page = |error: String, status: StatusCode| {
        (
            status,
            LoginPage {
                next: next.clone(),
                user_name: name.clone(),
                error: Some(error),
            },
        )
            .into_response()
    };
    match accounts::login(&state, &name, fields.get("Password"), &source).await {
        Ok(login) => {
            let max_age = state.sessions.ttl.as_secs();
            let mut response = Redirect::to(&next).into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(&state, &headers, &login.token, max_age),
            );
            response
        }
        Err(LoginError::Invalid) => page(
            "The user name or password is wrong.".into(),
            StatusCode::UNAUTHORIZED,
        ),
        Err(LoginError::Limited(wait)) => page(
            format!(
                "Too many failed logins from this address. Try again in {} minutes.",
                wait.as_secs().div_ceil(60).max(1)
            ),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(LoginError::Internal(e)) => AppError::Internal(e).into_response(),
    }
}

async fn logout(State(state): State<AppState>, viewer: Viewer, headers: HeaderMap) -> Response {
    if let Err(e) = accounts::logout(&state, &viewer.actor(), &viewer.session_token).await {
        return AppError::from(e).into_response();
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, &headers, "", 0));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_route_has_its_place_in_the_table() {
        let post = Method::POST;
        let r = rule(&post, "/scf/{region}/{namespace}/functions/{name}/delete");
        assert_eq!(
            (r.permission, r.audit),
            (Permission::Develop, Some("Delete function"))
        );
        let r = rule(
            &post,
            "/scf/{region}/{namespace}/functions/{name}/events/-/rerun",
        );
        assert_eq!(
            (r.permission, r.audit),
            (Permission::Develop, Some("Re-run events"))
        );
        let r = rule(
            &post,
            "/scf/{region}/{namespace}/namespaces/{target}/settings",
        );
        assert_eq!(r.permission, Permission::Administer);
        // Unknown changes need an admin; unknown pages only a login.
        assert_eq!(
            rule(&post, "/scf/{region}/{namespace}/new-thing").permission,
            Permission::Administer
        );
        assert_eq!(
            rule(&Method::GET, "/scf/{region}/{namespace}/new-thing").permission,
            Permission::Read
        );
        assert_eq!(
            rule(&Method::GET, "/scf/{region}/{namespace}/users").permission,
            Permission::Administer
        );
    }

    #[test]
    fn login_returns_only_to_this_server() {
        assert_eq!(
            local_path(Some("/scf/x/y/functions?a=1")),
            "/scf/x/y/functions?a=1"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/a b",
            "evil",
            "",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("x_scf_session=no; scf_session=yes; other=1"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("yes"));
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
    }
}
