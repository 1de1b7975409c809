//! The `files` table as the migrations build it, so that its columns are written down once.
//!
//! The first migration has run on deployed databases: [`Shape::First`] must keep producing the
//! schema it produced then.

use sea_orm_migration::prelude::*;

/// `files` and its columns: the seven Pneumatic ones plus `sha256` and `storage_key`.
#[derive(DeriveIden, Clone, Copy)]
pub(crate) enum Files {
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

/// Stowage's indexes on `files`: name and column.
pub(crate) const INDEXES: [(&str, Files); 3] = [
    ("idx_files_account_id", Files::AccountId),
    ("idx_files_user_id", Files::UserId),
    ("idx_files_created_at", Files::CreatedAt),
];

/// The unique index on `(account_id, key)`: the repository recognises a taken key by its name in
/// Postgres's error.
pub const KEY_INDEX: &str = "idx_files_account_key";

/// `created_at`'s default on SQLite: now, in the fixed-width text the repository writes
/// (`2025-11-23T12:00:00.123000Z`), so that text comparison still orders by time.
pub(crate) const SQLITE_NOW: &str = "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')";

/// Which shape of `files` a statement builds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Shape {
    /// As the first migration made it: `sha256` and `storage_key` required, `created_at`
    /// without a default.
    First,
    /// As the adoption migration leaves it on SQLite: `sha256` and `storage_key` nullable,
    /// `created_at` defaulting to now in the repository's fixed-width text.
    AdoptedSqlite,
}

/// The `files` table in `shape`, under `name`.
pub fn files_table(name: impl IntoTableRef, shape: Shape) -> TableCreateStatement {
    let mut created_at = ColumnDef::new(Files::CreatedAt);
    created_at.timestamp_with_time_zone().not_null();
    let mut sha256 = ColumnDef::new(Files::Sha256);
    sha256.char_len(64);
    let mut storage_key = ColumnDef::new(Files::StorageKey);
    storage_key.string_len(512);
    match shape {
        Shape::First => {
            sha256.not_null();
            storage_key.not_null();
        }
        Shape::AdoptedSqlite => {
            created_at.default(Expr::cust(SQLITE_NOW));
            sha256.null();
            storage_key.null();
        }
    }
    Table::create()
        .table(name)
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
        .col(created_at)
        .col(sha256)
        .col(storage_key)
        .to_owned()
}

/// Stowage's indexes on `files`, each created only where it is missing.
pub fn files_indexes() -> impl Iterator<Item = IndexCreateStatement> {
    INDEXES.into_iter().map(|(name, column)| {
        Index::create()
            .if_not_exists()
            .name(name)
            .table(Files::Table)
            .col(column)
            .to_owned()
    })
}

/// The names of the columns `table` has now, so that a migration adds only what is missing
/// (tables the Pneumatic service made keep every column they had).
///
/// # Errors
/// [`DbErr`] when the catalogue cannot be read; MySQL is not supported.
pub(crate) async fn column_names(
    manager: &SchemaManager<'_>,
    table: &str,
) -> Result<Vec<String>, DbErr> {
    use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};
    let backend = manager.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => format!(
            "SELECT column_name::text AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}'"
        ),
        DbBackend::Sqlite => format!("SELECT name FROM pragma_table_info('{table}')"),
        DbBackend::MySql => return Err(DbErr::Migration("MySQL is not supported".to_owned())),
    };
    manager
        .get_connection()
        .query_all(Statement::from_string(backend, sql))
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "name"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_shape_is_the_one_the_first_migration_created() {
        let sql = files_table(Files::Table, Shape::First)
            .if_not_exists()
            .to_string(PostgresQueryBuilder);
        assert_eq!(
            sql,
            "CREATE TABLE IF NOT EXISTS \"files\" ( \"file_id\" uuid NOT NULL PRIMARY KEY, \
             \"size\" bigint NOT NULL, \"content_type\" varchar(255) NOT NULL, \
             \"filename\" varchar(255) NOT NULL, \"user_id\" bigint NULL, \
             \"account_id\" bigint NOT NULL, \"created_at\" timestamp with time zone NOT NULL, \
             \"sha256\" char(64) NOT NULL, \"storage_key\" varchar(512) NOT NULL )"
        );
    }
}
