//! Completing an upload whose every byte is in: the upload rules, the store's finish, the record.

use stowage_domain::{
    BlobKey, ContentType, FileRecord, FileRecordParts, Filename, Principal, Sha256Digest,
};

use super::{ResumableStatus, ResumableUploads, UploadMetadata, is_refusal};
use crate::checksum::ResumableDigest;
use crate::error::Error;
use crate::events::RequestFacts;
use crate::ports::{
    ClaimToken, Concat, RepoError, ResumableProgress, ResumableStage, ResumableUpload,
};
use crate::use_cases::keys::{key_holder, record_upload};
use crate::use_cases::upload_file::creation_time;
use crate::use_cases::upload_policy::{apply_to_stored, policy_of, visibility_of};
use crate::use_cases::variants::{make_policy_variants, remove_bytes};

impl ResumableUploads {
    /// Completes `upload`, whose every byte is in, under the lock `token` holds: a partial
    /// upload's bytes are finished into its blob for a later concatenation; any other becomes a
    /// file under the upload rules. A refusal ends the upload; a failure leaves it for a retry.
    pub(super) async fn complete_locked(
        &self,
        principal: &Principal,
        upload: ResumableUpload,
        token: ClaimToken,
        request: &RequestFacts,
    ) -> Result<ResumableStatus, Error> {
        let length = upload.offset;
        let key = BlobKey::new(upload.account_id, upload.file_id);
        if upload.concat == Some(Concat::Partial) {
            self.ports.store.finish(&key, &upload.store, length).await?;
            let upload = self.mark_completed(&upload, token).await?;
            return Ok(ResumableStatus::of(&upload, None));
        }
        // A completion that died after its record was stored left the file: it counts as done.
        let record = match self.ports.files.get(upload.file_id).await {
            Ok(record) => record,
            Err(RepoError::NotFound) => self.record(principal, &upload, request).await?,
            Err(e) => return Err(e.into()),
        };
        let upload = match self.mark_completed(&upload, token).await {
            Ok(upload) => upload,
            Err(e) => {
                // The file is recorded: the next request that sees the upload settles it.
                tracing::warn!(error = %e, "a completed resumable upload could not be marked completed");
                upload
            }
        };
        Ok(ResumableStatus::of(&upload, Some(record)))
    }

    /// Judges `upload` by the upload rules, finishes its bytes into its blob and records its
    /// file. A refusal ends the upload.
    async fn record(
        &self,
        principal: &Principal,
        upload: &ResumableUpload,
        request: &RequestFacts,
    ) -> Result<FileRecord, Error> {
        let record = match self.record_of(principal, upload).await {
            Ok(record) => record,
            Err(e) if is_refusal(&e) => return self.refuse(upload, e).await,
            Err(e) => return Err(e),
        };
        let key = BlobKey::new(upload.account_id, upload.file_id);
        self.ports
            .store
            .finish(&key, &upload.store, upload.offset)
            .await?;
        let record = match self.stored_rules(upload, record).await {
            Ok(record) => record,
            Err(e) if is_refusal(&e) => {
                // Finished already: its blob goes with it.
                if let Err(delete) = self.ports.blobs.delete(&key).await {
                    tracing::warn!(error = %delete, "blob of a refused resumable upload left behind; gc will remove it");
                }
                return self.refuse(upload, e).await;
            }
            Err(e) => return Err(e),
        };
        self.keep_file(principal, upload, &record, request).await?;
        Ok(record)
    }

    /// `record` once its policy's image rules are applied to its blob, now in place (the pixel
    /// limit read from the header, the metadata stripped).
    pub(super) async fn stored_rules(
        &self,
        upload: &ResumableUpload,
        record: FileRecord,
    ) -> Result<FileRecord, Error> {
        let metadata = UploadMetadata::parse(upload.metadata.as_deref())?;
        let Some(policy) = policy_of(&self.settings.policies, metadata.policy.as_deref())? else {
            return Ok(record);
        };
        let blobs = self.ports.blobs.as_ref();
        let key = record.blob_key();
        let rewritten = apply_to_stored(policy, blobs, &key, &upload.head, record.size()).await?;
        let record = match rewritten {
            Some(stored) => record.with_content(stored.size, stored.sha256),
            None => record,
        };
        make_policy_variants(self.variants.as_ref(), policy, &record).await?;
        Ok(record)
    }

