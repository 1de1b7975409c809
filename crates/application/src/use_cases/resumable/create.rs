//! Creating an upload (tus `POST`): a new upload, optionally with its first bytes, or the final
//! concatenation of partial uploads.

use futures_util::StreamExt;
use futures_util::stream;
use stowage_domain::{BlobKey, FileId, Principal, SNIFF_LEN};

use super::{
    AppendBody, CreateResumable, ResumableStatus, ResumableUploads, UploadMetadata, is_refusal,
};
use crate::checksum::ResumableDigest;
use crate::error::Error;
use crate::events::RequestFacts;
use crate::ports::{
    BlobError, ClaimToken, Concat, ConcatPart, ResumableId, ResumableLock, ResumableStage,
    ResumableUpload, StoreProgress,
};
use crate::stream::{BlobDigester, ByteStream};
use crate::use_cases::keys::key_holder;
use crate::use_cases::upload_policy::policy_of;

/// What a creation says of the upload it makes.
struct NewUpload {
    length: Option<u64>,
    metadata: Option<String>,
    concat: Option<Concat>,
}

impl ResumableUploads {
    /// Creates an upload (tus `POST`). With bytes, appends them at once; an upload of length 0,
    /// or one whose creation brings every byte, is completed at once; a final concatenation is
    /// assembled from its partial uploads and completed.
    ///
    /// # Errors
    /// `Validation` (bad metadata, unknown policy, partial uploads that are not this
    /// principal's complete partials), `TooLarge`, `KeyExists`, `StorageUnavailable`,
    /// `DatabaseUnavailable`; an append's or a completion's errors (the upload is then gone).
    #[tracing::instrument(name = "create_resumable", skip_all)]
    pub async fn create(&self, request: CreateResumable) -> Result<ResumableStatus, Error> {
        // Taken apart: the body stream is not `Sync`, so no reference to the whole may be held
        // across an await.
        let CreateResumable {
            principal,
            length,
            metadata: raw_metadata,
            concat,
            body,
            request,
        } = request;
        let new = NewUpload {
            length,
            metadata: raw_metadata,
            concat,
        };
        let metadata = UploadMetadata::parse(new.metadata.as_deref())?;
        let policy = policy_of(&self.settings.policies, metadata.policy.as_deref())?;
        // Stripping writes the stored file again, after the bytes it was assembled from are
        // gone: a completion that failed after it could not start over.
        if policy.is_some_and(|p| p.strip_metadata) {
            return Err(Error::Validation(format!(
                "policy '{}' strips metadata, which a resumable upload cannot have done: \
                 upload the file with POST /files",
                metadata.policy.as_deref().unwrap_or_default()
            )));
        }
        // A partial upload is judged by the final one; only the global limit applies to it.
        let limit = match new.concat {
            Some(Concat::Partial) => self.settings.max_bytes,
            _ => self.limit(policy),
        };
        if let Some(Concat::Final(partials)) = &new.concat {
            return self
                .concatenate(&principal, &new, partials, limit, &request)
                .await;
        }
        if let Some(length) = new.length
            && length > limit
        {
            return Err(Error::TooLarge { limit });
        }
        // Refused before any byte is stored when the key is visibly someone else's.
        if let Some(key) = &metadata.key {
            key_holder(self.ports.files.as_ref(), &principal, key).await?;
        }
        let upload = self.begin(&principal, new).await?;
        let body = match body {
            Some(body) => body,
            None if upload.length == Some(0) => AppendBody::empty(),
            None => return Ok(ResumableStatus::of(&upload, None)),
        };
        let result = self
            .append_first(&principal, upload.clone(), body, &request)
            .await;
        if result.is_err() {
            // The client learns no URL from a failed creation: nothing could resume it.
            self.discard(&upload).await;
        }
        result
    }

