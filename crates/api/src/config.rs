//! Configuration: read once from the environment (and `.env`), typed and validated.
//!
//! This is the only module that reads environment variables. Each section parses itself (one
//! function per section, in the files under `config/`) into the settings type of what it
//! configures: the adapters' own settings for the database, the blob store, Redis and the
//! permission service, the HTTP layer's for HTTP. Secrets stay `SecretString` or `SecretUrl`
//! all the way, so every `Debug` is derived and shows none of them.

use std::collections::HashMap;
use std::path::PathBuf;

use stowage_application::use_cases::UploadPolicy;
use stowage_infrastructure::{DatabaseSettings, PermissionSettings, RedisSettings};

mod backends;
mod events;
mod http;
mod images;
mod limits;
mod pneumatic;
mod policies;
mod sentry;
mod service;
mod storage;
mod values;
mod webhooks;

pub use self::sentry::SentryConfig;
pub use events::EventsConfig;
pub use http::HttpConfig;
pub use images::ImagesConfig;
pub use limits::{LimitsConfig, RateLimitConfig};
pub use service::{AuthConfig, LogFormat, TelemetryConfig};
pub use storage::StorageConfig;
pub use values::parse_duration;
pub use webhooks::WebhookConfig;

use values::{Vars, invalid};

/// Why the configuration cannot be used; every message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable has a value that does not parse.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it (never the value of a secret).
        reason: String,
    },
    /// A variable that production requires is unset.
    #[error("{name} must be set when APP_ENV=production")]
    MissingInProduction {
        /// The variable.
        name: &'static str,
    },
}

/// Where the service runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppEnv {
    /// Local use: generated secrets and embedded defaults are fine.
    Development,
    /// Production: secrets and URLs must be given.
    Production,
}

/// The whole configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `APP_ENV`.
    pub app_env: AppEnv,
    /// `DATA_DIR`: home of the embedded database, blobs and the generated secret.
    pub data_dir: PathBuf,
    /// HTTP settings.
    pub http: HttpConfig,
    /// The database (`DATABASE_*`).
    pub database: DatabaseSettings,
    /// `AUTO_MIGRATE`: apply pending migrations when `serve` starts.
    pub auto_migrate: bool,
    /// Blob store settings.
    pub storage: StorageConfig,
    /// Credential settings.
    pub auth: AuthConfig,
    /// Upload and access limits.
    pub limits: LimitsConfig,
    /// `UPLOAD_POLICIES`, with the built-in `avatar`.
    pub policies: HashMap<String, UploadPolicy>,
    /// Image variants (`IMAGE_*`).
    pub images: ImagesConfig,
    /// Redis (Django tokens and shared rate limits), when `REDIS_URL` is set.
    pub redis: Option<RedisSettings>,
    /// The permission service, when `PERMISSION_CHECK_URL` is set.
    pub permission: Option<PermissionSettings>,
    /// Rate limits.
    pub rate_limit: RateLimitConfig,
    /// Audit events (`EVENTS_*`).
    pub events: EventsConfig,
    /// Logging.
    pub telemetry: TelemetryConfig,
    /// Error tracking, when `SENTRY_DSN` is set.
    pub sentry: Option<SentryConfig>,
    /// Webhooks, when `WEBHOOK_URL` is set.
    pub webhooks: Option<WebhookConfig>,
    /// The Pneumatic variables read as fallbacks of unset Stowage ones (names only).
    pub pneumatic_names: Vec<&'static str>,
}

impl Config {
    /// Reads `.env` (if present) and the environment.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is invalid or missing.
    pub fn from_env() -> Result<Config, ConfigError> {
        let _ = dotenvy::dotenv();
        let vars: HashMap<String, String> = std::env::vars().collect();
        Config::from_map(&vars)
    }

