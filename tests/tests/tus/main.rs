//! tus 1.0 resumable uploads as real clients meet them: tuspy and tus-js-client (run as processes
//! from `tests/tus/`) upload, are killed or cut off, and resume; raw HTTP covers checksums, the
//! protocol's errors, replicas sharing one upload, and expiry with `gc`. Every completed upload is
//! downloaded and compared byte for byte. fs or S3 by `STOWAGE_TEST_STORAGE`, SQLite or Postgres
//! by `STOWAGE_TEST_DATABASE_URL`.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod checksums;
mod clients;
mod common;
mod expiry;
mod protocol;
mod replicas;
