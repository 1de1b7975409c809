//! A real browser (headless Chromium) uploads on upload URLs from a page of another origin, with
//! `fetch` and no credential: a `File` body by `PUT`, and a `FormData` by `POST`.

use serde_json::json;
use stowage_tests::browser::{chromium_or_skip, page_result, serve_page};
use stowage_tests::{TestServer, free_port};

use super::{ask, url_of};

/// The page: its script uploads, then writes each answer's status and file name into the DOM.
fn page(put_url: &str, form_url: &str) -> String {
    format!(
        r#"<!doctype html><html><body><pre id="result">pending</pre><script>
async function run() {{
  const file = new File(["hello from a browser"], "grüße aus dem browser.txt", {{type: "text/plain"}});
  const put = await fetch({put_url:?}, {{
    method: "PUT",
    headers: {{
      "Content-Type": file.type,
      "Content-Disposition": "attachment; filename*=UTF-8''" + encodeURIComponent(file.name),
    }},
    body: file,
  }});
  const putInfo = await put.json();
  const form = new FormData();
  form.append("metadata", JSON.stringify({{via: "FormData"}}));
  form.append("file", new Blob(["form bytes"], {{type: "text/csv"}}), "table.csv");
  const posted = await fetch({form_url:?}, {{method: "POST", body: form}});
  const postInfo = await posted.json();
  const again = await fetch({put_url:?}, {{method: "PUT", body: "x"}});
  return {{put: put.status, put_name: putInfo.filename, put_type: putInfo.content_type,
    post: posted.status, post_name: postInfo.filename, post_meta: postInfo.metadata,
    again: again.status}};
}}
run().then(
  r => {{ document.getElementById("result").textContent = "RESULT " + JSON.stringify(r); }},
  e => {{ document.getElementById("result").textContent = "ERROR " + e; }});
</script></body></html>"#
    )
}

#[tokio::test]
async fn a_browser_uploads_on_upload_urls_across_origins() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let page_port = free_port();
    let origin = format!("http://127.0.0.1:{page_port}");
    let server = TestServer::spawn_with(&[("ALLOWED_ORIGINS", origin.as_str())]).await;
    let auth = server.bearer(Some(8), 6);
    let put_url = url_of(&ask(&server, &auth, json!({})).await);
    let form_url = url_of(&ask(&server, &auth, json!({})).await);
    let html = page(&put_url, &form_url);
    serve_page(page_port, html).await;

    let result = page_result(chromium, &format!("{origin}/"), &[]).await;
    assert_eq!(
        result,
        json!({
            "put": 201, "put_name": "grüße_aus_dem_browser.txt", "put_type": "text/plain",
            "post": 201, "post_name": "table.csv", "post_meta": {"via": "FormData"},
            "again": 403,
        })
    );
    assert_eq!(server.row_count().await, 2);
}
