//! Rate limits: per route class, before authentication, never on health and docs routes, keyed by
//! peer address (or `X-Real-IP` behind a trusted proxy), and shared through Redis.

use stowage_tests::TestServer;

use crate::common::{
    expect_rate_limited, expect_uploaded, file_id, get_with, redis_keys, redis_url, unique_prefix,
    upload_as, upload_with,
};

/// Uploads a file as `auth`, user 1 of account 1, asserting it was not limited; returns the `FileInfo`.
async fn upload_as_user_1(server: &TestServer, auth: &str) -> serde_json::Value {
    expect_uploaded(upload_as(server, auth).await, Some(1), 1).await
}

/// A server with rate limits on and `extra` settings.
async fn spawn_limited(extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("RATE_LIMIT_ENABLED", "true")];
    env.extend_from_slice(extra);
    TestServer::spawn_with(&env).await
}

#[tokio::test]
async fn rate_limit_upload_refuses_third_upload_before_authentication() {
    let server = spawn_limited(&[("RATE_LIMIT_UPLOAD", "2/60s")]).await;
    let auth = server.bearer(Some(1), 1);
    for _ in 0..2 {
        upload_as_user_1(&server, &auth).await;
    }

    let third = upload_as(&server, &auth).await;
    let anonymous = upload_with(&server, &[], b"x").await;

    expect_rate_limited(third, 60).await;
    expect_rate_limited(anonymous, 60).await;
    assert_eq!(server.row_count().await, 2);
}

#[tokio::test]
async fn rate_limit_counts_downloads_apart_from_uploads() {
    let server = spawn_limited(&[
        ("RATE_LIMIT_UPLOAD", "2/60s"),
        ("RATE_LIMIT_DOWNLOAD", "3/60s"),
    ])
    .await;
    let auth = server.bearer(Some(1), 1);
    let info = upload_as_user_1(&server, &auth).await;
    let path = format!("/files/{}", file_id(&info));
    for n in 1..=3 {
        let download = get_with(&server, &path, &[("Authorization", &auth)]).await;
        assert_eq!(download.status(), 200, "download {n} of 3");
    }

    let fourth = get_with(&server, &path, &[("Authorization", &auth)]).await;
    let second_upload = upload_as(&server, &auth).await;
    let third_upload = upload_as(&server, &auth).await;
    let anonymous_download = get_with(&server, &path, &[]).await;

    expect_rate_limited(fourth, 60).await;
    expect_uploaded(second_upload, Some(1), 1).await;
    expect_rate_limited(third_upload, 60).await;
    expect_rate_limited(anonymous_download, 60).await;
}

/// Asserts 20 GETs of each of `paths` answer `200` although every limit is one request a minute,
/// and that the limits still apply to `/files`.
async fn assert_never_limited(paths: &[&str]) {
    let server = spawn_limited(&[
        ("RATE_LIMIT_UPLOAD", "1/60s"),
        ("RATE_LIMIT_DOWNLOAD", "1/60s"),
    ])
    .await;

    for path in paths {
        for n in 1..=20 {
            let response = get_with(&server, path, &[]).await;
            assert_eq!(response.status(), 200, "{path}, request {n}");
        }
    }

    let auth = server.bearer(Some(1), 1);
    let info = upload_as_user_1(&server, &auth).await;
    let path = format!("/files/{}", file_id(&info));
    assert_eq!(
        get_with(&server, &path, &[("Authorization", &auth)])
            .await
            .status(),
        200
    );
    expect_rate_limited(
        get_with(&server, &path, &[("Authorization", &auth)]).await,
        60,
    )
    .await;
}

#[tokio::test]
async fn rate_limit_never_applies_to_health() {
    assert_never_limited(&["/health/live", "/health/ready"]).await;
}

#[tokio::test]
async fn rate_limit_never_applies_to_metrics_and_docs() {
    assert_never_limited(&["/metrics", "/openapi.json", "/docs"]).await;
}

/// A server allowing one upload a minute, trusting proxy headers or not (`trusted`).
async fn spawn_behind_proxy(trusted: &str) -> TestServer {
    spawn_limited(&[
        ("RATE_LIMIT_UPLOAD", "1/60s"),
        ("TRUST_PROXY_HEADERS", trusted),
    ])
    .await
}

/// Uploads as user 1 with `X-Real-IP: ip`.
async fn upload_from(server: &TestServer, ip: &str) -> reqwest::Response {
    let auth = server.bearer(Some(1), 1);
    upload_with(server, &[("Authorization", &auth), ("X-Real-IP", ip)], b"x").await
}

