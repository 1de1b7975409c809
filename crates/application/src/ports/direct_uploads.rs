//! Where a client sends a file's bytes itself: presigned requests straight to the bucket.

use std::time::Duration;

use async_trait::async_trait;
use stowage_domain::{BlobKey, Sha256Digest};

use crate::ports::{BlobError, DirectUploadId};

/// A request the client makes to the store itself, without any credential of ours.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresignedRequest {
    /// The URL, signature included.
    pub url: String,
    /// Headers the client must send exactly as given (they are signed).
    pub headers: Vec<(String, String)>,
}

/// What the store holds under a key, as its metadata says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 the store verified when the object was written, when it was given one.
    pub sha256: Option<Sha256Digest>,
}

/// One uploaded part of a multipart upload, as the client reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedPart {
    /// Its number, from 1.
    pub number: u32,
    /// The `ETag` the store answered the part's `PUT` with.
    pub etag: String,
}

/// Why a direct upload could not be finished by the store.
#[derive(Debug, thiserror::Error)]
pub enum DirectUploadError {
    /// The store refused what the client sent for good (a too small part, no upload).
    #[error("the store refused the upload: {0}")]
    Refused(String),
    /// The client's list of parts is wrong (a part missing, a wrong `ETag`, out of order): the
    /// upload stays, to be completed with the right list.
    #[error("the store refused the list of parts: {0}")]
    Parts(String),
    /// The store failed or timed out.
    #[error(transparent)]
    Blob(#[from] BlobError),
}

/// Presigned writes to the blob store, so that bytes go from the client to the bucket without
/// passing through Stowage. A single `PUT` writes a staging object of its upload (a URL stays
/// valid until it expires, so it must never reach a recorded file); completion copies it under
/// the [`BlobKey`] the [`BlobStore`](crate::ports::BlobStore) reads. Multipart uploads write
/// under the blob key directly: Stowage assembles them, and their part URLs die with the upload.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait DirectUploadStore: Send + Sync {
    /// A `PUT` of exactly `size` bytes of `content_type` to the staging object of `upload` (beside
    /// `key`), valid for `lifetime`; with `sha256`, the store's own checksum header is signed in,
    /// so the store refuses other bytes.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the request cannot be signed (or the bucket prepared).
    async fn presign_put(
        &self,
        key: &BlobKey,
        upload: DirectUploadId,
        size: u64,
        content_type: &str,
        sha256: Option<Sha256Digest>,
        lifetime: Duration,
    ) -> Result<PresignedRequest, BlobError>;

    /// Starts a multipart upload under `key`; returns the store's id for it.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the store fails.
    async fn start_multipart(&self, key: &BlobKey, content_type: &str)
    -> Result<String, BlobError>;

    /// A `PUT` of exactly `size` bytes as part `number` (from 1) of the multipart upload
    /// `upload`, valid for `lifetime`.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the request cannot be signed.
    async fn presign_part(
        &self,
        key: &BlobKey,
        upload: &str,
        number: u32,
        size: u64,
        lifetime: Duration,
    ) -> Result<PresignedRequest, BlobError>;

    /// Assembles the multipart upload `upload` from `parts` into the object under `key`; with no
    /// `parts`, from every part the store holds for it, in order.
    ///
    /// # Errors
    /// [`DirectUploadError::Parts`] when the store refuses the client's list (a part missing, a
    /// wrong `ETag`, out of order); [`DirectUploadError::Refused`] when it refuses the upload
    /// (a part too small, an unknown upload); [`DirectUploadError::Blob`] when it fails.
    async fn complete_multipart(
        &self,
        key: &BlobKey,
        upload: &str,
        parts: &[UploadedPart],
    ) -> Result<(), DirectUploadError>;

    /// Aborts the multipart upload `upload` and drops its parts; one already gone counts as
    /// aborted.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the store fails.
    async fn abort_multipart(&self, key: &BlobKey, upload: &str) -> Result<(), BlobError>;

    /// The size and verified checksum of the object under `key`, without reading it.
    ///
    /// # Errors
    /// [`BlobError::NotFound`] when there is none; [`BlobError::Unavailable`] when the store fails.
    async fn inspect(&self, key: &BlobKey) -> Result<StoredObject, BlobError>;

    /// The size and verified checksum of the staging object of `upload`, without reading it.
    ///
    /// # Errors
    /// [`BlobError::NotFound`] when there is none; [`BlobError::Unavailable`] when the store fails.
    async fn inspect_staged(
        &self,
        key: &BlobKey,
        upload: DirectUploadId,
    ) -> Result<StoredObject, BlobError>;

    /// Copies the staging object of `upload` under `key`, inside the store (with its checksum
    /// when the store can), so that later writes to the staging object never reach `key`.
    ///
    /// # Errors
    /// [`BlobError::NotFound`] when there is none; [`BlobError::Unavailable`] when the store fails.
    async fn promote(&self, key: &BlobKey, upload: DirectUploadId) -> Result<(), BlobError>;

    /// Deletes the staging object of `upload`; a missing one counts as deleted.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the store fails.
    async fn discard_staged(&self, key: &BlobKey, upload: DirectUploadId) -> Result<(), BlobError>;

    /// The part size the store's multipart uploads use (every part but the last has it).
    fn part_size(&self) -> u64;

    /// The id [`BlobStore::list`](crate::ports::BlobStore::list) gives the unfinished multipart
    /// upload `upload` under `key`, so that reconciliation can tell it from a leftover.
    fn stray_id(&self, key: &BlobKey, upload: &str) -> String;

    /// The id [`BlobStore::list`](crate::ports::BlobStore::list) gives the staging object of
    /// `upload`, so that reconciliation can tell a pending one from a leftover.
    fn staged_id(&self, key: &BlobKey, upload: DirectUploadId) -> String;
}