    /// Builds the configuration from `vars` (the environment, or a test's map).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is invalid or missing.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let filled = pneumatic::with_fallbacks(vars);
        let mut config = Config::from_filled(&filled.vars).map_err(|e| match e {
            // A value that came from a Pneumatic name is reported under that name.
            ConfigError::Invalid { name, reason } => ConfigError::Invalid {
                name: filled.sources.get(name).copied().unwrap_or(name),
                reason,
            },
            other => other,
        })?;
        config.pneumatic_names = filled.read;
        Ok(config)
    }

    fn from_filled(map: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let app_env = app_env(Vars::new(map, false))?;
        let vars = Vars::new(map, app_env == AppEnv::Production);
        for name in ["AUTH_SECRET_KEY", "DATABASE_URL", "PUBLIC_URL"] {
            vars.require_in_production(name)?;
        }
        let data_dir = PathBuf::from(vars.get("DATA_DIR").unwrap_or("./data"));
        let limits = limits::limits(vars)?;
        let policies = policies::policies(vars, limits.max_upload_bytes)?;
        let images = images::images(vars)?;
        images::check_policies(&policies, &images)?;
        Ok(Config {
            app_env,
            http: http::http(vars)?,
            database: backends::database(vars, &data_dir)?,
            auto_migrate: vars.flag("AUTO_MIGRATE", true)?,
            storage: storage::storage(vars, &data_dir)?,
            auth: service::auth(vars)?,
            limits,
            policies,
            images,
            redis: backends::redis(vars)?,
            permission: backends::permission(vars)?,
            rate_limit: limits::rate_limits(vars)?,
            events: events::events(vars)?,
            telemetry: service::telemetry(vars)?,
            sentry: sentry::sentry(vars)?,
            webhooks: webhooks::webhooks(vars)?,
            data_dir,
            pneumatic_names: Vec::new(),
        })
    }
}

