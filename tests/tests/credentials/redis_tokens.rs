//! Opaque Django user tokens read from Redis: every place a token may arrive, every value
//! encoding Django's cache writes, the values that must be refused, and the order credentials
//! are tried in. Public and embed tokens are in `redis_public_tokens`.

use std::time::{Duration, Instant};

use stowage_tests::{TestServer, client, free_port};

use crate::common::{
    BIG_IDS_P5, EVIL_REDUCE_P2, EVIL_REDUCE_P5, LIST_P5, NULL_USER_P4, OBJECT_P4, ORDERED_DICT_P4,
    PUBLIC_P5, RedisProcess, TOKEN_TTL, USER_P2, USER_P3, USER_P4, USER_P5, assert_log_free_of,
    expect_error, expect_uploaded, file_id, get_with, json_with_status, opaque_token,
    redis_connection, redis_set, redis_url, signature_of, signed_url, spawn_on_redis,
    store_user_token, unique_prefix, upload_as, upload_with, user_token_key,
};

/// Stores `value` for a fresh opaque token and checks a Bearer upload with it belongs to
/// `user_id` of `account_id`.
async fn assert_bearer_value_uploads_as(value: &[u8], user_id: Option<i64>, account_id: i64) {
    let (server, url, prefix) = spawn_on_redis(&[]).await;
    let token = opaque_token();
    store_user_token(&server, &url, &prefix, &token, value).await;

    let response = upload_as(&server, &format!("Bearer {token}")).await;

    expect_uploaded(response, user_id, account_id).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_pickle_protocol_2_authenticates_bearer() {
    assert_bearer_value_uploads_as(USER_P2, Some(42), 7).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_pickle_protocol_3_authenticates_bearer() {
    assert_bearer_value_uploads_as(USER_P3, Some(42), 7).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_pickle_protocol_4_authenticates_bearer() {
    assert_bearer_value_uploads_as(USER_P4, Some(42), 7).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_pickle_protocol_5_authenticates_and_stays_out_of_the_log() {
    // A process: the test reads its log.
    let (url, prefix) = (redis_url(), unique_prefix());
    let server =
        TestServer::process_with(&[("REDIS_URL", &url), ("REDIS_KEY_PREFIX", &prefix)]).await;
    let token = opaque_token();
    store_user_token(&server, &url, &prefix, &token, USER_P5).await;
    let bearer = format!("Bearer {token}");
    let jwt = server.token(Some(42), 7);

    let info = expect_uploaded(
        upload_with(&server, &[("Authorization", &bearer)], b"protocol five").await,
        Some(42),
        7,
    )
    .await;
    let path = format!("/files/{}", file_id(&info));
    let download = get_with(&server, &path, &[("Authorization", &bearer)]).await;
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().as_ref(), b"protocol five");
    let by_jwt = get_with(
        &server,
        &path,
        &[("Authorization", &format!("Bearer {jwt}"))],
    )
    .await;
    assert_eq!(
        by_jwt.status(),
        200,
        "the JWT of the same user reads it too"
    );
    let url_signed = signed_url(&server, &bearer, &file_id(&info)).await;
    let fetched = client().get(&url_signed).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    // Flip a character in the middle of the signature (the last one may only hold padding bits).
    let at = jwt.len() - 10;
    let swapped = if &jwt[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{swapped}{}", &jwt[..at], &jwt[at + 1..]);
    let forged_jwt = upload_as(&server, &format!("Bearer {forged}")).await;
    expect_error(forged_jwt, 401, "UNAUTHENTICATED").await;
    let denied = upload_as(&server, "Bearer opaque-not-stored").await;
    expect_error(denied, 401, "UNAUTHENTICATED").await;

    assert_log_free_of(
        &server,
        &[
            ("AUTH_SECRET_KEY", &server.secret),
            ("the opaque token", &token),
            ("an unknown opaque token", "opaque-not-stored"),
            ("the JWT", &jwt),
            ("a forged JWT", &forged),
            ("the signed URL's signature", &signature_of(&url_signed)),
        ],
    );
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_json_value_authenticates_bearer() {
    assert_bearer_value_uploads_as(br#"{"user_id": 42, "account_id": 7}"#, Some(42), 7).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_with_null_user_uploads_at_account_level() {
    assert_bearer_value_uploads_as(NULL_USER_P4, None, 5).await;
}

/// Stores a fresh token and checks an upload sending it as cookie `name` belongs to 42/7.
async fn assert_cookie_authenticates(name: &str) {
    let (server, url, prefix) = spawn_on_redis(&[]).await;
    let token = opaque_token();
    store_user_token(&server, &url, &prefix, &token, USER_P5).await;

    let response = upload_with(&server, &[("Cookie", &format!("{name}={token}"))], b"x").await;

    let info = expect_uploaded(response, Some(42), 7).await;
    let path = format!("/files/{}", file_id(&info));
    let download = get_with(
        &server,
        &path,
        &[("Cookie", &format!("other=1; {name}={token}"))],
    )
    .await;
    assert_eq!(download.status(), 200, "GET with cookie {name}");
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_in_file_service_auth_cookie_authenticates() {
    assert_cookie_authenticates("file_service_auth").await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_in_token_cookie_authenticates() {
    assert_cookie_authenticates("token").await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_iterations_setting_changes_the_key() {
    let (server, url, prefix) = spawn_on_redis(&[("AUTH_TOKEN_ITERATIONS", "1000")]).await;
    let slow = opaque_token();
    let fast = opaque_token();
    let slow_key = user_token_key(&prefix, &server.secret, &slow, 1000);
    let fast_key = user_token_key(&prefix, &server.secret, &fast, 1);
    redis_set(&url, &slow_key, USER_P5, TOKEN_TTL).await;
    redis_set(&url, &fast_key, USER_P5, TOKEN_TTL).await;

    let with_slow = upload_as(&server, &format!("Bearer {slow}")).await;
    let with_fast = upload_as(&server, &format!("Bearer {fast}")).await;

    expect_uploaded(with_slow, Some(42), 7).await;
    expect_error(with_fast, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_unknown_is_401() {
    let (server, _url, _prefix) = spawn_on_redis(&[]).await;

    let response = upload_as(&server, &format!("Bearer {}", opaque_token())).await;

    expect_error(response, 401, "UNAUTHENTICATED").await;
    assert_eq!(server.row_count().await, 0);
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_expired_is_401() {
    let (server, url, prefix) = spawn_on_redis(&[]).await;
    let token = opaque_token();
    let key = user_token_key(&prefix, &server.secret, &token, 1);
    redis_set(&url, &key, USER_P5, Duration::from_secs(1)).await;
    let bearer = format!("Bearer {token}");
    expect_uploaded(upload_as(&server, &bearer).await, Some(42), 7).await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let response = upload_as(&server, &bearer).await;

    expect_error(response, 401, "UNAUTHENTICATED").await;
}

/// Stores `value` for a fresh token and checks a Bearer upload with it is `401`.
async fn assert_value_refused(server: &TestServer, url: &str, prefix: &str, value: &[u8]) {
    let token = opaque_token();
    store_user_token(server, url, prefix, &token, value).await;

    let response = upload_as(server, &format!("Bearer {token}")).await;

    expect_error(response, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_malicious_pickle_is_refused_without_running_it() {
    const PWNED: &str = "/tmp/stowage-pwned";
    let _ = std::fs::remove_file(PWNED);
    // A process: the test checks it did not die.
    let (url, prefix) = (redis_url(), unique_prefix());
    let mut server =
        TestServer::process_with(&[("REDIS_URL", &url), ("REDIS_KEY_PREFIX", &prefix)]).await;

    assert_value_refused(&server, &url, &prefix, EVIL_REDUCE_P5).await;
    assert_value_refused(&server, &url, &prefix, EVIL_REDUCE_P2).await;

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !std::path::Path::new(PWNED).exists(),
        "{PWNED} exists: a pickle's REDUCE was executed"
    );
    assert!(
        server.child_mut().try_wait().unwrap().is_none(),
        "the service died on a malicious pickle"
    );
    assert_eq!(server.row_count().await, 0);
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_object_pickle_is_refused() {
    let (server, url, prefix) = spawn_on_redis(&[]).await;

    assert_value_refused(&server, &url, &prefix, OBJECT_P4).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_ordered_dict_pickle_is_refused() {
    let (server, url, prefix) = spawn_on_redis(&[]).await;

    assert_value_refused(&server, &url, &prefix, ORDERED_DICT_P4).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_non_dict_or_garbage_value_is_refused() {
    let (server, url, prefix) = spawn_on_redis(&[]).await;

    assert_value_refused(&server, &url, &prefix, LIST_P5).await;
    assert_value_refused(&server, &url, &prefix, b"\x80\x05not a pickle").await;
    assert_value_refused(&server, &url, &prefix, br#"{"user_id": 42}"#).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_invalid_bearer_falls_through_to_guest_jwt() {
    let (server, _url, _prefix) = spawn_on_redis(&[]).await;
    let guest = server.guest_token(Some(5), 3, 41);

    let response = upload_with(
        &server,
        &[
            ("Authorization", &format!("Bearer {}", opaque_token())),
            ("X-Guest-Authorization", &guest),
        ],
        b"x",
    )
    .await;

    expect_uploaded(response, Some(5), 3).await;
}

#[tokio::test]
async fn redis_credentials_without_redis_configured_are_401() {
    let server = TestServer::spawn().await;

    let opaque = upload_as(&server, &format!("Bearer {}", opaque_token())).await;
    let public = upload_with(
        &server,
        &[("X-Public-Authorization", "Token abcdefgh")],
        b"x",
    )
    .await;
    let cookies = upload_with(
        &server,
        &[(
            "Cookie",
            &format!(
                "file_service_auth={}; public-token=abcdefgh",
                opaque_token()
            ),
        )],
        b"x",
    )
    .await;

    expect_error(opaque, 401, "UNAUTHENTICATED").await;
    expect_error(public, 401, "UNAUTHENTICATED").await;
    expect_error(cookies, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_with_big_ids_and_nested_builtins_authenticates() {
    assert_bearer_value_uploads_as(
        BIG_IDS_P5,
        Some(1_099_511_627_776),
        4_611_686_018_427_387_904,
    )
    .await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_token_default_prefix_is_django_version_1() {
    let url = redis_url();
    let server = TestServer::spawn_with(&[("REDIS_URL", &url)]).await;
    let token = opaque_token();
    store_user_token(&server, &url, ":1:", &token, USER_P5).await;

    let response = upload_as(&server, &format!("Bearer {token}")).await;

    expect_uploaded(response, Some(42), 7).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_jwt_shaped_bearer_is_never_looked_up_in_redis() {
    let (server, url, prefix) = spawn_on_redis(&[]).await;
    let jwt_shaped = format!(
        "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjo0Mn0.{}",
        uuid::Uuid::new_v4().simple()
    );
    store_user_token(&server, &url, &prefix, &jwt_shaped, USER_P5).await;

    let response = upload_as(&server, &format!("Bearer {jwt_shaped}")).await;

    expect_error(response, 401, "UNAUTHENTICATED").await;
}

/// One precedence case: what it shows, the credential headers, and the expected (user, account).
type OrderCase = (&'static str, Vec<(&'static str, String)>, Option<i64>, i64);

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_credentials_are_tried_in_contract_order() {
    let (server, url, prefix) = spawn_on_redis(&[]).await;
    let first = opaque_token();
    let second = opaque_token();
    store_user_token(&server, &url, &prefix, &first, USER_P5).await;
    store_user_token(
        &server,
        &url,
        &prefix,
        &second,
        br#"{"user_id": 43, "account_id": 8}"#,
    )
    .await;
    redis_set(&url, &format!("{prefix}pubtok08"), PUBLIC_P5, TOKEN_TTL).await;
    let guest = server.guest_token(Some(5), 3, 41);
    let bearer = format!("Bearer {first}");
    let cases: [OrderCase; 7] = [
        (
            "Bearer before X-Guest-Authorization",
            vec![
                ("Authorization", bearer.clone()),
                ("X-Guest-Authorization", guest.clone()),
            ],
            Some(42),
            7,
        ),
        (
            "X-Guest-Authorization before X-Public-Authorization",
            vec![
                ("X-Guest-Authorization", guest.clone()),
                ("X-Public-Authorization", "Token pubtok08".into()),
            ],
            Some(5),
            3,
        ),
        (
            "X-Public-Authorization before cookies",
            vec![
                ("X-Public-Authorization", "Token pubtok08".into()),
                ("Cookie", format!("file_service_auth={first}")),
            ],
            None,
            9,
        ),
        (
            "file_service_auth before token",
            vec![(
                "Cookie",
                format!("file_service_auth={first}; token={second}"),
            )],
            Some(42),
            7,
        ),
        (
            "file_service_auth before token, whatever the cookie order",
            vec![(
                "Cookie",
                format!("token={second}; file_service_auth={first}"),
            )],
            Some(42),
            7,
        ),
        (
            "token before guest-token",
            vec![("Cookie", format!("guest-token={guest}; token={second}"))],
            Some(43),
            8,
        ),
        (
            "guest-token before public-token",
            vec![(
                "Cookie",
                format!("public-token=pubtok08; guest-token={guest}"),
            )],
            Some(5),
            3,
        ),
    ];

    for (case, headers, user_id, account_id) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let response = upload_with(&server, &headers, b"x").await;
        let info = json_with_status(response, 201).await;
        assert_eq!(
            (info["user_id"].as_i64(), info["account_id"].as_i64()),
            (user_id, Some(account_id)),
            "{case}: {info}"
        );
    }
}

/// How many `GET`s the Redis server at `url` has run (`cmdstat_get` of `INFO commandstats`).
async fn redis_get_calls(url: &str) -> u64 {
    let mut connection = redis_connection(url).await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_get:"))
        .and_then(|stats| stats.split(',').find_map(|kv| kv.strip_prefix("calls=")))
        .map_or(0, |calls| calls.trim().parse().unwrap())
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_repeated_credentials_are_looked_up_once_each() {
    // A redis-server of this test's own: no other test's GETs are counted.
    let redis = RedisProcess::start(free_port()).await;
    let url = redis.url();
    let prefix = unique_prefix();
    let server = TestServer::spawn_with(&[
        ("REDIS_URL", &url),
        ("REDIS_KEY_PREFIX", &prefix),
        // Each opaque token costs a real PBKDF2 (a few milliseconds in a debug build).
        ("AUTH_TOKEN_ITERATIONS", "1000"),
    ])
    .await;
    let bearers: Vec<String> = (0..50).map(|i| format!("Bearer bearer{i}")).collect();
    let cookie = (0..2000)
        .map(|i| format!("token=n{i}"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut headers: Vec<(&str, &str)> = bearers
        .iter()
        .map(|bearer| ("Authorization", bearer.as_str()))
        .collect();
    headers.push(("Cookie", &cookie));
    let before = redis_get_calls(&url).await;

    let started = Instant::now();
    let response = get_with(&server, "/files", &headers).await;
    let elapsed = started.elapsed();

    expect_error(response, 401, "UNAUTHENTICATED").await;
    let lookups = redis_get_calls(&url).await - before;
    assert!(
        lookups <= 2,
        "{lookups} Redis GETs for one request: repeated credentials were each looked up"
    );
    assert!(elapsed < Duration::from_secs(5), "the 401 took {elapsed:?}");
}
