//! File keys and metadata on `files`: `key` (the path a file may be addressed by, unique per
//! account), `metadata` (the client's JSON object, compact; null reads as `{}`) and `replaced_at`
//! (set when an upload took the file's key, so that `gc` removes it if its deletion never happens).
//!
//! Only additions, each made only where missing: three nullable columns and two partial indexes,
//! so a table the Pneumatic service made keeps every column and index it had, its rows stay valid,
//! and building the indexes reads no existing row into them (every key is null until Stowage
//! writes one). `replaced_at` is stored as `created_at` is: `timestamptz` on Postgres, the
//! repository's fixed-width text on SQLite.
//!
//! `idx_files_account_key` makes the key unique per account and serves both a look-up by key and
//! a listing by a rare prefix (a range on the key within the account). On Postgres it orders keys
//! by bytes (`COLLATE "C"`), whatever the database's collation, so that a prefix is a range of it;
//! SQLite compares bytes already. A prefix matching most of an owner's files is served as a
//! listing without prefix is, by the `created_at` order with the key as a filter.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[cfg(test)]
use crate::files::KEY_INDEX;
use crate::files::column_names;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Each new column with its type on Postgres and on SQLite.
const COLUMNS: [(&str, &str, &str); 3] = [
    ("key", "VARCHAR(512)", "TEXT"),
    ("metadata", "TEXT", "TEXT"),
    ("replaced_at", "TIMESTAMP WITH TIME ZONE", "TEXT"),
];

/// The indexes on Postgres.
const POSTGRES_INDEXES: [&str; 2] = [
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_files_account_key \
     ON files (account_id, key COLLATE \"C\") WHERE key IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_files_replaced_at ON files (replaced_at) \
     WHERE replaced_at IS NOT NULL",
];

/// The indexes on SQLite.
const SQLITE_INDEXES: [&str; 2] = [
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_files_account_key \
     ON files (account_id, key) WHERE key IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_files_replaced_at ON files (replaced_at) \
     WHERE replaced_at IS NOT NULL",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let indexes = match backend {
            DbBackend::Postgres => POSTGRES_INDEXES,
            _ => SQLITE_INDEXES,
        };
        let existing = column_names(manager, "files").await?;
        let db = manager.get_connection();
        for (name, postgres, sqlite) in COLUMNS {
            if existing.iter().any(|c| c == name) {
                continue;
            }
            let ty = if backend == DbBackend::Postgres {
                postgres
            } else {
                sqlite
            };
            db.execute_unprepared(&format!("ALTER TABLE files ADD COLUMN {name} {ty} NULL"))
                .await?;
        }
        for index in indexes {
            db.execute_unprepared(index).await?;
        }
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // Nothing to undo that is safe to undo: the columns hold clients' keys and metadata.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_index_is_the_one_the_repository_names() {
        for index in [POSTGRES_INDEXES[0], SQLITE_INDEXES[0]] {
            assert!(index.contains(KEY_INDEX), "{index}");
            assert!(index.contains("WHERE key IS NOT NULL"), "{index}");
        }
    }
}
