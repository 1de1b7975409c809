//! A real browser (headless Chromium) shows variants of a public image from a page of another
//! origin: `srcset` picks the width its layout needs, and `format=auto` gives it WebP, which its
//! image requests accept.

use stowage_tests::browser::{chromium_or_skip, page_result, result_page, serve_page};
use stowage_tests::images::jpeg;
use stowage_tests::{TestServer, free_port};

use super::{Image, stored_variants, upload_image};

/// The page: two images of the file at `file` (a `srcset` and a `format=auto` one); once both
/// are done, its script fetches a `format=auto` variant as a WebP-accepting client and as one
/// that only takes JPEG, and writes what it saw into the DOM.
fn page(file: &str) -> String {
    let elements = format!(
        r#"<img id="set" srcset="{file}?w=32 32w, {file}?w=150 150w" sizes="150px" alt="">
<img id="auto" src="{file}?w=100&amp;format=auto" alt="">"#
    );
    let script = format!(
        r#"async function typeOf(accept) {{
  const answer = await fetch({fetched:?}, {{headers: {{Accept: accept}}, cache: "no-store"}});
  const bytes = await answer.arrayBuffer();
  return {{status: answer.status, type: answer.headers.get("content-type"), size: bytes.byteLength}};
}}
async function run() {{
  const set = document.getElementById("set");
  const auto = document.getElementById("auto");
  await Promise.all([done(set), done(auto)]);
  return {{
    set_width: set.naturalWidth, set_src: set.currentSrc,
    auto_width: auto.naturalWidth, auto_height: auto.naturalHeight,
    webp: await typeOf("image/avif,image/webp,*/*"),
    jpeg: await typeOf("image/jpeg"),
  }};
}}"#,
        fetched = format!("{file}?w=120&format=auto"),
    );
    result_page(&elements, &script)
}

#[tokio::test]
async fn variants_a_browser_gets_srcset_widths_and_webp_from_format_auto() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let page_port = free_port();
    let origin = format!("http://127.0.0.1:{page_port}");
    let server = TestServer::spawn_with(&[("ALLOWED_ORIGINS", origin.as_str())]).await;
    let info = upload_image(
        &server,
        "/files?visibility=public",
        "photo.jpg",
        &jpeg(400, 200, 90),
    )
    .await;
    let image = Image::of(&info);
    let file = server.url(&format!("/files/{}", image.id));
    let html = page(&file);
    serve_page(page_port, html).await;

    // srcset picks by device pixels: one per CSS pixel.
    let scale = ["--force-device-scale-factor=1"];
    let result = page_result(chromium, &format!("{origin}/"), &scale).await;

    // A 150-pixel slot takes the 150w candidate (whose density-corrected width is 150).
    assert_eq!(result["set_width"], 150, "{result}");
    assert_eq!(result["set_src"], format!("{file}?w=150"), "{result}");
    // The format=auto image loaded, at its size.
    assert_eq!(result["auto_width"], 100, "{result}");
    assert_eq!(result["auto_height"], 50, "{result}");
    assert_eq!(result["webp"]["status"], 200, "{result}");
    assert_eq!(result["webp"]["type"], "image/webp", "{result}");
    assert_eq!(result["jpeg"]["status"], 200, "{result}");
    assert_eq!(result["jpeg"]["type"], "image/jpeg", "{result}");
    // What the browser's own image requests were answered with, as the store kept it: the
    // `<img>` of format=auto got a WebP, and srcset asked for the 150-pixel variant only.
    let stored = stored_variants(&server, &image.id);
    for made in [
        "w100-q80.webp",
        "w150-q80.jpeg",
        "w120-q80.webp",
        "w120-q80.jpeg",
    ] {
        assert!(stored.iter().any(|n| n == made), "{made} not in {stored:?}");
    }
    for unmade in ["w100-q80.jpeg", "w32-q80.jpeg"] {
        assert!(
            !stored.iter().any(|n| n == unmade),
            "{unmade} in {stored:?}"
        );
    }
}
