//! Where resumable (tus) uploads keep their state between requests, shared by every replica.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use stowage_domain::{AccountId, FileId, PrincipalKind, UserId};
use time::OffsetDateTime;

use crate::ports::{ClaimToken, RepoError, StoreProgress};

/// A resumable upload's id, as clients see it in its URL (a lower-case, hyphenated v4 UUID).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResumableId(uuid::Uuid);

impl ResumableId {
    /// A fresh random id.
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// Parses the text form; `None` for anything [`ResumableId`] never produces.
    pub fn parse(s: &str) -> Option<Self> {
        FileId::parse(s).ok().map(|id| Self(id.as_uuid()))
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }

    /// The id of a UUID read back from storage.
    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for ResumableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// How an upload takes part in a concatenation (tus `Upload-Concat`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Concat {
    /// A piece of a later final upload; never a file of its own.
    Partial,
    /// The concatenation of these partial uploads, in order.
    Final(Vec<ResumableId>),
}

/// Where a resumable upload stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumableStage {
    /// Receiving bytes.
    Open,
    /// Every byte is in and finished into its blob: the file is recorded (or, for a partial
    /// upload, the bytes wait for a final upload).
    Completed,
}

/// A resumable upload as its state is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumableUpload {
    /// Its id.
    pub id: ResumableId,
    /// The id its file gets; its bytes are finished into this id's blob key.
    pub file_id: FileId,
    /// The account of the principal who created it.
    pub account_id: AccountId,
    /// The user who created it, if any.
    pub user_id: Option<UserId>,
    /// The kind of principal who created it.
    pub principal_kind: PrincipalKind,
    /// Its whole length; `None` while the client defers it.
    pub length: Option<u64>,
    /// Bytes received and durable so far.
    pub offset: u64,
    /// The `Upload-Metadata` header it was created with, as sent.
    pub metadata: Option<String>,
    /// Its part in a concatenation, if any.
    pub concat: Option<Concat>,
    /// What the blob store keeps of its bytes.
    pub store: StoreProgress,
    /// The SHA-256 state after `offset` bytes (see `ResumableDigest`).
    pub digest: Vec<u8>,
    /// The file's first bytes (up to the sniffing length), to judge its type at completion.
    pub head: Vec<u8>,
    /// Where it stands.
    pub stage: ResumableStage,
    /// When it expires unless a request touches it.
    pub expires_at: OffsetDateTime,
}

/// What a request changes of an upload it holds the lock of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumableProgress {
    /// Its length, once known.
    pub length: Option<u64>,
    /// Bytes durable now.
    pub offset: u64,
    /// What the blob store keeps now.
    pub store: StoreProgress,
    /// The SHA-256 state after `offset` bytes.
    pub digest: Vec<u8>,
    /// The file's first bytes.
    pub head: Vec<u8>,
    /// Where it stands now.
    pub stage: ResumableStage,
    /// Its new expiry.
    pub expires_at: OffsetDateTime,
}

/// What an attempt to lock an upload found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResumableLock {
    /// The caller holds it until its lease lapses.
    Locked(Box<ResumableUpload>),
    /// Another request holds it right now.
    Busy,
}

/// Keeps [`ResumableUpload`]s, and the per-upload locks that serialise their writers across
/// replicas.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait ResumableRepository: Send + Sync {
    /// Stores a new upload.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn insert(&self, upload: &ResumableUpload) -> Result<(), RepoError>;

    /// The upload `id`, whatever its state.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such upload; [`RepoError::Unavailable`].
    async fn get(&self, id: ResumableId) -> Result<ResumableUpload, RepoError>;

    /// Locks the upload `id` under `token` for `lease` (by the database's clock), atomically:
    /// of concurrent lockers at most one gets [`ResumableLock::Locked`]. A lock whose lease
    /// lapsed (its holder died) can be taken again.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such upload; [`RepoError::Unavailable`].
    async fn lock(
        &self,
        id: ResumableId,
        token: ClaimToken,
        lease: Duration,
    ) -> Result<ResumableLock, RepoError>;

    /// Keeps the lock of `token` alive while the returned future is polled, renewing its
    /// `lease` well before it lapses; the future ends only when the lock is lost.
    fn hold(&self, id: ResumableId, token: ClaimToken, lease: Duration) -> BoxFuture<'static, ()>;

    /// Stores `progress` for the upload `id`, only while `token` holds its lock; `false` when
    /// it no longer does (nothing changed then).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn advance(
        &self,
        id: ResumableId,
        token: ClaimToken,
        progress: &ResumableProgress,
    ) -> Result<bool, RepoError>;

    /// Gives up the lock `token` holds on `id`; nothing when it holds none.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn unlock(&self, id: ResumableId, token: ClaimToken) -> Result<(), RepoError>;

    /// Deletes the upload `id`; deleting a missing one succeeds.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn delete(&self, id: ResumableId) -> Result<(), RepoError>;

    /// Every upload that expired before `now` and that no live lock holds, at most `limit`,
    /// for `gc`.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn expired(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ResumableUpload>, RepoError>;

    /// Every upload not expired at `now` or locked by a live lock, whatever its stage, at most
    /// `limit`, so that `gc`
    /// spares what they hold in the store (a completed partial upload's blob has no file record).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn live(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ResumableUpload>, RepoError>;
}