    /// Stores a new, empty upload: its bytes' place in the store, then its state.
    async fn begin(&self, principal: &Principal, new: NewUpload) -> Result<ResumableUpload, Error> {
        let file_id = FileId::new_random();
        let key = BlobKey::new(principal.account_id(), file_id);
        let store = self.ports.store.begin(&key).await?;
        let upload = ResumableUpload {
            id: ResumableId::new_random(),
            file_id,
            account_id: principal.account_id(),
            user_id: principal.user_id(),
            principal_kind: principal.kind(),
            length: new.length,
            offset: 0,
            metadata: new.metadata,
            concat: new.concat,
            store,
            digest: ResumableDigest::new().save(),
            head: Vec::new(),
            stage: ResumableStage::Open,
            expires_at: self.expiry(),
        };
        if let Err(e) = self.ports.uploads.insert(&upload).await {
            if let Err(abort) = self.ports.store.abort(&key, &upload.store).await {
                tracing::warn!(error = %abort, "bytes of an upload never created left behind; gc will remove them");
            }
            return Err(e.into());
        }
        Ok(upload)
    }

    /// Creates the final upload of `partials` and completes it into a file: the store joins
    /// their bytes where it can, else they are streamed once; the partial uploads then go.
    async fn concatenate(
        &self,
        principal: &Principal,
        new: &NewUpload,
        partials: &[ResumableId],
        limit: u64,
        request: &RequestFacts,
    ) -> Result<ResumableStatus, Error> {
        let parts = self.partials(principal, partials).await?;
        let length = parts.iter().map(|p| p.offset).sum::<u64>();
        if length > limit {
            return Err(Error::TooLarge { limit });
        }
        let mut head = Vec::with_capacity(SNIFF_LEN);
        for part in &parts {
            let room = SNIFF_LEN.saturating_sub(head.len());
            head.extend_from_slice(&part.head[..room.min(part.head.len())]);
        }
        let file_id = FileId::new_random();
        let upload = ResumableUpload {
            id: ResumableId::new_random(),
            file_id,
            account_id: principal.account_id(),
            user_id: principal.user_id(),
            principal_kind: principal.kind(),
            length: Some(length),
            offset: length,
            metadata: new.metadata.clone(),
            concat: new.concat.clone(),
            store: StoreProgress::default(),
            digest: Vec::new(),
            head,
            stage: ResumableStage::Open,
            expires_at: self.expiry(),
        };
        let metadata = match self.judge(principal, &upload).await {
            Ok(metadata) => metadata,
            Err(e) => {
                if is_refusal(&e) {
                    for part in &parts {
                        self.discard(part).await;
                    }
                }
                return Err(e);
            }
        };
        self.ports.uploads.insert(&upload).await?;
        let token = ClaimToken::new_random();
        let ResumableLock::Locked(upload) = self.lock(upload.id, token).await? else {
            return Err(Error::UploadLocked);
        };
        // The partials are held too: a DELETE or another final upload must not take their
        // bytes away while they are joined.
        let mut held = Vec::with_capacity(parts.len());
        for part in &parts {
            match self.lock(part.id, token).await {
                Ok(ResumableLock::Locked(_)) => held.push(part.id),
                Ok(ResumableLock::Busy) | Err(_) => {
                    for id in held {
                        self.unlock(id, token).await;
                    }
                    self.unlock(upload.id, token).await;
                    if let Err(e) = self.ports.uploads.delete(upload.id).await {
                        tracing::warn!(error = %e, "a failed final upload stays until it expires");
                    }
                    return Err(Error::UploadLocked);
                }
            }
        }
        let assemble = self.assemble(principal, &upload, metadata, &parts, token, request);
        let result = self.held(upload.id, token, assemble).await;
        match &result {
            Ok(_) => {
                self.unlock(upload.id, token).await;
                for part in &parts {
                    self.discard(part).await;
                }
            }
            Err(e) => {
                for id in held {
                    self.unlock(id, token).await;
                }
                if let Err(e) = self.ports.uploads.delete(upload.id).await {
                    tracing::warn!(error = %e, "a failed final upload stays until it expires");
                }
                // A file the rules refuse (an image over the pixel limit) ends its partials too.
                if is_refusal(e) {
                    for part in &parts {
                        self.discard(part).await;
                    }
                }
            }
        }
        result
    }

