//! Upload size limits (`413 FILE_TOO_LARGE`) and client disconnects: nothing may stay behind.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use stowage_tests::{TestServer, client, multipart_body, pattern};

use crate::common::{
    assert_error_shape, assert_nothing_stored, connect, expect_error, json_with_status,
    read_response, write_lenient,
};

const LIMIT: usize = 1024 * 1024;
const LIMIT_ENV: [(&str, &str); 1] = [("MAX_UPLOAD_BYTES", "1048576")];
const FRAMING: usize = 64 * 1024;
const BOUNDARY: &str = "stowage-limit-boundary";

fn part_head(filename: &str) -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
}

/// An HTTP/1.1 upload request head declaring `content_length`.
fn request_head(server: &TestServer, auth: &str, content_length: usize) -> String {
    format!(
        "POST /files HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: {auth}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {content_length}\r\n\r\n",
        server.port
    )
}

#[tokio::test]
async fn limits_declared_content_length_over_limit_is_refused_before_reading() {
    let server = TestServer::spawn_with(&LIMIT_ENV).await;
    let auth = server.bearer(Some(1), 1);
    let declared = LIMIT + FRAMING + 1;
    let mut stream = connect(&server).await;

    write_lenient(
        &mut stream,
        request_head(&server, &auth, declared).as_bytes(),
    )
    .await;
    write_lenient(&mut stream, part_head("big.bin").as_bytes()).await;
    write_lenient(&mut stream, &pattern(4096, 21)).await;
    // Most of the declared body is never sent: the answer must not wait for it.
    let response = read_response(&mut stream, Duration::from_secs(5)).await;

    assert_eq!(
        response.status,
        413,
        "body: {}",
        String::from_utf8_lossy(&response.body)
    );
    assert!(
        response
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{response:?}"
    );
    let body = response.json();
    assert_error_shape(&body);
    assert_eq!(body["code"], "FILE_TOO_LARGE", "{body}");
    drop(stream);
    assert_nothing_stored(&server, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn limits_huge_declared_content_length_is_refused_at_once() {
    let server = TestServer::spawn_with(&LIMIT_ENV).await;
    let auth = server.bearer(Some(1), 1);
    let mut stream = connect(&server).await;

    write_lenient(
        &mut stream,
        request_head(&server, &auth, 10 * 1024 * 1024 * 1024).as_bytes(),
    )
    .await;
    let response = read_response(&mut stream, Duration::from_secs(5)).await;

    assert_eq!(response.status, 413);
    assert_eq!(response.json()["code"], "FILE_TOO_LARGE");
    drop(stream);
    assert_nothing_stored(&server, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn limits_body_over_limit_plus_framing_with_content_length_returns_413() {
    let server = TestServer::spawn_with(&LIMIT_ENV).await;

    let response = server
        .upload(
            &server.bearer(Some(1), 1),
            "big.bin",
            "application/octet-stream",
            pattern(LIMIT + FRAMING + 1, 22),
        )
        .await;

    expect_error(response, 413, "FILE_TOO_LARGE").await;
    assert_nothing_stored(&server, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn limits_chunked_body_growing_past_limit_returns_413() {
    let server = TestServer::spawn_with(&LIMIT_ENV).await;
    let head = Bytes::from(part_head("stream.bin"));
    let data = Bytes::from(pattern(2 * LIMIT, 23));
    let chunks: Vec<Bytes> = std::iter::once(head)
        .chain(data.chunks(64 * 1024).map(|c| data.slice_ref(c)))
        .collect();
    // Twice the limit, then the body stays open and never ends: only a server that cuts the
    // upload off at the limit can answer.
    let body = stream::iter(chunks.into_iter().map(Ok::<_, Infallible>)).chain(stream::pending());

    let response = tokio::time::timeout(
        Duration::from_secs(30),
        client()
            .post(server.url("/files"))
            .header("Authorization", server.bearer(Some(1), 1))
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    )
    .await
    .expect("no answer while the body stayed open: the server waits for the end of a body past the limit")
    .unwrap();

    expect_error(response, 413, "FILE_TOO_LARGE").await;
    assert_nothing_stored(&server, Duration::from_secs(2)).await;
}

/// Uploads `data` as user 1 with a chunked body (no `Content-Length`).
async fn upload_chunked(server: &TestServer, data: Vec<u8>) -> reqwest::Response {
    let body = Bytes::from(multipart_body(
        BOUNDARY,
        "chunked.bin",
        "application/octet-stream",
        &data,
    ));
    let chunks: Vec<Result<Bytes, Infallible>> = body
        .chunks(16 * 1024)
        .map(|c| Ok(body.slice_ref(c)))
        .collect();
    client()
        .post(server.url("/files"))
        .header("Authorization", server.bearer(Some(1), 1))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn limits_chunked_file_just_over_limit_returns_413() {
    let server = TestServer::spawn_with(&LIMIT_ENV).await;

    let response = upload_chunked(&server, pattern(LIMIT + 1, 27)).await;

    expect_error(response, 413, "FILE_TOO_LARGE").await;
    assert_nothing_stored(&server, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn limits_chunked_file_exactly_at_limit_is_accepted() {
    let server = TestServer::spawn_with(&LIMIT_ENV).await;
    let data = pattern(LIMIT, 28);

    let response = upload_chunked(&server, data.clone()).await;

    let info = json_with_status(response, 201).await;
    assert_eq!(info["size"], LIMIT as u64);
    assert_eq!(info["sha256"], crate::common::sha256_hex(&data));
}

#[tokio::test]
async fn limits_file_just_over_limit_returns_413() {
    let server = TestServer::spawn_with(&LIMIT_ENV).await;
    let body_len = multipart_body(BOUNDARY, "over.bin", "application/octet-stream", &[]).len();
    assert!(
        LIMIT + 1 + body_len < LIMIT + FRAMING,
        "stays under the framing allowance"
    );

    let response = server
        .upload(
            &server.bearer(Some(1), 1),
            "over.bin",
            "application/octet-stream",
            pattern(LIMIT + 1, 24),
        )
        .await;

    expect_error(response, 413, "FILE_TOO_LARGE").await;
    assert_nothing_stored(&server, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn limits_file_exactly_at_limit_is_accepted() {
    let server = TestServer::spawn_with(&LIMIT_ENV).await;

    let response = server
        .upload(
            &server.bearer(Some(1), 1),
            "exact.bin",
            "application/octet-stream",
            pattern(LIMIT, 25),
        )
        .await;

    let info = json_with_status(response, 201).await;
    assert_eq!(info["size"], LIMIT as u64);
    assert_eq!(server.row_count().await, 1);
    assert_eq!(server.blob_files().len(), 1);
}

#[tokio::test]
async fn limits_client_disconnect_mid_upload_leaves_nothing_and_is_logged() {
    let server = TestServer::process_with(&[("LOG_LEVEL", "info")]).await;
    let auth = server.bearer(Some(1), 1);
    let mut stream = connect(&server).await;

    // On S3 the first 8 MiB part is gathered in memory before the multipart upload starts, so
    // more than a part is sent there; on disk a temporary file exists after the first bytes.
    let sent = if stowage_tests::s3_mode() {
        12 * 1024 * 1024
    } else {
        1024 * 1024
    };
    write_lenient(
        &mut stream,
        request_head(&server, &auth, 2 * sent + 1024 * 1024).as_bytes(),
    )
    .await;
    write_lenient(&mut stream, part_head("cut.bin").as_bytes()).await;
    write_lenient(&mut stream, &pattern(sent, 26)).await;
    // Bytes are streamed to the store as they arrive, so a (temporary) blob or an unfinished
    // upload exists before the client vanishes: the disconnect really happens mid-write.
    let deadline = Instant::now() + Duration::from_secs(2);
    while server.blob_files().is_empty() {
        assert!(
            Instant::now() < deadline,
            "nothing was written to the blob store after 1 MiB of file data"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stream);

    assert_nothing_stored(&server, Duration::from_secs(5)).await;
    let live = client()
        .get(server.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    let line = server
        .log_line(|l| l["span"]["matched_path"] == "/files")
        .await;
    assert_eq!(line["span"]["principal"], "user");
    assert_eq!(line["fields"]["reason"], "the client aborted the request");
    let read = line["fields"]["bytes_in"].as_u64().unwrap();
    assert!(
        read > 0 && read <= (sent + 1024) as u64,
        "{read} bytes read of an upload cut after {sent}"
    );
}
