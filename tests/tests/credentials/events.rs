//! The audit events the Pneumatic backend reads from a Redis stream: each upload, each download
//! from the first byte and each read the permission service refuses, in the contract's
//! envelope, written by the running service as clients use it.

use std::collections::HashMap;

use redis::AsyncCommands;
use stowage_tests::{TestServer, client, header_of, multipart_body, scrape_metrics};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{file_id, json_with_status, redis_connection, redis_url};

const AGENT: &str = "events-suite/1.0";

/// Every entry of `stream`: its `type` field and its `data` parsed.
async fn entries(url: &str, stream: &str) -> Vec<(String, serde_json::Value)> {
    let mut redis = redis_connection(url).await;
    let raw: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    raw.into_iter()
        .map(|(_, fields)| {
            let data = serde_json::from_str(&fields["data"]).unwrap();
            (fields["type"].clone(), data)
        })
        .collect()
}

/// `GET path` as `auth` with `extra` headers; returns the status and the request id answered.
async fn get(server: &TestServer, path: &str, auth: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let mut request = client()
        .get(server.url(path))
        .header("Authorization", auth)
        .header("User-Agent", AGENT);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let id = header_of(response.headers(), "x-request-id").unwrap_or_default();
    let status = response.status().as_u16();
    let _ = response.bytes().await;
    (status, id)
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn uploads_downloads_and_refusals_are_written_to_the_stream_in_the_envelope() {
    let url = redis_url();
    let stream = format!("events-test:{}", uuid::Uuid::new_v4().simple());
    let permissions = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&permissions)
        .await;
    let check_url = format!("{}/check", permissions.uri());
    let server = TestServer::spawn_with(&[
        ("EVENTS_REDIS_URL", url.as_str()),
        ("EVENTS_STREAM", stream.as_str()),
        ("EVENTS_SERVICE_NAME", "files-test"),
        ("PERMISSION_CHECK_URL", check_url.as_str()),
    ])
    .await;
    let owner = server.bearer(Some(7), 3);
    let boundary = "events-suite-boundary";
    let uploaded = server
        .post_form("/files", boundary)
        .header("Authorization", &owner)
        .header("User-Agent", AGENT)
        .body(multipart_body(
            boundary,
            "notes.txt",
            "text/plain",
            b"hello events",
        ))
        .send()
        .await
        .unwrap();
    let upload_request = header_of(uploaded.headers(), "x-request-id").unwrap();
    let id = file_id(&json_with_status(uploaded, 201).await);
    let path = format!("/files/{id}");

    let (whole, download_request) = get(&server, &path, &owner, &[]).await;
    let (later, _) = get(&server, &path, &owner, &[("Range", "bytes=5-")]).await;
    let (first, _) = get(&server, &path, &owner, &[("Range", "bytes=0-1")]).await;
    let (refused, _) = get(&server, &path, &server.bearer(Some(9), 4), &[]).await;
    let deleted = client()
        .delete(server.url(&path))
        .header("Authorization", &owner)
        .send()
        .await
        .unwrap();

    let account_level = server
        .upload(
            &server.bearer(None, 3),
            "notes.txt",
            "text/plain",
            b"hello events".to_vec(),
        )
        .await;

    assert_eq!((whole, later, first, refused), (200, 206, 206, 403));
    assert_eq!(deleted.status(), 204);
    let account_file = file_id(&json_with_status(account_level, 201).await);
    let events = entries(&url, &stream).await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "file.upload",
            "file.download",
            "file.download",
            "file.access_denied",
            "file.upload",
        ],
        "a range from byte 5 and the deletion are not in the stream"
    );
    for (kind, data) in &events {
        assert_eq!(data["type"], kind.as_str());
        assert_eq!(data["category"], "audit");
        assert_eq!(data["service"], "files-test");
        assert_eq!(data["object"]["type"], "file");
        assert_eq!(data["workflow_id"], serde_json::Value::Null);
        assert_eq!(data["task_id"], serde_json::Value::Null);
        assert_eq!(data["ip"], "127.0.0.1");
        assert!(data["request_id"].is_string(), "{data}");
        assert_eq!(
            data["pii"],
            serde_json::json!(["ip", "user_agent", "payload.filename"])
        );
        assert_eq!(data["payload"]["filename"], "notes.txt");
        assert_eq!(data["payload"]["size"], 12);
        assert_eq!(data["payload"]["content_type"], "text/plain");
        let ts = data["ts"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-12-03T19:00:00.123456Z".len(), "{ts}");
        assert!(ts.ends_with('Z'), "{ts}");
    }
    let [upload, download, first_bytes, denial, by_account] = [0, 1, 2, 3, 4].map(|i| &events[i].1);
    for data in [upload, download, first_bytes, denial] {
        assert_eq!(data["object"]["id"], id.as_str());
        assert_eq!(data["user_agent"], AGENT);
    }
    assert_eq!(
        upload["actor"],
        serde_json::json!({"type": "user", "id": 7, "email": null})
    );
    assert_eq!(upload["account_id"], 3);
    assert_eq!(upload["request_id"], upload_request.as_str());
    assert!(upload["payload"].get("is_owner").is_none());
    assert_eq!(download["request_id"], download_request.as_str());
    assert_eq!(download["payload"]["is_owner"], true);
    assert_eq!(first_bytes["payload"]["is_owner"], true);
    assert_eq!(denial["actor"]["id"], 9);
    assert_eq!(denial["account_id"], 4);
    assert_eq!(denial["payload"]["file_account_id"], 3);
    assert!(denial["payload"].get("is_owner").is_none());
    assert_eq!(
        by_account["actor"],
        serde_json::json!({"type": "api_key", "id": null, "email": null})
    );
    assert_eq!(by_account["object"]["id"], account_file.as_str());
    let mut redis = redis_connection(&url).await;
    let _: () = redis.del(&stream).await.unwrap();
}

#[tokio::test]
async fn a_stream_that_never_answers_neither_fails_nor_slows_a_request_and_drops_are_counted() {
    // A Redis that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let events_url = format!("redis://{address}/0");
    // A process: the dropped-events counter is process-wide.
    let server = TestServer::process_with(&[
        ("EVENTS_REDIS_URL", events_url.as_str()),
        ("EVENTS_TIMEOUT_MS", "300"),
    ])
    .await;
    let auth = server.bearer(Some(1), 1);

    let started = std::time::Instant::now();
    for _ in 0..3 {
        server
            .upload_ok(&auth, "a.txt", "text/plain", b"abc".to_vec())
            .await;
    }
    let took = started.elapsed();

    assert!(
        took < std::time::Duration::from_secs(3),
        "three uploads took {took:?} with the stream down"
    );
    let metrics = scrape_metrics(&server.base_url).await;
    let dropped: f64 = metrics
        .lines()
        .find(|line| line.starts_with("events_dropped_total"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no events_dropped_total in:\n{metrics}"));
    assert!(dropped >= 3.0, "{dropped} events counted as dropped");
    held.abort();
}
