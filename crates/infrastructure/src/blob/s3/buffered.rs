//! A body of unknown length: one `PutObject` signed with its SHA-256 when it fits in a part,
//! else a multipart upload.

use aws_runtime::auth::PayloadSigningOverride;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError as SdkBoxError;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use stowage_application::ports::BlobError;
use stowage_application::stream::{BlobDigester, ByteStream};

use super::S3BlobStore;
use super::error::{error_code, unavailable};
use super::multipart::read_part;

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
    ) -> Result<(), SdkBoxError> {
        // A streaming (aws-chunked) body signs its own way; leave any override already chosen.
        if cfg.load::<PayloadSigningOverride>().is_none() {
            cfg.interceptor_state()
                .store_put(PayloadSigningOverride::Precomputed(self.0.clone()));
        }
        Ok(())
    }
}

impl S3BlobStore {
    /// Writes a body of unknown length: one `PutObject` when it fits in a part, else a multipart
    /// upload; `digest` sees every byte read from `body`.
    pub(super) async fn put_buffered(
        &self,
        bucket: &str,
        object: &str,
        body: &mut ByteStream,
        digest: &mut BlobDigester,
    ) -> Result<(), BlobError> {
        let mut carry = None;
        let first = read_part(body, digest, self.part_size, &mut carry, &self.budget).await?;
        if !first.ended {
            return self
                .put_multipart(bucket, object, first, body, digest, &mut carry)
                .await;
        }
        let sha256 = digest.clone().finish().sha256.to_hex();
        // A PutObject that fails, or is dropped, may have written the object all the same (an
        // answer lost on the way back). It is not deleted: the key may hold an object this put
        // was replacing (a policy's rewrite), which must survive a failed rewrite. A new key's
        // object is an orphan that gc removes, and the log says so.
        let mut guard = LeftBehind {
            object,
            armed: true,
        };
        let sent = self
            .client
            .put_object()
            .bucket(bucket)
            .key(object)
            .content_length(i64::try_from(first.bytes.len()).unwrap_or(i64::MAX))
            .body(S3Body::from(first.bytes))
            .customize()
            .interceptor(PrecomputedPayloadHash(sha256))
            .send()
            .await;
        match sent {
            Ok(_) => {
                guard.armed = false;
                Ok(())
            }
            // No bucket, no object.
            Err(e) if matches!(error_code(&e), Some("NoSuchBucket")) => {
                guard.armed = false;
                self.mark_ready(bucket, false);
                Err(unavailable("PutObject", &e))
            }
            Err(e) => Err(unavailable("PutObject", &e)),
        }
    }
}

/// Warns, when dropped armed, that a failed or abandoned `PutObject` may have stored its object.
struct LeftBehind<'a> {
    object: &'a str,
    armed: bool,
}

impl Drop for LeftBehind<'_> {
    fn drop(&mut self) {
        if self.armed {
            tracing::warn!(
                object = self.object,
                "object of a failed put may have been stored; gc will remove it unless a record has it"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::blob::s3::{MIN_PART_SIZE, S3Layout, S3Settings};

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
            buffer_bytes: 64 * 1024 * 1024,
            buffer_wait: Duration::from_secs(10),
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
