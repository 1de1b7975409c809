//! Redis as the Django backend's cache fills it: opaque user tokens under their derived keys.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

/// The Redis key of opaque user token `token`:
/// `{prefix}{hex(PBKDF2-HMAC-SHA256(token, salt = secret, iterations, dklen = 32))}`.
pub fn user_token_key(prefix: &str, secret: &str, token: &str, iterations: u32) -> String {
    let mut derived = [0_u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
        token.as_bytes(),
        secret.as_bytes(),
        iterations,
        &mut derived,
    );
    let hex: String = derived.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// A connection to the Redis server at `url`.
pub async fn redis_connection(url: &str) -> MultiplexedConnection {
    redis::Client::open(url)
        .unwrap_or_else(|e| panic!("bad Redis URL {url:?}: {e}"))
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to Redis at {url}: {e}"))
}

/// `SET key value` with an expiry (so nothing outlives the test for long), as Django's cache does.
pub async fn redis_set(url: &str, key: &str, value: &[u8], ttl: Duration) {
    let mut connection = redis_connection(url).await;
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("PX")
        .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
        .query_async::<()>(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("SET {key} failed: {e}"));
}
