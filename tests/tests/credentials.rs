//! Black-box suite for credentials, access control and the protective middleware: opaque
//! Django tokens and public tokens read from Redis, the permission callback, signed URLs, rate
//! limits, CORS, and what must never reach the log. Every test spawns the real `stowage-api`
//! binary and speaks only HTTP (plus Redis, where the contract says what the service reads there).
//!
//! Tests that need a Redis server are `#[ignore]`d and read its URL from `STOWAGE_TEST_REDIS_URL`
//! (`make test-integration`); they fail, never skip, when it is missing.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

// The crate root sits next to its `credentials/` directory, so each module names its file.
#[path = "credentials/access.rs"]
mod access;
#[path = "credentials/common.rs"]
mod common;
#[path = "credentials/cors.rs"]
mod cors;
#[path = "credentials/logs.rs"]
mod logs;
#[path = "credentials/permission.rs"]
mod permission;
#[path = "credentials/pneumatic_nginx.rs"]
mod pneumatic_nginx;
#[path = "credentials/rate_limits.rs"]
mod rate_limits;
#[path = "credentials/redis_outage.rs"]
mod redis_outage;
#[path = "credentials/redis_tokens.rs"]
mod redis_tokens;
#[path = "credentials/signed_urls.rs"]
mod signed_urls;
