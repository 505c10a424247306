//! One-time messages across a redirect (Post/Redirect/Get): an action answers 303 to the page
//! that shows its outcome, and the outcome rides along in a short-lived cookie that the next
//! full page reads and clears. So a reload shows the page again without repeating the action
//! or its message, and nothing one-time sits in the URL.
//!
//! Handlers call [`redirect`]; the gate ([`super::auth::gate`]) turns the flash into a cookie,
//! reads the cookie of the next page into [`current`] for its templates, and clears it.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

pub const COOKIE: &str = "scf_flash";
/// The most a flash cookie may hold, encoded; anything longer is not read.
const MAX_ENCODED: usize = 3000;
/// A payload longer than this is not carried back to the Test tab.
pub const MAX_PAYLOAD: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Flash {
    /// What was done, in a sentence.
    Notice(String),
    /// An async invocation was accepted (the Test tab), with the payload sent when short.
    Accepted {
        request_id: String,
        payload: Option<String>,
    },
    /// A synchronous invocation ran (the Test tab): its answer is kept in the store under this
    /// one-time token, too large for a cookie.
    Ran { token: String },
    /// An API key was created: the only time its SecretKey is shown.
    Key {
        secret_id: String,
        secret_key: String,
    },
}

tokio::task_local! {
    static CURRENT: Option<Flash>;
}

/// The flash the page being answered was sent with.
pub fn current() -> Option<Flash> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

/// The notice of the current flash, for the page's banner.
pub fn notice() -> Option<String> {
    match current() {
        Some(Flash::Notice(text)) => Some(text),
        _ => None,
    }
}

/// Runs the page's handler with the flash it was sent with.
pub async fn scope<F: std::future::Future>(flash: Option<Flash>, f: F) -> F::Output {
    CURRENT.scope(flash, f).await
}

/// A 303 to `to`, carrying `flash` to it.
pub fn redirect(to: &str, flash: Flash) -> Response {
    let mut response = Redirect::to(to).into_response();
    response.extensions_mut().insert(flash);
    response
}

/// Reads the flash cookie of a request, if it holds one.
pub fn read(headers: &HeaderMap) -> Option<Flash> {
    let value = super::auth::cookie(headers, COOKIE)?;
    if value.is_empty() || value.len() > MAX_ENCODED {
        return None;
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .ok()?;
    serde_json::from_slice(&json).ok()
}

/// The `Set-Cookie` that carries `flash` to the next page (`None`: clears it).
pub fn cookie(flash: Option<&Flash>, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let value = match flash {
        Some(f) => format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=60{secure}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(f).expect("plain data"))
        ),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&value).expect("URL-safe base64")
}

/// Sets or clears the flash cookie on a response: the one it carries, or none once a full
/// page was shown with the one the request brought.
pub fn settle(response: &mut Response, brought: bool, full_page: bool, secure: bool) {
    let carried = response.extensions_mut().remove::<Flash>();
    let set = match (&carried, brought && full_page) {
        (Some(f), _) => Some(cookie(Some(f), secure)),
        (None, true) => Some(cookie(None, secure)),
        (None, false) => None,
    };
    if let Some(value) = set {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_goes_through_its_cookie_and_a_forged_one_is_not_read() {
        let flash = Flash::Key {
            secret_id: "AKIDexample".into(),
            secret_key: "s3cret".into(),
        };
        let set = cookie(Some(&flash), true);
        let value = set.to_str().unwrap();
        assert!(value.contains("HttpOnly") && value.contains("Secure"));
        let sent = value.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(sent).unwrap());
        assert_eq!(read(&headers), Some(flash));
        for bad in [
            "scf_flash=!!!",
            "scf_flash=e30",
            &format!("scf_flash={}", "A".repeat(4000)),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::COOKIE, HeaderValue::from_str(bad).unwrap());
            assert_eq!(read(&headers), None, "{bad}");
        }
    }
}
