//! The HTTP permission client against a real local HTTP server.

#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Duration;

use stowage_application::ports::{PermissionChecker, PermissionError, PermissionVerdict};
use stowage_domain::{
    AccountId, Credential, CredentialForm, FileId, Principal, PrincipalKind, UserId,
};
use stowage_infrastructure::{HttpPermissionChecker, PermissionSettings};
use wiremock::matchers::{body_string, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn principal(form: CredentialForm, secret: &str) -> Principal {
    Principal::new(
        PrincipalKind::User,
        Some(UserId::new(1)),
        AccountId::new(1),
        Credential::new(form, secret.into()),
    )
}

fn checker(url: String, timeout_ms: u64) -> HttpPermissionChecker {
    HttpPermissionChecker::new(&PermissionSettings {
        url,
        timeout: Duration::from_millis(timeout_ms),
    })
    .unwrap()
}

async fn answer(status: u16) -> Result<PermissionVerdict, PermissionError> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    checker(format!("{}/check", server.uri()), 2000)
        .check(
            &principal(CredentialForm::Bearer, "t"),
            FileId::new_random(),
        )
        .await
}

#[tokio::test]
async fn permission_request_carries_the_form_and_the_bearer_credential() {
    let server = MockServer::start().await;
    let id = FileId::new_random();
    Mock::given(method("POST"))
        .and(path("/api/files/check"))
        .and(header("authorization", "Bearer user-token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(format!("file_id={id}")))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let verdict = checker(format!("{}/api/files/check", server.uri()), 2000)
        .check(&principal(CredentialForm::Bearer, "user-token"), id)
        .await
        .unwrap();
    assert_eq!(verdict, PermissionVerdict::Allowed);
}

#[tokio::test]
async fn permission_request_forwards_guest_and_public_credentials_in_their_headers() {
    let server = MockServer::start().await;
    Mock::given(header("x-guest-authorization", "guest.jwt.sig"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(header("x-public-authorization", "Token abcdefgh"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let c = checker(server.uri(), 2000);
    let id = FileId::new_random();
    assert_eq!(
        c.check(&principal(CredentialForm::Guest, "guest.jwt.sig"), id)
            .await
            .unwrap(),
        PermissionVerdict::Allowed
    );
    assert_eq!(
        c.check(&principal(CredentialForm::Public, "abcdefgh"), id)
            .await
            .unwrap(),
        PermissionVerdict::Allowed
    );
}

#[tokio::test]
async fn permission_denials_are_401_403_and_404() {
    for status in [401, 403, 404] {
        assert_eq!(
            answer(status).await.unwrap(),
            PermissionVerdict::Denied,
            "{status}"
        );
    }
}

#[tokio::test]
async fn permission_other_statuses_are_unavailable() {
    for status in [200, 302, 400, 500, 503] {
        assert!(
            matches!(answer(status).await, Err(PermissionError::Unavailable(_))),
            "{status}"
        );
    }
}

#[tokio::test]
async fn permission_timeout_is_unavailable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204).set_delay(Duration::from_millis(800)))
        .mount(&server)
        .await;
    let result = checker(server.uri(), 200)
        .check(
            &principal(CredentialForm::Bearer, "t"),
            FileId::new_random(),
        )
        .await;
    assert!(matches!(result, Err(PermissionError::Unavailable(_))));
}

#[tokio::test]
async fn permission_unreachable_service_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let result = checker(format!("http://127.0.0.1:{port}/check"), 500)
        .check(
            &principal(CredentialForm::Bearer, "t"),
            FileId::new_random(),
        )
        .await;
    let Err(PermissionError::Unavailable(e)) = result else {
        panic!("expected unavailable")
    };
    assert!(
        !e.to_string().contains("127.0.0.1"),
        "the error carries no URL: {e}"
    );
}
