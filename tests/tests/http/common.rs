//! Helpers shared by the HTTP suite: requests with arbitrary credentials, error-shape checks,
//! raw TCP exchanges, and the small parsers (UUID, RFC 3339, HTTP-date, percent-encoding) the
//! assertions need.

use std::time::{Duration, Instant};

use reqwest::{Method, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};
pub use stowage_tests::{
    SECURITY_HEADERS, assert_error_shape, expect_error, file_id, header, header_of,
    json_with_status, send, spawn_with_file, upload_as_owner, upload_to,
};
use stowage_tests::{TestServer, now};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use stowage_tests::images::PNG;

/// A small but well-formed PDF.
pub const PDF: &[u8] =
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n";

/// An HTML document that would run script if a browser rendered it.
pub const HTML: &[u8] = b"<!DOCTYPE html><script>alert(1)</script>";

/// The exact `Cache-Control` the contract gives downloads.
pub const CACHE_CONTROL: &str = "private, max-age=0, must-revalidate";

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// `GET path` with `Authorization: auth`.
pub async fn get(server: &TestServer, auth: &str, path: &str) -> Response {
    send(server, Method::GET, path, &[("Authorization", auth)]).await
}

/// `GET path` as `auth` with the `extra` headers.
pub async fn get_as(
    server: &TestServer,
    auth: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> Response {
    let headers = [&[("Authorization", auth)], extra].concat();
    send(server, Method::GET, path, &headers).await
}

/// A fresh server where user 1 uploaded `data`; returns the server, the `FileInfo` and the
/// owner's `GET` of the file.
pub async fn upload_then_get(
    filename: &str,
    content_type: &str,
    data: &[u8],
) -> (TestServer, Value, Response) {
    let (server, auth, info) = spawn_with_file(filename, content_type, data).await;
    let response = get(&server, &auth, &format!("/files/{}", file_id(&info))).await;
    (server, info, response)
}

/// Polls until no blob (not even a temporary file) and no row is left, or fails after `within`.
pub async fn assert_nothing_stored(server: &TestServer, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let blobs = server.blob_files();
        let rows = server.row_count().await;
        if blobs.is_empty() && rows == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left behind after {within:?}: blob files {blobs:?}, {rows} row(s)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Header names and values in the order they came.
pub type Headers = Vec<(String, String)>;

/// A response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// A header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Connects to the server over plain TCP.
pub async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap()
}

/// Writes `bytes`, tolerating a peer that already answered and closed.
pub async fn write_lenient(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = stream.write_all(bytes).await;
    let _ = stream.flush().await;
}

/// Reads one HTTP/1.1 response (headers, then a `Content-Length` body or up to EOF) within `within`.
pub async fn read_response(stream: &mut TcpStream, within: Duration) -> RawResponse {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = vec![0_u8; 64 * 1024];
    // Status, headers and where the body starts, once the head is complete.
    let mut parsed: Option<(u16, Headers, usize)> = None;
    loop {
        if let Some((status, headers, start)) = &parsed {
            let length = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse::<usize>().ok());
            if length.is_some_and(|len| buf.len() - start >= len) {
                let body = buf[*start..*start + length.unwrap_or_default()].to_vec();
                return RawResponse {
                    status: *status,
                    headers: headers.clone(),
                    body,
                };
            }
        }
        let read = tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await;
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => 0,
        };
        if n == 0 {
            let Some((status, headers, start)) = parsed else {
                panic!(
                    "no complete response head within {within:?}; got {:?}",
                    String::from_utf8_lossy(&buf)
                );
            };
            return RawResponse {
                status,
                headers,
                body: buf[start..].to_vec(),
            };
        }
        buf.extend_from_slice(&chunk[..n]);
        if parsed.is_none()
            && let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let status = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line in {head:?}"));
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                .collect();
            parsed = Some((status, headers, end + 4));
        }
    }
}

/// Whether `s` is a canonical (lower-case, hyphenated) UUID version 4.
pub fn is_lower_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
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

