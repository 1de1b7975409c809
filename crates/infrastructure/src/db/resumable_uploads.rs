//! [`ResumableRepository`] in the `resumable_uploads` table, on SQLite and Postgres alike.
//!
//! A lock is one conditional `UPDATE` (no live lease) that returns the row it took, so of two
//! requests at once only one changes the row (Postgres makes the second wait for the first's
//! commit, then re-checks the condition; SQLite has one writer). Progress is stored under the
//! same condition plus the token, so a holder whose lease lapsed cannot overwrite what a later
//! holder wrote. Times are Unix milliseconds: leases by the database's clock, `expires_at` by the
//! service's (it is the `Upload-Expires` clients see).

use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, QueryResult, Statement};
use stowage_application::ports::{
    ClaimToken, Concat, RepoError, ResumableId, ResumableLock, ResumableProgress,
    ResumableRepository, ResumableStage, ResumableUpload, StoreProgress,
};
use stowage_domain::{AccountId, FileId, UserId};
use time::OffsetDateTime;

use super::sql::{
    from_unix_millis, kind_name, lease_millis, parse_kind, renew_while_held, token_text,
    unix_millis,
};
use super::{DatabasePool, db_now};

/// The resumable uploads and their locks, in the service's database.
#[derive(Clone, Debug)]
pub struct SeaOrmResumableRepository {
    db: DatabaseConnection,
}

impl SeaOrmResumableRepository {
    /// The repository of the database behind `pool`.
    pub fn new(pool: &DatabasePool) -> Self {
        Self {
            db: pool.connection().clone(),
        }
    }

    fn now(&self) -> &'static str {
        db_now(self.db.get_database_backend())
    }

    fn statement(&self, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
        Statement::from_sql_and_values(self.db.get_database_backend(), sql, values)
    }

    async fn execute(&self, sql: &str, values: Vec<sea_orm::Value>) -> Result<u64, RepoError> {
        self.db
            .execute(self.statement(sql, values))
            .await
            .map(|r| r.rows_affected())
            .map_err(unavailable)
    }

    async fn query_one(
        &self,
        sql: &str,
        values: Vec<sea_orm::Value>,
    ) -> Result<Option<ResumableUpload>, RepoError> {
        let row = self
            .db
            .query_one(self.statement(sql, values))
            .await
            .map_err(unavailable)?;
        row.map(|r| parse(&r)).transpose()
    }

    async fn query_all(
        &self,
        sql: &str,
        values: Vec<sea_orm::Value>,
    ) -> Result<Vec<ResumableUpload>, RepoError> {
        let rows = self
            .db
            .query_all(self.statement(sql, values))
            .await
            .map_err(unavailable)?;
        rows.iter().map(parse).collect()
    }
}

const COLUMNS: &str = "upload_id, file_id, account_id, user_id, principal_kind, length, \
    upload_offset, metadata, concat, partials, store_progress, digest_state, head, stage, \
    expires_at";

/// Renews a lease still held under its token, whatever its state: a lapsed lease nobody took
/// over is as good as a live one to its holder.
const RENEW: &str = "UPDATE resumable_uploads SET locked_until = {now} + $1 WHERE upload_id = $2 AND lock_token = $3";

fn unavailable(e: DbErr) -> RepoError {
    RepoError::Unavailable(Box::new(e))
}

fn corrupt(what: &str) -> RepoError {
    RepoError::Unavailable(format!("resumable_uploads row with an invalid {what}").into())
}

/// A byte count as the `BIGINT` columns keep it.
fn count(n: u64, what: &str) -> Result<i64, RepoError> {
    i64::try_from(n).map_err(|_| {
        RepoError::Unavailable(format!("a resumable upload's {what} beyond BIGINT").into())
    })
}

fn stage_name(stage: ResumableStage) -> &'static str {
    match stage {
        ResumableStage::Open => "open",
        ResumableStage::Completed => "completed",
    }
}

