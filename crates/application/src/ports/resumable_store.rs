//! Where a resumable (tus) upload's bytes wait between its creation and its completion.

use async_trait::async_trait;
use stowage_domain::BlobKey;

use crate::ports::BlobError;
use crate::stream::ByteStream;

/// The store's own record of an upload's bytes so far (an upload handle, its parts, a tail):
/// opaque to everyone but the store, kept with the upload's state and handed back on every call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreProgress(pub String);

/// What [`ResumableStore::append`] made durable.
#[derive(Debug)]
pub struct Appended {
    /// The store's record once the append is committed; until the caller stores it in place of
    /// the one it passed, the bytes are not part of the upload.
    pub progress: StoreProgress,
    /// Bytes of the body now durable: all it yielded, unless `interrupted`.
    pub written: u64,
    /// Why the body ended early, when it did; the `written` bytes are durable all the same.
    pub interrupted: Option<BlobError>,
}

/// One finished upload's bytes, to be joined into a new blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcatPart {
    /// The blob its bytes were finished into.
    pub key: BlobKey,
    /// Its size in bytes.
    pub size: u64,
}

/// Keeps the bytes of uploads that arrive in several requests, possibly on several replicas,
/// so that any replica can append the next bytes and a crash loses only the request in flight.
///
/// An upload's file is the blob under the [`BlobKey`] it was begun for; the bytes go there only
/// when it is finished, so reads of that key see nothing before.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ResumableStore: Send + Sync {
    /// Prepares an empty upload whose file will be the blob under `key`.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the store fails.
    async fn begin(&self, key: &BlobKey) -> Result<StoreProgress, BlobError>;

    /// Appends `body` after the `offset` bytes that `progress` holds. `length` is the body's
    /// length when the request states it; `total` is the upload's whole length when known, so
    /// that the bytes reaching it can be stored as its last.
    ///
    /// The bytes are durable when this returns but belong to the upload only once the caller
    /// commits the returned progress: until then `progress` stays valid, and an append from it
    /// overwrites whatever this one wrote.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the store failed: nothing new is durable.
    async fn append(
        &self,
        key: &BlobKey,
        progress: &StoreProgress,
        offset: u64,
        length: Option<u64>,
        total: Option<u64>,
        body: ByteStream,
    ) -> Result<Appended, BlobError>;

    /// Where an append of `length` bytes after the `offset` bytes `progress` holds may end
    /// durably short of its body's end, in bytes of the body from its start (the ends of the parts
    /// it will stream). An interrupted append reports one of these, or every byte it read, as
    /// `written`, so that the caller can take the digest of the bytes kept exactly there. Empty
    /// when the store keeps whatever arrived.
    fn checkpoints(&self, progress: &StoreProgress, offset: u64, length: Option<u64>) -> Vec<u64>;

    /// Drops what `committed` no longer needs of `previous` (a tail it replaced), once the
    /// caller committed it; a failure leaves leftovers for `gc`, never lost bytes.
    async fn release(&self, key: &BlobKey, previous: &StoreProgress, committed: &StoreProgress);

    /// Makes the upload's `length` bytes the blob under `key`. Finishing an upload that was
    /// finished already succeeds while its blob is there with `length` bytes, so that a request
    /// that died after this step can be retried.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the store fails (the upload may be finished again).
    async fn finish(
        &self,
        key: &BlobKey,
        progress: &StoreProgress,
        length: u64,
    ) -> Result<(), BlobError>;

    /// Makes the blob under `key` the concatenation of `parts`, inside the store, without
    /// their bytes passing through Stowage; `Ok(false)` when this store cannot (the caller then
    /// streams them). The parts stay.
    ///
    /// # Errors
    /// [`BlobError::NotFound`] when a part is missing; [`BlobError::Unavailable`].
    async fn concatenate(&self, key: &BlobKey, parts: &[ConcatPart]) -> Result<bool, BlobError>;

    /// Removes everything an unfinished upload holds; removing one that is gone succeeds.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the store fails.
    async fn abort(&self, key: &BlobKey, progress: &StoreProgress) -> Result<(), BlobError>;

    /// The ids [`BlobStore::list`](crate::ports::BlobStore::list) reports an unfinished
    /// upload's leftovers under, so that reconciliation spares the live ones.
    fn stray_ids(&self, key: &BlobKey, progress: &StoreProgress) -> Vec<String>;
}
