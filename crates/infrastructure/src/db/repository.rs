//! [`FileRepository`] over SeaORM.

use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::sea_query::{
    Alias, BinOper, Expr, Func, InsertStatement, IntoColumnRef, Order, Query, SelectStatement,
    SimpleExpr,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, Statement,
    StatementBuilder, TransactionTrait, Value,
};
use stowage_application::events::FileEvent;
use stowage_application::ports::{FileRepository, ListCursor, ListPage, Owner, RepoError};
use stowage_domain::{AccountId, FileId, FileKey, FileRecord, Sha256Digest, UserId, Visibility};
use time::OffsetDateTime;
use time::macros::format_description;
use tokio::sync::OnceCell;

use super::DatabasePool;
use super::entity::file;
use super::outbox::{self, WebhookOutbox};

mod keys;
mod rows;

use rows::{CorruptRow, record_of};

/// Stores file records in SQLite or Postgres, in Stowage's own `files` table or in the Pneumatic
/// service's adopted one.
#[derive(Clone, Debug)]
pub struct SeaOrmFileRepository {
    db: DatabaseConnection,
    id_column: Arc<OnceCell<IdColumn>>,
    webhooks: Option<Arc<WebhookOutbox>>,
}

/// How `file_id` is stored: Stowage's own table has `uuid` (a 16-byte blob on SQLite), the
/// Pneumatic service's `varchar`. A parameter must have the column's type (Postgres compares a
/// `uuid` with a `uuid` only), so each id is bound as the column stores it and the primary key
/// index stays usable either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdColumn {
    Uuid,
    Text,
}

/// A file id as the API addresses files: a lower-case UUID v4.
const SERVABLE_ID: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$";

impl IdColumn {
    /// Leaves out rows whose id no request can name. Only an adopted Pneumatic table can hold
    /// them (its backend also copied object keys of an older store in as ids); listings and scans
    /// skip them rather than failing on them, and the start-up warning counts them.
    fn only_servable(self, query: &mut SelectStatement) {
        if self == IdColumn::Text {
            query.and_where(
                Expr::col(file::Column::FileId)
                    .binary(BinOper::Custom("~"), Expr::val(SERVABLE_ID)),
            );
        }
    }

    fn value(self, id: FileId) -> Value {
        match self {
            IdColumn::Uuid => id.as_uuid().into(),
            IdColumn::Text => id.to_string().into(),
        }
    }

    fn read(self, row: &QueryResult) -> Result<FileId, RepoError> {
        let corrupt = |what| {
            RepoError::Unavailable(Box::new(CorruptRow {
                file_id: row
                    .try_get::<String>("", "file_id")
                    .unwrap_or_else(|_| "?".to_owned()),
                what,
            }))
        };
        match self {
            IdColumn::Uuid => {
                let uuid: uuid::Uuid = row.try_get("", "file_id").map_err(unavailable)?;
                FileId::from_uuid(uuid).map_err(|_| corrupt("file_id is not a UUID v4"))
            }
            IdColumn::Text => {
                let text: String = row.try_get("", "file_id").map_err(unavailable)?;
                FileId::parse(&text).map_err(|_| corrupt("file_id is not a lower-case UUID v4"))
            }
        }
    }
}

impl SeaOrmFileRepository {
    /// A repository over an open connection pool.
    pub fn new(pool: DatabasePool) -> Self {
        Self {
            db: pool.connection().clone(),
            id_column: Arc::new(OnceCell::new()),
            webhooks: None,
        }
    }

    /// This repository keeping the events `outbox` selects for webhook delivery, each in the
    /// transaction of the change it reports (without it, events are not kept).
    #[must_use]
    pub fn with_webhooks(mut self, outbox: WebhookOutbox) -> Self {
        self.webhooks = Some(Arc::new(outbox));
        self
    }

    /// The outbox settings when one of `events` goes to the outbox.
    fn outbox_for(&self, events: &[FileEvent]) -> Option<&WebhookOutbox> {
        self.webhooks
            .as_deref()
            .filter(|outbox| outbox.keeps_any(events))
    }

