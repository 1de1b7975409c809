//! Upload URLs as clients meet them: a backend asks for one, any client (a browser) uploads on it
//! once, with no credential.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use reqwest::{Method, Response};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};
use stowage_tests::{
    TestServer, client, expect_error, file_id, json_with_status, multipart_body, run_subcommand,
    send, send_as,
};

#[path = "upload_urls/browser.rs"]
mod browser;

const PNG: &[u8] = &stowage_tests::images::PNG;

/// Asks for an upload URL as `auth` with `body`; returns the answer's JSON, asserting 200.
async fn ask(server: &TestServer, auth: &str, body: Value) -> Value {
    let response = client()
        .post(server.url("/files/upload-url"))
        .header("Authorization", auth)
        .json(&body)
        .send()
        .await
        .unwrap();
    json_with_status(response, 200).await
}

fn url_of(answer: &Value) -> String {
    answer["url"].as_str().unwrap().to_owned()
}

/// A multipart `POST` of `data` to `url`, with no credential.
async fn post_form(url: &str, fields: &[(&str, &str)], data: &[u8]) -> Response {
    let boundary = format!("uu-{}", uuid::Uuid::new_v4().simple());
    let mut body: Vec<u8> = fields
        .iter()
        .map(|(n, v)| {
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n")
        })
        .collect::<String>()
        .into();
    body.extend_from_slice(&multipart_body(&boundary, "form.txt", "text/plain", data));
    client()
        .post(url)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A raw `PUT` of `data` to `url` as `content_type`, with no credential.
async fn put_raw(url: &str, content_type: &str, data: Vec<u8>) -> Response {
    client()
        .put(url)
        .header("Content-Type", content_type)
        .body(data)
        .send()
        .await
        .unwrap()
}

/// Rows of `upload_grants`.
async fn grant_rows(server: &TestServer) -> i64 {
    let db = Database::connect(&server.database_url).await.unwrap();
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM upload_grants",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

#[tokio::test]
async fn an_upload_url_takes_one_multipart_upload_without_a_credential() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(5), 2);
    let answer = ask(&server, &auth, json!({"expires_in": 600})).await;
    let url = url_of(&answer);
    assert!(
        url.starts_with(&format!("{}/files/upload-url/", server.base_url)),
        "{url}"
    );
    let expires_at = time::OffsetDateTime::parse(
        answer["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let lifetime = expires_at - time::OffsetDateTime::now_utc();
    assert!(lifetime > time::Duration::seconds(590) && lifetime <= time::Duration::seconds(601));

    let response = post_form(&url, &[("metadata", r#"{"from":"form"}"#)], b"hello").await;
    let location = stowage_tests::header(&response, "location");
    let info = json_with_status(response, 201).await;
    assert_eq!(
        (&info["user_id"], &info["account_id"], &info["size"]),
        (&json!(5), &json!(2), &json!(5))
    );
    assert_eq!(info["metadata"], json!({"from": "form"}));
    assert_eq!(location.as_deref(), info["public_url"].as_str());
    let read = send_as(
        &server,
        Method::GET,
        &format!("/files/{}", file_id(&info)),
        &auth,
    )
    .await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.bytes().await.unwrap().as_ref(), b"hello");

    let again = post_form(&url, &[], b"second").await;
    expect_error(again, 403, "INVALID_SIGNATURE").await;
    let raw_again = put_raw(&url, "text/plain", b"third".to_vec()).await;
    expect_error(raw_again, 403, "INVALID_SIGNATURE").await;
    assert_eq!(server.row_count().await, 1);
}

#[tokio::test]
async fn a_tampered_or_expired_upload_url_is_an_invalid_signature() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let url = url_of(&ask(&server, &auth, json!({})).await);
    let (base, token) = url.rsplit_once('/').unwrap();
    let (payload, signature) = token.rsplit_once('.').unwrap();
    // A digit, so that a hex signature compared without regard to case still changes.
    let flip = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        b[3] = if b[3] == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).unwrap()
    };
    let other = url_of(&ask(&server, &server.bearer(Some(9), 9), json!({})).await);
    let (_, other_token) = other.rsplit_once('/').unwrap();
    let (other_payload, _) = other_token.rsplit_once('.').unwrap();
    let tampered = [
        format!("{base}/{payload}.{}", flip(signature)),
        format!("{base}/{}.{signature}", flip(payload)),
        format!("{base}/{other_payload}.{signature}"),
        format!("{base}/{payload}"),
        format!("{base}/not-a-token"),
    ];
    for bad in &tampered {
        expect_error(
            put_raw(bad, "text/plain", b"x".to_vec()).await,
            403,
            "INVALID_SIGNATURE",
        )
        .await;
    }

    let short = url_of(&ask(&server, &auth, json!({"expires_in": 1})).await);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    expect_error(
        post_form(&short, &[], b"late").await,
        403,
        "INVALID_SIGNATURE",
    )
    .await;
    assert_eq!(server.row_count().await, 0);
    // The untouched URL still works.
    json_with_status(put_raw(&url, "text/plain", b"ok".to_vec()).await, 201).await;
}

#[tokio::test]
async fn a_raw_put_names_and_types_the_file_from_its_headers() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(None, 4);
    let url = url_of(&ask(&server, &auth, json!({})).await);

    let response = client()
        .put(&url)
        .header("Content-Type", "application/pdf")
        .header(
            "Content-Disposition",
            "attachment; filename=\"fallback.pdf\"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82%202024.pdf",
        )
        .body(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec())
        .send()
        .await
        .unwrap();

    let info = json_with_status(response, 201).await;
    assert_eq!(info["filename"], "отчёт_2024.pdf");
    assert_eq!(info["content_type"], "application/pdf");
    assert_eq!(info["user_id"], Value::Null);
    assert_eq!(info["account_id"], 4);
}

