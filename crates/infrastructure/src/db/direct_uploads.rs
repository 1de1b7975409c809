//! [`DirectUploadRepository`] in the `direct_uploads` table, on SQLite and Postgres alike.
//!
//! A claim is one conditional `UPDATE` (not completed, no live lease), so of two completions at
//! once only one changes the row; it writes a token that marking and releasing must present, so
//! a holder whose lease lapsed cannot touch a later claim. Times are Unix milliseconds: leases
//! and `completed_at` by the database's clock, `expires_at` by the service's (it is the URLs').

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, QueryResult, Statement};
use stowage_application::ports::{
    Claim, ClaimToken, DirectUpload, DirectUploadId, DirectUploadRepository, RepoError,
};
use stowage_domain::{AccountId, FileId, FileKey, Filename, Sha256Digest, UserId, Visibility};
use time::OffsetDateTime;

use super::sql::{from_unix_millis, kind_name, lease_millis, parse_kind, token_text, unix_millis};
use super::{DatabasePool, db_now};

/// The direct uploads, in the service's database.
#[derive(Clone, Debug)]
pub struct SeaOrmDirectUploadRepository {
    db: DatabaseConnection,
}

impl SeaOrmDirectUploadRepository {
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

    async fn find(&self, id: DirectUploadId) -> Result<Option<(DirectUpload, Row)>, RepoError> {
        let sql = format!("SELECT {COLUMNS} FROM direct_uploads WHERE upload_id = $1");
        let row = self
            .db
            .query_one(self.statement(&sql, vec![id.to_string().into()]))
            .await
            .map_err(unavailable)?;
        row.map(|r| parse(&r)).transpose()
    }
}

const COLUMNS: &str = "upload_id, file_id, account_id, user_id, principal_kind, filename, \
    content_type, size, sha256, policy, file_key, multipart_id, expires_at, claimed_until, \
    completed_at, claim_token, visibility";

/// The state of a row, beside the upload itself.
struct Row {
    completed_at: Option<i64>,
    claim_token: Option<String>,
}

fn unavailable(e: DbErr) -> RepoError {
    RepoError::Unavailable(Box::new(e))
}

fn corrupt(what: &str) -> RepoError {
    RepoError::Unavailable(format!("direct_uploads row with an invalid {what}").into())
}

fn parse(r: &QueryResult) -> Result<(DirectUpload, Row), RepoError> {
    let get_str = |c: &str| r.try_get::<String>("", c).map_err(unavailable);
    let get_opt = |c: &str| r.try_get::<Option<String>>("", c).map_err(unavailable);
    let get_i64 = |c: &str| r.try_get::<i64>("", c).map_err(unavailable);
    let get_opt_i64 = |c: &str| r.try_get::<Option<i64>>("", c).map_err(unavailable);
    let principal_kind =
        parse_kind(&get_str("principal_kind")?).ok_or_else(|| corrupt("principal kind"))?;
    let expires_at = from_unix_millis(get_i64("expires_at")?).ok_or_else(|| corrupt("expiry"))?;
    let upload = DirectUpload {
        id: DirectUploadId::parse(&get_str("upload_id")?).ok_or_else(|| corrupt("id"))?,
        file_id: FileId::parse(&get_str("file_id")?).map_err(|_| corrupt("file id"))?,
        account_id: AccountId::new(get_i64("account_id")?),
        user_id: get_opt_i64("user_id")?.map(UserId::new),
        principal_kind,
        filename: Filename::sanitize(&get_str("filename")?),
        declared_type: get_str("content_type")?,
        size: u64::try_from(get_i64("size")?).map_err(|_| corrupt("size"))?,
        sha256: get_opt("sha256")?
            .map(|h| Sha256Digest::parse_hex(&h))
            .transpose()
            .map_err(|_| corrupt("sha256"))?,
        policy: get_opt("policy")?,
        key: get_opt("file_key")?
            .map(|k| FileKey::parse(&k))
            .transpose()
            .map_err(|_| corrupt("key"))?,
        multipart: get_opt("multipart_id")?,
        visibility: get_opt("visibility")?
            .map(|v| Visibility::parse(&v))
            .map(|v| v.ok_or_else(|| corrupt("visibility")))
            .transpose()?,
        expires_at,
    };
    let row = Row {
        completed_at: get_opt_i64("completed_at")?,
        claim_token: get_opt("claim_token")?,
    };
    Ok((upload, row))
}

