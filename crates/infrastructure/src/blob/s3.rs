//! [`BlobStore`] on any S3-compatible store, with aws-sdk-s3.
//!
//! Uploads stream. A body whose length the request announces (at least [`STREAMED_PUT_MIN`]) goes
//! straight into one `PutObject` as it arrives, aws-chunked with a CRC32 trailer. A body of
//! unknown length smaller than one part is one `PutObject` signed with its SHA-256; a larger one
//! is a multipart upload where part N is sent while part N+1 is being received (two parts in
//! memory at most). Any failure, limit breach or dropped request leaves no object and no part.
//! Downloads stream a ranged `GetObject` straight through. Errors that reach the application name
//! the operation and the S3 error code, never a bucket, a key or a credential.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_runtime::auth::PayloadSigningOverride;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RequestChecksumCalculation,
    ResponseChecksumValidation, RuntimeComponents,
};
use aws_sdk_s3::error::{BoxError, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{
    BucketLocationConstraint, ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart,
    CreateBucketConfiguration,
};
use bytes::Bytes;
use futures_util::StreamExt;
use stowage_application::BodyError;
use stowage_application::ports::{BlobBody, BlobError, BlobListing, BlobStore, ListedBlob};
use stowage_application::stream::{BlobDigester, ByteStream, StoredBlob};
use stowage_domain::{AccountId, BlobKey, ByteRange, FileId};
use time::OffsetDateTime;

/// S3's smallest part (except the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// How blobs map to buckets and keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum S3Layout {
    /// One bucket, keys `{account_id}/{file_id}`.
    Single {
        /// The bucket.
        bucket: String,
    },
    /// A bucket per account, `{prefix}-{account_id}`, created on first use; keys `{file_id}`.
    PerAccount {
        /// The bucket name prefix.
        prefix: String,
    },
}

/// Everything the S3 adapter needs.
#[derive(Clone)]
pub struct S3Settings {
    /// Endpoint of an S3-compatible store; `None` for AWS.
    pub endpoint: Option<String>,
    /// Region (`us-east-1` for most S3-compatible stores).
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key (redacted in `Debug`).
    pub secret_key: String,
    /// Path-style addressing (`http://host/bucket/key`), which most self-hosted stores need.
    pub force_path_style: bool,
    /// Bucket layout.
    pub layout: S3Layout,
    /// Multipart part size in bytes (at least 5 MiB).
    pub part_size: usize,
    /// Uploads that may receive their next part while sending the previous one (two parts in
    /// memory); the others hold one part at a time.
    pub pipelined_uploads: usize,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one attempt of one operation (a part upload included).
    pub operation_timeout: Duration,
    /// Attempts per operation (transient errors only are retried, with backoff).
    pub max_attempts: u32,
    /// Stream uploads of announced length into one `PutObject` (aws-chunked with a trailing
    /// checksum); off for stores that do not decode aws-chunked bodies.
    pub stream_uploads: bool,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"[REDACTED]")
            .field("force_path_style", &self.force_path_style)
            .field("layout", &self.layout)
            .field("part_size", &self.part_size)
            .field("stream_uploads", &self.stream_uploads)
            .finish_non_exhaustive()
    }
}

/// A failed S3 call: the operation and what went wrong, without bucket, key or credential.
#[derive(Debug, thiserror::Error)]
#[error("S3 {operation} failed: {kind}")]
pub struct S3Failure {
    operation: &'static str,
    kind: String,
}

fn failure<E>(operation: &'static str, e: &SdkError<E, HttpResponse>) -> S3Failure
where
    E: ProvideErrorMetadata,
{
    let kind = match e {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let hint = match (service.err().code(), status) {
                (Some("SignatureDoesNotMatch" | "InvalidAccessKeyId" | "AccessDenied"), _)
                | (None, 401 | 403) => ": check S3_ACCESS_KEY and S3_SECRET_KEY",
                (Some("NoSuchBucket"), _) | (None, 404) => ": the bucket does not exist",
                _ => "",
            };
            let code = service.err().code().unwrap_or(match status {
                401 | 403 => "AccessDenied",
                404 => "NotFound",
                _ => "error",
            });
            format!("{code} (HTTP {status}){hint}")
        }
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(d) if d.is_timeout() => "timed out".to_owned(),
        SdkError::DispatchFailure(d) if d.is_io() => "could not connect".to_owned(),
        SdkError::DispatchFailure(_) => "could not send the request".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        SdkError::ConstructionFailure(_) => "request could not be built".to_owned(),
        _ => "unknown failure".to_owned(),
    };
    S3Failure { operation, kind }
}

