//! Signatures of time-limited download URLs.

use stowage_domain::FileId;

/// Signs and checks `"{file_id}:{expires}"`, or `"{file_id}:{expires}:{scope}"` for a URL that
/// carries more parameters (an image variant's), so that none can be added or changed.
#[cfg_attr(test, mockall::automock)]
pub trait UrlSigner: Send + Sync {
    /// The hex signature of `file_id` until `expires` (Unix seconds), for the parameters `scope`
    /// (empty for the file itself).
    fn sign(&self, file_id: FileId, expires: i64, scope: &str) -> String;

    /// Whether `signature` is the signature of `file_id` until `expires` for `scope`, compared in
    /// constant time.
    fn verify(&self, file_id: FileId, expires: i64, scope: &str, signature: &str) -> bool;
}
