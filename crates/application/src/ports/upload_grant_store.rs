//! Where the single use of upload URLs is recorded, shared by every replica.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use stowage_domain::FileId;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::BoxError;
use crate::ports::upload_url_signer::UploadGrantId;

/// Why the grant store failed.
#[derive(Debug, thiserror::Error)]
pub enum GrantStoreError {
    /// The database failed or timed out.
    #[error("upload grant store unavailable")]
    Unavailable(#[source] BoxError),
}

/// One upload's hold on a grant: only the holder of this token may renew, complete or release it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimToken(Uuid);

impl ClaimToken {
    /// A fresh random token.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The token as a UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

/// The record of which upload URLs are taken: a grant is free (no record), claimed by one
/// upload in flight until its lease lapses, or used.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait UploadGrantStore: Send + Sync {
    /// Claims `grant` for one upload under `token` for `lease`, atomically across replicas:
    /// `true` when the grant was free, or claimed by an upload whose lease has lapsed; `false`
    /// when it is used, claimed by an upload whose lease still runs, or expired by the store's
    /// clock (`expires_at`, also kept for [`UploadGrantStore::remove_expired`]).
    ///
    /// # Errors
    /// [`GrantStoreError::Unavailable`].
    async fn claim(
        &self,
        grant: UploadGrantId,
        token: ClaimToken,
        expires_at: OffsetDateTime,
        lease: Duration,
    ) -> Result<bool, GrantStoreError>;

    /// Keeps the claim of `token` alive while the returned future is polled, renewing its
    /// `lease` well before it lapses; the future ends only when the claim is lost (another
    /// upload took it over). Dropping the future releases the claim if `token` still holds it,
    /// in the background: an abandoned upload (the client went away) frees its URL, while a
    /// claim already completed or released is left as it is.
    fn hold(
        &self,
        grant: UploadGrantId,
        token: ClaimToken,
        lease: Duration,
    ) -> BoxFuture<'static, ()>;

    /// Marks the grant claimed under `token` used, by `file_id`: it can never be claimed again.
    /// `false` when `token` no longer holds the claim.
    ///
    /// # Errors
    /// [`GrantStoreError::Unavailable`].
    async fn complete(
        &self,
        grant: UploadGrantId,
        token: ClaimToken,
        file_id: FileId,
    ) -> Result<bool, GrantStoreError>;

    /// Frees the grant claimed under `token`, so its URL can be used again; nothing when
    /// `token` no longer holds it.
    ///
    /// # Errors
    /// [`GrantStoreError::Unavailable`].
    async fn release(&self, grant: UploadGrantId, token: ClaimToken)
    -> Result<(), GrantStoreError>;

    /// Removes the records of grants that expired before `before` (none of them can be used
    /// again), except claims whose lease still runs; with `dry_run`, only counts them. Returns
    /// how many.
    ///
    /// # Errors
    /// [`GrantStoreError::Unavailable`].
    async fn remove_expired(
        &self,
        before: OffsetDateTime,
        dry_run: bool,
    ) -> Result<u64, GrantStoreError>;
}