fn unavailable<E: ProvideErrorMetadata>(
    operation: &'static str,
    e: &SdkError<E, HttpResponse>,
) -> BlobError {
    BlobError::Unavailable(Box::new(failure(operation, e)))
}

fn error_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

fn is_not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(
        error_code(e),
        Some("NoSuchKey" | "NoSuchBucket" | "NotFound")
    )
}

/// Keeps blobs in S3 buckets.
#[derive(Clone)]
pub struct S3BlobStore {
    client: Client,
    layout: S3Layout,
    region: String,
    part_size: usize,
    operation_timeout: Duration,
    stream_uploads: Arc<std::sync::atomic::AtomicBool>,
    ready_buckets: Arc<Mutex<HashSet<String>>>,
    pipeline: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("layout", &self.layout)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

struct Part {
    bytes: Bytes,
    ended: bool,
}

/// Signs a request with the SHA-256 of its body computed while the body was received, instead of
/// letting the SDK hash the same bytes again; S3 still checks the body against it.
#[derive(Debug)]
struct PrecomputedPayloadHash(String);

impl Intercept for PrecomputedPayloadHash {
    fn name(&self) -> &'static str {
        "PrecomputedPayloadHash"
    }

    fn modify_before_signing(
        &self,
        _context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // A streaming (aws-chunked) body signs its own way; leave any override already chosen.
        if cfg.load::<PayloadSigningOverride>().is_none() {
            cfg.interceptor_state()
                .store_put(PayloadSigningOverride::Precomputed(self.0.clone()));
        }
        Ok(())
    }
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

/// Deletes an object in the background when dropped armed.
struct DeleteOnDrop {
    client: Client,
    bucket: String,
    key: String,
    armed: bool,
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

/// The body of a `GetObject` as a [`ByteStream`]; a failure mid-way is the backend's.
fn object_stream(body: S3Body) -> ByteStream {
    futures_util::stream::unfold(body, |mut body| async move {
        match body.next().await {
            Some(Ok(bytes)) => Some((Ok(bytes), body)),
            Some(Err(e)) => Some((Err(BodyError::Backend(Box::new(e))), body)),
            None => None,
        }
    })
    .boxed()
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
async fn abort_upload(
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

async fn read_part(
    body: &mut ByteStream,
    digest: &mut BlobDigester,
    size: usize,
    carry: &mut Option<Bytes>,
) -> Result<Part, BlobError> {
    let mut buffer = PartBuffer::new(size)?;
    loop {
        let chunk = match carry.take() {
            Some(rest) => rest,
            None => match body.next().await {
                Some(Ok(chunk)) => {
                    digest.update(&chunk);
                    chunk
                }
                Some(Err(e)) => return Err(BlobError::Body(e)),
                None => {
                    return Ok(Part {
                        bytes: buffer.freeze()?,
                        ended: true,
                    });
                }
            },
        };
        let fits = buffer.remaining();
        buffer.push(&chunk);
        if chunk.len() >= fits {
            if chunk.len() > fits {
                *carry = Some(chunk.slice(fits..));
            }
            return Ok(Part {
                bytes: buffer.freeze()?,
                ended: false,
            });
        }
    }
}

/// Bodies announced at least this long stream into one `PutObject`; shorter ones are buffered,
/// so that a transient S3 error can be retried with the same bytes.
pub const STREAMED_PUT_MIN: u64 = 1024 * 1024;

/// The largest object one `PutObject` may write.
const MAX_SINGLE_PUT: u64 = 5 * 1024 * 1024 * 1024;

/// Chunks queued between the upload body and the `PutObject` request.
const STREAMED_PUT_QUEUE: usize = 2;

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// How a body compared with the length its `PutObject` announced.
#[derive(Debug)]
enum Fit {
    /// Exactly as long.
    Exact,
    /// Ended after `actual` bytes; the object was completed with zeros.
    Short { actual: u64 },
    /// Went on past the announced length; `rest` followed, and the stream holds the remainder.
    Long { rest: Bytes },
}

/// How feeding a streamed `PutObject` ended.
#[derive(Debug)]
enum Fed {
    /// All announced bytes were sent.
    Sent(Fit),
    /// The body failed; the request was cut off before its last byte.
    Failed(BodyError),
    /// The request stopped taking the body.
    Abandoned,
}

/// Sends `len` bytes of `source` to `tx`. The last of them leave only once the source's own
/// end (or what follows) is known, so a body that fails at its very end never completes the
/// object.
async fn feed_exactly(
    source: &mut ByteStream,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, BoxError>>,
    len: u64,
) -> Fed {
    let mut sent = 0u64;
    loop {
        // A request that failed early stops taking the body: notice it without waiting for the
        // client's next chunk.
        let next = tokio::select! {
            next = source.next() => next,
            () = tx.closed() => return Fed::Abandoned,
        };
        let chunk = match next {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                let _ = tx.send(Err("the upload body failed".into())).await;
                return Fed::Failed(e);
            }
            None => {
                let actual = sent;
                while sent < len {
                    let n = usize::try_from(len - sent).map_or(ZEROS.len(), |n| n.min(ZEROS.len()));
                    if tx.send(Ok(Bytes::from_static(&ZEROS[..n]))).await.is_err() {
                        return Fed::Abandoned;
                    }
                    sent += n as u64;
                }
                return Fed::Sent(Fit::Short { actual });
            }
        };
        let room = len - sent;
        let size = chunk.len() as u64;
        if size < room {
            sent += size;
            if tx.send(Ok(chunk)).await.is_err() {
                return Fed::Abandoned;
            }
            continue;
        }
        let cut = usize::try_from(room).unwrap_or(chunk.len());
        let mut rest = chunk.slice(cut..);
        let last = chunk.slice(..cut);
        while rest.is_empty() {
            match source.next().await {
                None => break,
                Some(Ok(more)) => rest = more,
                Some(Err(e)) => {
                    let _ = tx.send(Err("the upload body failed".into())).await;
                    return Fed::Failed(e);
                }
            }
        }
        if tx.send(Ok(last)).await.is_err() {
            return Fed::Abandoned;
        }
        return Fed::Sent(if rest.is_empty() {
            Fit::Exact
        } else {
            Fit::Long { rest }
        });
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

/// A request body fed chunk by chunk through a channel, of a length known in advance.
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, BoxError>>,
    len: u64,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|chunk| chunk.map(http_body::Frame::data)))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len)
    }
}

