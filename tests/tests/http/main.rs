//! Black-box HTTP suite: every test starts `stowage-api` and checks the behaviour the API
//! contract (docs/api.md) promises, speaking only HTTP (and looking at the data directory and the
//! `files` table where the contract says what must be left there). The application runs in the
//! test's process (`TestServer::spawn_with`), except in the tests that read its log, its memory or
//! descriptors, or its metrics counters, which start the real binary (`TestServer::process_with`).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

mod access;
mod auth;
mod common;
mod download;
mod errors;
mod framing;
mod health;
mod ids;
mod limits;
mod listing;
mod log_injection;
mod operations;
mod policies;
mod ranges;
mod redirects;
mod resources;
mod root_routes;
mod security;
mod upload;
mod variants;
mod visibility;
