//! Credential verifiers and stores.

pub mod jwt;
pub mod pickle;
pub mod redis_tokens;
pub mod signed_url;
