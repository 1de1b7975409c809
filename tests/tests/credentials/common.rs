//! Helpers shared by the credentials suite: Redis access the way Django's cache writes it, the
//! pickle fixtures, a private `redis-server` child, requests with arbitrary headers, and the
//! error-shape and log checks.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, Response};
use serde_json::Value;
use stowage_tests::{TestServer, client};
pub use stowage_tests::{
    expect_error, file_id, header, json_with_status, redis_connection, redis_set, send, upload_to,
    user_token_key,
};

/// `pickle.dumps({"user_id": 42, "account_id": 7}, protocol=2)`.
pub const USER_P2: &[u8] =
    include_bytes!("../../../crates/infrastructure/tests/fixtures/pickle/user_p2.pickle");
/// The same dict, protocol 3.
pub const USER_P3: &[u8] =
    include_bytes!("../../../crates/infrastructure/tests/fixtures/pickle/user_p3.pickle");
/// The same dict, protocol 4.
pub const USER_P4: &[u8] =
    include_bytes!("../../../crates/infrastructure/tests/fixtures/pickle/user_p4.pickle");
/// The same dict, protocol 5.
pub const USER_P5: &[u8] =
    include_bytes!("../../../crates/infrastructure/tests/fixtures/pickle/user_p5.pickle");
/// `{"user_id": None, "account_id": 5}`, protocol 4.
pub const NULL_USER_P4: &[u8] =
    include_bytes!("../../../crates/infrastructure/tests/fixtures/pickle/null_user_p4.pickle");
/// A public-form dict with `account_id` 9 and other builtin values, protocol 5.
pub const PUBLIC_P5: &[u8] =
    include_bytes!("../../../crates/infrastructure/tests/fixtures/pickle/public_p5.pickle");
/// `posix.system("touch /tmp/stowage-pwned")` through `REDUCE`, protocol 2.
pub const EVIL_REDUCE_P2: &[u8] =
    include_bytes!("../../../crates/infrastructure/tests/fixtures/pickle/evil_reduce_p2.pickle");
/// A `{"user_id": 1, "account_id": 1, "x": posix.system(...)}` dict, protocol 5.
pub const EVIL_REDUCE_P5: &[u8] =
    include_bytes!("../../../crates/infrastructure/tests/fixtures/pickle/evil_reduce_p5.pickle");
/// An instance of a user class `__main__.Obj`, protocol 4.
pub const OBJECT_P4: &[u8] =
    include_bytes!("../../../crates/infrastructure/tests/fixtures/pickle/object_p4.pickle");
/// A `collections.OrderedDict` with `user_id` and `account_id`, protocol 4.
pub const ORDERED_DICT_P4: &[u8] =
    include_bytes!("../../../crates/infrastructure/tests/fixtures/pickle/ordered_dict_p4.pickle");
/// `[1, 2, 3]`, protocol 5.
pub const LIST_P5: &[u8] =
    include_bytes!("../../../crates/infrastructure/tests/fixtures/pickle/list_p5.pickle");

/// `{"user_id": 2**40, "account_id": 2**62, "nested": {"a": [1, 2, (3, 4)], "b": b"bytes"}}`, protocol 5.
pub const BIG_IDS_P5: &[u8] =
    include_bytes!("../../../crates/infrastructure/tests/fixtures/pickle/big_ids_p5.pickle");

/// The Redis server the integration tests use (`STOWAGE_TEST_REDIS_URL`); fails when unset.
pub fn redis_url() -> String {
    std::env::var("STOWAGE_TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "STOWAGE_TEST_REDIS_URL is not set: this test needs a Redis server \
                 (e.g. STOWAGE_TEST_REDIS_URL=redis://127.0.0.1:6379/9, or `make test-integration`)"
            )
        })
}

/// A `REDIS_KEY_PREFIX` no other test uses, in Django's `:1:` style.
pub fn unique_prefix() -> String {
    format!(":1:t{}:", uuid::Uuid::new_v4().simple())
}

/// How long the tests' Redis values live: longer than any test that reads them.
pub const TOKEN_TTL: Duration = Duration::from_secs(300);

/// A server reading tokens from the test Redis under a fresh prefix, with `extra` settings;
/// returns it with the Redis URL and the prefix.
pub async fn spawn_on_redis(extra: &[(&str, &str)]) -> (TestServer, String, String) {
    let url = redis_url();
    let prefix = unique_prefix();
    let mut env = vec![
        ("REDIS_URL", url.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
    ];
    env.extend_from_slice(extra);
    let server = TestServer::spawn_with(&env).await;
    (server, url, prefix)
}

/// An opaque (not JWT-shaped) user token, unique to the test.
pub fn opaque_token() -> String {
    format!("opaque{}", uuid::Uuid::new_v4().simple())
}

/// Writes `value` for opaque user token `token` the way the Django backend would.
pub async fn store_user_token(
    server: &TestServer,
    url: &str,
    prefix: &str,
    token: &str,
    value: &[u8],
) {
    let key = user_token_key(prefix, &server.secret, token, 1);
    redis_set(url, &key, value, Duration::from_secs(300)).await;
}

/// Every key matching `pattern`.
pub async fn redis_keys(url: &str, pattern: &str) -> Vec<String> {
    let mut connection = redis_connection(url).await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("KEYS {pattern} failed: {e}"));
    keys.sort();
    keys
}

