//! What the store records of an upload between requests, and how an append's bytes are cut.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stowage_application::ports::{BlobError, StoreProgress};

use super::ResumableFailure;
use crate::blob::s3::MIN_PART_SIZE;
use crate::blob::s3::presign::STAGING_PREFIX;

/// S3's largest part.
pub(super) const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// S3's highest part number.
pub(super) const MAX_PART_NUMBER: i32 = 10_000;

/// One part the multipart upload holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PartRecord {
    pub(super) number: i32,
    pub(super) etag: String,
    pub(super) size: u64,
    /// The part's CRC32 as the store computed it, which the completion must repeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) crc32: Option<String>,
}

/// The bytes after the parts, too few for a part of their own, kept as an object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct TailRecord {
    pub(super) name: String,
    pub(super) size: u64,
}

/// The opaque [`StoreProgress`] of an S3 upload, as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Progress {
    pub(super) upload_id: String,
    pub(super) parts: Vec<PartRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) tail: Option<TailRecord>,
}

impl Progress {
    pub(super) fn new(upload_id: String) -> Self {
        Self {
            upload_id,
            parts: Vec::new(),
            tail: None,
        }
    }

    pub(super) fn parse(progress: &StoreProgress) -> Result<Self, BlobError> {
        serde_json::from_str(&progress.0)
            .map_err(|e| BlobError::Unavailable(Box::new(ResumableFailure::Progress(e))))
    }

    pub(super) fn encode(&self) -> Result<StoreProgress, BlobError> {
        serde_json::to_string(self)
            .map(StoreProgress)
            .map_err(|e| BlobError::Unavailable(Box::new(ResumableFailure::Progress(e))))
    }

    /// Bytes in the parts.
    pub(super) fn parts_size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }

    /// Bytes the upload holds: its parts and its tail.
    pub(super) fn size(&self) -> u64 {
        self.parts_size() + self.tail_size()
    }

    pub(super) fn tail_size(&self) -> u64 {
        self.tail.as_ref().map_or(0, |t| t.size)
    }

    /// The number the next part takes: after the parts, so that an append from this progress
    /// overwrites only parts it does not hold.
    pub(super) fn next_number(&self) -> i32 {
        self.parts.iter().map(|p| p.number).max().unwrap_or(0) + 1
    }
}

/// Where the tail objects of an upload go, in the bucket of its blob.
///
/// Under the staging prefix, so that listings give them as strays and reconciliation deletes
/// those no upload needs. The upload id is hashed: S3 upload ids may hold characters a copy
/// source would need escaped.
pub(super) fn tail_prefix(object: &str, upload_id: &str) -> String {
    let digest = Sha256::digest(upload_id.as_bytes());
    let upload = hex::encode(&digest[..8]);
    format!("{STAGING_PREFIX}tus/{object}/{upload}/")
}

/// The name of the tail object holding an upload's bytes up to `end`: a new name per end
/// offset, so that an append never overwrites the tail its committed progress still reads.
pub(super) fn tail_name(object: &str, upload_id: &str, end: u64) -> String {
    format!("{}{end}", tail_prefix(object, upload_id))
}

/// The sizes of the parts `len` bytes are cut into, each about `target` long. A remainder too
/// small for a part joins the part before it; `len` below S3's minimum part is one part, which
/// the caller sends only when it ends the upload.
pub(super) fn plan_parts(len: u64, target: u64) -> Vec<u64> {
    let min = MIN_PART_SIZE as u64;
    let target = target.clamp(min, MAX_PART_SIZE - min);
    let (whole, rest) = (len / target, len % target);
    let count = usize::try_from(whole).unwrap_or(usize::MAX);
    let mut sizes = vec![target; count];
    match sizes.last_mut() {
        _ if rest == 0 => {}
        Some(last) if rest < min => *last += rest,
        _ => sizes.push(rest),
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn a_small_remainder_joins_the_part_before_it() {
        assert_eq!(plan_parts(43 * MIB, 20 * MIB), vec![20 * MIB, 23 * MIB]);
    }

    #[test]
    fn a_large_remainder_is_a_part_of_its_own() {
        assert_eq!(
            plan_parts(46 * MIB, 20 * MIB),
            vec![20 * MIB, 20 * MIB, 6 * MIB]
        );
    }

    #[test]
    fn fewer_bytes_than_a_part_are_one_part() {
        assert_eq!(plan_parts(8 * MIB, 20 * MIB), vec![8 * MIB]);
        assert_eq!(plan_parts(40 * MIB, 20 * MIB), vec![20 * MIB, 20 * MIB]);
        assert_eq!(plan_parts(0, 20 * MIB), Vec::<u64>::new());
    }

    #[test]
    fn progress_round_trips_through_its_json() {
        let progress = Progress {
            upload_id: "u/1+2".into(),
            parts: vec![PartRecord {
                number: 1,
                etag: "\"e\"".into(),
                size: 5,
                crc32: None,
            }],
            tail: Some(TailRecord {
                name: tail_name("7/f", "u/1+2", 9),
                size: 4,
            }),
        };
        let encoded = progress.encode().unwrap();
        assert_eq!(Progress::parse(&encoded).unwrap(), progress);
        assert_eq!(progress.size(), 9);
        assert_eq!(progress.next_number(), 2);
    }
}
