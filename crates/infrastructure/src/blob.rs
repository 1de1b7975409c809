//! Blob stores.

mod budget;
pub mod cache;
pub mod cloudinary;
pub mod fs;
pub mod fs_resumable;
mod layout;
pub mod memory;
pub mod s3;
