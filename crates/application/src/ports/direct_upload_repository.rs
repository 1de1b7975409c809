//! Where direct uploads wait between their start and their completion.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use stowage_domain::{
    AccountId, FileId, FileKey, Filename, PrincipalKind, Sha256Digest, UserId, Visibility,
};
use time::OffsetDateTime;

use crate::ports::{ClaimToken, RepoError};

/// A direct upload's id, as clients see it (a lower-case, hyphenated v4 UUID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DirectUploadId(uuid::Uuid);

impl DirectUploadId {
    /// A fresh random id.
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// Parses the text form; `None` for anything [`DirectUploadId`] never produces.
    pub fn parse(s: &str) -> Option<Self> {
        FileId::parse(s).ok().map(|id| Self(id.as_uuid()))
    }
}

impl fmt::Display for DirectUploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A direct upload that was started: what the file will be once its bytes are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectUpload {
    /// Its id.
    pub id: DirectUploadId,
    /// The id the file gets; the object is written under its blob key.
    pub file_id: FileId,
    /// The account of the principal who started it.
    pub account_id: AccountId,
    /// The user who started it, if any.
    pub user_id: Option<UserId>,
    /// The kind of principal who started it.
    pub principal_kind: PrincipalKind,
    /// The file's name, sanitised.
    pub filename: Filename,
    /// The type the client declared, as it was declared (the `PUT` carries it; the file's type
    /// is resolved from it and the magic bytes at completion).
    pub declared_type: String,
    /// The exact size in bytes.
    pub size: u64,
    /// The digest the client stated.
    pub sha256: Option<Sha256Digest>,
    /// The upload policy to apply at completion.
    pub policy: Option<String>,
    /// The key the file is stored under at completion.
    pub key: Option<FileKey>,
    /// Who may read the file; `None` leaves it to the policy.
    pub visibility: Option<Visibility>,
    /// The store's id of its multipart upload, when it is one.
    pub multipart: Option<String>,
    /// When its URLs stop working; after this `gc` removes it.
    pub expires_at: OffsetDateTime,
}

/// What an attempt to claim a direct upload for completion found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The caller holds it until the lease ends.
    Claimed(DirectUpload),
    /// It was completed already.
    Completed(DirectUpload),
    /// Another completion holds it right now.
    Busy(DirectUpload),
}

/// Keeps [`DirectUpload`]s.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait DirectUploadRepository: Send + Sync {
    /// Stores a new direct upload.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn insert(&self, upload: &DirectUpload) -> Result<(), RepoError>;

    /// The upload `id`, whatever its state.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such upload; [`RepoError::Unavailable`].
    async fn get(&self, id: DirectUploadId) -> Result<DirectUpload, RepoError>;

    /// Claims the upload `id` for completion under `token` for `lease` (by the database's
    /// clock), atomically: of concurrent claims at most one gets [`Claim::Claimed`]. A claim
    /// whose lease ended (its holder died) can be taken again.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such upload; [`RepoError::Unavailable`].
    async fn claim(
        &self,
        id: DirectUploadId,
        token: ClaimToken,
        lease: Duration,
    ) -> Result<Claim, RepoError>;

    /// Marks the upload `id` completed (its file is recorded): only while `token` holds its
    /// claim, or whatever its claim with `None` (a file found recorded settles it).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn mark_completed(
        &self,
        id: DirectUploadId,
        token: Option<ClaimToken>,
    ) -> Result<(), RepoError>;

    /// Gives up the claim `token` holds on `id`, so that the client may try again.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn release(&self, id: DirectUploadId, token: ClaimToken) -> Result<(), RepoError>;

    /// Deletes the upload `id`; deleting a missing one succeeds.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn delete(&self, id: DirectUploadId) -> Result<(), RepoError>;

    /// Every upload not completed yet, expired or not, at most `limit`, for `gc`.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn unfinished(&self, limit: u32) -> Result<Vec<DirectUpload>, RepoError>;

    /// Deletes the upload `id` if it expired before `now`, is not completed and no live claim
    /// holds it (by the database's clock); says whether it did (only then may its object be removed).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn delete_abandoned(
        &self,
        id: DirectUploadId,
        now: OffsetDateTime,
    ) -> Result<bool, RepoError>;

    /// Deletes the completed uploads that expired before `now` (their files are ordinary files
    /// by then); returns how many.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn purge_completed(&self, now: OffsetDateTime) -> Result<u64, RepoError>;
}
