//! Completing a direct upload: the stored object checked against what was announced, then
//! recorded as an ordinary file.

use std::collections::HashMap;

use futures_util::StreamExt;
use stowage_domain::{
    BlobKey, ByteRange, ContentType, FileRecord, FileRecordParts, Principal, SNIFF_LEN,
    Sha256Digest,
};

use super::{COMPLETION_LEASE, DirectUploadPorts, policy_of};
use crate::error::Error;
use crate::events::RequestFacts;
use crate::ports::{
    BlobError, Claim, ClaimToken, DirectUpload, DirectUploadError, DirectUploadId, RepoError,
    UploadedPart,
};
use crate::stream::BlobDigester;
use crate::use_cases::keys::record_upload;
use crate::use_cases::upload_file::creation_time;
use crate::use_cases::upload_policy::{apply_to_stored, visibility_of};
use crate::use_cases::variants::make_policy_variants;
use crate::use_cases::{Audit, UploadPolicy, Variants};

/// `POST /files/direct/{upload_id}/complete`: checks the stored object and records the file.
pub struct CompleteDirectUpload {
    ports: DirectUploadPorts,
    max_bytes: u64,
    policies: HashMap<String, UploadPolicy>,
    audit: Option<Audit>,
    variants: Option<Variants>,
}

impl CompleteDirectUpload {
    /// Completes uploads under the rules [`StartDirectUpload`] started them with.
    pub fn new(
        ports: DirectUploadPorts,
        max_bytes: u64,
        policies: HashMap<String, UploadPolicy>,
    ) -> Self {
        Self {
            ports,
            max_bytes,
            policies,
            audit: None,
            variants: None,
        }
    }

    /// This use case, reporting each stored file through `audit`.
    #[must_use]
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// This use case, making the variants a policy names before an upload completes.
    #[must_use]
    pub fn with_variants(mut self, variants: Variants) -> Self {
        self.variants = Some(variants);
        self
    }

    /// Checks the object of upload `id` and records it as a file; the first completion only.
    /// An object the rules refuse is deleted, and the upload is over; a list of parts the store
    /// refuses (`DirectUploadInvalid` too) leaves the upload open for the right list.
    ///
    /// # Errors
    /// `UploadNotFound` (no such upload, or another principal's: nothing changes then),
    /// `UploadCompleted` (also while another completion runs),
    /// `DirectUploadInvalid`, `TooLarge`, `UnsupportedMediaType`, `ImageTooLarge`,
    /// `UnsupportedImage`, `KeyExists`,
    /// `StorageUnavailable`, `DatabaseUnavailable`
    /// (the upload may then be completed again).
    #[tracing::instrument(name = "complete_direct_upload", skip_all, fields(file_id = tracing::field::Empty))]
    pub async fn execute(
        &self,
        principal: &Principal,
        id: DirectUploadId,
        parts: Option<Vec<UploadedPart>>,
        request: &RequestFacts,
    ) -> Result<FileRecord, Error> {
        let uploads = self.ports.uploads.as_ref();
        // Whose it is comes first: another principal's call must change nothing.
        let upload = match uploads.get(id).await {
            Ok(upload) if started_by(&upload, principal) => upload,
            Ok(_) | Err(RepoError::NotFound) => return Err(Error::UploadNotFound),
            Err(e) => return Err(e.into()),
        };
        let token = ClaimToken::new_random();
        let upload = match uploads.claim(upload.id, token, COMPLETION_LEASE).await {
            Ok(Claim::Claimed(upload)) => upload,
            Ok(Claim::Completed(_) | Claim::Busy(_)) => return Err(Error::UploadCompleted),
            Err(RepoError::NotFound) => return Err(Error::UploadNotFound),
            Err(e) => return Err(e.into()),
        };
        tracing::Span::current().record("file_id", tracing::field::display(upload.file_id));
        let result = match self.assemble(&upload, parts).await {
            Ok(()) => self.record(principal, &upload, token, request).await,
            // A wrong list of parts leaves the upload as it was: the client may send the right one.
            Err(Assembly::Parts(e)) => {
                self.release(&upload, token).await;
                return Err(e);
            }
            Err(Assembly::Failed(e)) => Err(e),
        };
        match result {
            Ok(record) => Ok(record),
            Err(e) if is_refusal(&e) => {
                self.discard(&upload).await;
                Err(e)
            }
            Err(e) => {
                self.release(&upload, token).await;
                Err(e)
            }
        }
    }

    /// Gives the claim back after a failure worth a retry.
    async fn release(&self, upload: &DirectUpload, token: ClaimToken) {
        if let Err(e) = self.ports.uploads.release(upload.id, token).await {
            tracing::warn!(error = %e, "claim of a failed completion kept until its lease ends");
        }
    }

