//! Blob stores.

pub mod cache;
pub mod cloudinary;
pub mod fs;
pub mod memory;
pub mod s3;
