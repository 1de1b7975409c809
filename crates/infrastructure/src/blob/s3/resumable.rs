//! [`ResumableStore`] on S3: a tus upload is an S3 multipart upload at its blob's key, begun
//! with the upload and completed when it is finished.
//!
//! An append streams the body into parts: of announced length, each part goes into its
//! `UploadPart` as it arrives (aws-chunked, CRC32 trailer); of unknown length, one part at a time
//! is buffered. Parts are about four times the configured part size, and never below S3's 5 MiB
//! minimum except the one that ends the upload. Bytes too few for a part are kept in the store
//! as a tail object (a staging object, so listings give it as a stray) and lead the next part.
//! Neither the progress nor an append's parts touch the blob's key before the completion.

mod append;
mod finish;
mod progress;
mod streamed;

use async_trait::async_trait;
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::ChecksumAlgorithm;
use bytes::Bytes;
use futures_util::StreamExt;
use stowage_application::ports::{Appended, BlobError, ConcatPart, ResumableStore, StoreProgress};
use stowage_application::stream::ByteStream;
use stowage_domain::BlobKey;

use super::error::{error_code, is_not_found, unavailable};
use super::multipart::PartFill;
use super::{S3BlobStore, S3Layout, object_stream};
use progress::{PartRecord, Progress, TailRecord};

/// Why an upload's bytes could not be kept or assembled, beyond a failed S3 call.
#[derive(Debug, thiserror::Error)]
pub enum ResumableFailure {
    /// The progress handed back is not one this store wrote.
    #[error("the upload's store progress is unreadable")]
    Progress(#[source] serde_json::Error),
    /// The progress holds another number of bytes than the upload is to be finished with.
    #[error("the upload holds {held} bytes, not {expected}")]
    Length {
        /// Bytes in the parts and the tail.
        held: u64,
        /// Bytes the upload is finished with.
        expected: u64,
    },
    /// The kept tail object is not the one the progress recorded.
    #[error("the upload's kept tail changed or is gone")]
    TailChanged,
    /// The upload would need more parts than S3 allows.
    #[error("the upload needs more than 10000 parts")]
    TooManyParts,
    /// The completed object is not of the upload's length (a store that keeps aws-chunked
    /// framing as content).
    #[error("the completed object holds {stored} bytes, not {expected}")]
    Stored {
        /// Bytes the store reports.
        stored: u64,
        /// Bytes the upload holds.
        expected: u64,
    },
}

/// Keeps resumable uploads in the buckets of an [`S3BlobStore`].
#[derive(Clone, Debug)]
pub struct S3ResumableStore {
    store: S3BlobStore,
}

/// Where an upload's parts go.
pub(super) struct Upload {
    bucket: String,
    object: String,
    id: String,
}

impl S3ResumableStore {
    /// Resumable uploads into the buckets of `store`, with its client, layout and part size.
    pub fn new(store: S3BlobStore) -> Self {
        Self { store }
    }

    fn upload(&self, key: &BlobKey, progress: &Progress) -> Upload {
        let (bucket, object) = self.store.location(key);
        Upload {
            bucket,
            object,
            id: progress.upload_id.clone(),
        }
    }

    /// The kept tail, read back as a stream checked against its recorded size.
    async fn read_tail(
        &self,
        upload: &Upload,
        tail: &TailRecord,
    ) -> Result<(ByteStream, u64), BlobError> {
        let output = match self
            .store
            .client
            .get_object()
            .bucket(&upload.bucket)
            .key(&tail.name)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if is_not_found(&e) => {
                return Err(BlobError::Unavailable(Box::new(
                    ResumableFailure::TailChanged,
                )));
            }
            Err(e) => return Err(unavailable("GetObject", &e)),
        };
        if output.content_length().and_then(|n| u64::try_from(n).ok()) != Some(tail.size) {
            return Err(BlobError::Unavailable(Box::new(
                ResumableFailure::TailChanged,
            )));
        }
        Ok((object_stream(output.body), tail.size))
    }

