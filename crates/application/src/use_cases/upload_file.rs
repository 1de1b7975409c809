//! Upload: stream the body to the blob store, then record it.

use std::collections::HashMap;
use std::sync::Arc;

use stowage_domain::{
    BlobKey, ContentType, FileId, FileKey, FileRecord, FileRecordParts, Filename, Metadata,
    Principal, SNIFF_LEN, Visibility, may_delete,
};

use crate::error::Error;
use crate::events::{Actor, EventKind, RequestFacts};
use crate::ports::{BlobStore, Clock, FileRepository, RepoError};
use crate::stream::{ByteStream, limit_stream, peek_prefix};
use crate::use_cases::Audit;
use crate::use_cases::audit::events_of;
use crate::use_cases::keys::{NotKept, delete_file, keep, key_holder, remove_replaced};
use crate::use_cases::upload_policy::{UploadPolicy, policy_of, visibility_of};
use crate::use_cases::variants::{Variants, make_policy_variants, remove_bytes};
use time::OffsetDateTime;

/// One upload as the presentation layer hands it over.
pub struct UploadRequest {
    /// Who uploads.
    pub principal: Principal,
    /// The client's file name, unsanitised.
    pub filename: Option<String>,
    /// The client's declared content type, unnormalised.
    pub declared_type: Option<String>,
    /// The name of an upload policy to apply.
    pub policy: Option<String>,
    /// The file's bytes.
    pub body: ByteStream,
    /// The file's length as the request announces it, when it does: a raw body's
    /// `Content-Length`, or what a form's `Content-Length` leaves for its file part.
    pub length: Option<u64>,
    /// The client behind the upload, for the events that report it.
    pub request: RequestFacts,
    /// The key to store the file under in its account (replacing the file that holds it, for a
    /// caller who may delete that one).
    pub key: Option<FileKey>,
    /// The client's metadata.
    pub metadata: Metadata,
    /// Who may read the file; `None` leaves it to the policy (private without one).
    pub visibility: Option<Visibility>,
    /// A file of the caller's to delete once this one is stored (`?replaces=`).
    pub replaces: Option<FileId>,
}

/// Streams an upload into the blob store and records it; leaves nothing behind on any failure.
pub struct UploadFile {
    repo: Arc<dyn FileRepository>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    max_bytes: u64,
    policies: HashMap<String, UploadPolicy>,
    audit: Option<Audit>,
    variants: Option<Variants>,
}

impl UploadFile {
    /// An upload use case refusing bodies over `max_bytes`, with the named `policies`.
    pub fn new(
        repo: Arc<dyn FileRepository>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        max_bytes: u64,
        policies: HashMap<String, UploadPolicy>,
    ) -> Self {
        Self {
            repo,
            blobs,
            clock,
            max_bytes,
            policies,
            audit: None,
            variants: None,
        }
    }

    /// This use case, making the variants a policy names before it answers.
    #[must_use]
    pub fn with_variants(mut self, variants: Variants) -> Self {
        self.variants = Some(variants);
        self
    }