    /// Runs `statement` and writes the outbox rows of `events` in one transaction; with `one`, a
    /// statement that changed no row is `NotFound` and writes nothing.
    async fn with_events<S: StatementBuilder>(
        &self,
        statement: &S,
        events: &[FileEvent],
        one: bool,
    ) -> Result<(), RepoError> {
        let backend = self.db.get_database_backend();
        let Some(outbox) = self.outbox_for(events) else {
            let result = self
                .db
                .execute(backend.build(statement))
                .await
                .map_err(unavailable)?;
            if one && result.rows_affected() == 0 {
                return Err(RepoError::NotFound);
            }
            return Ok(());
        };
        let txn = self.db.begin().await.map_err(unavailable)?;
        let result = txn
            .execute(backend.build(statement))
            .await
            .map_err(unavailable)?;
        if one && result.rows_affected() == 0 {
            txn.rollback().await.map_err(unavailable)?;
            return Err(RepoError::NotFound);
        }
        outbox::write(&txn, outbox, events)
            .await
            .map_err(unavailable)?;
        txn.commit().await.map_err(unavailable)
    }

    /// The type of `file_id`, looked up once (a failed look-up is tried again on the next call).
    async fn id_column(&self) -> Result<IdColumn, RepoError> {
        self.id_column
            .get_or_try_init(|| async {
                if self.db.get_database_backend() != DbBackend::Postgres {
                    return Ok(IdColumn::Uuid);
                }
                let row = self
                    .db
                    .query_one(Statement::from_string(
                        DbBackend::Postgres,
                        "SELECT data_type::text AS data_type FROM information_schema.columns \
                         WHERE table_schema = current_schema() AND table_name = 'files' \
                         AND column_name = 'file_id'",
                    ))
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| RepoError::Unavailable("there is no files table".into()))?;
                let data_type: String = row.try_get("", "data_type").map_err(unavailable)?;
                if data_type == "uuid" {
                    return Ok(IdColumn::Uuid);
                }
                self.warn_of_unservable_ids().await;
                Ok(IdColumn::Text)
            })
            .await
            .copied()
    }

    /// Says how many rows of an adopted table have ids the API cannot address (once).
    async fn warn_of_unservable_ids(&self) {
        let count = self
            .db
            .query_one(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT COUNT(*)::BIGINT AS n FROM files WHERE file_id !~ $1",
                [SERVABLE_ID.into()],
            ))
            .await
            .ok()
            .flatten()
            .and_then(|row| row.try_get::<i64>("", "n").ok())
            .unwrap_or(0);
        if count > 0 {
            tracing::warn!(
                rows = count,
                "rows of the files table have ids that are not lower-case UUIDs: no request can \
                 name them, and listings, digest and gc leave them out"
            );
        }
    }

    /// Runs `statement`, which changes the row of one id; `NotFound` when there is no such row.
    async fn change_one<S: StatementBuilder>(&self, statement: &S) -> Result<(), RepoError> {
        let backend = self.db.get_database_backend();
        let result = self
            .db
            .execute(backend.build(statement))
            .await
            .map_err(unavailable)?;
        if result.rows_affected() == 0 {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }

    /// The `INSERT` of `record`, key and metadata included.
    async fn insert_statement(&self, record: &FileRecord) -> Result<InsertStatement, RepoError> {
        let size = i64::try_from(record.size())
            .map_err(|_| RepoError::Unavailable("file size does not fit the size column".into()))?;
        let ids = self.id_column().await?;
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
                file::Column::Key,
                file::Column::Metadata,
                file::Column::Visibility,
            ])
            .values([
                ids.value(record.id()).into(),
                size.into(),
                record.content_type().as_str().into(),
                record.filename().as_str().into(),
                record.user_id().map(UserId::get).into(),
                record.account_id().get().into(),
                Expr::val(timestamp(backend, record.created_at())).into(),
                record.sha256().map(Sha256Digest::to_hex).into(),
                record.blob_key().to_string().into(),
                record.key().map(|k| k.as_str().to_owned()).into(),
                record.metadata().as_str().into(),
                record.visibility().as_str().into(),
            ])
            .map_err(|e| RepoError::Unavailable(Box::new(e)))?;
        Ok(insert)
    }

    /// `SELECT` of every column a record needs, from `files`. The integer columns are read as
    /// `BIGINT`: the Pneumatic table has `integer` ones.
    fn select() -> SelectStatement {
        let bigint = |column: file::Column| Expr::col(column).cast_as(Alias::new("BIGINT"));
        let mut select = Query::select();
        select
            .from(file::Entity)
            .columns([
                file::Column::FileId,
                file::Column::ContentType,
                file::Column::Filename,
                file::Column::CreatedAt,
                file::Column::Sha256,
                file::Column::Key,
                file::Column::Metadata,
                file::Column::Visibility,
            ])
            .expr_as(bigint(file::Column::Size), Alias::new("size"))
            .expr_as(bigint(file::Column::UserId), Alias::new("user_id"))
            .expr_as(bigint(file::Column::AccountId), Alias::new("account_id"));
        select
    }

    async fn fetch(&self, query: &SelectStatement) -> Result<Vec<FileRecord>, RepoError> {
        self.fetch_on(&self.db, query).await
    }

    /// The records `query` selects, read on `db` (the pool, or a transaction).
    async fn fetch_on(
        &self,
        db: &impl ConnectionTrait,
        query: &SelectStatement,
    ) -> Result<Vec<FileRecord>, RepoError> {
        let ids = self.id_column().await?;
        let backend = db.get_database_backend();
        let mut query = query.clone();
        ids.only_servable(&mut query);
        db.query_all(backend.build(&query))
            .await
            .map_err(unavailable)?
            .iter()
            .map(|row| record_of(ids, row))
            .collect()
    }

    /// [`Self::fetch`], with Postgres planning the statement for its values every time. A prefix
    /// listing's best plan depends on how many keys the prefix matches (the key index for a rare
    /// prefix, the time order for a common one); the generic plan Postgres may settle on for a
    /// statement run often would be fast for one and read hundreds of thousands of rows for the
    /// other.
    async fn fetch_planned_for_values(
        &self,
        query: &SelectStatement,
    ) -> Result<Vec<FileRecord>, RepoError> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return self.fetch(query).await;
        }
        let txn = self.db.begin().await.map_err(unavailable)?;
        txn.execute_unprepared("SET LOCAL plan_cache_mode = force_custom_plan")
            .await
            .map_err(unavailable)?;
        let records = self.fetch_on(&txn, query).await?;
        txn.commit().await.map_err(unavailable)?;
        Ok(records)
    }

    async fn scan_where(
        &self,
        after: Option<FileId>,
        limit: u32,
        legacy_only: bool,
    ) -> Result<Vec<FileRecord>, RepoError> {
        let ids = self.id_column().await?;
        let mut query = Self::select();
        if let Some(after) = after {
            query.and_where(Expr::col(file::Column::FileId).gt(ids.value(after)));
        }
        if legacy_only {
            query.and_where(Expr::col(file::Column::Sha256).is_null());
        }
        query
            .order_by(file::Column::FileId, Order::Asc)
            .limit(u64::from(limit));
        self.fetch(&query).await
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

#[async_trait]
impl FileRepository for SeaOrmFileRepository {
    async fn insert(&self, record: &FileRecord, events: &[FileEvent]) -> Result<(), RepoError> {
        let insert = self.insert_statement(record).await?;
        self.insert_keyed(None, &insert, events).await
    }

    async fn insert_replacing(
        &self,
        record: &FileRecord,
        old: FileId,
        events: &[FileEvent],
    ) -> Result<(), RepoError> {
        self.replace(record, old, events).await
    }

    async fn get_by_key(&self, account: AccountId, key: &FileKey) -> Result<FileRecord, RepoError> {
        self.by_key(account, key).await
    }

    async fn scan_replaced(
        &self,
        before: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<FileRecord>, RepoError> {
        self.replaced_before(before, limit).await
    }

    async fn get(&self, id: FileId) -> Result<FileRecord, RepoError> {
        let ids = self.id_column().await?;
        let mut query = Self::select();
        query.and_where(Expr::col(file::Column::FileId).eq(ids.value(id)));
        self.fetch(&query)
            .await?
            .into_iter()
            .next()
            .ok_or(RepoError::NotFound)
    }

    async fn delete(&self, id: FileId, events: &[FileEvent]) -> Result<(), RepoError> {
        let ids = self.id_column().await?;
        let delete = Query::delete()
            .from_table(file::Entity)
            .and_where(Expr::col(file::Column::FileId).eq(ids.value(id)))
            .to_owned();
        self.with_events(&delete, events, true).await
    }

    async fn record_events(&self, events: &[FileEvent]) -> Result<(), RepoError> {
        let Some(outbox) = self.outbox_for(events) else {
            return Ok(());
        };
        outbox::write(&self.db, outbox, events)
            .await
            .map_err(unavailable)
    }

    async fn list(
        &self,
        owner: Owner,
        limit: u32,
        cursor: Option<ListCursor>,
        prefix: Option<String>,
    ) -> Result<ListPage, RepoError> {
        let ids = self.id_column().await?;
        let mut query = Self::select();
        if let Some(prefix) = prefix.as_deref() {
            let backend = self.db.get_database_backend();
            let Some(starts_with) = keys::key_starts_with(backend, prefix) else {
                return Ok(ListPage {
                    items: Vec::new(),
                    next: None,
                });
            };
            query.cond_where(starts_with);
        }
        match owner {
            Owner::User(user, account) => query
                .and_where(Expr::col(file::Column::UserId).eq(user.get()))
                .and_where(Expr::col(file::Column::AccountId).eq(account.get())),
            Owner::Account(account) => query
                .and_where(Expr::col(file::Column::AccountId).eq(account.get()))
                .and_where(Expr::col(file::Column::UserId).is_null()),
        };
        if let Some(cursor) = cursor {
            // One row comparison rather than `a < x OR (a = x AND b < y)`: the database reads it
            // as a bound on the `(created_at, file_id)` order, so a deep page starts where the
            // cursor points instead of re-reading every newer row.
            let at = timestamp(self.db.get_database_backend(), cursor.created_at);
            query.and_where(
                Expr::tuple([
                    Expr::col(file::Column::CreatedAt.into_column_ref()).into(),
                    Expr::col(file::Column::FileId).into(),
                ])
                .lt(Expr::tuple([
                    Expr::val(at).into(),
                    Expr::val(ids.value(cursor.file_id)).into(),
                ])),
            );
        }
        query
            .order_by(file::Column::CreatedAt, Order::Desc)
            .order_by(file::Column::FileId, Order::Desc)
            .limit(u64::from(limit) + 1);
        let mut items = if prefix.is_some() {
            self.fetch_planned_for_values(&query).await?
        } else {
            self.fetch(&query).await?
        };
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
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
        self.scan_where(after, limit, false).await
    }

    async fn scan_without_digest(
        &self,
        after: Option<FileId>,
        limit: u32,
    ) -> Result<Vec<FileRecord>, RepoError> {
        self.scan_where(after, limit, true).await
    }

    async fn count_without_digest(&self) -> Result<u64, RepoError> {
        let backend = self.db.get_database_backend();
        let mut query = Query::select()
            .expr_as(
                SimpleExpr::from(Func::count(Expr::col(file::Column::FileId)))
                    .cast_as(Alias::new("BIGINT")),
                Alias::new("legacy"),
            )
            .from(file::Entity)
            .and_where(Expr::col(file::Column::Sha256).is_null())
            .to_owned();
        self.id_column().await?.only_servable(&mut query);
        let row = self
            .db
            .query_one(backend.build(&query))
            .await
            .map_err(unavailable)?;
        let count: i64 = match row {
            Some(row) => row.try_get("", "legacy").map_err(unavailable)?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn set_digest(&self, id: FileId, sha256: &Sha256Digest) -> Result<(), RepoError> {
        let ids = self.id_column().await?;
        let update = Query::update()
            .table(file::Entity)
            .value(file::Column::Sha256, sha256.to_hex())
            .and_where(Expr::col(file::Column::FileId).eq(ids.value(id)))
            .to_owned();
        self.change_one(&update).await
    }

    async fn set_visibility(&self, id: FileId, visibility: Visibility) -> Result<(), RepoError> {
        let ids = self.id_column().await?;
        let update = Query::update()
            .table(file::Entity)
            .value(file::Column::Visibility, visibility.as_str())
            .and_where(Expr::col(file::Column::FileId).eq(ids.value(id)))
            .to_owned();
        self.change_one(&update).await
    }
}