fn digits(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Unix seconds of an RFC 3339 UTC timestamp `YYYY-MM-DDTHH:MM:SS[.frac]Z`; `None` if it is not one.
pub fn parse_rfc3339_utc(s: &str) -> Option<i64> {
    let rest = s.strip_suffix('Z')?;
    let (date, time) = rest.split_once('T')?;
    let mut d = date.split('-');
    let (year, month, day) = (d.next()?, d.next()?, d.next()?);
    if d.next().is_some() || year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let (clock, fraction) = match time.split_once('.') {
        Some((c, f)) => (c, Some(f)),
        None => (time, None),
    };
    if fraction.is_some_and(|f| digits(f).is_none()) {
        return None;
    }
    let mut t = clock.split(':');
    let (h, m, sec) = (t.next()?, t.next()?, t.next()?);
    if t.next().is_some() || h.len() != 2 || m.len() != 2 || sec.len() != 2 {
        return None;
    }
    let (year, month, day) = (digits(year)?, digits(month)?, digits(day)?);
    let (h, m, sec) = (digits(h)?, digits(m)?, digits(sec)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// Unix seconds of an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`); `None` if it is not one.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let time = httpdate::parse_http_date(s).ok()?;
    let secs = time.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

/// Asserts `created_at` is RFC 3339 in UTC (`…Z`) and within a few minutes of now.
pub fn assert_recent_rfc3339_utc(created_at: &str) {
    let secs = parse_rfc3339_utc(created_at)
        .unwrap_or_else(|| panic!("created_at {created_at:?} is not RFC 3339 UTC ending in Z"));
    assert!(
        (secs - now()).abs() < 300,
        "created_at {created_at:?} is not close to now"
    );
}

/// What JavaScript's `encodeURIComponent` leaves as it is: letters, digits and `-_.!~*'()`.
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// `s` percent-encoded exactly as JavaScript's `encodeURIComponent` does.
pub fn encode_uri_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, URI_COMPONENT).to_string()
}

/// Decodes `%XX` escapes (UTF-8).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

/// The FileInfo fields a test expects.
pub struct Expected<'a> {
    pub filename: &'a str,
    pub content_type: &'a str,
    pub data: &'a [u8],
    pub account_id: i64,
    pub user_id: Option<i64>,
}

/// Asserts `info` is a complete `FileInfo` for `expected`, served by `server`.
pub fn assert_file_info(server: &TestServer, info: &Value, expected: &Expected<'_>) {
    let object = info
        .as_object()
        .unwrap_or_else(|| panic!("FileInfo is not an object: {info}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "account_id",
            "content_type",
            "created_at",
            "file_id",
            "filename",
            "key",
            "metadata",
            "public_url",
            "sha256",
            "size",
            "user_id",
            "visibility"
        ],
        "FileInfo fields: {info}"
    );
    let id = info["file_id"].as_str().unwrap();
    assert!(
        is_lower_uuid_v4(id),
        "file_id {id:?} is not a lower-case UUID v4"
    );
    assert_eq!(
        info["public_url"],
        format!("{}/files/{id}", server.base_url),
        "{info}"
    );
    assert_eq!(info["filename"], expected.filename, "{info}");
    assert_eq!(info["key"], serde_json::Value::Null, "{info}");
    assert_eq!(info["metadata"], serde_json::json!({}), "{info}");
    assert_eq!(info["visibility"], "private", "{info}");
    assert_eq!(info["content_type"], expected.content_type, "{info}");
    assert_eq!(info["size"], expected.data.len() as u64, "{info}");
    assert_eq!(info["sha256"], sha256_hex(expected.data), "{info}");
    assert_recent_rfc3339_utc(info["created_at"].as_str().unwrap());
    assert_eq!(info["account_id"], expected.account_id, "{info}");
    match expected.user_id {
        Some(user) => assert_eq!(info["user_id"], user, "{info}"),
        None => assert!(info["user_id"].is_null(), "user_id is not null: {info}"),
    }
}

#[test]
fn helpers_parse_dates_and_encode_like_javascript() {
    assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339_utc("2024-02-29T12:34:56.789Z"),
        Some(1_709_210_096)
    );
    assert_eq!(parse_rfc3339_utc("2024-02-29T12:34:56+00:00"), None);
    assert_eq!(
        parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(784_111_777)
    );
    assert_eq!(parse_http_date("Mon, 06 Nov 1994 08:49:37 GMT"), None);
    assert_eq!(
        encode_uri_component("http://a/f?x=1&y=é (ok)!*'~"),
        "http%3A%2F%2Fa%2Ff%3Fx%3D1%26y%3D%C3%A9%20(ok)!*'~"
    );
    assert_eq!(percent_decode("%D0%BE_a%20b"), "о_a b");
    assert!(is_lower_uuid_v4("3f2c1b6e-9d4a-4b7e-8c1d-2e3f4a5b6c7d"));
    assert!(!is_lower_uuid_v4("3F2C1B6E-9D4A-4B7E-8C1D-2E3F4A5B6C7D"));
}
