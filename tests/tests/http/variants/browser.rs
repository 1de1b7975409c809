//! A real browser (headless Chromium) shows variants of a public image from a page of another
//! origin: `srcset` picks the width its layout needs, and `format=auto` gives it WebP, which its
//! image requests accept.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use stowage_tests::images::jpeg;
use stowage_tests::{TestServer, free_port};

use super::{Image, stored_variants, upload_image};

/// The Chromium binary, if installed.
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// The page: two images of the file at `file` (a `srcset` and a `format=auto` one); once both
/// are done, its script fetches a `format=auto` variant as a WebP-accepting client and as one
/// that only takes JPEG, and writes what it saw into the DOM.
fn page(file: &str) -> String {
    format!(
        r#"<!doctype html><html><body>
<img id="set" srcset="{file}?w=32 32w, {file}?w=150 150w" sizes="150px" alt="">
<img id="auto" src="{file}?w=100&amp;format=auto" alt="">
<pre id="result">pending</pre><script>
function done(img) {{
  return new Promise(resolve => {{
    if (img.complete) {{ resolve(); return; }}
    img.addEventListener("load", resolve);
    img.addEventListener("error", resolve);
  }});
}}
async function typeOf(accept) {{
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
}}
run().then(
  r => {{ document.getElementById("result").textContent = "RESULT " + JSON.stringify(r); }},
  e => {{ document.getElementById("result").textContent = "ERROR " + e; }});
</script></body></html>"#,
        fetched = format!("{file}?w=120&format=auto"),
    )
}

#[tokio::test]
async fn variants_a_browser_gets_srcset_widths_and_webp_from_format_auto() {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs Chromium: apt-get install -y chromium"
        );
        eprintln!("skipped: no chromium (apt-get install -y chromium)");
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
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(html) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", page_port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let profile = tempfile::tempdir().unwrap();
    let page_url = format!("{origin}/");
    let profile_arg = format!("--user-data-dir={}", profile.path().display());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                // srcset picks by device pixels: one per CSS pixel.
                "--force-device-scale-factor=1",
                &profile_arg,
                // Virtual time runs only while nothing is loading: the images and fetches finish first.
                "--virtual-time-budget=20000",
                "--dump-dom",
                &page_url,
            ])
            .output()
            .unwrap()
    });
    let output = tokio::time::timeout(Duration::from_secs(90), output)
        .await
        .expect("chromium finished")
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);

    let result = dom
        .split("RESULT ")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| {
            panic!(
                "no result in the DOM: {dom}\nstderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let result: Value = serde_json::from_str(&result.replace("&amp;", "&")).unwrap();

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
