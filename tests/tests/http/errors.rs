//! The JSON error shape and the request-shape errors: unknown routes, wrong methods, bodies that
//! are not uploads, and bad query parameters.

use std::time::Duration;

use reqwest::Method;
use stowage_tests::{TestServer, client};

use crate::common::{
    assert_nothing_stored, expect_error, file_id, get, header, send, spawn_with_file,
};

#[tokio::test]
async fn errors_unknown_route_returns_404_not_found() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);

    for path in ["/nope/a/b", "/files/a/b/c", "/health", "/health/nope"] {
        expect_error(get(&server, &auth, path).await, 404, "NOT_FOUND").await;
        let anonymous = send(&server, Method::GET, path, &[]).await;
        expect_error(anonymous, 404, "NOT_FOUND").await;
    }
    // File routes are served at the root too, so a single segment there is a file id.
    expect_error(get(&server, &auth, "/nope").await, 404, "FILE_NOT_FOUND").await;
}

#[tokio::test]
async fn errors_known_path_with_wrong_method_returns_405() {
    let (server, auth, info) = spawn_with_file("a.txt", "text/plain", b"a").await;
    let id = file_id(&info);

    for (method, path) in [
        (Method::PUT, format!("/files/{id}")),
        (Method::PATCH, format!("/files/{id}/info")),
        (Method::POST, format!("/files/{id}/info")),
        (Method::DELETE, "/files".to_owned()),
        (Method::POST, "/health/live".to_owned()),
    ] {
        let response = send(&server, method.clone(), &path, &[("Authorization", &auth)]).await;
        expect_error(response, 405, "METHOD_NOT_ALLOWED").await;
    }
}

#[tokio::test]
async fn errors_405_lists_allowed_methods_in_allow_header() {
    let server = TestServer::spawn().await;
    let path = format!("/files/{}", uuid::Uuid::new_v4());

    let response = send(
        &server,
        Method::PUT,
        &path,
        &[("Authorization", &server.bearer(Some(1), 1))],
    )
    .await;

    assert_eq!(response.status(), 405);
    let allow = header(&response, "allow").unwrap_or_default();
    assert!(
        allow.contains("GET") && allow.contains("DELETE"),
        "RFC 9110 15.5.6: a 405 MUST carry Allow with the path's methods; got {allow:?}"
    );
}

#[tokio::test]
async fn errors_upload_with_json_body_returns_400() {
    let server = TestServer::spawn().await;

    let response = client()
        .post(server.url("/files"))
        .header("Authorization", server.bearer(Some(1), 1))
        .header("Content-Type", "application/json")
        .body(r#"{"file": "aGVsbG8="}"#)
        .send()
        .await
        .unwrap();

    expect_error(response, 400, "VALIDATION_ERROR").await;
    assert_nothing_stored(&server, Duration::ZERO).await;
}

#[tokio::test]
async fn errors_upload_without_content_type_returns_400() {
    let server = TestServer::spawn().await;

    let response = client()
        .post(server.url("/files"))
        .header("Authorization", server.bearer(Some(1), 1))
        .body("raw bytes")
        .send()
        .await
        .unwrap();

    expect_error(response, 400, "VALIDATION_ERROR").await;
}

/// Asserts an upload whose multipart `body` (with `boundary`) is no valid upload is a `400` and
/// leaves nothing stored.
async fn assert_multipart_refused(boundary: &str, body: &'static str) {
    let server = TestServer::spawn().await;

    let response = server
        .post_form("/files", boundary)
        .header("Authorization", server.bearer(Some(1), 1))
        .body(body)
        .send()
        .await
        .unwrap();

    expect_error(response, 400, "VALIDATION_ERROR").await;
    assert_nothing_stored(&server, Duration::from_secs(2)).await;
}

/// A complete form with a file under another name and a plain field, but no `file` part.
const NO_FILE_PART: &str = "--stowage-no-file\r\nContent-Disposition: form-data; name=\"document\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--stowage-no-file\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nno file here\r\n--stowage-no-file--\r\n";

/// A `file` part whose closing boundary never comes.
const TRUNCATED: &str = "--stowage-truncated\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello, but the closing boundary never comes";

#[tokio::test]
async fn errors_multipart_without_file_part_returns_400() {
    assert_multipart_refused("stowage-no-file", NO_FILE_PART).await;
}

#[tokio::test]
async fn errors_truncated_multipart_returns_400() {
    assert_multipart_refused("stowage-truncated", TRUNCATED).await;
}

#[tokio::test]
async fn errors_bad_limit_returns_400() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);

    for limit in ["0", "1001", "abc", "-1", "1.5"] {
        let response = get(&server, &auth, &format!("/files?limit={limit}")).await;
        let body = expect_error(response, 400, "VALIDATION_ERROR").await;
        assert!(body["message"].is_string(), "limit={limit}: {body}");
    }
    for limit in ["1", "1000"] {
        let response = get(&server, &auth, &format!("/files?limit={limit}")).await;
        assert_eq!(response.status(), 200, "limit={limit}");
    }
}

#[tokio::test]
async fn errors_bad_cursor_returns_400() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);

    for cursor in ["garbage", "%00%01", "eyJ4IjoxfQ", "!!!!"] {
        let response = get(&server, &auth, &format!("/files?cursor={cursor}")).await;
        expect_error(response, 400, "VALIDATION_ERROR").await;
    }
}

#[tokio::test]
async fn errors_bad_disposition_returns_400() {
    let (server, auth, info) = spawn_with_file("a.txt", "text/plain", b"a").await;

    for disposition in ["evil", "INLINE; x", "download"] {
        let response = get(
            &server,
            &auth,
            &format!("/files/{}?disposition={disposition}", file_id(&info)),
        )
        .await;
        expect_error(response, 400, "VALIDATION_ERROR").await;
    }
}

#[tokio::test]
async fn errors_request_shape_is_checked_before_access() {
    let (server, _owner, info) = spawn_with_file("a.txt", "text/plain", b"a").await;
    let stranger = server.bearer(Some(2), 2);

    let bad_query = get(
        &server,
        &stranger,
        &format!("/files/{}?disposition=evil", file_id(&info)),
    )
    .await;
    let bad_id = get(
        &server,
        &stranger,
        &format!("/files/{}", file_id(&info).to_uppercase()),
    )
    .await;

    expect_error(bad_query, 400, "VALIDATION_ERROR").await;
    expect_error(bad_id, 404, "FILE_NOT_FOUND").await;
}
