//! Protective headers on every response, whatever its status.

use reqwest::{Method, Response};
use stowage_tests::TestServer;

use crate::common::{SECURITY_HEADERS, file_id, get, get_as, header, send};

const HSTS: &str = "max-age=31536000; includeSubDomains";

fn assert_security_headers(response: &Response, what: &str) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(
            header(response, name).as_deref(),
            Some(value),
            "{what}: {name}"
        );
    }
    assert!(
        header(response, "x-request-id").is_some_and(|id| !id.is_empty()),
        "{what}: no X-Request-Id"
    );
}

/// A 200 download, a 404, a 401 and a JSON 200 of `server`.
async fn sample_responses(server: &TestServer) -> Vec<(&'static str, Response)> {
    let auth = server.bearer(Some(1), 1);
    let info = server
        .upload_ok(&auth, "a.txt", "text/plain", b"a".to_vec())
        .await;
    let path = format!("/files/{}", file_id(&info));
    vec![
        ("200 download", get(server, &auth, &path).await),
        (
            "200 health",
            send(server, Method::GET, "/health/live", &[]).await,
        ),
        (
            "404 file",
            get(server, &auth, &format!("/files/{}", uuid::Uuid::new_v4())).await,
        ),
        ("404 route", get(server, &auth, "/nowhere").await),
        ("401", send(server, Method::GET, &path, &[]).await),
        (
            "206",
            get_as(server, &auth, &path, &[("Range", "bytes=0-0")]).await,
        ),
        (
            "304",
            get_as(server, &auth, &path, &[("If-None-Match", "*")]).await,
        ),
        (
            "405",
            send(server, Method::PUT, &path, &[("Authorization", &auth)]).await,
        ),
        ("400", get(server, &auth, "/files?limit=0").await),
    ]
}

#[tokio::test]
async fn security_headers_are_on_success_and_error_responses() {
    let server = TestServer::spawn().await;

    let responses = sample_responses(&server).await;

    for (what, response) in &responses {
        assert_security_headers(response, what);
        assert_eq!(
            header(response, "strict-transport-security"),
            None,
            "{what}"
        );
    }
}

#[tokio::test]
async fn security_hsts_sent_when_enabled() {
    let server = TestServer::spawn_with(&[("HSTS_ENABLED", "true")]).await;

    let responses = sample_responses(&server).await;

    for (what, response) in &responses {
        assert_security_headers(response, what);
        assert_eq!(
            header(response, "strict-transport-security").as_deref(),
            Some(HSTS),
            "{what}"
        );
    }
}

#[tokio::test]
async fn security_request_ids_differ_between_requests() {
    let server = TestServer::spawn().await;

    let first = send(&server, Method::GET, "/health/live", &[]).await;
    let second = send(&server, Method::GET, "/health/live", &[]).await;

    assert_ne!(
        header(&first, "x-request-id"),
        header(&second, "x-request-id")
    );
}
