//! Appending bytes (tus `PATCH`): under the upload's lock, the bytes go to the store while their
//! digest, checksum and first bytes are taken on the way; the new offset is committed only for
//! bytes that are durable and, when a checksum was announced, match it.

use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use futures_util::future::{Either, select};
use stowage_domain::{BlobKey, SNIFF_LEN};

use super::{
    AppendBody, AppendResumable, RESUMABLE_LEASE, ResumableStatus, ResumableUploads,
    UploadMetadata, is_refusal,
};
use crate::checksum::{ChecksumVerifier, ResumableDigest};
use crate::error::Error;
use crate::events::RequestFacts;
use crate::ports::{
    BlobError, ClaimToken, Concat, ResumableLock, ResumableProgress, ResumableStage,
    ResumableUpload,
};
use crate::stream::{BodyError, ByteStream, limit_stream};
use crate::use_cases::upload_file::policy_of;
use stowage_domain::Principal;

/// What the bytes of one request told on their way to the store.
struct Taken {
    digest: ResumableDigest,
    checksum: Option<ChecksumVerifier>,
    head: Vec<u8>,
    seen: u64,
}

/// Wraps `body` so that every byte it yields is fed to `taken`.
fn tap(body: ByteStream, taken: Arc<Mutex<Taken>>) -> ByteStream {
    body.map(move |chunk| {
        if let Ok(bytes) = &chunk {
            let mut taken = taken.lock().unwrap_or_else(PoisonError::into_inner);
            taken.digest.update(bytes);
            if let Some(checksum) = &mut taken.checksum {
                checksum.update(bytes);
            }
            let room = SNIFF_LEN.saturating_sub(taken.head.len());
            let end = room.min(bytes.len());
            taken.head.extend_from_slice(&bytes[..end]);
            taken.seen += bytes.len() as u64;
        }
        chunk
    })
    .boxed()
}

impl ResumableUploads {
    /// Appends a request's bytes to an upload (tus `PATCH`); the one that brings its last byte
    /// completes it into a file.
    ///
    /// # Errors
    /// `UploadNotFound`, `UploadExpired`, `AccessDenied` (a final concatenation takes no bytes),
    /// `UploadLocked` (another request writes it), `UploadOffsetMismatch`, `Validation` (a
    /// length that changes or falls short of the offset), `ChecksumMismatch` (nothing kept),
    /// `TooLarge` (over the declared length: nothing kept; over the limit: the upload is gone),
    /// `ClientAborted`/`RequestTimeout` (what arrived is kept), `StorageUnavailable`,
    /// `DatabaseUnavailable`; a completion's errors.
    #[tracing::instrument(name = "append_resumable", skip_all, fields(upload_id = %request.id))]
    pub async fn append(&self, request: AppendResumable) -> Result<ResumableStatus, Error> {
        let upload = self.owned(&request.principal, request.id).await?;
        if matches!(upload.concat, Some(Concat::Final(_))) {
            return Err(Error::AccessDenied);
        }
        let token = ClaimToken::new_random();
        let ResumableLock::Locked(upload) = self.lock(upload.id, token).await? else {
            return Err(Error::UploadLocked);
        };
        let id = upload.id;
        let result = self.append_locked(request, *upload, token).await;
        self.unlock(id, token).await;
        result
    }

    /// [`ResumableUploads::append`] once the lock is held.
    pub(super) async fn append_locked(
        &self,
        request: AppendResumable,
        upload: ResumableUpload,
        token: ClaimToken,
    ) -> Result<ResumableStatus, Error> {
        if self.expired(&upload) {
            return Err(Error::UploadExpired);
        }
        if request.offset != upload.offset {
            return Err(Error::UploadOffsetMismatch {
                offset: upload.offset,
            });
        }
        if upload.stage == ResumableStage::Completed {
            // Every byte is in: only an empty request fits.
            return match request.body.length {
                Some(0) => Ok(ResumableStatus::of(&upload, None)),
                _ => Err(Error::TooLarge {
                    limit: upload.offset,
                }),
            };
        }
        let metadata = UploadMetadata::parse(upload.metadata.as_deref())?;
        let policy = policy_of(&self.settings.policies, metadata.policy.as_deref())?;
        // A partial upload is judged by the final one; only the global limit applies to it.
        let limit = match upload.concat {
            Some(Concat::Partial) => self.settings.max_bytes,
            _ => self.limit(policy),
        };
        let length = match (upload.length, request.length) {
            (Some(known), Some(declared)) if known != declared => {
                return Err(Error::Validation("Upload-Length cannot change".to_owned()));
            }
            (None, Some(declared)) if declared < upload.offset => {
                return Err(Error::Validation(format!(
                    "Upload-Length is below the {} bytes received",
                    upload.offset
                )));
            }
            (None, Some(declared)) if declared > limit => {
                return self.refuse(&upload, Error::TooLarge { limit }).await;
            }
            (known, declared) => known.or(declared),
        };
        let room = length.unwrap_or(limit).saturating_sub(upload.offset);
        if request.body.length.is_some_and(|len| len > room) {
            return match length {
                Some(length) => Err(Error::TooLarge { limit: length }),
                None => self.refuse(&upload, Error::TooLarge { limit }).await,
            };
        }
        let (progress, interrupted) = self
            .write(&upload, token, request.body, length, room)
            .await?;
        if let Some(e) = interrupted {
            let over = matches!(e, BlobError::Body(BodyError::TooLarge { .. }));
            if over && length.is_none() {
                return self.refuse(&upload, Error::TooLarge { limit }).await;
            }
            if over {
                return Err(Error::TooLarge {
                    limit: length.unwrap_or(limit),
                });
            }
            if let Some(progress) = progress {
                self.commit(&upload, token, &progress).await?;
            }
            return Err(e.into());
        }
        let Some(progress) = progress else {
            return Err(Error::ChecksumMismatch);
        };
        let upload = self.commit(&upload, token, &progress).await?;
        if upload.length == Some(upload.offset) {
            return self
                .complete_locked(&request.principal, upload, token, &request.request)
                .await;
        }
        Ok(ResumableStatus::of(&upload, None))
    }

