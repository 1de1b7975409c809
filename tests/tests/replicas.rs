//! Many replicas, one deployment: two `stowage-api` processes behind nginx (round robin, bodies
//! streamed) on one Postgres database, one Redis and one store (one s3s-fs bucket with
//! `STOWAGE_TEST_STORAGE=s3`, else one shared data directory), as `deploy/` runs them. Mixed
//! traffic loses nothing and each replica serves what the other stored, rate limits are counted
//! once for both, replicas that start together on a fresh database migrate it once, and a
//! replica killed mid-traffic leaves nothing half-made that the other or `gc` cannot account for.
//!
//! The suite needs Postgres (`STOWAGE_TEST_DATABASE_URL`): without it every test is skipped,
//! saying so; with it, Redis (`STOWAGE_TEST_REDIS_URL`) and nginx are required.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

#[path = "replicas/common.rs"]
mod common;
#[path = "replicas/crash.rs"]
mod crash;
#[path = "replicas/migrations.rs"]
mod migrations;
#[path = "replicas/rate_limits.rs"]
mod rate_limits;
#[path = "replicas/traffic.rs"]
mod traffic;
