//! Signed URLs: who may create them, their expiry, what they grant with no other credential, and
//! every way a tampered, foreign or expired one is refused.

use std::time::Duration;

use reqwest::{Method, Response};
use serde_json::{Value, json};
use stowage_tests::{TestServer, client, now, pattern, send_as, upload_as_owner};

use crate::common::{
    assert_log_free_of, create_signed_url, expect_error, file_id, get_with, json_with_status,
    query_param, send, signature_of, signed_url,
};

/// Uploads `data` as user 1 of account 1 and returns the file id.
async fn upload(server: &TestServer, data: &[u8]) -> String {
    file_id(&upload_as_owner(server, "report.bin", "application/octet-stream", data).await)
}

/// A fresh server with a file `hello` of user 1 and a signed URL of it; returns the server, the
/// file's id and the URL.
async fn signed_hello() -> (TestServer, String, String) {
    let server = TestServer::spawn().await;
    let id = upload(&server, b"hello").await;
    let url = signed_url(&server, &server.bearer(Some(1), 1), &id).await;
    (server, id, url)
}

/// `method url` with extra `headers` and no credential.
async fn fetch(method: Method, url: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = client().request(method, url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of an RFC 3339 UTC timestamp `YYYY-MM-DDTHH:MM:SS[.frac]Z`.
fn parse_rfc3339_utc(s: &str) -> i64 {
    let fail = || -> ! { panic!("{s:?} is not an RFC 3339 UTC timestamp ending in Z") };
    let rest = s.strip_suffix('Z').unwrap_or_else(|| fail());
    let (date, time) = rest.split_once('T').unwrap_or_else(|| fail());
    let time = time.split('.').next().unwrap_or_default();
    let number = |part: &str, len: usize| -> i64 {
        if part.len() != len || !part.bytes().all(|c| c.is_ascii_digit()) {
            fail();
        }
        part.parse().unwrap_or_else(|_| fail())
    };
    let date: Vec<&str> = date.split('-').collect();
    let clock: Vec<&str> = time.split(':').collect();
    let ([year, month, day], [h, m, sec]) = (date.as_slice(), clock.as_slice()) else {
        fail()
    };
    days_from_civil(number(year, 4), number(month, 2), number(day, 2)) * 86_400
        + number(h, 2) * 3600
        + number(m, 2) * 60
        + number(sec, 2)
}

/// Asserts a signed-URL answer for `id` expires about `seconds` from now; returns its `url`.
fn assert_signed_url_answer(server: &TestServer, body: &Value, id: &str, seconds: i64) -> String {
    let url = body["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no url: {body}"));
    let expires_at = body["expires_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no expires_at: {body}"));
    let expires_at = parse_rfc3339_utc(expires_at);
    assert!(
        (expires_at - (now() + seconds)).abs() <= 5,
        "expires_at {} is not about now + {seconds}: {body}",
        body["expires_at"]
    );
    assert!(
        url.starts_with(&format!("{}/files/{id}?", server.base_url)),
        "url is not absolute under {}: {url}",
        server.base_url
    );
    let expires: i64 = query_param(url, "expires")
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("no numeric expires in {url}"));
    assert_eq!(
        expires, expires_at,
        "expires of {url} and expires_at {body}"
    );
    let signature = signature_of(url);
    assert!(
        !signature.is_empty() && signature.bytes().all(|c| c.is_ascii_hexdigit()),
        "signature is not hex: {url}"
    );
    url.to_owned()
}

/// Asserts GET and HEAD of `url` are `403 INVALID_SIGNATURE`.
async fn assert_invalid_signature(url: &str) {
    expect_error(fetch(Method::GET, url, &[]).await, 403, "INVALID_SIGNATURE").await;
    assert_eq!(
        fetch(Method::HEAD, url, &[]).await.status(),
        403,
        "HEAD {url}"
    );
}

