//! Download: metadata, then the access decision, then (only then) the bytes.

use futures_util::StreamExt;
use std::sync::Arc;

use stowage_domain::{ByteRange, FileId, FileKey, FileRecord, Principal, is_owner};

use crate::error::Error;
use crate::events::{Actor, EventKind, RequestFacts};
use crate::ports::{BlobBody, BlobStore, Clock, UrlSigner};
use crate::use_cases::Audit;
use crate::use_cases::ReadAccess;
use crate::use_cases::create_signed_url::check_signature;

/// Serves a file's bytes to a reader.
#[derive(Clone)]
pub struct DownloadFile {
    access: ReadAccess,
    blobs: Arc<dyn BlobStore>,
    signer: Arc<dyn UrlSigner>,
    clock: Arc<dyn Clock>,
    audit: Option<Audit>,
}

impl DownloadFile {
    /// A download use case over `access` and `blobs`, checking signed URLs with `signer`.
    pub fn new(
        access: ReadAccess,
        blobs: Arc<dyn BlobStore>,
        signer: Arc<dyn UrlSigner>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            access,
            blobs,
            signer,
            clock,
            audit: None,
        }
    }

    /// This use case, reporting each download from the first byte through `audit`.
    #[must_use]
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// The record of `id` if `principal` may read it; no byte is fetched yet.
    ///
    /// # Errors
    /// See [`ReadAccess::authorize`].
    #[tracing::instrument(name = "authorize_download", skip_all, fields(file_id = %id))]
    pub async fn authorize(
        &self,
        principal: &Principal,
        id: FileId,
        request: &RequestFacts,
    ) -> Result<FileRecord, Error> {
        self.access.authorize(principal, id, request).await
    }

    /// The record holding `key` in `principal`'s account if `principal` may read it; no byte is
    /// fetched yet.
    ///
    /// # Errors
    /// See [`ReadAccess::authorize_by_key`].
    #[tracing::instrument(name = "authorize_download_by_key", skip_all)]
    pub async fn authorize_by_key(
        &self,
        principal: &Principal,
        key: &FileKey,
        request: &RequestFacts,
    ) -> Result<FileRecord, Error> {
        self.access.authorize_by_key(principal, key, request).await
    }

    /// The record of `id` for a reader holding a signed URL whose parameters beyond `expires` and
    /// `signature` read `scope` in canonical form; the signature and expiry are checked before
    /// the database is asked.
    ///
    /// # Errors
    /// `InvalidSignature`, `NotFound`, `DatabaseUnavailable`.
    #[tracing::instrument(name = "authorize_signed_download", skip_all, fields(file_id = %id))]
    pub async fn authorize_signed(
        &self,
        id: FileId,
        expires: i64,
        scope: &str,
        signature: &str,
    ) -> Result<FileRecord, Error> {
        check_signature(
            self.signer.as_ref(),
            self.clock.as_ref(),
            id,
            expires,
            scope,
            signature,
        )?;
        self.access.load(id).await
    }

    /// The record of `id` for a reader without a credential: only a public file.
    ///
    /// # Errors
    /// `Unauthenticated` for a private file and for one that does not exist alike, so that no
    /// one learns without a credential which ids are taken; `DatabaseUnavailable`.
    #[tracing::instrument(name = "authorize_anonymous_download", skip_all, fields(file_id = %id))]
    pub async fn authorize_anonymous(&self, id: FileId) -> Result<FileRecord, Error> {
        match self.access.load(id).await {
            Ok(record) if record.is_public() => Ok(record),
            Ok(_) | Err(Error::NotFound) => Err(Error::Unauthenticated),
            Err(e) => Err(e),
        }
    }

    /// Checks that the bytes of an authorised `record` are there, without reading them (`HEAD`).
    /// An empty file's bytes are never asked of the store, which need not keep empty blobs.
    ///
    /// # Errors
    /// `NotFound` when the blob is missing, `StorageUnavailable`.
    #[tracing::instrument(name = "check_blob", skip_all, fields(file_id = %record.id()))]
    pub async fn check(&self, record: &FileRecord) -> Result<(), Error> {
        if record.size() == 0 {
            return Ok(());
        }
        self.blobs.head(&record.blob_key()).await?;
        Ok(())
    }

    /// Opens the bytes of an authorised `record`, whole or the resolved `range` (an empty file
    /// without asking the store). A download from the first byte is reported, as by `reader`
    /// (`None` for the holder of a signed URL or a reader without a credential).
    ///
    /// # Errors
    /// `NotFound` when the blob is missing, `StorageUnavailable`.
    #[tracing::instrument(name = "open_blob", skip_all, fields(file_id = %record.id()))]
    pub async fn open(
        &self,
        record: &FileRecord,
        range: Option<ByteRange>,
        reader: Option<&Principal>,
        request: &RequestFacts,
    ) -> Result<BlobBody, Error> {
        let body = if record.size() == 0 {
            BlobBody {
                len: 0,
                stream: futures_util::stream::empty().boxed(),
            }
        } else {
            self.blobs.get(&record.blob_key(), range).await?
        };
        if range.is_none_or(|r| r.start() == 0) {
            self.report(record, reader, request).await;
        }
        Ok(body)
    }

    /// Reports a download of `record` (its bytes or a variant of them) from the first byte, as by
    /// `reader` (`None` for the holder of a signed URL or a reader without a credential).
    pub async fn report(
        &self,
        record: &FileRecord,
        reader: Option<&Principal>,
        request: &RequestFacts,
    ) {
        if let Some(audit) = &self.audit {
            let (actor, owner) = match reader {
                Some(principal) => (Actor::of(principal), is_owner(principal, record)),
                None => (Actor::signed_url(record), false),
            };
            let event = audit
                .event(EventKind::Download, actor, record, request)
                .with_owner(owner);
            audit.report(self.access.repo(), event).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::blob_store::MockBlobStore;
    use crate::ports::clock::MockClock;
    use crate::ports::file_repository::{MockFileRepository, RepoError};
    use crate::ports::url_signer::MockUrlSigner;
    use crate::use_cases::fixtures::user;
    use stowage_domain::AccessPolicy;

    #[tokio::test]
    async fn unknown_id_makes_no_blob_call() {
        let mut repo = MockFileRepository::new();
        repo.expect_get().returning(|_| Err(RepoError::NotFound));
        let mut blobs = MockBlobStore::new();
        blobs.expect_get().times(0);
        let download = DownloadFile::new(
            ReadAccess::new(Arc::new(repo), None, AccessPolicy::Owner),
            Arc::new(blobs),
            Arc::new(MockUrlSigner::new()),
            Arc::new(MockClock::new()),
        );
        let err = download
            .authorize(&user(1, 1), FileId::new_random(), &RequestFacts::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound));
    }

    #[tokio::test]
    async fn without_a_credential_only_a_public_file_is_served() {
        let private = crate::use_cases::fixtures::record(Some(1), 1);
        let public = private
            .clone()
            .with_visibility(stowage_domain::Visibility::Public);
        for (stored, served) in [(Ok(public), true), (Ok(private), false), (Err(()), false)] {
            let mut repo = MockFileRepository::new();
            repo.expect_get().returning(move |_| match &stored {
                Ok(record) => Ok(record.clone()),
                Err(()) => Err(RepoError::NotFound),
            });
            let download = DownloadFile::new(
                ReadAccess::new(Arc::new(repo), None, AccessPolicy::Owner),
                Arc::new(MockBlobStore::new()),
                Arc::new(MockUrlSigner::new()),
                Arc::new(MockClock::new()),
            );

            let got = download.authorize_anonymous(FileId::new_random()).await;

            match got {
                Ok(record) => assert!(served && record.is_public()),
                Err(e) => assert!(!served && matches!(e, Error::Unauthenticated), "{e:?}"),
            }
        }
    }

    #[tokio::test]
    async fn forged_signature_makes_no_database_call() {
        let mut repo = MockFileRepository::new();
        repo.expect_get().times(0);
        let mut signer = MockUrlSigner::new();
        signer.expect_verify().returning(|_, _, _, _| false);
        let mut clock = MockClock::new();
        clock
            .expect_now()
            .returning(|| time::OffsetDateTime::UNIX_EPOCH);
        let download = DownloadFile::new(
            ReadAccess::new(Arc::new(repo), None, AccessPolicy::Owner),
            Arc::new(MockBlobStore::new()),
            Arc::new(signer),
            Arc::new(clock),
        );
        let err = download
            .authorize_signed(FileId::new_random(), i64::MAX, "", "00")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidSignature));
    }

    #[tokio::test]
    async fn an_empty_file_is_served_without_asking_the_store() {
        let fixture = crate::use_cases::fixtures::record(Some(1), 1);
        let empty = FileRecord::new(stowage_domain::FileRecordParts {
            id: fixture.id(),
            filename: fixture.filename().clone(),
            content_type: fixture.content_type().clone(),
            size: 0,
            sha256: None,
            created_at: fixture.created_at(),
            account_id: fixture.account_id(),
            user_id: fixture.user_id(),
        });
        let mut blobs = MockBlobStore::new();
        blobs.expect_get().times(0);
        blobs.expect_head().times(0);
        let download = DownloadFile::new(
            ReadAccess::new(
                Arc::new(MockFileRepository::new()),
                None,
                AccessPolicy::Owner,
            ),
            Arc::new(blobs),
            Arc::new(MockUrlSigner::new()),
            Arc::new(MockClock::new()),
        );

        download.check(&empty).await.unwrap();
        let body = download
            .open(&empty, None, None, &RequestFacts::default())
            .await
            .unwrap();

        assert_eq!(body.len, 0);
        assert_eq!(body.stream.count().await, 0);
    }
}
