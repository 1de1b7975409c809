//! The index a listing reads: `(account_id, user_id, created_at, file_id)`, the owner's files in
//! the order `GET /files` pages them.
//!
//! With it a page of any owner starts at its cursor and reads about one row a file listed, however
//! many files the owner, the account or the table holds; the single-column indexes it complements
//! either find the owner's files unordered (a sort of all of them per page) or walk the whole
//! table's time order past other owners' files. Only an addition, made only where missing, so the
//! Pneumatic service's adopted table keeps every index it had.

use sea_orm_migration::prelude::*;

/// The index's name.
const OWNER_INDEX: &str = "idx_files_owner_created";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {OWNER_INDEX} \
                 ON files (account_id, user_id, created_at, file_id)"
            ))
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!("DROP INDEX IF EXISTS {OWNER_INDEX}"))
            .await
            .map(|_| ())
    }
}
