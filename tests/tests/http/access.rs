//! Access rules: owner, account-level files, `ACCESS_POLICY`, and who may delete.

use reqwest::Method;
use stowage_tests::TestServer;

use crate::common::{expect_error, file_id, get, send};

/// Uploads a file as (`user_id`, `account_id`) and returns its path.
async fn upload_as(server: &TestServer, user_id: Option<i64>, account_id: i64) -> String {
    let info = server
        .upload_ok(
            &server.bearer(user_id, account_id),
            "doc.txt",
            "text/plain",
            b"secret plans".to_vec(),
        )
        .await;
    format!("/files/{}", file_id(&info))
}

/// Asserts `auth` may GET, HEAD and read the info of `path`.
async fn assert_readable(server: &TestServer, auth: &str, path: &str) {
    let download = get(server, auth, path).await;
    assert_eq!(download.status(), 200, "GET {path}");
    assert_eq!(download.bytes().await.unwrap().as_ref(), b"secret plans");
    let head = send(server, Method::HEAD, path, &[("Authorization", auth)]).await;
    assert_eq!(head.status(), 200, "HEAD {path}");
    let info = get(server, auth, &format!("{path}/info")).await;
    assert_eq!(info.status(), 200, "GET {path}/info");
}

/// Asserts `auth` gets `403 FILE_ACCESS_DENIED` on GET, HEAD and info of `path`.
async fn assert_denied(server: &TestServer, auth: &str, path: &str) {
    expect_error(get(server, auth, path).await, 403, "FILE_ACCESS_DENIED").await;
    let head = send(server, Method::HEAD, path, &[("Authorization", auth)]).await;
    assert_eq!(head.status(), 403, "HEAD {path}");
    let info = get(server, auth, &format!("{path}/info")).await;
    expect_error(info, 403, "FILE_ACCESS_DENIED").await;
}

async fn delete(server: &TestServer, auth: &str, path: &str) -> reqwest::Response {
    send(server, Method::DELETE, path, &[("Authorization", auth)]).await
}

#[tokio::test]
async fn access_owner_reads_and_deletes_own_file() {
    let server = TestServer::spawn().await;
    let owner = server.bearer(Some(1), 1);
    let path = upload_as(&server, Some(1), 1).await;
    assert_readable(&server, &owner, &path).await;
    assert_eq!(server.blob_files().len(), 1);

    let deleted = delete(&server, &owner, &path).await;

    assert_eq!(deleted.status(), 204);
    assert!(deleted.bytes().await.unwrap().is_empty());
    expect_error(get(&server, &owner, &path).await, 404, "FILE_NOT_FOUND").await;
    let info = get(&server, &owner, &format!("{path}/info")).await;
    expect_error(info, 404, "FILE_NOT_FOUND").await;
    let head = send(&server, Method::HEAD, &path, &[("Authorization", &owner)]).await;
    assert_eq!(head.status(), 404);
    expect_error(delete(&server, &owner, &path).await, 404, "FILE_NOT_FOUND").await;
    assert!(
        server.blob_files().is_empty(),
        "blob left on disk: {:?}",
        server.blob_files()
    );
    assert_eq!(server.row_count().await, 0, "DELETE removes the record");
    let listing = get(&server, &owner, "/files").await;
    assert_eq!(
        crate::common::json_with_status(listing, 200).await["items"],
        serde_json::json!([])
    );
}

#[tokio::test]
async fn access_other_user_same_account_denied_under_owner_policy() {
    let server = TestServer::spawn_with(&[("ACCESS_POLICY", "owner")]).await;
    let path = upload_as(&server, Some(1), 1).await;

    assert_denied(&server, &server.bearer(Some(2), 1), &path).await;
}

#[tokio::test]
async fn access_other_user_same_account_denied_by_default() {
    let server = TestServer::spawn().await;
    let path = upload_as(&server, Some(1), 1).await;

    assert_denied(&server, &server.bearer(Some(2), 1), &path).await;
}

#[tokio::test]
async fn access_other_user_same_account_allowed_under_account_policy() {
    let server = TestServer::spawn_with(&[("ACCESS_POLICY", "account")]).await;
    let path = upload_as(&server, Some(1), 1).await;

    assert_readable(&server, &server.bearer(Some(2), 1), &path).await;
}

