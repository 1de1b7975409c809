//! Public and embed tokens read from Redis: the header and cookie forms they arrive in, the
//! lengths that may be looked up, and what a public token may read. They never carry a user.

use reqwest::Method;
use stowage_tests::TestServer;

use crate::common::{
    PUBLIC_P5, TOKEN_TTL, expect_error, expect_uploaded, file_id, get_with, opaque_token,
    redis_set, send, spawn_on_redis, upload_with,
};

/// A server on the test Redis holding `value` under public token `token`; returns the server.
async fn spawn_with_public_token(token: &str, value: &[u8]) -> TestServer {
    let (server, url, prefix) = spawn_on_redis(&[]).await;
    redis_set(&url, &format!("{prefix}{token}"), value, TOKEN_TTL).await;
    server
}

/// Stores `value` under public token `token` and asserts an upload sending `headers` belongs to
/// `account_id` with no user.
async fn assert_public_upload(
    token: &str,
    value: &[u8],
    headers: &[(&str, &str)],
    account_id: i64,
) {
    let server = spawn_with_public_token(token, value).await;

    let response = upload_with(&server, headers, b"x").await;

    expect_uploaded(response, None, account_id).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_public_token_of_8_chars_uploads_without_user() {
    let header = [("X-Public-Authorization", "Token abcdefgh")];
    assert_public_upload("abcdefgh", PUBLIC_P5, &header, 9).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_public_embed_token_of_32_chars_uploads_without_user() {
    let embed = uuid::Uuid::new_v4().simple().to_string();
    let header = format!("Token {embed}");
    let value = br#"{"account_id": 11}"#;
    assert_public_upload(&embed, value, &[("X-Public-Authorization", &header)], 11).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_public_token_in_bare_cookie_uploads_without_user() {
    let cookie = [("Cookie", "public-token=pubtok01")];
    assert_public_upload("pubtok01", PUBLIC_P5, &cookie, 9).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_public_token_in_token_prefixed_cookie_uploads_without_user() {
    let cookie = [("Cookie", "public-token=Token pubtok02")];
    assert_public_upload("pubtok02", PUBLIC_P5, &cookie, 9).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_public_token_of_9_chars_is_never_valid() {
    let server = spawn_with_public_token("abcdefghi", PUBLIC_P5).await;

    let header = [("X-Public-Authorization", "Token abcdefghi")];
    let by_header = upload_with(&server, &header, b"x").await;
    let by_cookie = upload_with(&server, &[("Cookie", "public-token=abcdefghi")], b"x").await;

    expect_error(by_header, 401, "UNAUTHENTICATED").await;
    expect_error(by_cookie, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_public_token_reads_account_level_files_of_its_account() {
    let server = spawn_with_public_token("pubtok03", PUBLIC_P5).await;
    let public = [("X-Public-Authorization", "Token pubtok03")];
    let info = expect_uploaded(upload_with(&server, &public, b"form file").await, None, 9).await;
    let path = format!("/files/{}", file_id(&info));

    let download = get_with(&server, &path, &public).await;
    let head = send(&server, Method::HEAD, &path, &public).await;

    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().as_ref(), b"form file");
    assert_eq!(head.status(), 200);
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_invalid_cookie_token_falls_through_to_public_token() {
    let cookie = format!(
        "file_service_auth={}; public-token=pubtok04",
        opaque_token()
    );
    assert_public_upload("pubtok04", PUBLIC_P5, &[("Cookie", &cookie)], 9).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_public_token_never_carries_a_user() {
    let value = br#"{"user_id": 42, "account_id": 9}"#;
    let header = [("X-Public-Authorization", "Token pubtok07")];
    assert_public_upload("pubtok07", value, &header, 9).await;
}
