//! CORS from `ALLOWED_ORIGINS`: the configured origin is allowed with credentials, the credential
//! headers and `Range`, and sees the download headers; any other origin, or no configuration,
//! gets no CORS headers.

use reqwest::{Method, Response};
use stowage_tests::{SECURITY_HEADERS, TestServer, spawn_with_file};

use crate::common::{file_id, header, send};

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example.com";

/// Lower-cased, trimmed items of a comma-separated header.
fn list(response: &Response, name: &str) -> Vec<String> {
    header(response, name)
        .unwrap_or_default()
        .split(',')
        .map(|item| item.trim().to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

/// Asserts `response` is a `200` that lets `APP` read it with credentials.
fn assert_app_allowed_with_credentials(response: &Response) {
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(response, "access-control-allow-origin").as_deref(),
        Some(APP)
    );
    assert_eq!(
        header(response, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
}

/// Asserts the comma-separated header `name` of `response` lists each of `items` (lower-case).
fn assert_lists(response: &Response, name: &str, items: &[&str]) {
    let listed = list(response, name);
    for item in items {
        assert!(
            listed.iter().any(|l| l == item),
            "{item} not in {name}: {listed:?}"
        );
    }
}

/// The app's credentialed `GET` of the file `info` describes.
async fn get_from_app(server: &TestServer, auth: &str, info: &serde_json::Value) -> Response {
    let path = format!("/files/{}", file_id(info));
    send(
        server,
        Method::GET,
        &path,
        &[("Origin", APP), ("Authorization", auth)],
    )
    .await
}

/// A preflight for `POST /files` from `origin` asking for `request_headers`.
async fn preflight(server: &TestServer, origin: &str, request_headers: &str) -> Response {
    send(
        server,
        Method::OPTIONS,
        "/files",
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", request_headers),
        ],
    )
    .await
}

/// Every `Access-Control-*` header of `response`.
fn cors_headers(response: &Response) -> Vec<String> {
    response
        .headers()
        .keys()
        .map(|name| name.as_str().to_owned())
        .filter(|name| name.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn cors_preflight_allows_configured_origin_with_credentials() {
    let server = TestServer::spawn_with(&[("ALLOWED_ORIGINS", APP)]).await;

    let response = preflight(&server, APP, "authorization,range").await;
    let credential_headers =
        preflight(&server, APP, "x-guest-authorization,x-public-authorization").await;

    assert_app_allowed_with_credentials(&response);
    assert_lists(
        &response,
        "access-control-allow-headers",
        &["authorization", "range"],
    );
    assert_lists(&response, "access-control-allow-methods", &["post"]);
    assert_eq!(credential_headers.status(), 200);
    assert_lists(
        &credential_headers,
        "access-control-allow-headers",
        &["x-guest-authorization", "x-public-authorization"],
    );
}

#[tokio::test]
async fn cors_get_from_configured_origin_exposes_download_headers() {
    let server = TestServer::spawn_with(&[(
        "ALLOWED_ORIGINS",
        &format!("https://other.example.org,{APP}"),
    )])
    .await;
    let auth = server.bearer(Some(1), 1);
    let info = server
        .upload_ok(&auth, "a.txt", "text/plain", b"cors".to_vec())
        .await;

    let response = get_from_app(&server, &auth, &info).await;

    assert_app_allowed_with_credentials(&response);
    assert_lists(
        &response,
        "access-control-expose-headers",
        &["content-disposition", "content-range", "etag", "location"],
    );
}

#[tokio::test]
async fn cors_refuses_other_origin() {
    let server = TestServer::spawn_with(&[("ALLOWED_ORIGINS", APP)]).await;

    let preflight = preflight(&server, EVIL, "authorization,range").await;
    let get = send(&server, Method::GET, "/health/live", &[("Origin", EVIL)]).await;

    assert_eq!(header(&preflight, "access-control-allow-origin"), None);
    assert_eq!(header(&get, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn cors_headers_absent_without_allowed_origins() {
    let (server, auth, info) = spawn_with_file("a.txt", "text/plain", b"cors").await;

    let preflight = preflight(&server, APP, "authorization,range").await;
    let get = get_from_app(&server, &auth, &info).await;

    assert_eq!(cors_headers(&preflight), Vec::<String>::new(), "preflight");
    assert_eq!(get.status(), 200);
    assert_eq!(cors_headers(&get), Vec::<String>::new(), "GET");
}

#[tokio::test]
async fn cors_refuses_lookalike_origins() {
    let server = TestServer::spawn_with(&[("ALLOWED_ORIGINS", APP)]).await;

    for origin in [
        "https://app.example.com.evil.example.com",
        "https://app.example.com:8443",
        "http://app.example.com",
        "https://evilapp.example.com",
        "null",
    ] {
        let response = preflight(&server, origin, "authorization").await;
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            None,
            "preflight from {origin}"
        );
    }
}

#[tokio::test]
async fn cors_headers_on_error_and_rate_limited_responses() {
    let server = TestServer::spawn_with(&[
        ("ALLOWED_ORIGINS", APP),
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_DOWNLOAD", "1/60s"),
    ])
    .await;
    let path = format!("/files/{}", uuid::Uuid::new_v4());

    let unauthenticated = send(&server, Method::GET, &path, &[("Origin", APP)]).await;
    let limited = send(&server, Method::GET, &path, &[("Origin", APP)]).await;

    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(
        header(&unauthenticated, "access-control-allow-origin").as_deref(),
        Some(APP),
        "a browser app must be able to read the 401"
    );
    assert_eq!(limited.status(), 429);
    assert_eq!(
        header(&limited, "access-control-allow-origin").as_deref(),
        Some(APP),
        "a browser app must be able to read the 429"
    );
}

#[tokio::test]
async fn cors_preflight_and_rate_limited_responses_carry_security_headers() {
    let server = TestServer::spawn_with(&[
        ("ALLOWED_ORIGINS", APP),
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_UPLOAD", "1/60s"),
        ("HSTS_ENABLED", "true"),
    ])
    .await;
    let preflight = preflight(&server, APP, "authorization,range").await;
    let auth = server.bearer(Some(1), 1);
    let _ = server
        .upload(&auth, "a.txt", "text/plain", b"x".to_vec())
        .await;
    let limited = server
        .upload(&auth, "a.txt", "text/plain", b"x".to_vec())
        .await;
    assert_eq!(limited.status(), 429);

    for (what, response) in [("preflight", &preflight), ("429", &limited)] {
        let hsts = (
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        );
        for (name, value) in SECURITY_HEADERS.into_iter().chain([hsts]) {
            assert_eq!(
                header(response, name).as_deref(),
                Some(value),
                "{name} on the {what}"
            );
        }
    }
}