#[tokio::test]
async fn signed_url_defaults_to_one_hour() {
    let server = TestServer::spawn().await;
    let id = upload(&server, b"hello").await;
    let owner = server.bearer(Some(1), 1);

    let without_body = create_signed_url(&server, &owner, &id, None).await;
    let empty_object = create_signed_url(&server, &owner, &id, Some(json!({}))).await;

    assert_signed_url_answer(
        &server,
        &json_with_status(without_body, 200).await,
        &id,
        3600,
    );
    assert_signed_url_answer(
        &server,
        &json_with_status(empty_object, 200).await,
        &id,
        3600,
    );
}

#[tokio::test]
async fn signed_url_honours_expires_in() {
    let server = TestServer::spawn().await;
    let id = upload(&server, b"hello").await;
    let owner = server.bearer(Some(1), 1);

    let short = create_signed_url(&server, &owner, &id, Some(json!({"expires_in": 60}))).await;
    let longest =
        create_signed_url(&server, &owner, &id, Some(json!({"expires_in": 604_800}))).await;

    assert_signed_url_answer(&server, &json_with_status(short, 200).await, &id, 60);
    assert_signed_url_answer(&server, &json_with_status(longest, 200).await, &id, 604_800);
}

#[tokio::test]
async fn signed_url_rejects_expires_in_out_of_range() {
    let server = TestServer::spawn().await;
    let id = upload(&server, b"hello").await;
    let owner = server.bearer(Some(1), 1);

    for expires_in in [json!(0), json!(604_801), json!(-1), json!("soon")] {
        let response = create_signed_url(
            &server,
            &owner,
            &id,
            Some(json!({"expires_in": expires_in})),
        )
        .await;
        let body = expect_error(response, 400, "VALIDATION_ERROR").await;
        assert!(
            body["message"].is_string(),
            "expires_in {expires_in}: {body}"
        );
    }
}

#[tokio::test]
async fn signed_url_creation_needs_a_reader() {
    let server = TestServer::spawn().await;
    let id = upload(&server, b"hello").await;

    let other_user = create_signed_url(&server, &server.bearer(Some(2), 1), &id, None).await;
    let anonymous = client()
        .post(server.url(&format!("/files/{id}/signed-url")))
        .send()
        .await
        .unwrap();

    expect_error(other_user, 403, "FILE_ACCESS_DENIED").await;
    expect_error(anonymous, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn signed_url_serves_get_head_and_range_without_credential() {
    // A process: the test reads its log.
    let server = TestServer::process().await;
    let data = pattern(10_000, 7);
    let id = upload(&server, &data).await;
    let url = signed_url(&server, &server.bearer(Some(1), 1), &id).await;

    let whole = fetch(Method::GET, &url, &[]).await;
    let head = fetch(Method::HEAD, &url, &[]).await;
    let range = fetch(Method::GET, &url, &[("Range", "bytes=100-199")]).await;

    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap().as_ref(), data.as_slice());
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some("10000")
    );
    assert_eq!(range.status(), 206);
    assert_eq!(
        range
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok()),
        Some("bytes 100-199/10000")
    );
    assert_eq!(range.bytes().await.unwrap().as_ref(), &data[100..200]);
    assert_log_free_of(
        &server,
        &[
            ("AUTH_SECRET_KEY", &server.secret),
            ("the signed URL's signature", &signature_of(&url)),
        ],
    );
}

#[tokio::test]
async fn signed_url_with_one_signature_char_flipped_is_invalid() {
    let (_server, _id, url) = signed_hello().await;
    let signature = signature_of(&url);
    let last = signature.len() - 1;
    let flipped = if signature.ends_with('0') { '1' } else { '0' };
    let tampered = url.replace(
        &format!("signature={signature}"),
        &format!("signature={}{flipped}", &signature[..last]),
    );
    assert_ne!(tampered, url);

    assert_invalid_signature(&tampered).await;
}

