//! Listing for reconciliation: the blobs (and image variants) in the store's buckets, and as
//! strays its unfinished multipart uploads (to abort), direct uploads' staging objects and
//! whatever sits in a variants folder without being a variant (to delete).

use futures_util::StreamExt;
use stowage_application::ports::{BlobError, BlobListing, ListedBlob};
use stowage_domain::AccountId;
use time::OffsetDateTime;

use super::error::{error_code, is_not_found, unavailable};
use super::multipart::abort_upload;
use super::presign::STAGING_PREFIX;
use super::variants::{ObjectName, parse_object};
use super::{S3BlobStore, S3Layout};

fn to_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> OffsetDateTime {
    t.and_then(|t| OffsetDateTime::from_unix_timestamp(t.secs()).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl S3BlobStore {
    /// Every blob and unfinished multipart upload in the buckets of this store.
    pub(super) async fn list_blobs(&self) -> Result<BlobListing, BlobError> {
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
                // A direct upload's staging object: a leftover once its upload is over.
                if name.starts_with(STAGING_PREFIX) {
                    items.push(ListedBlob::Stray {
                        id: format!("{bucket}\t{name}"),
                        modified: to_time(object.last_modified()),
                    });
                    continue;
                }
                match parse_object(account, name) {
                    ObjectName::Blob(key) => items.push(ListedBlob::Blob {
                        key,
                        size: u64::try_from(object.size().unwrap_or(0)).unwrap_or(0),
                        modified: to_time(object.last_modified()),
                    }),
                    ObjectName::Leftover => items.push(ListedBlob::Stray {
                        id: format!("{bucket}\t{name}"),
                        modified: to_time(object.last_modified()),
                    }),
                    ObjectName::Foreign => {}
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

    /// Aborts an unfinished multipart upload, or deletes a staging object or a variants folder's
    /// leftover, that [`Self::list_blobs`] listed as a stray.
    pub(super) async fn remove_stray_upload(&self, id: &str) -> Result<(), BlobError> {
        if let Some((bucket, name)) = id.split_once('\t')
            && !name.contains('\t')
            && self.owns_bucket(bucket)
            && (name.starts_with(STAGING_PREFIX)
                || parse_object(self.account_of_bucket(bucket), name) == ObjectName::Leftover)
        {
            return match self
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
            };
        }
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
