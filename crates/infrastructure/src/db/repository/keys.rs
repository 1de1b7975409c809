//! Keys of [`SeaOrmFileRepository`]: writing a keyed record (a taken key is
//! [`RepoError::KeyTaken`], found by the database's unique index, never by a look-up first),
//! replacing a file under its key, finding a file by key, and matching keys by prefix.

use sea_orm::sea_query::{
    Alias, Cond, Expr, Func, InsertStatement, Order, Query, SimpleExpr, UpdateStatement,
};
use sea_orm::sqlx;
use sea_orm::sqlx::error::ErrorKind;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, RuntimeErr, TransactionTrait};
use stowage_application::events::FileEvent;
use stowage_application::ports::RepoError;
use stowage_domain::{AccountId, FileId, FileKey, FileRecord, MAX_KEY_BYTES};
use stowage_migration::files::KEY_INDEX;
use time::OffsetDateTime;

use super::{SeaOrmFileRepository, file, outbox, timestamp, unavailable};

/// SQLite's extended result code for a violated unique index (a primary key has its own code).
const SQLITE_CONSTRAINT_UNIQUE: &str = "2067";

/// Whether `e` is the violation of the unique index on `(account_id, key)`. Postgres names the
/// index; SQLite names only the columns, so there the code says it is a unique index (not the
/// primary key) and the message which one.
fn key_taken(e: &DbErr) -> bool {
    let (DbErr::Exec(RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(db)))
    | DbErr::Query(RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(db)))) = e
    else {
        return false;
    };
    if db.constraint() == Some(KEY_INDEX) {
        return true;
    }
    db.kind() == ErrorKind::UniqueViolation
        && db.code().as_deref() == Some(SQLITE_CONSTRAINT_UNIQUE)
        && db.message().contains("files.key")
}

/// A failed write: `KeyTaken` when the key index refused it.
fn write_error(e: DbErr) -> RepoError {
    if key_taken(&e) {
        RepoError::KeyTaken
    } else {
        unavailable(e)
    }
}

/// A failed statement that commits on its own (a lone insert on SQLite, or a commit):
/// `Unconfirmed` when the connection broke instead of the database answering, since the database
/// may have applied it before its answer was lost.
fn commit_error(e: DbErr) -> RepoError {
    let (DbErr::Exec(RuntimeErr::SqlxError(cause)) | DbErr::Query(RuntimeErr::SqlxError(cause))) =
        &e
    else {
        return write_error(e);
    };
    match cause {
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => RepoError::Unconfirmed(Box::new(e)),
        _ => write_error(e),
    }
}