#[tokio::test]
async fn signed_url_with_changed_expires_is_invalid() {
    let (_server, _id, url) = signed_hello().await;
    let expires: i64 = query_param(&url, "expires").unwrap().parse().unwrap();
    let tampered = url.replace(
        &format!("expires={expires}"),
        &format!("expires={}", expires + 3600),
    );
    assert_ne!(tampered, url);

    assert_invalid_signature(&tampered).await;
}

#[tokio::test]
async fn signed_url_with_expires_spelt_otherwise_is_invalid() {
    let (_server, _id, url) = signed_hello().await;
    let expires = query_param(&url, "expires").unwrap();
    assert_eq!(fetch(Method::GET, &url, &[]).await.status(), 200);

    // The same number, so the same signature would match were it parsed leniently.
    for spelling in [
        format!("+{expires}"),
        format!("0{expires}"),
        format!("00{expires}"),
    ] {
        let respelt = url.replace(
            &format!("expires={expires}"),
            &format!("expires={spelling}"),
        );
        assert_ne!(respelt, url);
        assert_invalid_signature(&respelt).await;
    }
}

#[tokio::test]
async fn signed_url_signature_of_another_file_is_invalid() {
    let server = TestServer::spawn().await;
    let target = upload(&server, b"target").await;
    let other = upload(&server, b"other").await;
    let other_url = signed_url(&server, &server.bearer(Some(1), 1), &other).await;
    let (_, query) = other_url.split_once('?').unwrap();

    assert_invalid_signature(&server.url(&format!("/files/{target}?{query}"))).await;
}

#[tokio::test]
async fn signed_url_without_signature_is_invalid() {
    let (server, id, url) = signed_hello().await;
    let expires = query_param(&url, "expires").unwrap();

    assert_invalid_signature(&server.url(&format!("/files/{id}?expires={expires}"))).await;
    assert_invalid_signature(&server.url(&format!("/files/{id}?expires={expires}&signature=")))
        .await;
}

#[tokio::test]
async fn signed_url_expired_is_invalid() {
    let server = TestServer::spawn().await;
    let id = upload(&server, b"hello").await;
    let response = create_signed_url(
        &server,
        &server.bearer(Some(1), 1),
        &id,
        Some(json!({"expires_in": 1})),
    )
    .await;
    let url = json_with_status(response, 200).await["url"]
        .as_str()
        .unwrap()
        .to_owned();

    tokio::time::sleep(Duration::from_millis(2200)).await;

    assert_invalid_signature(&url).await;
}

#[tokio::test]
async fn signed_url_does_not_allow_delete_or_info() {
    let (server, id, url) = signed_hello().await;
    let (_, query) = url.split_once('?').unwrap();

    let delete = fetch(Method::DELETE, &url, &[]).await;
    let info = fetch(
        Method::GET,
        &server.url(&format!("/files/{id}/info?{query}")),
        &[],
    )
    .await;

    let delete_status = delete.status().as_u16();
    let delete_body = delete.text().await.unwrap();
    assert!(
        matches!(delete_status, 401 | 403),
        "DELETE with a signed URL answered {delete_status}: {delete_body}"
    );
    let info_status = info.status().as_u16();
    let info_body = info.text().await.unwrap();
    assert!(
        matches!(info_status, 401 | 403),
        "info with a signed URL answered {info_status}: {info_body}"
    );
    let still_there = get_with(
        &server,
        &format!("/files/{id}"),
        &[("Authorization", &server.bearer(Some(1), 1))],
    )
    .await;
    assert_eq!(still_there.status(), 200, "the file survived the DELETE");
    assert_eq!(
        send(&server, Method::HEAD, &format!("/files/{id}?{query}"), &[])
            .await
            .status(),
        200
    );
}

/// A second server on `first`'s database and blob store (disk or S3), with `extra` settings.
async fn spawn_sharing_stores(first: &TestServer, extra: &[(&str, &str)]) -> TestServer {
    let shared: Vec<(&str, &str)> = first
        .env()
        .iter()
        .filter(|(name, _)| {
            matches!(
                name.as_str(),
                "DATA_DIR" | "DATABASE_URL" | "STORAGE_BACKEND"
            ) || name.starts_with("S3_")
        })
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let mut env = shared;
    env.extend_from_slice(extra);
    TestServer::spawn_with(&env).await
}

