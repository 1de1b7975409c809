//! Where blobs live: the bucket layout, and the buckets it creates on first use.

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use stowage_application::ports::BlobError;
use stowage_domain::{AccountId, BlobKey};

use super::S3BlobStore;
use super::error::{error_code, unavailable};
use crate::blob::layout::variants_dir;

/// How blobs map to buckets and keys. A file's image variants are kept beside it, under
/// `{file_id}.variants/{name}` in place of `{file_id}`.
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

impl S3BlobStore {
    pub(super) fn location(&self, key: &BlobKey) -> (String, String) {
        let (bucket, folder) = self.folder_of(key);
        let name = match key.variant() {
            None => key.file_id().to_string(),
            Some(variant) => format!("{}/{variant}", variants_dir(key.file_id())),
        };
        (bucket, format!("{folder}{name}"))
    }

    /// The bucket of `key`'s variants and the prefix every one of their keys starts with.
    pub(super) fn variants_location(&self, key: &BlobKey) -> (String, String) {
        let (bucket, folder) = self.folder_of(key);
        (bucket, format!("{folder}{}/", variants_dir(key.file_id())))
    }

    /// The bucket of `key`'s account and the prefix of its keys there (`{account_id}/` or none).
    fn folder_of(&self, key: &BlobKey) -> (String, String) {
        let account = key.account_id().get();
        match &self.layout {
            S3Layout::Single { bucket } => (bucket.clone(), format!("{account}/")),
            S3Layout::PerAccount { prefix } => (format!("{prefix}-{account}"), String::new()),
        }
    }

    /// The account whose bucket `bucket` is in the per-account layout; `None` in the single one,
    /// where the account is the first segment of each key.
    pub(super) fn account_of_bucket(&self, bucket: &str) -> Option<AccountId> {
        match &self.layout {
            S3Layout::Single { .. } => None,
            S3Layout::PerAccount { prefix } => bucket
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .and_then(|account| account.parse::<i64>().ok())
                .map(AccountId::new),
        }
    }

    fn is_ready(&self, bucket: &str) -> bool {
        self.ready_buckets
            .lock()
            .is_ok_and(|set| set.contains(bucket))
    }

    pub(super) fn mark_ready(&self, bucket: &str, ready: bool) {
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

    pub(super) fn owns_bucket(&self, bucket: &str) -> bool {
        match &self.layout {
            S3Layout::Single { bucket: own } => own == bucket,
            S3Layout::PerAccount { prefix } => bucket
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|account| account.parse::<i64>().is_ok()),
        }
    }
}
