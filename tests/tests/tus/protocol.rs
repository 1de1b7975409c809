//! The protocol's edges over raw HTTP: versions, content types, offsets, owners, capabilities,
//! limits, deferred lengths, termination, and an upload the policy refuses.

use reqwest::Method;
use stowage_tests::{client, expect_error, header};

use crate::common::{
    MAX_UPLOAD_BYTES, MIB, OCTETS, TUS, assert_file, code_of, content, create, head, leftovers,
    metadata, patch, server, tus,
};

#[tokio::test]
async fn options_needs_no_credential_and_says_what_the_server_speaks() {
    let server = server(&[]).await;
    for path in ["/files/tus", "/tus"] {
        let response = client()
            .request(Method::OPTIONS, server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{path}");
        assert_eq!(header(&response, "tus-resumable").as_deref(), Some(TUS));
        assert_eq!(header(&response, "tus-version").as_deref(), Some(TUS));
        let extensions = header(&response, "tus-extension").unwrap_or_default();
        for extension in [
            "creation",
            "creation-with-upload",
            "creation-defer-length",
            "termination",
            "checksum",
            "expiration",
            "concatenation",
        ] {
            assert!(
                extensions.split(',').any(|e| e.trim() == extension),
                "{extension} in {extensions}"
            );
        }
        assert_eq!(
            header(&response, "tus-max-size").as_deref(),
            Some(MAX_UPLOAD_BYTES)
        );
        let algorithms = header(&response, "tus-checksum-algorithm").unwrap_or_default();
        for algorithm in ["sha1", "sha256", "md5"] {
            assert!(algorithms.contains(algorithm), "{algorithms}");
        }
    }
}

#[tokio::test]
async fn requests_without_tus_resumable_or_octets_or_at_a_wrong_offset_are_refused() {
    let server = server(&[]).await;
    let auth = server.bearer(Some(1), 1);
    let url = create(&server, &auth, 10, "").await;

    let no_version = client()
        .post(server.url("/files/tus"))
        .header("Authorization", &auth)
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    let refused = expect_error(no_version, 412, "TUS_VERSION_UNSUPPORTED").await;
    assert!(refused["message"].is_string());
    let old_version = client()
        .patch(&url)
        .header("Authorization", &auth)
        .header("Tus-Resumable", "0.2.2")
        .header("Content-Type", OCTETS)
        .header("Upload-Offset", "0")
        .body("hello")
        .send()
        .await
        .unwrap();
    let response_version = header(&old_version, "tus-resumable");
    expect_error(old_version, 412, "TUS_VERSION_UNSUPPORTED").await;
    assert_eq!(response_version.as_deref(), Some(TUS));

    let text = tus(Method::PATCH, &url, &auth)
        .header("Content-Type", "text/plain")
        .header("Upload-Offset", "0")
        .body("hello")
        .send()
        .await
        .unwrap();
    expect_error(text, 415, "UNSUPPORTED_MEDIA_TYPE").await;

    let ahead = patch(&url, &auth, 3, b"hello", &[]).await;
    expect_error(ahead, 409, "UPLOAD_OFFSET_MISMATCH").await;
    assert_eq!(head(&url, &auth).await, (200, Some(0)));

    let kept = patch(&url, &auth, 0, b"hello", &[]).await;
    assert_eq!(kept.status(), 204);
    let behind = patch(&url, &auth, 0, b"hello", &[]).await;
    expect_error(behind, 409, "UPLOAD_OFFSET_MISMATCH").await;
    assert_eq!(head(&url, &auth).await, (200, Some(5)));
}

#[tokio::test]
async fn another_principals_upload_is_not_found() {
    let server = server(&[]).await;
    let owner = server.bearer(Some(1), 1);
    let url = create(&server, &owner, 10, "").await;

    for stranger in [server.bearer(Some(2), 1), server.bearer(Some(1), 2)] {
        assert_eq!(head(&url, &stranger).await, (404, None));
        let write = patch(&url, &stranger, 0, b"0123456789", &[]).await;
        expect_error(write, 404, "UPLOAD_NOT_FOUND").await;
        let end = tus(Method::DELETE, &url, &stranger).send().await.unwrap();
        expect_error(end, 404, "UPLOAD_NOT_FOUND").await;
    }
    assert_eq!(head(&url, &owner).await, (200, Some(0)));
    let unknown = format!("{}/files/tus/{}", server.base_url, uuid::Uuid::new_v4());
    assert_eq!(head(&unknown, &owner).await.0, 404);
}

#[tokio::test]
async fn a_creation_over_the_upload_limit_is_too_large() {
    let server = server(&[]).await;
    let auth = server.bearer(Some(1), 1);
    let over: u64 = MAX_UPLOAD_BYTES.parse::<u64>().unwrap() + 1;
    let response = tus(Method::POST, &server.url("/files/tus"), &auth)
        .header("Upload-Length", over.to_string())
        .send()
        .await
        .unwrap();
    let (status, _) = code_of(response).await;
    assert_eq!(status, 413);

    let small = crate::common::server(&[("MAX_UPLOAD_BYTES", "1000")]).await;
    let auth = small.bearer(Some(1), 1);
    let deferred = create_deferred(&small, &auth).await;
    let response = patch(&deferred, &auth, 0, &[7; 600], &[]).await;
    assert_eq!(response.status(), 204);
    let response = patch(&deferred, &auth, 600, &[7; 600], &[]).await;
    assert_eq!(response.status(), 413, "more bytes than the limit");
}

async fn create_deferred(server: &stowage_tests::TestServer, auth: &str) -> String {
    let response = tus(Method::POST, &server.url("/files/tus"), auth)
        .header("Upload-Defer-Length", "1")
        .header("Upload-Metadata", metadata(&[("filename", "later.bin")]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    header(&response, "location").unwrap()
}

#[tokio::test]
async fn a_deferred_length_is_declared_by_a_later_patch() {
    let server = server(&[]).await;
    let auth = server.bearer(Some(1), 1);
    let data = content(7 * MIB + 3, 21);
    let url = create_deferred(&server, &auth).await;
    let status = tus(Method::HEAD, &url, &auth).send().await.unwrap();
    assert_eq!(status.status(), 200);
    assert_eq!(header(&status, "upload-defer-length").as_deref(), Some("1"));
    assert_eq!(header(&status, "upload-length"), None);

    let (first, rest) = data.split_at(6 * MIB);
    assert_eq!(patch(&url, &auth, 0, first, &[]).await.status(), 204);
    let total = data.len().to_string();
    let last = patch(&url, &auth, first.len(), rest, &[("Upload-Length", &total)]).await;
    assert_eq!(last.status(), 204);
    let id = header(&last, "stowage-file-id").expect("Stowage-File-Id");
    assert_file(&server, &auth, &id, &data).await;
    let status = tus(Method::HEAD, &url, &auth).send().await.unwrap();
    assert_eq!(header(&status, "upload-length"), Some(total));
}

#[tokio::test]
async fn a_terminated_upload_is_gone_with_its_bytes() {
    let server = server(&[]).await;
    let auth = server.bearer(Some(1), 1);
    let data = content(6 * MIB + 9, 22);
    let url = create(&server, &auth, 2 * data.len(), "").await;
    assert_eq!(patch(&url, &auth, 0, &data, &[]).await.status(), 204);
    assert!(!leftovers(&server).is_empty(), "the upload's bytes wait");

    let end = tus(Method::DELETE, &url, &auth).send().await.unwrap();
    assert_eq!(end.status(), 204);

    assert_eq!(head(&url, &auth).await, (404, None));
    let write = patch(&url, &auth, data.len(), &data, &[]).await;
    expect_error(write, 404, "UPLOAD_NOT_FOUND").await;
    assert_eq!(leftovers(&server), Vec::<std::path::PathBuf>::new());
    assert_eq!(server.row_count().await, 0);
}

#[tokio::test]
async fn an_image_upload_of_no_image_is_refused_and_gone() {
    let policies = r#"{"images": {"types": ["image/png"], "max_pixels": 1000000}}"#;
    let server = server(&[("UPLOAD_POLICIES", policies)]).await;
    let auth = server.bearer(Some(1), 1);
    let data = b"plain text, not a picture".repeat(100);
    let meta = metadata(&[
        ("filename", "me.png"),
        ("filetype", "image/png"),
        ("policy", "images"),
    ]);
    let url = create(&server, &auth, data.len(), &meta).await;
    let (first, rest) = data.split_at(1000);
    assert_eq!(patch(&url, &auth, 0, first, &[]).await.status(), 204);

    let last = patch(&url, &auth, first.len(), rest, &[]).await;

    expect_error(last, 415, "UNSUPPORTED_MEDIA_TYPE").await;
    assert_eq!(head(&url, &auth).await, (404, None));
    assert_eq!(server.row_count().await, 0);
    assert_eq!(leftovers(&server), Vec::<std::path::PathBuf>::new());
}

#[tokio::test]
async fn an_image_policy_refuses_a_bomb_at_the_end_and_a_stripping_one_at_creation() {
    use stowage_tests::images::{jpeg_with_metadata, png_bomb};
    let policies = r#"{"images": {"types": ["image/png", "image/jpeg"], "max_pixels": 1000}}"#;
    let server = server(&[("UPLOAD_POLICIES", policies)]).await;
    let auth = server.bearer(Some(1), 1);

    // The built-in avatar strips metadata, which a resumable upload cannot have done.
    let stripping = tus(Method::POST, &server.url("/files/tus"), &auth)
        .header("Upload-Length", "10")
        .header("Upload-Metadata", metadata(&[("policy", "avatar")]))
        .send()
        .await
        .unwrap();
    expect_error(stripping, 400, "VALIDATION_ERROR").await;

    let bomb = png_bomb();
    let meta = metadata(&[("filename", "bomb.png"), ("policy", "images")]);
    let url = create(&server, &auth, bomb.len(), &meta).await;
    let refused = patch(&url, &auth, 0, &bomb, &[]).await;
    expect_error(refused, 422, "IMAGE_TOO_LARGE").await;
    assert_eq!(head(&url, &auth).await, (404, None));
    assert_eq!(server.row_count().await, 0);
    assert_eq!(leftovers(&server), Vec::<std::path::PathBuf>::new());

    let image = jpeg_with_metadata();
    let meta = metadata(&[("filename", "me.jpg"), ("policy", "images")]);
    let url = create(&server, &auth, image.len(), &meta).await;
    let done = patch(&url, &auth, 0, &image, &[]).await;
    assert_eq!(done.status(), 204);
    let id = header(&done, "stowage-file-id").expect("the file's id");
    assert_file(&server, &auth, &id, &image).await;
}

/// The headers a browser's tus client must read from an answer.
const EXPOSED: [&str; 7] = [
    "location",
    "upload-offset",
    "upload-length",
    "tus-resumable",
    "upload-expires",
    "stowage-file-id",
    "stowage-file-url",
];

/// Asserts that `response` lets `origin` (with credentials) read every header of [`EXPOSED`].
fn assert_exposed(response: &reqwest::Response, origin: &str, what: &str) {
    assert_eq!(
        header(response, "access-control-allow-origin").as_deref(),
        Some(origin),
        "{what}"
    );
    assert_eq!(
        header(response, "access-control-allow-credentials").as_deref(),
        Some("true"),
        "{what}"
    );
    let exposed = header(response, "access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in EXPOSED {
        assert!(
            exposed.split(',').any(|e| e.trim() == name),
            "{what}: {name} in {exposed}"
        );
    }
}

#[tokio::test]
async fn a_browser_of_an_allowed_origin_may_send_tus_requests_and_read_their_answers() {
    const ORIGIN: &str = "https://app.example";
    let server = server(&[("ALLOWED_ORIGINS", ORIGIN)]).await;
    let auth = server.bearer(Some(1), 1);
    let data = b"bytes a browser sends".to_vec();
    let url = create(&server, &auth, data.len(), "").await;

    let preflight = client()
        .request(Method::OPTIONS, &url)
        .header("Origin", ORIGIN)
        .header("Access-Control-Request-Method", "PATCH")
        .header(
            "Access-Control-Request-Headers",
            "tus-resumable,upload-offset,upload-checksum,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        header(&preflight, "access-control-allow-origin").as_deref(),
        Some(ORIGIN)
    );
    let methods = header(&preflight, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.split(',').any(|m| m.trim() == "PATCH"), "{methods}");
    let allowed = header(&preflight, "access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in [
        "tus-resumable",
        "upload-offset",
        "upload-checksum",
        "content-type",
    ] {
        assert!(
            allowed.split(',').any(|h| h.trim() == name),
            "{name} in {allowed}"
        );
    }

    let created = tus(Method::POST, &server.url("/files/tus"), &auth)
        .header("Origin", ORIGIN)
        .header("Upload-Length", "10")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_exposed(&created, ORIGIN, "POST");

    let completed = tus(Method::PATCH, &url, &auth)
        .header("Origin", ORIGIN)
        .header("Content-Type", OCTETS)
        .header("Upload-Offset", "0")
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(completed.status(), 204);
    assert_exposed(&completed, ORIGIN, "PATCH");
    assert!(header(&completed, "stowage-file-url").is_some());
    let id = header(&completed, "stowage-file-id").expect("Stowage-File-Id");
    assert_file(&server, &auth, &id, &data).await;
}