/// The `concat` and `partials` columns of `concat`: the final's partial ids in order, spaced.
fn concat_columns(concat: Option<&Concat>) -> (Option<&'static str>, Option<String>) {
    match concat {
        None => (None, None),
        Some(Concat::Partial) => (Some("partial"), None),
        Some(Concat::Final(parts)) => (
            Some("final"),
            Some(
                parts
                    .iter()
                    .map(ResumableId::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ),
    }
}

fn parse_concat(
    kind: Option<String>,
    partials: Option<String>,
) -> Result<Option<Concat>, RepoError> {
    match kind.as_deref() {
        None => Ok(None),
        Some("partial") => Ok(Some(Concat::Partial)),
        Some("final") => partials
            .unwrap_or_default()
            .split_whitespace()
            .map(|p| ResumableId::parse(p).ok_or_else(|| corrupt("partial id")))
            .collect::<Result<_, _>>()
            .map(|parts| Some(Concat::Final(parts))),
        Some(_) => Err(corrupt("concat")),
    }
}

fn parse(r: &QueryResult) -> Result<ResumableUpload, RepoError> {
    let get_str = |c: &str| r.try_get::<String>("", c).map_err(unavailable);
    let get_opt = |c: &str| r.try_get::<Option<String>>("", c).map_err(unavailable);
    let get_i64 = |c: &str| r.try_get::<i64>("", c).map_err(unavailable);
    let get_opt_i64 = |c: &str| r.try_get::<Option<i64>>("", c).map_err(unavailable);
    let get_bytes = |c: &str| r.try_get::<Vec<u8>>("", c).map_err(unavailable);
    let stage = match get_str("stage")?.as_str() {
        "open" => ResumableStage::Open,
        "completed" => ResumableStage::Completed,
        _ => return Err(corrupt("stage")),
    };
    Ok(ResumableUpload {
        id: ResumableId::parse(&get_str("upload_id")?).ok_or_else(|| corrupt("id"))?,
        file_id: FileId::parse(&get_str("file_id")?).map_err(|_| corrupt("file id"))?,
        account_id: AccountId::new(get_i64("account_id")?),
        user_id: get_opt_i64("user_id")?.map(UserId::new),
        principal_kind: parse_kind(&get_str("principal_kind")?)
            .ok_or_else(|| corrupt("principal kind"))?,
        length: get_opt_i64("length")?
            .map(u64::try_from)
            .transpose()
            .map_err(|_| corrupt("length"))?,
        offset: u64::try_from(get_i64("upload_offset")?).map_err(|_| corrupt("offset"))?,
        metadata: get_opt("metadata")?,
        concat: parse_concat(get_opt("concat")?, get_opt("partials")?)?,
        store: StoreProgress(get_str("store_progress")?),
        digest: get_bytes("digest_state")?,
        head: get_bytes("head")?,
        stage,
        expires_at: from_unix_millis(get_i64("expires_at")?).ok_or_else(|| corrupt("expiry"))?,
    })
}

#[async_trait]
impl ResumableRepository for SeaOrmResumableRepository {
    async fn insert(&self, upload: &ResumableUpload) -> Result<(), RepoError> {
        let (concat, partials) = concat_columns(upload.concat.as_ref());
        let length = upload.length.map(|n| count(n, "length")).transpose()?;
        let values: Vec<sea_orm::Value> = vec![
            upload.id.to_string().into(),
            upload.file_id.to_string().into(),
            upload.account_id.get().into(),
            upload.user_id.map(UserId::get).into(),
            kind_name(upload.principal_kind).into(),
            length.into(),
            count(upload.offset, "offset")?.into(),
            upload.metadata.clone().into(),
            concat.map(str::to_owned).into(),
            partials.into(),
            upload.store.0.clone().into(),
            upload.digest.clone().into(),
            upload.head.clone().into(),
            stage_name(upload.stage).into(),
            unix_millis(upload.expires_at).into(),
        ];
        let now = self.now();
        self.execute(
            &format!(
                "INSERT INTO resumable_uploads ({COLUMNS}, created_at) VALUES ($1, $2, $3, $4, \
                 $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, {now})"
            ),
            values,
        )
        .await
        .map(|_| ())
    }

    async fn get(&self, id: ResumableId) -> Result<ResumableUpload, RepoError> {
        self.query_one(
            &format!("SELECT {COLUMNS} FROM resumable_uploads WHERE upload_id = $1"),
            vec![id.to_string().into()],
        )
        .await?
        .ok_or(RepoError::NotFound)
    }

    async fn lock(
        &self,
        id: ResumableId,
        token: ClaimToken,
        lease: Duration,
    ) -> Result<ResumableLock, RepoError> {
        let now = self.now();
        let taken = self
            .query_one(
                &format!(
                    "UPDATE resumable_uploads SET lock_token = $1, locked_until = {now} + $2 \
                     WHERE upload_id = $3 AND (locked_until IS NULL OR locked_until < {now}) \
                     RETURNING {COLUMNS}"
                ),
                vec![
                    token_text(token).into(),
                    lease_millis(lease).into(),
                    id.to_string().into(),
                ],
            )
            .await?;
        match taken {
            Some(upload) => Ok(ResumableLock::Locked(Box::new(upload))),
            // Nothing taken: either another lock lives, or there is no such upload.
            None => self.get(id).await.map(|_| ResumableLock::Busy),
        }
    }

    /// Dropping the returned future leaves the lock as it is: the request holding it gives it
    /// up with [`ResumableRepository::unlock`] once its progress is stored, and one that dies
    /// first leaves a lease that lapses.
    fn hold(&self, id: ResumableId, token: ClaimToken, lease: Duration) -> BoxFuture<'static, ()> {
        let renew = self.statement(
            &RENEW.replace("{now}", self.now()),
            vec![
                lease_millis(lease).into(),
                id.to_string().into(),
                token_text(token).into(),
            ],
        );
        renew_while_held(self.db.clone(), renew, lease, "resumable upload lock").boxed()
    }

    async fn advance(
        &self,
        id: ResumableId,
        token: ClaimToken,
        progress: &ResumableProgress,
    ) -> Result<bool, RepoError> {
        let now = self.now();
        let length = progress.length.map(|n| count(n, "length")).transpose()?;
        self.execute(
            &format!(
                "UPDATE resumable_uploads SET length = $1, upload_offset = $2, \
                 store_progress = $3, digest_state = $4, head = $5, stage = $6, expires_at = $7 \
                 WHERE upload_id = $8 AND lock_token = $9 AND locked_until > {now}"
            ),
            vec![
                length.into(),
                count(progress.offset, "offset")?.into(),
                progress.store.0.clone().into(),
                progress.digest.clone().into(),
                progress.head.clone().into(),
                stage_name(progress.stage).into(),
                unix_millis(progress.expires_at).into(),
                id.to_string().into(),
                token_text(token).into(),
            ],
        )
        .await
        .map(|n| n > 0)
    }

    async fn unlock(&self, id: ResumableId, token: ClaimToken) -> Result<(), RepoError> {
        self.execute(
            "UPDATE resumable_uploads SET lock_token = NULL, locked_until = NULL \
             WHERE upload_id = $1 AND lock_token = $2",
            vec![id.to_string().into(), token_text(token).into()],
        )
        .await
        .map(|_| ())
    }

    async fn delete(&self, id: ResumableId) -> Result<(), RepoError> {
        self.execute(
            "DELETE FROM resumable_uploads WHERE upload_id = $1",
            vec![id.to_string().into()],
        )
        .await
        .map(|_| ())
    }

    async fn expired(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ResumableUpload>, RepoError> {
        let db_now = self.now();
        self.query_all(
            &format!(
                "SELECT {COLUMNS} FROM resumable_uploads WHERE expires_at < $1 \
                 AND (locked_until IS NULL OR locked_until < {db_now}) \
                 ORDER BY expires_at LIMIT $2"
            ),
            vec![unix_millis(now).into(), i64::from(limit).into()],
        )
        .await
    }

    async fn live(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ResumableUpload>, RepoError> {
        let db_now = self.now();
        // A locked upload is live whatever its expiry: a request is writing it right now.
        self.query_all(
            &format!(
                "SELECT {COLUMNS} FROM resumable_uploads WHERE expires_at >= $1 \
                 OR locked_until >= {db_now} ORDER BY expires_at LIMIT $2"
            ),
            vec![unix_millis(now).into(), i64::from(limit).into()],
        )
        .await
    }
}
