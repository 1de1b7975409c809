//! Direct uploads (`POST /files/direct`): the client puts the bytes into the bucket on presigned
//! URLs with a plain HTTP client, then Stowage checks the object and records it.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use stowage_tests::{TEST_BUCKET, TestServer, client, file_id, json_with_status, pattern, send};

const PNG: &[u8] = &stowage_tests::images::PNG;

async fn s3_server() -> TestServer {
    TestServer::spawn_with(&[("STORAGE_BACKEND", "s3")]).await
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn post_json(server: &TestServer, auth: &str, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(server.url(path))
        .header("Authorization", auth)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Starts a direct upload, asserting 200.
async fn start(server: &TestServer, auth: &str, body: Value) -> Value {
    json_with_status(post_json(server, auth, "/files/direct", &body).await, 200).await
}

/// Sends `data` on the presigned `PUT` of `ticket`, with its signed headers.
async fn put(ticket: &Value, data: &[u8]) -> reqwest::Response {
    let mut request = client().put(ticket["url"].as_str().unwrap());
    for (name, value) in ticket["headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    request.body(data.to_vec()).send().await.unwrap()
}

async fn complete(
    server: &TestServer,
    auth: &str,
    ticket: &Value,
    body: Value,
) -> reqwest::Response {
    let id = ticket["upload_id"].as_str().unwrap();
    post_json(server, auth, &format!("/files/direct/{id}/complete"), &body).await
}

async fn code_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn download(server: &TestServer, auth: &str, id: &str) -> Vec<u8> {
    let response = send(
        server,
        Method::GET,
        &format!("/files/{id}"),
        &[("Authorization", auth)],
    )
    .await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

fn objects(server: &TestServer) -> usize {
    let s3 = server.s3.as_ref().unwrap();
    s3.files(TEST_BUCKET)
        .iter()
        .filter(|p| !p.to_string_lossy().contains(".s3s"))
        .count()
}

fn ticket_body(name: &str, ty: &str, data: &[u8]) -> Value {
    json!({"filename": name, "content_type": ty, "size": data.len()})
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn a_direct_put_then_completion_makes_an_ordinary_file() {
    let server = s3_server().await;
    let auth = server.bearer(Some(1), 1);
    let data = pattern(300_000, 7);
    let mut body = ticket_body("big.bin", "application/octet-stream", &data);
    body["sha256"] = json!(hex_sha256(&data));
    let ticket = start(&server, &auth, body).await;
    assert_eq!(ticket["method"], "PUT");
    assert!(
        ticket["headers"]["x-amz-checksum-sha256"].is_string(),
        "{ticket}"
    );

    let stored = put(&ticket, &data).await;
    assert!(
        stored.status().is_success(),
        "{}",
        stored.text().await.unwrap()
    );
    let response = complete(&server, &auth, &ticket, json!({})).await;
    let info = json_with_status(response, 201).await;

    assert_eq!(info["size"], data.len());
    assert_eq!(info["sha256"], hex_sha256(&data));
    assert_eq!(download(&server, &auth, &file_id(&info)).await, data);
    // A second completion never makes a second file.
    let again = code_of(complete(&server, &auth, &ticket, json!({})).await).await;
    assert_eq!(again, (409, "UPLOAD_COMPLETED".to_owned()));
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn curl_can_put_on_the_presigned_url() {
    let server = s3_server().await;
    let auth = server.bearer(Some(1), 1);
    let ticket = start(
        &server,
        &auth,
        ticket_body("c.txt", "text/plain", b"by curl"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.txt");
    std::fs::write(&path, b"by curl").unwrap();
    let mut curl = std::process::Command::new("curl");
    curl.args(["-sf", "-T"]).arg(&path);
    for (name, value) in ticket["headers"].as_object().unwrap() {
        curl.args(["-H", &format!("{name}: {}", value.as_str().unwrap())]);
    }
    let status = curl.arg(ticket["url"].as_str().unwrap()).status().unwrap();
    assert!(status.success());

    let info = json_with_status(complete(&server, &auth, &ticket, json!({})).await, 201).await;

    assert_eq!(download(&server, &auth, &file_id(&info)).await, b"by curl");
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn a_wrong_checksum_is_refused_by_the_store_or_at_completion() {
    let server = s3_server().await;
    let auth = server.bearer(Some(1), 1);
    let mut body = ticket_body("a.txt", "text/plain", b"hello");
    body["sha256"] = json!(hex_sha256(b"other"));
    let ticket = start(&server, &auth, body).await;

    let stored = put(&ticket, b"hello").await;
    assert!(
        !stored.status().is_success(),
        "the store verifies the checksum"
    );
    let refused = code_of(complete(&server, &auth, &ticket, json!({})).await).await;

    assert_eq!(refused, (422, "DIRECT_UPLOAD_INVALID".to_owned()));
    assert_eq!(objects(&server), 0);
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn a_wrong_size_or_no_object_is_422_and_nothing_is_kept() {
    let server = s3_server().await;
    let auth = server.bearer(Some(1), 1);
    let none = start(&server, &auth, ticket_body("a.txt", "text/plain", b"hello")).await;
    assert_eq!(
        code_of(complete(&server, &auth, &none, json!({})).await).await,
        (422, "DIRECT_UPLOAD_INVALID".to_owned())
    );

    // A store that does not enforce the signed length still gets the size checked at completion.
    let ticket = start(&server, &auth, ticket_body("a.txt", "text/plain", b"hello")).await;
    let mut longer = client().put(ticket["url"].as_str().unwrap());
    for (name, value) in ticket["headers"].as_object().unwrap() {
        if name != "content-length" {
            longer = longer.header(name, value.as_str().unwrap());
        }
    }
    let _ = longer.body("hello, longer").send().await.unwrap();
    let refused = code_of(complete(&server, &auth, &ticket, json!({})).await).await;

    assert_eq!(refused, (422, "DIRECT_UPLOAD_INVALID".to_owned()));
    assert_eq!(objects(&server), 0);
    // The upload is over.
    let again = code_of(complete(&server, &auth, &ticket, json!({})).await).await;
    assert_eq!(again, (404, "UPLOAD_NOT_FOUND".to_owned()));
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn only_the_starter_may_complete_and_concurrent_completions_make_one_file() {
    let server = s3_server().await;
    let auth = server.bearer(Some(1), 1);
    let ticket = start(&server, &auth, ticket_body("a.txt", "text/plain", b"hello")).await;
    assert!(put(&ticket, b"hello").await.status().is_success());

    let stranger =
        code_of(complete(&server, &server.bearer(Some(2), 1), &ticket, json!({})).await).await;
    assert_eq!(stranger, (404, "UPLOAD_NOT_FOUND".to_owned()));

    let attempts = (0..6).map(|_| complete(&server, &auth, &ticket, json!({})));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(server.row_count().await, 1);
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn the_avatar_policy_refuses_text_and_deletes_it_and_accepts_a_png() {
    let server = s3_server().await;
    let auth = server.bearer(Some(1), 1);
    let mut body = ticket_body("a.png", "image/png", b"not an image");
    body["policy"] = json!("avatar");
    let ticket = start(&server, &auth, body).await;
    assert!(put(&ticket, b"not an image").await.status().is_success());
    let refused = code_of(complete(&server, &auth, &ticket, json!({})).await).await;
    assert_eq!(refused, (415, "UNSUPPORTED_MEDIA_TYPE".to_owned()));
    assert_eq!(objects(&server), 0);

    let mut body = ticket_body("a.png", "image/png", PNG);
    body["policy"] = json!("avatar");
    body["key"] = json!("avatars/1");
    let ticket = start(&server, &auth, body).await;
    assert!(put(&ticket, PNG).await.status().is_success());
    let info = json_with_status(complete(&server, &auth, &ticket, json!({})).await, 201).await;
    assert_eq!(info["content_type"], "image/png");
    assert_eq!(info["key"], "avatars/1");

    // Its metadata is stripped from the object the client sent; the record describes the result.
    // A real photo: the avatar makes its variants before answering.
    let source = stowage_tests::images::jpeg_oriented(64, 48, 6);
    let mut body = ticket_body("me.jpg", "image/jpeg", &source);
    body["policy"] = json!("avatar");
    body["sha256"] = json!(hex_sha256(&source));
    let ticket = start(&server, &auth, body).await;
    assert!(put(&ticket, &source).await.status().is_success());
    let info = json_with_status(complete(&server, &auth, &ticket, json!({})).await, 201).await;
    let stored = download(&server, &auth, &file_id(&info)).await;
    for secret in stowage_tests::images::EXIF_SECRETS {
        assert!(!stored.windows(secret.len()).any(|w| w == secret));
    }
    assert_eq!(info["size"], stored.len());
    assert_eq!(info["sha256"], hex_sha256(&stored));
    // A bomb is refused from its header, and nothing of it is kept.
    let before = objects(&server);
    let bomb = stowage_tests::images::png_bomb();
    let mut body = ticket_body("bomb.png", "image/png", &bomb);
    body["policy"] = json!("avatar");
    let ticket = start(&server, &auth, body).await;
    assert!(put(&ticket, &bomb).await.status().is_success());
    let refused = code_of(complete(&server, &auth, &ticket, json!({})).await).await;
    assert_eq!(refused, (422, "IMAGE_TOO_LARGE".to_owned()));
    assert_eq!(objects(&server), before);
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn a_start_checks_size_visibility_and_key() {
    let server = s3_server().await;
    let auth = server.bearer(Some(1), 1);
    let mut big = ticket_body("a.png", "image/png", b"x");
    big["size"] = json!(6 * 1024 * 1024);
    big["policy"] = json!("avatar");
    let response = post_json(&server, &auth, "/files/direct", &big).await;
    assert_eq!(code_of(response).await, (413, "FILE_TOO_LARGE".to_owned()));
    for (field, value) in [
        ("visibility", json!("shared")),
        ("key", json!("a//b")),
        ("sha256", json!("zz")),
    ] {
        let mut body = ticket_body("a.txt", "text/plain", b"x");
        body[field] = value;
        let response = post_json(&server, &auth, "/files/direct", &body).await;
        assert_eq!(
            code_of(response).await,
            (400, "VALIDATION_ERROR".to_owned()),
            "{field}"
        );
    }
    let mut private = ticket_body("a.txt", "text/plain", b"x");
    private["visibility"] = json!("private");
    start(&server, &auth, private).await;
    // A public direct upload makes a public file, served without a credential.
    let mut public = ticket_body("a.txt", "text/plain", b"x");
    public["visibility"] = json!("public");
    let ticket = start(&server, &auth, public).await;
    assert!(put(&ticket, b"x").await.status().is_success());
    let info = json_with_status(complete(&server, &auth, &ticket, json!({})).await, 201).await;
    assert_eq!(info["visibility"], "public");
    let anonymous = send(
        &server,
        Method::GET,
        &format!("/files/{}", file_id(&info)),
        &[],
    )
    .await;
    assert_eq!(anonymous.status(), 200);
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn a_multipart_direct_upload_of_two_parts_completes_with_their_etags() {
    let server = s3_server().await;
    let auth = server.bearer(Some(1), 1);
    let data = pattern(6 * 1024 * 1024, 11);
    let mut body = ticket_body("two.bin", "application/octet-stream", &data);
    body["multipart"] = json!(true);
    body["sha256"] = json!(hex_sha256(&data));
    let ticket = start(&server, &auth, body).await;
    assert_eq!(ticket["method"], "MULTIPART");
    let part_size = usize::try_from(ticket["part_size"].as_u64().unwrap()).unwrap();
    let parts = ticket["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);

    let mut done = Vec::new();
    for (part, chunk) in parts.iter().zip(data.chunks(part_size)) {
        let response = client()
            .put(part["url"].as_str().unwrap())
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        done.push(json!({"part_number": part["part_number"], "etag": etag}));
    }
    let info = json_with_status(
        complete(&server, &auth, &ticket, json!({"parts": done})).await,
        201,
    )
    .await;

    assert_eq!(info["size"], data.len());
    assert_eq!(download(&server, &auth, &file_id(&info)).await, data);
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn gc_removes_expired_direct_uploads_and_spares_pending_ones() {
    let server = s3_server().await;
    let auth = server.bearer(Some(1), 1);
    let mut short = ticket_body("a.txt", "text/plain", b"hello");
    // A presigned URL's lifetime counts from its whole second: 3 s leave time to use it.
    short["expires_in"] = json!(3);
    let expired = start(&server, &auth, short.clone()).await;
    assert!(put(&expired, b"hello").await.status().is_success());
    short["multipart"] = json!(true);
    let expired_multipart = start(&server, &auth, short).await;
    let part = &expired_multipart["parts"][0]["url"];
    client()
        .put(part.as_str().unwrap())
        .body("hello")
        .send()
        .await
        .unwrap();
    let pending = start(&server, &auth, ticket_body("b.txt", "text/plain", b"world")).await;
    assert!(put(&pending, b"world").await.status().is_success());
    tokio::time::sleep(Duration::from_millis(3_500)).await;

    let config = stowage_api::config::Config::from_map(server.env()).unwrap();
    let report = stowage_api::gc(&config, Duration::ZERO, false)
        .await
        .unwrap();

    assert_eq!(report.expired_uploads.len(), 2, "{report:?}");
    assert!(report.orphan_blobs.is_empty(), "{report:?}");
    let gone = code_of(complete(&server, &auth, &expired, json!({})).await).await;
    assert_eq!(gone, (404, "UPLOAD_NOT_FOUND".to_owned()));
    assert_eq!(
        objects(&server),
        1,
        "only the pending upload's object is left"
    );
    json_with_status(complete(&server, &auth, &pending, json!({})).await, 201).await;
}

#[tokio::test]
async fn direct_uploads_are_not_supported_off_s3() {
    let server = TestServer::spawn_with(&[("STORAGE_BACKEND", "fs")]).await;
    let auth = server.bearer(Some(1), 1);
    let started = post_json(
        &server,
        &auth,
        "/files/direct",
        &ticket_body("a", "text/plain", b"x"),
    )
    .await;
    assert_eq!(code_of(started).await, (501, "NOT_SUPPORTED".to_owned()));
    let id = uuid::Uuid::new_v4();
    let completed = post_json(
        &server,
        &auth,
        &format!("/files/direct/{id}/complete"),
        &json!({}),
    )
    .await;
    assert_eq!(code_of(completed).await, (501, "NOT_SUPPORTED".to_owned()));
}

#[tokio::test]
#[ignore = "needs moto: make test-integration"]
async fn on_moto_a_checksummed_put_completes_and_a_wrong_one_is_refused() {
    let moto = stowage_tests::MotoServer::shared();
    let bucket = stowage_tests::MotoServer::unique_bucket("direct");
    let endpoint = moto.endpoint();
    let server = TestServer::spawn_with(&[
        ("STORAGE_BACKEND", "s3"),
        ("S3_ENDPOINT", &endpoint),
        ("S3_BUCKET", &bucket),
        ("S3_ACCESS_KEY", "testing"),
        ("S3_SECRET_KEY", "testing"),
    ])
    .await;
    let auth = server.bearer(Some(1), 1);
    let mut body = ticket_body("a.txt", "text/plain", b"hello");
    body["sha256"] = json!(hex_sha256(b"hello"));
    let ticket = start(&server, &auth, body).await;
    assert!(put(&ticket, b"hello").await.status().is_success());
    let info = json_with_status(complete(&server, &auth, &ticket, json!({})).await, 201).await;
    assert_eq!(download(&server, &auth, &file_id(&info)).await, b"hello");

    let mut body = ticket_body("b.txt", "text/plain", b"hello");
    body["sha256"] = json!(hex_sha256(b"other"));
    let ticket = start(&server, &auth, body).await;
    let _ = put(&ticket, b"hello").await;
    let refused = code_of(complete(&server, &auth, &ticket, json!({})).await).await;
    assert_eq!(refused, (422, "DIRECT_UPLOAD_INVALID".to_owned()));
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn a_multipart_direct_upload_completes_without_etags_from_the_stores_own_list() {
    let server = s3_server().await;
    let auth = server.bearer(Some(1), 1);
    let mut body = ticket_body("one.txt", "text/plain", b"one part");
    body["multipart"] = json!(true);
    let ticket = start(&server, &auth, body).await;
    let part = ticket["parts"][0]["url"].as_str().unwrap();
    let sent = client().put(part).body("one part").send().await.unwrap();
    assert!(sent.status().is_success());

    let info = json_with_status(complete(&server, &auth, &ticket, json!({})).await, 201).await;

    assert_eq!(download(&server, &auth, &file_id(&info)).await, b"one part");
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn a_put_on_the_url_after_completion_never_changes_the_file() {
    let server = s3_server().await;
    let auth = server.bearer(Some(1), 1);
    let ticket = start(&server, &auth, ticket_body("a.txt", "text/plain", b"hello")).await;
    assert!(put(&ticket, b"hello").await.status().is_success());
    let info = json_with_status(complete(&server, &auth, &ticket, json!({})).await, 201).await;
    // The staging object went once it was copied: only the file's object is left.
    assert_eq!(objects(&server), 1);

    // The URL still works until it expires, but it writes the staging object, not the file.
    assert!(put(&ticket, b"HELLO").await.status().is_success());

    assert_eq!(download(&server, &auth, &file_id(&info)).await, b"hello");
    let again = code_of(complete(&server, &auth, &ticket, json!({})).await).await;
    assert_eq!(again, (409, "UPLOAD_COMPLETED".to_owned()));
    assert_eq!(download(&server, &auth, &file_id(&info)).await, b"hello");

    // gc takes the leftover staging object for a stray, never for a file's orphan.
    let config = stowage_api::config::Config::from_map(server.env()).unwrap();
    let report = stowage_api::gc(&config, Duration::ZERO, false)
        .await
        .unwrap();
    assert_eq!(report.strays.len(), 1, "{report:?}");
    assert!(report.orphan_blobs.is_empty(), "{report:?}");
    assert_eq!(objects(&server), 1);
    assert_eq!(download(&server, &auth, &file_id(&info)).await, b"hello");
}

#[tokio::test]
#[ignore = "needs moto: make test-integration"]
async fn on_moto_a_wrong_list_of_parts_is_422_and_the_right_one_then_completes() {
    // s3s-fs answers a missing part with an internal error; moto, like S3, with InvalidPart.
    let moto = stowage_tests::MotoServer::shared();
    let bucket = stowage_tests::MotoServer::unique_bucket("parts");
    let endpoint = moto.endpoint();
    let server = TestServer::spawn_with(&[
        ("STORAGE_BACKEND", "s3"),
        ("S3_ENDPOINT", &endpoint),
        ("S3_BUCKET", &bucket),
        ("S3_ACCESS_KEY", "testing"),
        ("S3_SECRET_KEY", "testing"),
    ])
    .await;
    let auth = server.bearer(Some(1), 1);
    let mut body = ticket_body("one.txt", "text/plain", b"one part");
    body["multipart"] = json!(true);
    let ticket = start(&server, &auth, body).await;
    let part = ticket["parts"][0]["url"].as_str().unwrap();
    let sent = client().put(part).body("one part").send().await.unwrap();
    let etag = sent.headers()["etag"].to_str().unwrap().to_owned();

    let wrong = json!({"parts": [{"part_number": 2, "etag": etag}]});
    let refused = code_of(complete(&server, &auth, &ticket, wrong).await).await;
    assert_eq!(refused, (422, "DIRECT_UPLOAD_INVALID".to_owned()));

    let right = json!({"parts": [{"part_number": 1, "etag": etag}]});
    let info = json_with_status(complete(&server, &auth, &ticket, right).await, 201).await;
    assert_eq!(download(&server, &auth, &file_id(&info)).await, b"one part");
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn a_strangers_completion_never_gets_in_the_owners_way() {
    let server = s3_server().await;
    let auth = server.bearer(Some(1), 1);
    let stranger = server.bearer(Some(2), 1);
    let ticket = start(&server, &auth, ticket_body("a.txt", "text/plain", b"hello")).await;
    assert!(put(&ticket, b"hello").await.status().is_success());

    // Strangers first and all around the owner's call: the owner still gets its 201.
    let first = code_of(complete(&server, &stranger, &ticket, json!({})).await).await;
    assert_eq!(first, (404, "UPLOAD_NOT_FOUND".to_owned()));
    let strangers = (0..4).map(|_| complete(&server, &stranger, &ticket, json!({})));
    let (owner, others) = tokio::join!(
        complete(&server, &auth, &ticket, json!({})),
        futures_util::future::join_all(strangers)
    );

    json_with_status(owner, 201).await;
    assert!(others.iter().all(|r| r.status() == 404));
}