#[tokio::test]
async fn an_upload_the_rules_refuse_leaves_the_url_usable() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let url = url_of(&ask(&server, &auth, json!({"policy": "avatar", "max_bytes": 80})).await);

    let text = put_raw(&url, "image/png", b"not an image".to_vec()).await;
    expect_error(text, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    let over = put_raw(&url, "image/png", vec![0; 81]).await;
    expect_error(over, 413, "FILE_TOO_LARGE").await;
    let chunked = client()
        .put(&url)
        .header("Content-Type", "image/png")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            [PNG.to_vec(), vec![0; 80]].map(Ok::<_, std::io::Error>),
        )))
        .send()
        .await
        .unwrap();
    expect_error(chunked, 413, "FILE_TOO_LARGE").await;
    // A form announces its file's length too.
    let form = post_form(&url, &[], &[0; 81]).await;
    expect_error(form, 413, "FILE_TOO_LARGE").await;
    assert_eq!(server.row_count().await, 0);
    assert!(server.blob_files().is_empty(), "{:?}", server.blob_files());

    let image = put_raw(&url, "image/png", PNG.to_vec()).await;
    let info = json_with_status(image, 201).await;
    assert_eq!(info["content_type"], "image/png");
}

#[tokio::test]
async fn a_signed_key_stores_the_file_under_it_and_no_other_key_is_taken() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(3), 3);
    let url = url_of(&ask(&server, &auth, json!({"key": "avatars/3.png"})).await);

    let other = post_form(&url, &[("key", "avatars/4.png")], b"x").await;
    expect_error(other, 400, "VALIDATION_ERROR").await;
    let same = post_form(&url, &[("key", "avatars/3.png")], b"x").await;
    let info = json_with_status(same, 201).await;
    assert_eq!(info["key"], "avatars/3.png");
    let by_key = send_as(
        &server,
        Method::GET,
        "/files/info/by-key/avatars/3.png",
        &auth,
    )
    .await;
    assert_eq!(
        json_with_status(by_key, 200).await["file_id"],
        info["file_id"]
    );

    let unkeyed = url_of(&ask(&server, &auth, json!({})).await);
    let keyed = post_form(&unkeyed, &[("key", "avatars/3.png")], b"y").await;
    expect_error(keyed, 400, "VALIDATION_ERROR").await;
}

#[tokio::test]
async fn a_public_upload_url_makes_a_public_file_and_a_form_cannot_change_its_visibility() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let private_url = url_of(&ask(&server, &auth, json!({})).await);
    let public_url = url_of(&ask(&server, &auth, json!({"visibility": "public"})).await);

    let widened = post_form(&private_url, &[("visibility", "public")], b"x").await;
    expect_error(widened, 400, "VALIDATION_ERROR").await;
    let narrowed = post_form(&public_url, &[("visibility", "private")], b"x").await;
    expect_error(narrowed, 400, "VALIDATION_ERROR").await;
    assert_eq!(server.row_count().await, 0);

    let response = post_form(&public_url, &[("visibility", "public")], b"open").await;
    let info = json_with_status(response, 201).await;
    assert_eq!(info["visibility"], "public");
    let anonymous = send(
        &server,
        Method::GET,
        &format!("/files/{}", file_id(&info)),
        &[],
    )
    .await;
    assert_eq!(anonymous.status(), 200);
    assert_eq!(anonymous.bytes().await.unwrap().as_ref(), b"open");
    let private = json_with_status(post_form(&private_url, &[], b"closed").await, 201).await;
    assert_eq!(private["visibility"], "private");
}

#[tokio::test]
async fn asking_checks_every_option() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let refused = [
        json!({"expires_in": 0}),
        json!({"expires_in": 86401}),
        json!({"policy": "nope"}),
        json!({"key": "a//b"}),
        json!({"visibility": "shared"}),
        json!({"max_bytes": 0}),
        json!({"max_bytes": 104_857_601u64}),
        json!({"other": 1}),
    ];
    for body in refused {
        let response = client()
            .post(server.url("/files/upload-url"))
            .header("Authorization", &auth)
            .json(&body)
            .send()
            .await
            .unwrap();
        let error = expect_error(response, 400, "VALIDATION_ERROR").await;
        if body.get("visibility").is_some() {
            assert!(
                error.to_string().contains("'private' or 'public'"),
                "{error}"
            );
        }
    }
    ask(
        &server,
        &auth,
        json!({"visibility": "private", "expires_in": 86400}),
    )
    .await;
    let anonymous = client()
        .post(server.url("/files/upload-url"))
        .send()
        .await
        .unwrap();
    expect_error(anonymous, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn the_root_alias_serves_upload_urls_too() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let answer = client()
        .post(server.url("/upload-url"))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    let url = url_of(&json_with_status(answer, 200).await);
    let at_root = url.replace("/files/upload-url/", "/upload-url/");
    json_with_status(put_raw(&at_root, "text/plain", b"root".to_vec()).await, 201).await;
    expect_error(
        put_raw(&url, "text/plain", b"again".to_vec()).await,
        403,
        "INVALID_SIGNATURE",
    )
    .await;
}

