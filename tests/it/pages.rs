//! Every page renders, with the frame a user finds their way by, and the HTTP details browsers
//! and caches rely on.

use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};

#[tokio::test]
async fn the_root_lands_on_the_default_namespace_of_the_first_region() {
    let app = TestApp::new().await;
    let page = app.get("/").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/scf/ap-guangzhou/default/functions");
    let list = app.follow(&page).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.text("h1"), "Functions");
}

#[tokio::test]
async fn the_frame_offers_function_service_regions_and_namespaces() {
    let app = TestApp::new().await;
    let page = app.get(&functions_url("default")).await;
    assert_eq!(
        page.text(".sidebar a[aria-current=page]"),
        "Function Service"
    );
    assert_eq!(
        page.texts("#region-select option"),
        vec!["ap-guangzhou", "ap-shanghai"]
    );
    assert_eq!(page.text("#region-select option[selected]"), "ap-guangzhou");
    assert_eq!(page.texts("#namespace-select option"), vec!["default"]);
    assert_eq!(page.text("a.btn-primary"), "Create");
}

#[tokio::test]
async fn an_empty_namespace_explains_what_to_do() {
    let app = TestApp::new().await;
    let page = app.get(&functions_url("default")).await;
    assert_eq!(page.text(".empty-state h2"), "No functions yet");
    assert_eq!(
        page.attr(".empty-state a", "href").as_deref(),
        Some("/scf/ap-guangzhou/default/functions/-/new")
    );
}

#[tokio::test]
async fn switching_region_opens_its_default_namespace() {
    let app = TestApp::new().await;
    let page = app.get("/switch?region=ap-shanghai").await;
    assert_eq!(page.location(), "/scf/ap-shanghai/default/functions");
    let list = app.follow(&page).await;
    assert_eq!(list.text("#region-select option[selected]"), "ap-shanghai");
}

#[tokio::test]
async fn unknown_places_are_404_pages_that_say_what_is_missing() {
    let app = TestApp::new().await;
    let page = app.get("/scf/eu-mars/default/functions").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.text(".error-page")
            .contains("Region eu-mars is not offered")
    );

    let page = app.get("/scf/ap-guangzhou/nope/functions").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.text(".error-page")
            .contains("Namespace nope does not exist")
    );

    let page = app.get(&function_url("default", "ghost", "config")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.text(".error-page")
            .contains("Function ghost does not exist")
    );

    let page = app.get("/no/such/page").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(page.text("h1"), "Not found");
}

#[tokio::test]
async fn every_console_page_renders() {
    let app = TestApp::new().await;
    app.create_function("default", "page-check", &[]).await;
    for (url, heading) in [
        (functions_url("default"), "Functions".to_string()),
        (new_url("default"), "Create function".into()),
        (
            format!("{}?template=empty", new_url("default")),
            "Create function".into(),
        ),
        (
            function_url("default", "page-check", "config"),
            "page-check".into(),
        ),
        (
            function_url("default", "page-check", "code"),
            "page-check".into(),
        ),
        (
            function_url("default", "page-check", "delete"),
            "Delete function".into(),
        ),
        (
            format!("/scf/{REGION}/default/namespaces"),
            format!("Namespaces of {REGION}"),
        ),
    ] {
        let page = app.get(&url).await;
        assert_eq!(page.status, StatusCode::OK, "{url}");
        assert_eq!(page.text("h1"), heading, "{url}");
        assert_eq!(
            page.header("content-type"),
            "text/html; charset=utf-8",
            "{url}"
        );
    }
}

#[tokio::test]
async fn pages_vary_on_hx_request_and_carry_a_request_id() {
    let app = TestApp::new().await;
    let page = app.get(&functions_url("default")).await;
    assert!(page.header("vary").contains("HX-Request"));
    assert_eq!(page.header("x-request-id").len(), 36, "a UUID request id");
}

#[tokio::test]
async fn a_callers_request_id_is_kept_only_when_it_is_a_plain_token() {
    let app = TestApp::new().await;
    let with_id = |id: &str| {
        Request::get(functions_url("default"))
            .header("x-request-id", id)
            .body(Body::empty())
            .unwrap()
    };
    let page = app.send(with_id("batch-7.step:3")).await;
    assert_eq!(page.header("x-request-id"), "batch-7.step:3");
    for unusable in ["two words", "\"quoted\"", &"x".repeat(65)] {
        let page = app.send(with_id(unusable)).await;
        assert_eq!(
            page.header("x-request-id").len(),
            36,
            "{unusable:?} replaced"
        );
    }
}

#[tokio::test]
async fn static_assets_are_served_with_types_long_caching_and_revalidation() {
    let app = TestApp::new().await;
    let page = app.get(&functions_url("default")).await;
    let css = page.attr("link[rel=stylesheet]", "href").unwrap();
    assert!(css.starts_with("/static/app.css?v="), "{css}");
    let scripts: Vec<String> = page
        .html()
        .select(&scraper::Selector::parse("script[src]").unwrap())
        .map(|e| e.value().attr("src").unwrap().to_string())
        .collect();
    assert!(
        scripts
            .iter()
            .any(|s| s.starts_with("/static/vendor/htmx-2.0.11.min.js?v=")),
        "{scripts:?}"
    );

    let asset = app.get(&css).await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(asset.header("content-type"), "text/css; charset=utf-8");
    assert!(asset.header("cache-control").contains("max-age=31536000"));
    let etag = asset.header("etag").to_string();
    assert!(etag.len() > 2);

    let js = app.get(&scripts[0]).await;
    assert!(
        js.header("content-type").contains("javascript"),
        "{}",
        js.header("content-type")
    );

    let again = app
        .send(
            Request::get(&css)
                .header(header::IF_NONE_MATCH, &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);

    assert_eq!(
        app.get("/static/nope.css").await.status,
        StatusCode::NOT_FOUND
    );
    // The icon: linked from every page, and where browsers look for it without a link, even
    // before a login.
    let icon = page.attr("link[rel=icon]", "href").unwrap();
    assert_eq!(app.get(&icon).await.header("content-type"), "image/svg+xml");
    let favicon = app
        .send_anonymous(Request::get("/favicon.ico").body(Body::empty()).unwrap())
        .await;
    assert_eq!(favicon.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(favicon.location(), icon);
    let license = app.get("/static/vendor/htmx-2.0.11.LICENSE").await;
    assert_eq!(license.status, StatusCode::OK);
}

#[tokio::test]
async fn responses_are_compressed_for_browsers_that_ask() {
    let app = TestApp::new().await;
    let page = app
        .send(
            Request::get("/static/vendor/htmx-2.0.11.min.js")
                .header(header::ACCEPT_ENCODING, "gzip")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(page.header("content-encoding"), "gzip");
}