    /// Records `record`, whose blob is in place; a refusal (the key taken meanwhile) removes the
    /// blob and ends the upload.
    pub(super) async fn keep_file(
        &self,
        principal: &Principal,
        upload: &ResumableUpload,
        record: &FileRecord,
        request: &RequestFacts,
    ) -> Result<(), Error> {
        let files = self.ports.files.as_ref();
        let blobs = self.ports.blobs.as_ref();
        let audit = self.audit.as_ref();
        let Err(e) = record_upload(files, blobs, audit, principal, record, request).await else {
            return Ok(());
        };
        if is_refusal(&e) {
            // The blob, and the variants a policy made of it.
            remove_bytes(blobs, record).await;
            if let Err(delete) = self.ports.uploads.delete(upload.id).await {
                tracing::warn!(error = %delete, "a refused resumable upload stays until it expires");
            }
        }
        Err(e)
    }

    /// The file `upload` becomes, judged by the upload rules (policy, size, type by its first
    /// bytes, key), before any byte is finished.
    async fn record_of(
        &self,
        principal: &Principal,
        upload: &ResumableUpload,
    ) -> Result<FileRecord, Error> {
        let metadata = self.judge(principal, upload).await?;
        let sha256 = ResumableDigest::restore(&upload.digest)
            .map_err(|e| Error::Internal(Box::new(e)))?
            .finish();
        Ok(self.file_of(upload, metadata, sha256))
    }

    /// Checks `upload`'s file against the upload rules: policy, size, type by its first bytes
    /// and key; returns its metadata.
    pub(super) async fn judge(
        &self,
        principal: &Principal,
        upload: &ResumableUpload,
    ) -> Result<UploadMetadata, Error> {
        let metadata = UploadMetadata::parse(upload.metadata.as_deref())?;
        let policy = policy_of(&self.settings.policies, metadata.policy.as_deref())?;
        let limit = self.limit(policy);
        if upload.offset > limit {
            return Err(Error::TooLarge { limit });
        }
        if let Some(policy) = policy {
            policy.check(&upload.head)?;
        }
        if let Some(key) = &metadata.key {
            key_holder(self.ports.files.as_ref(), principal, key).await?;
        }
        Ok(metadata)
    }

    /// The record of `upload`'s file.
    pub(super) fn file_of(
        &self,
        upload: &ResumableUpload,
        metadata: UploadMetadata,
        sha256: Sha256Digest,
    ) -> FileRecord {
        // Judged already: an unknown name was refused before.
        let policy = policy_of(&self.settings.policies, metadata.policy.as_deref())
            .ok()
            .flatten();
        let visibility = visibility_of(metadata.visibility, policy);
        FileRecord::new(FileRecordParts {
            id: upload.file_id,
            filename: Filename::sanitize(metadata.filename.as_deref().unwrap_or_default()),
            content_type: ContentType::resolve(metadata.declared_type.as_deref(), &upload.head),
            size: upload.offset,
            sha256: Some(sha256),
            created_at: creation_time(self.ports.clock.now()),
            account_id: upload.account_id,
            user_id: upload.user_id,
        })
        .with_key(metadata.key)
        .with_visibility(visibility)
    }

    /// Marks `upload` completed under the lock `token` holds.
    pub(super) async fn mark_completed(
        &self,
        upload: &ResumableUpload,
        token: ClaimToken,
    ) -> Result<ResumableUpload, Error> {
        let progress = ResumableProgress {
            length: Some(upload.offset),
            offset: upload.offset,
            store: upload.store.clone(),
            digest: upload.digest.clone(),
            head: upload.head.clone(),
            stage: ResumableStage::Completed,
            expires_at: self.expiry(),
        };
        if !self
            .ports
            .uploads
            .advance(upload.id, token, &progress)
            .await?
        {
            return Err(Error::UploadLocked);
        }
        Ok(ResumableUpload {
            length: progress.length,
            stage: progress.stage,
            expires_at: progress.expires_at,
            ..upload.clone()
        })
    }
}
