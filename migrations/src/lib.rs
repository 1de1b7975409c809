//! Stowage's database schema, as sea-orm migrations that run on SQLite and Postgres alike.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_files;

/// Every migration, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261123_000001_create_files::Migration)]
    }
}