#[tokio::test]
async fn signed_url_from_a_server_with_another_secret_is_invalid() {
    let first = TestServer::spawn_with(&[("SIGNED_URL_SECRET", "first-signing-secret")]).await;
    let id = upload(&first, b"shared bytes").await;
    let url = signed_url(&first, &first.bearer(Some(1), 1), &id).await;
    let (_, query) = url.split_once('?').unwrap();
    // Same stores (so the file exists there too), another signing secret.
    let other =
        spawn_sharing_stores(&first, &[("SIGNED_URL_SECRET", "second-signing-secret")]).await;
    // Same stores and signing secret, but (as every test server) its own AUTH_SECRET_KEY.
    let twin = spawn_sharing_stores(&first, &[("SIGNED_URL_SECRET", "first-signing-secret")]).await;

    assert_invalid_signature(&other.url(&format!("/files/{id}?{query}"))).await;
    let on_twin = fetch(Method::GET, &twin.url(&format!("/files/{id}?{query}")), &[]).await;
    assert_eq!(
        on_twin.status(),
        200,
        "the key comes from SIGNED_URL_SECRET"
    );
    assert_eq!(on_twin.bytes().await.unwrap().as_ref(), b"shared bytes");
}

#[tokio::test]
async fn signed_url_from_a_server_with_another_auth_secret_is_invalid() {
    let first = TestServer::spawn().await;
    let id = upload(&first, b"shared bytes").await;
    let url = signed_url(&first, &first.bearer(Some(1), 1), &id).await;
    let (_, query) = url.split_once('?').unwrap();
    let other = spawn_sharing_stores(&first, &[]).await;

    assert_invalid_signature(&other.url(&format!("/files/{id}?{query}"))).await;
}

#[tokio::test]
async fn signed_url_rejects_malformed_body() {
    let server = TestServer::spawn().await;
    let id = upload(&server, b"hello").await;

    let response = client()
        .post(server.url(&format!("/files/{id}/signed-url")))
        .header("Authorization", server.bearer(Some(1), 1))
        .header("Content-Type", "application/json")
        .body("{\"expires_in\": ")
        .send()
        .await
        .unwrap();

    expect_error(response, 400, "VALIDATION_ERROR").await;
}

#[tokio::test]
async fn signed_url_of_a_deleted_file_is_not_found() {
    let (server, id, url) = signed_hello().await;
    let owner = server.bearer(Some(1), 1);
    let deleted = send_as(&server, Method::DELETE, &format!("/files/{id}"), &owner).await;
    assert_eq!(deleted.status(), 204);

    let response = fetch(Method::GET, &url, &[]).await;

    expect_error(response, 404, "FILE_NOT_FOUND").await;
}

#[tokio::test]
async fn signed_url_is_built_on_public_url() {
    let server = TestServer::spawn_with(&[("PUBLIC_URL", "https://files.example.com")]).await;
    let id = upload(&server, b"hello").await;

    let url = signed_url(&server, &server.bearer(Some(1), 1), &id).await;

    assert!(
        url.starts_with(&format!("https://files.example.com/files/{id}?")),
        "signed URL not under PUBLIC_URL: {url}"
    );
    let (_, query) = url.split_once('?').unwrap();
    let local = fetch(
        Method::GET,
        &server.url(&format!("/files/{id}?{query}")),
        &[],
    )
    .await;
    assert_eq!(local.status(), 200);
}

#[tokio::test]
async fn signed_url_on_a_malformed_id_is_404_before_the_signature_is_judged() {
    let server = stowage_tests::TestServer::spawn().await;
    for query in ["expires=abc&signature=00", "signature=00", "expires=1"] {
        let response = stowage_tests::client()
            .get(server.url(&format!("/files/NOT-A-UUID?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{query}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["code"], "FILE_NOT_FOUND", "{query}");
    }
}
