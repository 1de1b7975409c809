//! [`FileRecord`]: the stored metadata of one file, and the [`BlobKey`] of its bytes.

use std::fmt;

use time::OffsetDateTime;

use crate::content_type::ContentType;
use crate::digest::Sha256Digest;
use crate::filename::Filename;
use crate::ids::{AccountId, FileId, UserId};
use crate::image::variant::VariantName;
use crate::key::{FileKey, Metadata};

/// The logical location of a file's bytes in the blob store, or of one of its image variants,
/// which live beside it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlobKey {
    account_id: AccountId,
    file_id: FileId,
    variant: Option<VariantName>,
}

impl BlobKey {
    /// Makes the key of file `file_id` in account `account_id`.
    pub fn new(account_id: AccountId, file_id: FileId) -> Self {
        Self {
            account_id,
            file_id,
            variant: None,
        }
    }

    /// The key of the variant `name` of this file's bytes.
    #[must_use]
    pub fn with_variant(self, name: VariantName) -> Self {
        Self {
            variant: Some(name),
            ..self
        }
    }

    /// The variant this key names, `None` for the file's own bytes.
    pub fn variant(&self) -> Option<VariantName> {
        self.variant
    }

    /// The key of the file's own bytes (itself, for a key without a variant).
    #[must_use]
    pub fn source(self) -> Self {
        Self {
            variant: None,
            ..self
        }
    }

    /// Returns the owning account.
    pub fn account_id(&self) -> AccountId {
        self.account_id
    }

    /// Returns the file.
    pub fn file_id(&self) -> FileId {
        self.file_id
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account_id, self.file_id)?;
        match self.variant {
            Some(name) => write!(f, "/{name}"),
            None => Ok(()),
        }
    }
}

/// Who may read a file without the access rules: nobody else (`Private`, the default) or anyone
/// (`Public`, served without a credential and cached for a year).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// The access rules decide every read.
    #[default]
    Private,
    /// Anyone may read the file, without a credential.
    Public,
}

impl Visibility {
    /// The contract's spelling: `private` or `public`.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "private",
            Visibility::Public => "public",
        }
    }

    /// Parses the contract's spelling, exactly; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "private" => Some(Visibility::Private),
            "public" => Some(Visibility::Public),
            _ => None,
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The metadata of one stored file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    id: FileId,
    filename: Filename,
    content_type: ContentType,
    size: u64,
    sha256: Option<Sha256Digest>,
    created_at: OffsetDateTime,
    account_id: AccountId,
    user_id: Option<UserId>,
    key: Option<FileKey>,
    metadata: Metadata,
    visibility: Visibility,
}

/// Everything needed to build a [`FileRecord`].
#[derive(Clone, Debug)]
pub struct FileRecordParts {
    /// The file's id.
    pub id: FileId,
    /// The sanitised name.
    pub filename: Filename,
    /// The resolved content type.
    pub content_type: ContentType,
    /// The size in bytes.
    pub size: u64,
    /// The SHA-256 of the bytes; `None` for a legacy row whose digest is not known yet.
    pub sha256: Option<Sha256Digest>,
    /// When the upload completed.
    pub created_at: OffsetDateTime,
    /// The uploader's account.
    pub account_id: AccountId,
    /// The uploader, `None` for account-level uploads.
    pub user_id: Option<UserId>,
}

impl FileRecord {
    /// Builds a record from its parts.
    pub fn new(parts: FileRecordParts) -> Self {
        let FileRecordParts {
            id,
            filename,
            content_type,
            size,
            sha256,
            created_at,
            account_id,
            user_id,
        } = parts;
        Self {
            id,
            filename,
            content_type,
            size,
            sha256,
            created_at,
            account_id,
            user_id,
            key: None,
            metadata: Metadata::default(),
            visibility: Visibility::Private,
        }
    }

    /// This record, for other bytes: `size` of them, with digest `sha256` (a policy rewrote the
    /// stored blob, stripping its metadata).
    #[must_use]
    pub fn with_content(mut self, size: u64, sha256: Sha256Digest) -> Self {
        self.size = size;
        self.sha256 = Some(sha256);
        self
    }

