//! The `files` table: the Pneumatic columns plus `sha256` and `storage_key`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Files {
    Table,
    FileId,
    Size,
    ContentType,
    Filename,
    UserId,
    AccountId,
    CreatedAt,
    Sha256,
    StorageKey,
}

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
                Table::create()
                    .table(Files::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Files::FileId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Files::Size).big_integer().not_null())
                    .col(
                        ColumnDef::new(Files::ContentType)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Files::Filename).string_len(255).not_null())
                    .col(ColumnDef::new(Files::UserId).big_integer().null())
                    .col(ColumnDef::new(Files::AccountId).big_integer().not_null())
                    .col(
                        ColumnDef::new(Files::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Files::Sha256).char_len(64).not_null())
                    .col(ColumnDef::new(Files::StorageKey).string_len(512).not_null())
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_files_account_id", Files::AccountId),
            ("idx_files_user_id", Files::UserId),
            ("idx_files_created_at", Files::CreatedAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name(name)
                        .table(Files::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Files::Table).to_owned())
            .await
    }
}
