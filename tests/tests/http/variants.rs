//! Image variants (`GET /files/{id}?w=&h=&fit=&format=&q=`, `?variant=NAME`): real images are
//! encoded here, uploaded, and every answer is checked by its magic bytes and decoded, so that
//! sizes, formats and orientation are read off the pixels. Each test runs on whichever store the
//! suite runs on (disk, or S3 with `STOWAGE_TEST_STORAGE=s3`).

use serde_json::Value;
use stowage_tests::images::{Colour, Decoded, QUADRANTS, decode, format_of};
use stowage_tests::{Fetched, TestServer, fetch};

use crate::common::{assert_error_shape, file_id, json_with_status, upload_to};

mod access;
mod browser;
mod formats;
mod geometry;
mod limits;
mod memory;
mod policies;

/// The four quadrants as every test image stores them, read back from a variant's corners.
const STORED: [Option<Colour>; 4] = [
    Some(QUADRANTS[0]),
    Some(QUADRANTS[1]),
    Some(QUADRANTS[2]),
    Some(QUADRANTS[3]),
];

/// The owner's credential: user 1 of account 1.
fn owner(server: &TestServer) -> String {
    server.bearer(Some(1), 1)
}

/// The media type an upload of `data` declares: its format's, or `image/jpeg` for what is no
/// image at all (a text named `.jpg`).
fn declared_type(data: &[u8]) -> String {
    format!("image/{}", format_of(data).unwrap_or("jpeg"))
}

/// Uploads `data` as `filename` as the owner to `path` (`/files`, maybe with a query); returns
/// the `FileInfo`, asserting `201`.
async fn upload_image(server: &TestServer, path: &str, filename: &str, data: &[u8]) -> Value {
    let auth = owner(server);
    let response = upload_to(
        server,
        path,
        &[("Authorization", &auth)],
        filename,
        &declared_type(data),
        data,
    )
    .await;
    json_with_status(response, 201).await
}

/// An uploaded image: its id and the SHA-256 of its stored bytes.
struct Image {
    id: String,
    sha256: String,
}

impl Image {
    fn of(info: &Value) -> Image {
        Image {
            id: file_id(info),
            sha256: info["sha256"].as_str().unwrap().to_owned(),
        }
    }

    /// `/files/{id}?{query}`.
    fn path(&self, query: &str) -> String {
        format!("/files/{}?{query}", self.id)
    }

    /// The `ETag` of its variant `name`: the source's digest, then the variant's name.
    fn etag(&self, name: &str) -> String {
        format!("\"{}-{name}\"", self.sha256)
    }
}

/// Uploads `data` as the owner with a plain `POST /files`.
async fn upload(server: &TestServer, filename: &str, data: &[u8]) -> Image {
    Image::of(&upload_image(server, "/files", filename, data).await)
}

/// A fresh server (with `extra` settings) where the owner uploaded `data` as `filename`.
async fn spawn_with(extra: &[(&str, &str)], filename: &str, data: &[u8]) -> (TestServer, Image) {
    let server = TestServer::spawn_with(extra).await;
    let image = upload(&server, filename, data).await;
    (server, image)
}

/// `GET /files/{id}?{query}` as the owner, with the `extra` headers.
async fn get_as_owner(
    server: &TestServer,
    image: &Image,
    query: &str,
    extra: &[(&str, &str)],
) -> Fetched {
    let auth = owner(server);
    let headers = [&[("Authorization", auth.as_str())], extra].concat();
    fetch(server, &image.path(query), &headers).await
}

/// Asserts `got` is a `200` image in `format` (by `Content-Type` and by magic bytes) and decodes it.
#[track_caller]
fn image_of(got: &Fetched, format: &str) -> Decoded {
    assert_eq!(
        got.status,
        200,
        "{}",
        String::from_utf8_lossy(&got.body[..got.body.len().min(300)])
    );
    let media_type = format!("image/{format}");
    assert_eq!(
        got.header("content-type").as_deref(),
        Some(media_type.as_str())
    );
    assert_eq!(format_of(&got.body), Some(format), "magic bytes");
    decode(&got.body)
}

/// Asserts `got` is the JSON error `status`/`code` in the contract's shape; returns its body.
#[track_caller]
fn assert_error(got: &Fetched, status: u16, code: &str) -> Value {
    let body = got.json();
    assert_eq!(got.status, status, "{body}");
    assert!(
        got.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        got.headers
    );
    assert_error_shape(&body);
    assert_eq!(body["code"], code, "{body}");
    body
}

/// The names of the stored variants of `id` (files in its `{id}.variants` folder, on disk or in
/// the S3 server's directory), sorted.
fn stored_variants(server: &TestServer, id: &str) -> Vec<String> {
    let folder = format!("{id}.variants");
    let mut names: Vec<String> = server
        .blob_files()
        .iter()
        .filter(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .is_some_and(|d| d.to_string_lossy() == folder)
        })
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}
