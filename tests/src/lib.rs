//! Harness for black-box tests: starts the `stowage-api` application on a free port with its own
//! `DATA_DIR` (and, with `STOWAGE_TEST_DATABASE_URL`, its own Postgres database) and talks HTTP to
//! it. [`TestServer::spawn_with`] builds it in the test's process, on a runtime of its own;
//! [`TestServer::process_with`] runs the real binary, for tests that read its log, its `/proc`
//! figures, signal it, or depend on process-global state such as the metrics recorder.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod app;
pub mod browser;
pub mod cloudinary;
mod command;
mod django_cache;
mod http;
pub mod images;
mod jwt;
pub mod moto;
pub mod nginx;
mod process;
mod proxy;
pub mod replicas;
mod s3;
mod server;

pub use cloudinary::FakeCloudinary;
pub use command::{run_subcommand, spawn_subcommand};
pub use django_cache::{redis_connection, redis_set, user_token_key};
pub use http::{
    Fetched, SECURITY_HEADERS, assert_error_shape, assert_serves, client, expect_error, fetch,
    file_id, header, header_of, json_with_status, metric, multipart_body, pattern, readiness,
    scrape_metrics, send, send_as, sha256_hex, spawn_with_file, upload_as_owner, upload_to,
};
pub use jwt::{now, sign_jwt, sign_jwt_with_header};
pub use moto::MotoServer;
pub use process::binary;
pub use proxy::TcpProxy;
pub use replicas::{Replica, ReplicaPair};
pub use s3::{S3Server, TEST_BUCKET, s3_mode, s3s_fs_binary, s3s_fs_files};
pub use server::{
    TestServer, applied_migrations, create_database, free_port, postgres_server, redis_server,
};
