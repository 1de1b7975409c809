//! Part buffers and multipart uploads: part N is sent while part N+1 is being received.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures_util::StreamExt;
use stowage_application::ports::BlobError;
use stowage_application::stream::{BlobDigester, ByteStream};

use super::S3BlobStore;
use super::error::{error_code, unavailable};
use crate::blob::budget::{PartBudget, PartShare};

/// S3's smallest part (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

pub(super) struct Part {
    pub(super) bytes: Bytes,
    pub(super) ended: bool,
    /// Its share of the upload buffers, given back when the part is dropped (once sent).
    pub(super) share: PartShare,
}

/// A part upload running on its own task, stopped when dropped (a dropped request stops sending).
struct PartTask(tokio::task::JoinHandle<Result<CompletedPart, BlobError>>);

impl PartTask {
    async fn join(mut self) -> Result<CompletedPart, BlobError> {
        (&mut self.0)
            .await
            .map_err(|e| BlobError::Unavailable(Box::new(e)))?
    }

    /// Stops it and waits until it has stopped, so nothing lands after the upload is aborted.
    async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for PartTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Aborts a multipart upload unless it completed, also when the uploading future is dropped.
struct AbortOnDrop {
    client: Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
}

impl AbortOnDrop {
    async fn abort_now(&mut self) {
        if let Some(upload_id) = self.upload_id.take() {
            abort(&self.client, &self.bucket, &self.key, &upload_id).await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(upload_id) = self.upload_id.take() {
            let (client, bucket, key) =
                (self.client.clone(), self.bucket.clone(), self.key.clone());
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    abort(&client, &bucket, &key, &upload_id).await;
                    // A part already on the wire when the request was dropped may land after the
                    // first abort; S3 asks to abort again once uploads in progress have finished.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    abort(&client, &bucket, &key, &upload_id).await;
                });
            }
        }
    }
}

/// Aborts a multipart upload; one that is already gone counts as aborted.
pub(super) async fn abort_upload(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<(), BlobError> {
    match client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if matches!(error_code(&e), Some("NoSuchUpload")) => Ok(()),
        Err(e) => Err(unavailable("AbortMultipartUpload", &e)),
    }
}

async fn abort(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    if let Err(e) = abort_upload(client, bucket, key, upload_id).await {
        tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "multipart upload left behind; gc will abort it");
    }
}

/// A part buffer in its own anonymous memory map: it goes back to the operating system the
/// moment its upload completes, whereas the C allocator would keep freed multi-MiB buffers in its
/// arenas and let the resident size grow with every concurrent upload.
struct PartBuffer {
    map: memmap2::MmapMut,
    len: usize,
}

impl PartBuffer {
    fn new(capacity: usize) -> Result<Self, BlobError> {
        let map = memmap2::MmapMut::map_anon(capacity.max(1))
            .map_err(|e| BlobError::Unavailable(Box::new(e)))?;
        Ok(Self { map, len: 0 })
    }

    fn remaining(&self) -> usize {
        self.map.len() - self.len
    }

    fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.remaining());
        self.map[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn freeze(self) -> Result<Bytes, BlobError> {
        let map = self
            .map
            .make_read_only()
            .map_err(|e| BlobError::Unavailable(Box::new(e)))?;
        Ok(Bytes::from_owner(map).slice(..self.len))
    }
}

/// A part being filled: its buffer, and the share of the budget its bytes are charged to.
pub(super) struct PartFill {
    buffer: PartBuffer,
    share: PartShare,
    /// Bytes charged ahead of being copied in.
    reserved: usize,
}

impl PartFill {
    /// An empty part of `size` bytes at most; nothing is charged yet.
    pub(super) fn new(size: usize) -> Result<Self, BlobError> {
        Ok(Self {
            buffer: PartBuffer::new(size)?,
            share: PartShare::default(),
            reserved: 0,
        })
    }

    /// Charges `bytes` (as far as they fit) before they are read, so that bytes fetched from the
    /// store are held only once the budget has room for them.
    ///
    /// # Errors
    /// [`BlobError::Busy`] when the budget stays full.
    pub(super) async fn reserve(
        &mut self,
        bytes: usize,
        budget: &PartBudget,
    ) -> Result<(), BlobError> {
        let bytes = bytes.min(self.buffer.remaining().saturating_sub(self.reserved));
        budget.charge(&mut self.share, bytes).await?;
        self.reserved += bytes;
        Ok(())
    }

    /// Copies in as much of `chunk` as fits, charging what was not reserved; returns how much.
    ///
    /// # Errors
    /// [`BlobError::Busy`] when the budget stays full.
    pub(super) async fn push(
        &mut self,
        chunk: &[u8],
        budget: &PartBudget,
    ) -> Result<usize, BlobError> {
        let n = chunk.len().min(self.buffer.remaining());
        let covered = n.min(self.reserved);
        // The buffer is a lazily touched map: memory is taken as bytes are copied in.
        budget.charge(&mut self.share, n - covered).await?;
        self.reserved -= covered;
        self.buffer.push(&chunk[..n]);
        Ok(n)
    }

    fn remaining(&self) -> usize {
        self.buffer.remaining()
    }

    fn finish(self, ended: bool) -> Result<Part, BlobError> {
        Ok(Part {
            bytes: self.buffer.freeze()?,
            ended,
            share: self.share,
        })
    }
}

