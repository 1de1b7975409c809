//! Credentials: which JWTs are accepted, in which headers and cookies, in which order, and
//! that none of them (nor the secret) ends up in the log.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::json;
use sha2::Sha512;
use stowage_tests::{TestServer, now, sign_jwt, sign_jwt_with_header};

use crate::common::{expect_error, file_id, header, send, spawn_with_file, upload_to};

/// A server with one file of user 1 in account 1; returns its path.
async fn with_file() -> (TestServer, String) {
    let (server, _owner, info) = spawn_with_file("a.txt", "text/plain", b"a").await;
    let path = format!("/files/{}", file_id(&info));
    (server, path)
}

/// Asserts a `GET path` with `Authorization: Bearer {jwt}` is the JSON 401 with a challenge.
async fn assert_bearer_refused(server: &TestServer, path: &str, jwt: &str) {
    let bearer = format!("Bearer {jwt}");
    assert_unauthenticated(server, path, &[("Authorization", &bearer)]).await;
}

/// Asserts a `GET path` with `headers` is the JSON 401 with a `WWW-Authenticate` challenge.
async fn assert_unauthenticated(server: &TestServer, path: &str, headers: &[(&str, &str)]) {
    let response = send(server, Method::GET, path, headers).await;
    let challenge = header(&response, "www-authenticate");
    expect_error(response, 401, "UNAUTHENTICATED").await;
    assert!(
        challenge
            .as_deref()
            .is_some_and(|c| c.starts_with("Bearer")),
        "401 without a Bearer WWW-Authenticate challenge: {challenge:?}"
    );
}

/// Claims of user 1 in account 1, valid for an hour.
fn owner_claims() -> serde_json::Value {
    json!({"user_id": 1, "account_id": 1, "exp": now() + 3600})
}

#[tokio::test]
async fn auth_missing_credential_returns_401_with_challenge() {
    let (server, path) = with_file().await;

    assert_unauthenticated(&server, &path, &[]).await;
    assert_unauthenticated(&server, &format!("{path}/info"), &[]).await;
    assert_unauthenticated(&server, "/files", &[]).await;
    let delete = send(&server, Method::DELETE, &path, &[]).await;
    expect_error(delete, 401, "UNAUTHENTICATED").await;
    let head = send(&server, Method::HEAD, &path, &[]).await;
    assert_eq!(head.status(), 401);
    let upload = upload_to(&server, "/files", &[], "a.txt", "text/plain", b"a").await;
    expect_error(upload, 401, "UNAUTHENTICATED").await;
    assert_eq!(
        server.row_count().await,
        1,
        "the anonymous upload was stored"
    );
}

#[tokio::test]
async fn auth_empty_or_non_bearer_authorization_returns_401() {
    let (server, path) = with_file().await;
    let token = server.token(Some(1), 1);
    let basic = format!("Basic {token}");

    for value in ["Bearer", "Bearer ", basic.as_str(), token.as_str()] {
        assert_unauthenticated(&server, &path, &[("Authorization", value)]).await;
    }
}

#[tokio::test]
async fn auth_jwt_signed_with_other_secret_returns_401() {
    let (server, path) = with_file().await;
    let forged = sign_jwt("some-other-secret", &owner_claims());

    assert_bearer_refused(&server, &path, &forged).await;
    assert_unauthenticated(&server, &path, &[("X-Guest-Authorization", &forged)]).await;
}

#[tokio::test]
async fn auth_expired_jwt_returns_401() {
    let (server, path) = with_file().await;
    let expired = sign_jwt(
        &server.secret,
        &json!({"user_id": 1, "account_id": 1, "exp": now() - 3600}),
    );

    assert_bearer_refused(&server, &path, &expired).await;
}

#[tokio::test]
async fn auth_alg_none_jwt_returns_401() {
    let (server, path) = with_file().await;
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        URL_SAFE_NO_PAD.encode(owner_claims().to_string())
    );

    assert_bearer_refused(&server, &path, &unsigned).await;
    assert_unauthenticated(&server, &path, &[("X-Guest-Authorization", &unsigned)]).await;
}

#[tokio::test]
async fn auth_hs512_jwt_returns_401() {
    let (server, path) = with_file().await;
    let header_json = json!({"alg": "HS512", "typ": "JWT"});
    // Labelled HS512 but carrying a valid HS256 MAC.
    let relabelled = sign_jwt_with_header(&server.secret, &header_json, &owner_claims());
    // A genuine HS512 token made with the right secret.
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header_json.to_string()),
        URL_SAFE_NO_PAD.encode(owner_claims().to_string())
    );
    let mut mac = Hmac::<Sha512>::new_from_slice(server.secret.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let genuine = format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    );

    for token in [relabelled, genuine] {
        assert_bearer_refused(&server, &path, &token).await;
    }
}

