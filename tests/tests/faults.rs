//! Fault suite: Stowage loses nothing when a dependency goes away or the process is killed.
//!
//! - `outages`: Postgres, Redis or S3 taken down and brought back (through a TCP proxy) while
//!   uploads, downloads and listings run: `503` with the dependency's code, never `500` or a hang,
//!   then full service again, every acknowledged upload intact, no orphan blob, no leaked
//!   descriptor or connection.
//! - `crashes`, `maintenance`, `variants`: `stowage-api` killed with SIGKILL during an upload, a
//!   download, `gc`, `migrate` and the making of an image variant; after a restart nothing partial
//!   is served and `gc` leaves the store holding exactly the recorded files.
//!
//! Every test runs on the suite's storage (`STOWAGE_TEST_STORAGE=s3`: s3s-fs) and database
//! (`STOWAGE_TEST_DATABASE_URL`: Postgres, else SQLite). A test about a dependency the run does
//! not have (Postgres, Redis, S3) says so and passes: `make test-integration` runs the suite on
//! Postgres and Redis, on disk and on S3.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

#[path = "faults/common.rs"]
mod common;
#[path = "faults/crashes.rs"]
mod crashes;
#[path = "faults/maintenance.rs"]
mod maintenance;
#[path = "faults/outages.rs"]
mod outages;
#[path = "faults/traffic.rs"]
mod traffic;
#[path = "faults/variants.rs"]
mod variants;
