//! `direct_uploads`: direct uploads started (`POST /files/direct`) and not yet forgotten: the
//! file they become, who may complete them, and their completion claim.
//!
//! Only an addition: a new table and its index, each created only where missing. Times are Unix
//! milliseconds: `expires_at` by the service's clock (the URLs'), `claimed_until` (the lease of
//! the completion running now, held under `claim_token`) and `completed_at` (set once the file is
//! recorded) by the database's.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_TABLE: &str = "CREATE TABLE IF NOT EXISTS direct_uploads (
    upload_id VARCHAR(36) PRIMARY KEY,
    file_id VARCHAR(36) NOT NULL UNIQUE,
    account_id BIGINT NOT NULL,
    user_id BIGINT NULL,
    principal_kind VARCHAR(8) NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 VARCHAR(64) NULL,
    policy VARCHAR(64) NULL,
    file_key TEXT NULL,
    multipart_id TEXT NULL,
    expires_at BIGINT NOT NULL,
    claimed_until BIGINT NULL,
    completed_at BIGINT NULL,
    claim_token VARCHAR(36) NULL
)";

const SQLITE_TABLE: &str = "CREATE TABLE IF NOT EXISTS direct_uploads (
    upload_id TEXT PRIMARY KEY,
    file_id TEXT NOT NULL UNIQUE,
    account_id BIGINT NOT NULL,
    user_id BIGINT NULL,
    principal_kind TEXT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NULL,
    policy TEXT NULL,
    file_key TEXT NULL,
    multipart_id TEXT NULL,
    expires_at BIGINT NOT NULL,
    claimed_until BIGINT NULL,
    completed_at BIGINT NULL,
    claim_token TEXT NULL
)";

/// `gc` looks for the uploads not completed yet.
const INDEX: &str = "CREATE INDEX IF NOT EXISTS idx_direct_uploads_unfinished \
     ON direct_uploads (expires_at) WHERE completed_at IS NULL";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = match manager.get_database_backend() {
            DbBackend::Postgres => POSTGRES_TABLE,
            DbBackend::Sqlite => SQLITE_TABLE,
            DbBackend::MySql => return Err(DbErr::Migration("MySQL is not supported".to_owned())),
        };
        let db = manager.get_connection();
        db.execute_unprepared(table).await?;
        db.execute_unprepared(INDEX).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE IF EXISTS direct_uploads")
            .await
            .map(|_| ())
    }
}
