//! [`BlobStore`] on any S3-compatible store, with aws-sdk-s3.
//!
//! Uploads stream. A body whose length the request announces (at least [`STREAMED_PUT_MIN`]) goes
//! straight into one `PutObject` as it arrives, aws-chunked with a CRC32 trailer. A body of
//! unknown length smaller than one part is one `PutObject` signed with its SHA-256; a larger one
//! is a multipart upload where part N is sent while part N+1 is being received (two parts in
//! memory at most). Any failure, limit breach or dropped request leaves no object and no part.
//! Downloads stream a ranged `GetObject` straight through. Errors that reach the application name
//! the operation and the S3 error code, never a bucket, a key or a credential. A file's image
//! variants are objects beside it, `{file_id}.variants/{name}`, written like any blob and removed
//! together by one listing of that prefix and `DeleteObjects`.

mod buckets;
mod buffered;
mod error;
mod feed;
mod listing;
mod multipart;
mod presign;
#[cfg(target_os = "linux")]
mod quickack;
mod resumable;
mod settings;
mod streamed;
mod variants;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream as S3Body;
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use stowage_application::BodyError;
use stowage_application::ports::{BlobBody, BlobError, BlobListing, BlobStore};
use stowage_application::stream::{BlobDigester, ByteStream, StoredBlob};
use stowage_domain::{BlobKey, ByteRange};

pub use buckets::S3Layout;
pub use error::S3Failure;
pub use multipart::MIN_PART_SIZE;
pub use presign::S3DirectUploads;
pub use resumable::{ResumableFailure, S3ResumableStore};
pub use settings::S3Settings;
pub use streamed::STREAMED_PUT_MIN;

use super::budget::PartBudget;
use error::{is_not_found, unavailable};
use streamed::MAX_SINGLE_PUT;

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
    budget: PartBudget,
}

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlobStore")
            .field("layout", &self.layout)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
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

/// Whether `endpoint` is reached over plain HTTP, where Stowage makes the S3 client's
/// connections itself (see `quickack`).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn is_plain_http(endpoint: &str) -> bool {
    endpoint
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

impl S3BlobStore {
    /// A store for `settings`; nothing is contacted yet.
    pub fn new(settings: &S3Settings) -> Self {
        let credentials = Credentials::new(
            settings.access_key.clone(),
            settings.secret_key.expose_secret().to_owned(),
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
            #[cfg(target_os = "linux")]
            if is_plain_http(endpoint) && !quickack::proxied_by_environment(endpoint) {
                builder =
                    builder.http_client(quickack::QuickAckClient::new(settings.connect_timeout));
            }
        }
        let part_size = settings.part_size.max(MIN_PART_SIZE);
        Self {
            client: Client::from_conf(builder.build()),
            layout: settings.layout.clone(),
            region: settings.region.clone(),
            part_size,
            operation_timeout: settings.operation_timeout,
            stream_uploads: Arc::new(std::sync::atomic::AtomicBool::new(settings.stream_uploads)),
            ready_buckets: Arc::new(Mutex::new(HashSet::new())),
            pipeline: Arc::new(tokio::sync::Semaphore::new(settings.pipelined_uploads)),
            budget: PartBudget::new(settings.buffer_bytes, part_size, settings.buffer_wait),
        }
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        body: ByteStream,
        length: Option<u64>,
    ) -> Result<StoredBlob, BlobError> {
        let (bucket, object) = self.location(key);
        if matches!(self.layout, S3Layout::PerAccount { .. }) {
            self.ensure_bucket(&bucket).await?;
        }
        let streaming = self
            .stream_uploads
            .load(std::sync::atomic::Ordering::Relaxed);
        if let Some(len) =
            length.filter(|len| streaming && (STREAMED_PUT_MIN..=MAX_SINGLE_PUT).contains(len))
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
            Err(e)
                if is_not_found(&e)
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
            {
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

    async fn delete_variants(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.delete_variant_objects(key).await
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
        self.list_blobs().await
    }

    async fn remove_stray(&self, id: &str) -> Result<(), BlobError> {
        self.remove_stray_upload(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::is_plain_http;

    #[test]
    fn only_plain_http_endpoints_get_the_quick_ack_client() {
        assert!(is_plain_http("http://127.0.0.1:9000"));
        assert!(is_plain_http("HTTP://minio.internal"));
        assert!(!is_plain_http("https://s3.eu-west-1.amazonaws.com"));
        assert!(!is_plain_http("http:/"));
        assert!(!is_plain_http(""));
    }
}
