//! Blob stores.

pub mod cache;
pub mod fs;
pub mod memory;
pub mod s3;
