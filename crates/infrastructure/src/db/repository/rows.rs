//! Rows of `files` read back as [`FileRecord`]s.

use sea_orm::QueryResult;
use stowage_application::ports::RepoError;
use stowage_domain::{
    AccountId, ContentType, FileKey, FileRecord, FileRecordParts, Filename, Metadata, Sha256Digest,
    UserId, Visibility,
};
use time::OffsetDateTime;

use super::{IdColumn, unavailable};

/// A row that does not convert is corrupt data, reported as a database failure (never a panic).
#[derive(Debug, thiserror::Error)]
#[error("row of file {file_id} is invalid: {what}")]
pub(super) struct CorruptRow {
    pub(super) file_id: String,
    pub(super) what: &'static str,
}

/// The record of a row of [`SeaOrmFileRepository::select`]. The stored name and type pass the
/// upload rules again (a no-op for what Stowage stored; rows the Pneumatic service wrote may hold
/// anything), and a null digest is a legacy row's.
pub(super) fn record_of(ids: IdColumn, row: &QueryResult) -> Result<FileRecord, RepoError> {
    let id = ids.read(row)?;
    let corrupt = |what| {
        RepoError::Unavailable(Box::new(CorruptRow {
            file_id: id.to_string(),
            what,
        }))
    };
    let get_str = |column| row.try_get::<String>("", column).map_err(unavailable);
    let size: i64 = row.try_get("", "size").map_err(unavailable)?;
    let sha256: Option<String> = row.try_get("", "sha256").map_err(unavailable)?;
    let sha256 = match sha256 {
        Some(hex) => {
            Some(Sha256Digest::parse_hex(hex.trim()).map_err(|_| corrupt("sha256 is not hex"))?)
        }
        None => None,
    };
    let user_id: Option<i64> = row.try_get("", "user_id").map_err(unavailable)?;
    let account_id: i64 = row.try_get("", "account_id").map_err(unavailable)?;
    let created_at: OffsetDateTime = row.try_get("", "created_at").map_err(unavailable)?;
    let key: Option<String> = row.try_get("", "key").map_err(unavailable)?;
    let metadata: Option<String> = row.try_get("", "metadata").map_err(unavailable)?;
    let visibility: Option<String> = row.try_get("", "visibility").map_err(unavailable)?;
    Ok(FileRecord::new(FileRecordParts {
        id,
        filename: Filename::sanitize(&get_str("filename")?),
        content_type: ContentType::from_legacy(&get_str("content_type")?),
        size: u64::try_from(size).map_err(|_| corrupt("negative size"))?,
        sha256,
        created_at,
        account_id: AccountId::new(account_id),
        user_id: user_id.map(UserId::new),
    })
    .with_key(key.map(FileKey::from_stored))
    .with_metadata(metadata.map(Metadata::from_stored).unwrap_or_default())
    // Anything but `public` (null included) is private: a doubtful row is never served to all.
    .with_visibility(match visibility.as_deref() {
        Some("public") => Visibility::Public,
        _ => Visibility::Private,
    }))
}
