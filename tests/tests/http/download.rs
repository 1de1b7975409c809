//! Download headers: type, validators, caching, and `Content-Disposition` (attachment or inline).

use stowage_tests::TestServer;

use crate::common::{
    CACHE_CONTROL, HTML, PNG, file_id, get, header, parse_http_date, parse_rfc3339_utc,
    spawn_with_file,
};

#[tokio::test]
async fn download_sets_contract_headers() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let data = b"quarterly numbers\n".to_vec();
    let info = server
        .upload_ok(&auth, "report.txt", "text/plain", data.clone())
        .await;

    let response = get(&server, &auth, &format!("/files/{}", file_id(&info))).await;

    assert_eq!(response.status(), 200);
    let h = |name| header(&response, name);
    assert_eq!(h("content-type").as_deref(), Some("text/plain"));
    assert_eq!(h("content-length"), Some(data.len().to_string()));
    assert_eq!(
        h("etag"),
        Some(format!("\"{}\"", info["sha256"].as_str().unwrap()))
    );
    assert_eq!(h("accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(h("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(h("cache-control").as_deref(), Some(CACHE_CONTROL));
    assert_eq!(
        h("content-disposition").as_deref(),
        Some("attachment; filename=\"report.txt\"; filename*=UTF-8''report.txt")
    );
    let last_modified = h("last-modified").expect("Last-Modified");
    let modified = parse_http_date(&last_modified)
        .unwrap_or_else(|| panic!("Last-Modified {last_modified:?} is not an IMF-fixdate"));
    let created = parse_rfc3339_utc(info["created_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        modified, created,
        "Last-Modified {last_modified} vs created_at {}",
        info["created_at"]
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test]
async fn download_inline_disposition_applies_to_png() {
    let (server, auth, info) = spawn_with_file("pixel.png", "image/png", &PNG).await;
    let path = format!("/files/{}", file_id(&info));

    let inline = get(&server, &auth, &format!("{path}?disposition=inline")).await;
    let attachment = get(&server, &auth, &format!("{path}?disposition=attachment")).await;
    let default = get(&server, &auth, &path).await;

    assert_eq!(inline.status(), 200);
    assert_eq!(
        header(&inline, "content-disposition").as_deref(),
        Some("inline; filename=\"pixel.png\"; filename*=UTF-8''pixel.png")
    );
    assert_eq!(
        header(&inline, "content-type").as_deref(),
        Some("image/png")
    );
    for response in [attachment, default] {
        assert_eq!(
            header(&response, "content-disposition").as_deref(),
            Some("attachment; filename=\"pixel.png\"; filename*=UTF-8''pixel.png")
        );
    }
}

/// Uploads a file as user 1 and downloads it with `?disposition=inline`, asserting `200`;
/// returns the `Content-Disposition` it was served with.
async fn inline_disposition_of(filename: &str, content_type: &str, data: &[u8]) -> String {
    let (server, auth, info) = spawn_with_file(filename, content_type, data).await;

    let path = format!("/files/{}?disposition=inline", file_id(&info));
    let response = get(&server, &auth, &path).await;

    assert_eq!(response.status(), 200);
    header(&response, "content-disposition").unwrap()
}

#[tokio::test]
async fn download_inline_disposition_stays_attachment_for_text_plain() {
    assert_eq!(
        inline_disposition_of("notes.txt", "text/plain", b"just text").await,
        "attachment; filename=\"notes.txt\"; filename*=UTF-8''notes.txt"
    );
}

#[tokio::test]
async fn download_inline_disposition_stays_attachment_for_neutralised_html() {
    let disposition = inline_disposition_of("page.html", "text/html", HTML).await;
    assert!(disposition.starts_with("attachment;"), "{disposition}");
}