/// Reads the next part of `body` (starting with `carry`, what the previous part left over), of
/// `size` bytes unless the body ends first, once `budget` has room for it.
///
/// # Errors
/// [`BlobError::Busy`] when the budget stays full (the bytes of the part are then dropped); the
/// body's own failure.
pub(super) async fn read_part(
    body: &mut ByteStream,
    digest: &mut BlobDigester,
    size: usize,
    carry: &mut Option<Bytes>,
    budget: &PartBudget,
) -> Result<Part, BlobError> {
    fill_part(PartFill::new(size)?, body, digest, carry, budget).await
}

/// Reads into `part`, which may hold bytes already, as [`read_part`] does.
///
/// # Errors
/// As [`read_part`].
pub(super) async fn fill_part(
    mut part: PartFill,
    body: &mut ByteStream,
    digest: &mut BlobDigester,
    carry: &mut Option<Bytes>,
    budget: &PartBudget,
) -> Result<Part, BlobError> {
    loop {
        let chunk = match carry.take() {
            Some(rest) => rest,
            None => match body.next().await {
                Some(Ok(chunk)) => {
                    digest.update(&chunk);
                    chunk
                }
                Some(Err(e)) => return Err(BlobError::Body(e)),
                None => return part.finish(true),
            },
        };
        let fits = part.remaining();
        part.push(&chunk, budget).await?;
        if chunk.len() >= fits {
            if chunk.len() > fits {
                *carry = Some(chunk.slice(fits..));
            }
            return part.finish(false);
        }
    }
}

impl S3BlobStore {
    async fn upload_part(
        client: Client,
        bucket: String,
        key: String,
        upload_id: String,
        number: i32,
        part: Part,
    ) -> Result<CompletedPart, BlobError> {
        let Part { bytes, share, .. } = part;
        let output = client
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(S3Body::from(bytes))
            .send()
            .await
            .map_err(|e| unavailable("UploadPart", &e))?;
        drop(share);
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(output.e_tag().map(str::to_owned))
            .build())
    }

    pub(super) async fn put_multipart(
        &self,
        bucket: &str,
        key: &str,
        first: Part,
        body: &mut ByteStream,
        digest: &mut BlobDigester,
        carry: &mut Option<Bytes>,
    ) -> Result<(), BlobError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| unavailable("CreateMultipartUpload", &e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| {
                BlobError::Unavailable("S3 CreateMultipartUpload returned no upload id".into())
            })?
            .to_owned();
        let mut guard = AbortOnDrop {
            client: self.client.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id: Some(upload_id.clone()),
        };
        let spawn_part = |number: i32, part: Part| {
            PartTask(tokio::spawn(Self::upload_part(
                self.client.clone(),
                bucket.to_owned(),
                key.to_owned(),
                upload_id.clone(),
                number,
                part,
            )))
        };

        let mut parts = Vec::new();
        let mut number = 1;
        let mut in_flight = Some(spawn_part(number, first));
        let result: Result<(), BlobError> = async {
            loop {
                // Reading the next part while this one is sent holds two parts in memory; only a
                // few uploads at a time may do so, the others send first and read after.
                let overlap = self.pipeline.clone().try_acquire_owned().ok();
                if overlap.is_none()
                    && let Some(part) = in_flight.take()
                {
                    parts.push(part.join().await?);
                }
                let next = match read_part(body, digest, self.part_size, carry, &self.budget).await
                {
                    Ok(next) => next,
                    Err(e) => {
                        if let Some(part) = in_flight.take() {
                            part.stop().await;
                        }
                        return Err(e);
                    }
                };
                if let Some(part) = in_flight.take() {
                    parts.push(part.join().await?);
                }
                drop(overlap);
                if next.bytes.is_empty() {
                    return Ok(());
                }
                number += 1;
                let ended = next.ended;
                let part = spawn_part(number, next);
                if ended {
                    parts.push(part.join().await?);
                    return Ok(());
                }
                in_flight = Some(part);
            }
        }
        .await;
        if let Err(e) = result {
            guard.abort_now().await;
            return Err(e);
        }
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| unavailable("CompleteMultipartUpload", &e))?;
        guard.upload_id = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_reserved_before_they_are_read_are_charged_once() {
        let budget = PartBudget::new(
            MIN_PART_SIZE as u64,
            MIN_PART_SIZE,
            Duration::from_millis(50),
        );
        let mut part = PartFill::new(MIN_PART_SIZE).unwrap();
        part.reserve(100 * 1024, &budget).await.unwrap();
        assert_eq!(budget.free(), MIN_PART_SIZE - 100 * 1024);

        // The reserved bytes arrive, then more: only those beyond the reservation are charged.
        part.push(&[7; 60 * 1024], &budget).await.unwrap();
        part.push(&[7; 40 * 1024], &budget).await.unwrap();
        assert_eq!(budget.free(), MIN_PART_SIZE - 100 * 1024);
        part.push(&[7; 8 * 1024], &budget).await.unwrap();
        assert_eq!(budget.free(), MIN_PART_SIZE - 108 * 1024);

        let part = part.finish(true).unwrap();
        assert_eq!(part.bytes.len(), 108 * 1024);
        let mut other = PartFill::new(MIN_PART_SIZE).unwrap();
        let busy = other.reserve(MIN_PART_SIZE, &budget).await;
        assert!(matches!(busy, Err(BlobError::Busy { .. })), "{busy:?}");

        // Once the first part is gone, a reservation past the part is cut to it.
        drop(part);
        other.reserve(2 * MIN_PART_SIZE, &budget).await.unwrap();
        assert_eq!(budget.free(), 0);
        drop(other);
        assert_eq!(budget.free(), MIN_PART_SIZE);
    }
}
