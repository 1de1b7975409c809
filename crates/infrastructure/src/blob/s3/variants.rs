//! Image variants beside their source: which object names are blobs, variants or leftovers, and
//! the removal of every variant of one file.

use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use stowage_application::ports::BlobError;
use stowage_domain::image::variant::VariantName;
use stowage_domain::{AccountId, BlobKey, FileId};

use super::S3BlobStore;
use super::error::{S3Failure, error_code, unavailable};
use crate::blob::layout::parse_variants_dir;

/// What an object in one of the store's buckets is, by its name.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ObjectName {
    /// A file's bytes or one of its variants.
    Blob(BlobKey),
    /// Something in a variants folder that is no variant: a leftover to remove.
    Leftover,
    /// Nothing this store writes there; left alone.
    Foreign,
}

/// Reads `name`, an object's key in the bucket of `account` (per-account layout) or, with no
/// account, in the single bucket where keys start with `{account_id}/`.
pub(super) fn parse_object(account: Option<AccountId>, name: &str) -> ObjectName {
    let (account, rest) = match account {
        Some(account) => (account, name),
        None => match name
            .split_once('/')
            .and_then(|(account, rest)| Some((AccountId::new(account.parse().ok()?), rest)))
        {
            Some(parsed) => parsed,
            None => return ObjectName::Foreign,
        },
    };
    if let Ok(file_id) = FileId::parse(rest) {
        return ObjectName::Blob(BlobKey::new(account, file_id));
    }
    let Some((folder, variant)) = rest.split_once('/') else {
        return ObjectName::Foreign;
    };
    let Some(file_id) = parse_variants_dir(folder) else {
        return ObjectName::Foreign;
    };
    match VariantName::parse(variant) {
        Ok(variant) => ObjectName::Blob(BlobKey::new(account, file_id).with_variant(variant)),
        Err(_) => ObjectName::Leftover,
    }
}

impl S3BlobStore {
    /// Deletes every object under the variants folder of `key`'s file, a listed page at a time.
    pub(super) async fn delete_variant_objects(&self, key: &BlobKey) -> Result<(), BlobError> {
        let (bucket, prefix) = self.variants_location(key);
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                // An account bucket not created yet holds no variant.
                Err(e) if matches!(error_code(&e), Some("NoSuchBucket")) => return Ok(()),
                Err(e) => return Err(unavailable("ListObjectsV2", &e)),
            };
            let objects = page
                .contents()
                .iter()
                .filter_map(|object| object.key())
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| BlobError::Unavailable(Box::new(e)))?;
            if objects.is_empty() {
                continue;
            }
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| BlobError::Unavailable(Box::new(e)))?;
            let output = self
                .client
                .delete_objects()
                .bucket(&bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| unavailable("DeleteObjects", &e))?;
            // Each object may fail on its own, in an answer that succeeded.
            if let Some(failed) = output.errors().first() {
                return Err(BlobError::Unavailable(Box::new(S3Failure {
                    operation: "DeleteObjects",
                    kind: failed.code().unwrap_or("error").to_owned(),
                })));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_blobs_variants_leftovers_or_foreign() {
        let id = FileId::new_random();
        let account = AccountId::new(7);
        let source = BlobKey::new(account, id);
        let variant = source.with_variant(VariantName::parse("w300-q80.webp").unwrap());

        assert_eq!(
            parse_object(None, &format!("7/{id}")),
            ObjectName::Blob(source)
        );
        assert_eq!(
            parse_object(None, &format!("7/{id}.variants/w300-q80.webp")),
            ObjectName::Blob(variant)
        );
        assert_eq!(
            parse_object(Some(account), &format!("{id}.variants/w300-q80.webp")),
            ObjectName::Blob(variant)
        );
        for leftover in ["W300.webp", "x", "", "a/b.png", "w300-q80.webp.tmp"] {
            assert_eq!(
                parse_object(None, &format!("7/{id}.variants/{leftover}")),
                ObjectName::Leftover,
                "{leftover}"
            );
        }
        for foreign in [
            format!("x/{id}"),
            format!("7/{id}/w300-q80.webp"),
            format!("7/{id}.variants"),
            "7/not-an-id.variants/w300.png".to_owned(),
            "direct/abc".to_owned(),
        ] {
            assert_eq!(
                parse_object(None, &foreign),
                ObjectName::Foreign,
                "{foreign}"
            );
        }
        assert_eq!(
            parse_object(Some(account), &format!("7/{id}")),
            ObjectName::Foreign
        );
    }
}
