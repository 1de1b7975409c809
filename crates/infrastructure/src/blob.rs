//! Blob stores.

pub mod fs;
