//! The service's own sections: its credentials and its logging.

use secrecy::SecretString;

use super::ConfigError;
use super::values::{Vars, invalid};

/// Credential settings.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `AUTH_SECRET_KEY`; `None` means generate (or reuse) `{DATA_DIR}/secret.key`.
    pub secret_key: Option<SecretString>,
    /// `SIGNED_URL_SECRET`; `None` means derive the signing key from `AUTH_SECRET_KEY`.
    pub signed_url_secret: Option<SecretString>,
    /// `AUTH_TOKEN_ITERATIONS`: PBKDF2 iterations of opaque user token keys.
    pub token_iterations: u32,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Logging.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// `LOG_FORMAT`; `None` means pretty on a terminal, JSON otherwise.
    pub log_format: Option<LogFormat>,
    /// `LOG_LEVEL` (an `EnvFilter` directive; `RUST_LOG` wins when set).
    pub log_level: String,
}

/// The credentials section (`AUTH_*`, `SIGNED_URL_SECRET`).
pub(super) fn auth(vars: Vars<'_>) -> Result<AuthConfig, ConfigError> {
    let token_iterations: u32 = vars.parse_or("AUTH_TOKEN_ITERATIONS", "1")?;
    if token_iterations == 0 {
        return Err(invalid(
            "AUTH_TOKEN_ITERATIONS",
            "must be at least 1".to_owned(),
        ));
    }
    Ok(AuthConfig {
        secret_key: vars.get("AUTH_SECRET_KEY").map(SecretString::from),
        signed_url_secret: vars.get("SIGNED_URL_SECRET").map(SecretString::from),
        token_iterations,
    })
}

/// The logging section (`LOG_*`).
pub(super) fn telemetry(vars: Vars<'_>) -> Result<TelemetryConfig, ConfigError> {
    let log_format = match vars.choice("LOG_FORMAT").as_deref() {
        None => None,
        Some("json") => Some(LogFormat::Json),
        Some("pretty" | "text") => Some(LogFormat::Pretty),
        Some(other) => {
            return Err(invalid(
                "LOG_FORMAT",
                format!("'{other}' is not json or pretty"),
            ));
        }
    };
    Ok(TelemetryConfig {
        log_format,
        log_level: vars.get("LOG_LEVEL").unwrap_or("info").to_owned(),
    })
}
