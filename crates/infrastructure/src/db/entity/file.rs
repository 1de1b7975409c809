//! The `files` table.

use sea_orm::entity::prelude::*;

/// A row of `files`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "files")]
pub struct Model {
    /// The file's id (`uuid` in Stowage's own table, `varchar` in the Pneumatic service's: the
    /// repository reads and binds it by the type it finds, never through this model).
    #[sea_orm(primary_key, auto_increment = false)]
    pub file_id: Uuid,
    /// Size in bytes.
    pub size: i64,
    /// Stored content type.
    pub content_type: String,
    /// Sanitised file name.
    pub filename: String,
    /// Uploading user, null for account-level uploads.
    pub user_id: Option<i64>,
    /// Owning account.
    pub account_id: i64,
    /// Upload time.
    pub created_at: TimeDateTimeWithTimeZone,
    /// Lower-case hex SHA-256 of the bytes; null for a legacy row whose digest is not known yet.
    pub sha256: Option<String>,
    /// Logical blob key, `{account_id}/{file_id}`; null means the layout's default key.
    pub storage_key: Option<String>,
    /// The path the file may be addressed by, unique in its account; null for a file without one.
    pub key: Option<String>,
    /// The client's JSON object, compact; null reads as `{}`.
    pub metadata: Option<String>,
    /// When an upload took the file's key; `gc` removes the file some time after.
    pub replaced_at: Option<TimeDateTimeWithTimeZone>,
    /// `private` or `public`; null (a row the Pneumatic service wrote) reads as `private`.
    pub visibility: Option<String>,
}

/// `files` has no relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
