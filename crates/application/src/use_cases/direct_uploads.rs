//! Direct uploads: the client sends a file's bytes to the bucket on a presigned URL, then asks
//! Stowage to check the stored object and record it as a file.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use stowage_domain::{BlobKey, FileId, FileKey, Filename, Principal, Sha256Digest, Visibility};
use time::OffsetDateTime;

use crate::error::Error;
use crate::ports::{
    BlobStore, Clock, DirectUpload, DirectUploadId, DirectUploadRepository, DirectUploadStore,
    FileRepository, PresignedRequest,
};
use crate::use_cases::UploadPolicy;
use crate::use_cases::keys::key_holder;
pub(crate) use crate::use_cases::upload_policy::policy_of;

/// How long one completion holds its upload; a holder that died frees it after this.
const COMPLETION_LEASE: Duration = Duration::from_secs(300);
/// S3's most parts per multipart upload.
const MAX_PARTS: u64 = 10_000;
/// Multipart beyond this many parts of the store's part size...
const SINGLE_PUT_PARTS: u64 = 1_000;
/// ...or beyond S3's largest single `PUT` (and `CopyObject`, which completion uses).
const MAX_SINGLE_PUT: u64 = 5 * 1024 * 1024 * 1024;
/// The longest a presigned URL may live (S3's SigV4 allows a week; a day is plenty).
const MAX_LIFETIME: Duration = Duration::from_secs(86_400);

/// What everything about direct uploads needs.
#[derive(Clone)]
pub struct DirectUploadPorts {
    /// Where files are recorded.
    pub files: Arc<dyn FileRepository>,
    /// Where the bytes are read (and removed).
    pub blobs: Arc<dyn BlobStore>,
    /// Where the bytes are written by the client.
    pub store: Arc<dyn DirectUploadStore>,
    /// Where started uploads wait.
    pub uploads: Arc<dyn DirectUploadRepository>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}

/// A direct upload the client asks to start.
#[derive(Debug)]
pub struct StartDirectRequest {
    /// Who uploads.
    pub principal: Principal,
    /// The client's file name, unsanitised.
    pub filename: String,
    /// The declared content type, sent with the bytes.
    pub content_type: String,
    /// The exact size in bytes.
    pub size: u64,
    /// The digest of the bytes, when the client knows it.
    pub sha256: Option<Sha256Digest>,
    /// How long the URLs work.
    pub lifetime: Duration,
    /// The upload policy to apply.
    pub policy: Option<String>,
    /// The key to store the file under.
    pub key: Option<FileKey>,
    /// Who may read the file; `None` leaves it to the policy.
    pub visibility: Option<Visibility>,
    /// Presigned multipart part URLs even when one `PUT` would do.
    pub multipart: bool,
}

/// Where and how the client sends the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectTarget {
    /// One `PUT` of the whole file.
    Put(PresignedRequest),
    /// One `PUT` per part, each `part_size` bytes but the last; completion takes their `ETag`s.
    Multipart {
        /// Bytes per part (the last may be smaller).
        part_size: u64,
        /// The part URLs, numbered from 1.
        parts: Vec<(u32, PresignedRequest)>,
    },
}

/// A started direct upload, as the client needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectTicket {
    /// The id to complete it with.
    pub id: DirectUploadId,
    /// Where the bytes go.
    pub target: DirectTarget,
    /// When the URLs stop working.
    pub expires_at: OffsetDateTime,
}

/// `POST /files/direct`: checks what can be checked before a byte is sent and presigns the writes.
pub struct StartDirectUpload {
    ports: DirectUploadPorts,
    max_bytes: u64,
    policies: HashMap<String, UploadPolicy>,
}

impl StartDirectUpload {
    /// Starts uploads of at most `max_bytes`, with the named `policies` (those of uploads).
    pub fn new(
        ports: DirectUploadPorts,
        max_bytes: u64,
        policies: HashMap<String, UploadPolicy>,
    ) -> Self {
        Self {
            ports,
            max_bytes,
            policies,
        }
    }

