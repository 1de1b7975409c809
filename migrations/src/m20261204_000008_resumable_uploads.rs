//! `resumable_uploads`: resumable (tus) uploads created and not yet forgotten: who created them,
//! how far their bytes got, what the blob store keeps of them, and the lock that serialises
//! their writers across replicas.
//!
//! Only an addition: a new table and its index, each created only where missing. Times are Unix
//! milliseconds: `expires_at` by the service's clock (it is the `Upload-Expires` clients see),
//! `locked_until` (the lease of the request writing now, held under `lock_token`) and
//! `created_at` by the database's.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_TABLE: &str = "CREATE TABLE IF NOT EXISTS resumable_uploads (
    upload_id VARCHAR(36) PRIMARY KEY,
    file_id VARCHAR(36) NOT NULL,
    account_id BIGINT NOT NULL,
    user_id BIGINT NULL,
    principal_kind VARCHAR(8) NOT NULL,
    length BIGINT NULL,
    upload_offset BIGINT NOT NULL,
    metadata TEXT NULL,
    concat VARCHAR(8) NULL,
    partials TEXT NULL,
    store_progress TEXT NOT NULL,
    digest_state BYTEA NOT NULL,
    head BYTEA NOT NULL,
    stage VARCHAR(9) NOT NULL,
    expires_at BIGINT NOT NULL,
    lock_token VARCHAR(36) NULL,
    locked_until BIGINT NULL,
    created_at BIGINT NOT NULL
)";

const SQLITE_TABLE: &str = "CREATE TABLE IF NOT EXISTS resumable_uploads (
    upload_id TEXT PRIMARY KEY,
    file_id TEXT NOT NULL,
    account_id BIGINT NOT NULL,
    user_id BIGINT NULL,
    principal_kind TEXT NOT NULL,
    length BIGINT NULL,
    upload_offset BIGINT NOT NULL,
    metadata TEXT NULL,
    concat TEXT NULL,
    partials TEXT NULL,
    store_progress TEXT NOT NULL,
    digest_state BLOB NOT NULL,
    head BLOB NOT NULL,
    stage TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    lock_token TEXT NULL,
    locked_until BIGINT NULL,
    created_at BIGINT NOT NULL
)";

/// `gc` looks for the uploads past their expiry, and for the ones still live.
const INDEX: &str = "CREATE INDEX IF NOT EXISTS idx_resumable_uploads_expires_at \
     ON resumable_uploads (expires_at)";

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
            .execute_unprepared("DROP TABLE IF EXISTS resumable_uploads")
            .await
            .map(|_| ())
    }
}
