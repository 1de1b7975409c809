//! Cross-account reads are refused whatever `ACCESS_POLICY` says, and when the permission
//! service denies them.

use reqwest::Method;
use stowage_tests::TestServer;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{create_signed_url, expect_error, file_id, get_with, send};

/// Uploads a file as (`user_id`, account 1) and returns its id.
async fn upload_in_account_1(server: &TestServer, user_id: Option<i64>) -> String {
    let info = server
        .upload_ok(
            &server.bearer(user_id, 1),
            "ledger.txt",
            "text/plain",
            b"ledger".to_vec(),
        )
        .await;
    file_id(&info)
}

/// Asserts `auth` gets `403 FILE_ACCESS_DENIED` on GET, HEAD, info and signed-url of `id`.
async fn assert_every_read_denied(server: &TestServer, auth: &str, id: &str) {
    let path = format!("/files/{id}");
    let download = get_with(server, &path, &[("Authorization", auth)]).await;
    expect_error(download, 403, "FILE_ACCESS_DENIED").await;
    let head = send(server, Method::HEAD, &path, &[("Authorization", auth)]).await;
    assert_eq!(head.status(), 403, "HEAD {path}");
    let info = get_with(server, &format!("{path}/info"), &[("Authorization", auth)]).await;
    expect_error(info, 403, "FILE_ACCESS_DENIED").await;
    let signed = create_signed_url(server, auth, id, None).await;
    expect_error(signed, 403, "FILE_ACCESS_DENIED").await;
}

#[tokio::test]
async fn access_cross_account_read_denied_under_owner_policy() {
    let server = TestServer::spawn_with(&[("ACCESS_POLICY", "owner")]).await;
    let id = upload_in_account_1(&server, Some(1)).await;

    assert_every_read_denied(&server, &server.bearer(Some(2), 2), &id).await;
}

#[tokio::test]
async fn access_cross_account_read_denied_under_account_policy() {
    let server = TestServer::spawn_with(&[("ACCESS_POLICY", "account")]).await;
    let personal = upload_in_account_1(&server, Some(1)).await;
    let account_level = upload_in_account_1(&server, None).await;
    let same_account = get_with(
        &server,
        &format!("/files/{personal}"),
        &[("Authorization", &server.bearer(Some(3), 1))],
    )
    .await;
    assert_eq!(
        same_account.status(),
        200,
        "the account policy lets account 1 read"
    );

    assert_every_read_denied(&server, &server.bearer(Some(2), 2), &personal).await;
    assert_every_read_denied(&server, &server.bearer(None, 2), &account_level).await;
}

#[tokio::test]
async fn access_cross_account_read_denied_when_permission_service_denies() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&mock)
        .await;
    let server = TestServer::spawn_with(&[
        ("PERMISSION_CHECK_URL", &format!("{}/check", mock.uri())),
        ("ACCESS_POLICY", "account"),
    ])
    .await;
    let id = upload_in_account_1(&server, Some(1)).await;

    assert_every_read_denied(&server, &server.bearer(Some(2), 2), &id).await;
    assert_every_read_denied(&server, &server.bearer(Some(3), 1), &id).await;
}
