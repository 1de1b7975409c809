//! Stowage's domain model: file records, value objects and the pure rules of the HTTP contract.
//!
//! Nothing here does I/O or is async; every rule is a plain function of its inputs.

pub mod access;
pub mod content_type;
pub mod digest;
pub mod file;
pub mod filename;
pub mod ids;
pub mod image;
pub mod key;
pub mod principal;
pub mod range;

#[cfg(test)]
mod properties;

pub use access::{AccessPolicy, ReadDecision, ReadFallback, decide_read, is_owner, may_delete};
pub use content_type::{ContentType, SNIFF_LEN};
pub use digest::{InvalidDigest, Sha256Digest};
pub use file::{BlobKey, FileRecord, FileRecordParts, Visibility};
pub use filename::Filename;
pub use ids::{AccountId, FileId, InvalidFileId, UserId};
pub use key::{FileKey, InvalidKey, MAX_KEY_BYTES, MAX_METADATA_BYTES, Metadata};
pub use principal::{Credential, CredentialForm, Principal, PrincipalKind};
pub use range::{ByteRange, InvalidRange, RangeOutcome, resolve_range};