    /// This use case, reporting each stored file through `audit`.
    #[must_use]
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The global upload limit in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Stores the upload and returns its record.
    ///
    /// # Errors
    /// `Validation` (unknown policy, broken body), `KeyExists` (the key belongs to a file the
    /// caller may not delete), `TooLarge`, `UnsupportedMediaType`, `ClientAborted`,
    /// `StorageUnavailable`, `DatabaseUnavailable` (the blob is then deleted again).
    #[tracing::instrument(name = "upload_file", skip_all, fields(file_id = tracing::field::Empty, size = tracing::field::Empty))]
    pub async fn execute(&self, request: UploadRequest) -> Result<FileRecord, Error> {
        let policy = policy_of(&self.policies, request.policy.as_deref())?;
        // Refused before any byte is stored when the key is visibly someone else's.
        let holder = match &request.key {
            Some(key) => key_holder(self.repo.as_ref(), &request.principal, key).await?,
            None => None,
        };
        if request.key.is_some() && request.replaces.is_some() {
            return Err(Error::Validation(
                "replaces cannot be combined with key: a key already replaces the file holding it"
                    .to_owned(),
            ));
        }
        // Refused before any byte is stored when the caller may not delete the file it replaces.
        let replaces = match request.replaces {
            Some(old) => Some(self.replaceable(&request.principal, old).await?),
            None => None,
        };
        let limit = policy.map_or(self.max_bytes, |p| p.max_bytes.min(self.max_bytes));
        // A length over the limit would only start a write that the limit is bound to cut off.
        let length = request.length.filter(|&len| len <= limit);
        let (prefix, body) = peek_prefix(limit_stream(request.body, limit), SNIFF_LEN).await?;
        let content_type = ContentType::resolve(request.declared_type.as_deref(), &prefix);
        let (body, length) = match policy {
            Some(policy) => {
                policy.check(&prefix)?;
                // Stripped metadata changes the length; the store then learns it at the end.
                let length = length.filter(|_| !policy.rewrites(&prefix));
                (policy.apply(body, &prefix), length)
            }
            None => (body, length),
        };

        let id = FileId::new_random();
        tracing::Span::current().record("file_id", tracing::field::display(id));
        let key = BlobKey::new(request.principal.account_id(), id);
        let stored = self.blobs.put(&key, body, length).await?;
        tracing::Span::current().record("size", stored.size);

        let created_at = creation_time(self.clock.now());
        let record = FileRecord::new(FileRecordParts {
            id,
            filename: Filename::sanitize(request.filename.as_deref().unwrap_or_default()),
            content_type,
            size: stored.size,
            sha256: Some(stored.sha256),
            created_at,
            account_id: request.principal.account_id(),
            user_id: request.principal.user_id(),
        })
        .with_key(request.key.clone())
        .with_metadata(request.metadata.clone())
        .with_visibility(visibility_of(request.visibility, policy));
        if let Some(policy) = policy
            && let Err(e) = make_policy_variants(self.variants.as_ref(), policy, &record).await
        {
            if let Err(delete_error) = self.blobs.delete(&key).await {
                tracing::warn!(error = %delete_error, "blob of a refused upload could not be deleted; gc will");
            }
            return Err(e);
        }
        // The blob is removed only when the insert certainly failed. If this future is dropped
        // while the insert is in flight (the client went away), or the connection breaks while it
        // commits and the record is not seen after, the insert may have committed, so the blob
        // stays: a blob without a record is reclaimed by `stowage-api gc`, whereas a record
        // without its blob would be listed and never downloadable.
        let event = self.audit.as_ref().map(|audit| {
            let actor = Actor::of(&request.principal);
            audit.event(EventKind::Upload, actor, &record, &request.request)
        });
        let replaced = match keep(
            self.repo.as_ref(),
            &request.principal,
            &record,
            holder,
            events_of(event.as_ref()),
        )
        .await
        {
            Ok(replaced) => replaced,
            Err(NotKept::NotRecorded(e)) => {
                // The blob, and the variants a policy made of it.
                remove_bytes(self.blobs.as_ref(), &record).await;
                return Err(e);
            }
            Err(NotKept::MaybeRecorded(e)) => {
                tracing::warn!(error = %e, "blob of an upload that may be recorded left in place; gc will remove it if it is not");
                return Err(e);
            }
        };
        if let (Some(audit), Some(event)) = (&self.audit, &event) {
            audit.publish(event).await;
        }
        if let Some(old) = replaced {
            self.remove_replaced(&request.principal, &old, &request.request)
                .await;
        }
        if let Some(old) = replaces {
            self.delete_replaced(&request.principal, &old, &record, &request.request)
                .await?;
        }
        Ok(record)
    }

    /// The record of `old`, which an upload is to replace, if `principal` may delete it.
    ///
    /// # Errors
    /// `NotFound`, `AccessDenied`, `DatabaseUnavailable`.
    async fn replaceable(&self, principal: &Principal, old: FileId) -> Result<FileRecord, Error> {
        let record = self.repo.get(old).await?;
        if !may_delete(principal, &record) {
            return Err(Error::AccessDenied);
        }
        Ok(record)
    }

