//! Signatures of time-limited download URLs.

use stowage_domain::FileId;

/// Signs and checks `"{file_id}:{expires}"`.
#[cfg_attr(test, mockall::automock)]
pub trait UrlSigner: Send + Sync {
    /// The hex signature of `file_id` until `expires` (Unix seconds).
    fn sign(&self, file_id: FileId, expires: i64) -> String;

    /// Whether `signature` is the signature of `file_id` until `expires`, compared in constant time.
    fn verify(&self, file_id: FileId, expires: i64, signature: &str) -> bool;
}
