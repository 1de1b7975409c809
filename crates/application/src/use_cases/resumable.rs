//! Resumable uploads (tus 1.0): an upload is created once, its bytes are appended by any number
//! of requests on any replica, and it becomes an ordinary file when its last byte is in.
//!
//! State lives in the database and bytes in the store, never in a replica's memory between
//! requests. A request that writes holds the upload's lock (a lease in the database, renewed while
//! it runs), so two writers of one upload never interleave; a writer that dies frees the upload
//! when its lease lapses, and the upload resumes from its last committed offset.

mod append;
mod complete;
mod create;
mod metadata;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use stowage_domain::{BlobKey, FileRecord, Principal};
use time::OffsetDateTime;

use crate::checksum::Checksum;
use crate::error::Error;
use crate::events::RequestFacts;
use crate::ports::{
    BlobStore, ClaimToken, Clock, Concat, FileRepository, RepoError, ResumableId, ResumableLock,
    ResumableRepository, ResumableStage, ResumableStore, ResumableUpload,
};
use crate::stream::ByteStream;
use crate::use_cases::{Audit, UploadPolicy, Variants};

pub use metadata::UploadMetadata;

/// How long a writing request holds its upload; a holder that died frees it after this.
pub const RESUMABLE_LEASE: Duration = Duration::from_secs(20);

/// What resumable uploads need.
#[derive(Clone)]
pub struct ResumablePorts {
    /// Where files are recorded.
    pub files: Arc<dyn FileRepository>,
    /// Where finished files' bytes are read and removed.
    pub blobs: Arc<dyn BlobStore>,
    /// Where unfinished uploads' bytes wait.
    pub store: Arc<dyn ResumableStore>,
    /// Where uploads' state is kept.
    pub uploads: Arc<dyn ResumableRepository>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

/// The rules resumable uploads follow.
#[derive(Clone, Debug)]
pub struct ResumableSettings {
    /// The global upload limit in bytes.
    pub max_bytes: u64,
    /// How long an untouched upload lives.
    pub expiry: Duration,
    /// The named upload policies.
    pub policies: HashMap<String, UploadPolicy>,
}

/// An upload as a tus response describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumableStatus {
    /// Its id.
    pub id: ResumableId,
    /// Bytes received and durable.
    pub offset: u64,
    /// Its whole length; `None` while deferred.
    pub length: Option<u64>,
    /// Its `Upload-Metadata`, as sent.
    pub metadata: Option<String>,
    /// Its part in a concatenation.
    pub concat: Option<Concat>,
    /// When it expires unless touched.
    pub expires_at: OffsetDateTime,
    /// The file it became, when this request completed it.
    pub file: Option<FileRecord>,
}

impl ResumableStatus {
    fn of(upload: &ResumableUpload, file: Option<FileRecord>) -> Self {
        Self {
            id: upload.id,
            offset: upload.offset,
            length: upload.length,
            metadata: upload.metadata.clone(),
            concat: upload.concat.clone(),
            expires_at: upload.expires_at,
            file,
        }
    }
}

/// Bytes a request brings.
pub struct AppendBody {
    /// The bytes.
    pub bytes: ByteStream,
    /// Their length, as the request states it.
    pub length: Option<u64>,
    /// The checksum the client announced for them.
    pub checksum: Option<Checksum>,
}

impl AppendBody {
    /// No bytes.
    pub fn empty() -> Self {
        Self {
            bytes: Box::pin(futures_util::stream::empty()),
            length: Some(0),
            checksum: None,
        }
    }
}

/// A new upload, as a tus creation asks for it.
pub struct CreateResumable {
    /// Who uploads.
    pub principal: Principal,
    /// Its whole length; `None` when deferred (or for a final concatenation, whose length is
    /// its partials').
    pub length: Option<u64>,
    /// Its `Upload-Metadata`, as sent.
    pub metadata: Option<String>,
    /// Its part in a concatenation.
    pub concat: Option<Concat>,
    /// The first bytes (creation-with-upload).
    pub body: Option<AppendBody>,
    /// The client behind it, for events.
    pub request: RequestFacts,
}

