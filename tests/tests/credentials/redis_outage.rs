//! Redis unreachable: a credential that needs it gets `503 AUTH_BACKEND_UNAVAILABLE` at once,
//! JWTs keep working, readiness says so, and the service recovers (or starts) without Redis.

use std::time::{Duration, Instant};

use stowage_tests::{TestServer, free_port, readiness};

use crate::common::{
    PUBLIC_P5, RedisProcess, TOKEN_TTL, USER_P5, expect_error, expect_uploaded, file_id, get_with,
    json_with_status, opaque_token, redis_set, store_user_token, unique_prefix, upload_as,
    upload_with,
};

/// Asserts `/health/ready` is `503` and blames Redis (and only Redis).
async fn assert_not_ready_because_of_redis(server: &TestServer) {
    let (status, body) = readiness(server).await;
    assert_eq!(status, 503, "/health/ready: {body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["components"]["redis"], "unavailable", "{body}");
    assert_eq!(body["components"]["database"], "ok", "{body}");
    assert_eq!(body["components"]["storage"], "ok", "{body}");
}

/// Sends an upload with `headers` and asserts a quick `503 AUTH_BACKEND_UNAVAILABLE`.
async fn assert_auth_backend_unavailable(server: &TestServer, headers: &[(&str, &str)]) {
    let started = Instant::now();
    let response = upload_with(server, headers, b"x").await;
    let elapsed = started.elapsed();
    expect_error(response, 503, "AUTH_BACKEND_UNAVAILABLE").await;
    assert!(
        elapsed < Duration::from_secs(3),
        "503 took {elapsed:?}, more than REDIS_TIMEOUT_MS allows"
    );
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_outage_gives_503_for_redis_credentials_and_recovers() {
    let port = free_port();
    let redis = RedisProcess::start(port).await;
    let url = redis.url();
    let prefix = unique_prefix();
    let server =
        TestServer::spawn_with(&[("REDIS_URL", &url), ("REDIS_KEY_PREFIX", &prefix)]).await;
    let token = opaque_token();
    store_user_token(&server, &url, &prefix, &token, USER_P5).await;
    redis_set(&url, &format!("{prefix}pubtok05"), PUBLIC_P5, TOKEN_TTL).await;
    let bearer = format!("Bearer {token}");
    let info = expect_uploaded(upload_as(&server, &bearer).await, Some(42), 7).await;
    let (status, body) = readiness(&server).await;
    assert_eq!(status, 200, "ready before the outage: {body}");
    assert_eq!(body["components"]["redis"], "ok", "{body}");

    redis.stop();

    assert_auth_backend_unavailable(&server, &[("Authorization", &bearer)]).await;
    assert_auth_backend_unavailable(&server, &[("Cookie", &format!("token={token}"))]).await;
    assert_auth_backend_unavailable(&server, &[("X-Public-Authorization", "Token pubtok05")]).await;
    let download = get_with(
        &server,
        &format!("/files/{}", file_id(&info)),
        &[("Authorization", &bearer)],
    )
    .await;
    expect_error(download, 503, "AUTH_BACKEND_UNAVAILABLE").await;
    // The opaque Bearer could not be checked, so the later guest JWT is not tried.
    assert_auth_backend_unavailable(
        &server,
        &[
            ("Authorization", &bearer),
            ("X-Guest-Authorization", &server.guest_token(Some(5), 3, 31)),
        ],
    )
    .await;
    let by_jwt = upload_as(&server, &server.bearer(Some(42), 7)).await;
    expect_uploaded(by_jwt, Some(42), 7).await;
    // A valid JWT tried first means Redis is never needed.
    let jwt_then_cookie = upload_with(
        &server,
        &[
            ("Authorization", &server.bearer(Some(42), 7)),
            ("Cookie", &format!("file_service_auth={token}")),
        ],
        b"x",
    )
    .await;
    expect_uploaded(jwt_then_cookie, Some(42), 7).await;
    // A public token of the wrong length needs no lookup: it is simply invalid.
    let wrong_length = upload_with(
        &server,
        &[("X-Public-Authorization", "Token abcdefghi")],
        b"x",
    )
    .await;
    expect_error(wrong_length, 401, "UNAUTHENTICATED").await;
    assert_not_ready_because_of_redis(&server).await;

    let redis = RedisProcess::start(port).await;
    store_user_token(&server, &redis.url(), &prefix, &token, USER_P5).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = upload_as(&server, &bearer).await;
        if response.status() == 201 {
            expect_uploaded(response, Some(42), 7).await;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} 15 s after Redis came back: {}",
            response.status(),
            response.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = readiness(&server).await;
    assert_eq!(status, 200, "ready after Redis came back: {body}");
    assert_eq!(body["components"]["redis"], "ok", "{body}");
}

#[tokio::test]
async fn redis_down_at_startup_serves_live_but_not_ready() {
    let closed = format!("redis://127.0.0.1:{}/0", free_port());
    let server = TestServer::spawn_with(&[
        ("REDIS_URL", &closed),
        ("REDIS_KEY_PREFIX", &unique_prefix()),
        ("REDIS_TIMEOUT_MS", "300"),
    ])
    .await;

    let live = get_with(&server, "/health/live", &[]).await;

    assert_eq!(json_with_status(live, 200).await["status"], "ok");
    assert_not_ready_because_of_redis(&server).await;
    let by_jwt = upload_as(&server, &server.bearer(Some(1), 1)).await;
    expect_uploaded(by_jwt, Some(1), 1).await;
    let opaque = format!("Bearer {}", opaque_token());
    assert_auth_backend_unavailable(&server, &[("Authorization", &opaque)]).await;
}

/// A TCP server that accepts connections and never answers: a black-holed Redis.
async fn silent_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

#[tokio::test]
async fn redis_that_never_answers_gives_503_within_the_timeout() {
    let port = silent_server().await;
    let server = TestServer::spawn_with(&[
        ("REDIS_URL", &format!("redis://127.0.0.1:{port}/0")),
        ("REDIS_KEY_PREFIX", &unique_prefix()),
        ("REDIS_TIMEOUT_MS", "300"),
    ])
    .await;

    let opaque = format!("Bearer {}", opaque_token());
    assert_auth_backend_unavailable(&server, &[("Authorization", &opaque)]).await;
    let started = Instant::now();
    assert_not_ready_because_of_redis(&server).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "/health/ready took {:?}",
        started.elapsed()
    );
    let by_jwt = upload_as(&server, &server.bearer(Some(1), 1)).await;
    expect_uploaded(by_jwt, Some(1), 1).await;
}
