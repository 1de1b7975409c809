//! Black-box suite for credentials, access control and the protective middleware: opaque
//! Django tokens and public tokens read from Redis, the permission callback, signed URLs, rate
//! limits, CORS, and what must never reach the log. Every test starts `stowage-api` and speaks
//! only HTTP (plus Redis, where the contract says what the service reads there); the application
//! runs in the test's process, except in the tests that read its log or check that it is still
//! alive, which start the real binary (`TestServer::process_with`).
//!
//! Tests that need a Redis server are `#[ignore]`d and read its URL from `STOWAGE_TEST_REDIS_URL`
//! (`make test-integration`); they fail, never skip, when it is missing.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod access;
mod common;
mod cors;
mod events;
mod logs;
mod permission;
mod pneumatic_nginx;
mod rate_limits;
mod redis_outage;
mod redis_public_tokens;
mod redis_tokens;
mod signed_urls;
