//! Error tracking, seen from a fake Sentry: a server error reaches it as an envelope that holds
//! no credential of the request (token, cookie, signed URL), a client error never does, and
//! without `SENTRY_DSN` nothing is sent. The Sentry client is process-global, so every server
//! here is a process of its own.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use reqwest::Method;
use stowage_tests::{TestServer, binary, client, file_id, send};

/// One envelope the fake received: its project, `X-Sentry-Auth` header and body.
#[derive(Clone, Debug)]
struct Envelope {
    project: String,
    auth: String,
    body: String,
}

/// A Sentry that accepts envelopes on `POST /api/{project}/envelope/` and keeps them.
struct FakeSentry {
    port: u16,
    received: Arc<Mutex<Vec<Envelope>>>,
}

impl FakeSentry {
    async fn start() -> FakeSentry {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/api/{project}/envelope/", post(record))
            .with_state(Arc::clone(&received));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeSentry { port, received }
    }

    /// A DSN of project 42 on this fake.
    fn dsn(&self) -> String {
        format!("http://publickey@127.0.0.1:{}/42", self.port)
    }

    fn envelopes(&self) -> Vec<Envelope> {
        self.received.lock().unwrap().clone()
    }

    /// Waits up to 10 s for `count` envelopes whose body contains `needle`.
    async fn wait_for(&self, needle: &str, count: usize) -> Vec<Envelope> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<Envelope> = self
                .envelopes()
                .into_iter()
                .filter(|e| e.body.contains(needle))
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{count} envelopes with {needle} expected, got {:#?}",
                self.envelopes()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn record(
    State(received): State<Arc<Mutex<Vec<Envelope>>>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let auth = headers
        .get("x-sentry-auth")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    received.lock().unwrap().push(Envelope {
        project,
        auth,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    "{}"
}

/// A server process reporting to `sentry`, with fs storage and no blob cache (so a broken store
/// shows at once).
async fn server_reporting_to(sentry: &FakeSentry, extra: &[(&str, &str)]) -> TestServer {
    let dsn = sentry.dsn();
    let mut env = vec![
        ("SENTRY_DSN", dsn.as_str()),
        ("SENTRY_ENVIRONMENT", "black-box"),
        ("STORAGE_BACKEND", "fs"),
        ("BLOB_CACHE_BYTES", "0"),
    ];
    env.extend_from_slice(extra);
    TestServer::process_with(&env).await
}

/// Breaks the blob store under the files of account 1: its blob directory becomes a plain file,
/// so every read of them fails (`503 STORAGE_UNAVAILABLE`).
fn break_storage(server: &TestServer, id: &str) {
    let account_dir = server.blob_path(1, id).parent().unwrap().to_owned();
    std::fs::remove_dir_all(&account_dir).unwrap();
    std::fs::write(&account_dir, b"not a directory").unwrap();
}

#[tokio::test]
async fn a_server_error_is_reported_without_the_credentials_of_its_request() {
    let sentry = FakeSentry::start().await;
    let mut server = server_reporting_to(&sentry, &[]).await;
    let token = server.token(Some(1), 1);
    let bearer = format!("Bearer {token}");
    let info = server
        .upload_ok(&bearer, "a.txt", "text/plain", b"hi".to_vec())
        .await;
    let id = file_id(&info);
    let signed: serde_json::Value = client()
        .post(server.url(&format!("/files/{id}/signed-url")))
        .header("Authorization", &bearer)
        .json(&serde_json::json!({"expires_in": 600}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signed_url = signed["url"].as_str().unwrap();
    let signature = signed_url.split("signature=").nth(1).unwrap();
    let signed_path = signed_url.trim_start_matches(server.base_url.as_str());
    let cookie_secret = format!("cookie-{}", uuid::Uuid::new_v4().simple());
    break_storage(&server, &id);

    let by_token = send(
        &server,
        Method::GET,
        &format!("/files/{id}"),
        &[("Authorization", &bearer)],
    )
    .await;
    let by_cookie = send(
        &server,
        Method::GET,
        &format!("/files/{id}"),
        &[(
            "Cookie",
            &format!("file_service_auth={token}; sessionid={cookie_secret}"),
        )],
    )
    .await;
    let by_signed_url = send(&server, Method::GET, signed_path, &[]).await;

    for (how, response) in [
        ("token", by_token),
        ("cookie", by_cookie),
        ("signed URL", by_signed_url),
    ] {
        let status = response.status();
        assert_eq!(status, 503, "{how}: {}", response.text().await.unwrap());
    }
    let reported = sentry.wait_for("STORAGE_UNAVAILABLE", 3).await;
    for envelope in &reported {
        assert_eq!(envelope.project, "42");
        assert!(
            envelope.auth.contains("sentry_key=publickey"),
            "{envelope:?}"
        );
        let body = &envelope.body;
        // An event without a level is an error, Sentry's default.
        assert!(!body.contains("\"level\""), "{body}");
        assert!(body.contains("\"message\":\"request failed\""), "{body}");
        assert!(body.contains("\"environment\":\"black-box\""), "{body}");
        assert!(body.contains("\"status\":\"503\""), "{body}");
        for (what, secret) in [
            ("the bearer token", token.as_str()),
            ("the signed URL's signature", signature),
            ("the cookie", cookie_secret.as_str()),
            ("a signature parameter", "signature="),
            ("the JWT secret", server.secret.as_str()),
        ] {
            assert!(!body.contains(secret), "{what} reached Sentry: {body}");
        }
    }

    assert!(server.terminate().success());
    assert_eq!(
        sentry.envelopes().len(),
        reported.len(),
        "only the three server errors are reported: {:#?}",
        sentry.envelopes()
    );
}

#[tokio::test]
async fn client_errors_are_never_reported() {
    let sentry = FakeSentry::start().await;
    let mut server = server_reporting_to(&sentry, &[("SENTRY_TRACES_SAMPLE_RATE", "0")]).await;
    let unknown = uuid::Uuid::new_v4();
    let auth = server.bearer(Some(1), 1);

    let not_found = send(
        &server,
        Method::GET,
        &format!("/files/{unknown}"),
        &[("Authorization", &auth)],
    )
    .await;
    let unauthenticated = send(&server, Method::GET, &format!("/files/{unknown}"), &[]).await;
    let bad_token = send(
        &server,
        Method::GET,
        &format!("/files/{unknown}"),
        &[("Authorization", "Bearer not-a-token")],
    )
    .await;
    let bad_signature = send(
        &server,
        Method::GET,
        &format!("/files/{unknown}?expires=1&signature=00"),
        &[],
    )
    .await;

    assert_eq!(not_found.status(), 404);
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(bad_token.status(), 401);
    assert!(bad_signature.status().is_client_error());
    // A clean stop flushes whatever the client still holds: after it, nothing can arrive.
    assert!(server.terminate().success());
    assert!(
        sentry.envelopes().is_empty(),
        "client errors were reported: {:#?}",
        sentry.envelopes()
    );
}

#[tokio::test]
async fn without_a_dsn_nothing_is_sent() {
    let sentry = FakeSentry::start().await;
    let mut server = TestServer::process_with(&[
        ("SENTRY_DSN", ""),
        ("SENTRY_TRACES_SAMPLE_RATE", "1"),
        ("STORAGE_BACKEND", "fs"),
        ("BLOB_CACHE_BYTES", "0"),
    ])
    .await;
    let auth = server.bearer(Some(1), 1);
    let info = server
        .upload_ok(&auth, "a.txt", "text/plain", b"hi".to_vec())
        .await;
    let id = file_id(&info);
    break_storage(&server, &id);

    let response = send(
        &server,
        Method::GET,
        &format!("/files/{id}"),
        &[("Authorization", &auth)],
    )
    .await;

    assert_eq!(response.status(), 503);
    assert!(server.terminate().success());
    assert!(sentry.envelopes().is_empty());
}

#[test]
fn an_invalid_dsn_stops_start_up_without_showing_its_key() {
    let output = Command::new(binary())
        .env_clear()
        .env("SENTRY_DSN", "https://secretkeyvalue@/42")
        .env("DATA_DIR", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SENTRY_DSN is invalid"), "{stderr}");
    assert!(!stderr.contains("secretkeyvalue"), "{stderr}");
}