    /// Reads the kept tail (fewer bytes than a part) back into `part`, charged to the budget
    /// before it is fetched.
    ///
    /// # Errors
    /// [`BlobError::Busy`] when the budget stays full (nothing is read then).
    async fn load_tail(
        &self,
        upload: &Upload,
        tail: &TailRecord,
        part: &mut PartFill,
    ) -> Result<(), BlobError> {
        let budget = &self.store.budget;
        part.reserve(usize::try_from(tail.size).unwrap_or(usize::MAX), budget)
            .await?;
        let (mut stream, size) = self.read_tail(upload, tail).await?;
        let changed = || BlobError::Unavailable(Box::new(ResumableFailure::TailChanged));
        let mut read = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BlobError::Unavailable(Box::new(e)))?;
            read += chunk.len() as u64;
            if read > size || part.push(&chunk, budget).await? < chunk.len() {
                return Err(changed());
            }
        }
        if read != size {
            return Err(changed());
        }
        Ok(())
    }

    /// Stores `bytes` as the tail ending at `end`.
    async fn put_tail(
        &self,
        upload: &Upload,
        end: u64,
        bytes: Bytes,
    ) -> Result<TailRecord, BlobError> {
        let name = progress::tail_name(&upload.object, &upload.id, end);
        let size = bytes.len() as u64;
        self.store
            .client
            .put_object()
            .bucket(&upload.bucket)
            .key(&name)
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(S3Body::from(bytes))
            .customize()
            .config_override(crc32_calculated())
            .send()
            .await
            .map_err(|e| unavailable("PutObject", &e))?;
        Ok(TailRecord { name, size })
    }

    /// Sends `bytes` held in memory as part `number`.
    async fn put_part(
        &self,
        upload: &Upload,
        number: i32,
        bytes: Bytes,
    ) -> Result<PartRecord, BlobError> {
        if number > progress::MAX_PART_NUMBER {
            return Err(BlobError::Unavailable(Box::new(
                ResumableFailure::TooManyParts,
            )));
        }
        let size = bytes.len() as u64;
        let output = self
            .store
            .client
            .upload_part()
            .bucket(&upload.bucket)
            .key(&upload.object)
            .upload_id(&upload.id)
            .part_number(number)
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(S3Body::from(bytes))
            .customize()
            .config_override(crc32_calculated())
            .send()
            .await
            .map_err(|e| unavailable("UploadPart", &e))?;
        Ok(PartRecord {
            number,
            etag: output.e_tag().unwrap_or_default().to_owned(),
            size,
            crc32: output.checksum_crc32().map(str::to_owned),
        })
    }

    /// Aborts the multipart upload; one that is gone counts as aborted.
    async fn abort_multipart(&self, upload: &Upload) -> Result<(), BlobError> {
        let client = &self.store.client;
        let aborted = client
            .abort_multipart_upload()
            .bucket(&upload.bucket)
            .key(&upload.object)
            .upload_id(&upload.id)
            .send()
            .await;
        let denied = match aborted {
            Ok(_) => return Ok(()),
            Err(e) if matches!(error_code(&e), Some("NoSuchUpload")) => return Ok(()),
            Err(e) if matches!(error_code(&e), Some("AccessDenied")) => e,
            Err(e) => return Err(unavailable("AbortMultipartUpload", &e)),
        };
        // Some stores (s3s-fs) deny an upload they no longer know instead of saying it is gone;
        // its parts tell which it is.
        let parts = client
            .list_parts()
            .bucket(&upload.bucket)
            .key(&upload.object)
            .upload_id(&upload.id)
            .max_parts(1)
            .send()
            .await;
        match parts {
            Ok(parts) if parts.parts().is_empty() => Ok(()),
            Err(e) if matches!(error_code(&e), Some("NoSuchUpload")) => Ok(()),
            _ => Err(unavailable("AbortMultipartUpload", &denied)),
        }
    }

    /// Deletes every tail object of `upload`, committed or not.
    async fn delete_tails(&self, upload: &Upload) -> Result<(), BlobError> {
        let mut pages = self
            .store
            .client
            .list_objects_v2()
            .bucket(&upload.bucket)
            .prefix(progress::tail_prefix(&upload.object, &upload.id))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) => return Err(unavailable("ListObjectsV2", &e)),
            };
            for object in page.contents() {
                if let Some(name) = object.key() {
                    self.delete_object(&upload.bucket, name).await?;
                }
            }
        }
        Ok(())
    }

    /// Deletes an object no upload needs; a failure is logged, reconciliation removes it later.
    async fn delete_quietly(&self, bucket: &str, name: &str) {
        if let Err(e) = self.delete_object(bucket, name).await {
            tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "a resumable upload's tail left behind; reconciliation will remove it");
        }
    }

    async fn delete_object(&self, bucket: &str, name: &str) -> Result<(), BlobError> {
        match self
            .store
            .client
            .delete_object()
            .bucket(bucket)
            .key(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(unavailable("DeleteObject", &e)),
        }
    }
}

