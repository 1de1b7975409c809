//! AVIF variants end to end, in a build with the `avif` feature: `format=avif` and `format=auto`
//! answered over HTTP by the service wired as in production, and a browser that decodes them.
#![cfg(feature = "avif")]
#![allow(missing_docs, clippy::unwrap_used, clippy::panic)]

use stowage_domain::image::header::{ImageFormat, Probe, probe};
use stowage_tests::browser::{chromium_or_skip, page_result, result_page, serve_page};
use stowage_tests::images::jpeg;
use stowage_tests::{TestServer, client, file_id, free_port, header, json_with_status, upload_to};

/// A public 400 × 200 JPEG on a fresh server that lets pages of `origin` read it.
async fn public_photo(origin: &str) -> (TestServer, String) {
    let server = TestServer::spawn_with(&[("ALLOWED_ORIGINS", origin)]).await;
    let auth = server.bearer(Some(1), 1);
    let response = upload_to(
        &server,
        "/files?visibility=public",
        &[("Authorization", &auth)],
        "photo.jpg",
        "image/jpeg",
        &jpeg(400, 200, 90),
    )
    .await;
    let info = json_with_status(response, 201).await;
    let url = server.url(&format!("/files/{}", file_id(&info)));
    (server, url)
}

/// The status, `Content-Type`, `Vary` and body of a GET of `url` accepting `accept`.
async fn get(url: &str, accept: &str) -> (u16, Option<String>, Option<String>, Vec<u8>) {
    let response = client()
        .get(url)
        .header("Accept", accept)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let (kind, vary) = (header(&response, "content-type"), header(&response, "vary"));
    (status, kind, vary, response.bytes().await.unwrap().to_vec())
}

fn avif_size(bytes: &[u8]) -> (u32, u32) {
    match probe(bytes) {
        Probe::Found(found) if found.format == ImageFormat::Avif => (found.width, found.height),
        other => panic!("not an AVIF: {other:?}"),
    }
}

#[tokio::test]
async fn avif_variants_are_served_when_asked_for_or_accepted() {
    let (_server, url) = public_photo("http://127.0.0.1:1").await;

    let (status, kind, _, body) = get(&format!("{url}?w=120&h=80&format=avif"), "*/*").await;
    assert_eq!(status, 200);
    assert_eq!(kind.as_deref(), Some("image/avif"));
    assert_eq!(avif_size(&body), (120, 80));

    // `auto` prefers AVIF to WebP when the client takes both, and says it varies by Accept.
    let chromium = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
    let (status, kind, vary, body) = get(&format!("{url}?w=100&format=auto"), chromium).await;
    assert_eq!(status, 200);
    assert_eq!(kind.as_deref(), Some("image/avif"));
    assert_eq!(vary.as_deref(), Some("Accept"));
    assert_eq!(avif_size(&body), (100, 50));
    let (_, kind, _, _) = get(&format!("{url}?w=100&format=auto"), "image/webp,*/*").await;
    assert_eq!(kind.as_deref(), Some("image/webp"));
}

#[tokio::test]
async fn avif_variants_are_decoded_by_a_browser() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let page_port = free_port();
    let origin = format!("http://127.0.0.1:{page_port}");
    let (server, url) = public_photo(&origin).await;
    let html = result_page(
        &format!(
            r#"<img id="avif" src="{url}?w=100&amp;format=avif" alt="">
<img id="auto" src="{url}?w=60&amp;format=auto" alt="">"#
        ),
        r#"async function run() {
  const [avif, auto] = ["avif", "auto"].map(id => document.getElementById(id));
  await Promise.all([done(avif), done(auto)]);
  return {avif: [avif.naturalWidth, avif.naturalHeight], auto: [auto.naturalWidth, auto.naturalHeight]};
}"#,
    );
    serve_page(page_port, html).await;
    let result = page_result(chromium, &format!("{origin}/"), &[]).await;
    // Decoded to pixels: a picture that failed to decode has a natural size of 0 × 0.
    assert_eq!(result["avif"], serde_json::json!([100, 50]), "{result}");
    assert_eq!(result["auto"], serde_json::json!([60, 30]), "{result}");
    // The browser's own image request, with its own Accept, was given the AVIF.
    let stored: Vec<String> = server
        .blob_files()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert!(stored.iter().any(|n| n == "w60-q80.avif"), "{stored:?}");
}
