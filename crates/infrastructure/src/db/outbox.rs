//! The webhook outbox: events written in the transaction of the change they report, then claimed,
//! delivered and deleted by the webhook workers of every replica.
//!
//! A row is due when it is pending, its next attempt has come, no lease holds it, and no earlier
//! row of the same file is left, pending or dead: so each file's events go out in order, and a
//! dead row (out of attempts) holds the later ones of its file back until an operator revives it.
//!
//! Times are Unix milliseconds read from the database's clock, never a replica's, so that leases
//! and backoff mean the same to every replica. Each claim leases its rows under a fresh token, and
//! only the holder of the current token may record an outcome.

use std::collections::HashSet;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, Statement};
use stowage_application::events::{EventKind, FileEvent};
use time::OffsetDateTime;

use super::{DatabasePool, db_now};
use crate::events::envelope::{envelope, timestamp};

/// Which events the repository keeps for webhooks, and how their envelope names the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookOutbox {
    /// The kinds delivered (`WEBHOOK_EVENTS`); events of other kinds are not kept.
    pub kinds: HashSet<EventKind>,
    /// The envelope's service name (`EVENTS_SERVICE_NAME`).
    pub service: String,
}

impl WebhookOutbox {
    /// Whether any of `events` is kept.
    pub(super) fn keeps_any(&self, events: &[FileEvent]) -> bool {
        events.iter().any(|e| self.kinds.contains(&e.kind))
    }
}

/// The outbox failed: the database did.
#[derive(Debug, thiserror::Error)]
#[error("webhook outbox: {0}")]
pub struct OutboxError(#[source] DbErr);

/// Now on this host, in Unix milliseconds (the outbox itself goes by the database's clock).
pub fn now_millis() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Milliseconds of `d`, capped far below the point where adding them to now would overflow.
fn millis(d: Duration) -> i64 {
    const MAX: i64 = i64::MAX / 4;
    i64::try_from(d.as_millis()).map_or(MAX, |ms| ms.min(MAX))
}

/// The JSON a receiver gets for `event`, built when the event is written so that a later change
/// of configuration does not alter it.
fn body(event: &FileEvent, service: &str) -> String {
    serde_json::json!({
        "id": event.id.to_string(),
        "type": event.kind.as_str(),
        "created_at": timestamp(event.at),
        "data": envelope(event, service),
    })
    .to_string()
}

/// Inserts the rows of the `events` that `outbox` keeps, through `db` (a transaction).
pub(super) async fn write<C: ConnectionTrait>(
    db: &C,
    outbox: &WebhookOutbox,
    events: &[FileEvent],
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let now = db_now(backend);
    let sql = format!(
        "INSERT INTO webhook_outbox \
         (event_id, file_id, event_type, body, state, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, 'pending', 0, {now}, {now})"
    );
    for event in events.iter().filter(|e| outbox.kinds.contains(&e.kind)) {
        db.execute(Statement::from_sql_and_values(
            backend,
            &sql,
            [
                event.id.to_string().into(),
                event.file_id.to_string().into(),
                event.kind.as_str().into(),
                body(event, &outbox.service).into(),
            ],
        ))
        .await?;
    }
    Ok(())
}

/// An event a worker claimed: its lease is the worker's until `lease_until`, unless another claim
/// took the row over after that (then `lease_token` no longer matches).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedEvent {
    /// The row (its order).
    pub id: i64,
    /// The event's id (the webhook's `id`).
    pub event_id: String,
    /// The file it is about.
    pub file_id: String,
    /// `file.upload`, …
    pub event_type: String,
    /// The JSON to `POST`.
    pub body: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the lease ends (Unix milliseconds, the database's clock).
    pub lease_until: i64,
    /// The claim's token: an outcome is recorded only while the row still carries it.
    pub lease_token: String,
}

/// A row as `stowage-api events list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The row (its order).
    pub id: i64,
    /// The event's id.
    pub event_id: String,
    /// `file.upload`, …
    pub event_type: String,
    /// The file it is about.
    pub file_id: String,
    /// `pending` or `dead`.
    pub state: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When it is next tried (Unix milliseconds).
    pub next_attempt_at: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// How an attempt ended, for [`OutboxStore::failed`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Attempts made, this one included.
    pub attempts: u32,
    /// True when no attempt is left: the row becomes dead.
    pub dead: bool,
    /// How long after now (the database's) to try again.
    pub retry_in: Duration,
    /// Why, short (never a secret or the URL).
    pub error: String,
}

/// Longest `last_error` kept.
const MAX_ERROR_CHARS: usize = 300;

/// The outbox's rows, for the webhook workers and `stowage-api events`.
#[derive(Clone, Debug)]
pub struct OutboxStore {
    db: DatabaseConnection,
}

impl OutboxStore {
    /// The outbox of the database behind `pool`.
    pub fn new(pool: &DatabasePool) -> Self {
        Self {
            db: pool.connection().clone(),
        }
    }

    fn statement(&self, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
        Statement::from_sql_and_values(self.db.get_database_backend(), sql, values)
    }

