//! [`UploadGrantStore`] in the `upload_grants` table, on SQLite and Postgres alike.
//!
//! A claim is one statement: an insert, or on conflict an update that only takes a claim whose
//! lease has lapsed, so two replicas claiming one grant at once cannot both win (Postgres makes
//! the second insert wait for the first's commit, then re-checks the condition; SQLite has one
//! writer). Leases go by the database's clock, never a replica's, and so does a claim's check
//! of the grant's expiry: a replica whose clock lags cannot claim an expired grant whose row
//! `gc` has removed.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use stowage_application::ports::{ClaimToken, GrantStoreError, UploadGrantId, UploadGrantStore};
use stowage_domain::FileId;
use time::OffsetDateTime;

use super::sql::{lease_millis, renew_while_held, unix_millis};
use super::{DatabasePool, db_now};

/// The upload URLs taken, in the service's database.
#[derive(Clone, Debug)]
pub struct SeaOrmUploadGrantStore {
    db: DatabaseConnection,
}

impl SeaOrmUploadGrantStore {
    /// The store of the database behind `pool`.
    pub fn new(pool: &DatabasePool) -> Self {
        Self {
            db: pool.connection().clone(),
        }
    }

    fn statement(&self, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
        Statement::from_sql_and_values(self.db.get_database_backend(), sql, values)
    }

    async fn execute(&self, sql: &str, values: Vec<sea_orm::Value>) -> Result<u64, DbErr> {
        self.db
            .execute(self.statement(sql, values))
            .await
            .map(|r| r.rows_affected())
    }
}

fn unavailable(e: DbErr) -> GrantStoreError {
    GrantStoreError::Unavailable(Box::new(e))
}

const RENEW: &str = "UPDATE upload_grants SET claimed_until = {now} + $1 \
                     WHERE grant_id = $2 AND claim_token = $3 AND state = 'claimed'";
const RELEASE: &str =
    "DELETE FROM upload_grants WHERE grant_id = $1 AND claim_token = $2 AND state = 'claimed'";

#[async_trait]
impl UploadGrantStore for SeaOrmUploadGrantStore {
    async fn claim(
        &self,
        grant: UploadGrantId,
        token: ClaimToken,
        expires_at: OffsetDateTime,
        lease: Duration,
    ) -> Result<bool, GrantStoreError> {
        let now = db_now(self.db.get_database_backend());
        let sql = format!(
            "INSERT INTO upload_grants (grant_id, state, claim_token, claimed_until, expires_at) \
             SELECT $1, 'claimed', $2, {now} + $3, $4 WHERE $4 > {now} \
             ON CONFLICT (grant_id) DO UPDATE SET claim_token = excluded.claim_token, \
             claimed_until = excluded.claimed_until \
             WHERE upload_grants.state = 'claimed' AND upload_grants.claimed_until < {now}"
        );
        let values = vec![
            grant.to_string().into(),
            token.as_uuid().to_string().into(),
            lease_millis(lease).into(),
            unix_millis(expires_at).into(),
        ];
        self.execute(&sql, values)
            .await
            .map(|n| n > 0)
            .map_err(unavailable)
    }

    fn hold(
        &self,
        grant: UploadGrantId,
        token: ClaimToken,
        lease: Duration,
    ) -> BoxFuture<'static, ()> {
        let release = ReleaseOnDrop {
            store: Some(self.clone()),
            grant,
            token,
        };
        let renew = self.statement(
            &RENEW.replace("{now}", db_now(self.db.get_database_backend())),
            vec![
                lease_millis(lease).into(),
                grant.to_string().into(),
                token.as_uuid().to_string().into(),
            ],
        );
        let db = self.db.clone();
        async move {
            let _release = release;
            renew_while_held(db, renew, lease, "upload URL claim").await;
        }
        .boxed()
    }

    async fn complete(
        &self,
        grant: UploadGrantId,
        token: ClaimToken,
        file_id: FileId,
    ) -> Result<bool, GrantStoreError> {
        self.execute(
            "UPDATE upload_grants SET state = 'used', file_id = $1, claim_token = NULL, \
             claimed_until = NULL WHERE grant_id = $2 AND claim_token = $3 AND state = 'claimed'",
            vec![
                file_id.to_string().into(),
                grant.to_string().into(),
                token.as_uuid().to_string().into(),
            ],
        )
        .await
        .map(|n| n > 0)
        .map_err(unavailable)
    }

    async fn release(
        &self,
        grant: UploadGrantId,
        token: ClaimToken,
    ) -> Result<(), GrantStoreError> {
        self.execute(
            RELEASE,
            vec![grant.to_string().into(), token.as_uuid().to_string().into()],
        )
        .await
        .map(|_| ())
        .map_err(unavailable)
    }

    async fn remove_expired(
        &self,
        before: OffsetDateTime,
        dry_run: bool,
    ) -> Result<u64, GrantStoreError> {
        let now = db_now(self.db.get_database_backend());
        let filter = format!(
            "WHERE expires_at < $1 AND (state = 'used' OR claimed_until IS NULL \
             OR claimed_until < {now})"
        );
        let values = vec![unix_millis(before).into()];
        if !dry_run {
            let sql = format!("DELETE FROM upload_grants {filter}");
            return self.execute(&sql, values).await.map_err(unavailable);
        }
        let sql = format!("SELECT COUNT(*) AS n FROM upload_grants {filter}");
        let row = self
            .db
            .query_one(self.statement(&sql, values))
            .await
            .map_err(unavailable)?;
        let n: i64 = match row {
            Some(row) => row.try_get("", "n").map_err(unavailable)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or_default())
    }
}

/// Releases a claim still held when the upload holding it is dropped (its client went away),
/// in the background, so that its URL is free again at once rather than when the lease lapses.
struct ReleaseOnDrop {
    store: Option<SeaOrmUploadGrantStore>,
    grant: UploadGrantId,
    token: ClaimToken,
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let (Some(store), Ok(runtime)) = (self.store.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let values = vec![
            self.grant.to_string().into(),
            self.token.as_uuid().to_string().into(),
        ];
        runtime.spawn(async move {
            if let Err(e) = store.execute(RELEASE, values).await {
                tracing::warn!(error = %e, "an abandoned upload URL's claim could not be released; it lapses");
            }
        });
    }
}
