//! The blob store backends that need no external service, as clients meet them over HTTP:
//! `STORAGE_BACKEND=memory` and its `MEMORY_STORE_BYTES` bound, and `STORAGE_BACKEND=cloudinary`
//! against the fake Cloudinary of the test harness.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use stowage_tests::cloudinary::{FakeCloudinary, Route};
use stowage_tests::{
    TestServer, client, expect_error, fetch, file_id, json_with_status, pattern, readiness, send_as,
};

const BINARY: &str = "application/octet-stream";

async fn memory_server(capacity: Option<&str>) -> TestServer {
    let mut env = vec![("STORAGE_BACKEND", "memory")];
    if let Some(capacity) = capacity {
        env.push(("MEMORY_STORE_BYTES", capacity));
    }
    TestServer::spawn_with(&env).await
}

/// The ids `GET /files` lists for `auth`.
async fn listed_ids(server: &TestServer, auth: &str) -> Vec<String> {
    let page = json_with_status(send_as(server, Method::GET, "/files", auth).await, 200).await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(file_id)
        .collect()
}

#[tokio::test]
async fn memory_backend_uploads_downloads_ranges_and_deletes() {
    let server = memory_server(None).await;
    let auth = server.bearer(Some(1), 1);
    let data = pattern(300_000, 7);

    let info = server
        .upload_ok(&auth, "kept.bin", BINARY, data.clone())
        .await;
    let path = format!("/files/{}", file_id(&info));

    assert_eq!(info["size"], 300_000);
    let whole = fetch(&server, &path, &[("Authorization", &auth)]).await;
    assert_eq!(whole.status, 200);
    assert!(whole.body == data, "the download differs from the upload");
    let ranged = fetch(
        &server,
        &path,
        &[("Authorization", &auth), ("Range", "bytes=65000-140000")],
    )
    .await;
    assert_eq!(ranged.status, 206);
    assert_eq!(
        ranged.header("content-range").as_deref(),
        Some("bytes 65000-140000/300000")
    );
    assert!(ranged.body == data[65_000..=140_000], "the range differs");
    let tail = fetch(
        &server,
        &path,
        &[("Authorization", &auth), ("Range", "bytes=-10")],
    )
    .await;
    assert_eq!(tail.status, 206);
    assert!(tail.body == data[data.len() - 10..]);
    assert!(
        server.blob_files().is_empty(),
        "the memory store wrote to disk: {:?}",
        server.blob_files()
    );
    let (status, body) = readiness(&server).await;
    assert_eq!(status, 200, "{body}");

    let deleted = send_as(&server, Method::DELETE, &path, &auth).await;

    assert_eq!(deleted.status(), 204);
    let gone = send_as(&server, Method::GET, &path, &auth).await;
    expect_error(gone, 404, "FILE_NOT_FOUND").await;
    assert!(listed_ids(&server, &auth).await.is_empty());
}

#[tokio::test]
async fn memory_backend_refuses_an_upload_past_its_capacity_and_keeps_nothing() {
    let server = memory_server(Some("100000")).await;
    let auth = server.bearer(Some(1), 1);

    let refused = server
        .upload(&auth, "too-big.bin", BINARY, pattern(150_000, 1))
        .await;

    let body = expect_error(refused, 503, "STORAGE_UNAVAILABLE").await;
    assert!(body["message"].as_str().unwrap().contains("full"), "{body}");
    assert!(listed_ids(&server, &auth).await.is_empty());
    assert_eq!(
        server.row_count().await,
        0,
        "the refused upload left a record"
    );
    // The refused upload's reservation is gone: a file that fits takes nearly all the room.
    let small = pattern(90_000, 2);
    let info = server
        .upload_ok(&auth, "fits.bin", BINARY, small.clone())
        .await;
    let path = format!("/files/{}", file_id(&info));
    assert_eq!(listed_ids(&server, &auth).await, vec![file_id(&info)]);
    let read = fetch(&server, &path, &[("Authorization", &auth)]).await;
    assert!(read.body == small);
    // What is stored counts: the next 20 000 bytes do not fit until that file is deleted.
    let over = server
        .upload(&auth, "second.bin", BINARY, pattern(20_000, 3))
        .await;
    expect_error(over, 503, "STORAGE_UNAVAILABLE").await;
    let deleted = client()
        .delete(server.url(&path))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let again = server
        .upload_ok(&auth, "second.bin", BINARY, pattern(20_000, 3))
        .await;
    assert_eq!(listed_ids(&server, &auth).await, vec![file_id(&again)]);
    assert_eq!(server.row_count().await, 1);
}

