//! Blob stores.

pub mod cache;
pub mod fs;
pub mod s3;