    /// Sends `body` to the store while the lock is renewed. Returns the progress to commit (none
    /// when nothing may be kept: bytes lost on the way, or a checksum that does not match) and
    /// why the body ended early, if it did.
    async fn write(
        &self,
        upload: &ResumableUpload,
        token: ClaimToken,
        body: AppendBody,
        length: Option<u64>,
        room: u64,
    ) -> Result<(Option<ResumableProgress>, Option<BlobError>), Error> {
        let taken = Arc::new(Mutex::new(Taken {
            digest: ResumableDigest::restore(&upload.digest)
                .map_err(|e| Error::Internal(Box::new(e)))?,
            checksum: body.checksum.as_ref().map(ChecksumVerifier::new),
            head: upload.head.clone(),
            seen: 0,
        }));
        let bytes = tap(limit_stream(body.bytes, room), taken.clone());
        let key = BlobKey::new(upload.account_id, upload.file_id);
        let store = self.ports.store.as_ref();
        let append = store.append(
            &key,
            &upload.store,
            upload.offset,
            body.length,
            length,
            bytes,
        );
        let hold = self.ports.uploads.hold(upload.id, token, RESUMABLE_LEASE);
        // A lock lost mid-way (the lease lapsed and another request took the upload) stops the
        // write: its bytes must not be committed over the new holder's.
        let appended = match select(append, hold).await {
            Either::Left((appended, _)) => appended?,
            Either::Right(((), _)) => return Err(Error::UploadLocked),
        };
        let taken = {
            let mut guard = taken.lock().unwrap_or_else(PoisonError::into_inner);
            Taken {
                digest: std::mem::take(&mut guard.digest),
                checksum: guard.checksum.take(),
                head: std::mem::take(&mut guard.head),
                seen: guard.seen,
            }
        };
        // Bytes that reached the hashes but not the store cannot be taken back out of the digest.
        let whole = appended.written == taken.seen;
        let checked = match taken.checksum {
            None => true,
            Some(checksum) => appended.interrupted.is_none() && checksum.matches(),
        };
        if !whole || !checked {
            let interrupted = appended.interrupted.or_else(|| {
                (!whole)
                    .then(|| BlobError::Unavailable("bytes lost on the way to the store".into()))
            });
            return Ok((None, interrupted));
        }
        let progress = ResumableProgress {
            length,
            offset: upload.offset + appended.written,
            store: appended.progress,
            digest: taken.digest.save(),
            head: taken.head,
            stage: ResumableStage::Open,
            expires_at: self.expiry(),
        };
        Ok((Some(progress), appended.interrupted))
    }

    /// Stores `progress` under the lock; the store then drops what the old progress needed.
    async fn commit(
        &self,
        upload: &ResumableUpload,
        token: ClaimToken,
        progress: &ResumableProgress,
    ) -> Result<ResumableUpload, Error> {
        if !self
            .ports
            .uploads
            .advance(upload.id, token, progress)
            .await?
        {
            return Err(Error::UploadLocked);
        }
        let key = BlobKey::new(upload.account_id, upload.file_id);
        self.ports
            .store
            .release(&key, &upload.store, &progress.store)
            .await;
        Ok(ResumableUpload {
            length: progress.length,
            offset: progress.offset,
            store: progress.store.clone(),
            digest: progress.digest.clone(),
            head: progress.head.clone(),
            stage: progress.stage,
            expires_at: progress.expires_at,
            ..upload.clone()
        })
    }

    /// Ends `upload` because the rules refuse its file, and answers `error`.
    pub(super) async fn refuse<T>(
        &self,
        upload: &ResumableUpload,
        error: Error,
    ) -> Result<T, Error> {
        debug_assert!(is_refusal(&error));
        self.discard(upload).await;
        Err(error)
    }

    /// Creates-with-upload: appends the creation's bytes to the upload it just made.
    pub(super) async fn append_first(
        &self,
        principal: &Principal,
        upload: ResumableUpload,
        body: AppendBody,
        request: &RequestFacts,
    ) -> Result<ResumableStatus, Error> {
        let token = ClaimToken::new_random();
        let ResumableLock::Locked(upload) = self.lock(upload.id, token).await? else {
            return Err(Error::UploadLocked);
        };
        let id = upload.id;
        let append = AppendResumable {
            principal: principal.clone(),
            id,
            offset: 0,
            length: None,
            body,
            request: request.clone(),
        };
        let result = self.append_locked(append, *upload, token).await;
        self.unlock(id, token).await;
        result
    }
}