/// Bytes for an upload, as a tus `PATCH` brings them.
pub struct AppendResumable {
    /// Who sends them.
    pub principal: Principal,
    /// The upload.
    pub id: ResumableId,
    /// The offset the client believes the upload is at.
    pub offset: u64,
    /// The upload's length, when the client declares a deferred one now.
    pub length: Option<u64>,
    /// The bytes.
    pub body: AppendBody,
    /// The client behind it, for events.
    pub request: RequestFacts,
}

/// Creates, appends to, describes and ends resumable uploads.
pub struct ResumableUploads {
    ports: ResumablePorts,
    settings: ResumableSettings,
    audit: Option<Audit>,
    variants: Option<Variants>,
}

impl ResumableUploads {
    /// Resumable uploads over `ports`, following `settings`.
    pub fn new(ports: ResumablePorts, settings: ResumableSettings) -> Self {
        Self {
            ports,
            settings,
            audit: None,
            variants: None,
        }
    }

    /// This use case, making the variants a policy names before an upload completes.
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

    /// The global upload limit in bytes (tus `Tus-Max-Size`).
    pub fn max_bytes(&self) -> u64 {
        self.settings.max_bytes
    }

    /// Describes the upload `id` (tus `HEAD`). An upload whose every byte is in but whose
    /// completion failed is completed now.
    ///
    /// # Errors
    /// `UploadNotFound` (none, or another principal's), `UploadExpired`, `DatabaseUnavailable`;
    /// a completion's errors.
    pub async fn status(
        &self,
        principal: &Principal,
        id: ResumableId,
        request: &RequestFacts,
    ) -> Result<ResumableStatus, Error> {
        let upload = self.owned(principal, id).await?;
        if upload.stage == ResumableStage::Open && upload.length == Some(upload.offset) {
            let token = ClaimToken::new_random();
            // Every byte is in but the file may not be: while another request completes the
            // upload, the client must ask again rather than take it for done.
            let ResumableLock::Locked(upload) = self.lock(id, token).await? else {
                return Err(Error::UploadLocked);
            };
            let result = self
                .held(
                    id,
                    token,
                    self.complete_locked(principal, *upload, token, request),
                )
                .await;
            self.unlock(id, token).await;
            return result;
        }
        self.described(&upload).await
    }

