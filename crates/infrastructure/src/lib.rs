//! Stowage's adapters: each implements a port of `stowage-application` with one technology.

pub mod auth;
pub mod blob;
pub mod clock;
pub mod db;

pub use auth::jwt::{Hs256Jwt, JwtClaims};
pub use blob::fs::FsBlobStore;
pub use clock::SystemClock;
pub use db::{DatabaseSettings, SeaOrmFileRepository};
