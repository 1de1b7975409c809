//! The `files` table.

use sea_orm::entity::prelude::*;

/// A row of `files`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "files")]
pub struct Model {
    /// The file's id.
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
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    /// Logical blob key, `{account_id}/{file_id}`.
    pub storage_key: String,
}

/// `files` has no relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
