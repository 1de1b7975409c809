//! HTTP helpers: the client, multipart bodies, headers, sending, and the contract's error shape.

use std::time::Duration;

use crate::server::TestServer;

/// A client that never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// A `multipart/form-data` body with one `file` part.
pub fn multipart_body(boundary: &str, filename: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(data.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

// Request and response helpers shared by the black-box suites.

/// A header of `headers` as text (`None` when absent or not visible ASCII).
pub fn header_of(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A header of `response` as text.
pub fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    header_of(response.headers(), name)
}

/// Sends `method path` with extra `headers` and no body.
pub async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client().request(method, server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Sends `method path` with `Authorization: auth` and no body.
pub async fn send_as(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    auth: &str,
) -> reqwest::Response {
    send(server, method, path, &[("Authorization", auth)]).await
}

/// Uploads to `path` (`/files` or `/files/upload`) with arbitrary credential headers.
pub async fn upload_to(
    server: &TestServer,
    path: &str,
    headers: &[(&str, &str)],
    filename: &str,
    content_type: &str,
    data: &[u8],
) -> reqwest::Response {
    let boundary = format!("stowage-test-{}", uuid::Uuid::new_v4().simple());
    let mut request = server.post_form(path, &boundary).body(multipart_body(
        &boundary,
        filename,
        content_type,
        data,
    ));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The JSON body of `response`, asserting its status first.
pub async fn json_with_status(response: reqwest::Response, status: u16) -> serde_json::Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Asserts the contract's error shape: `code` and `message` strings, optional `details.reason` string.
pub fn assert_error_shape(body: &serde_json::Value) {
    assert!(body["code"].is_string(), "code is not a string: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message is not a non-empty string: {body}"
    );
    match body.get("details") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(details)) => {
            if let Some(reason) = details.get("reason") {
                assert!(reason.is_string(), "details.reason is not a string: {body}");
            }
        }
        Some(other) => panic!("details is not an object: {other}"),
    }
}

/// Asserts `response` is the JSON error `status`/`code` in the contract's shape; returns the body.
pub async fn expect_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    let content_type = header(&response, "content-type").unwrap_or_default();
    let body = json_with_status(response, status).await;
    assert!(
        content_type.starts_with("application/json"),
        "error Content-Type is {content_type:?}, body {body}"
    );
    assert_error_shape(&body);
    assert_eq!(body["code"], code, "wrong error code: {body}");
    body
}

/// A response read to the end: its status, headers and body.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Fetched {
    /// A header as text (`None` when absent or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<String> {
        header_of(&self.headers, name)
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Sends `GET path` with extra `headers` and reads the whole response.
pub async fn fetch(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Fetched {
    let response = send(server, reqwest::Method::GET, path, headers).await;
    Fetched {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

/// The status and JSON body of `GET /health/ready`.
pub async fn readiness(server: &TestServer) -> (u16, serde_json::Value) {
    let ready = fetch(server, "/health/ready", &[]).await;
    (ready.status, ready.json())
}

/// Uploads `data` as user 1 of account 1, the owner most tests need; returns the `FileInfo`.
pub async fn upload_as_owner(
    server: &TestServer,
    filename: &str,
    content_type: &str,
    data: &[u8],
) -> serde_json::Value {
    server
        .upload_ok(
            &server.bearer(Some(1), 1),
            filename,
            content_type,
            data.to_vec(),
        )
        .await
}

/// A fresh server holding `data` uploaded by user 1 of account 1; returns the server, that
/// owner's credential and the `FileInfo`.
pub async fn spawn_with_file(
    filename: &str,
    content_type: &str,
    data: &[u8],
) -> (TestServer, String, serde_json::Value) {
    let server = TestServer::spawn().await;
    let info = upload_as_owner(&server, filename, content_type, data).await;
    let owner = server.bearer(Some(1), 1);
    (server, owner, info)
}

/// The protective headers the contract puts on every response, by name and exact value.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
];

/// The SHA-256 of `data` in lower-case hex, as `FileInfo.sha256` and `ETag`s write it.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(data))
}

/// Asserts that the server at `base_url` serves file `id` to `auth` as exactly `data`, and that
/// its info reports their size and SHA-256.
pub async fn assert_serves(base_url: &str, auth: &str, id: &str, data: &[u8]) {
    let get = |path: String| {
        client()
            .get(format!("{base_url}{path}"))
            .header("Authorization", auth)
            .send()
    };
    let response = get(format!("/files/{id}")).await.unwrap();
    assert_eq!(response.status(), 200, "{base_url} on file {id}");
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), data.len(), "size of file {id} from {base_url}");
    assert!(
        body.as_ref() == data,
        "file {id} from {base_url} differs from what was sent"
    );
    let info = json_with_status(get(format!("/files/{id}/info")).await.unwrap(), 200).await;
    assert_eq!(info["sha256"], sha256_hex(data), "{base_url}: {info}");
    assert_eq!(info["size"], data.len(), "{base_url}: {info}");
}

/// The `file_id` of a `FileInfo`.
pub fn file_id(info: &serde_json::Value) -> String {
    info["file_id"].as_str().unwrap().to_owned()
}

/// Deterministic pseudo-random bytes (a fixed LCG, so failures reproduce).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

/// The Prometheus text `GET {base_url}/metrics` answers (empty when the server does not answer).
pub async fn scrape_metrics(base_url: &str) -> String {
    match client().get(format!("{base_url}/metrics")).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The value of the sample `name` (with its labels, as written: `name{label="x"}`) in `metrics`.
pub fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}
