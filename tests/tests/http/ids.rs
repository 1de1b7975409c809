//! Anything in the `{file_id}` position but a canonical lower-case UUID v4 is `404 FILE_NOT_FOUND`,
//! on every file route, even when it spells an existing file's id another way.

use reqwest::Method;
use stowage_tests::{TestServer, send_as};

use crate::common::{expect_error, file_id, send, spawn_with_file};

/// Asserts GET, HEAD, info and DELETE of `id` are all 404 (JSON `FILE_NOT_FOUND` where there is a body).
async fn assert_not_found_everywhere(server: &TestServer, auth: &str, id: &str) {
    let credential = [("Authorization", auth)];
    for (method, path) in [
        (Method::GET, format!("/files/{id}")),
        (Method::GET, format!("/files/{id}/info")),
        (Method::DELETE, format!("/files/{id}")),
    ] {
        let response = send(server, method.clone(), &path, &credential).await;
        let body = expect_error(response, 404, "FILE_NOT_FOUND").await;
        assert!(
            !body.to_string().to_lowercase().contains("sql"),
            "{method} {path}: {body}"
        );
    }
    let head = send(server, Method::HEAD, &format!("/files/{id}"), &credential).await;
    assert_eq!(head.status(), 404, "HEAD /files/{id}");
}

/// A server with one file of user 1; returns its credential and the file's id.
async fn with_file() -> (TestServer, String, String) {
    let (server, auth, info) = spawn_with_file("a.txt", "text/plain", b"a").await;
    (server, auth, file_id(&info))
}

#[tokio::test]
async fn ids_not_a_uuid_returns_404() {
    let (server, auth, _) = with_file().await;

    for id in ["not-a-uuid", "0", "1234", "null", "info"] {
        assert_not_found_everywhere(&server, &auth, id).await;
    }
}

#[tokio::test]
async fn ids_upper_case_spelling_of_existing_file_returns_404() {
    let (server, auth, id) = with_file().await;

    assert_not_found_everywhere(&server, &auth, &id.to_uppercase()).await;
}

#[tokio::test]
async fn ids_braced_spelling_of_existing_file_returns_404() {
    let (server, auth, id) = with_file().await;

    assert_not_found_everywhere(&server, &auth, &format!("%7B{id}%7D")).await;
    assert_not_found_everywhere(&server, &auth, &format!("urn:uuid:{id}")).await;
}

#[tokio::test]
async fn ids_simple_32_hex_spelling_of_existing_file_returns_404() {
    let (server, auth, id) = with_file().await;

    assert_not_found_everywhere(&server, &auth, &id.replace('-', "")).await;
}

#[tokio::test]
async fn ids_uuid_of_other_versions_returns_404() {
    let (server, auth, _) = with_file().await;

    for id in [
        "c232ab00-9414-11ec-b3c8-9f6bdeced846",
        "018f2d5e-7c4a-7b3e-8f1a-1c2d3e4f5a6b",
        "00000000-0000-0000-0000-000000000000",
    ] {
        assert_not_found_everywhere(&server, &auth, id).await;
    }
}

#[tokio::test]
async fn ids_missing_v4_returns_404() {
    let (server, auth, _) = with_file().await;

    assert_not_found_everywhere(&server, &auth, &uuid::Uuid::new_v4().to_string()).await;
}

#[tokio::test]
async fn ids_deleting_unknown_id_leaves_other_files_alone() {
    let (server, auth, id) = with_file().await;

    assert_not_found_everywhere(&server, &auth, &id.to_uppercase()).await;

    let download = send_as(&server, Method::GET, &format!("/files/{id}"), &auth).await;
    assert_eq!(download.status(), 200);
    assert_eq!(server.row_count().await, 1);
}