#[async_trait]
impl DirectUploadRepository for SeaOrmDirectUploadRepository {
    async fn insert(&self, upload: &DirectUpload) -> Result<(), RepoError> {
        let size = i64::try_from(upload.size).map_err(|_| corrupt("size"))?;
        let values: Vec<sea_orm::Value> = vec![
            upload.id.to_string().into(),
            upload.file_id.to_string().into(),
            upload.account_id.get().into(),
            upload.user_id.map(UserId::get).into(),
            kind_name(upload.principal_kind).into(),
            upload.filename.as_str().to_owned().into(),
            upload.declared_type.clone().into(),
            size.into(),
            upload.sha256.map(|d| d.to_hex()).into(),
            upload.policy.clone().into(),
            upload.key.as_ref().map(|k| k.as_str().to_owned()).into(),
            upload.multipart.clone().into(),
            unix_millis(upload.expires_at).into(),
            upload.visibility.map(Visibility::as_str).into(),
        ];
        self.execute(
            "INSERT INTO direct_uploads (upload_id, file_id, account_id, user_id, principal_kind, \
             filename, content_type, size, sha256, policy, file_key, multipart_id, expires_at, \
             visibility) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            values,
        )
        .await
        .map(|_| ())
    }

    async fn get(&self, id: DirectUploadId) -> Result<DirectUpload, RepoError> {
        self.find(id)
            .await?
            .map(|(upload, _)| upload)
            .ok_or(RepoError::NotFound)
    }

    async fn claim(
        &self,
        id: DirectUploadId,
        token: ClaimToken,
        lease: Duration,
    ) -> Result<Claim, RepoError> {
        let now = self.now();
        let token = token_text(token);
        self.execute(
            &format!(
                "UPDATE direct_uploads SET claimed_until = {now} + $1, claim_token = $2 \
                 WHERE upload_id = $3 AND completed_at IS NULL \
                 AND (claimed_until IS NULL OR claimed_until < {now})"
            ),
            vec![
                lease_millis(lease).into(),
                token.clone().into(),
                id.to_string().into(),
            ],
        )
        .await?;
        let Some((upload, row)) = self.find(id).await? else {
            return Err(RepoError::NotFound);
        };
        Ok(match row {
            Row {
                completed_at: Some(_),
                ..
            } => Claim::Completed(upload),
            Row {
                claim_token: Some(held),
                ..
            } if held == token => Claim::Claimed(upload),
            Row { .. } => Claim::Busy(upload),
        })
    }

    async fn mark_completed(
        &self,
        id: DirectUploadId,
        token: Option<ClaimToken>,
    ) -> Result<(), RepoError> {
        let now = self.now();
        let (held, mut values) = match token {
            Some(token) => (" AND claim_token = $2", vec![token_text(token).into()]),
            None => ("", vec![]),
        };
        values.insert(0, id.to_string().into());
        self.execute(
            &format!(
                "UPDATE direct_uploads SET completed_at = {now}, claimed_until = NULL, \
                 claim_token = NULL WHERE upload_id = $1 AND completed_at IS NULL{held}"
            ),
            values,
        )
        .await
        .map(|_| ())
    }

    async fn release(&self, id: DirectUploadId, token: ClaimToken) -> Result<(), RepoError> {
        self.execute(
            "UPDATE direct_uploads SET claimed_until = NULL, claim_token = NULL \
             WHERE upload_id = $1 AND claim_token = $2 AND completed_at IS NULL",
            vec![id.to_string().into(), token_text(token).into()],
        )
        .await
        .map(|_| ())
    }

    async fn delete(&self, id: DirectUploadId) -> Result<(), RepoError> {
        self.execute(
            "DELETE FROM direct_uploads WHERE upload_id = $1",
            vec![id.to_string().into()],
        )
        .await
        .map(|_| ())
    }

    async fn unfinished(&self, limit: u32) -> Result<Vec<DirectUpload>, RepoError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM direct_uploads WHERE completed_at IS NULL \
             ORDER BY expires_at LIMIT $1"
        );
        let rows = self
            .db
            .query_all(self.statement(&sql, vec![i64::from(limit).into()]))
            .await
            .map_err(unavailable)?;
        rows.iter().map(|r| parse(r).map(|(u, _)| u)).collect()
    }

    async fn delete_abandoned(
        &self,
        id: DirectUploadId,
        now: OffsetDateTime,
    ) -> Result<bool, RepoError> {
        let db_now = self.now();
        self.execute(
            &format!(
                "DELETE FROM direct_uploads WHERE upload_id = $1 AND completed_at IS NULL \
                 AND expires_at < $2 AND (claimed_until IS NULL OR claimed_until < {db_now})"
            ),
            vec![id.to_string().into(), unix_millis(now).into()],
        )
        .await
        .map(|n| n > 0)
    }

    async fn purge_completed(&self, now: OffsetDateTime) -> Result<u64, RepoError> {
        self.execute(
            "DELETE FROM direct_uploads WHERE completed_at IS NOT NULL AND expires_at < $1",
            vec![unix_millis(now).into()],
        )
        .await
    }
}
