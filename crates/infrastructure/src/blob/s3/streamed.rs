//! A body of announced length streamed into one `PutObject` as it arrives, aws-chunked with a
//! CRC32 trailer.

use std::sync::{Arc, Mutex};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::ChecksumAlgorithm;
use futures_util::StreamExt;
use stowage_application::BodyError;
use stowage_application::ports::BlobError;
use stowage_application::stream::{BlobDigester, ByteStream, StoredBlob};

use super::error::{S3Failure, error_code, failure, unavailable};
use super::feed::{ChannelBody, Fed, Fit, feed_exactly};
use super::{S3BlobStore, object_stream};

/// Bodies announced at least this long stream into one `PutObject`; shorter ones are buffered,
/// so that a transient S3 error can be retried with the same bytes.
pub const STREAMED_PUT_MIN: u64 = 1024 * 1024;

/// The largest object one `PutObject` may write.
pub(super) const MAX_SINGLE_PUT: u64 = 5 * 1024 * 1024 * 1024;

/// Chunks queued between the upload body and the `PutObject` request.
const STREAMED_PUT_QUEUE: usize = 2;

/// Deletes an object in the background when dropped armed.
struct DeleteOnDrop {
    client: Client,
    bucket: String,
    key: String,
    armed: bool,
}

impl DeleteOnDrop {
    /// Armed for `key` of `bucket`.
    fn armed(client: &Client, bucket: &str, key: &str) -> Self {
        Self {
            client: client.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            armed: true,
        }
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { delete_object_quietly(&client, &bucket, &key).await });
        }
    }
}

/// Deletes an object a failed or abandoned upload may have left; a failure is logged, gc
/// reclaims the object.
async fn delete_object_quietly(client: &Client, bucket: &str, key: &str) {
    if let Err(e) = client.delete_object().bucket(bucket).key(key).send().await {
        let e = failure("DeleteObject", &e);
        tracing::warn!(error = %e, "object of a failed upload left behind; gc will remove it");
    }
}