    /// Leases at most `limit` due rows for `lease` under a fresh token, oldest first: on
    /// Postgres rows another replica is claiming are skipped, and a row stays leased to one
    /// claimer.
    ///
    /// # Errors
    /// [`OutboxError`] when the database fails.
    pub async fn claim(
        &self,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedEvent>, OutboxError> {
        let backend = self.db.get_database_backend();
        let lock = match backend {
            DbBackend::Postgres => "FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let now = db_now(backend);
        let sql = format!(
            "UPDATE webhook_outbox SET lease_until = {now} + $1, lease_token = $2 WHERE id IN (\
               SELECT o.id FROM webhook_outbox o \
               WHERE o.state = 'pending' AND o.next_attempt_at <= {now} \
               AND (o.lease_until IS NULL OR o.lease_until <= {now}) \
               AND NOT EXISTS (SELECT 1 FROM webhook_outbox e \
                 WHERE e.file_id = o.file_id AND e.state IN ('pending', 'dead') AND e.id < o.id) \
               ORDER BY o.id LIMIT $3 {lock}) \
             RETURNING id, event_id, file_id, event_type, body, attempts, lease_until, lease_token"
        );
        let token = uuid::Uuid::new_v4().to_string();
        let rows = self
            .db
            .query_all(self.statement(
                &sql,
                vec![millis(lease).into(), token.into(), i64::from(limit).into()],
            ))
            .await
            .map_err(OutboxError)?;
        let mut claimed = rows
            .iter()
            .map(claimed_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(OutboxError)?;
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    /// Removes a delivered row, unless its lease passed to another claimer meanwhile (then
    /// that claimer's outcome counts); whether it was removed.
    ///
    /// # Errors
    /// [`OutboxError`] when the database fails.
    pub async fn delivered(&self, event: &ClaimedEvent) -> Result<bool, OutboxError> {
        self.db
            .execute(self.statement(
                "DELETE FROM webhook_outbox WHERE id = $1 AND lease_token = $2",
                vec![event.id.into(), event.lease_token.clone().into()],
            ))
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(OutboxError)
    }

    /// Records a failed attempt of `event`, unless its lease passed to another claimer meanwhile;
    /// whether it was recorded.
    ///
    /// # Errors
    /// [`OutboxError`] when the database fails.
    pub async fn failed(
        &self,
        event: &ClaimedEvent,
        failure: &Failure,
    ) -> Result<bool, OutboxError> {
        let error: String = failure.error.chars().take(MAX_ERROR_CHARS).collect();
        let state = if failure.dead { "dead" } else { "pending" };
        let now = db_now(self.db.get_database_backend());
        let sql = format!(
            "UPDATE webhook_outbox SET attempts = $1, state = $2, next_attempt_at = {now} + $3, \
             lease_until = NULL, lease_token = NULL, last_error = $4 \
             WHERE id = $5 AND lease_token = $6"
        );
        self.db
            .execute(self.statement(
                &sql,
                vec![
                    i64::from(failure.attempts).into(),
                    state.into(),
                    millis(failure.retry_in).into(),
                    error.into(),
                    event.id.into(),
                    event.lease_token.clone().into(),
                ],
            ))
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(OutboxError)
    }

    /// How many rows are dead.
    ///
    /// # Errors
    /// [`OutboxError`] when the database fails.
    pub async fn dead_count(&self) -> Result<u64, OutboxError> {
        let row = self
            .db
            .query_one(self.statement(
                "SELECT COUNT(*) AS n FROM webhook_outbox WHERE state = 'dead'",
                vec![],
            ))
            .await
            .map_err(OutboxError)?;
        let n: i64 = match row {
            Some(row) => row.try_get("", "n").map_err(OutboxError)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// The rows in order (only the dead ones with `dead_only`), at most `limit`.
    ///
    /// # Errors
    /// [`OutboxError`] when the database fails.
    pub async fn list(&self, dead_only: bool, limit: u32) -> Result<Vec<OutboxEntry>, OutboxError> {
        let filter = if dead_only {
            "WHERE state = 'dead' "
        } else {
            ""
        };
        let sql = format!(
            "SELECT id, event_id, event_type, file_id, state, attempts, next_attempt_at, \
             last_error FROM webhook_outbox {filter}ORDER BY id LIMIT $1"
        );
        let rows = self
            .db
            .query_all(self.statement(&sql, vec![i64::from(limit).into()]))
            .await
            .map_err(OutboxError)?;
        rows.iter()
            .map(entry_of)
            .collect::<Result<_, _>>()
            .map_err(OutboxError)
    }

    /// Makes every dead row pending again, due now with its attempts reset, so that it goes out
    /// before the later rows of its file it held back; how many.
    ///
    /// # Errors
    /// [`OutboxError`] when the database fails.
    pub async fn retry_dead(&self) -> Result<u64, OutboxError> {
        let now = db_now(self.db.get_database_backend());
        let sql = format!(
            "UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_attempt_at = {now}, \
             lease_until = NULL, lease_token = NULL WHERE state = 'dead'"
        );
        self.db
            .execute(self.statement(&sql, vec![]))
            .await
            .map(|r| r.rows_affected())
            .map_err(OutboxError)
    }
}

fn attempts_of(row: &QueryResult) -> Result<u32, DbErr> {
    let attempts: i32 = row.try_get("", "attempts")?;
    Ok(u32::try_from(attempts).unwrap_or_default())
}

fn claimed_of(row: &QueryResult) -> Result<ClaimedEvent, DbErr> {
    Ok(ClaimedEvent {
        id: row.try_get("", "id")?,
        event_id: row.try_get("", "event_id")?,
        file_id: row.try_get("", "file_id")?,
        event_type: row.try_get("", "event_type")?,
        body: row.try_get("", "body")?,
        attempts: attempts_of(row)?,
        lease_until: row.try_get("", "lease_until")?,
        lease_token: row.try_get("", "lease_token")?,
    })
}

fn entry_of(row: &QueryResult) -> Result<OutboxEntry, DbErr> {
    Ok(OutboxEntry {
        id: row.try_get("", "id")?,
        event_id: row.try_get("", "event_id")?,
        event_type: row.try_get("", "event_type")?,
        file_id: row.try_get("", "file_id")?,
        state: row.try_get("", "state")?,
        attempts: attempts_of(row)?,
        next_attempt_at: row.try_get("", "next_attempt_at")?,
        last_error: row.try_get("", "last_error")?,
    })
}