#[tokio::test]
async fn auth_tampered_claims_return_401() {
    let (server, path) = with_file().await;
    let honest = sign_jwt(
        &server.secret,
        &json!({"user_id": 2, "account_id": 1, "exp": now() + 3600}),
    );
    let parts: Vec<&str> = honest.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(owner_claims().to_string()),
        parts[2]
    );

    assert_bearer_refused(&server, &path, &tampered).await;
}

#[tokio::test]
async fn auth_jwt_without_account_id_returns_401() {
    let (server, path) = with_file().await;
    let token = sign_jwt(&server.secret, &json!({"user_id": 1, "exp": now() + 3600}));

    assert_bearer_refused(&server, &path, &token).await;
}

#[tokio::test]
async fn auth_opaque_bearer_without_redis_returns_401() {
    let (server, path) = with_file().await;

    assert_unauthenticated(
        &server,
        &path,
        &[("Authorization", "Bearer 0123456789abcdef0123456789abcdef")],
    )
    .await;
}

#[tokio::test]
async fn auth_guest_jwt_in_x_guest_authorization_works() {
    let server = TestServer::spawn().await;
    let guest = server.guest_token(Some(5), 3, 11);

    let upload = upload_to(
        &server,
        "/files",
        &[("X-Guest-Authorization", &guest)],
        "guest.txt",
        "text/plain",
        b"from a guest",
    )
    .await;
    let info = crate::common::json_with_status(upload, 201).await;
    let download = send(
        &server,
        Method::GET,
        &format!("/files/{}", file_id(&info)),
        &[("X-Guest-Authorization", &guest)],
    )
    .await;

    assert_eq!(info["user_id"], 5, "{info}");
    assert_eq!(info["account_id"], 3, "{info}");
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().as_ref(), b"from a guest");
}

#[tokio::test]
async fn auth_jwt_in_guest_token_cookie_works() {
    let (server, path) = with_file().await;
    let cookie = format!(
        "theme=dark; guest-token={}",
        server.guest_token(Some(1), 1, 11)
    );

    let response = send(&server, Method::GET, &path, &[("Cookie", &cookie)]).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"a");
}

#[tokio::test]
async fn auth_jwt_in_token_or_file_service_auth_cookie_works() {
    let (server, path) = with_file().await;

    for name in ["token", "file_service_auth"] {
        let cookie = format!("{name}={}", server.token(Some(1), 1));
        let response = send(&server, Method::GET, &path, &[("Cookie", &cookie)]).await;
        assert_eq!(response.status(), 200, "JWT in cookie {name}");
    }
}

#[tokio::test]
async fn auth_guest_jwt_is_not_a_user_credential() {
    // The owner's file is user 1's of account 1; the guest token carries the same ids.
    let (server, path) = with_file().await;
    let guest = server.guest_token(Some(1), 1, 11);
    let user_positions = [
        ("Authorization", format!("Bearer {guest}")),
        ("Cookie", format!("token={guest}")),
        ("Cookie", format!("file_service_auth={guest}")),
    ];

    for (name, value) in &user_positions {
        let headers = [(*name, value.as_str())];
        assert_unauthenticated(&server, &path, &headers).await;
        assert_unauthenticated(&server, &format!("{path}/info"), &headers).await;
        let delete = send(&server, Method::DELETE, &path, &headers).await;
        expect_error(delete, 401, "UNAUTHENTICATED").await;
        let upload = upload_to(&server, "/files", &headers, "g.txt", "text/plain", b"g").await;
        expect_error(upload, 401, "UNAUTHENTICATED").await;
    }
    assert_eq!(server.row_count().await, 1, "the file is still there");
}

