//! Stowage's database schema, as sea-orm migrations that run on SQLite and Postgres alike.

pub use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DatabaseConnection, DbBackend, TransactionTrait};

pub mod files;
mod m20261123_000001_create_files;
mod m20261201_000002_adopt_files;
mod m20261203_000003_webhook_outbox;
mod m20261203_000004_file_keys;
mod m20261203_000005_owner_listing_index;
mod m20261203_000006_upload_grants;
mod m20261203_000007_direct_uploads;
mod m20261204_000008_resumable_uploads;
mod m20261204_000009_visibility;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_files::Migration),
            Box::new(m20261201_000002_adopt_files::Migration),
            Box::new(m20261203_000003_webhook_outbox::Migration),
            Box::new(m20261203_000004_file_keys::Migration),
            Box::new(m20261203_000005_owner_listing_index::Migration),
            Box::new(m20261203_000006_upload_grants::Migration),
            Box::new(m20261203_000007_direct_uploads::Migration),
            Box::new(m20261204_000008_resumable_uploads::Migration),
            Box::new(m20261204_000009_visibility::Migration),
        ]
    }
}

/// Advisory lock id that serialises migrations across replicas ("stowage" in ASCII).
const MIGRATION_LOCK: i64 = 0x0073_746f_7761_6765;

/// Applies every pending migration, safely when several replicas start at once.
///
/// On Postgres, replicas starting together take turns: the first applies the migrations inside
/// the transaction that holds an advisory lock, the others then find nothing left to do. SQLite
/// has a single writer and needs no lock.
///
/// # Errors
/// The database's error when the lock cannot be taken or a migration fails.
pub async fn migrate_locked(db: &DatabaseConnection) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        let txn = db.begin().await?;
        txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
        Migrator::up(&txn, None).await?;
        txn.commit().await
    } else {
        Migrator::up(db, None).await
    }
}
