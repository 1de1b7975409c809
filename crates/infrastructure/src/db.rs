//! The SQL repository: one SeaORM adapter for SQLite and Postgres.

mod direct_uploads;
mod entity;
mod outbox;
mod repository;
mod resumable_uploads;
mod sql;
mod upload_grants;

use std::time::Duration;

use sea_orm::sqlx;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::sqlx::{ConnectOptions as _, Connection as _};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr, SqlxPostgresConnector};
use secrecy::ExposeSecret;
use stowage_application::BoxError;

use crate::secret_url::{SecretUrl, redact_url};

pub use direct_uploads::SeaOrmDirectUploadRepository;
pub use outbox::{
    ClaimedEvent, Failure, OutboxEntry, OutboxError, OutboxStore, WebhookOutbox, now_millis,
};
pub use repository::SeaOrmFileRepository;
pub use resumable_uploads::SeaOrmResumableRepository;
pub use upload_grants::SeaOrmUploadGrantStore;

/// The database's current time in Unix milliseconds, as an SQL expression: leases and claims go
/// by it, never by one replica's clock.
pub(crate) fn db_now(backend: sea_orm::DbBackend) -> &'static str {
    match backend {
        sea_orm::DbBackend::Postgres => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint",
        _ => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
    }
}

/// Why the database could not be opened, migrated or closed; passwords are never part of it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be reached, or its URL is not understood.
    #[error("cannot connect: {0}")]
    Connect(#[source] BoxError),
    /// Applying the migrations failed.
    #[error("migrations failed: {0}")]
    Migrate(#[source] BoxError),
    /// Closing the pool failed.
    #[error("cannot close the pool: {0}")]
    Close(#[source] BoxError),
}

/// An open pool of connections to the database, shared by everything that reads or writes it.
#[derive(Clone, Debug)]
pub struct DatabasePool {
    connection: DatabaseConnection,
}

impl DatabasePool {
    /// The SeaORM connection under the pool, for the adapters of this crate.
    fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// Closes every connection of the pool (clones of it then fail their queries).
    ///
    /// # Errors
    /// [`DbError::Close`].
    pub async fn close(self) -> Result<(), DbError> {
        self.connection
            .close()
            .await
            .map_err(|e| DbError::Close(Box::new(e)))
    }
}

/// How to reach the database.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…` (may hold a password; redacted in `Debug`).
    pub url: SecretUrl,
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// How long to wait for a connection (to open, or from the pool).
    pub connect_timeout: Duration,
    /// Longest a single statement may run (Postgres `statement_timeout`).
    pub statement_timeout: Duration,
}

/// How long a pooled Postgres connection may sit idle before it is checked (a round trip) on
/// its way out of the pool.
///
/// The driver checks every connection both when it is handed out and when it comes back, which
/// made three round trips of every one-query request: the two checks took a sixth of Stowage's
/// CPU on a 4 KiB GET. The check on return stays (it also clears what a cancelled query left).
/// A connection in steady use has just passed it; one that sat idle through a database restart
/// or a firewall's idle cut is checked, and replaced, before a request gets it.
pub const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// Opens a pool to the database of `settings`.
///
/// # Errors
/// [`DbError::Connect`] when the database cannot be reached or the URL is not understood.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabasePool, DbError> {
    let url = settings.url.expose_secret();
    let connection = if SqlxPostgresConnector::accepts(url) {
        connect_postgres(settings, url)
            .await
            .map_err(|e| without_url(e, url))
    } else {
        connect_sqlite(settings, url)
            .await
            .map_err(|e| without_url(e, url))
    };
    connection
        .map(|connection| DatabasePool { connection })
        .map_err(DbError::Connect)
}

/// Postgres, through a pool built here: SeaORM's options cannot say when to check a connection.
async fn connect_postgres(
    settings: &DatabaseSettings,
    url: &str,
) -> Result<DatabaseConnection, sqlx::Error> {
    let statement_timeout = settings.statement_timeout.as_millis().to_string();
    let options = url
        .parse::<PgConnectOptions>()?
        .disable_statement_logging()
        .options([("statement_timeout", statement_timeout.as_str())]);
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        // Bounds opening a connection too, so an unreachable server fails `connect` in time.
        .acquire_timeout(settings.connect_timeout)
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await?;
    Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
}

/// SQLite (in-process: checking a connection costs no round trip), through SeaORM's own pool.
async fn connect_sqlite(
    settings: &DatabaseSettings,
    url: &str,
) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(settings.max_connections)
        .min_connections(0)
        .connect_timeout(settings.connect_timeout)
        .acquire_timeout(settings.connect_timeout)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5))
        });
    Database::connect(options).await
}

/// Applies pending migrations, one replica at a time on Postgres.
///
/// # Errors
/// [`DbError::Migrate`].
pub async fn migrate(pool: &DatabasePool) -> Result<(), DbError> {
    stowage_migration::migrate_locked(pool.connection())
        .await
        .map_err(|e| DbError::Migrate(Box::new(e)))
}

/// The driver repeats a URL it cannot parse, password and all: that copy is redacted.
fn without_url<E>(e: E, url: &str) -> BoxError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let text = e.to_string();
    if url.is_empty() || !text.contains(url) {
        return Box::new(e);
    }
    Box::new(Redacted(text.replace(url, &redact_url(url))))
}

/// A driver message with the URL's password taken out.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Redacted(String);

#[cfg(test)]
mod tests {
    use super::{DatabaseSettings, DbError, connect};
    use std::time::Duration;

    #[test]
    fn settings_debug_never_shows_the_password() {
        let settings = DatabaseSettings {
            url: "postgres://app:hunter2@db:5432/stowage".into(),
            max_connections: 1,
            connect_timeout: Duration::from_millis(200),
            statement_timeout: Duration::from_secs(1),
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("postgres://app:[REDACTED]@db:5432/stowage"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn connect_errors_never_repeat_the_password() {
        let settings = DatabaseSettings {
            url: "postgres://app:hunter2@db:notaport/stowage".into(),
            max_connections: 1,
            connect_timeout: Duration::from_millis(200),
            statement_timeout: Duration::from_secs(1),
        };

        let error = connect(&settings).await.err();

        let Some(error @ DbError::Connect(_)) = error else {
            panic!("connected to an unparseable URL: {error:?}");
        };
        let mut messages = vec![error.to_string(), format!("{error:?}")];
        let mut source = std::error::Error::source(&error);
        while let Some(e) = source {
            messages.push(e.to_string());
            source = e.source();
        }
        for message in messages {
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}
