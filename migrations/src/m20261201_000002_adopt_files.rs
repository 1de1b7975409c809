//! Brings `files` to the one shape Stowage serves, whoever made it: Stowage's first migration, or
//! the Pneumatic service's Alembic migrations (`file_id` varchar, `user_id` and `account_id`
//! integer, no `sha256` or `storage_key`).
//!
//! The end state, on either: `sha256` and `storage_key` exist and are nullable (a row without a
//! digest is a legacy row, a null key means the layout's default key), `created_at` defaults to
//! now, and `account_id`, `user_id` and `created_at` are indexed. So a row inserted with only the
//! seven Pneumatic columns is valid on either table.
//!
//! Only additions: no existing Pneumatic column is changed or dropped (Stowage's own `sha256` and
//! `storage_key` lose their `NOT NULL`, its `created_at` gains a default), `alembic_version` is
//! never touched, and every step first looks whether it is needed, so running it again changes
//! nothing. On Postgres it runs inside the advisory-locked transaction of `migrate_locked`.
//!
//! SQLite (only ever Stowage's own table) cannot alter a column: the table is rebuilt once, in a
//! transaction, and every row copied.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{
    ConnectionTrait, DbBackend, QueryResult, Statement, TransactionTrait,
};

use crate::files::{INDEXES, Shape, files_indexes, files_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// What the adoption needs to know about one column of `files`.
struct Column {
    name: String,
    nullable: bool,
    has_default: bool,
}

impl Column {
    fn find<'a>(columns: &'a [Column], name: &str) -> Option<&'a Column> {
        columns.iter().find(|c| c.name == name)
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => adopt_postgres(manager).await,
            DbBackend::Sqlite => adopt_sqlite(manager).await,
            DbBackend::MySql => Err(DbErr::Migration("MySQL is not supported".to_owned())),
        }
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Nothing to undo that is safe to undo: the columns may hold digests and the indexes may
        // be the only ones a Pneumatic table has.
        Ok(())
    }
}

/// The statements that bring a Postgres `files` table to shape, given its columns and the first
/// column of each of its indexes; empty when it already has that shape.
fn postgres_statements(columns: &[Column], indexed: &[String]) -> Vec<String> {
    let mut statements = Vec::new();
    for (name, ty) in [("sha256", "CHAR(64)"), ("storage_key", "VARCHAR(512)")] {
        match Column::find(columns, name) {
            None => statements.push(format!("ALTER TABLE files ADD COLUMN {name} {ty} NULL")),
            Some(column) if !column.nullable => {
                statements.push(format!(
                    "ALTER TABLE files ALTER COLUMN {name} DROP NOT NULL"
                ));
            }
            Some(_) => {}
        }
    }
    if Column::find(columns, "created_at").is_some_and(|c| !c.has_default) {
        statements.push("ALTER TABLE files ALTER COLUMN created_at SET DEFAULT now()".to_owned());
    }
    for (index, column) in INDEXES {
        let column = column.to_string();
        if !indexed.contains(&column) {
            statements.push(format!(
                "CREATE INDEX IF NOT EXISTS {index} ON files ({column})"
            ));
        }
    }
    statements
}

async fn adopt_postgres(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let columns = db
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            "SELECT column_name::text AS name, is_nullable = 'YES' AS nullable, \
             column_default IS NOT NULL AS has_default \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = 'files'",
        ))
        .await?
        .iter()
        .map(column_of)
        .collect::<Result<Vec<_>, _>>()?;
    if columns.is_empty() {
        return Err(DbErr::Migration(
            "there is no files table to adopt".to_owned(),
        ));
    }
    // An index of Pneumatic's (`ix_files_account_id`) serves as well as Stowage's would: a column
    // that leads any index gets no second one.
    let indexed = db
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            "SELECT a.attname::text AS name FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = 'files'::regclass",
        ))
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "name"))
        .collect::<Result<Vec<_>, _>>()?;
    for statement in postgres_statements(&columns, &indexed) {
        db.execute_unprepared(&statement).await?;
    }
    Ok(())
}

fn column_of(row: &QueryResult) -> Result<Column, DbErr> {
    Ok(Column {
        name: row.try_get("", "name")?,
        nullable: row.try_get("", "nullable")?,
        has_default: row.try_get("", "has_default")?,
    })
}