fn to_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> OffsetDateTime {
    t.and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl S3BlobStore {
    /// A store for `settings`; nothing is contacted yet.
    pub fn new(settings: &S3Settings) -> Self {
        let credentials = Credentials::new(
            settings.access_key.clone(),
            settings.secret_key.clone(),
            None,
            None,
            "stowage-config",
        );
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials)
            .force_path_style(settings.force_path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(settings.max_attempts.max(1))
                    .with_initial_backoff(Duration::from_millis(100)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(settings.connect_timeout)
                    .operation_attempt_timeout(settings.operation_timeout)
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        Self {
            client: Client::from_conf(builder.build()),
            layout: settings.layout.clone(),
            region: settings.region.clone(),
            part_size: settings.part_size.max(MIN_PART_SIZE),
            operation_timeout: settings.operation_timeout,
            stream_uploads: Arc::new(std::sync::atomic::AtomicBool::new(settings.stream_uploads)),
            ready_buckets: Arc::new(Mutex::new(HashSet::new())),
            pipeline: Arc::new(tokio::sync::Semaphore::new(settings.pipelined_uploads)),
        }
    }

    fn location(&self, key: &BlobKey) -> (String, String) {
        match &self.layout {
            S3Layout::Single { bucket } => (bucket.clone(), key.to_string()),
            S3Layout::PerAccount { prefix } => (
                format!("{prefix}-{}", key.account_id().get()),
                key.file_id().to_string(),
            ),
        }
    }

    fn is_ready(&self, bucket: &str) -> bool {
        self.ready_buckets
            .lock()
            .is_ok_and(|set| set.contains(bucket))
    }

    fn mark_ready(&self, bucket: &str, ready: bool) {
        if let Ok(mut set) = self.ready_buckets.lock() {
            if ready {
                set.insert(bucket.to_owned());
            } else {
                set.remove(bucket);
            }
        }
    }

    /// Creates `bucket` unless it exists; safe when several replicas race to create it.
    ///
    /// # Errors
    /// [`BlobError::Unavailable`] when the bucket neither exists nor can be created.
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<(), BlobError> {
        if self.is_ready(bucket) {
            return Ok(());
        }
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => {
                self.mark_ready(bucket, true);
                return Ok(());
            }
            Err(e) if !matches!(e.raw_response().map(|r| r.status().as_u16()), Some(404)) => {
                return Err(unavailable("HeadBucket", &e));
            }
            Err(_) => {}
        }
        let mut create = self.client.create_bucket().bucket(bucket);
        if self.region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => {}
            Err(e)
                if matches!(
                    error_code(&e),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) => {}
            Err(e) => return Err(unavailable("CreateBucket", &e)),
        }
        self.mark_ready(bucket, true);
        Ok(())
    }

    /// Creates the single bucket if it is missing (nothing to do for the per-account layout).
    ///
    /// # Errors
    /// [`BlobError::Unavailable`].
    pub async fn prepare(&self) -> Result<(), BlobError> {
        match &self.layout {
            S3Layout::Single { bucket } => self.ensure_bucket(bucket).await,
            S3Layout::PerAccount { .. } => Ok(()),
        }
    }

    async fn upload_part(
        client: Client,
        bucket: String,
        key: String,
        upload_id: String,
        number: i32,
        bytes: Bytes,
    ) -> Result<CompletedPart, BlobError> {
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
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(output.e_tag().map(str::to_owned))
            .build())
    }

    async fn put_multipart(
        &self,
        bucket: &str,
        key: &str,
        first: Bytes,
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
        let spawn_part = |number: i32, bytes: Bytes| {
            PartTask(tokio::spawn(Self::upload_part(
                self.client.clone(),
                bucket.to_owned(),
                key.to_owned(),
                upload_id.clone(),
                number,
                bytes,
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
                let next = match read_part(body, digest, self.part_size, carry).await {
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
                let part = spawn_part(number, next.bytes);
                if next.ended {
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

    /// Writes a body of unknown length: one `PutObject` when it fits in a part, else a multipart
    /// upload; `digest` sees every byte read from `body`.
    async fn put_buffered(
        &self,
        bucket: &str,
        object: &str,
        body: &mut ByteStream,
        digest: &mut BlobDigester,
    ) -> Result<(), BlobError> {
        let mut carry = None;
        let first = read_part(body, digest, self.part_size, &mut carry).await?;
        if !first.ended {
            return self
                .put_multipart(bucket, object, first.bytes, body, digest, &mut carry)
                .await;
        }
        let sha256 = digest.clone().finish().sha256.to_hex();
        self.client
            .put_object()
            .bucket(bucket)
            .key(object)
            .content_length(i64::try_from(first.bytes.len()).unwrap_or(i64::MAX))
            .body(S3Body::from(first.bytes))
            .customize()
            .interceptor(PrecomputedPayloadHash(sha256))
            .send()
            .await
            .map_err(|e| {
                if matches!(error_code(&e), Some("NoSuchBucket")) {
                    self.mark_ready(bucket, false);
                }
                unavailable("PutObject", &e)
            })?;
        Ok(())
    }

    /// Streams a body announced as `len` bytes long into one `PutObject`, with no buffering. The
    /// request is sent as aws-chunked with a CRC32 trailer that S3 checks (each chunk also signed
    /// when the endpoint is plain HTTP). A body that turns out shorter or longer than announced
    /// (a form with parts after the file, unusual framing) completes the object with zeros or
    /// leaves its tail unsent; the object is then rewritten from its good prefix and the tail,
    /// and checked against the SHA-256 of what the client sent.
    async fn put_streamed(
        &self,
        bucket: &str,
        object: &str,
        body: ByteStream,
        len: u64,
    ) -> Result<StoredBlob, BlobError> {
        // Dropped at any point (the client went away), the object is deleted in the background:
        // the PutObject may have completed with padding, or before its record was written.
        let mut guard = DeleteOnDrop {
            client: self.client.clone(),
            bucket: bucket.to_owned(),
            key: object.to_owned(),
            armed: true,
        };
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
    async fn delete_quietly(&self, bucket: &str, object: &str) {
        delete_object_quietly(&self.client, bucket, object).await;
    }

    async fn list_bucket(
        &self,
        bucket: &str,
        account: Option<AccountId>,
        items: &mut Vec<ListedBlob>,
    ) -> Result<(), BlobError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| unavailable("ListObjectsV2", &e))?;
            for object in page.contents() {
                let Some(name) = object.key() else { continue };
                let parsed = match account {
                    Some(account) => FileId::parse(name).ok().map(|id| BlobKey::new(account, id)),
                    None => name.split_once('/').and_then(|(a, f)| {
                        Some(BlobKey::new(
                            AccountId::new(a.parse().ok()?),
                            FileId::parse(f).ok()?,
                        ))
                    }),
                };
                if let Some(key) = parsed {
                    items.push(ListedBlob::Blob {
                        key,
                        size: u64::try_from(object.size().unwrap_or(0)).unwrap_or(0),
                        modified: to_time(object.last_modified()),
                    });
                }
            }
        }
        let mut uploads = self
            .client
            .list_multipart_uploads()
            .bucket(bucket)
            .send()
            .await;
        loop {
            let page = match uploads {
                Ok(page) => page,
                Err(e) if matches!(error_code(&e), Some("NotImplemented")) => {
                    tracing::warn!(
                        "this S3 store cannot list unfinished multipart uploads; only objects are reconciled"
                    );
                    return Ok(());
                }
                Err(e) => return Err(unavailable("ListMultipartUploads", &e)),
            };
            for upload in page.uploads() {
                if let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) {
                    items.push(ListedBlob::Stray {
                        id: format!("{bucket}\t{key}\t{id}"),
                        modified: to_time(upload.initiated()),
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(());
            }
            uploads = self
                .client
                .list_multipart_uploads()
                .bucket(bucket)
                .set_key_marker(page.next_key_marker().map(str::to_owned))
                .set_upload_id_marker(page.next_upload_id_marker().map(str::to_owned))
                .send()
                .await;
        }
    }

    fn owns_bucket(&self, bucket: &str) -> bool {
        match &self.layout {
            S3Layout::Single { bucket: own } => own == bucket,
            S3Layout::PerAccount { prefix } => bucket
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|account| account.parse::<i64>().is_ok()),
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        body: ByteStream,
        len_hint: Option<u64>,
    ) -> Result<StoredBlob, BlobError> {
        let (bucket, object) = self.location(key);
        if matches!(self.layout, S3Layout::PerAccount { .. }) {
            self.ensure_bucket(&bucket).await?;
        }
        let streaming = self
            .stream_uploads
            .load(std::sync::atomic::Ordering::Relaxed);
        if let Some(len) =
            len_hint.filter(|len| streaming && (STREAMED_PUT_MIN..=MAX_SINGLE_PUT).contains(len))
        {
            return self.put_streamed(&bucket, &object, body, len).await;
        }
        let mut body = body;
        let mut digest = BlobDigester::new();
        self.put_buffered(&bucket, &object, &mut body, &mut digest)
            .await?;
        Ok(digest.finish())
    }

    async fn get(&self, key: &BlobKey, range: Option<ByteRange>) -> Result<BlobBody, BlobError> {
        let (bucket, object) = self.location(key);
        let mut request = self.client.get_object().bucket(bucket).key(object);
        if let Some(r) = range {
            request = request.range(format!("bytes={}-{}", r.start(), r.end()));
        }
        let output = match request.send().await {
            Ok(output) => output,
            Err(e) if is_not_found(&e) => return Err(BlobError::NotFound),
            Err(e) => return Err(unavailable("GetObject", &e)),
        };
        let len = u64::try_from(output.content_length().unwrap_or(0)).unwrap_or(0);
        Ok(BlobBody {
            len,
            stream: object_stream(output.body),
        })
    }

    async fn head(&self, key: &BlobKey) -> Result<u64, BlobError> {
        let (bucket, object) = self.location(key);
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(object)
            .send()
            .await
        {
            Ok(head) => Ok(head
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0)),
            // A HEAD answer has no body, so a missing object may come without an error code.
            Err(e) if is_not_found(&e) || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                Err(BlobError::NotFound)
            }
            Err(e) => Err(unavailable("HeadObject", &e)),
        }
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        let (bucket, object) = self.location(key);
        match self
            .client
            .delete_object()
            .bucket(bucket)
            .key(object)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(unavailable("DeleteObject", &e)),
        }
    }

    fn delete_detached(&self, key: BlobKey) {
        let store = self.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = store.delete(&key).await {
                    tracing::warn!(error = %e, "blob clean-up failed; gc will remove it");
                }
            });
        }
    }

    async fn health(&self) -> Result<(), BlobError> {
        match &self.layout {
            S3Layout::Single { bucket } => self
                .client
                .head_bucket()
                .bucket(bucket)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| unavailable("HeadBucket", &e)),
            S3Layout::PerAccount { .. } => self
                .client
                .list_buckets()
                .send()
                .await
                .map(|_| ())
                .map_err(|e| unavailable("ListBuckets", &e)),
        }
    }

    async fn list(&self) -> Result<BlobListing, BlobError> {
        let mut items = Vec::new();
        match &self.layout {
            S3Layout::Single { bucket } => self.list_bucket(bucket, None, &mut items).await?,
            S3Layout::PerAccount { prefix } => {
                let buckets = self
                    .client
                    .list_buckets()
                    .send()
                    .await
                    .map_err(|e| unavailable("ListBuckets", &e))?;
                for bucket in buckets.buckets() {
                    let Some(name) = bucket.name() else { continue };
                    let Some(account) = name
                        .strip_prefix(prefix.as_str())
                        .and_then(|rest| rest.strip_prefix('-'))
                        .and_then(|a| a.parse::<i64>().ok())
                    else {
                        continue;
                    };
                    self.list_bucket(name, Some(AccountId::new(account)), &mut items)
                        .await?;
                }
            }
        }
        Ok(futures_util::stream::iter(items.into_iter().map(Ok)).boxed())
    }

    async fn remove_stray(&self, id: &str) -> Result<(), BlobError> {
        let mut parts = id.splitn(3, '\t');
        let (Some(bucket), Some(key), Some(upload_id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(BlobError::Unavailable(
                "not a leftover of this store".into(),
            ));
        };
        if !self.owns_bucket(bucket) {
            return Err(BlobError::Unavailable(
                "not a leftover of this store".into(),
            ));
        }
        abort_upload(&self.client, bucket, key, upload_id).await
    }
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    #[tokio::test]
    async fn the_precomputed_hash_is_the_one_signed_and_sent() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let store = S3BlobStore::new(&S3Settings {
            endpoint: Some(server.uri()),
            region: "us-east-1".into(),
            access_key: "AKUNIT".into(),
            secret_key: "SKUNITSECRET".into(),
            force_path_style: true,
            layout: S3Layout::Single {
                bucket: "unit".into(),
            },
            part_size: MIN_PART_SIZE,
            pipelined_uploads: 1,
            connect_timeout: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(10),
            max_attempts: 1,
            stream_uploads: true,
        });
        // Not the body's hash: the SDK must send what it was given rather than hash the body.
        let given = "ab".repeat(32);
        store
            .client
            .put_object()
            .bucket("unit")
            .key("k")
            .body(S3Body::from(Bytes::from_static(b"payload")))
            .customize()
            .interceptor(PrecomputedPayloadHash(given.clone()))
            .send()
            .await
            .unwrap();

        let requests = server.received_requests().await.unwrap();
        let sent = requests[0]
            .headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok());
        assert_eq!(sent, Some(given.as_str()));
    }
}
