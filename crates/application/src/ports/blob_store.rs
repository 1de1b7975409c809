//! Where file bytes live.

use async_trait::async_trait;
use stowage_domain::{BlobKey, ByteRange};

use crate::error::BoxError;
use crate::stream::{BodyError, ByteStream, StoredBlob};

/// A readable blob: its length (of the requested range) and its bytes.
pub struct BlobBody {
    /// Number of bytes `stream` yields.
    pub len: u64,
    /// The bytes, streamed from the store.
    pub stream: ByteStream,
}

impl std::fmt::Debug for BlobBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobBody")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// One stored blob, as a listing sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListedBlob {
    /// A complete blob under a well-formed key.
    Blob {
        /// Its key.
        key: BlobKey,
        /// Its size in bytes.
        size: u64,
        /// When it was last written.
        modified: time::OffsetDateTime,
    },
    /// Leftovers of a write that never finished (a temporary file, an incomplete multipart upload)
    /// or an object whose name is no blob key; `id` is opaque to everyone but the store.
    Stray {
        /// Store-specific handle, passed back to [`BlobStore::remove_stray`].
        id: String,
        /// When it was started or written.
        modified: time::OffsetDateTime,
    },
}

/// Every blob of a store, streamed.
pub type BlobListing = futures_util::stream::BoxStream<'static, Result<ListedBlob, BlobError>>;

/// Why a blob store call failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No blob under that key.
    #[error("blob not found")]
    NotFound,
    /// The incoming body failed (too large, client gone); nothing was kept.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The store failed or timed out.
    #[error("blob store unavailable")]
    Unavailable(#[source] BoxError),
    /// The store has no room for the blob; nothing was kept.
    #[error("blob store full")]
    Full(#[source] BoxError),
    /// Every buffer the store may hold for uploads is in use (`UPLOAD_BUFFER_BYTES`); nothing
    /// was kept, and the client may come back after `retry_after_secs`.
    #[error("upload buffers busy")]
    Busy {
        /// Seconds to tell the client to wait.
        retry_after_secs: u64,
    },
}

/// Stores immutable blobs under a [`BlobKey`], streaming both ways.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Writes `body` under `key`, computing its size and SHA-256 on the way; on success the blob
    /// under `key` is exactly those bytes. A store may keep an empty blob as nothing (its `get`
    /// and `head` then answer [`BlobError::NotFound`]): nobody asks a store for an empty file's
    /// bytes.
    ///
    /// `length` is the body's length as the request announces it. A store may use it to send the
    /// body in one streamed request; when the body turns out of another length (a form with a
    /// part after its file), the store corrects the blob before returning.
    ///
    /// # Errors
    /// [`BlobError::Body`] when `body` yields an error; [`BlobError::Unavailable`] when the store
    /// fails. Either way nothing stays under `key` (a clean-up that itself fails is left to gc).
    async fn put(
        &self,
        key: &BlobKey,
        body: ByteStream,
        length: Option<u64>,
    ) -> Result<StoredBlob, BlobError>;

    /// Opens the blob under `key`, whole or the inclusive `range` of it (already resolved against its size).
    ///
    /// # Errors
    /// [`BlobError::NotFound`] when there is no such blob; [`BlobError::Unavailable`] when the store fails.
    async fn get(&self, key: &BlobKey, range: Option<ByteRange>) -> Result<BlobBody, BlobError>;

    /// The size of the blob under `key`, without reading it.
    ///
    /// # Errors
    /// [`BlobError::NotFound`] when there is no such blob; [`BlobError::Unavailable`] when the store fails.
    async fn head(&self, key: &BlobKey) -> Result<u64, BlobError>;

    /// Removes the blob under `key`; removing a missing blob succeeds.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the store fails.
    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError>;

    /// Removes every variant stored beside the blob under `key` (the keys
    /// [`BlobKey::with_variant`] makes of it), leaving the blob itself; removing none succeeds.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the store fails.
    async fn delete_variants(&self, key: &BlobKey) -> Result<(), BlobError>;

    /// Checks that the store answers.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when it does not.
    async fn health(&self) -> Result<(), BlobError>;

    /// Lists every blob and every leftover of an unfinished write, for reconciliation.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the listing cannot start (items may fail later too).
    async fn list(&self) -> Result<BlobListing, BlobError>;

    /// Removes a leftover reported by [`BlobStore::list`]; removing one that is gone succeeds.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the store fails.
    async fn remove_stray(&self, id: &str) -> Result<(), BlobError>;
}