#[tokio::test]
async fn auth_invalid_bearer_falls_through_to_valid_guest_header() {
    let (server, path) = with_file().await;
    let invalid = format!("Bearer {}", sign_jwt("wrong-secret", &owner_claims()));
    let guest = server.guest_token(Some(1), 1, 11);

    let response = send(
        &server,
        Method::GET,
        &path,
        &[
            ("Authorization", &invalid),
            ("X-Guest-Authorization", &guest),
        ],
    )
    .await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn auth_invalid_guest_header_falls_through_to_valid_cookie() {
    let (server, path) = with_file().await;
    let cookie = format!("guest-token={}", server.guest_token(Some(1), 1, 11));

    let response = send(
        &server,
        Method::GET,
        &path,
        &[("X-Guest-Authorization", "not.a.jwt"), ("Cookie", &cookie)],
    )
    .await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn auth_first_valid_credential_wins() {
    let (server, path) = with_file().await;
    // A valid Bearer of another user comes first: it wins, so the owner's guest token is not used.
    let other = server.bearer(Some(2), 1);
    let owner = server.guest_token(Some(1), 1, 11);

    let response = send(
        &server,
        Method::GET,
        &path,
        &[("Authorization", &other), ("X-Guest-Authorization", &owner)],
    )
    .await;

    expect_error(response, 403, "FILE_ACCESS_DENIED").await;
}

#[tokio::test]
async fn auth_is_checked_before_the_id() {
    let server = TestServer::spawn().await;

    for path in ["/files/not-a-uuid", "/files/not-a-uuid/info"] {
        assert_unauthenticated(&server, path, &[]).await;
    }
    let delete = send(&server, Method::DELETE, "/files/not-a-uuid", &[]).await;
    expect_error(delete, 401, "UNAUTHENTICATED").await;
    let missing = format!("/files/{}", uuid::Uuid::new_v4());
    assert_unauthenticated(&server, &missing, &[]).await;
    assert_unauthenticated(&server, "/files?limit=0", &[]).await;
    assert_unauthenticated(&server, &format!("{missing}?disposition=evil"), &[]).await;
}

#[tokio::test]
async fn auth_is_checked_before_upload_shape_and_size() {
    let server = TestServer::spawn_with(&[("MAX_UPLOAD_BYTES", "1024")]).await;

    let not_multipart = stowage_tests::client()
        .post(server.url("/files"))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let too_large = upload_to(
        &server,
        "/files",
        &[],
        "big.bin",
        "text/plain",
        &[b'x'; 4096],
    )
    .await;

    expect_error(not_multipart, 401, "UNAUTHENTICATED").await;
    expect_error(too_large, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn auth_bearer_scheme_is_case_insensitive() {
    let (server, path) = with_file().await;
    let token = server.token(Some(1), 1);

    for scheme in ["bearer", "BEARER"] {
        let value = format!("{scheme} {token}");
        let response = send(&server, Method::GET, &path, &[("Authorization", &value)]).await;
        assert_eq!(response.status(), 200, "{scheme}");
    }
}

#[tokio::test]
async fn auth_jwt_without_exp_is_accepted() {
    let (server, path) = with_file().await;
    let token = sign_jwt(&server.secret, &json!({"user_id": 1, "account_id": 1}));

    let response = send(
        &server,
        Method::GET,
        &path,
        &[("Authorization", &format!("Bearer {token}"))],
    )
    .await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn auth_log_never_contains_secret_or_tokens() {
    let server = TestServer::process().await;
    let info = stowage_tests::upload_as_owner(&server, "a.txt", "text/plain", b"a").await;
    let path = format!("/files/{}", file_id(&info));
    let valid = server.token(Some(1), 1);
    let guest = server.guest_token(Some(1), 1, 11);
    let cookie_token = server.guest_token(None, 1, 12);
    let forged = sign_jwt("wrong-secret", &owner_claims());
    let expired = sign_jwt(
        &server.secret,
        &json!({"user_id": 1, "account_id": 1, "exp": now() - 3600}),
    );
    let tokens = [&valid, &guest, &cookie_token, &forged, &expired];

    for (name, value) in [
        ("Authorization", format!("Bearer {valid}")),
        ("Authorization", format!("Bearer {forged}")),
        ("Authorization", format!("Bearer {expired}")),
        ("X-Guest-Authorization", guest.clone()),
        ("X-Guest-Authorization", forged.clone()),
        ("Cookie", format!("guest-token={cookie_token}")),
        ("Cookie", format!("token={forged}")),
    ] {
        send(&server, Method::GET, &path, &[(name, value.as_str())]).await;
        send(&server, Method::GET, "/files", &[(name, value.as_str())]).await;
    }
    upload_to(
        &server,
        "/files",
        &[("Authorization", &format!("Bearer {valid}"))],
        "b.txt",
        "text/plain",
        b"b",
    )
    .await;

    let log = server.log();
    assert!(!log.is_empty(), "the server logged nothing");
    assert!(
        !log.contains(&server.secret),
        "the log holds AUTH_SECRET_KEY"
    );
    for token in tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !log.contains(token.as_str()),
            "the log holds a token: {token}"
        );
        assert!(
            !log.contains(signature),
            "the log holds a token's signature: {signature}"
        );
    }
}
