//! Credential verifiers.

pub mod jwt;