#[tokio::test]
async fn rate_limit_counts_x_real_ip_apart_behind_trusted_proxy() {
    let server = spawn_behind_proxy("true").await;

    expect_uploaded(upload_from(&server, "203.0.113.1").await, Some(1), 1).await;
    expect_rate_limited(upload_from(&server, "203.0.113.1").await, 60).await;
    expect_uploaded(upload_from(&server, "203.0.113.2").await, Some(1), 1).await;
}

#[tokio::test]
async fn rate_limit_ignores_x_real_ip_without_trusted_proxy() {
    let server = spawn_behind_proxy("false").await;

    let first = upload_from(&server, "203.0.113.1").await;
    let second = upload_from(&server, "203.0.113.2").await;

    expect_uploaded(first, Some(1), 1).await;
    expect_rate_limited(second, 60).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn rate_limit_is_shared_by_instances_on_one_redis() {
    let url = redis_url();
    let prefix = unique_prefix();
    let settings = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("RATE_LIMIT_DOWNLOAD", "3/60s"),
    ];
    let a = spawn_limited(&settings).await;
    let b = spawn_limited(&settings).await;
    let path_on = |server: &TestServer, info: &serde_json::Value| {
        (
            server.bearer(Some(1), 1),
            format!("/files/{}", file_id(info)),
        )
    };
    let info_a = expect_uploaded(
        upload_with(&a, &[("Authorization", &a.bearer(Some(1), 1))], b"a").await,
        Some(1),
        1,
    )
    .await;
    let info_b = expect_uploaded(
        upload_with(&b, &[("Authorization", &b.bearer(Some(1), 1))], b"b").await,
        Some(1),
        1,
    )
    .await;
    let (auth_a, path_a) = path_on(&a, &info_a);
    let (auth_b, path_b) = path_on(&b, &info_b);

    for n in 1..=2 {
        let response = get_with(&a, &path_a, &[("Authorization", &auth_a)]).await;
        assert_eq!(response.status(), 200, "download {n} on A");
    }
    let third = get_with(&b, &path_b, &[("Authorization", &auth_b)]).await;
    assert_eq!(third.status(), 200, "download 3, on B");
    let fourth = get_with(&b, &path_b, &[("Authorization", &auth_b)]).await;

    expect_rate_limited(fourth, 60).await;
    let keys = redis_keys(&url, &format!("{prefix}stowage:ratelimit:*")).await;
    assert!(
        keys.contains(&format!("{prefix}stowage:ratelimit:download:127.0.0.1")),
        "rate-limit keys in Redis: {keys:?}"
    );
    let ttl = crate::common::redis_ttl(
        &url,
        &format!("{prefix}stowage:ratelimit:download:127.0.0.1"),
    )
    .await;
    assert!(
        (1..=60).contains(&ttl),
        "the download counter's TTL is {ttl} s, not within the 60 s window"
    );
}

#[tokio::test]
async fn rate_limit_window_ends_and_counting_starts_again() {
    let server = spawn_limited(&[("RATE_LIMIT_UPLOAD", "1/2s")]).await;
    let auth = server.bearer(Some(1), 1);
    upload_as_user_1(&server, &auth).await;
    expect_rate_limited(upload_as(&server, &auth).await, 2).await;

    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let after_window = upload_as(&server, &auth).await;

    expect_uploaded(after_window, Some(1), 1).await;
}

/// After one upload under `RATE_LIMIT_UPLOAD=limit`, the next one's `Retry-After` (seconds).
async fn retry_after_under(limit: &str) -> u64 {
    let server = spawn_limited(&[("RATE_LIMIT_UPLOAD", limit)]).await;
    let auth = server.bearer(Some(1), 1);
    upload_as_user_1(&server, &auth).await;
    let limited = upload_as(&server, &auth).await;
    let retry_after = crate::common::header(&limited, "retry-after").and_then(|v| v.parse().ok());
    expect_rate_limited(limited, 86_400).await;
    retry_after.unwrap()
}

#[tokio::test]
async fn rate_limit_window_accepts_minutes_and_hours() {
    let minutes = retry_after_under("1/2m").await;
    let hours = retry_after_under("1/1h").await;

    assert!(
        (61..=120).contains(&minutes),
        "1/2m gave Retry-After {minutes}"
    );
    assert!(
        (3000..=3600).contains(&hours),
        "1/1h gave Retry-After {hours}"
    );
}
