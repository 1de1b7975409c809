//! Black-box HTTP suite: every test spawns the real `stowage-api` binary and checks the
//! behaviour the API contract (docs/api.md) promises, speaking only HTTP (and looking at the
//! data directory and the `files` table where the contract says what must be left there).

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
mod ranges;
mod redirects;
mod resources;
mod root_routes;
mod security;
mod upload;
