//! [`DirectUploadStore`] on S3: presigned `PutObject` and `UploadPart` requests, so that clients
//! write objects into the buckets of [`S3BlobStore`] themselves.
//!
//! A single `PUT` signs its content type, its exact length and, when the client states one, the
//! SHA-256 as `x-amz-checksum-sha256`: the store then refuses any other bytes, and `HeadObject` in
//! checksum mode says the checksum it verified. It writes the staging object `direct/{upload}`
//! in the bucket of the blob key (the URL works until it expires, so it must never write a
//! recorded file); completion copies it under the blob key with `CopyObject`. Staging names
//! never parse as blob keys: listings give them as strays.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::presigning::{PresignedRequest as S3Presigned, PresigningConfig};
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use stowage_application::ports::{
    BlobError, DirectUploadError, DirectUploadId, DirectUploadStore, PresignedRequest,
    StoredObject, UploadedPart,
};
use stowage_domain::{BlobKey, Sha256Digest};

use super::error::{error_code, failure, is_not_found, unavailable};
use super::multipart::abort_upload;
use super::{S3BlobStore, S3Layout};

/// Where single `PUT`s are staged, in each bucket; never a blob key's object name.
pub(super) const STAGING_PREFIX: &str = "direct/";

/// Presigned writes into the buckets of an [`S3BlobStore`].
#[derive(Clone, Debug)]
pub struct S3DirectUploads {
    store: S3BlobStore,
}

impl S3DirectUploads {
    /// Direct uploads into the buckets of `store`, signed with its credentials and endpoint.
    pub fn new(store: S3BlobStore) -> Self {
        Self { store }
    }

    async fn bucket_of(&self, key: &BlobKey) -> Result<(String, String), BlobError> {
        let (bucket, object) = self.store.location(key);
        if matches!(self.store.layout, S3Layout::PerAccount { .. }) {
            self.store.ensure_bucket(&bucket).await?;
        }
        Ok((bucket, object))
    }

    /// The bucket and name of the staging object of `upload`: the bucket of `key`.
    fn staged(&self, key: &BlobKey, upload: DirectUploadId) -> (String, String) {
        let (bucket, _) = self.store.location(key);
        (bucket, format!("{STAGING_PREFIX}{upload}"))
    }

    /// The size and verified checksum of `object`.
    async fn head(&self, bucket: String, object: String) -> Result<StoredObject, BlobError> {
        let head = match self
            .store
            .client
            .head_object()
            .bucket(bucket)
            .key(object)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(head) => head,
            Err(e)
                if is_not_found(&e)
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
            {
                return Err(BlobError::NotFound);
            }
            Err(e) => return Err(unavailable("HeadObject", &e)),
        };
        let sha256 = head
            .checksum_sha256()
            .and_then(|b64| BASE64.decode(b64).ok())
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(Sha256Digest::from_bytes);
        Ok(StoredObject {
            size: head
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
            sha256,
        })
    }
}

impl S3DirectUploads {
    /// Every part the store holds for `upload`, for a completion that names none; `false` when
    /// the store knows no such upload.
    async fn uploaded_parts(
        &self,
        bucket: &str,
        object: &str,
        upload: &str,
        out: &mut Vec<CompletedPart>,
    ) -> Result<bool, DirectUploadError> {
        let mut pages = self
            .store
            .client
            .list_parts()
            .bucket(bucket)
            .key(object)
            .upload_id(upload)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(e) if matches!(error_code(&e), Some("NoSuchUpload")) => return Ok(false),
                Err(e) => return Err(DirectUploadError::Blob(unavailable("ListParts", &e))),
            };
            out.extend(page.parts().iter().map(|part| {
                CompletedPart::builder()
                    .set_part_number(part.part_number())
                    .set_e_tag(part.e_tag().map(str::to_owned))
                    .build()
            }));
        }
        if out.is_empty() {
            return Err(DirectUploadError::Refused(
                "no part was uploaded".to_owned(),
            ));
        }
        Ok(true)
    }
}

fn config(lifetime: Duration) -> Result<PresigningConfig, BlobError> {
    PresigningConfig::expires_in(lifetime).map_err(|e| BlobError::Unavailable(Box::new(e)))
}

fn presigned(request: &S3Presigned) -> PresignedRequest {
    PresignedRequest {
        url: request.uri().to_owned(),
        headers: request
            .headers()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.to_owned()))
            .collect(),
    }
}

fn length(size: u64) -> Result<i64, BlobError> {
    i64::try_from(size).map_err(|e| BlobError::Unavailable(Box::new(e)))
}

#[async_trait]
impl DirectUploadStore for S3DirectUploads {
    async fn presign_put(
        &self,
        key: &BlobKey,
        upload: DirectUploadId,
        size: u64,
        content_type: &str,
        sha256: Option<Sha256Digest>,
        lifetime: Duration,
    ) -> Result<PresignedRequest, BlobError> {
        let (bucket, _) = self.bucket_of(key).await?;
        let (_, object) = self.staged(key, upload);
        let request = self
            .store
            .client
            .put_object()
            .bucket(bucket)
            .key(object)
            .content_length(length(size)?)
            .content_type(content_type)
            .set_checksum_sha256(sha256.map(|d| BASE64.encode(d.as_bytes())))
            .presigned(config(lifetime)?)
            .await
            .map_err(|e| unavailable("PutObject presign", &e))?;
        Ok(presigned(&request))
    }

