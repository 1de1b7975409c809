//! Finishing an upload into its blob, and joining finished blobs without their bytes leaving
//! the store.

use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use stowage_application::ports::{BlobError, ConcatPart};
use stowage_domain::BlobKey;

use super::progress::{MAX_PART_NUMBER, MAX_PART_SIZE, PartRecord, Progress};
use super::{ResumableFailure, S3ResumableStore, Upload};
use crate::blob::s3::error::{is_not_found, unavailable};
use crate::blob::s3::multipart::abort_upload;
use crate::blob::s3::{MIN_PART_SIZE, S3Layout};

fn completed(part: &PartRecord) -> CompletedPart {
    CompletedPart::builder()
        .part_number(part.number)
        .e_tag(&part.etag)
        .set_checksum_crc32(part.crc32.clone())
        .build()
}

/// The byte ranges, each at most S3's largest part and none below its smallest, that copy an
/// object of `size` bytes.
fn copy_ranges(size: u64) -> Vec<(u64, u64)> {
    let count = size.div_ceil(MAX_PART_SIZE).max(1);
    let step = size.div_ceil(count);
    (0..count)
        .map(|i| (i * step, ((i + 1) * step).min(size)))
        .filter(|(start, end)| start < end)
        .collect()
}

impl S3ResumableStore {
    /// Sends the tail as the last part and completes the multipart upload at the blob's key.
    pub(super) async fn complete(
        &self,
        key: &BlobKey,
        progress: &Progress,
        length: u64,
    ) -> Result<(), BlobError> {
        let held = progress.size();
        if held != length {
            return Err(BlobError::Unavailable(Box::new(ResumableFailure::Length {
                held,
                expected: length,
            })));
        }
        let upload = self.upload(key, progress);
        if length == 0 {
            return self.finish_empty(&upload).await;
        }
        let mut parts: Vec<CompletedPart> = progress.parts.iter().map(completed).collect();
        if let Some(tail) = &progress.tail {
            let number = progress.next_number();
            match self
                .copy_part(&upload, number, &upload.bucket, &tail.name, None)
                .await
            {
                Ok(part) => parts.push(part),
                Err(e) => return self.finished_already(&upload, length, e).await,
            }
        }
        let result = self
            .store
            .client
            .complete_multipart_upload()
            .bucket(&upload.bucket)
            .key(&upload.object)
            .upload_id(&upload.id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = result {
            let e = unavailable("CompleteMultipartUpload", &e);
            return self.finished_already(&upload, length, e).await;
        }
        let stored = self.stored_size(&upload.bucket, &upload.object).await?;
        if stored != Some(length) {
            return Err(BlobError::Unavailable(Box::new(ResumableFailure::Stored {
                stored: stored.unwrap_or(0),
                expected: length,
            })));
        }
        if let Err(e) = self.delete_tails(&upload).await {
            tracing::warn!(error = %e, "a finished upload's tails left behind; reconciliation will remove them");
        }
        Ok(())
    }

    /// An empty upload has no part to complete with: its blob is an empty object.
    async fn finish_empty(&self, upload: &Upload) -> Result<(), BlobError> {
        self.store
            .client
            .put_object()
            .bucket(&upload.bucket)
            .key(&upload.object)
            .content_length(0)
            .send()
            .await
            .map_err(|e| unavailable("PutObject", &e))?;
        if let Err(e) = abort_upload(
            &self.store.client,
            &upload.bucket,
            &upload.object,
            &upload.id,
        )
        .await
        {
            tracing::warn!(error = %e, "multipart upload of an empty upload left behind; gc will abort it");
        }
        Ok(())
    }

    /// `Ok` when an earlier attempt whose answer was lost already finished the upload (its
    /// multipart upload and tail are gone, and its blob has the upload's length); else `failure`.
    async fn finished_already(
        &self,
        upload: &Upload,
        length: u64,
        failure: BlobError,
    ) -> Result<(), BlobError> {
        match self.stored_size(&upload.bucket, &upload.object).await {
            Ok(Some(size)) if size == length => Ok(()),
            _ => Err(failure),
        }
    }

    async fn stored_size(&self, bucket: &str, object: &str) -> Result<Option<u64>, BlobError> {
        match self
            .store
            .client
            .head_object()
            .bucket(bucket)
            .key(object)
            .send()
            .await
        {
            Ok(head) => Ok(head.content_length().and_then(|n| u64::try_from(n).ok())),
            Err(e)
                if is_not_found(&e)
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Ok(None)
            }
            Err(e) => Err(unavailable("HeadObject", &e)),
        }
    }

