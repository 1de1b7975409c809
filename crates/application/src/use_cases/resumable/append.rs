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
use crate::use_cases::upload_policy::policy_of;
use stowage_domain::Principal;

/// What the bytes of one request told on their way to the store.
#[derive(Default)]
struct Taken {
    digest: ResumableDigest,
    checksum: Option<ChecksumVerifier>,
    head: Vec<u8>,
    seen: u64,
    /// Where the store may stop short (ascending, in bytes of the body), not reached yet.
    checkpoints: std::collections::VecDeque<u64>,
    /// The digest state at each checkpoint passed.
    snapshots: Vec<(u64, Vec<u8>)>,
}

impl Taken {
    fn feed(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        // The digest is saved exactly where the store may end short, so that an interrupted
        // append can be committed up to the part it kept.
        while let Some(&at) = self.checkpoints.front() {
            let Some(before) = at
                .checked_sub(self.seen)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n <= rest.len())
            else {
                break;
            };
            self.digest.update(&rest[..before]);
            self.seen += before as u64;
            rest = &rest[before..];
            self.snapshots.push((at, self.digest.save()));
            self.checkpoints.pop_front();
        }
        self.digest.update(rest);
        self.seen += rest.len() as u64;
    }

    /// The digest after the first `written` bytes of the body, when it can be known.
    fn digest_at(&self, written: u64) -> Option<ResumableDigest> {
        if written == self.seen {
            return Some(self.digest.clone());
        }
        let (_, state) = self.snapshots.iter().find(|(at, _)| *at == written)?;
        ResumableDigest::restore(state).ok()
    }
}

/// Wraps `body` so that every byte it yields is fed to `taken`.
fn tap(body: ByteStream, taken: Arc<Mutex<Taken>>) -> ByteStream {
    body.map(move |chunk| {
        if let Ok(bytes) = &chunk {
            let mut taken = taken.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(checksum) = &mut taken.checksum {
                checksum.update(bytes);
            }
            let room = SNIFF_LEN.saturating_sub(taken.head.len());
            let end = room.min(bytes.len());
            taken.head.extend_from_slice(&bytes[..end]);
            taken.feed(bytes);
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
                Some(0) => self.described(&upload).await,
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
            let id = upload.id;
            let complete =
                self.complete_locked(&request.principal, upload, token, &request.request);
            return self.held(id, token, complete).await;
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
        let key = BlobKey::new(upload.account_id, upload.file_id);
        let store = self.ports.store.as_ref();
        let checkpoints = store.checkpoints(&upload.store, upload.offset, body.length);
        let taken = Arc::new(Mutex::new(Taken {
            digest: ResumableDigest::restore(&upload.digest)
                .map_err(|e| Error::Internal(Box::new(e)))?,
            checksum: body.checksum.as_ref().map(ChecksumVerifier::new),
            head: upload.head.clone(),
            checkpoints: checkpoints.into(),
            ..Taken::default()
        }));
        let bytes = tap(limit_stream(body.bytes, room), taken.clone());
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
        let mut taken = std::mem::take(&mut *taken.lock().unwrap_or_else(PoisonError::into_inner));
        // A checksum covers the whole body: a part of it cannot be checked.
        let checked = match taken.checksum.take() {
            None => true,
            Some(checksum) => appended.interrupted.is_none() && checksum.matches(),
        };
        // Bytes that reached the digest but not the store cannot be taken back out of it,
        // except where it was saved.
        let digest = taken.digest_at(appended.written);
        let (Some(digest), true) = (digest, checked) else {
            let interrupted = appended.interrupted.or_else(|| {
                checked.then(|| BlobError::Unavailable("bytes lost on the way to the store".into()))
            });
            return Ok((None, interrupted));
        };
        let kept = upload.offset + appended.written;
        taken
            .head
            .truncate(usize::try_from(kept).unwrap_or(usize::MAX));
        let progress = ResumableProgress {
            length,
            offset: kept,
            store: appended.progress,
            digest: digest.save(),
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

#[cfg(test)]
mod taken_tests {
    use super::*;

    #[test]
    fn the_digest_is_known_at_every_checkpoint_and_at_the_end() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let mut taken = Taken {
            checkpoints: vec![100, 4_096, 4_097, 9_999].into(),
            ..Taken::default()
        };
        for chunk in data.chunks(1_000) {
            taken.feed(chunk);
        }
        for at in [100usize, 4_096, 4_097, 9_999, 10_000] {
            let mut expected = ResumableDigest::new();
            expected.update(&data[..at]);
            let digest = taken.digest_at(at as u64).expect("a checkpoint");
            assert_eq!(digest.finish(), expected.finish(), "at {at}");
        }
        assert!(taken.digest_at(5_000).is_none());
    }
}
