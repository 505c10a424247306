//! Namespaces: create, switch, delete; `default` always exists.

use crate::support::*;
use axum::http::StatusCode;

fn ns_url() -> String {
    format!("/scf/{REGION}/default/namespaces")
}

#[tokio::test]
async fn create_a_namespace_and_work_in_it() {
    let app = TestApp::new().await;
    let created = app
        .post(
            &ns_url(),
            &[("Namespace", "team-a"), ("Description", "Team A")],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    let page = app.follow(&created).await;
    assert_eq!(page.text(".banner-ok"), "Namespace team-a created.");
    assert_eq!(
        page.texts("table.data tbody td:first-child"),
        vec!["default", "team-a"]
    );
    assert_eq!(
        page.texts("#namespace-select option"),
        vec!["default", "team-a"]
    );

    let switched = app
        .get("/switch?region=ap-guangzhou&namespace=team-a")
        .await;
    assert_eq!(switched.location(), functions_url("team-a"));
    app.create_function("team-a", "in-team", &[]).await;
    let list = app.follow(&switched).await;
    assert_eq!(list.texts("a.fn-name"), vec!["in-team"]);
    assert_eq!(
        app.get(&functions_url("default")).await.count("a.fn-name"),
        0
    );
    // The same name may exist in another namespace.
    app.create_function("default", "in-team", &[]).await;
    // Namespaces are per region.
    let other = app.get("/scf/ap-shanghai/default/namespaces").await;
    assert_eq!(
        other.texts("table.data tbody td:first-child"),
        vec!["default"]
    );
}

#[tokio::test]
async fn bad_namespace_names_are_refused_with_the_input_kept() {
    let app = TestApp::new().await;
    app.post(&ns_url(), &[("Namespace", "dup")]).await;
    let too_long = "n".repeat(31);
    for (name, message) in [
        ("", "Enter a namespace name"),
        ("has space", "1-30 characters"),
        (too_long.as_str(), "1-30 characters"),
        ("default", "always exists"),
        ("dup", "already exists"),
    ] {
        let page = app
            .post(&ns_url(), &[("Namespace", name), ("Description", "kept")])
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert!(
            page.field_error("Namespace").contains(message),
            "{name}: {}",
            page.field_error("Namespace")
        );
        assert_eq!(page.attr("#Namespace", "value").as_deref(), Some(name));
        assert_eq!(
            page.attr("#NsDescription", "value").as_deref(),
            Some("kept")
        );
    }
    let page = app.get(&ns_url()).await;
    assert_eq!(
        page.texts("table.data tbody td:first-child"),
        vec!["default", "dup"]
    );
}

#[tokio::test]
async fn default_cannot_be_deleted() {
    let app = TestApp::new().await;
    let page = app.get(&ns_url()).await;
    let default_row = page.text("table.data tbody tr");
    assert!(default_row.contains("always exists"), "{default_row}");
    let refused = app.post(&format!("{}/default/delete", ns_url()), &[]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text(".error-page").contains("cannot be deleted"));
}

#[tokio::test]
async fn a_namespace_with_functions_is_kept_until_they_are_deleted() {
    let app = TestApp::new().await;
    app.post(&ns_url(), &[("Namespace", "busy")]).await;
    app.create_function("busy", "worker", &[]).await;
    let delete = format!("{}/busy/delete", ns_url());
    let confirm = app.get(&delete).await;
    assert!(confirm.text(".confirm").contains("still has 1 function"));
    assert_eq!(
        confirm.count(".confirm button"),
        0,
        "no delete button while it holds functions"
    );
    let refused = app.post(&delete, &[]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.text(".error-page").contains("Nothing was deleted"));
    assert_eq!(
        app.get(&functions_url("busy")).await.texts("a.fn-name"),
        vec!["worker"]
    );

    app.post(&function_url("busy", "worker", "delete"), &[])
        .await;
    let confirm = app.get(&delete).await;
    assert_eq!(confirm.text(".confirm button"), "Delete busy");
    let done = app.post(&delete, &[]).await;
    let page = app.follow(&done).await;
    assert_eq!(page.text(".banner-ok"), "Namespace busy deleted.");
    assert_eq!(
        app.get(&functions_url("busy")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn deleting_the_namespace_you_stand_in_returns_to_default() {
    let app = TestApp::new().await;
    app.post(&ns_url(), &[("Namespace", "temp")]).await;
    let done = app
        .post(&format!("/scf/{REGION}/temp/namespaces/temp/delete"), &[])
        .await;
    assert_eq!(done.location(), ns_url());
    assert_eq!(
        app.follow(&done).await.text(".banner-ok"),
        "Namespace temp deleted."
    );
}
