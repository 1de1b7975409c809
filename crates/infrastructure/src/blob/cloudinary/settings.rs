//! The Cloudinary adapter's settings.

use std::time::Duration;

use secrecy::SecretString;

/// How Cloudinary signs API parameters and delivery URLs; an account setting on Cloudinary's
/// side (SHA-1 unless the account was switched).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// SHA-1, Cloudinary's default; delivery signatures of 8 characters.
    #[default]
    Sha1,
    /// SHA-256; delivery signatures of 32 characters.
    Sha256,
}

/// Everything the Cloudinary adapter needs.
#[derive(Clone, Debug)]
pub struct CloudinarySettings {
    /// The product environment's cloud name.
    pub cloud_name: String,
    /// API key.
    pub api_key: String,
    /// API secret (redacted in `Debug`).
    pub api_secret: SecretString,
    /// Folder the blobs live under: `{folder}/{account_id}/{file_id}`.
    pub folder: String,
    /// Upload and Admin API origin, without a trailing slash (`https://api.cloudinary.com`).
    pub api_url: String,
    /// Delivery origin, without a trailing slash (`https://res.cloudinary.com`).
    pub delivery_url: String,
    /// Bytes per chunk of a chunked upload (Cloudinary takes 5 MB at least, except the last).
    pub chunk_size: usize,
    /// Bytes all uploads together may hold in chunk buffers (`UPLOAD_BUFFER_BYTES`, at least one
    /// chunk); an upload that finds them all in use waits up to `buffer_wait`, then is refused.
    pub buffer_bytes: u64,
    /// How long an upload waits for a chunk buffer.
    pub buffer_wait: Duration,
    /// The account's signature algorithm.
    pub signature_algorithm: SignatureAlgorithm,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Time an answer (headers) may take; bodies stream for as long as they flow.
    pub timeout: Duration,
}

/// Cloudinary's smallest chunk (all but the last).
pub const MIN_CHUNK_SIZE: usize = 5_000_000;