async fn adopt_sqlite(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let columns = db
        .query_all(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT name, \"notnull\" = 0 AS nullable, dflt_value IS NOT NULL AS has_default \
             FROM pragma_table_info('files')",
        ))
        .await?
        .iter()
        .map(column_of)
        .collect::<Result<Vec<_>, _>>()?;
    let nullable = |name| Column::find(&columns, name).is_some_and(|c| c.nullable);
    let in_shape = nullable("sha256")
        && nullable("storage_key")
        && Column::find(&columns, "created_at").is_some_and(|c| c.has_default);
    if !in_shape {
        let txn = db.begin().await?;
        let backend = DbBackend::Sqlite;
        txn.execute(backend.build(&files_table(
            Alias::new("files_adopted"),
            Shape::AdoptedSqlite,
        )))
        .await?;
        let copied = [
            "file_id",
            "size",
            "content_type",
            "filename",
            "user_id",
            "account_id",
            "created_at",
            "sha256",
            "storage_key",
        ]
        .join(", ");
        txn.execute_unprepared(&format!(
            "INSERT INTO files_adopted ({copied}) SELECT {copied} FROM files"
        ))
        .await?;
        txn.execute_unprepared("DROP TABLE files").await?;
        txn.execute_unprepared("ALTER TABLE files_adopted RENAME TO files")
            .await?;
        txn.commit().await?;
    }
    for index in files_indexes() {
        manager.create_index(index).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::SQLITE_NOW;

    fn column(name: &str, nullable: bool, has_default: bool) -> Column {
        Column {
            name: name.to_owned(),
            nullable,
            has_default,
        }
    }

    fn pneumatic() -> Vec<Column> {
        vec![
            column("file_id", false, false),
            column("size", false, false),
            column("content_type", false, false),
            column("filename", false, false),
            column("user_id", true, false),
            column("account_id", false, false),
            column("created_at", false, true),
        ]
    }

    #[test]
    fn a_pneumatic_table_gets_columns_and_only_the_missing_index() {
        let indexed = vec![
            "file_id".to_owned(),
            "account_id".to_owned(),
            "user_id".to_owned(),
        ];
        assert_eq!(
            postgres_statements(&pneumatic(), &indexed),
            [
                "ALTER TABLE files ADD COLUMN sha256 CHAR(64) NULL",
                "ALTER TABLE files ADD COLUMN storage_key VARCHAR(512) NULL",
                "CREATE INDEX IF NOT EXISTS idx_files_created_at ON files (created_at)",
            ]
        );
    }

    #[test]
    fn stowage_s_first_shape_loosens_its_own_columns_only() {
        let mut columns = pneumatic();
        columns.retain(|c| c.name != "created_at");
        columns.push(column("created_at", false, false));
        columns.push(column("sha256", false, false));
        columns.push(column("storage_key", false, false));
        let indexed = ["file_id", "account_id", "user_id", "created_at"].map(str::to_owned);
        assert_eq!(
            postgres_statements(&columns, &indexed),
            [
                "ALTER TABLE files ALTER COLUMN sha256 DROP NOT NULL",
                "ALTER TABLE files ALTER COLUMN storage_key DROP NOT NULL",
                "ALTER TABLE files ALTER COLUMN created_at SET DEFAULT now()",
            ]
        );
    }

    #[test]
    fn an_adopted_table_needs_nothing() {
        let mut columns = pneumatic();
        columns.push(column("sha256", true, false));
        columns.push(column("storage_key", true, false));
        let indexed = ["file_id", "account_id", "user_id", "created_at"].map(str::to_owned);
        assert!(postgres_statements(&columns, &indexed).is_empty());
    }

    #[test]
    fn the_sqlite_table_is_nullable_with_a_fixed_width_default() {
        let sql = files_table(Alias::new("files_adopted"), Shape::AdoptedSqlite)
            .to_string(SqliteQueryBuilder);
        assert!(sql.contains(&format!("DEFAULT {SQLITE_NOW}")), "{sql}");
        assert!(sql.contains("\"sha256\" char(64) NULL"), "{sql}");
    }
}
