//! Uploads: byte-identical round trips, the `FileInfo` shape, the alias route, and the
//! sanitising of file names and content types.

use stowage_tests::{TestServer, pattern};

use crate::common::{
    Expected, HTML, PDF, PNG, assert_file_info, file_id, get, header, json_with_status,
    percent_decode, sha256_hex, spawn_with_file, upload_then_get, upload_to,
};

/// Uploads `len` pattern bytes, downloads them, and checks size, digest, length and bytes.
async fn assert_round_trip(len: usize, seed: u64) {
    let data = pattern(len, seed);

    let (_server, info, response) =
        upload_then_get("data.bin", "application/octet-stream", &data).await;

    assert_eq!(info["size"], len as u64, "{info}");
    assert_eq!(info["sha256"], sha256_hex(&data), "{info}");
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-length").as_deref(),
        Some(len.to_string().as_str())
    );
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), len, "downloaded length");
    assert!(body.as_ref() == data.as_slice(), "downloaded bytes differ");
}

#[tokio::test]
async fn upload_round_trips_empty_file() {
    assert_round_trip(0, 1).await;
}

#[tokio::test]
async fn upload_round_trips_one_byte_file() {
    assert_round_trip(1, 2).await;
}

#[tokio::test]
async fn upload_round_trips_5_mib_file() {
    assert_round_trip(5 * 1024 * 1024, 3).await;
}

#[tokio::test]
async fn upload_round_trips_64_mib_file() {
    assert_round_trip(64 * 1024 * 1024, 4).await;
}

#[tokio::test]
async fn upload_returns_201_with_location_and_complete_file_info() {
    let server = TestServer::spawn().await;
    let data = b"hello, stowage\n".to_vec();

    let response = server
        .upload(
            &server.bearer(Some(42), 7),
            "hello.txt",
            "text/plain",
            data.clone(),
        )
        .await;

    let location = header(&response, "location");
    let info = json_with_status(response, 201).await;
    assert_file_info(
        &server,
        &info,
        &Expected {
            filename: "hello.txt",
            content_type: "text/plain",
            data: &data,
            account_id: 7,
            user_id: Some(42),
        },
    );
    let id = file_id(&info);
    assert_eq!(location, Some(server.url(&format!("/files/{id}"))));
    assert_eq!(
        server.blob_files(),
        [server.blob_path(7, &id)],
        "layout is {{account_id}}/{{file_id}} (under DATA_DIR/blobs, or in the bucket)"
    );
}

#[tokio::test]
async fn upload_records_null_user_id_for_account_level_token() {
    let server = TestServer::spawn().await;
    let data = b"account-wide".to_vec();

    let info = server
        .upload_ok(
            &server.bearer(None, 9),
            "shared.txt",
            "text/plain",
            data.clone(),
        )
        .await;

    assert_file_info(
        &server,
        &info,
        &Expected {
            filename: "shared.txt",
            content_type: "text/plain",
            data: &data,
            account_id: 9,
            user_id: None,
        },
    );
}

#[tokio::test]
async fn upload_alias_files_upload_works() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let data = b"via the alias".to_vec();

    let response = upload_to(
        &server,
        "/files/upload",
        &[("Authorization", &auth)],
        "alias.txt",
        "text/plain",
        &data,
    )
    .await;

    let location = header(&response, "location");
    let info = json_with_status(response, 201).await;
    assert_file_info(
        &server,
        &info,
        &Expected {
            filename: "alias.txt",
            content_type: "text/plain",
            data: &data,
            account_id: 1,
            user_id: Some(1),
        },
    );
    assert_eq!(
        location,
        Some(server.url(&format!("/files/{}", file_id(&info))))
    );
    let download = get(&server, &auth, &format!("/files/{}", file_id(&info))).await;
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test]
async fn upload_sanitizes_path_traversal_filename() {
    let (server, info, response) =
        upload_then_get("../../etc/passwd", "text/plain", b"root:x:0:0").await;

    assert_eq!(info["filename"], "etc_passwd", "{info}");
    assert_eq!(
        header(&response, "content-disposition").as_deref(),
        Some("attachment; filename=\"etc_passwd\"; filename*=UTF-8''etc_passwd")
    );
    assert_eq!(
        server.blob_files(),
        [server.blob_path(1, &file_id(&info))],
        "the name never reaches the storage path"
    );
}

#[tokio::test]
async fn upload_keeps_unicode_filename_and_encodes_it_in_content_disposition() {
    let (_server, info, response) = upload_then_get("отчёт 2024.pdf", "application/pdf", PDF).await;

    assert_eq!(info["filename"], "отчёт_2024.pdf", "{info}");
    assert_eq!(info["content_type"], "application/pdf", "{info}");
    assert_eq!(response.status(), 200);
    let disposition = header(&response, "content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\""),
        "{disposition}"
    );
    let encoded = disposition
        .split_once("; filename*=UTF-8''")
        .map(|(_, e)| e)
        .unwrap_or_else(|| panic!("no filename* in {disposition}"));
    assert_eq!(encoded, "%D0%BE%D1%82%D1%87%D1%91%D1%82_2024.pdf");
    assert_eq!(percent_decode(encoded), "отчёт_2024.pdf");
    let fallback = disposition
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("no quoted filename in {disposition}"));
    assert!(
        fallback.is_ascii() && fallback.ends_with(".pdf"),
        "ASCII fallback {fallback:?}"
    );
}

