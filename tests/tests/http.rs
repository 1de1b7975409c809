//! Black-box HTTP suite: every test spawns the real `stowage-api` binary and checks the
//! behaviour `/work/shared/api-contract.md` promises, speaking only HTTP (and looking at the
//! data directory and the `files` table where the contract says what must be left there).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed unwrap is a failed test"
)]

// The crate root sits next to its `http/` directory, so each module names its file.
#[path = "http/access.rs"]
mod access;
#[path = "http/auth.rs"]
mod auth;
#[path = "http/common.rs"]
mod common;
#[path = "http/download.rs"]
mod download;
#[path = "http/errors.rs"]
mod errors;
#[path = "http/framing.rs"]
mod framing;
#[path = "http/health.rs"]
mod health;
#[path = "http/ids.rs"]
mod ids;
#[path = "http/limits.rs"]
mod limits;
#[path = "http/listing.rs"]
mod listing;
#[path = "http/log_injection.rs"]
mod log_injection;
#[path = "http/operations.rs"]
mod operations;
#[path = "http/ranges.rs"]
mod ranges;
#[path = "http/redirects.rs"]
mod redirects;
#[path = "http/resources.rs"]
mod resources;
#[path = "http/root_routes.rs"]
mod root_routes;
#[path = "http/security.rs"]
mod security;
#[path = "http/upload.rs"]
mod upload;
