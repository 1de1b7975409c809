//! `webhook_outbox`: the events waiting to be delivered as webhooks, written in the transaction of
//! the change they report and deleted once a receiver took them.
//!
//! Only an addition: a new table and its indexes, each created only where missing, so a database
//! the Pneumatic service made (and Stowage adopted) keeps every column it had. Times are Unix
//! milliseconds of the database's clock, so that SQLite and Postgres compare them alike and
//! replicas whose clocks differ agree on them. `lease_token` names the claim that holds a row: only
//! that claim may record the row's outcome.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The table on Postgres: `id` orders the events.
const POSTGRES_TABLE: &str = "CREATE TABLE IF NOT EXISTS webhook_outbox (
    id BIGSERIAL PRIMARY KEY,
    event_id VARCHAR(36) NOT NULL UNIQUE,
    file_id VARCHAR(64) NOT NULL,
    event_type VARCHAR(32) NOT NULL,
    body TEXT NOT NULL,
    state VARCHAR(8) NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT NULL,
    lease_token VARCHAR(36) NULL,
    last_error VARCHAR(300) NULL,
    created_at BIGINT NOT NULL
)";

/// The table on SQLite: `AUTOINCREMENT` so that an id is never reused after a delete.
const SQLITE_TABLE: &str = "CREATE TABLE IF NOT EXISTS webhook_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    file_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT NULL,
    lease_token TEXT NULL,
    last_error TEXT NULL,
    created_at BIGINT NOT NULL
)";

/// The claim looks for due pending rows in id order, and for an earlier row of the same file,
/// pending or dead (the only states a row has, so that index holds every row).
const INDEXES: [&str; 2] = [
    "CREATE INDEX IF NOT EXISTS idx_webhook_outbox_due ON webhook_outbox (next_attempt_at, id) \
     WHERE state = 'pending'",
    "CREATE INDEX IF NOT EXISTS idx_webhook_outbox_file ON webhook_outbox (file_id, id)",
];

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
        for index in INDEXES {
            db.execute_unprepared(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE IF EXISTS webhook_outbox")
            .await
            .map(|_| ())
    }
}
