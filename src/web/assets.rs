//! Static assets (CSS, JS, vendored htmx) embedded in the binary. Pages link them with a content
//! hash in the query string, so browsers may cache them for a year and still see every change.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static"]
// The editor bundle's entry source is kept beside it to rebuild it, not served.
#[exclude = "vendor/*.mjs"]
struct Static;

/// The vendored htmx, named with its version.
pub const HTMX: &str = "vendor/htmx-2.0.11.min.js";

/// The vendored CodeMirror 6 bundle (see its LICENSE file for what it holds and how it is
/// built), loaded only by the pages with a code editor.
pub const CODEMIRROR: &str = "vendor/codemirror-6.min.js";

fn etag(path: &str) -> Option<String> {
    Static::get(path).map(|f| {
        f.metadata
            .sha256_hash()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// `/static/app.css?v=1a2b3c4d…`: the URL of an asset, versioned by its content.
pub fn url(path: &str) -> String {
    match etag(path) {
        Some(tag) => format!("/static/{path}?v={tag}"),
        None => format!("/static/{path}"),
    }
}

pub async fn serve(Path(path): Path<String>, headers: HeaderMap) -> Response {
    let Some(file) = Static::get(&path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let tag = format!("\"{}\"", etag(&path).unwrap_or_default());
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == tag.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mime = file.metadata.mimetype();
    let content_type = if mime.starts_with("text/") || mime == "application/javascript" {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_str(&content_type)
                    .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (
                header::ETAG,
                HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\"")),
            ),
        ],
        file.data.into_owned(),
    )
        .into_response()
}
