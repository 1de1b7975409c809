//! Visibility: a nullable `visibility` column (`private` or `public`; null reads as `private`) on
//! `files`, and on `direct_uploads`, which holds a direct upload's settings until its file is
//! recorded. Upload URLs carry theirs in the signed grant, resumable uploads in their tus metadata.
//!
//! Only additions, each made only where missing: a table the Pneumatic service made keeps every
//! column it had, and a row it inserts later (without the column) is a private file.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

use crate::files::column_names;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables that get the column.
const TABLES: [&str; 2] = ["files", "direct_uploads"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let ty = match manager.get_database_backend() {
            DbBackend::Postgres => "VARCHAR(16)",
            _ => "TEXT",
        };
        let db = manager.get_connection();
        for table in TABLES {
            let has_column = column_names(manager, table)
                .await?
                .iter()
                .any(|c| c == "visibility");
            if !has_column {
                db.execute_unprepared(&format!(
                    "ALTER TABLE {table} ADD COLUMN visibility {ty} NULL"
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Nothing to undo that is safe to undo: the column says which files anyone may read.
        Ok(())
    }
}
