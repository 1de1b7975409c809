//! `upload_grants`: the upload URLs that are taken, so that each is used at most once whichever
//! replica serves it.
//!
//! Only an addition. A grant has a row only once an upload claims it: `claimed` by the upload
//! holding `claim_token` until `claimed_until` (renewed while the upload runs; a crashed
//! process's claim lapses), then `used` by `file_id`; a released claim is deleted, leaving the
//! URL free again. Times are Unix milliseconds (the claim's are the database's clock), as in
//! `webhook_outbox`; `expires_at` lets `stowage-api gc` remove rows of expired URLs.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const POSTGRES_TABLE: &str = "CREATE TABLE IF NOT EXISTS upload_grants (
    grant_id VARCHAR(36) PRIMARY KEY,
    state VARCHAR(8) NOT NULL,
    claim_token VARCHAR(36) NULL,
    claimed_until BIGINT NULL,
    file_id VARCHAR(64) NULL,
    expires_at BIGINT NOT NULL
)";

const SQLITE_TABLE: &str = "CREATE TABLE IF NOT EXISTS upload_grants (
    grant_id TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL,
    claim_token TEXT NULL,
    claimed_until BIGINT NULL,
    file_id TEXT NULL,
    expires_at BIGINT NOT NULL
)";

/// `gc` removes by expiry.
const INDEX: &str =
    "CREATE INDEX IF NOT EXISTS idx_upload_grants_expires_at ON upload_grants (expires_at)";

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
            .execute_unprepared("DROP TABLE IF EXISTS upload_grants")
            .await
            .map(|_| ())
    }
}