    async fn start_multipart(
        &self,
        key: &BlobKey,
        content_type: &str,
    ) -> Result<String, BlobError> {
        let (bucket, object) = self.bucket_of(key).await?;
        let output = self
            .store
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(object)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| unavailable("CreateMultipartUpload", &e))?;
        output
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| BlobError::Unavailable("CreateMultipartUpload gave no upload id".into()))
    }

    async fn presign_part(
        &self,
        key: &BlobKey,
        upload: &str,
        number: u32,
        size: u64,
        lifetime: Duration,
    ) -> Result<PresignedRequest, BlobError> {
        let (bucket, object) = self.store.location(key);
        let number = i32::try_from(number).map_err(|e| BlobError::Unavailable(Box::new(e)))?;
        let request = self
            .store
            .client
            .upload_part()
            .bucket(bucket)
            .key(object)
            .upload_id(upload)
            .part_number(number)
            .content_length(length(size)?)
            .presigned(config(lifetime)?)
            .await
            .map_err(|e| unavailable("UploadPart presign", &e))?;
        Ok(presigned(&request))
    }

    async fn complete_multipart(
        &self,
        key: &BlobKey,
        upload: &str,
        parts: &[UploadedPart],
    ) -> Result<(), DirectUploadError> {
        let (bucket, object) = self.store.location(key);
        let mut completed = Vec::with_capacity(parts.len());
        if parts.is_empty()
            && !self
                .uploaded_parts(&bucket, &object, upload, &mut completed)
                .await?
        {
            // Gone: completed by an earlier attempt whose answer was lost, or aborted.
            return match self.inspect(key).await {
                Ok(_) => Ok(()),
                Err(_) => Err(DirectUploadError::Refused(
                    "the multipart upload is gone".to_owned(),
                )),
            };
        }
        for part in parts {
            let number = i32::try_from(part.number)
                .map_err(|_| DirectUploadError::Refused("part number out of range".to_owned()))?;
            completed.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(part.etag.clone())
                    .build(),
            );
        }
        let result = self
            .store
            .client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(object)
            .upload_id(upload)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Completed by an earlier attempt whose answer was lost: the object is there.
            Err(e)
                if matches!(error_code(&e), Some("NoSuchUpload"))
                    && self.inspect(key).await.is_ok() =>
            {
                Ok(())
            }
            Err(e) => match error_code(&e) {
                Some(code @ ("InvalidPart" | "InvalidPartOrder")) => Err(DirectUploadError::Parts(
                    format!("the parts cannot be assembled ({code})"),
                )),
                Some(
                    code @ ("EntityTooSmall" | "NoSuchUpload" | "MalformedXML" | "InvalidArgument"),
                ) => Err(DirectUploadError::Refused(format!(
                    "the parts cannot be assembled ({code})"
                ))),
                _ => Err(DirectUploadError::Blob(BlobError::Unavailable(Box::new(
                    failure("CompleteMultipartUpload", &e),
                )))),
            },
        }
    }

    async fn abort_multipart(&self, key: &BlobKey, upload: &str) -> Result<(), BlobError> {
        let (bucket, object) = self.store.location(key);
        abort_upload(&self.store.client, &bucket, &object, upload).await
    }

    async fn inspect(&self, key: &BlobKey) -> Result<StoredObject, BlobError> {
        let (bucket, object) = self.store.location(key);
        self.head(bucket, object).await
    }

    async fn inspect_staged(
        &self,
        key: &BlobKey,
        upload: DirectUploadId,
    ) -> Result<StoredObject, BlobError> {
        let (bucket, object) = self.staged(key, upload);
        self.head(bucket, object).await
    }

    async fn promote(&self, key: &BlobKey, upload: DirectUploadId) -> Result<(), BlobError> {
        let (bucket, object) = self.store.location(key);
        let (_, staged) = self.staged(key, upload);
        // Bucket names and staging names need no percent-encoding.
        let result = self
            .store
            .client
            .copy_object()
            .bucket(&bucket)
            .key(object)
            .copy_source(format!("{bucket}/{staged}"))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if is_not_found(&e)
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Err(BlobError::NotFound)
            }
            Err(e) => Err(unavailable("CopyObject", &e)),
        }
    }

    async fn discard_staged(&self, key: &BlobKey, upload: DirectUploadId) -> Result<(), BlobError> {
        let (bucket, object) = self.staged(key, upload);
        match self
            .store
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

    fn part_size(&self) -> u64 {
        self.store.part_size as u64
    }

    fn stray_id(&self, key: &BlobKey, upload: &str) -> String {
        let (bucket, object) = self.store.location(key);
        format!("{bucket}\t{object}\t{upload}")
    }

    fn staged_id(&self, key: &BlobKey, upload: DirectUploadId) -> String {
        let (bucket, object) = self.staged(key, upload);
        format!("{bucket}\t{object}")
    }
}
