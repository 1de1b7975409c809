//! Liveness and readiness probes: no credential needed.

use reqwest::Method;
use serde_json::json;
use stowage_tests::TestServer;

use crate::common::{json_with_status, send};

#[tokio::test]
async fn health_live_returns_ok() {
    let server = TestServer::spawn().await;

    let response = send(&server, Method::GET, "/health/live", &[]).await;

    assert_eq!(
        json_with_status(response, 200).await,
        json!({"status": "ok"})
    );
}

#[tokio::test]
async fn health_ready_reports_database_and_storage_ok() {
    let server = TestServer::spawn().await;

    let response = send(&server, Method::GET, "/health/ready", &[]).await;

    let body = json_with_status(response, 200).await;
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["components"]["database"], "ok", "{body}");
    assert_eq!(body["components"]["storage"], "ok", "{body}");
}

#[tokio::test]
async fn health_ignores_invalid_credentials() {
    let server = TestServer::spawn().await;

    for path in ["/health/live", "/health/ready"] {
        let response = send(
            &server,
            Method::GET,
            path,
            &[("Authorization", "Bearer not-valid")],
        )
        .await;
        assert_eq!(response.status(), 200, "{path}");
    }
}
