//! Upload policies: types by magic bytes, size, pixels read from the header, metadata stripped
//! without re-encoding, configured policies, and `replaces=`.

use reqwest::Method;
use serde_json::Value;
use stowage_tests::TestServer;

use stowage_tests::images::{EXIF_SECRETS, decode, jpeg_oriented, jpeg_with_metadata, png_bomb};

use crate::common::{PNG, expect_error, file_id, json_with_status, send, sha256_hex, upload_to};

async fn upload(
    server: &TestServer,
    path: &str,
    name: &str,
    ty: &str,
    data: &[u8],
) -> reqwest::Response {
    let auth = server.bearer(Some(1), 1);
    upload_to(server, path, &[("Authorization", &auth)], name, ty, data).await
}

async fn download(server: &TestServer, id: &str) -> Vec<u8> {
    let auth = server.bearer(Some(1), 1);
    let got = send(
        server,
        Method::GET,
        &format!("/files/{id}"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(got.status(), 200);
    got.bytes().await.unwrap().to_vec()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn policies_an_avatar_loses_its_metadata_but_keeps_its_orientation_and_pixels() {
    let server = TestServer::spawn().await;
    // A real photo (the avatar makes its variants before answering) with GPS, camera and XMP
    // metadata and orientation 6.
    let source = jpeg_oriented(64, 48, 6);

    let info = json_with_status(
        upload(
            &server,
            "/files?policy=avatar",
            "me.jpg",
            "image/jpeg",
            &source,
        )
        .await,
        201,
    )
    .await;

    let stored = download(&server, &file_id(&info)).await;
    for gone in EXIF_SECRETS {
        assert!(
            !contains(&stored, gone),
            "{:?} kept",
            String::from_utf8_lossy(gone)
        );
    }
    assert!(
        contains(&stored, b"Exif\0\0"),
        "the orientation's Exif is kept"
    );
    assert_eq!(
        decode(&stored).rgba,
        decode(&source).rgba,
        "the image data is untouched"
    );
    assert!(stored.len() < source.len());
    // The record describes the bytes stored, not the bytes sent.
    assert_eq!(info["size"], stored.len());
    assert_eq!(info["sha256"], sha256_hex(&stored));
    assert_eq!(info["visibility"], "public");
}

#[tokio::test]
async fn policies_a_decompression_bomb_or_a_broken_image_is_refused_and_nothing_is_kept() {
    let server = TestServer::spawn().await;

    let bomb = upload(
        &server,
        "/files?policy=avatar",
        "bomb.png",
        "image/png",
        &png_bomb(),
    )
    .await;
    let error = expect_error(bomb, 422, "IMAGE_TOO_LARGE").await;
    assert!(error.to_string().contains("100000"), "{error}");
    let mut truncated = jpeg_with_metadata();
    truncated.truncate(truncated.len() - 2);
    let broken = upload(
        &server,
        "/files?policy=avatar",
        "cut.jpg",
        "image/jpeg",
        &truncated,
    )
    .await;
    expect_error(broken, 422, "UNSUPPORTED_IMAGE").await;

    assert_eq!(server.row_count().await, 0);
    assert!(server.blob_files().is_empty(), "{:?}", server.blob_files());
    // Without a policy the same bytes are an ordinary file.
    let plain = upload(&server, "/files", "bomb.png", "image/png", &png_bomb()).await;
    assert_eq!(plain.status(), 201);
}

#[tokio::test]
async fn policies_configured_ones_apply_their_types_size_and_visibility() {
    let policies = r#"{"docs": {"types": ["application/pdf"], "max_bytes": 200, "visibility": "public"},
                       "avatar": {"types": ["image/png"], "max_pixels": 4}}"#;
    let server = TestServer::spawn_with(&[("UPLOAD_POLICIES", policies)]).await;
    let pdf = b"%PDF-1.4\n%%EOF\n".to_vec();

    let doc = json_with_status(
        upload(
            &server,
            "/files?policy=docs",
            "a.pdf",
            "application/pdf",
            &pdf,
        )
        .await,
        201,
    )
    .await;
    assert_eq!(doc["visibility"], "public");
    let png = upload(&server, "/files?policy=docs", "a.png", "image/png", &PNG).await;
    expect_error(png, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    let big = [pdf.as_slice(), &[b' '; 200]].concat();
    let big = upload(
        &server,
        "/files?policy=docs",
        "b.pdf",
        "application/pdf",
        &big,
    )
    .await;
    expect_error(big, 413, "FILE_TOO_LARGE").await;
    let unknown = upload(
        &server,
        "/files?policy=banner",
        "a.pdf",
        "application/pdf",
        &pdf,
    )
    .await;
    expect_error(unknown, 400, "VALIDATION_ERROR").await;
    // The configured avatar replaces the built-in one: PNG only, and its own pixel limit.
    let jpeg = upload(
        &server,
        "/files?policy=avatar",
        "me.jpg",
        "image/jpeg",
        &jpeg_with_metadata(),
    )
    .await;
    expect_error(jpeg, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    let mut two_by_three = PNG.to_vec();
    two_by_three[19] = 2;
    two_by_three[23] = 3;
    let over = upload(
        &server,
        "/files?policy=avatar",
        "a.png",
        "image/png",
        &two_by_three,
    )
    .await;
    expect_error(over, 422, "IMAGE_TOO_LARGE").await;
    let avatar = json_with_status(
        upload(&server, "/files?policy=avatar", "a.png", "image/png", &PNG).await,
        201,
    )
    .await;
    assert_eq!(avatar["visibility"], "private");
    assert_eq!(server.row_count().await, 2);
}

#[tokio::test]
async fn policies_replaces_deletes_the_old_file_once_the_new_one_is_stored() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let old: Value = json_with_status(
        upload(&server, "/files", "old.png", "image/png", &PNG).await,
        201,
    )
    .await;
    let old_id = file_id(&old);

    let new = upload(
        &server,
        &format!("/files?policy=avatar&replaces={old_id}"),
        "new.png",
        "image/png",
        &PNG,
    )
    .await;
    let new = json_with_status(new, 201).await;

    let gone = send(
        &server,
        Method::GET,
        &format!("/files/{old_id}"),
        &[("Authorization", &auth)],
    )
    .await;
    expect_error(gone, 404, "FILE_NOT_FOUND").await;
    assert_eq!(download(&server, &file_id(&new)).await, PNG);
    assert_eq!(server.row_count().await, 1);
    // The new avatar's variants sit beside it.
    assert_eq!(files_without_variants(&server).len(), 1);

    // Someone else's file, a missing one, or a malformed id: refused, and nothing new is kept.
    let theirs = json_with_status(
        upload_to(
            &server,
            "/files",
            &[("Authorization", &server.bearer(Some(2), 1))],
            "t.png",
            "image/png",
            &PNG,
        )
        .await,
        201,
    )
    .await;
    let refused = upload(
        &server,
        &format!("/files?replaces={}", file_id(&theirs)),
        "x.png",
        "image/png",
        &PNG,
    )
    .await;
    expect_error(refused, 403, "FILE_ACCESS_DENIED").await;
    let missing = uuid::Uuid::new_v4();
    let refused = upload(
        &server,
        &format!("/files?replaces={missing}"),
        "x.png",
        "image/png",
        &PNG,
    )
    .await;
    expect_error(refused, 404, "FILE_NOT_FOUND").await;
    let refused = upload(&server, "/files?replaces=nope", "x.png", "image/png", &PNG).await;
    expect_error(refused, 400, "VALIDATION_ERROR").await;
    assert_eq!(server.row_count().await, 2);
    assert_eq!(files_without_variants(&server).len(), 2);
}

/// The stored blobs, leaving out the variants kept beside them.
fn files_without_variants(server: &TestServer) -> Vec<std::path::PathBuf> {
    server
        .blob_files()
        .into_iter()
        .filter(|path| !path.to_string_lossy().contains(".variants"))
        .collect()
}

#[tokio::test]
async fn policies_an_image_whose_size_cannot_be_read_is_refused_under_a_pixel_limit() {
    let policies = r#"{"any": {"types": ["image/*"], "max_pixels": 1000000}}"#;
    let server = TestServer::spawn_with(&[("UPLOAD_POLICIES", policies)]).await;
    let tiff = b"II*\0\x08\0\0\0\0\0\0\0\0\0".to_vec();

    let refused = upload(&server, "/files?policy=any", "a.tif", "image/tiff", &tiff).await;

    expect_error(refused, 422, "UNSUPPORTED_IMAGE").await;
    assert_eq!(server.row_count().await, 0);
    let png = upload(&server, "/files?policy=any", "a.png", "image/png", &PNG).await;
    assert_eq!(png.status(), 201);
}

#[tokio::test]
async fn policies_replaces_and_key_together_are_refused() {
    let server = TestServer::spawn().await;
    let old = json_with_status(
        upload(&server, "/files", "old.png", "image/png", &PNG).await,
        201,
    )
    .await;
    let path = format!("/files?key=avatars/1.png&replaces={}", file_id(&old));

    let refused = upload(&server, &path, "new.png", "image/png", &PNG).await;

    expect_error(refused, 400, "VALIDATION_ERROR").await;
    assert_eq!(server.row_count().await, 1);
}