    /// Joins the bytes of `parts` under the final upload's blob and records its file.
    async fn assemble(
        &self,
        principal: &Principal,
        upload: &ResumableUpload,
        metadata: UploadMetadata,
        parts: &[ResumableUpload],
        token: ClaimToken,
        request: &RequestFacts,
    ) -> Result<ResumableStatus, Error> {
        let key = BlobKey::new(upload.account_id, upload.file_id);
        // Empty pieces add nothing, and a store may keep no blob for them.
        let pieces: Vec<ConcatPart> = parts
            .iter()
            .filter(|p| p.offset > 0)
            .map(|p| ConcatPart {
                key: BlobKey::new(p.account_id, p.file_id),
                size: p.offset,
            })
            .collect();
        let copied = !pieces.is_empty() && self.ports.store.concatenate(&key, &pieces).await?;
        let sha256 = if copied {
            self.digest_of(&key).await?
        } else {
            let joined = self.joined(pieces);
            self.ports
                .blobs
                .put(&key, joined, Some(upload.offset))
                .await?
                .sha256
        };
        let record = self.file_of(upload, metadata, sha256);
        let record = match self.stored_rules(upload, record).await {
            Ok(record) => record,
            Err(e) => {
                if let Err(delete) = self.ports.blobs.delete(&key).await {
                    tracing::warn!(error = %delete, "blob of a refused final upload left behind; gc will remove it");
                }
                return Err(e);
            }
        };
        self.keep_file(principal, upload, &record, request).await?;
        let upload = match self.mark_completed(upload, token).await {
            Ok(upload) => upload,
            Err(e) => {
                tracing::warn!(error = %e, "a completed final upload could not be marked completed");
                upload.clone()
            }
        };
        Ok(ResumableStatus::of(&upload, Some(record)))
    }

    /// The partial uploads a final one names: each this principal's, complete, named once.
    async fn partials(
        &self,
        principal: &Principal,
        ids: &[ResumableId],
    ) -> Result<Vec<ResumableUpload>, Error> {
        let invalid = |reason: &str| Error::Validation(reason.to_owned());
        if ids.is_empty() {
            return Err(invalid("Upload-Concat: final names no partial upload"));
        }
        let mut parts: Vec<ResumableUpload> = Vec::with_capacity(ids.len());
        for id in ids {
            if parts.iter().any(|p| p.id == *id) {
                return Err(invalid("Upload-Concat: final names a partial upload twice"));
            }
            let part = match self.owned(principal, *id).await {
                Ok(part) => part,
                Err(Error::UploadNotFound | Error::UploadExpired) => {
                    return Err(invalid(
                        "Upload-Concat: final names an unknown partial upload",
                    ));
                }
                Err(e) => return Err(e),
            };
            if part.concat != Some(Concat::Partial) || part.stage != ResumableStage::Completed {
                return Err(invalid(
                    "Upload-Concat: final names an upload that is not a complete partial upload",
                ));
            }
            parts.push(part);
        }
        Ok(parts)
    }

    /// The blobs of `pieces`, one after the other, as one stream.
    fn joined(&self, pieces: Vec<ConcatPart>) -> ByteStream {
        let blobs = self.ports.blobs.clone();
        stream::iter(pieces)
            .then(move |piece| {
                let blobs = blobs.clone();
                async move {
                    match blobs.get(&piece.key, None).await {
                        Ok(body) => body.stream,
                        Err(e) => stream::once(async move { Err(body_error(e)) }).boxed(),
                    }
                }
            })
            .flatten()
            .boxed()
    }

    /// The SHA-256 of the blob under `key`, read once.
    async fn digest_of(&self, key: &BlobKey) -> Result<stowage_domain::Sha256Digest, Error> {
        let mut body = self.ports.blobs.get(key, None).await?.stream;
        let mut digest = BlobDigester::new();
        while let Some(chunk) = body.next().await {
            digest.update(&chunk?);
        }
        Ok(digest.finish().sha256)
    }
}

/// A failed read of a piece, as the error of the joined stream.
fn body_error(e: BlobError) -> crate::stream::BodyError {
    match e {
        BlobError::Body(body) => body,
        other => crate::stream::BodyError::Backend(Box::new(other)),
    }
}