#[tokio::test]
async fn an_upload_url_is_used_by_exactly_one_of_concurrent_uploads() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);

    // One upload in flight holds the URL: another one meanwhile is refused.
    let url = url_of(&ask(&server, &auth, json!({})).await);
    let (release, wait) = tokio::sync::oneshot::channel::<()>();
    let slow_body = futures_util::stream::unfold(Some(wait), |wait| async move {
        let wait = wait?;
        let _ = wait.await;
        Some((Ok::<_, std::io::Error>(b"slow".to_vec()), None))
    });
    let slow = tokio::spawn(
        client()
            .put(url.clone())
            .header("Content-Type", "text/plain")
            .body(reqwest::Body::wrap_stream(slow_body))
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let meanwhile = put_raw(&url, "text/plain", b"fast".to_vec()).await;
    expect_error(meanwhile, 403, "INVALID_SIGNATURE").await;
    release.send(()).unwrap();
    let info = json_with_status(slow.await.unwrap().unwrap(), 201).await;
    assert_eq!(info["size"], 4);

    // Many at once: one wins.
    let url = url_of(&ask(&server, &auth, json!({})).await);
    let racers = (0..8).map(|i| put_raw(&url, "text/plain", format!("racer {i}").into_bytes()));
    let statuses: Vec<u16> = futures_util::future::join_all(racers)
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
        statuses.iter().all(|s| *s == 201 || *s == 403),
        "{statuses:?}"
    );
    assert_eq!(server.row_count().await, 2);
}

#[tokio::test]
async fn gc_removes_the_records_of_expired_upload_urls() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let short = url_of(&ask(&server, &auth, json!({"expires_in": 3})).await);
    json_with_status(put_raw(&short, "text/plain", b"a".to_vec()).await, 201).await;
    let long = url_of(&ask(&server, &auth, json!({})).await);
    json_with_status(put_raw(&long, "text/plain", b"b".to_vec()).await, 201).await;
    assert_eq!(grant_rows(&server).await, 2);
    tokio::time::sleep(Duration::from_millis(3100)).await;

    let dry = run_subcommand(&server, "gc", &["--grace", "0s", "--dry-run"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert_eq!(grant_rows(&server).await, 2);
    let output = run_subcommand(&server, "gc", &["--grace", "0s"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("records of expired upload URLs: removed 1"),
        "{stdout}"
    );

    assert_eq!(grant_rows(&server).await, 1);
    expect_error(
        put_raw(&long, "text/plain", b"c".to_vec()).await,
        403,
        "INVALID_SIGNATURE",
    )
    .await;
}

#[tokio::test]
async fn the_openapi_document_describes_upload_urls() {
    let server = TestServer::spawn().await;
    let doc: Value = client()
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ask = &doc["paths"]["/files/upload-url"]["post"];
    assert!(ask["security"].is_array(), "{ask}");
    assert!(ask["responses"]["200"].is_object());
    let item = &doc["paths"]["/files/upload-url/{token}"];
    for method in ["post", "put"] {
        let op = &item[method];
        assert!(
            op["security"].is_null(),
            "{method} takes no credential: {op}"
        );
        for status in ["201", "400", "403", "413", "415"] {
            assert!(op["responses"][status].is_object(), "{method} {status}");
        }
    }
    let raw = &item["put"]["requestBody"]["content"]["*/*"]["schema"];
    assert_eq!(raw["$ref"], "#/components/schemas/RawFileBody", "{raw}");
    let schema = &doc["components"]["schemas"]["RawFileBody"];
    assert_eq!(schema["format"], "binary", "{schema}");
}

#[tokio::test]
async fn uploads_on_upload_urls_count_against_the_upload_rate_limit() {
    let server = TestServer::spawn_with(&[
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_UPLOAD", "2/60s"),
        ("RATE_LIMIT_DOWNLOAD", "100/60s"),
    ])
    .await;
    let auth = server.bearer(Some(1), 1);
    let mut urls = Vec::new();
    for _ in 0..3 {
        urls.push(url_of(&ask(&server, &auth, json!({})).await));
    }

    for url in &urls[..2] {
        json_with_status(put_raw(url, "text/plain", b"a".to_vec()).await, 201).await;
    }
    let third = put_raw(&urls[2], "text/plain", b"a".to_vec()).await;
    assert!(stowage_tests::header(&third, "retry-after").is_some());
    expect_error(third, 429, "RATE_LIMITED").await;
}