#[tokio::test]
async fn access_account_policy_still_refuses_delete_by_other_user() {
    let server = TestServer::spawn_with(&[("ACCESS_POLICY", "account")]).await;
    let path = upload_as(&server, Some(1), 1).await;

    let response = delete(&server, &server.bearer(Some(2), 1), &path).await;

    expect_error(response, 403, "FILE_ACCESS_DENIED").await;
    assert_readable(&server, &server.bearer(Some(1), 1), &path).await;
}

#[tokio::test]
async fn access_other_account_denied_under_either_policy() {
    for policy in ["owner", "account"] {
        let server = TestServer::spawn_with(&[("ACCESS_POLICY", policy)]).await;
        let path = upload_as(&server, Some(1), 1).await;

        assert_denied(&server, &server.bearer(Some(2), 2), &path).await;
        assert_denied(&server, &server.bearer(None, 2), &path).await;
    }
}

#[tokio::test]
async fn access_account_level_file_readable_by_null_user_of_same_account() {
    let server = TestServer::spawn().await;
    let path = upload_as(&server, None, 1).await;

    assert_readable(&server, &server.bearer(None, 1), &path).await;
}

#[tokio::test]
async fn access_account_level_file_denied_to_null_user_of_other_account() {
    let server = TestServer::spawn().await;
    let path = upload_as(&server, None, 1).await;

    assert_denied(&server, &server.bearer(None, 2), &path).await;
}

#[tokio::test]
async fn access_account_level_file_denied_to_named_user_under_owner_policy() {
    let server = TestServer::spawn().await;
    let path = upload_as(&server, None, 1).await;

    assert_denied(&server, &server.bearer(Some(1), 1), &path).await;
}

#[tokio::test]
async fn access_user_file_denied_to_null_user_of_same_account() {
    let server = TestServer::spawn().await;
    let path = upload_as(&server, Some(1), 1).await;

    assert_denied(&server, &server.bearer(None, 1), &path).await;
}

#[tokio::test]
async fn access_account_level_file_cannot_be_deleted() {
    let server = TestServer::spawn().await;
    let path = upload_as(&server, None, 1).await;

    let by_null = delete(&server, &server.bearer(None, 1), &path).await;
    let by_user = delete(&server, &server.bearer(Some(1), 1), &path).await;

    expect_error(by_null, 403, "FILE_ACCESS_DENIED").await;
    expect_error(by_user, 403, "FILE_ACCESS_DENIED").await;
    assert_readable(&server, &server.bearer(None, 1), &path).await;
    assert_eq!(server.blob_files().len(), 1);
}

#[tokio::test]
async fn access_other_user_delete_is_denied_and_file_survives() {
    let server = TestServer::spawn().await;
    let path = upload_as(&server, Some(1), 1).await;

    let by_colleague = delete(&server, &server.bearer(Some(2), 1), &path).await;
    let by_stranger = delete(&server, &server.bearer(Some(3), 2), &path).await;

    expect_error(by_colleague, 403, "FILE_ACCESS_DENIED").await;
    expect_error(by_stranger, 403, "FILE_ACCESS_DENIED").await;
    assert_readable(&server, &server.bearer(Some(1), 1), &path).await;
    assert_eq!(server.row_count().await, 1);
    assert_eq!(server.blob_files().len(), 1);
}

#[tokio::test]
async fn access_same_user_id_in_another_account_is_not_the_owner() {
    let server = TestServer::spawn_with(&[("ACCESS_POLICY", "owner")]).await;
    let path = upload_as(&server, Some(1), 1).await;
    let namesake = server.bearer(Some(1), 2);

    assert_denied(&server, &namesake, &path).await;
    let deleted = delete(&server, &namesake, &path).await;

    expect_error(deleted, 403, "FILE_ACCESS_DENIED").await;
    assert_readable(&server, &server.bearer(Some(1), 1), &path).await;
    assert_eq!(server.row_count().await, 1);
    assert_eq!(server.blob_files().len(), 1);
}
