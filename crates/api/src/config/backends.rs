//! The sections of the services Stowage talks to: the database, Redis and the permission service.
//! Each is the adapter's own settings type.

use std::path::Path;

use stowage_infrastructure::{DatabaseSettings, PermissionSettings, RedisSettings, SecretUrl};

use super::ConfigError;
use super::values::{Vars, invalid, url_without_slash};

/// The database section (`DATABASE_*`); SQLite in `data_dir` when `DATABASE_URL` is unset.
pub(super) fn database(vars: Vars<'_>, data_dir: &Path) -> Result<DatabaseSettings, ConfigError> {
    let url = match vars.get("DATABASE_URL") {
        Some(url) => {
            if !(url.starts_with("postgres://")
                || url.starts_with("postgresql://")
                || url.starts_with("sqlite:"))
            {
                return Err(invalid(
                    "DATABASE_URL",
                    "must start with postgres:// or sqlite://".to_owned(),
                ));
            }
            url.to_owned()
        }
        None => format!("sqlite://{}", data_dir.join("stowage.db").display()),
    };
    let max_connections: u32 = vars.parse_or("DATABASE_MAX_CONNECTIONS", "10")?;
    if max_connections == 0 {
        return Err(invalid(
            "DATABASE_MAX_CONNECTIONS",
            "must be greater than 0".to_owned(),
        ));
    }
    Ok(DatabaseSettings {
        url: SecretUrl::new(url),
        max_connections,
        connect_timeout: vars.millis("DATABASE_CONNECT_TIMEOUT_MS", "5000")?,
        statement_timeout: vars.millis("DATABASE_STATEMENT_TIMEOUT_MS", "30000")?,
    })
}

/// The Redis section (`REDIS_*`), when `REDIS_URL` is set.
pub(super) fn redis(vars: Vars<'_>) -> Result<Option<RedisSettings>, ConfigError> {
    let Some(url) = vars.get("REDIS_URL") else {
        return Ok(None);
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://"))
    {
        return Err(invalid(
            "REDIS_URL",
            "must start with redis://, rediss:// or unix://".to_owned(),
        ));
    }
    Ok(Some(RedisSettings {
        url: SecretUrl::new(url),
        key_prefix: vars.raw("REDIS_KEY_PREFIX").unwrap_or(":1:").to_owned(),
        timeout: vars.millis("REDIS_TIMEOUT_MS", "1000")?,
    }))
}

/// The permission service section (`PERMISSION_CHECK_*`), when `PERMISSION_CHECK_URL` is set.
pub(super) fn permission(vars: Vars<'_>) -> Result<Option<PermissionSettings>, ConfigError> {
    let Some(url) = vars.get("PERMISSION_CHECK_URL") else {
        return Ok(None);
    };
    // Checked as an http(s) URL, but kept as given (a trailing slash may matter to the service).
    url_without_slash(url, "PERMISSION_CHECK_URL")?;
    Ok(Some(PermissionSettings {
        url: url.to_owned(),
        timeout: vars.millis("PERMISSION_CHECK_TIMEOUT_MS", "5000")?,
    }))
}
