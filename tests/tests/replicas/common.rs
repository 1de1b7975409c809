//! What the replica tests share: the pair behind nginx, uploads and downloads by URL (through
//! nginx or straight to one replica), and how they check what each replica serves.

use std::collections::BTreeMap;

use reqwest::{Body, Response};
use serde_json::Value;
use stowage_tests::replicas::postgres;
use stowage_tests::{ReplicaPair, client, json_with_status, multipart_body};

pub const MIB: usize = 1024 * 1024;

/// Two replicas behind nginx with `extra` settings, or `None` (the test is skipped) when the suite
/// runs without Postgres.
pub async fn pair(extra: &[(&str, &str)]) -> Option<ReplicaPair> {
    postgres()?;
    Some(ReplicaPair::start(extra).await)
}

/// A multipart upload of `data` named `name` to `{base}/files{query}` as `auth`; `body` turns the
/// form into what is sent (whole, or streamed with its `Content-Length`).
pub async fn post_file(
    base: &str,
    auth: &str,
    query: &str,
    name: &str,
    data: &[u8],
    body: impl FnOnce(Vec<u8>) -> Body,
) -> reqwest::Result<Response> {
    let boundary = format!("replicas-{}", uuid::Uuid::new_v4().simple());
    let form = multipart_body(&boundary, name, "application/octet-stream", data);
    client()
        .post(format!("{base}/files{query}"))
        .header("Authorization", auth)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("Content-Length", form.len().to_string())
        .body(body(form))
        .send()
        .await
}

/// Uploads `data` to `{base}/files{query}` in one piece; returns the `FileInfo`, asserting 201.
pub async fn upload(base: &str, auth: &str, query: &str, name: &str, data: &[u8]) -> Value {
    let response = post_file(base, auth, query, name, data, Body::from)
        .await
        .unwrap();
    json_with_status(response, 201).await
}

/// `GET {base}{path}` as `auth` with extra `headers`.
pub async fn get(base: &str, auth: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = client()
        .get(format!("{base}{path}"))
        .header("Authorization", auth);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// Asserts that `{base}` answers `404 FILE_NOT_FOUND` for file `id`.
pub async fn assert_gone(base: &str, auth: &str, id: &str) {
    let response = get(base, auth, &format!("/files/{id}"), &[]).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (404, Some("FILE_NOT_FOUND")),
        "{base} on deleted file {id}: {body}"
    );
}

/// Every file the caller `auth` lists at `{base}`, by id, with its `FileInfo`.
pub async fn listing(base: &str, auth: &str) -> BTreeMap<String, Value> {
    let mut files = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = cursor.map_or_else(String::new, |c| format!("&cursor={c}"));
        let page = json_with_status(
            get(base, auth, &format!("/files?limit=1000{query}"), &[]).await,
            200,
        )
        .await;
        for item in page["items"].as_array().unwrap() {
            files.insert(item["file_id"].as_str().unwrap().to_owned(), item.clone());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return files,
        }
    }
}