    /// Deletes `old` now that `new` replaces it. When that fails, `new` is not kept either, so
    /// that the client's retry finds both as they were.
    async fn delete_replaced(
        &self,
        principal: &Principal,
        old: &FileRecord,
        new: &FileRecord,
        request: &RequestFacts,
    ) -> Result<(), Error> {
        let deleted = delete_file(
            self.repo.as_ref(),
            self.blobs.as_ref(),
            self.audit.as_ref(),
            principal,
            old,
            request,
        )
        .await;
        match deleted {
            // Gone already: deleted meanwhile by another request.
            Ok(()) | Err(RepoError::NotFound) => Ok(()),
            Err(e) => {
                if let Err(discard) = self.discard(principal, new, request).await {
                    tracing::warn!(error = %discard, "an upload whose replaced file stayed could not be removed");
                }
                Err(e.into())
            }
        }
    }

    /// Deletes the file a keyed upload replaced; a failure leaves it marked replaced, for `gc`.
    async fn remove_replaced(
        &self,
        principal: &Principal,
        old: &FileRecord,
        request: &RequestFacts,
    ) {
        remove_replaced(
            self.repo.as_ref(),
            self.blobs.as_ref(),
            self.audit.as_ref(),
            principal,
            old,
            request,
        )
        .await;
    }

    /// Deletes `record`, a file this use case just stored for `principal`, as a delete would
    /// (for an upload that turns out not to be allowed to keep it).
    ///
    /// # Errors
    /// `DatabaseUnavailable` when the record could not be deleted: the file is then kept.
    pub(crate) async fn discard(
        &self,
        principal: &Principal,
        record: &FileRecord,
        request: &RequestFacts,
    ) -> Result<(), Error> {
        delete_file(
            self.repo.as_ref(),
            self.blobs.as_ref(),
            self.audit.as_ref(),
            principal,
            record,
            request,
        )
        .await
        .map_err(Error::from)
    }
}

