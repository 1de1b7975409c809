//! Browser navigation with `FRONTEND_URL`: 401 → sign-in page, 403/404 → error page; API
//! clients keep their JSON errors.

use reqwest::Method;
use stowage_tests::TestServer;

use crate::common::{encode_uri_component, expect_error, file_id, header, send, upload_as_owner};

const FRONTEND: &str = "https://app.example.com";
const HTML_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// A server with `FRONTEND_URL` and one file of user 1; returns the file's path.
async fn with_file() -> (TestServer, String) {
    let server = TestServer::spawn_with(&[("FRONTEND_URL", FRONTEND)]).await;
    let info = upload_as_owner(&server, "a.png", "image/png", &crate::common::PNG).await;
    let path = format!("/files/{}", file_id(&info));
    (server, path)
}

/// A browser's `GET path` (an HTML `Accept`) with `Authorization: auth`.
async fn browser_get(server: &TestServer, path: &str, auth: &str) -> reqwest::Response {
    let headers = [("Accept", HTML_ACCEPT), ("Authorization", auth)];
    send(server, Method::GET, path, &headers).await
}

/// Asserts `response` (to a browser's `GET path`) redirects to the frontend's error page.
fn assert_to_error_page(response: &reqwest::Response, path: &str) {
    assert_eq!(response.status(), 302, "{path}");
    assert_eq!(
        header(response, "location"),
        Some(format!("{FRONTEND}/error/")),
        "{path}"
    );
}

#[tokio::test]
async fn redirect_unauthenticated_browser_goes_to_sign_in() {
    let (server, path) = with_file().await;
    let target = format!("{path}?disposition=inline");

    let response = send(&server, Method::GET, &target, &[("Accept", HTML_ACCEPT)]).await;

    assert_eq!(response.status(), 302);
    let expected = format!(
        "{FRONTEND}/auth/signin/?redirectUrl={}",
        encode_uri_component(&format!("{}{target}", server.base_url))
    );
    assert_eq!(header(&response, "location"), Some(expected));
}

#[tokio::test]
async fn redirect_forbidden_browser_goes_to_error_page() {
    let (server, path) = with_file().await;

    let target = format!("{path}?disposition=inline");
    let response = browser_get(&server, &target, &server.bearer(Some(2), 2)).await;

    assert_to_error_page(&response, &target);
}

#[tokio::test]
async fn redirect_not_found_browser_goes_to_error_page() {
    let (server, _) = with_file().await;
    let auth = server.bearer(Some(1), 1);

    for path in [
        format!("/files/{}", uuid::Uuid::new_v4()),
        "/files/not-a-uuid".to_owned(),
    ] {
        let response = browser_get(&server, &path, &auth).await;

        assert_to_error_page(&response, &path);
    }
}

#[tokio::test]
async fn redirect_not_applied_without_html_accept() {
    let (server, path) = with_file().await;
    let target = format!("{path}?disposition=inline");

    let forbidden = send(
        &server,
        Method::GET,
        &target,
        &[
            ("Accept", "application/json"),
            ("Authorization", &server.bearer(Some(2), 2)),
        ],
    )
    .await;
    let unauthenticated = send(&server, Method::GET, &target, &[("Accept", "*/*")]).await;

    expect_error(forbidden, 403, "FILE_ACCESS_DENIED").await;
    expect_error(unauthenticated, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn redirect_not_applied_to_allowed_browser_download() {
    let (server, path) = with_file().await;

    let target = format!("{path}?disposition=inline");
    let response = browser_get(&server, &target, &server.bearer(Some(1), 1)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("image/png")
    );
}

#[tokio::test]
async fn redirect_not_applied_to_health_or_head() {
    let (server, path) = with_file().await;

    let live = send(
        &server,
        Method::GET,
        "/health/live",
        &[("Accept", HTML_ACCEPT)],
    )
    .await;
    let head = send(&server, Method::HEAD, &path, &[("Accept", HTML_ACCEPT)]).await;

    assert_eq!(live.status(), 200);
    assert_eq!(head.status(), 401);
}
