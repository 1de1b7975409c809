//! Visibility: a nullable `visibility` column (`private` or `public`; null reads as `private`) on
//! `files`, and on `direct_uploads`, which holds a direct upload's settings until its file is
//! recorded. Upload URLs carry theirs in the signed grant, resumable uploads in their tus metadata.
//!
//! Only additions, each made only where missing: a table the Pneumatic service made keeps every
//! column it had, and a row it inserts later (without the column) is a private file.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables that get the column.
const TABLES: [&str; 2] = ["files", "direct_uploads"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        for table in TABLES {
            let (existing_sql, ty) = match backend {
                DbBackend::Postgres => (
                    format!(
                        "SELECT column_name::text AS name FROM information_schema.columns \
                         WHERE table_schema = current_schema() AND table_name = '{table}'"
                    ),
                    "VARCHAR(16)",
                ),
                DbBackend::Sqlite => (
                    format!("SELECT name FROM pragma_table_info('{table}')"),
                    "TEXT",
                ),
                DbBackend::MySql => {
                    return Err(DbErr::Migration("MySQL is not supported".to_owned()));
                }
            };
            let has_column = db
                .query_all(Statement::from_string(backend, existing_sql))
                .await?
                .iter()
                .map(|row| row.try_get::<String>("", "name"))
                .collect::<Result<Vec<_>, _>>()?
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