    /// `upload` as an answer describes it: with its file once it is one, so that a client that
    /// lost the completing answer still learns the file.
    async fn described(&self, upload: &ResumableUpload) -> Result<ResumableStatus, Error> {
        let is_file =
            upload.stage == ResumableStage::Completed && upload.concat != Some(Concat::Partial);
        let file = if is_file {
            match self.ports.files.get(upload.file_id).await {
                Ok(file) => Some(file),
                Err(RepoError::NotFound) => None,
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        Ok(ResumableStatus::of(upload, file))
    }

    /// Runs `work` while the lock `token` holds on `id` is renewed; a lock lost meanwhile stops
    /// it (`UploadLocked`).
    async fn held<T>(
        &self,
        id: ResumableId,
        token: ClaimToken,
        work: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let work = std::pin::pin!(work);
        let hold = self.ports.uploads.hold(id, token, RESUMABLE_LEASE);
        match futures_util::future::select(work, hold).await {
            futures_util::future::Either::Left((result, _)) => result,
            futures_util::future::Either::Right(((), _)) => Err(Error::UploadLocked),
        }
    }

    /// Ends the upload `id` and drops its bytes (tus termination). A completed upload's file
    /// stays: it is an ordinary file by then.
    ///
    /// # Errors
    /// `UploadNotFound`, `UploadLocked` (a request is writing it), `StorageUnavailable`,
    /// `DatabaseUnavailable`.
    pub async fn terminate(&self, principal: &Principal, id: ResumableId) -> Result<(), Error> {
        self.owned_even_expired(principal, id).await?;
        let token = ClaimToken::new_random();
        let ResumableLock::Locked(upload) = self.lock(id, token).await? else {
            return Err(Error::UploadLocked);
        };
        self.discard(&upload).await;
        Ok(())
    }

    /// The upload `id` if `principal` created it and it has not expired.
    async fn owned(
        &self,
        principal: &Principal,
        id: ResumableId,
    ) -> Result<ResumableUpload, Error> {
        let upload = self.owned_even_expired(principal, id).await?;
        if self.expired(&upload) {
            return Err(Error::UploadExpired);
        }
        Ok(upload)
    }

    /// The upload `id` if `principal` created it: another principal learns nothing of it.
    async fn owned_even_expired(
        &self,
        principal: &Principal,
        id: ResumableId,
    ) -> Result<ResumableUpload, Error> {
        match self.ports.uploads.get(id).await {
            Ok(upload) if created_by(&upload, principal) => Ok(upload),
            Ok(_) | Err(RepoError::NotFound) => Err(Error::UploadNotFound),
            Err(e) => Err(e.into()),
        }
    }

    fn expired(&self, upload: &ResumableUpload) -> bool {
        upload.expires_at <= self.ports.clock.now()
    }

    fn expiry(&self) -> OffsetDateTime {
        self.ports.clock.now() + self.settings.expiry
    }

    /// The largest file `policy` (or none) allows.
    fn limit(&self, policy: Option<&UploadPolicy>) -> u64 {
        policy.map_or(self.settings.max_bytes, |p| {
            p.max_bytes.min(self.settings.max_bytes)
        })
    }

    async fn lock(&self, id: ResumableId, token: ClaimToken) -> Result<ResumableLock, Error> {
        match self.ports.uploads.lock(id, token, RESUMABLE_LEASE).await {
            Ok(lock) => Ok(lock),
            Err(RepoError::NotFound) => Err(Error::UploadNotFound),
            Err(e) => Err(e.into()),
        }
    }

    async fn unlock(&self, id: ResumableId, token: ClaimToken) {
        if let Err(e) = self.ports.uploads.unlock(id, token).await {
            tracing::warn!(error = %e, "lock of a resumable upload kept until its lease lapses");
        }
    }

    /// Ends an upload for good: its bytes (unfinished, or a finished partial's blob) and its row.
    /// A completed upload's file is not touched.
    async fn discard(&self, upload: &ResumableUpload) {
        let key = BlobKey::new(upload.account_id, upload.file_id);
        match (upload.stage, &upload.concat) {
            // A final concatenation holds nothing unfinished in the store.
            (ResumableStage::Open, Some(Concat::Final(_))) => {}
            (ResumableStage::Open, _) => {
                if let Err(e) = self.ports.store.abort(&key, &upload.store).await {
                    tracing::warn!(error = %e, "bytes of an ended resumable upload left behind; gc will remove them");
                }
            }
            (ResumableStage::Completed, Some(Concat::Partial)) => {
                if let Err(e) = self.ports.blobs.delete(&key).await {
                    tracing::warn!(error = %e, "blob of an ended partial upload left behind; gc will remove it");
                }
            }
            (ResumableStage::Completed, _) => {}
        }
        if let Err(e) = self.ports.uploads.delete(upload.id).await {
            tracing::warn!(error = %e, "an ended resumable upload stays until it expires");
        }
    }
}

/// Whether `upload` was created by `principal` (the same kind, account and user).
fn created_by(upload: &ResumableUpload, principal: &Principal) -> bool {
    upload.account_id == principal.account_id()
        && upload.user_id == principal.user_id()
        && upload.principal_kind == principal.kind()
}

/// Errors that end an upload (the rules refuse its file), as opposed to failures worth a retry.
fn is_refusal(e: &Error) -> bool {
    matches!(
        e,
        Error::TooLarge { .. }
            | Error::UnsupportedMediaType(_)
            | Error::ImageTooLarge(_)
            | Error::UnsupportedImage(_)
            | Error::KeyExists
    )
}
