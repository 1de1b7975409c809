//! The webhook outbox: events written in the transaction of the change they report, then claimed,
//! delivered and deleted by the webhook workers of every replica.
//!
//! A row is due when it is pending, its next attempt has come, no lease holds it, and no earlier
//! pending row of the same file exists: so each file's events go out in order, and a dead row
//! (out of attempts) stops blocking the ones after it. Times are Unix milliseconds.

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, Statement};
use stowage_application::events::{EventKind, FileEvent};
use time::OffsetDateTime;

use super::DatabasePool;
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

/// Now, in Unix milliseconds.
pub fn now_millis() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
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
    let now = now_millis();
    for event in events.iter().filter(|e| outbox.kinds.contains(&e.kind)) {
        db.execute(Statement::from_sql_and_values(
            db.get_database_backend(),
            "INSERT INTO webhook_outbox \
             (event_id, file_id, event_type, body, state, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)",
            [
                event.id.to_string().into(),
                event.file_id.to_string().into(),
                event.kind.as_str().into(),
                body(event, &outbox.service).into(),
                now.into(),
            ],
        ))
        .await?;
    }
    Ok(())
}

/// An event a worker claimed: its lease is the worker's until `lease_until`.
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
    /// When the lease ends (Unix milliseconds).
    pub lease_until: i64,
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
    /// When to try again (Unix milliseconds).
    pub next_attempt_at: i64,
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

    /// Leases at most `limit` due rows until `now + lease_ms`, oldest first: on Postgres rows
    /// another replica is claiming are skipped, and a row stays leased to one claimer.
    ///
    /// # Errors
    /// [`OutboxError`] when the database fails.
    pub async fn claim(
        &self,
        limit: u32,
        now: i64,
        lease_ms: i64,
    ) -> Result<Vec<ClaimedEvent>, OutboxError> {
        let lock = match self.db.get_database_backend() {
            DbBackend::Postgres => "FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let lease_until = now.saturating_add(lease_ms);
        let sql = format!(
            "UPDATE webhook_outbox SET lease_until = $1 WHERE id IN (\
               SELECT o.id FROM webhook_outbox o \
               WHERE o.state = 'pending' AND o.next_attempt_at <= $2 \
               AND (o.lease_until IS NULL OR o.lease_until <= $2) \
               AND NOT EXISTS (SELECT 1 FROM webhook_outbox e \
                 WHERE e.file_id = o.file_id AND e.state = 'pending' AND e.id < o.id) \
               ORDER BY o.id LIMIT $3 {lock}) \
             RETURNING id, event_id, file_id, event_type, body, attempts"
        );
        let rows = self
            .db
            .query_all(self.statement(
                &sql,
                vec![lease_until.into(), now.into(), i64::from(limit).into()],
            ))
            .await
            .map_err(OutboxError)?;
        let mut claimed = rows
            .iter()
            .map(|row| claimed_of(row, lease_until))
            .collect::<Result<Vec<_>, _>>()
            .map_err(OutboxError)?;
        claimed.sort_by_key(|c| c.id);
        Ok(claimed)
    }

    /// Removes a delivered row.
    ///
    /// # Errors
    /// [`OutboxError`] when the database fails.
    pub async fn delivered(&self, id: i64) -> Result<(), OutboxError> {
        self.db
            .execute(self.statement("DELETE FROM webhook_outbox WHERE id = $1", vec![id.into()]))
            .await
            .map(|_| ())
            .map_err(OutboxError)
    }

    /// Records a failed attempt of `event`, unless its lease passed to another claimer meanwhile.
    ///
    /// # Errors
    /// [`OutboxError`] when the database fails.
    pub async fn failed(&self, event: &ClaimedEvent, failure: &Failure) -> Result<(), OutboxError> {
        let error: String = failure.error.chars().take(MAX_ERROR_CHARS).collect();
        let state = if failure.dead { "dead" } else { "pending" };
        self.db
            .execute(self.statement(
                "UPDATE webhook_outbox SET attempts = $1, state = $2, next_attempt_at = $3, \
                 lease_until = NULL, last_error = $4 WHERE id = $5 AND lease_until = $6",
                vec![
                    i64::from(failure.attempts).into(),
                    state.into(),
                    failure.next_attempt_at.into(),
                    error.into(),
                    event.id.into(),
                    event.lease_until.into(),
                ],
            ))
            .await
            .map(|_| ())
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

    /// Makes every dead row pending again, due at `now` with its attempts reset; how many.
    ///
    /// # Errors
    /// [`OutboxError`] when the database fails.
    pub async fn retry_dead(&self, now: i64) -> Result<u64, OutboxError> {
        self.db
            .execute(self.statement(
                "UPDATE webhook_outbox SET state = 'pending', attempts = 0, \
                 next_attempt_at = $1, lease_until = NULL WHERE state = 'dead'",
                vec![now.into()],
            ))
            .await
            .map(|r| r.rows_affected())
            .map_err(OutboxError)
    }
}

fn attempts_of(row: &QueryResult) -> Result<u32, DbErr> {
    let attempts: i32 = row.try_get("", "attempts")?;
    Ok(u32::try_from(attempts).unwrap_or_default())
}

fn claimed_of(row: &QueryResult, lease_until: i64) -> Result<ClaimedEvent, DbErr> {
    Ok(ClaimedEvent {
        id: row.try_get("", "id")?,
        event_id: row.try_get("", "event_id")?,
        file_id: row.try_get("", "file_id")?,
        event_type: row.try_get("", "event_type")?,
        body: row.try_get("", "body")?,
        attempts: attempts_of(row)?,
        lease_until,
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