/// Uploads the HTML document declared as `declared` and checks it is stored and served as octet-stream.
async fn assert_html_neutralised(declared: &str) {
    let (_server, info, response) = upload_then_get("page.html", declared, HTML).await;

    assert_eq!(
        info["content_type"], "application/octet-stream",
        "declared {declared}: {info}"
    );
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("application/octet-stream"),
        "declared {declared}"
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), HTML);
}

#[tokio::test]
async fn upload_stores_html_as_octet_stream_whatever_it_is_declared_as() {
    for declared in [
        "text/html",
        "text/plain",
        "image/png",
        "application/octet-stream",
    ] {
        assert_html_neutralised(declared).await;
    }
}

#[tokio::test]
async fn upload_detects_png_declared_as_text_plain() {
    let (_server, info, response) = upload_then_get("pixel.txt", "text/plain", &PNG).await;

    assert_eq!(info["content_type"], "image/png", "{info}");
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("image/png")
    );
}

#[tokio::test]
async fn upload_sanitizes_assorted_filenames() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let long_ascii = format!("{}.pdf", "a".repeat(300));
    let long_cyrillic = format!("{}.txt", "ж".repeat(200));
    let cases = [
        ("  my  file  .txt ", "my_file_.txt".to_owned()),
        ("a<b>c:d|e?.txt", "a_b_c_d_e_.txt".to_owned()),
        ("__init__.py", "init_.py".to_owned()),
        (".hidden", "hidden".to_owned()),
        ("trailing...", "trailing".to_owned()),
        ("...", "unnamed_file".to_owned()),
        ("", "unnamed_file".to_owned()),
        (
            "C:\\Users\\x\\photo 1.jpg",
            "C_Users_x_photo_1.jpg".to_owned(),
        ),
        ("ünïcödé-名前.txt", "ünïcödé-名前.txt".to_owned()),
        (long_ascii.as_str(), format!("{}.pdf", "a".repeat(251))),
        (long_cyrillic.as_str(), format!("{}.txt", "ж".repeat(125))),
    ];

    for (raw, expected) in cases {
        let info = server
            .upload_ok(&auth, raw, "text/plain", b"x".to_vec())
            .await;
        assert_eq!(info["filename"], expected.as_str(), "from {raw:?}");
        assert!(expected.len() <= 255);
    }
}

#[tokio::test]
async fn upload_normalises_declared_content_type() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let cases: [(&str, &[u8], &str); 8] = [
        ("text/plain; charset=utf-8", b"plain words", "text/plain"),
        ("TEXT/Plain", b"plain words", "text/plain"),
        ("text/csv", b"a,b\n1,2\n", "text/csv"),
        ("application/json", b"{\"a\": 1}", "application/json"),
        (
            "image/svg+xml",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            "application/octet-stream",
        ),
        (
            "application/javascript",
            b"alert(1)",
            "application/octet-stream",
        ),
        ("application/xml", b"<a/>", "application/octet-stream"),
        (
            "application/x-unheard-of",
            b"???",
            "application/octet-stream",
        ),
    ];

    for (declared, data, stored) in cases {
        let info = server
            .upload_ok(&auth, "f.bin", declared, data.to_vec())
            .await;
        assert_eq!(info["content_type"], stored, "declared {declared:?}");
    }
}

#[tokio::test]
async fn upload_magic_bytes_override_contradicting_declared_type() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let jpeg = [
        0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01,
    ];

    let png_as_jpeg = server
        .upload_ok(&auth, "p.jpg", "image/jpeg", PNG.to_vec())
        .await;
    let jpeg_as_png = server
        .upload_ok(&auth, "j.png", "image/png", jpeg.to_vec())
        .await;
    let pdf_as_text = server
        .upload_ok(&auth, "d.txt", "text/plain", PDF.to_vec())
        .await;

    assert_eq!(png_as_jpeg["content_type"], "image/png", "{png_as_jpeg}");
    assert_eq!(jpeg_as_png["content_type"], "image/jpeg", "{jpeg_as_png}");
    assert_eq!(
        pdf_as_text["content_type"], "application/pdf",
        "{pdf_as_text}"
    );
}

#[tokio::test]
async fn upload_skips_other_parts_before_the_file_part() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let boundary = "stowage-two-parts";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\nquarterly report\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&stowage_tests::multipart_body(
        boundary,
        "q.txt",
        "text/plain",
        b"the file",
    ));

    let response = server
        .post_form("/files", boundary)
        .header("Authorization", &auth)
        .body(body)
        .send()
        .await
        .unwrap();

    let info = json_with_status(response, 201).await;
    assert_eq!(info["filename"], "q.txt");
    assert_eq!(info["sha256"], sha256_hex(b"the file"));
}

#[tokio::test]
async fn upload_response_matches_info_and_listing() {
    let (server, auth, uploaded) = spawn_with_file("same.txt", "text/plain", b"same").await;
    let info = get(
        &server,
        &auth,
        &format!("/files/{}/info", file_id(&uploaded)),
    )
    .await;
    let listing = get(&server, &auth, "/files").await;

    assert_eq!(json_with_status(info, 200).await, uploaded);
    let listing = json_with_status(listing, 200).await;
    assert_eq!(listing["items"][0], uploaded, "{listing}");
}