/// `now` at the microsecond precision every supported database keeps, so the record returned
/// to the client is exactly the one read back later.
pub(crate) fn creation_time(now: OffsetDateTime) -> OffsetDateTime {
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::blob_store::{BlobError, MockBlobStore};
    use crate::ports::clock::MockClock;
    use crate::ports::file_repository::{MockFileRepository, RepoError};
    use crate::stream::{BodyError, StoredBlob};
    use crate::use_cases::fixtures::{public, user};
    use bytes::Bytes;
    use futures_util::stream;
    use stowage_domain::Sha256Digest;

    fn body(data: &'static [u8]) -> ByteStream {
        Box::pin(stream::iter(vec![Ok::<_, BodyError>(Bytes::from_static(
            data,
        ))]))
    }

    fn clock() -> Arc<MockClock> {
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| OffsetDateTime::UNIX_EPOCH);
        Arc::new(clock)
    }

    fn request(principal: Principal, data: &'static [u8], policy: Option<&str>) -> UploadRequest {
        UploadRequest {
            principal,
            filename: Some("../../etc/passwd".into()),
            declared_type: Some("text/html".into()),
            policy: policy.map(str::to_owned),
            body: body(data),
            length: Some(data.len() as u64),
            request: RequestFacts::default(),
            key: None,
            metadata: Metadata::default(),
            visibility: None,
            replaces: None,
        }
    }

    /// The use case over `repo` and `blobs`, with a 100-byte limit and no upload policies.
    fn use_case(repo: MockFileRepository, blobs: MockBlobStore) -> UploadFile {
        UploadFile::new(
            Arc::new(repo),
            Arc::new(blobs),
            clock(),
            100,
            HashMap::new(),
        )
    }

    fn stored() -> StoredBlob {
        StoredBlob {
            size: 5,
            sha256: Sha256Digest::from_bytes([1; 32]),
        }
    }

    #[tokio::test]
    async fn upload_records_sanitised_name_and_owner() {
        let mut blobs = MockBlobStore::new();
        blobs
            .expect_put()
            .times(1)
            .withf(|_, _, length| *length == Some(5))
            .returning(|_, _, _| Ok(stored()));
        let mut repo = MockFileRepository::new();
        repo.expect_insert().times(1).returning(|_, _| Ok(()));
        let upload = use_case(repo, blobs);

        let record = upload
            .execute(request(user(1, 2), b"hello", None))
            .await
            .unwrap();

        assert_eq!(record.filename().as_str(), "etc_passwd");
        assert_eq!(record.content_type().as_str(), "application/octet-stream");
        assert_eq!(record.size(), 5);
        assert_eq!(record.user_id().map(|u| u.get()), Some(1));
        assert_eq!(record.account_id().get(), 2);
    }

    #[tokio::test]
    async fn upload_drops_a_length_over_the_limit() {
        let mut blobs = MockBlobStore::new();
        blobs
            .expect_put()
            .times(1)
            .withf(|_, _, length| length.is_none())
            .returning(|_, _, _| Ok(stored()));
        let mut repo = MockFileRepository::new();
        repo.expect_insert().returning(|_, _| Ok(()));
        let upload = use_case(repo, blobs);
        let mut over = request(user(1, 2), b"hello", None);
        over.length = Some(101);

        upload.execute(over).await.unwrap();
    }

    #[test]
    fn creation_time_keeps_whole_microseconds() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(creation_time(t).nanosecond(), 123_456_000);
    }

    #[tokio::test]
    async fn upload_by_public_principal_has_no_user() {
        let mut blobs = MockBlobStore::new();
        blobs.expect_put().returning(|_, _, _| Ok(stored()));
        let mut repo = MockFileRepository::new();
        repo.expect_insert().returning(|_, _| Ok(()));
        let upload = use_case(repo, blobs);
        let record = upload
            .execute(request(public(3), b"hello", None))
            .await
            .unwrap();
        assert_eq!(record.user_id(), None);
    }

    #[tokio::test]
    async fn upload_deletes_the_blob_when_the_insert_fails() {
        let mut blobs = MockBlobStore::new();
        blobs.expect_put().returning(|_, _, _| Ok(stored()));
        blobs.expect_delete().times(1).returning(|_| Ok(()));
        let mut repo = MockFileRepository::new();
        repo.expect_insert()
            .returning(|_, _| Err(RepoError::Unavailable("connection refused".into())));
        let upload = use_case(repo, blobs);

        let err = upload
            .execute(request(user(1, 2), b"hello", None))
            .await
            .unwrap_err();

        assert!(matches!(err, Error::DatabaseUnavailable(_)));
    }

    /// A repository whose insert broke while it committed (`Unconfirmed`), and whose look-up of
    /// the record afterwards answers `found` with the record written.
    fn unconfirmed_insert(
        found: fn(FileRecord) -> Result<FileRecord, RepoError>,
    ) -> MockFileRepository {
        let written = Arc::new(std::sync::Mutex::new(None));
        let seen = Arc::clone(&written);
        let mut repo = MockFileRepository::new();
        repo.expect_insert().times(1).returning(move |record, _| {
            *seen.lock().unwrap() = Some(record.clone());
            Err(RepoError::Unconfirmed("connection reset".into()))
        });
        repo.expect_get()
            .times(1)
            .returning(move |_| found(written.lock().unwrap().clone().unwrap()));
        repo
    }

    #[tokio::test]
    async fn an_insert_whose_answer_was_lost_after_it_committed_is_a_stored_upload() {
        let mut blobs = MockBlobStore::new();
        blobs.expect_put().returning(|_, _, _| Ok(stored()));
        blobs.expect_delete().times(0);
        let upload = use_case(unconfirmed_insert(Ok), blobs);

        let record = upload.execute(request(user(1, 2), b"hello", None)).await;

        assert_eq!(record.unwrap().size(), 5);
    }

    #[tokio::test]
    async fn an_insert_whose_answer_was_lost_and_not_seen_yet_keeps_the_blob_for_gc() {
        let mut blobs = MockBlobStore::new();
        blobs.expect_put().returning(|_, _, _| Ok(stored()));
        // Its commit may still become visible: deleting the blob could leave a record without it.
        blobs.expect_delete().times(0);
        let upload = use_case(unconfirmed_insert(|_| Err(RepoError::NotFound)), blobs);

        let err = upload.execute(request(user(1, 2), b"hello", None)).await;

        assert!(matches!(err, Err(Error::DatabaseUnavailable(_))), "{err:?}");
    }

    #[tokio::test]
    async fn an_insert_whose_outcome_cannot_be_told_keeps_the_blob_for_gc() {
        let mut blobs = MockBlobStore::new();
        blobs.expect_put().returning(|_, _, _| Ok(stored()));
        // A record without its blob would be listed and never served.
        blobs.expect_delete().times(0);
        let upload = use_case(
            unconfirmed_insert(|_| Err(RepoError::Unavailable("still down".into()))),
            blobs,
        );

        let err = upload.execute(request(user(1, 2), b"hello", None)).await;

        assert!(matches!(err, Err(Error::DatabaseUnavailable(_))), "{err:?}");
    }

    #[tokio::test]
    async fn upload_too_large_records_nothing() {
        let mut blobs = MockBlobStore::new();
        blobs
            .expect_put()
            .returning(|_, _, _| Err(BlobError::Body(BodyError::TooLarge { limit: 3 })));
        let mut repo = MockFileRepository::new();
        repo.expect_insert().times(0);
        let upload = UploadFile::new(Arc::new(repo), Arc::new(blobs), clock(), 3, HashMap::new());

        let err = upload
            .execute(request(user(1, 2), b"hello", None))
            .await
            .unwrap_err();

        assert!(matches!(err, Error::TooLarge { limit: 3 }));
    }

    #[tokio::test]
    async fn upload_over_the_limit_in_the_prefix_never_reaches_the_store() {
        let mut blobs = MockBlobStore::new();
        blobs.expect_put().times(0);
        let mut repo = MockFileRepository::new();
        repo.expect_insert().times(0);
        let upload = UploadFile::new(Arc::new(repo), Arc::new(blobs), clock(), 3, HashMap::new());
        let err = upload
            .execute(request(user(1, 2), b"hello", None))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 3 }));
    }

    #[tokio::test]
    async fn upload_storage_failure_is_storage_unavailable() {
        let mut blobs = MockBlobStore::new();
        blobs
            .expect_put()
            .returning(|_, _, _| Err(BlobError::Unavailable("disk full".into())));
        let mut repo = MockFileRepository::new();
        repo.expect_insert().times(0);
        let upload = use_case(repo, blobs);
        let err = upload
            .execute(request(user(1, 2), b"hello", None))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::StorageUnavailable(_)));
    }

    #[tokio::test]
    async fn upload_policy_refuses_a_type_by_magic_bytes() {
        let mut blobs = MockBlobStore::new();
        blobs.expect_put().times(0);
        let policies = HashMap::from([("avatar".to_owned(), UploadPolicy::avatar())]);
        let upload = UploadFile::new(
            Arc::new(MockFileRepository::new()),
            Arc::new(blobs),
            clock(),
            100,
            policies,
        );
        let mut req = request(user(1, 2), b"hello", Some("avatar"));
        req.declared_type = Some("image/png".into());
        let err = upload.execute(req).await.unwrap_err();
        assert!(matches!(err, Error::UnsupportedMediaType(_)));
    }

    #[tokio::test]
    async fn upload_with_unknown_policy_is_a_validation_error() {
        let upload = use_case(MockFileRepository::new(), MockBlobStore::new());
        let err = upload
            .execute(request(user(1, 2), b"hello", Some("nope")))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Validation(_)));
    }
}