    /// This record, with `visibility`.
    #[must_use]
    pub fn with_visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }

    /// Who may read the file without the access rules.
    pub fn visibility(&self) -> Visibility {
        self.visibility
    }

    /// Whether anyone may read the file, without a credential.
    pub fn is_public(&self) -> bool {
        self.visibility == Visibility::Public
    }

    /// This record, addressed by `key` in its account.
    #[must_use]
    pub fn with_key(mut self, key: Option<FileKey>) -> Self {
        self.key = key;
        self
    }

    /// This record, with `metadata` attached.
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// The key the file may be addressed by, if it has one.
    pub fn key(&self) -> Option<&FileKey> {
        self.key.as_ref()
    }

    /// The client's metadata (`{}` when none).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Returns the file's id.
    pub fn id(&self) -> FileId {
        self.id
    }

    /// Returns the sanitised name.
    pub fn filename(&self) -> &Filename {
        &self.filename
    }

    /// Returns the stored content type.
    pub fn content_type(&self) -> &ContentType {
        &self.content_type
    }

    /// Returns the size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Returns the SHA-256 of the bytes; `None` for a legacy row whose digest is not known yet.
    pub fn sha256(&self) -> Option<&Sha256Digest> {
        self.sha256.as_ref()
    }

    /// Returns the strong entity tag of the bytes, without quotes: the SHA-256 in hex, or, while
    /// the digest is not known, the file id (blobs never change, so the id is a strong validator).
    pub fn etag(&self) -> String {
        match &self.sha256 {
            Some(digest) => digest.to_hex(),
            None => self.id.to_string(),
        }
    }

    /// Returns when the upload completed.
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }

    /// Returns the uploader's account.
    pub fn account_id(&self) -> AccountId {
        self.account_id
    }

    /// Returns the uploader, `None` for account-level uploads.
    pub fn user_id(&self) -> Option<UserId> {
        self.user_id
    }

    /// Returns where the file's bytes live in the blob store.
    pub fn blob_key(&self) -> BlobKey {
        BlobKey::new(self.account_id, self.id)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const ID: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

    /// The parts of a record of `account`, uploaded by `user`.
    pub(crate) fn parts(account: i64, user: Option<i64>) -> FileRecordParts {
        FileRecordParts {
            id: FileId::parse(ID).unwrap(),
            filename: Filename::sanitize("report.pdf"),
            content_type: ContentType::from_stored("application/pdf".to_owned()),
            size: 1234,
            sha256: Some(Sha256Digest::from_bytes([7; 32])),
            created_at: OffsetDateTime::UNIX_EPOCH,
            account_id: AccountId::new(account),
            user_id: user.map(UserId::new),
        }
    }

    #[test]
    fn blob_key_displays_account_then_file() {
        let id = FileId::parse(ID).unwrap();
        let cases: &[(i64, &str)] = &[
            (1, "1/3f2504e0-4f89-41d3-9a0c-0305e82c3301"),
            (42, "42/3f2504e0-4f89-41d3-9a0c-0305e82c3301"),
        ];
        for &(account, expected) in cases {
            let key = BlobKey::new(AccountId::new(account), id);
            assert_eq!(key.to_string(), expected);
            assert_eq!(key.account_id(), AccountId::new(account));
            assert_eq!(key.file_id(), id);
        }
    }

    #[test]
    fn file_record_keeps_its_parts() {
        let cases: &[(i64, Option<i64>)] = &[(1, Some(2)), (3, None)];
        for &(account, user) in cases {
            let given = parts(account, user);
            let record = FileRecord::new(given.clone());
            assert_eq!(record.id(), given.id);
            assert_eq!(record.filename(), &given.filename);
            assert_eq!(record.content_type(), &given.content_type);
            assert_eq!(record.size(), given.size);
            assert_eq!(record.sha256(), given.sha256.as_ref());
            assert_eq!(record.created_at(), given.created_at);
            assert_eq!(record.account_id(), given.account_id);
            assert_eq!(record.user_id(), given.user_id);
            assert_eq!(record.blob_key(), BlobKey::new(given.account_id, given.id));
        }
    }

    #[test]
    fn visibility_reads_and_writes_the_contract_spelling() {
        for v in [Visibility::Private, Visibility::Public] {
            assert_eq!(Visibility::parse(v.as_str()), Some(v));
        }
        for bad in ["", "Public", "PRIVATE", "public ", "shared"] {
            assert_eq!(Visibility::parse(bad), None, "{bad:?}");
        }
        let record = FileRecord::new(parts(1, None));
        assert_eq!(record.visibility(), Visibility::Private);
        assert!(record.with_visibility(Visibility::Public).is_public());
    }

    #[test]
    fn etag_is_the_digest_or_while_unknown_the_id() {
        let known = FileRecord::new(parts(1, None));
        assert_eq!(known.etag(), "07".repeat(32));
        let legacy = FileRecord::new(FileRecordParts {
            sha256: None,
            ..parts(1, None)
        });
        assert_eq!(legacy.etag(), ID);
    }
}
