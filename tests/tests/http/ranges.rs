//! `Range`, `If-Range`, `If-None-Match` and `HEAD` on `GET /files/{id}` (RFC 9110 as the contract
//! narrows it).

use reqwest::Method;
use stowage_tests::{TestServer, pattern};

use crate::common::{expect_error, file_id, get_as, header, header_of, send};

const SIZE: usize = 1000;

/// A server with one 1000-byte file of user 1; returns the credential, the path and the bytes.
async fn with_file(data: Vec<u8>) -> (TestServer, String, String, Vec<u8>) {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let info = server
        .upload_ok(&auth, "data.bin", "application/octet-stream", data.clone())
        .await;
    let path = format!("/files/{}", file_id(&info));
    (server, auth, path, data)
}

/// Asserts `GET path` with `Range: range` is a 206 of `data[start..=end]`.
async fn assert_partial(
    (server, auth, path, data): &(TestServer, String, String, Vec<u8>),
    range: &str,
    start: usize,
    end: usize,
) {
    let response = get_as(server, auth, path, &[("Range", range)]).await;

    assert_eq!(response.status(), 206, "Range: {range}");
    assert_eq!(
        header(&response, "content-range"),
        Some(format!("bytes {start}-{end}/{SIZE}")),
        "Range: {range}"
    );
    assert_eq!(
        header(&response, "content-length"),
        Some((end - start + 1).to_string()),
        "Range: {range}"
    );
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(header(&response, "accept-ranges").as_deref(), Some("bytes"));
    let body = response.bytes().await.unwrap();
    assert!(
        body.as_ref() == &data[start..=end],
        "Range: {range}: wrong bytes"
    );
}

/// Asserts `GET path` with `Range: range` is a 200 with the whole file `data`.
async fn assert_whole(server: &TestServer, auth: &str, path: &str, data: &[u8], range: &str) {
    let response = get_as(server, auth, path, &[("Range", range)]).await;

    assert_eq!(response.status(), 200, "Range: {range}");
    assert_eq!(header(&response, "content-range"), None, "Range: {range}");
    assert_eq!(
        header(&response, "content-length"),
        Some(data.len().to_string())
    );
    assert!(
        response.bytes().await.unwrap().as_ref() == data,
        "Range: {range}: wrong bytes"
    );
}

/// Asserts `GET path` with `Range: range` on a file of `len` bytes is the JSON 416.
async fn assert_unsatisfiable(
    server: &TestServer,
    auth: &str,
    path: &str,
    len: usize,
    range: &str,
) {
    let response = get_as(server, auth, path, &[("Range", range)]).await;

    assert_eq!(
        header(&response, "content-range"),
        Some(format!("bytes */{len}")),
        "Range: {range}"
    );
    expect_error(response, 416, "RANGE_NOT_SATISFIABLE").await;
}

#[tokio::test]
async fn range_satisfiable_returns_206_with_those_bytes() {
    let file = with_file(pattern(SIZE, 11)).await;
    // A closed range, from zero open-ended, a single byte, open-ended to the end, a suffix, an
    // end past the size (clamped), and a suffix longer than the file (all of it, still a 206).
    for (range, start, end) in [
        ("bytes=10-19", 10, 19),
        ("bytes=0-", 0, 999),
        ("bytes=0-0", 0, 0),
        ("bytes=990-", 990, 999),
        ("bytes=-100", 900, 999),
        ("bytes=900-5000", 900, 999),
        ("bytes=-5000", 0, 999),
    ] {
        assert_partial(&file, range, start, end).await;
    }
}

#[tokio::test]
async fn range_start_at_size_returns_416() {
    let (server, auth, path, _) = with_file(pattern(SIZE, 12)).await;
    assert_unsatisfiable(&server, &auth, &path, SIZE, "bytes=1000-").await;
    assert_unsatisfiable(&server, &auth, &path, SIZE, "bytes=1000-1000").await;
}

#[tokio::test]
async fn range_start_past_size_returns_416() {
    let (server, auth, path, _) = with_file(pattern(SIZE, 12)).await;
    assert_unsatisfiable(&server, &auth, &path, SIZE, "bytes=1500-1600").await;
    assert_unsatisfiable(&server, &auth, &path, SIZE, "bytes=1001-").await;
}

#[tokio::test]
async fn range_on_empty_file_returns_416() {
    let (server, auth, path, _) = with_file(Vec::new()).await;
    for range in ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=5-10"] {
        assert_unsatisfiable(&server, &auth, &path, 0, range).await;
    }
}