async fn cloudinary_server(fake: &FakeCloudinary) -> TestServer {
    let (account_url, origin) = (fake.cloudinary_url(), fake.url());
    TestServer::spawn_with(&[
        ("STORAGE_BACKEND", "cloudinary"),
        ("CLOUDINARY_URL", &account_url),
        ("CLOUDINARY_API_URL", &origin),
        ("CLOUDINARY_DELIVERY_URL", &origin),
        ("CLOUDINARY_FOLDER", "files"),
    ])
    .await
}

fn png(len: usize) -> Vec<u8> {
    let mut data = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    data.extend(pattern(len - data.len(), 5));
    data
}

#[tokio::test]
async fn cloudinary_backend_stores_images_and_other_files_as_resources_and_serves_ranges() {
    let fake = FakeCloudinary::spawn();
    let server = cloudinary_server(&fake).await;
    let auth = server.bearer(Some(1), 4);
    let (picture, report) = (png(80_000), pattern(7_000_000, 9));

    let image = server
        .upload_ok(&auth, "photo.png", "image/png", picture.clone())
        .await;
    let other = server
        .upload_ok(&auth, "report.bin", BINARY, report.clone())
        .await;
    let empty = server
        .upload_ok(&auth, "empty.txt", "text/plain", Vec::new())
        .await;

    let (image_id, other_id) = (file_id(&image), file_id(&other));
    let mut expected = vec![
        format!("image/files/4/{image_id}"),
        format!("raw/files/4/{other_id}"),
    ];
    expected.sort();
    assert_eq!(fake.resources(), expected, "the empty file has no resource");
    assert_eq!(image["content_type"], "image/png");
    for info in [&image, &other, &empty] {
        assert!(
            !info.to_string().contains(&fake.url()),
            "a Cloudinary URL reached the client: {info}"
        );
    }
    let whole = fetch(
        &server,
        &format!("/files/{image_id}"),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(whole.status, 200);
    assert!(whole.body == picture);
    let ranged = fetch(
        &server,
        &format!("/files/{other_id}"),
        &[("Authorization", &auth), ("Range", "bytes=6000000-6000099")],
    )
    .await;
    assert_eq!(ranged.status, 206);
    assert!(ranged.body == report[6_000_000..6_000_100]);
    let nothing = fetch(
        &server,
        &format!("/files/{}", file_id(&empty)),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(nothing.status, 200);
    assert!(nothing.body.is_empty());
    let (status, body) = readiness(&server).await;
    assert_eq!(status, 200, "{body}");

    for id in [&image_id, &other_id, &file_id(&empty)] {
        let deleted = send_as(&server, Method::DELETE, &format!("/files/{id}"), &auth).await;
        assert_eq!(deleted.status(), 204);
    }
    assert!(fake.resources().is_empty(), "{:?}", fake.resources());
    assert!(listed_ids(&server, &auth).await.is_empty());
}

#[tokio::test]
async fn cloudinary_backend_answers_503_and_keeps_nothing_when_cloudinary_fails() {
    let fake = FakeCloudinary::spawn();
    let server = cloudinary_server(&fake).await;
    let auth = server.bearer(Some(1), 4);
    fake.fail_next(Route::Upload, 500, 10);

    let refused = server
        .upload(&auth, "report.bin", BINARY, pattern(10_000, 1))
        .await;

    expect_error(refused, 503, "STORAGE_UNAVAILABLE").await;
    assert!(fake.resources().is_empty());
    assert_eq!(server.row_count().await, 0);
    fake.fail_next(Route::Ping, 500, 10);
    let (status, body) = readiness(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["components"]["storage"], "unavailable");
}
