//! Parts of announced length streamed into `UploadPart` as the bytes arrive, aws-chunked with a
//! CRC32 trailer, the way a body of announced length goes into one `PutObject`.

use aws_sdk_s3::config::RequestChecksumCalculation;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::error::BoxError as SdkBoxError;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::ChecksumAlgorithm;
use bytes::Bytes;
use futures_util::StreamExt;
use stowage_application::BodyError;
use stowage_application::ports::BlobError;
use stowage_application::stream::ByteStream;

use super::progress::PartRecord;
use super::{ResumableFailure, S3ResumableStore, Upload};
use crate::blob::s3::S3Failure;
use crate::blob::s3::error::unavailable;
use crate::blob::s3::feed::ChannelBody;

/// Chunks queued between the body and the `UploadPart` request.
const PART_QUEUE: usize = 2;

/// What one pull from a [`Source`] gave.
enum Pull {
    Data(Bytes),
    End,
    Body(BodyError),
    Store(BlobError),
}

/// The bytes an append places after the upload's parts: its kept tail read back from the store,
/// then the request body. A failure of the first is the store's, of the second the client's.
pub(super) struct Source {
    tail: Option<ByteStream>,
    tail_left: u64,
    body: ByteStream,
    pending: Option<Bytes>,
}

impl Source {
    pub(super) fn new(tail: Option<(ByteStream, u64)>, body: ByteStream) -> Self {
        let (tail, tail_left) = match tail {
            Some((stream, size)) => (Some(stream), size),
            None => (None, 0),
        };
        Self {
            tail,
            tail_left,
            body,
            pending: None,
        }
    }

    async fn pull(&mut self) -> Pull {
        if let Some(chunk) = self.pending.take() {
            return Pull::Data(chunk);
        }
        if let Some(tail) = &mut self.tail {
            match tail.next().await {
                Some(Ok(chunk)) if chunk.len() as u64 <= self.tail_left => {
                    self.tail_left -= chunk.len() as u64;
                    return Pull::Data(chunk);
                }
                Some(Err(e)) => return Pull::Store(BlobError::Unavailable(Box::new(e))),
                None if self.tail_left == 0 => self.tail = None,
                Some(Ok(_)) | None => {
                    return Pull::Store(BlobError::Unavailable(Box::new(
                        ResumableFailure::TailChanged,
                    )));
                }
            }
        }
        match self.body.next().await {
            Some(Ok(chunk)) => Pull::Data(chunk),
            Some(Err(e)) => Pull::Body(e),
            None => Pull::End,
        }
    }
}

/// How sending one part ended.
pub(super) enum PartSent {
    /// The part is stored.
    Stored(PartRecord),
    /// The body failed (or was not of its announced length) before the part was whole; the
    /// request was cut off, so the store kept nothing of it.
    BodyFailed(BodyError),
}

/// How feeding a part's request ended.
enum Fed {
    Sent,
    Body(BodyError),
    Store(BlobError),
    Abandoned,
}

async fn cut_off(tx: &tokio::sync::mpsc::Sender<Result<Bytes, SdkBoxError>>, why: Fed) -> Fed {
    // An error as the body's next frame fails the request before its last byte.
    let _ = tx.send(Err("the upload body failed".into())).await;
    why
}

/// Sends the next `len` bytes of `source` to `tx`. With `at_end`, those are the body's last: the
/// final chunk leaves only once the body is seen to end there, so a body that fails (or goes
/// on) at its very end never completes the part.
async fn feed_part(
    source: &mut Source,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, SdkBoxError>>,
    len: u64,
    at_end: bool,
) -> Fed {
    let mut left = len;
    while left > 0 {
        let pulled = tokio::select! {
            pulled = source.pull() => pulled,
            () = tx.closed() => return Fed::Abandoned,
        };
        let mut chunk = match pulled {
            Pull::Data(chunk) => chunk,
            Pull::End => {
                let short = BodyError::Malformed("the body is shorter than announced".to_owned());
                return cut_off(&tx, Fed::Body(short)).await;
            }
            Pull::Body(e) => return cut_off(&tx, Fed::Body(e)).await,
            Pull::Store(e) => return cut_off(&tx, Fed::Store(e)).await,
        };
        if chunk.len() as u64 > left {
            let cut = usize::try_from(left).unwrap_or(chunk.len());
            source.pending = Some(chunk.split_off(cut));
        }
        left -= chunk.len() as u64;
        if left == 0 && at_end {
            loop {
                match source.pull().await {
                    Pull::End => break,
                    Pull::Data(more) if more.is_empty() => {}
                    Pull::Data(_) => {
                        let long =
                            BodyError::Malformed("the body is longer than announced".to_owned());
                        return cut_off(&tx, Fed::Body(long)).await;
                    }
                    Pull::Body(e) => return cut_off(&tx, Fed::Body(e)).await,
                    Pull::Store(e) => return cut_off(&tx, Fed::Store(e)).await,
                }
            }
        }
        if tx.send(Ok(chunk)).await.is_err() {
            return Fed::Abandoned;
        }
    }
    Fed::Sent
}

fn failed(kind: &str) -> BlobError {
    BlobError::Unavailable(Box::new(S3Failure {
        operation: "UploadPart",
        kind: kind.to_owned(),
    }))
}

impl S3ResumableStore {
    /// Streams the next `len` bytes of `source` into part `number` of `upload`, holding none of
    /// them beyond the request's small queue.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the store or the kept tail failed.
    pub(super) async fn stream_part(
        &self,
        upload: &Upload,
        number: i32,
        len: u64,
        source: &mut Source,
        at_end: bool,
    ) -> Result<PartSent, BlobError> {
        let (tx, rx) = tokio::sync::mpsc::channel(PART_QUEUE);
        let request = self
            .store
            .client
            .upload_part()
            .bucket(&upload.bucket)
            .key(&upload.object)
            .upload_id(&upload.id)
            .part_number(number)
            .content_length(i64::try_from(len).unwrap_or(i64::MAX))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(S3Body::from_body_1_x(ChannelBody { rx, len }))
            .customize()
            // The request lasts as long as the client takes to send the part; the SDK's
            // stalled-stream protection still fails it when the store stops reading.
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
        let answer_timeout = self.store.operation_timeout;
        let send = async move {
            let sent = request.send();
            tokio::pin!(sent);
            tokio::select! {
                result = &mut sent => return Some(result),
                _ = body_done_rx => {}
            }
            tokio::time::timeout(answer_timeout, sent).await.ok()
        };
        let feed = async {
            let fed = feed_part(source, tx, len, at_end).await;
            drop(body_done);
            fed
        };
        let (sent, fed) = tokio::join!(send, feed);
        match (sent, fed) {
            (_, Fed::Body(e)) => Ok(PartSent::BodyFailed(e)),
            (_, Fed::Store(e)) => Err(e),
            (None, _) => Err(failed("timed out")),
            (Some(Err(e)), _) => Err(unavailable("UploadPart", &e)),
            (Some(Ok(_)), Fed::Abandoned) => {
                Err(failed("the store answered before the part was sent"))
            }
            (Some(Ok(output)), Fed::Sent) => Ok(PartSent::Stored(PartRecord {
                number,
                etag: output.e_tag().unwrap_or_default().to_owned(),
                size: len,
                crc32: output.checksum_crc32().map(str::to_owned),
            })),
        }
    }
}
