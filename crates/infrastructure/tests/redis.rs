//! The Redis token store and rate limiter against a real Redis (`STOWAGE_TEST_REDIS_URL`).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretSlice;
use stowage_application::ports::{
    RateClass, RateDecision, RateLimit, RateLimiter, TokenStore, TokenStoreError,
};
use stowage_infrastructure::{
    RedisConnection, RedisRateLimiter, RedisSettings, RedisTokenStore, TokenStoreSettings,
};
use stowage_tests::free_port;

const NEEDS_REDIS: &str =
    "STOWAGE_TEST_REDIS_URL must point at a Redis server (make test-integration sets it)";

fn redis_url() -> String {
    std::env::var("STOWAGE_TEST_REDIS_URL").expect(NEEDS_REDIS)
}

fn connection(url: &str) -> RedisConnection {
    RedisConnection::new(&RedisSettings {
        url: url.into(),
        key_prefix: ":1:".to_owned(),
        timeout: Duration::from_millis(500),
    })
    .unwrap()
}

fn prefix() -> String {
    format!(":1:it{}:", uuid::Uuid::new_v4().simple())
}

fn store(url: &str, prefix: &str, iterations: u32) -> RedisTokenStore {
    RedisTokenStore::new(
        connection(url),
        TokenStoreSettings {
            key_prefix: prefix.to_owned(),
            secret: Arc::new(SecretSlice::from(b"django-secret".to_vec())),
            iterations,
        },
    )
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/pickle/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn set(url: &str, key: &str, value: &[u8]) {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("EX")
        .arg(60)
        .query_async(&mut con)
        .await
        .unwrap();
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_user_token_reads_django_pickles() {
    let url = redis_url();
    let prefix = prefix();
    for (i, name) in ["user_p2.pickle", "user_p5.pickle"].iter().enumerate() {
        let token = format!("opaque-token-{i}");
        let key = RedisTokenStore::user_token_key(&prefix, b"django-secret", 1, &token);
        set(&url, &key, &fixture(name)).await;
        let claims = store(&url, &prefix, 1)
            .user_token(&token)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claims.user_id.map(|u| u.get()), Some(42));
        assert_eq!(claims.account_id.get(), 7);
    }
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_user_token_key_uses_the_configured_iterations() {
    let url = redis_url();
    let prefix = prefix();
    let key = RedisTokenStore::user_token_key(&prefix, b"django-secret", 5000, "tok");
    set(&url, &key, &fixture("user_p4.pickle")).await;
    assert!(
        store(&url, &prefix, 5000)
            .user_token("tok")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store(&url, &prefix, 1)
            .user_token("tok")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_unknown_or_malicious_values_give_no_claims() {
    let url = redis_url();
    let prefix = prefix();
    let s = store(&url, &prefix, 1);
    assert!(s.user_token("never-issued").await.unwrap().is_none());
    let key = RedisTokenStore::user_token_key(&prefix, b"django-secret", 1, "evil");
    set(&url, &key, &fixture("evil_reduce_p5.pickle")).await;
    assert!(s.user_token("evil").await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_public_token_is_looked_up_by_its_own_value() {
    let url = redis_url();
    let prefix = prefix();
    set(
        &url,
        &format!("{prefix}abcdefgh"),
        &fixture("public_p5.pickle"),
    )
    .await;
    let claims = store(&url, &prefix, 1)
        .public_token("abcdefgh")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claims.account_id.get(), 9);
    assert!(store(&url, &prefix, 1).health().await.is_ok());
}

#[tokio::test]
async fn redis_unreachable_is_unavailable_quickly() {
    let port = free_port();
    let s = store(&format!("redis://127.0.0.1:{port}"), ":1:", 1);
    let started = std::time::Instant::now();
    assert!(matches!(
        s.user_token("x").await,
        Err(TokenStoreError::Unavailable(_))
    ));
    assert!(matches!(
        s.health().await,
        Err(TokenStoreError::Unavailable(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn redis_rate_limit_is_shared_between_limiters() {
    let url = redis_url();
    let prefix = prefix();
    let a = RedisRateLimiter::new(connection(&url), prefix.clone());
    let b = RedisRateLimiter::new(connection(&url), prefix.clone());
    let limit = RateLimit {
        requests: 3,
        window: Duration::from_secs(60),
    };
    for limiter in [&a, &b, &a] {
        assert_eq!(
            limiter.hit("1.2.3.4", RateClass::Download, limit).await,
            RateDecision::Allowed
        );
    }
    let RateDecision::Limited { retry_after } = b.hit("1.2.3.4", RateClass::Download, limit).await
    else {
        panic!("fourth request in the window must be limited");
    };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(60));
    // Another client, and another class of the same client, count apart.
    for (client, class) in [
        ("5.6.7.8", RateClass::Download),
        ("1.2.3.4", RateClass::Upload),
    ] {
        assert_eq!(
            a.hit(client, class, limit).await,
            RateDecision::Allowed,
            "{client} {class:?}"
        );
    }
}

#[tokio::test]
async fn redis_rate_limit_falls_back_to_memory_when_redis_is_down() {
    let port = free_port();
    let limiter = RedisRateLimiter::new(connection(&format!("redis://127.0.0.1:{port}")), ":1:");
    let limit = RateLimit {
        requests: 1,
        window: Duration::from_secs(60),
    };
    assert_eq!(
        limiter.hit("c", RateClass::Upload, limit).await,
        RateDecision::Allowed
    );
    assert!(matches!(
        limiter.hit("c", RateClass::Upload, limit).await,
        RateDecision::Limited { .. }
    ));
}