    /// Records the upload and presigns where its bytes go.
    ///
    /// # Errors
    /// `Validation` (unknown policy, a lifetime outside 1 s..=1 day), `TooLarge`, `KeyExists`, `StorageUnavailable`,
    /// `DatabaseUnavailable`.
    #[tracing::instrument(name = "start_direct_upload", skip_all, fields(file_id = tracing::field::Empty, size = request.size))]
    pub async fn execute(&self, request: StartDirectRequest) -> Result<DirectTicket, Error> {
        if request.lifetime < Duration::from_secs(1) || request.lifetime > MAX_LIFETIME {
            return Err(Error::Validation(
                "expires_in must be from 1 to 86400 seconds".to_owned(),
            ));
        }
        let policy = policy_of(&self.policies, request.policy.as_deref())?;
        let limit = policy.map_or(self.max_bytes, |p| p.max_bytes.min(self.max_bytes));
        if request.size > limit {
            return Err(Error::TooLarge { limit });
        }
        if let Some(key) = &request.key {
            key_holder(self.ports.files.as_ref(), &request.principal, key).await?;
        }
        let store = self.ports.store.as_ref();
        let part_size = store.part_size().max(1);
        let single_put_max = part_size
            .saturating_mul(SINGLE_PUT_PARTS)
            .min(MAX_SINGLE_PUT);
        let multipart = request.multipart || request.size > single_put_max;
        // Stripping writes the stored object again; only a single PUT's staged original lets a
        // completion that failed after it start over from the client's bytes.
        if multipart && policy.is_some_and(|p| p.strip_metadata) {
            return Err(Error::Validation(format!(
                "policy '{}' strips metadata, which a multipart direct upload cannot have done: \
                 send one PUT (multipart: false) or upload with POST /files",
                request.policy.as_deref().unwrap_or_default()
            )));
        }
        let part_count = request.size.div_ceil(part_size).max(1);
        if multipart && part_count > MAX_PARTS {
            return Err(Error::TooLarge {
                limit: part_size * MAX_PARTS,
            });
        }
        let file_id = FileId::new_random();
        tracing::Span::current().record("file_id", tracing::field::display(file_id));
        let blob = BlobKey::new(request.principal.account_id(), file_id);
        let upload = DirectUpload {
            id: DirectUploadId::new_random(),
            file_id,
            account_id: request.principal.account_id(),
            user_id: request.principal.user_id(),
            principal_kind: request.principal.kind(),
            filename: Filename::sanitize(&request.filename),
            declared_type: request.content_type,
            size: request.size,
            sha256: request.sha256,
            policy: request.policy,
            key: request.key,
            visibility: request.visibility,
            multipart: None,
            expires_at: whole_second(self.ports.clock.now()) + request.lifetime,
        };
        if multipart {
            let id = store.start_multipart(&blob, &upload.declared_type).await?;
            let upload = DirectUpload {
                multipart: Some(id.clone()),
                ..upload.clone()
            };
            if let Err(e) = self.ports.uploads.insert(&upload).await {
                if let Err(abort) = store.abort_multipart(&blob, &id).await {
                    tracing::warn!(error = %abort, "multipart upload of a failed start left behind; gc will abort it");
                }
                return Err(e.into());
            }
            let mut parts = Vec::new();
            for number in 1..=u32::try_from(part_count).unwrap_or(u32::MAX) {
                // Every part has `part_size` bytes but the last, which has the rest.
                let before = u64::from(number - 1) * part_size;
                let size = request.size.saturating_sub(before).min(part_size);
                let url = store
                    .presign_part(&blob, &id, number, size, request.lifetime)
                    .await?;
                parts.push((number, url));
            }
            return Ok(DirectTicket {
                id: upload.id,
                target: DirectTarget::Multipart { part_size, parts },
                expires_at: upload.expires_at,
            });
        }
        let put = store
            .presign_put(
                &blob,
                upload.id,
                upload.size,
                &upload.declared_type,
                upload.sha256,
                request.lifetime,
            )
            .await?;
        self.ports.uploads.insert(&upload).await?;
        Ok(DirectTicket {
            id: upload.id,
            target: DirectTarget::Put(put),
            expires_at: upload.expires_at,
        })
    }
}

/// `t` without its fraction: a presigned URL's lifetime counts from the whole second it was
/// signed in, so this is when it stops working.
fn whole_second(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

mod complete;
pub use complete::CompleteDirectUpload;

#[cfg(test)]
mod tests;
