//! Where file metadata lives.

use async_trait::async_trait;
use stowage_domain::{AccountId, FileId, FileKey, FileRecord, Sha256Digest, UserId, Visibility};
use time::OffsetDateTime;

use crate::error::BoxError;
use crate::events::FileEvent;

/// Why a repository call failed.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// No record with that id.
    #[error("record not found")]
    NotFound,
    /// Another file of the account holds the key.
    #[error("key already taken")]
    KeyTaken,
    /// The database failed or timed out.
    #[error("database unavailable")]
    Unavailable(#[source] BoxError),
    /// The connection broke while a write was being committed: the database may have applied
    /// it, or not.
    #[error("database unavailable while a write was committed")]
    Unconfirmed(#[source] BoxError),
}

/// Whose files a listing returns: a user's, or an account's files that have no user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Files uploaded by this user in this account (a user id means someone only within its account).
    User(UserId, AccountId),
    /// Account-level files (uploaded with a null user) of this account.
    Account(AccountId),
}

/// Position in a newest-first listing: the last record of the previous page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListCursor {
    /// `created_at` of the last record seen.
    pub created_at: OffsetDateTime,
    /// Id of the last record seen (tie-breaker for equal timestamps).
    pub file_id: FileId,
}

impl ListCursor {
    /// The opaque text form handed to clients.
    pub fn encode(&self) -> String {
        let micros = self.created_at.unix_timestamp_nanos() / 1_000;
        hex::encode(format!("{micros}:{}", self.file_id))
    }

    /// Parses what [`ListCursor::encode`] produced; `None` for anything else.
    pub fn decode(s: &str) -> Option<ListCursor> {
        let raw = String::from_utf8(hex::decode(s).ok()?).ok()?;
        let (micros, id) = raw.split_once(':')?;
        let micros: i128 = micros.parse().ok()?;
        let created_at =
            OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1_000)?).ok()?;
        let file_id = FileId::parse(id).ok()?;
        Some(ListCursor {
            created_at,
            file_id,
        })
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage {
    /// Records, newest first.
    pub items: Vec<FileRecord>,
    /// Where the next page starts, when there is one.
    pub next: Option<ListCursor>,
}

/// Stores [`FileRecord`]s.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait FileRepository: Send + Sync {
    /// Inserts a new record (with its key and metadata) and, in the same transaction, the
    /// `events` that report it (the repository keeps those it delivers as webhooks in its
    /// outbox, and ignores the others).
    ///
    /// # Errors
    /// [`RepoError::KeyTaken`] when another file of the account holds the record's key (a
    /// database constraint, so two inserts cannot both win); [`RepoError::Unavailable`] when the
    /// database fails. Either way neither the record nor an event is stored.
    async fn insert(&self, record: &FileRecord, events: &[FileEvent]) -> Result<(), RepoError>;

    /// Inserts `record`, which takes its key from the file `old`, in one transaction with
    /// `events`: `old` loses the key and is marked replaced (so that `gc` removes it if its
    /// deletion never happens), then `record` is inserted under the key.
    ///
    /// # Errors
    /// [`RepoError::KeyTaken`] when `old` no longer holds the key (another upload replaced it
    /// first); [`RepoError::Unavailable`] when the database fails. Either way nothing changes.
    async fn insert_replacing(
        &self,
        record: &FileRecord,
        old: FileId,
        events: &[FileEvent],
    ) -> Result<(), RepoError>;

    /// Loads the record holding `key` in `account`.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when no file holds it; [`RepoError::Unavailable`] when the
    /// database fails.
    async fn get_by_key(&self, account: AccountId, key: &FileKey) -> Result<FileRecord, RepoError>;

    /// Records marked replaced before `before`, at most `limit`, for `gc` to remove.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn scan_replaced(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<FileRecord>, RepoError>;

    /// Loads the record with `id`.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] for a missing or deleted id; [`RepoError::Unavailable`] when the database fails.
    async fn get(&self, id: FileId) -> Result<FileRecord, RepoError>;

    /// Deletes the record with `id` and, in the same transaction, keeps the `events` that report
    /// it (as [`FileRepository::insert`] does).
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there was no such record (no event is kept);
    /// [`RepoError::Unavailable`] when the database fails.
    async fn delete(&self, id: FileId, events: &[FileEvent]) -> Result<(), RepoError>;

    /// Keeps `events` that change no record (downloads, refused reads) for webhook delivery.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn record_events(&self, events: &[FileEvent]) -> Result<(), RepoError>;

    /// Lists `owner`'s records newest first (by `created_at`, then id), at most `limit`, after
    /// `cursor`; with a `prefix`, only those whose key starts with it (literally, case-sensitively).
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn list(
        &self,
        owner: Owner,
        limit: u32,
        cursor: Option<ListCursor>,
        prefix: Option<String>,
    ) -> Result<ListPage, RepoError>;

    /// Checks that the database answers.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when it does not.
    async fn health(&self) -> Result<(), RepoError>;

    /// Every record in id order, at most `limit` after the id `after`, for reconciliation.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn scan(&self, after: Option<FileId>, limit: u32) -> Result<Vec<FileRecord>, RepoError>;

    /// The records without a digest (legacy rows) in id order, at most `limit` after the id `after`.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn scan_without_digest(
        &self,
        after: Option<FileId>,
        limit: u32,
    ) -> Result<Vec<FileRecord>, RepoError>;

    /// How many records have no digest.
    ///
    /// # Errors
    /// [`RepoError::Unavailable`] when the database fails.
    async fn count_without_digest(&self) -> Result<u64, RepoError>;

    /// Records the digest of the bytes of the record `id`.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such record; [`RepoError::Unavailable`] when the database fails.
    async fn set_digest(&self, id: FileId, sha256: &Sha256Digest) -> Result<(), RepoError>;

    /// Makes the record `id` private or public.
    ///
    /// # Errors
    /// [`RepoError::NotFound`] when there is no such record; [`RepoError::Unavailable`] when the database fails.
    async fn set_visibility(&self, id: FileId, visibility: Visibility) -> Result<(), RepoError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_cursor_round_trips() {
        let cursor = ListCursor {
            created_at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000)
                .unwrap(),
            file_id: FileId::new_random(),
        };
        assert_eq!(ListCursor::decode(&cursor.encode()), Some(cursor));
    }

    #[test]
    fn list_cursor_rejects_garbage() {
        for bad in [
            "",
            "zz",
            "00",
            &hex::encode("12:not-a-uuid"),
            &hex::encode("x:y"),
        ] {
            assert_eq!(ListCursor::decode(bad), None, "{bad}");
        }
    }
}
