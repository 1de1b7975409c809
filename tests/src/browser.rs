//! Headless Chromium for the tests that need a real browser: a page served on an origin of its
//! own, loaded until its script has written its result, and that result read back from the DOM.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// The Chromium binary; `None` (the test is skipped) when it is not installed, except under CI,
/// which must run every browser test.
pub fn chromium_or_skip() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs Chromium: apt-get install -y chromium"
        );
        eprintln!("skipped: no chromium (apt-get install -y chromium)");
    }
    found
}

/// Serves `html` at `http://127.0.0.1:{port}/`, for as long as the test runs.
pub async fn serve_page(port: u16, html: String) {
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(html) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// Loads `page_url` in headless Chromium (with `extra` arguments) and returns the JSON its
/// script wrote after `RESULT ` into a `<pre>`; panics with the DOM when there is none.
pub async fn page_result(chromium: &'static str, page_url: &str, extra: &[&str]) -> Value {
    let profile = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--no-first-run".to_owned(),
        format!("--user-data-dir={}", profile.path().display()),
        // Virtual time runs only while nothing is loading: the page's requests finish first.
        "--virtual-time-budget=20000".to_owned(),
        "--dump-dom".to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args.push(page_url.to_owned());
    let output =
        tokio::task::spawn_blocking(move || Command::new(chromium).args(&args).output().unwrap());
    let output = tokio::time::timeout(Duration::from_secs(90), output)
        .await
        .expect("chromium finished")
        .unwrap();
    drop(profile);
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
    serde_json::from_str(&result.replace("&amp;", "&")).unwrap()
}

/// A page holding `elements`, whose `script` defines `async function run()`; what `run` returns
/// is written where [`page_result`] reads it. The script may call `done(img)`, which resolves
/// once an image has loaded or failed.
pub fn result_page(elements: &str, script: &str) -> String {
    format!(
        r#"<!doctype html><html><body>
{elements}
<pre id="result">pending</pre><script>
function done(img) {{
  return new Promise(resolve => {{
    if (img.complete) {{ resolve(); return; }}
    img.addEventListener("load", resolve);
    img.addEventListener("error", resolve);
  }});
}}
{script}
run().then(
  r => {{ document.getElementById("result").textContent = "RESULT " + JSON.stringify(r); }},
  e => {{ document.getElementById("result").textContent = "ERROR " + e; }});
</script></body></html>"#
    )
}
