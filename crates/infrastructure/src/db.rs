//! The SQL repository: one SeaORM adapter for SQLite and Postgres.

pub mod entity;
mod repository;

use std::time::Duration;

use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

pub use repository::SeaOrmFileRepository;

/// How to reach the database.
#[derive(Clone)]
pub struct DatabaseSettings {
    /// `postgres://…` or `sqlite://…`.
    pub url: String,
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// How long to wait for a connection (to open, or from the pool).
    pub connect_timeout: Duration,
    /// Longest a single statement may run (Postgres `statement_timeout`).
    pub statement_timeout: Duration,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

/// `url` with any password replaced, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:[REDACTED]@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Opens a pool to the database of `settings`.
///
/// # Errors
/// The driver's error when the database cannot be reached or the URL is not understood.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, DbErr> {
    let statement_timeout = format!("{}", settings.statement_timeout.as_millis());
    let mut options = ConnectOptions::new(settings.url.clone());
    options
        .max_connections(settings.max_connections)
        .min_connections(0)
        .connect_timeout(settings.connect_timeout)
        .acquire_timeout(settings.connect_timeout)
        .sqlx_logging(false)
        .map_sqlx_postgres_opts(move |o| {
            o.options([("statement_timeout", statement_timeout.as_str())])
        })
        .map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5))
        });
    Database::connect(options).await
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redact_url_hides_passwords_only() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/stowage"),
            "postgres://app:[REDACTED]@db:5432/stowage"
        );
        assert_eq!(
            redact_url("sqlite://./data/stowage.db"),
            "sqlite://./data/stowage.db"
        );
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
    }
}
