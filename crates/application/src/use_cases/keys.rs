//! Keys: who holds one, and storing a record under one when another file may hold it.

use stowage_domain::{FileKey, FileRecord, Principal, may_delete};

use crate::error::Error;
use crate::events::{Actor, EventKind, FileEvent, RequestFacts};
use crate::ports::{BlobStore, FileRepository, RepoError};
use crate::use_cases::Audit;
use crate::use_cases::audit::events_of;
use crate::use_cases::variants::remove_bytes;

/// Attempts at storing a keyed record while other uploads keep taking the key.
const KEEP_ATTEMPTS: usize = 5;

/// The file holding `key` in `principal`'s account, which `principal` may replace; `None` when
/// no file holds it.
///
/// # Errors
/// `KeyExists` when the holder is a file `principal` may not delete; `DatabaseUnavailable`.
pub(crate) async fn key_holder(
    repo: &dyn FileRepository,
    principal: &Principal,
    key: &FileKey,
) -> Result<Option<FileRecord>, Error> {
    match repo.get_by_key(principal.account_id(), key).await {
        Ok(holder) if may_delete(principal, &holder) => Ok(Some(holder)),
        Ok(_) => Err(Error::KeyExists),
        Err(RepoError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Why [`keep`] did not store a record, as far as it can tell.
#[derive(Debug)]
pub(crate) enum NotKept {
    /// The record was not written.
    NotRecorded(Error),
    /// The connection broke while the record was committed, and the record was not seen after:
    /// the commit may still land, so the file's bytes must stay (`gc` removes them if it does not).
    MaybeRecorded(Error),
}

impl From<NotKept> for Error {
    fn from(e: NotKept) -> Self {
        match e {
            NotKept::NotRecorded(e) | NotKept::MaybeRecorded(e) => e,
        }
    }
}

/// Stores `record` with `events`: under its key, replacing `holder` when there is one. When
/// another upload takes the key in between, the new holder is looked up and the store tried
/// again, so two uploads of one key end with one file under it. A write whose answer was lost is
/// settled by looking the record up. Returns the replaced file, to be deleted by the caller.
///
/// # Errors
/// `KeyExists` when the key ends up with a file `principal` may not delete (or keeps moving);
/// `DatabaseUnavailable`; each as [`NotKept`].
pub(crate) async fn keep(
    repo: &dyn FileRepository,
    principal: &Principal,
    record: &FileRecord,
    mut holder: Option<FileRecord>,
    events: &[FileEvent],
) -> Result<Option<FileRecord>, NotKept> {
    for _ in 0..KEEP_ATTEMPTS {
        let stored = match &holder {
            None => repo.insert(record, events).await,
            Some(old) => repo.insert_replacing(record, old.id(), events).await,
        };
        match (stored, record.key()) {
            (Ok(()), _) => return Ok(holder),
            (Err(RepoError::KeyTaken), Some(key)) => {
                holder = key_holder(repo, principal, key)
                    .await
                    .map_err(NotKept::NotRecorded)?;
            }
            (Err(RepoError::Unconfirmed(source)), _) => {
                let failed = Error::DatabaseUnavailable(source);
                return match repo.get(record.id()).await {
                    // Committed, with its events (and the replaced file marked), in one go.
                    Ok(_) => Ok(holder),
                    // Not seen is no proof: a commit can become visible after this look-up (a
                    // synchronous replica's wait), so the bytes stay for gc to judge.
                    Err(_) => Err(NotKept::MaybeRecorded(failed)),
                };
            }
            (Err(e), _) => return Err(NotKept::NotRecorded(e.into())),
        }
    }
    Err(NotKept::NotRecorded(Error::KeyExists))
}

/// Records `record`, whose blob is stored, as `principal`'s new file: under its key when it has
/// one (replacing the file holding it, when `principal` may), with its upload event reported
/// through `audit`; the replaced file is then deleted.
///
/// # Errors
/// `KeyExists`, `DatabaseUnavailable`: nothing was recorded (the blob is the caller's to remove),
/// or for `DatabaseUnavailable` it cannot be told (the blob must then stay, for `gc`).
pub(crate) async fn record_upload(
    repo: &dyn FileRepository,
    blobs: &dyn BlobStore,
    audit: Option<&Audit>,
    principal: &Principal,
    record: &FileRecord,
    request: &RequestFacts,
) -> Result<(), Error> {
    let holder = match record.key() {
        Some(key) => key_holder(repo, principal, key).await?,
        None => None,
    };
    let event =
        audit.map(|audit| audit.event(EventKind::Upload, Actor::of(principal), record, request));
    let replaced = keep(repo, principal, record, holder, events_of(event.as_ref())).await?;
    if let (Some(audit), Some(event)) = (audit, &event) {
        audit.publish(event).await;
    }
    if let Some(old) = replaced {
        remove_replaced(repo, blobs, audit, principal, &old, request).await;
    }
    Ok(())
}

/// Deletes `old`, the file a keyed upload replaced, reporting it through `audit`; a failure
/// leaves it marked replaced, for `gc`.
pub(crate) async fn remove_replaced(
    repo: &dyn FileRepository,
    blobs: &dyn BlobStore,
    audit: Option<&Audit>,
    principal: &Principal,
    old: &FileRecord,
    request: &RequestFacts,
) {
    if let Err(e) = delete_file(repo, blobs, audit, principal, old, request).await {
        tracing::warn!(error = %e, "a replaced file could not be deleted; gc will");
    }
}

/// Deletes `file` as `principal`, the way `DELETE /files/{id}` does: its record with a delete
/// event reported through `audit`, then its blob (a blob left behind is for `gc`).
///
/// # Errors
/// The repository's, when the record could not be deleted (the file is then kept).
pub(crate) async fn delete_file(
    repo: &dyn FileRepository,
    blobs: &dyn BlobStore,
    audit: Option<&Audit>,
    principal: &Principal,
    file: &FileRecord,
    request: &RequestFacts,
) -> Result<(), RepoError> {
    let event =
        audit.map(|audit| audit.event(EventKind::Delete, Actor::of(principal), file, request));
    repo.delete(file.id(), events_of(event.as_ref())).await?;
    if let (Some(audit), Some(event)) = (audit, &event) {
        audit.publish(event).await;
    }
    remove_bytes(blobs, file).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use futures_util::StreamExt;
    use mockall::predicate::eq;
    use stowage_domain::{FileId, Metadata};
    use time::OffsetDateTime;

    use super::*;
    use crate::events::RequestFacts;
    use crate::ports::blob_store::MockBlobStore;
    use crate::ports::clock::MockClock;
    use crate::ports::file_repository::MockFileRepository;
    use crate::stream::StoredBlob;
    use crate::use_cases::fixtures::{record, user};
    use crate::use_cases::{UploadFile, UploadRequest};

    fn key() -> FileKey {
        FileKey::parse("avatars/7").unwrap()
    }

    fn upload(repo: MockFileRepository, blobs: MockBlobStore) -> UploadFile {
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| OffsetDateTime::UNIX_EPOCH);
        UploadFile::new(
            Arc::new(repo),
            Arc::new(blobs),
            Arc::new(clock),
            100,
            HashMap::new(),
        )
    }

    fn keyed_request() -> UploadRequest {
        UploadRequest {
            principal: user(1, 2),
            filename: Some("a.png".into()),
            declared_type: None,
            policy: None,
            body: futures_util::stream::iter([Ok(Bytes::from_static(b"abc"))]).boxed(),
            length: None,
            request: RequestFacts::default(),
            key: Some(key()),
            metadata: Metadata::parse(r#"{"size":"small"}"#).unwrap(),
            visibility: None,
            replaces: None,
        }
    }

    fn storing_blobs(deleted: &Arc<Mutex<Vec<FileId>>>) -> MockBlobStore {
        let mut blobs = MockBlobStore::new();
        blobs.expect_put().returning(|_, _, _| {
            Ok(StoredBlob {
                size: 3,
                sha256: stowage_domain::Sha256Digest::from_bytes([1; 32]),
            })
        });
        let deleted = Arc::clone(deleted);
        blobs.expect_delete().returning(move |key| {
            deleted.lock().unwrap().push(key.file_id());
            Ok(())
        });
        blobs
    }

    #[tokio::test]
    async fn a_key_held_by_someone_else_is_refused_before_any_byte_is_stored() {
        let mut repo = MockFileRepository::new();
        repo.expect_get_by_key()
            .returning(|_, _| Ok(record(Some(9), 2)));
        repo.expect_insert().times(0);
        let mut blobs = MockBlobStore::new();
        blobs.expect_put().times(0);

        let refused = upload(repo, blobs).execute(keyed_request()).await;

        assert!(matches!(refused, Err(Error::KeyExists)), "{refused:?}");
    }

    #[tokio::test]
    async fn the_callers_own_file_under_the_key_is_replaced_then_deleted() {
        let old = record(Some(1), 2);
        let old_id = old.id();
        let mut repo = MockFileRepository::new();
        repo.expect_get_by_key()
            .returning(move |_, _| Ok(old.clone()));
        repo.expect_insert_replacing()
            .withf(move |new, replaced, _| *replaced == old_id && new.key() == Some(&key()))
            .times(1)
            .returning(|_, _, _| Ok(()));
        repo.expect_delete()
            .with(eq(old_id), mockall::predicate::always())
            .times(1)
            .returning(|_, _| Ok(()));
        let deleted = Arc::new(Mutex::new(Vec::new()));

        let stored = upload(repo, storing_blobs(&deleted))
            .execute(keyed_request())
            .await
            .unwrap();

        assert_eq!(stored.key(), Some(&key()));
        assert_eq!(stored.metadata().as_str(), r#"{"size":"small"}"#);
        assert_eq!(
            *deleted.lock().unwrap(),
            vec![old_id],
            "the old blob goes too"
        );
    }

    #[tokio::test]
    async fn a_key_taken_during_the_upload_is_replaced_when_the_new_holder_is_the_callers() {
        let winner = record(Some(1), 2);
        let winner_id = winner.id();
        let mut repo = MockFileRepository::new();
        let mut lookups = 0;
        repo.expect_get_by_key().returning(move |_, _| {
            lookups += 1;
            if lookups == 1 {
                Err(RepoError::NotFound)
            } else {
                Ok(winner.clone())
            }
        });
        repo.expect_insert()
            .times(1)
            .returning(|_, _| Err(RepoError::KeyTaken));
        repo.expect_insert_replacing()
            .withf(move |_, replaced, _| *replaced == winner_id)
            .times(1)
            .returning(|_, _, _| Ok(()));
        repo.expect_delete().times(1).returning(|_, _| Ok(()));
        let deleted = Arc::new(Mutex::new(Vec::new()));

        upload(repo, storing_blobs(&deleted))
            .execute(keyed_request())
            .await
            .unwrap();

        assert_eq!(*deleted.lock().unwrap(), vec![winner_id]);
    }

    #[tokio::test]
    async fn a_key_taken_by_someone_else_during_the_upload_leaves_nothing() {
        let mut repo = MockFileRepository::new();
        let mut lookups = 0;
        repo.expect_get_by_key().returning(move |_, _| {
            lookups += 1;
            if lookups == 1 {
                Err(RepoError::NotFound)
            } else {
                Ok(record(Some(9), 2))
            }
        });
        repo.expect_insert()
            .returning(|_, _| Err(RepoError::KeyTaken));
        let deleted = Arc::new(Mutex::new(Vec::new()));

        let refused = upload(repo, storing_blobs(&deleted))
            .execute(keyed_request())
            .await;

        assert!(matches!(refused, Err(Error::KeyExists)), "{refused:?}");
        assert_eq!(deleted.lock().unwrap().len(), 1, "the new blob is deleted");
    }
}