fn take_digest(digest: &Mutex<BlobDigester>) -> StoredBlob {
    std::mem::take(
        &mut *digest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .finish()
}

impl S3BlobStore {
    /// Streams a body announced as `len` bytes long into one `PutObject`, with no buffering. The
    /// request is sent as aws-chunked with a CRC32 trailer that S3 checks (each chunk also signed
    /// when the endpoint is plain HTTP). A body that turns out shorter or longer than announced
    /// (a form with parts after the file, unusual framing) completes the object with zeros or
    /// leaves its tail unsent; the object is then rewritten from its good prefix and the tail,
    /// and checked against the SHA-256 of what the client sent.
    pub(super) async fn put_streamed(
        &self,
        bucket: &str,
        object: &str,
        body: ByteStream,
        len: u64,
    ) -> Result<StoredBlob, BlobError> {
        // Dropped at any point (the client went away), the object is deleted in the background:
        // the PutObject may have completed with padding, or before its record was written.
        let mut guard = DeleteOnDrop::armed(&self.client, bucket, object);
        let result = self.put_streamed_once(bucket, object, body, len).await;
        guard.armed = false;
        result
    }

    async fn put_streamed_once(
        &self,
        bucket: &str,
        object: &str,
        body: ByteStream,
        len: u64,
    ) -> Result<StoredBlob, BlobError> {
        let digest = Arc::new(Mutex::new(BlobDigester::new()));
        let seen = Arc::clone(&digest);
        let mut source: ByteStream = body
            .inspect(move |item| {
                if let Ok(chunk) = item {
                    seen.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .update(chunk);
                }
            })
            .boxed();
        let (tx, rx) = tokio::sync::mpsc::channel(STREAMED_PUT_QUEUE);
        let request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(object)
            .content_length(i64::try_from(len).unwrap_or(i64::MAX))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(S3Body::from_body_1_x(ChannelBody { rx, len }))
            .customize()
            // The request lasts as long as the client takes to upload; the SDK's stalled-stream
            // protection still fails it when the store stops reading.
            // The checksum is asked for explicitly, so that a streamed body always carries one.
            .config_override(
                aws_sdk_s3::config::Builder::default()
                    .request_checksum_calculation(RequestChecksumCalculation::WhenSupported)
                    .timeout_config(
                        TimeoutConfig::builder()
                            .disable_operation_attempt_timeout()
                            .build(),
                    ),
            );
        let (body_done, body_done_rx) = tokio::sync::oneshot::channel::<()>();
        let answer_timeout = self.operation_timeout;
        let send = async move {
            let put = request.send();
            tokio::pin!(put);
            tokio::select! {
                result = &mut put => return Some(result),
                _ = body_done_rx => {}
            }
            tokio::time::timeout(answer_timeout, put).await.ok()
        };
        let feed = async {
            let fed = feed_exactly(&mut source, tx, len).await;
            drop(body_done);
            fed
        };
        let (sent, fed) = tokio::join!(send, feed);

        let fit = match (sent, fed) {
            (_, Fed::Failed(e)) => {
                self.delete_quietly(bucket, object).await;
                return Err(BlobError::Body(e));
            }
            (None, _) => {
                self.delete_quietly(bucket, object).await;
                return Err(BlobError::Unavailable(Box::new(S3Failure {
                    operation: "PutObject",
                    kind: "timed out".to_owned(),
                })));
            }
            (Some(Err(e)), _) => {
                if matches!(error_code(&e), Some("NoSuchBucket")) {
                    self.mark_ready(bucket, false);
                }
                self.delete_quietly(bucket, object).await;
                return Err(unavailable("PutObject", &e));
            }
            (Some(Ok(_)), Fed::Abandoned) => {
                self.delete_quietly(bucket, object).await;
                return Err(BlobError::Unavailable(Box::new(S3Failure {
                    operation: "PutObject",
                    kind: "the store answered before the body was sent".to_owned(),
                })));
            }
            (Some(Ok(_)), Fed::Sent(fit)) => {
                if let Err(e) = self.check_streamed_size(bucket, object, len).await {
                    self.delete_quietly(bucket, object).await;
                    return Err(e);
                }
                fit
            }
        };
        let (kept, tail) = match fit {
            Fit::Exact => return Ok(take_digest(&digest)),
            Fit::Short { actual } => (actual, futures_util::stream::empty().boxed()),
            Fit::Long { rest } => (
                len,
                futures_util::stream::once(async move { Ok(rest) })
                    .chain(source)
                    .boxed(),
            ),
        };
        tracing::debug!(
            announced = len,
            kept,
            "the upload's length differed from the one announced; rewriting the object"
        );
        match self.rewrite(bucket, object, kept, tail).await {
            Ok(rewritten) => {
                let sent = take_digest(&digest);
                if rewritten == sent {
                    Ok(sent)
                } else {
                    self.delete_quietly(bucket, object).await;
                    Err(BlobError::Unavailable(Box::new(S3Failure {
                        operation: "GetObject",
                        kind: "the store returned other bytes than were written".to_owned(),
                    })))
                }
            }
            Err(e) => {
                self.delete_quietly(bucket, object).await;
                Err(e)
            }
        }
    }

    /// Checks that a streamed `PutObject` stored `len` bytes. A store that does not decode
    /// aws-chunked bodies keeps the chunk framing as content; streaming is then turned off.
    async fn check_streamed_size(
        &self,
        bucket: &str,
        object: &str,
        len: u64,
    ) -> Result<(), BlobError> {
        let head = self
            .client
            .head_object()
            .bucket(bucket)
            .key(object)
            .send()
            .await
            .map_err(|e| unavailable("HeadObject", &e))?;
        let stored = head.content_length().and_then(|n| u64::try_from(n).ok());
        if stored == Some(len) {
            return Ok(());
        }
        self.stream_uploads
            .store(false, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(
            announced = len,
            stored = ?stored,
            "the S3 store kept a streamed upload at the wrong size: it does not decode aws-chunked \
             bodies; uploads are buffered from now on (set S3_STREAM_UPLOADS=false for this store)"
        );
        Err(BlobError::Unavailable(Box::new(S3Failure {
            operation: "PutObject",
            kind: "the store does not decode aws-chunked uploads".to_owned(),
        })))
    }

    /// Rewrites `object` as its first `kept` bytes followed by `tail`; returns what was written.
    async fn rewrite(
        &self,
        bucket: &str,
        object: &str,
        kept: u64,
        tail: ByteStream,
    ) -> Result<StoredBlob, BlobError> {
        let head: ByteStream = if kept == 0 {
            futures_util::stream::empty().boxed()
        } else {
            let output = self
                .client
                .get_object()
                .bucket(bucket)
                .key(object)
                .range(format!("bytes=0-{}", kept - 1))
                .send()
                .await
                .map_err(|e| unavailable("GetObject", &e))?;
            object_stream(output.body)
        };
        let mut combined = head.chain(tail).boxed();
        let mut written = BlobDigester::new();
        match self
            .put_buffered(bucket, object, &mut combined, &mut written)
            .await
        {
            Ok(()) => Ok(written.finish()),
            Err(BlobError::Body(BodyError::Backend(e))) => Err(BlobError::Unavailable(e)),
            Err(e) => Err(e),
        }
    }

    /// Deletes an object a failed write may have left; a failure is logged, gc reclaims it.
    pub(super) async fn delete_quietly(&self, bucket: &str, object: &str) {
        delete_object_quietly(&self.client, bucket, object).await;
    }
}
