//! [`FileRepository`] over SeaORM.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, Value,
};
use stowage_application::ports::{FileRepository, ListCursor, ListPage, Owner, RepoError};
use stowage_domain::{
    AccountId, ContentType, FileId, FileRecord, FileRecordParts, Filename, Sha256Digest, UserId,
};
use time::OffsetDateTime;
use time::macros::format_description;

use super::DatabasePool;
use super::entity::file;

/// Stores file records in SQLite or Postgres.
#[derive(Clone, Debug)]
pub struct SeaOrmFileRepository {
    db: DatabaseConnection,
}

impl SeaOrmFileRepository {
    /// A repository over an open connection pool.
    pub fn new(pool: DatabasePool) -> Self {
        Self {
            db: pool.connection().clone(),
        }
    }
}

/// `created_at` as the database compares it. SQLite keeps timestamps as text and compares the
/// text, so it gets one fixed width (six fraction digits, UTC, `Z`): RFC 3339 as sqlx writes it
/// drops trailing fraction zeros, and `.12Z` would sort after `.123456Z`.
fn timestamp(backend: DbBackend, t: OffsetDateTime) -> Value {
    let utc = t.to_offset(time::UtcOffset::UTC);
    match backend {
        DbBackend::Sqlite => {
            let fixed = format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            );
            match utc.format(fixed) {
                Ok(text) => Value::String(Some(Box::new(text))),
                Err(_) => utc.into(),
            }
        }
        _ => utc.into(),
    }
}

fn unavailable(e: DbErr) -> RepoError {
    RepoError::Unavailable(Box::new(e))
}

/// A row that does not convert is corrupt data, reported as a database failure (never a panic).
#[derive(Debug, thiserror::Error)]
#[error("row of file {file_id} is invalid: {what}")]
struct CorruptRow {
    file_id: uuid::Uuid,
    what: &'static str,
}

impl TryFrom<file::Model> for FileRecord {
    type Error = RepoError;

    fn try_from(m: file::Model) -> Result<Self, Self::Error> {
        let corrupt = |what| {
            RepoError::Unavailable(Box::new(CorruptRow {
                file_id: m.file_id,
                what,
            }))
        };
        Ok(FileRecord::new(FileRecordParts {
            id: FileId::from_uuid(m.file_id).map_err(|_| corrupt("file_id is not a UUID v4"))?,
            filename: Filename::from_stored(m.filename),
            content_type: ContentType::from_stored(m.content_type),
            size: u64::try_from(m.size).map_err(|_| corrupt("negative size"))?,
            sha256: Sha256Digest::parse_hex(&m.sha256).map_err(|_| corrupt("sha256 is not hex"))?,
            created_at: m.created_at,
            account_id: AccountId::new(m.account_id),
            user_id: m.user_id.map(UserId::new),
        }))
    }
}

#[async_trait]
impl FileRepository for SeaOrmFileRepository {
    async fn insert(&self, record: &FileRecord) -> Result<(), RepoError> {
        let size = i64::try_from(record.size())
            .map_err(|_| RepoError::Unavailable("file size does not fit the size column".into()))?;
        let backend = self.db.get_database_backend();
        let mut insert = Query::insert();
        insert
            .into_table(file::Entity)
            .columns([
                file::Column::FileId,
                file::Column::Size,
                file::Column::ContentType,
                file::Column::Filename,
                file::Column::UserId,
                file::Column::AccountId,
                file::Column::CreatedAt,
                file::Column::Sha256,
                file::Column::StorageKey,
            ])
            .values([
                record.id().as_uuid().into(),
                size.into(),
                record.content_type().as_str().into(),
                record.filename().as_str().into(),
                record.user_id().map(UserId::get).into(),
                record.account_id().get().into(),
                Expr::val(timestamp(backend, record.created_at())).into(),
                record.sha256().to_hex().into(),
                record.blob_key().to_string().into(),
            ])
            .map_err(|e| RepoError::Unavailable(Box::new(e)))?;
        self.db
            .execute(backend.build(&insert))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get(&self, id: FileId) -> Result<FileRecord, RepoError> {
        file::Entity::find_by_id(id.as_uuid())
            .one(&self.db)
            .await
            .map_err(unavailable)?
            .ok_or(RepoError::NotFound)?
            .try_into()
    }

    async fn delete(&self, id: FileId) -> Result<(), RepoError> {
        let result = file::Entity::delete_by_id(id.as_uuid())
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        if result.rows_affected == 0 {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }

    async fn list(
        &self,
        owner: Owner,
        limit: u32,
        cursor: Option<ListCursor>,
    ) -> Result<ListPage, RepoError> {
        let mut query = match owner {
            Owner::User(user, account) => file::Entity::find()
                .filter(file::Column::UserId.eq(user.get()))
                .filter(file::Column::AccountId.eq(account.get())),
            Owner::Account(account) => file::Entity::find()
                .filter(file::Column::AccountId.eq(account.get()))
                .filter(file::Column::UserId.is_null()),
        };
        if let Some(cursor) = cursor {
            let at = timestamp(self.db.get_database_backend(), cursor.created_at);
            query = query.filter(
                Condition::any()
                    .add(file::Column::CreatedAt.lt(at.clone()))
                    .add(
                        Condition::all()
                            .add(file::Column::CreatedAt.eq(at))
                            .add(file::Column::FileId.lt(cursor.file_id.as_uuid())),
                    ),
            );
        }
        let rows = query
            .order_by_desc(file::Column::CreatedAt)
            .order_by_desc(file::Column::FileId)
            .limit(u64::from(limit) + 1)
            .all(&self.db)
            .await
            .map_err(unavailable)?;
        let more = rows.len() > limit as usize;
        let items = rows
            .into_iter()
            .take(limit as usize)
            .map(FileRecord::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next = match items.last() {
            Some(last) if more => Some(ListCursor {
                created_at: last.created_at(),
                file_id: last.id(),
            }),
            _ => None,
        };
        Ok(ListPage { items, next })
    }

    async fn health(&self) -> Result<(), RepoError> {
        let backend = self.db.get_database_backend();
        self.db
            .execute(Statement::from_string(backend, "SELECT 1"))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn scan(&self, after: Option<FileId>, limit: u32) -> Result<Vec<FileRecord>, RepoError> {
        let mut query = file::Entity::find();
        if let Some(after) = after {
            query = query.filter(file::Column::FileId.gt(after.as_uuid()));
        }
        query
            .order_by_asc(file::Column::FileId)
            .limit(u64::from(limit))
            .all(&self.db)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(FileRecord::try_from)
            .collect()
    }
}