    /// Copies `source` (or its `range`, end exclusive) into part `number`.
    async fn copy_part(
        &self,
        upload: &Upload,
        number: i32,
        bucket: &str,
        source: &str,
        range: Option<(u64, u64)>,
    ) -> Result<CompletedPart, BlobError> {
        // Bucket names, blob keys and tail names need no percent-encoding.
        let output = self
            .store
            .client
            .upload_part_copy()
            .bucket(&upload.bucket)
            .key(&upload.object)
            .upload_id(&upload.id)
            .part_number(number)
            .copy_source(format!("{bucket}/{source}"))
            .set_copy_source_range(range.map(|(start, end)| format!("bytes={start}-{}", end - 1)))
            .send()
            .await;
        let output = match output {
            Ok(output) => output,
            Err(e)
                if is_not_found(&e)
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
            {
                return Err(BlobError::NotFound);
            }
            Err(e) => return Err(unavailable("UploadPartCopy", &e)),
        };
        let result = output.copy_part_result();
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(result.and_then(|r| r.e_tag()).map(str::to_owned))
            .set_checksum_crc32(result.and_then(|r| r.checksum_crc32()).map(str::to_owned))
            .build())
    }

    /// Joins `parts` into the blob under `key` with `UploadPartCopy`, when S3 can: every part
    /// but the last at least its smallest part.
    pub(super) async fn copy_parts(
        &self,
        key: &BlobKey,
        parts: &[ConcatPart],
    ) -> Result<bool, BlobError> {
        let min = MIN_PART_SIZE as u64;
        let Some((last, rest)) = parts.split_last() else {
            return Ok(false);
        };
        let ranges: u64 = parts.iter().map(|p| copy_ranges(p.size).len() as u64).sum();
        if last.size == 0 || rest.iter().any(|p| p.size < min) || ranges > MAX_PART_NUMBER as u64 {
            return Ok(false);
        }
        let (bucket, object) = self.store.location(key);
        if matches!(self.store.layout, S3Layout::PerAccount { .. }) {
            self.store.ensure_bucket(&bucket).await?;
        }
        let created = self
            .store
            .client
            .create_multipart_upload()
            .bucket(&bucket)
            .key(&object)
            .send()
            .await
            .map_err(|e| unavailable("CreateMultipartUpload", &e))?;
        let id = created
            .upload_id()
            .ok_or_else(|| {
                BlobError::Unavailable("S3 CreateMultipartUpload returned no upload id".into())
            })?
            .to_owned();
        let upload = Upload { bucket, object, id };
        let result = self.copy_into(&upload, parts).await;
        if result.is_err()
            && let Err(e) = abort_upload(
                &self.store.client,
                &upload.bucket,
                &upload.object,
                &upload.id,
            )
            .await
        {
            tracing::warn!(error = %e, "multipart upload of a concatenation left behind; gc will abort it");
        }
        result.map(|()| true)
    }

    async fn copy_into(&self, upload: &Upload, parts: &[ConcatPart]) -> Result<(), BlobError> {
        let mut completed = Vec::new();
        let mut number = 0;
        for part in parts {
            let (bucket, object) = self.store.location(&part.key);
            let ranges = copy_ranges(part.size);
            let whole = ranges.len() == 1;
            for range in ranges {
                number += 1;
                let range = (!whole).then_some(range);
                completed.push(
                    self.copy_part(upload, number, &bucket, &object, range)
                        .await?,
                );
            }
        }
        match self
            .store
            .client
            .complete_multipart_upload()
            .bucket(&upload.bucket)
            .key(&upload.object)
            .upload_id(&upload.id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(unavailable("CompleteMultipartUpload", &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_over_the_largest_is_copied_in_ranges_of_allowed_sizes() {
        let size = 2 * MAX_PART_SIZE + 3;
        let ranges = copy_ranges(size);
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges.first().map(|r| r.0), Some(0));
        assert_eq!(ranges.last().map(|r| r.1), Some(size));
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].1, pair[1].0);
        }
        assert!(
            ranges
                .iter()
                .all(|(s, e)| e - s <= MAX_PART_SIZE && e - s >= MIN_PART_SIZE as u64)
        );
    }

    #[test]
    fn a_part_within_the_limit_is_one_range() {
        assert_eq!(copy_ranges(7), vec![(0, 7)]);
    }
}