/// `APP_ENV`.
fn app_env(vars: Vars<'_>) -> Result<AppEnv, ConfigError> {
    match vars.choice("APP_ENV").as_deref() {
        None | Some("development" | "dev" | "local" | "test") => Ok(AppEnv::Development),
        Some("production" | "prod") => Ok(AppEnv::Production),
        Some(other) => Err(invalid(
            "APP_ENV",
            format!("'{other}' is not development or production"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::time::Duration;
    use stowage_application::ports::RateLimit;
    use stowage_infrastructure::S3Layout;

    /// An environment of `pairs`, for `from_map`.
    pub(super) fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_pneumatic_environment_configures_the_service() {
        let config = Config::from_map(&map(&[
            ("DJANGO_SECRET_KEY", "django-secret"),
            ("POSTGRES_HOST", "db"),
            ("POSTGRES_PASSWORD", "pw"),
            ("BUCKET_PREFIX", "pneumatic"),
            ("SEAWEEDFS_S3_ENDPOINT", "http://seaweedfs:8333"),
            ("FASTAPI_BASE_URL", "https://example.com/files"),
            ("CONFIG", "Production"),
        ]))
        .unwrap();

        assert_eq!(config.app_env, AppEnv::Production);
        assert!(config.http.settings.hsts);
        assert_eq!(config.http.public_url(), Some("https://example.com"));
        assert!(matches!(config.storage, StorageConfig::S3(_)));
        assert!(config.auth.secret_key.is_some());
        assert!(config.pneumatic_names.contains(&"DJANGO_SECRET_KEY"));
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("django-secret") && !shown.contains(":pw@"),
            "{shown}"
        );
    }

    #[test]
    fn an_invalid_pneumatic_value_is_reported_under_its_own_name() {
        let err = Config::from_map(&map(&[("MAX_FILE_SIZE", "lots")])).unwrap_err();
        assert!(
            err.to_string().starts_with("MAX_FILE_SIZE is invalid"),
            "{err}"
        );
    }

    #[test]
    fn empty_environment_gives_the_embedded_defaults() {
        let c = Config::from_map(&map(&[])).unwrap();
        assert_eq!(c.http.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database.url.expose_secret(), "sqlite://./data/stowage.db");
        assert_eq!(c.limits.max_upload_bytes, 104_857_600);
        assert!(c.auto_migrate);
        assert!(c.auth.secret_key.is_none());
        assert!(matches!(c.storage, StorageConfig::Fs { .. }));
    }

    #[test]
    fn production_requires_secret_database_and_public_url() {
        let err = Config::from_map(&map(&[("APP_ENV", "production")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "AUTH_SECRET_KEY must be set when APP_ENV=production"
        );
        let err = Config::from_map(&map(&[("APP_ENV", "production"), ("AUTH_SECRET_KEY", "k")]))
            .unwrap_err();
        assert!(err.to_string().starts_with("DATABASE_URL"));
        let err = Config::from_map(&map(&[
            ("APP_ENV", "production"),
            ("AUTH_SECRET_KEY", "k"),
            ("DATABASE_URL", "postgres://u:p@h/d"),
        ]))
        .unwrap_err();
        assert!(err.to_string().starts_with("PUBLIC_URL"));
    }

    #[test]
    fn invalid_values_name_their_variable() {
        for (name, value) in [
            ("BIND_ADDR", "nope"),
            ("MAX_UPLOAD_BYTES", "-1"),
            ("ACCESS_POLICY", "everyone"),
            ("PUBLIC_URL", "ftp://x"),
            ("AUTO_MIGRATE", "maybe"),
            ("STORAGE_BACKEND", "tape"),
            ("DATABASE_URL", "mysql://x"),
        ] {
            let err = Config::from_map(&map(&[(name, value)])).unwrap_err();
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let c = Config::from_map(&map(&[
            ("AUTH_SECRET_KEY", "topsecretvalue"),
            ("SIGNED_URL_SECRET", "signingsecretvalue"),
            ("DATABASE_URL", "postgres://app:dbpassword@db/stowage"),
            ("REDIS_URL", "redis://:redispassword@cache:6379/2"),
            ("STORAGE_BACKEND", "s3"),
            ("S3_BUCKET", "stowage-files"),
            ("S3_ACCESS_KEY", "ak"),
            ("S3_SECRET_KEY", "s3secretvalue"),
        ]))
        .unwrap();
        for text in [format!("{c:?}"), format!("{c:#?}")] {
            for secret in [
                "topsecretvalue",
                "signingsecretvalue",
                "dbpassword",
                "redispassword",
                "s3secretvalue",
            ] {
                assert!(!text.contains(secret), "{secret} shown in {text}");
            }
            assert!(
                text.contains("postgres://app:[REDACTED]@db/stowage"),
                "{text}"
            );
        }
        assert_eq!(c.auth.secret_key.unwrap().expose_secret(), "topsecretvalue");
        assert_eq!(
            c.database.url.expose_secret(),
            "postgres://app:dbpassword@db/stowage"
        );
        let StorageConfig::S3(s3) = &c.storage else {
            panic!("s3 expected")
        };
        assert_eq!(s3.secret_key.expose_secret(), "s3secretvalue");
    }

    #[test]
    fn public_url_loses_its_trailing_slash() {
        let c = Config::from_map(&map(&[("PUBLIC_URL", "https://files.example.com/")])).unwrap();
        assert_eq!(c.http.public_url(), Some("https://files.example.com"));
    }

    #[test]
    fn rate_limits_parse_requests_per_window() {
        let c = Config::from_map(&map(&[("RATE_LIMIT_UPLOAD", "5/2m")])).unwrap();
        let limit = |requests, secs| RateLimit {
            requests,
            window: Duration::from_secs(secs),
        };
        assert_eq!(c.rate_limit.upload, limit(5, 120));
        assert_eq!(c.rate_limit.download, limit(100, 60));
        for bad in ["5", "0/60s", "5/0s", "x/60s", "5/60y"] {
            let err = Config::from_map(&map(&[("RATE_LIMIT_DOWNLOAD", bad)])).unwrap_err();
            assert!(
                err.to_string().starts_with("RATE_LIMIT_DOWNLOAD"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn redis_and_origins_are_validated() {
        let c = Config::from_map(&map(&[
            ("REDIS_URL", "redis://:pw@127.0.0.1:6379/2"),
            ("ALLOWED_ORIGINS", "https://a.example, https://b.example/"),
        ]))
        .unwrap();
        assert_eq!(c.redis.as_ref().unwrap().key_prefix, ":1:");
        assert!(!format!("{c:?}").contains(":pw@"));
        assert_eq!(
            c.http.settings.allowed_origins,
            vec!["https://a.example", "https://b.example"]
        );
        assert!(Config::from_map(&map(&[("ALLOWED_ORIGINS", "*")])).is_err());
        assert!(Config::from_map(&map(&[("REDIS_URL", "http://x")])).is_err());
    }

    #[test]
    fn s3_backend_needs_a_bucket_and_keys() {
        let base = [
            ("STORAGE_BACKEND", "s3"),
            ("S3_ACCESS_KEY", "ak"),
            ("S3_SECRET_KEY", "s3secretvalue"),
        ];
        let err = Config::from_map(&map(&base)).unwrap_err();
        assert!(err.to_string().starts_with("S3_BUCKET"), "{err}");
        let mut with_bucket = base.to_vec();
        with_bucket.push(("S3_BUCKET", "stowage-files"));
        with_bucket.push(("S3_ENDPOINT", "http://127.0.0.1:9000"));
        let c = Config::from_map(&map(&with_bucket)).unwrap();
        let StorageConfig::S3(s3) = &c.storage else {
            panic!("s3 expected")
        };
        assert!(
            s3.force_path_style,
            "path style is the default with an endpoint"
        );
        assert_eq!(
            s3.layout,
            S3Layout::Single {
                bucket: "stowage-files".into()
            }
        );
        assert!(
            s3.stream_uploads,
            "uploads of announced length stream by default"
        );
        assert!(!format!("{c:?}").contains("s3secretvalue"));
        let mut buffered = with_bucket.clone();
        buffered.push(("S3_STREAM_UPLOADS", "false"));
        let c = Config::from_map(&map(&buffered)).unwrap();
        assert!(matches!(&c.storage, StorageConfig::S3(s3) if !s3.stream_uploads));
        let mut unclear = with_bucket.clone();
        unclear.push(("S3_STREAM_UPLOADS", "sometimes"));
        assert!(
            Config::from_map(&map(&unclear))
                .unwrap_err()
                .to_string()
                .starts_with("S3_STREAM_UPLOADS")
        );
        let mut bad = with_bucket.clone();
        bad.push(("S3_PART_SIZE", "1024"));
        assert!(
            Config::from_map(&map(&bad))
                .unwrap_err()
                .to_string()
                .starts_with("S3_PART_SIZE")
        );
        assert!(matches!(&c.storage, StorageConfig::S3(s3) if s3.buffer_bytes == 64 << 20));
        let mut small_budget = with_bucket.clone();
        small_budget.extend([
            ("S3_PART_SIZE", "8388608"),
            ("UPLOAD_BUFFER_BYTES", "5242880"),
        ]);
        assert!(
            Config::from_map(&map(&small_budget))
                .unwrap_err()
                .to_string()
                .starts_with("UPLOAD_BUFFER_BYTES")
        );
        let err = Config::from_map(&map(&[
            ("APP_ENV", "production"),
            ("AUTH_SECRET_KEY", "k"),
            ("DATABASE_URL", "postgres://db/x"),
            ("PUBLIC_URL", "https://files.example.com"),
            ("STORAGE_BACKEND", "s3"),
            ("S3_BUCKET_LAYOUT", "per-account"),
            ("S3_ACCESS_KEY", "ak"),
            ("S3_SECRET_KEY", "sk"),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "S3_BUCKET_PREFIX must be set when APP_ENV=production"
        );
        let err = Config::from_map(&map(&[
            ("STORAGE_BACKEND", "s3"),
            ("S3_BUCKET", "Bad_Bucket"),
            ("S3_ACCESS_KEY", "ak"),
            ("S3_SECRET_KEY", "sk"),
        ]))
        .unwrap_err();
        assert!(err.to_string().starts_with("S3_BUCKET"));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("h").is_err());
    }
}