#[tokio::test]
async fn range_several_ranges_or_malformed_return_whole_file_200() {
    let (server, auth, path, data) = with_file(pattern(SIZE, 14)).await;
    for range in [
        // Several ranges: the contract serves only single ranges.
        "bytes=0-1,5-6",
        "bytes=0-1, 900-",
        // Malformed.
        "bytes=abc",
        "bytes=",
        "bytes=-",
        "bytes=1-x",
        "pages=0-1",
        "0-10",
        "bytes=5-2",
    ] {
        assert_whole(&server, &auth, &path, &data, range).await;
    }
}

/// The headers of `response` that a `HEAD` must share with its `GET`, sorted (all but the ones
/// that differ between any two responses).
fn compared_headers(response: &reqwest::Response) -> Vec<(String, String)> {
    let ignored = ["date", "x-request-id"];
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(n, _)| !ignored.contains(&n.as_str()))
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    headers.sort();
    headers
}

#[tokio::test]
async fn range_head_returns_same_headers_as_get_without_body() {
    let (server, auth, path, _) = with_file(pattern(SIZE, 15)).await;
    for range in [None, Some("bytes=10-19")] {
        let mut headers = vec![("Authorization", auth.as_str())];
        headers.extend(range.map(|r| ("Range", r)));
        let got = send(&server, Method::GET, &path, &headers).await;
        let head = send(&server, Method::HEAD, &path, &headers).await;

        assert_eq!(head.status(), got.status(), "Range: {range:?}");
        assert_eq!(
            compared_headers(&head),
            compared_headers(&got),
            "Range: {range:?}"
        );
        let expected_len = if range.is_some() { "10" } else { "1000" };
        assert_eq!(
            header_of(head.headers(), "content-length").as_deref(),
            Some(expected_len)
        );
        assert!(head.bytes().await.unwrap().is_empty(), "HEAD has a body");
    }
}

#[tokio::test]
async fn range_if_none_match_with_etag_returns_304() {
    let (server, auth, path, _) = with_file(pattern(SIZE, 16)).await;
    let etag = header(&get_response(&server, &auth, &path).await, "etag").unwrap();

    for candidate in [
        etag.clone(),
        format!("W/{etag}"),
        "*".to_owned(),
        format!("\"other\", {etag}"),
    ] {
        let response = get_as(&server, &auth, &path, &[("If-None-Match", &candidate)]).await;

        assert_eq!(response.status(), 304, "If-None-Match: {candidate}");
        let head = send(
            &server,
            Method::HEAD,
            &path,
            &[("Authorization", &auth), ("If-None-Match", &candidate)],
        )
        .await;
        assert_eq!(head.status(), 304, "HEAD, If-None-Match: {candidate}");
        assert_eq!(
            header(&response, "etag").as_deref(),
            Some(etag.as_str()),
            "a 304 repeats the ETag"
        );
        assert!(response.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn range_if_none_match_with_other_etag_returns_200() {
    let (server, auth, path, data) = with_file(pattern(SIZE, 17)).await;

    let response = get_as(&server, &auth, &path, &[("If-None-Match", "\"0000\"")]).await;

    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().as_ref() == data.as_slice());
}

#[tokio::test]
async fn range_if_range_with_other_etag_returns_whole_file() {
    let (server, auth, path, data) = with_file(pattern(SIZE, 18)).await;
    let etag = header(&get_response(&server, &auth, &path).await, "etag").unwrap();

    for if_range in ["\"not-the-etag\"".to_owned(), format!("W/{etag}")] {
        let response = get_ten_bytes_if_range(&server, &auth, &path, &if_range).await;

        assert_eq!(response.status(), 200, "If-Range: {if_range}");
        assert_eq!(header(&response, "content-range"), None);
        assert!(response.bytes().await.unwrap().as_ref() == data.as_slice());
    }
}

#[tokio::test]
async fn range_if_range_with_matching_etag_returns_206() {
    let (server, auth, path, data) = with_file(pattern(SIZE, 19)).await;
    let etag = header(&get_response(&server, &auth, &path).await, "etag").unwrap();

    let response = get_ten_bytes_if_range(&server, &auth, &path, &etag).await;

    assert_eq!(response.status(), 206);
    assert_eq!(
        header(&response, "content-range").as_deref(),
        Some("bytes 0-9/1000")
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), &data[..10]);
}

/// `GET path` as `auth` for bytes 0-9 with `If-Range: if_range`.
async fn get_ten_bytes_if_range(
    server: &TestServer,
    auth: &str,
    path: &str,
    if_range: &str,
) -> reqwest::Response {
    get_as(
        server,
        auth,
        path,
        &[("Range", "bytes=0-9"), ("If-Range", if_range)],
    )
    .await
}

async fn get_response(server: &TestServer, auth: &str, path: &str) -> reqwest::Response {
    send(server, Method::GET, path, &[("Authorization", auth)]).await
}