/// The key as the key index orders it: by bytes (code points), on Postgres whatever the
/// database's collation.
fn ordered_key(backend: DbBackend) -> Expr {
    match backend {
        DbBackend::Postgres => Expr::expr(Expr::cust(r#""key" COLLATE "C""#)),
        _ => Expr::col(file::Column::Key),
    }
}

/// The smallest string above every string that starts with `prefix`, in code-point order (which
/// is UTF-8 byte order); `None` when there is none (every character is the last one).
fn next_prefix(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The condition that a key starts with `prefix`, literally and case-sensitively: a range of the
/// key index, which holds exactly the keys that start with it (so a rare prefix reads only its
/// rows), and the exact comparison of the key's start. `None` when no key can match (a prefix
/// longer than any key, or holding NUL, which no key holds and Postgres cannot take as text).
pub(super) fn key_starts_with(backend: DbBackend, prefix: &str) -> Option<Cond> {
    if prefix.len() > MAX_KEY_BYTES || prefix.contains('\0') {
        return None;
    }
    let mut cond = Cond::all().add(Expr::col(file::Column::Key).is_not_null());
    if prefix.is_empty() {
        return Some(cond);
    }
    cond = cond.add(ordered_key(backend).gte(prefix));
    if let Some(next) = next_prefix(prefix) {
        cond = cond.add(ordered_key(backend).lt(next));
    }
    let chars = i32::try_from(prefix.chars().count()).ok()?;
    let start = SimpleExpr::from(Func::cust(Alias::new("substr")).args([
        Expr::col(file::Column::Key).into(),
        Expr::val(1_i32).into(),
        Expr::val(chars).into(),
    ]));
    Some(cond.add(Expr::expr(start).eq(prefix)))
}

impl SeaOrmFileRepository {
    /// Inserts a record, after `take` (which must change one row, or the key is taken) when
    /// given, and writes the outbox rows of `events`, in one transaction.
    pub(super) async fn insert_keyed(
        &self,
        take: Option<&UpdateStatement>,
        insert: &InsertStatement,
        events: &[FileEvent],
    ) -> Result<(), RepoError> {
        let backend = self.db.get_database_backend();
        let outbox = self.outbox_for(events);
        // On Postgres even a lone insert goes in a transaction: the pool does not check a
        // connection used within the last second (`PING_WHEN_IDLE_FOR`), so one that broke since
        // fails at `BEGIN`, where nothing can have been applied, rather than after the insert was
        // sent, where the record might exist and its blob would wait for gc. SQLite's pool checks
        // every connection, in process.
        if take.is_none() && outbox.is_none() && backend != DbBackend::Postgres {
            self.db
                .execute(backend.build(insert))
                .await
                .map_err(commit_error)?;
            return Ok(());
        }
        let txn = self.db.begin().await.map_err(unavailable)?;
        if let Some(take) = take {
            let taken = txn
                .execute(backend.build(take))
                .await
                .map_err(unavailable)?;
            if taken.rows_affected() == 0 {
                txn.rollback().await.map_err(unavailable)?;
                return Err(RepoError::KeyTaken);
            }
        }
        if let Err(e) = txn.execute(backend.build(insert)).await {
            let error = write_error(e);
            txn.rollback().await.map_err(unavailable)?;
            return Err(error);
        }
        if let Some(outbox) = outbox {
            outbox::write(&txn, outbox, events)
                .await
                .map_err(unavailable)?;
        }
        txn.commit().await.map_err(commit_error)
    }

    /// [`FileRepository::insert_replacing`](stowage_application::ports::FileRepository::insert_replacing).
    pub(super) async fn replace(
        &self,
        record: &FileRecord,
        old: FileId,
        events: &[FileEvent],
    ) -> Result<(), RepoError> {
        let Some(key) = record.key() else {
            return Err(RepoError::KeyTaken);
        };
        let ids = self.id_column().await?;
        let backend = self.db.get_database_backend();
        let take = Query::update()
            .table(file::Entity)
            .value(file::Column::Key, Option::<String>::None)
            .value(
                file::Column::ReplacedAt,
                Expr::val(timestamp(backend, OffsetDateTime::now_utc())),
            )
            .and_where(Expr::col(file::Column::FileId).eq(ids.value(old)))
            .and_where(Expr::col(file::Column::AccountId).eq(record.account_id().get()))
            .and_where(Expr::col(file::Column::Key).eq(key.as_str()))
            .to_owned();
        let insert = self.insert_statement(record).await?;
        self.insert_keyed(Some(&take), &insert, events).await
    }

    /// [`FileRepository::get_by_key`](stowage_application::ports::FileRepository::get_by_key).
    pub(super) async fn by_key(
        &self,
        account: AccountId,
        key: &FileKey,
    ) -> Result<FileRecord, RepoError> {
        let backend = self.db.get_database_backend();
        let mut query = Self::select();
        query
            .and_where(Expr::col(file::Column::AccountId).eq(account.get()))
            .and_where(ordered_key(backend).eq(key.as_str()));
        self.fetch(&query)
            .await?
            .into_iter()
            .next()
            .ok_or(RepoError::NotFound)
    }

    /// [`FileRepository::scan_replaced`](stowage_application::ports::FileRepository::scan_replaced).
    pub(super) async fn replaced_before(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<FileRecord>, RepoError> {
        let backend = self.db.get_database_backend();
        let mut query = Self::select();
        query
            .and_where(Expr::col(file::Column::ReplacedAt).is_not_null())
            .and_where(Expr::col(file::Column::ReplacedAt).lt(timestamp(backend, before)))
            .order_by(file::Column::ReplacedAt, Order::Asc)
            .order_by(file::Column::FileId, Order::Asc)
            .limit(u64::from(limit));
        self.fetch(&query).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_prefix_bounds_exactly_the_strings_that_start_with_it() {
        assert_eq!(next_prefix("a/"), Some("a0".to_owned()));
        assert_eq!(next_prefix("a%"), Some("a&".to_owned()));
        assert_eq!(next_prefix("\u{D7FF}"), Some("\u{E000}".to_owned()));
        assert_eq!(next_prefix("x\u{10FFFF}"), Some("y".to_owned()));
        assert_eq!(next_prefix("\u{10FFFF}"), None);
        for (prefix, inside, outside) in [
            ("é/", "é/ü.png", "é0"),
            ("a", "a\u{10FFFF}", "b"),
            ("ab", "ab", "ac"),
        ] {
            let next = next_prefix(prefix).unwrap();
            assert!(
                prefix <= inside && inside < next.as_str(),
                "{prefix} {inside}"
            );
            assert!(outside >= next.as_str(), "{prefix} {outside}");
        }
    }

    #[test]
    fn a_prefix_is_a_bytewise_range_of_the_key_index_and_an_exact_start() {
        let mut query = Query::select();
        query.column(file::Column::FileId).from(file::Entity);
        query.cond_where(key_starts_with(DbBackend::Postgres, "a%é").unwrap());
        assert_eq!(
            query.to_string(sea_orm::sea_query::PostgresQueryBuilder),
            r#"SELECT "file_id" FROM "files" WHERE "key" IS NOT NULL AND ("key" COLLATE "C") >= 'a%é' AND ("key" COLLATE "C") < 'a%ê' AND substr("key", 1, 3) = 'a%é'"#
        );
        assert!(key_starts_with(DbBackend::Sqlite, &"x".repeat(513)).is_none());
        assert!(key_starts_with(DbBackend::Sqlite, "a\0").is_none());
    }

    #[test]
    fn a_commit_whose_connection_broke_is_unconfirmed_and_an_answer_is_not() {
        let broken = || {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "peer closed connection",
            ))
        };
        let exec = commit_error(DbErr::Exec(RuntimeErr::SqlxError(broken())));
        let commit = commit_error(DbErr::Query(RuntimeErr::SqlxError(broken())));
        assert!(matches!(exec, RepoError::Unconfirmed(_)), "{exec:?}");
        assert!(matches!(commit, RepoError::Unconfirmed(_)), "{commit:?}");
        // No connection to send it on: certainly not applied.
        let acquire = commit_error(DbErr::Conn(RuntimeErr::SqlxError(broken())));
        assert!(matches!(acquire, RepoError::Unavailable(_)), "{acquire:?}");
        let answered = commit_error(DbErr::Exec(RuntimeErr::Internal("refused".into())));
        assert!(
            matches!(answered, RepoError::Unavailable(_)),
            "{answered:?}"
        );
    }
}