/// The `TTL` of `key` in seconds (`-1`: no expiry, `-2`: no such key).
pub async fn redis_ttl(url: &str, key: &str) -> i64 {
    let mut connection = redis_connection(url).await;
    redis::cmd("TTL")
        .arg(key)
        .query_async(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("TTL {key} failed: {e}"))
}

/// A `redis-server` this test owns: empty, no persistence, on a port of its own.
pub struct RedisProcess {
    child: Child,
    pub port: u16,
}

impl RedisProcess {
    /// Starts `redis-server` on `port` and waits until it accepts connections.
    pub async fn start(port: u16) -> RedisProcess {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `redis-server` (this test needs it on PATH): {e}")
            });
        let process = RedisProcess { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(client) = redis::Client::open(process.url())
                && let Ok(mut connection) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .is_ok()
            {
                return process;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} did not come up"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills it and waits until its port is closed.
    pub fn stop(mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "redis-server still listens on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET path` with extra `headers`.
pub async fn get_with(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Response {
    send(server, Method::GET, path, headers).await
}

/// Uploads a small text file with arbitrary credential `headers` (none at all is allowed).
pub async fn upload_with(server: &TestServer, headers: &[(&str, &str)], data: &[u8]) -> Response {
    upload_to(server, "/files", headers, "note.txt", "text/plain", data).await
}

/// Uploads a one-byte file with `Authorization: auth`.
pub async fn upload_as(server: &TestServer, auth: &str) -> Response {
    upload_with(server, &[("Authorization", auth)], b"x").await
}

/// Asserts an upload answered `201` with the given owner; returns the `FileInfo`.
pub async fn expect_uploaded(response: Response, user_id: Option<i64>, account_id: i64) -> Value {
    let info = json_with_status(response, 201).await;
    assert_eq!(info["account_id"], account_id, "account_id: {info}");
    match user_id {
        Some(user) => assert_eq!(info["user_id"], user, "user_id: {info}"),
        None => assert!(info["user_id"].is_null(), "user_id is not null: {info}"),
    }
    info
}

/// Asserts the `Retry-After` of a `429` is a whole number of seconds within `1..=max`.
pub fn assert_retry_after(response: &Response, max: u64) {
    let retry_after = header(response, "retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", response.headers()));
    let seconds: u64 = retry_after
        .parse()
        .unwrap_or_else(|e| panic!("Retry-After {retry_after:?} is not whole seconds: {e}"));
    assert!(
        (1..=max).contains(&seconds),
        "Retry-After {seconds} is not within 1..={max}"
    );
}

/// Asserts `response` is `429 RATE_LIMITED` with a `Retry-After` within `1..=max` seconds.
pub async fn expect_rate_limited(response: Response, max: u64) {
    assert_retry_after(&response, max);
    expect_error(response, 429, "RATE_LIMITED").await;
}

/// Asserts the server's log holds none of `secrets` (each must be non-empty).
pub fn assert_log_free_of(server: &TestServer, secrets: &[(&str, &str)]) {
    let log = server.log();
    assert!(!log.is_empty(), "the server logged nothing at all");
    for (what, secret) in secrets {
        assert!(!secret.is_empty(), "{what} is empty");
        if let Some(at) = log.find(secret) {
            let line = log[..at].rsplit('\n').next().unwrap_or_default();
            let rest = log[at..].split('\n').next().unwrap_or_default();
            panic!("the log contains {what}: {line}{rest}");
        }
    }
}

/// The `signature` query parameter of a signed URL.
pub fn signature_of(url: &str) -> String {
    query_param(url, "signature").unwrap_or_else(|| panic!("signed URL without signature: {url}"))
}

/// A query parameter of `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    let (_, query) = url.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Creates a signed URL for `id` as `auth`, with an optional JSON `body`; returns the response.
pub async fn create_signed_url(
    server: &TestServer,
    auth: &str,
    id: &str,
    body: Option<Value>,
) -> Response {
    let mut request = client()
        .post(server.url(&format!("/files/{id}/signed-url")))
        .header("Authorization", auth);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// Creates a signed URL for `id` as `auth` and returns its `url`, asserting `200`.
pub async fn signed_url(server: &TestServer, auth: &str, id: &str) -> String {
    let response = create_signed_url(server, auth, id, None).await;
    let body = json_with_status(response, 200).await;
    body["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no url in {body}"))
        .to_owned()
}