#[async_trait]
impl ResumableStore for S3ResumableStore {
    async fn begin(&self, key: &BlobKey) -> Result<StoreProgress, BlobError> {
        let (bucket, object) = self.store.location(key);
        if matches!(self.store.layout, S3Layout::PerAccount { .. }) {
            self.store.ensure_bucket(&bucket).await?;
        }
        // Parts carry a CRC32 (a streamed part needs its trailer); S3 takes part checksums only
        // when the upload was created with their algorithm.
        let created = self
            .store
            .client
            .create_multipart_upload()
            .bucket(&bucket)
            .key(object)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|e| {
                if matches!(error_code(&e), Some("NoSuchBucket")) {
                    self.store.mark_ready(&bucket, false);
                }
                unavailable("CreateMultipartUpload", &e)
            })?;
        let upload_id = created.upload_id().ok_or_else(|| {
            BlobError::Unavailable("S3 CreateMultipartUpload returned no upload id".into())
        })?;
        Progress::new(upload_id.to_owned()).encode()
    }

    async fn append(
        &self,
        key: &BlobKey,
        progress: &StoreProgress,
        offset: u64,
        length: Option<u64>,
        total: Option<u64>,
        body: ByteStream,
    ) -> Result<Appended, BlobError> {
        let progress = Progress::parse(progress)?;
        self.append_bytes(key, progress, offset, length, total, body)
            .await
    }

    fn checkpoints(&self, progress: &StoreProgress, _offset: u64, length: Option<u64>) -> Vec<u64> {
        Progress::parse(progress)
            .map(|progress| self.body_checkpoints(&progress, length))
            .unwrap_or_default()
    }

    async fn release(&self, key: &BlobKey, previous: &StoreProgress, committed: &StoreProgress) {
        let (Ok(previous), Ok(committed)) = (Progress::parse(previous), Progress::parse(committed))
        else {
            return;
        };
        if let Some(tail) = previous.tail
            && committed
                .tail
                .as_ref()
                .is_none_or(|kept| kept.name != tail.name)
        {
            let (bucket, _) = self.store.location(key);
            self.delete_quietly(&bucket, &tail.name).await;
        }
    }

    async fn finish(
        &self,
        key: &BlobKey,
        progress: &StoreProgress,
        length: u64,
    ) -> Result<(), BlobError> {
        let progress = Progress::parse(progress)?;
        self.complete(key, &progress, length).await
    }

    async fn concatenate(&self, key: &BlobKey, parts: &[ConcatPart]) -> Result<bool, BlobError> {
        self.copy_parts(key, parts).await
    }

    async fn abort(&self, key: &BlobKey, progress: &StoreProgress) -> Result<(), BlobError> {
        // No progress: nothing was ever begun in the store (a final concatenation's state).
        if progress.0.is_empty() {
            return Ok(());
        }
        let progress = Progress::parse(progress)?;
        let upload = self.upload(key, &progress);
        self.abort_multipart(&upload).await?;
        // Appends that were never committed may have left tails of their own.
        self.delete_tails(&upload).await
    }

    fn stray_ids(&self, key: &BlobKey, progress: &StoreProgress) -> Vec<String> {
        let Ok(progress) = Progress::parse(progress) else {
            return Vec::new();
        };
        let upload = self.upload(key, &progress);
        let mut ids = vec![format!(
            "{}\t{}\t{}",
            upload.bucket, upload.object, upload.id
        )];
        if let Some(tail) = &progress.tail {
            ids.push(format!("{}\t{}", upload.bucket, tail.name));
        }
        ids
    }
}

/// Has the SDK compute the checksum a request names: the client computes only those an
/// operation requires, and a part of an upload created with CRC32 must carry its own.
fn crc32_calculated() -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::default()
        .request_checksum_calculation(RequestChecksumCalculation::WhenSupported)
}
