//! The `files` table: the Pneumatic columns plus `sha256` and `storage_key`.

use sea_orm_migration::prelude::*;

use crate::files::{Files, Shape, files_indexes, files_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A `files` table that is already there is the Pneumatic service's: the adoption migration
        // brings it to shape, without a second copy of the indexes it already has.
        if manager.has_table("files").await? {
            return Ok(());
        }
        manager
            .create_table(
                files_table(Files::Table, Shape::First)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        for index in files_indexes() {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Files::Table).to_owned())
            .await
    }
}
