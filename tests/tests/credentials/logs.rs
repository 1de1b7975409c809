//! Passwords inside the URLs of dependencies never reach the log or a response, even when those
//! dependencies fail and the error is logged at debug level.

use stowage_tests::{TestServer, free_port, upload_as_owner};

use crate::common::{assert_log_free_of, get_with, opaque_token, unique_prefix, upload_with};

#[tokio::test]
async fn logs_never_contain_passwords_of_dependency_urls() {
    let redis_password = format!("redis-pw-{}", uuid::Uuid::new_v4().simple());
    let permission_password = format!("perm-pw-{}", uuid::Uuid::new_v4().simple());
    let server = TestServer::process_with(&[
        (
            "REDIS_URL",
            &format!(
                "redis://stowage:{redis_password}@127.0.0.1:{}/0",
                free_port()
            ),
        ),
        ("REDIS_KEY_PREFIX", &unique_prefix()),
        ("REDIS_TIMEOUT_MS", "300"),
        (
            "PERMISSION_CHECK_URL",
            &format!(
                "http://stowage:{permission_password}@127.0.0.1:{}/check",
                free_port()
            ),
        ),
    ])
    .await;
    let info = upload_as_owner(&server, "a.txt", "text/plain", b"x").await;

    let ready = get_with(&server, "/health/ready", &[]).await;
    let ready_body = ready.text().await.unwrap();
    let by_token = upload_with(
        &server,
        &[("Authorization", &format!("Bearer {}", opaque_token()))],
        b"x",
    )
    .await;
    let token_body = by_token.text().await.unwrap();
    let other_user = get_with(
        &server,
        &format!("/files/{}", info["file_id"].as_str().unwrap()),
        &[("Authorization", &server.bearer(Some(2), 1))],
    )
    .await;
    let other_status = other_user.status();
    let other_body = other_user.text().await.unwrap();

    assert_eq!(other_status, 503, "{other_body}");
    for body in [&ready_body, &token_body, &other_body] {
        assert!(
            !body.contains(&redis_password),
            "a response holds the Redis password: {body}"
        );
        assert!(
            !body.contains(&permission_password),
            "a response holds the permission URL's password: {body}"
        );
    }
    assert_log_free_of(
        &server,
        &[
            ("AUTH_SECRET_KEY", &server.secret),
            ("the Redis password", &redis_password),
            ("the permission URL's password", &permission_password),
        ],
    );
}