    /// Assembles a multipart upload's parts into its object; nothing to do for a single `PUT`.
    async fn assemble(
        &self,
        upload: &DirectUpload,
        parts: Option<Vec<UploadedPart>>,
    ) -> Result<(), Assembly> {
        let Some(multipart) = &upload.multipart else {
            return Ok(());
        };
        let blob = BlobKey::new(upload.account_id, upload.file_id);
        // Without the client's list, the store's own list of uploaded parts is used.
        let parts = parts.unwrap_or_default();
        self.ports
            .store
            .complete_multipart(&blob, multipart, &parts)
            .await
            .map_err(|e| match e {
                DirectUploadError::Parts(reason) => {
                    Assembly::Parts(Error::DirectUploadInvalid(reason))
                }
                DirectUploadError::Refused(reason) => {
                    Assembly::Failed(Error::DirectUploadInvalid(reason))
                }
                DirectUploadError::Blob(e) => Assembly::Failed(e.into()),
            })
    }

    /// The checks and the record, under the claim.
    async fn record(
        &self,
        principal: &Principal,
        upload: &DirectUpload,
        token: ClaimToken,
        request: &RequestFacts,
    ) -> Result<FileRecord, Error> {
        let blob = BlobKey::new(upload.account_id, upload.file_id);
        // A completion that died after its insert left the file behind: it counts as done.
        match self.ports.files.get(upload.file_id).await {
            Ok(_) => {
                self.ports
                    .uploads
                    .mark_completed(upload.id, Some(token))
                    .await?;
                return Err(Error::UploadCompleted);
            }
            Err(RepoError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        if upload.multipart.is_none() {
            self.promote(&blob, upload).await?;
        }
        let stored = match self.ports.store.inspect(&blob).await {
            Ok(stored) => stored,
            Err(BlobError::NotFound) => {
                return Err(Error::DirectUploadInvalid(
                    "no object was uploaded".to_owned(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if stored.size != upload.size {
            return Err(Error::DirectUploadInvalid(format!(
                "the object has {} bytes, {} were announced",
                stored.size, upload.size
            )));
        }
        let policy = policy_of(&self.policies, upload.policy.as_deref())?;
        let limit = policy.map_or(self.max_bytes, |p| p.max_bytes.min(self.max_bytes));
        if stored.size > limit {
            return Err(Error::TooLarge { limit });
        }
        let sha256 = match (&upload.sha256, &upload.multipart, &stored.sha256) {
            (None, _, _) => None,
            (Some(expected), None, Some(verified)) if verified == expected => Some(*expected),
            (Some(_), None, Some(_)) => {
                return Err(Error::DirectUploadInvalid(
                    "the object's sha256 is not the announced one".to_owned(),
                ));
            }
            // S3 keeps no full-object SHA-256 of a multipart object, and some stores report
            // none at all: then the bytes are hashed once here.
            (Some(expected), _, _) => Some(self.hashed(&blob, expected).await?),
        };
        let prefix = self.prefix(&blob, stored.size).await?;
        let (size, sha256) = match policy {
            Some(policy) => {
                policy.check(&prefix)?;
                let blobs = self.ports.blobs.as_ref();
                match apply_to_stored(policy, blobs, &blob, &prefix, stored.size).await? {
                    Some(rewritten) => (rewritten.size, Some(rewritten.sha256)),
                    None => (stored.size, sha256),
                }
            }
            None => (stored.size, sha256),
        };
        let record = FileRecord::new(FileRecordParts {
            id: upload.file_id,
            filename: upload.filename.clone(),
            content_type: ContentType::resolve(Some(&upload.declared_type), &prefix),
            size,
            sha256,
            created_at: creation_time(self.ports.clock.now()),
            account_id: upload.account_id,
            user_id: upload.user_id,
        })
        .with_key(upload.key.clone())
        .with_visibility(visibility_of(upload.visibility, policy));
        if let Some(policy) = policy {
            make_policy_variants(self.variants.as_ref(), policy, &record).await?;
        }
        let files = self.ports.files.as_ref();
        let blobs = self.ports.blobs.as_ref();
        record_upload(
            files,
            blobs,
            self.audit.as_ref(),
            principal,
            &record,
            request,
        )
        .await?;
        if let Err(e) = self
            .ports
            .uploads
            .mark_completed(upload.id, Some(token))
            .await
        {
            // The file is recorded; a later completion (or gc) finds it and settles the upload.
            tracing::warn!(error = %e, "a completed direct upload could not be marked completed");
        }
        if upload.multipart.is_none()
            && let Err(e) = self.ports.store.discard_staged(&blob, upload.id).await
        {
            tracing::warn!(error = %e, "staging object of a completed direct upload left behind; gc will remove it");
        }
        Ok(record)
    }

    /// Copies a single `PUT`'s staging object under the blob key, after a cheap size check. The
    /// checks that follow read the copy, which no presigned URL can write: bytes put on the URL
    /// later (it works until it expires) never reach the file.
    async fn promote(&self, blob: &BlobKey, upload: &DirectUpload) -> Result<(), Error> {
        let store = self.ports.store.as_ref();
        let missing = || Error::DirectUploadInvalid("no object was uploaded".to_owned());
        let staged = match store.inspect_staged(blob, upload.id).await {
            Ok(staged) => staged,
            Err(BlobError::NotFound) => return Err(missing()),
            Err(e) => return Err(e.into()),
        };
        if staged.size != upload.size {
            return Err(Error::DirectUploadInvalid(format!(
                "the object has {} bytes, {} were announced",
                staged.size, upload.size
            )));
        }
        match store.promote(blob, upload.id).await {
            Ok(()) => Ok(()),
            Err(BlobError::NotFound) => Err(missing()),
            Err(e) => Err(e.into()),
        }
    }

    /// The object's first bytes, by a ranged read.
    async fn prefix(&self, blob: &BlobKey, size: u64) -> Result<Vec<u8>, Error> {
        let want = size.min(SNIFF_LEN as u64);
        let Some(range) = want
            .checked_sub(1)
            .and_then(|end| ByteRange::new(0, end).ok())
        else {
            return Ok(Vec::new());
        };
        let mut body = self.ports.blobs.get(blob, Some(range)).await?.stream;
        let mut prefix = Vec::with_capacity(SNIFF_LEN);
        while let Some(chunk) = body.next().await {
            prefix.extend_from_slice(&chunk?);
            if prefix.len() >= SNIFF_LEN {
                break;
            }
        }
        prefix.truncate(SNIFF_LEN);
        Ok(prefix)
    }

    /// The object's SHA-256, read whole; it must be `expected`.
    async fn hashed(&self, blob: &BlobKey, expected: &Sha256Digest) -> Result<Sha256Digest, Error> {
        let mut body = self.ports.blobs.get(blob, None).await?.stream;
        let mut digest = BlobDigester::new();
        while let Some(chunk) = body.next().await {
            digest.update(&chunk?);
        }
        let actual = digest.finish().sha256;
        if actual == *expected {
            Ok(actual)
        } else {
            Err(Error::DirectUploadInvalid(
                "the object's sha256 is not the announced one".to_owned(),
            ))
        }
    }

    /// Ends a refused upload: its object (or multipart upload) and its row go.
    async fn discard(&self, upload: &DirectUpload) {
        let blob = BlobKey::new(upload.account_id, upload.file_id);
        if let Some(multipart) = &upload.multipart
            && let Err(e) = self.ports.store.abort_multipart(&blob, multipart).await
        {
            tracing::warn!(error = %e, "multipart upload of a refused direct upload left behind; gc will abort it");
        }
        if upload.multipart.is_none()
            && let Err(e) = self.ports.store.discard_staged(&blob, upload.id).await
        {
            tracing::warn!(error = %e, "staging object of a refused direct upload left behind; gc will remove it");
        }
        if let Err(e) = self.ports.blobs.delete(&blob).await {
            tracing::warn!(error = %e, "object of a refused direct upload left behind; gc will remove it");
        }
        // A refusal after its policy's variants were made (the key taken meanwhile) leaves them.
        let makes_variants = policy_of(&self.policies, upload.policy.as_deref())
            .ok()
            .flatten()
            .is_some_and(|policy| !policy.variants.is_empty());
        if makes_variants && let Err(e) = self.ports.blobs.delete_variants(&blob).await {
            tracing::warn!(error = %e, "variants of a refused direct upload left behind; gc will remove them");
        }
        if let Err(e) = self.ports.uploads.delete(upload.id).await {
            tracing::warn!(error = %e, "a refused direct upload stays until it expires");
        }
    }
}

/// Why a multipart upload was not assembled.
enum Assembly {
    /// The client's list of parts is wrong; the upload stays as it was.
    Parts(Error),
    /// Anything else: a refusal ends the upload, a failure frees it for a retry.
    Failed(Error),
}

/// Whether `upload` was started by `principal` (the same kind, account and user).
fn started_by(upload: &DirectUpload, principal: &Principal) -> bool {
    upload.account_id == principal.account_id()
        && upload.user_id == principal.user_id()
        && upload.principal_kind == principal.kind()
}

/// Errors that end an upload (the object is not acceptable), as opposed to failures worth a retry.
fn is_refusal(e: &Error) -> bool {
    matches!(
        e,
        Error::DirectUploadInvalid(_)
            | Error::TooLarge { .. }
            | Error::UnsupportedMediaType(_)
            | Error::ImageTooLarge(_)
            | Error::UnsupportedImage(_)
            | Error::KeyExists
    )
}
