//! Configuration: read once from the environment (and `.env`), typed and validated.
//!
//! This is the only module that reads environment variables.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use stowage_domain::AccessPolicy;
use stowage_presentation::RequestLimits;

use crate::serve::ConnectionLimits;

mod pneumatic;

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

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
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
    /// Database settings.
    pub database: DatabaseConfig,
    /// Blob store settings.
    pub storage: StorageConfig,
    /// Credential settings.
    pub auth: AuthConfig,
    /// Upload and access limits.
    pub limits: LimitsConfig,
    /// Redis (Django tokens and shared rate limits), when configured.
    pub redis: Option<RedisConfig>,
    /// The permission service, when configured.
    pub permission: Option<PermissionConfig>,
    /// Rate limits.
    pub rate_limit: RateLimitConfig,
    /// Logging.
    pub telemetry: TelemetryConfig,
    /// The Pneumatic variables read as fallbacks of unset Stowage ones (names only).
    pub pneumatic_names: Vec<&'static str>,
}

/// HTTP settings.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// `BIND_ADDR`.
    pub bind_addr: SocketAddr,
    /// `PUBLIC_URL`, no trailing slash; `None` means `http://{bound address}`.
    pub public_url: Option<String>,
    /// `FRONTEND_URL`, no trailing slash.
    pub frontend_url: Option<String>,
    /// `DEBUG`.
    pub debug: bool,
    /// `HSTS_ENABLED`.
    pub hsts: bool,
    /// `SHUTDOWN_GRACE_SECONDS`.
    pub shutdown_grace: Duration,
    /// `TRUST_PROXY_HEADERS`: take the client address from `X-Real-IP`.
    pub trust_proxy_headers: bool,
    /// `ALLOWED_ORIGINS`, comma-separated.
    pub allowed_origins: Vec<String>,
    /// `MAX_CONNECTIONS` and `MAX_CONNECTIONS_PER_CLIENT`.
    pub connections: ConnectionLimits,
    /// What one client may hold at once, and the transfer timeouts.
    pub requests: RequestLimits,
}

/// Redis settings.
#[derive(Clone)]
pub struct RedisConfig {
    /// `REDIS_URL` (may hold a password; redacted in `Debug`).
    pub url: String,
    /// `REDIS_KEY_PREFIX` (Django's cache prefix, default `:1:`).
    pub key_prefix: String,
    /// `REDIS_TIMEOUT_MS`.
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &stowage_infrastructure::db::redact_url(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Permission service settings.
#[derive(Clone, Debug)]
pub struct PermissionConfig {
    /// `PERMISSION_CHECK_URL`.
    pub url: String,
    /// `PERMISSION_CHECK_TIMEOUT_MS`.
    pub timeout: Duration,
}

/// Rate limit settings.
#[derive(Clone, Copy, Debug)]
pub struct RateLimitConfig {
    /// `RATE_LIMIT_ENABLED`.
    pub enabled: bool,
    /// `RATE_LIMIT_UPLOAD`: requests and window.
    pub upload: (u32, Duration),
    /// `RATE_LIMIT_DOWNLOAD`: requests and window.
    pub download: (u32, Duration),
}

/// Database settings.
#[derive(Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL` (may hold a password; redacted in `Debug`).
    pub url: String,
    /// `DATABASE_MAX_CONNECTIONS`.
    pub max_connections: u32,
    /// `DATABASE_CONNECT_TIMEOUT_MS`.
    pub connect_timeout: Duration,
    /// `DATABASE_STATEMENT_TIMEOUT_MS`.
    pub statement_timeout: Duration,
    /// `AUTO_MIGRATE`.
    pub auto_migrate: bool,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &stowage_infrastructure::db::redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("auto_migrate", &self.auto_migrate)
            .finish()
    }
}

/// Which blob store holds the bytes.
#[derive(Clone, Debug)]
pub enum StorageConfig {
    /// `STORAGE_BACKEND=fs`: `{DATA_DIR}/blobs`.
    Fs {
        /// Root directory of the blobs.
        root: PathBuf,
    },
    /// `STORAGE_BACKEND=s3`.
    S3(S3Config),
}

/// S3 settings (`S3_*`).
#[derive(Clone)]
pub struct S3Config {
    /// `S3_ENDPOINT`; unset for AWS.
    pub endpoint: Option<String>,
    /// `S3_REGION`.
    pub region: String,
    /// `S3_ACCESS_KEY`.
    pub access_key: String,
    /// `S3_SECRET_KEY` (redacted in `Debug`).
    pub secret_key: SecretString,
    /// `S3_FORCE_PATH_STYLE` (default: on when `S3_ENDPOINT` is set).
    pub force_path_style: bool,
    /// `S3_BUCKET_LAYOUT` with `S3_BUCKET` or `S3_BUCKET_PREFIX`.
    pub layout: S3LayoutConfig,
    /// `S3_PART_SIZE` in bytes.
    pub part_size: usize,
    /// `S3_PIPELINED_UPLOADS`.
    pub pipelined_uploads: usize,
    /// `S3_CONNECT_TIMEOUT_MS`.
    pub connect_timeout: Duration,
    /// `S3_TIMEOUT_MS`: one attempt of one operation.
    pub operation_timeout: Duration,
    /// `S3_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `S3_STREAM_UPLOADS`: uploads of announced length stream into one `PutObject`.
    pub stream_uploads: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"[REDACTED]")
            .field("force_path_style", &self.force_path_style)
            .field("layout", &self.layout)
            .field("part_size", &self.part_size)
            .field("stream_uploads", &self.stream_uploads)
            .finish_non_exhaustive()
    }
}

/// Bucket layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum S3LayoutConfig {
    /// `single`: bucket `S3_BUCKET`, keys `{account_id}/{file_id}`.
    Single(String),
    /// `per-account`: buckets `{S3_BUCKET_PREFIX}-{account_id}`, keys `{file_id}`.
    PerAccount(String),
}

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

/// Upload and access limits.
#[derive(Clone, Debug)]
pub struct LimitsConfig {
    /// `MAX_UPLOAD_BYTES`.
    pub max_upload_bytes: u64,
    /// `ACCESS_POLICY`.
    pub access_policy: AccessPolicy,
    /// `BLOB_CACHE_BYTES`: memory for small hot blobs (0 turns the cache off).
    pub blob_cache_bytes: u64,
    /// `BLOB_CACHE_MAX_ITEM_BYTES`: largest blob cached.
    pub blob_cache_max_item_bytes: u64,
}

/// Logging.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// `LOG_FORMAT`; `None` means pretty on a terminal, JSON otherwise.
    pub log_format: Option<LogFormat>,
    /// `LOG_LEVEL` (an `EnvFilter` directive; `RUST_LOG` wins when set).
    pub log_level: String,
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

    fn from_filled(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let app_env = match get("APP_ENV").map(str::to_ascii_lowercase).as_deref() {
            None | Some("development" | "dev" | "local" | "test") => AppEnv::Development,
            Some("production" | "prod") => AppEnv::Production,
            Some(other) => {
                return Err(invalid(
                    "APP_ENV",
                    format!("'{other}' is not development or production"),
                ));
            }
        };
        let production = app_env == AppEnv::Production;
        let require = |name: &'static str| -> Result<(), ConfigError> {
            if production && get(name).is_none() {
                return Err(ConfigError::MissingInProduction { name });
            }
            Ok(())
        };
        require("AUTH_SECRET_KEY")?;
        require("DATABASE_URL")?;
        require("PUBLIC_URL")?;

        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or("./data"));
        let bind_addr: SocketAddr =
            parse(get("BIND_ADDR").unwrap_or("127.0.0.1:8080"), "BIND_ADDR")?;
        let public_url = get("PUBLIC_URL")
            .map(|u| url_without_slash(u, "PUBLIC_URL"))
            .transpose()?;
        let frontend_url = get("FRONTEND_URL")
            .map(|u| url_without_slash(u, "FRONTEND_URL"))
            .transpose()?;

        let database_url = match get("DATABASE_URL") {
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

        let storage = match get("STORAGE_BACKEND")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("fs") => StorageConfig::Fs {
                root: data_dir.join("blobs"),
            },
            Some("s3") => StorageConfig::S3(s3_config(&get, production)?),
            Some(other) => {
                return Err(invalid(
                    "STORAGE_BACKEND",
                    format!("'{other}' is not a supported backend (fs or s3)"),
                ));
            }
        };

        let access_policy = match get("ACCESS_POLICY").map(str::to_ascii_lowercase).as_deref() {
            None | Some("owner") => AccessPolicy::Owner,
            Some("account") => AccessPolicy::Account,
            Some(other) => {
                return Err(invalid(
                    "ACCESS_POLICY",
                    format!("'{other}' is not owner or account"),
                ));
            }
        };

        let log_format = match get("LOG_FORMAT").map(str::to_ascii_lowercase).as_deref() {
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

        let max_upload_bytes: u64 = parse(
            get("MAX_UPLOAD_BYTES").unwrap_or("104857600"),
            "MAX_UPLOAD_BYTES",
        )?;
        if max_upload_bytes == 0 {
            return Err(invalid(
                "MAX_UPLOAD_BYTES",
                "must be greater than 0".to_owned(),
            ));
        }
        let max_connections: u32 = parse(
            get("DATABASE_MAX_CONNECTIONS").unwrap_or("10"),
            "DATABASE_MAX_CONNECTIONS",
        )?;
        if max_connections == 0 {
            return Err(invalid(
                "DATABASE_MAX_CONNECTIONS",
                "must be greater than 0".to_owned(),
            ));
        }

        let redis = match get("REDIS_URL") {
            None => None,
            Some(url) => {
                if !(url.starts_with("redis://")
                    || url.starts_with("rediss://")
                    || url.starts_with("unix://"))
                {
                    return Err(invalid(
                        "REDIS_URL",
                        "must start with redis://, rediss:// or unix://".to_owned(),
                    ));
                }
                Some(RedisConfig {
                    url: url.to_owned(),
                    key_prefix: vars
                        .get("REDIS_KEY_PREFIX")
                        .cloned()
                        .unwrap_or_else(|| ":1:".to_owned()),
                    timeout: Duration::from_millis(parse(
                        get("REDIS_TIMEOUT_MS").unwrap_or("1000"),
                        "REDIS_TIMEOUT_MS",
                    )?),
                })
            }
        };
        let permission = match get("PERMISSION_CHECK_URL") {
            None => None,
            Some(url) => Some(PermissionConfig {
                url: url_without_slash(url, "PERMISSION_CHECK_URL").map(|_| url.to_owned())?,
                timeout: Duration::from_millis(parse(
                    get("PERMISSION_CHECK_TIMEOUT_MS").unwrap_or("5000"),
                    "PERMISSION_CHECK_TIMEOUT_MS",
                )?),
            }),
        };
        let rate_limit = RateLimitConfig {
            enabled: flag(get("RATE_LIMIT_ENABLED"), "RATE_LIMIT_ENABLED", true)?,
            upload: rate(
                get("RATE_LIMIT_UPLOAD").unwrap_or("10/60s"),
                "RATE_LIMIT_UPLOAD",
            )?,
            download: rate(
                get("RATE_LIMIT_DOWNLOAD").unwrap_or("100/60s"),
                "RATE_LIMIT_DOWNLOAD",
            )?,
        };
        let allowed_origins = get("ALLOWED_ORIGINS")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(|o| {
                        if o == "*" {
                            return Err(invalid(
                                "ALLOWED_ORIGINS",
                                "'*' cannot be combined with credentials; list the origins"
                                    .to_owned(),
                            ));
                        }
                        url_without_slash(o, "ALLOWED_ORIGINS")
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();
        let token_iterations: u32 = parse(
            get("AUTH_TOKEN_ITERATIONS").unwrap_or("1"),
            "AUTH_TOKEN_ITERATIONS",
        )?;
        if token_iterations == 0 {
            return Err(invalid(
                "AUTH_TOKEN_ITERATIONS",
                "must be at least 1".to_owned(),
            ));
        }

        let trust_proxy_headers = flag(get("TRUST_PROXY_HEADERS"), "TRUST_PROXY_HEADERS", false)?;
        let connections = ConnectionLimits {
            total: parse(get("MAX_CONNECTIONS").unwrap_or("4096"), "MAX_CONNECTIONS")?,
            // Behind a proxy every connection comes from the proxy's address.
            per_client: parse(
                get("MAX_CONNECTIONS_PER_CLIENT").unwrap_or(if trust_proxy_headers {
                    "0"
                } else {
                    "256"
                }),
                "MAX_CONNECTIONS_PER_CLIENT",
            )?,
        };
        if connections.total == 0 {
            return Err(invalid("MAX_CONNECTIONS", "must be at least 1".to_owned()));
        }
        let seconds = |name: &'static str, default: &str| -> Result<Duration, ConfigError> {
            let secs: u64 = parse(get(name).unwrap_or(default), name)?;
            if secs == 0 {
                return Err(invalid(name, "must be at least 1".to_owned()));
            }
            Ok(Duration::from_secs(secs))
        };
        let requests = RequestLimits {
            uploads_per_client: parse(
                get("MAX_UPLOADS_PER_CLIENT").unwrap_or("16"),
                "MAX_UPLOADS_PER_CLIENT",
            )?,
            downloads_per_client: parse(
                get("MAX_DOWNLOADS_PER_CLIENT").unwrap_or("64"),
                "MAX_DOWNLOADS_PER_CLIENT",
            )?,
            body_idle_timeout: seconds("BODY_IDLE_TIMEOUT_SECONDS", "30")?,
            response_stall_timeout: seconds("RESPONSE_STALL_TIMEOUT_SECONDS", "60")?,
            part_header_max: parse(
                get("MULTIPART_HEADER_MAX_BYTES").unwrap_or("16384"),
                "MULTIPART_HEADER_MAX_BYTES",
            )?,
        };
        if requests.part_header_max < 1024 {
            return Err(invalid(
                "MULTIPART_HEADER_MAX_BYTES",
                "must be at least 1024".to_owned(),
            ));
        }

        Ok(Config {
            redis,
            permission,
            rate_limit,
            app_env,
            http: HttpConfig {
                bind_addr,
                public_url,
                frontend_url,
                debug: flag(get("DEBUG"), "DEBUG", false)?,
                hsts: flag(get("HSTS_ENABLED"), "HSTS_ENABLED", false)?,
                shutdown_grace: Duration::from_secs(parse(
                    get("SHUTDOWN_GRACE_SECONDS").unwrap_or("30"),
                    "SHUTDOWN_GRACE_SECONDS",
                )?),
                trust_proxy_headers,
                allowed_origins,
                connections,
                requests,
            },
            database: DatabaseConfig {
                url: database_url,
                max_connections,
                connect_timeout: Duration::from_millis(parse(
                    get("DATABASE_CONNECT_TIMEOUT_MS").unwrap_or("5000"),
                    "DATABASE_CONNECT_TIMEOUT_MS",
                )?),
                statement_timeout: Duration::from_millis(parse(
                    get("DATABASE_STATEMENT_TIMEOUT_MS").unwrap_or("30000"),
                    "DATABASE_STATEMENT_TIMEOUT_MS",
                )?),
                auto_migrate: flag(get("AUTO_MIGRATE"), "AUTO_MIGRATE", true)?,
            },
            storage,
            auth: AuthConfig {
                secret_key: get("AUTH_SECRET_KEY").map(|s| SecretString::from(s.to_owned())),
                signed_url_secret: get("SIGNED_URL_SECRET")
                    .map(|s| SecretString::from(s.to_owned())),
                token_iterations,
            },
            limits: LimitsConfig {
                max_upload_bytes,
                access_policy,
                blob_cache_bytes: parse(
                    get("BLOB_CACHE_BYTES").unwrap_or("33554432"),
                    "BLOB_CACHE_BYTES",
                )?,
                blob_cache_max_item_bytes: parse(
                    get("BLOB_CACHE_MAX_ITEM_BYTES").unwrap_or("262144"),
                    "BLOB_CACHE_MAX_ITEM_BYTES",
                )?,
            },
            telemetry: TelemetryConfig {
                log_format,
                log_level: get("LOG_LEVEL").unwrap_or("info").to_owned(),
            },
            data_dir,
            pneumatic_names: Vec::new(),
        })
    }
}

fn invalid(name: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { name, reason }
}

fn parse<T: std::str::FromStr>(value: &str, name: &'static str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| invalid(name, e.to_string()))
}

fn flag(value: Option<&str>, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(invalid(name, format!("'{other}' is not true or false"))),
    }
}

fn url_without_slash(value: &str, name: &'static str) -> Result<String, ConfigError> {
    let parsed = url::Url::parse(value).map_err(|e| invalid(name, e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(name, "must be an http or https URL".to_owned()));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn s3_config<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    production: bool,
) -> Result<S3Config, ConfigError> {
    let required = |name: &'static str| -> Result<&'a str, ConfigError> {
        get(name).ok_or(if production {
            ConfigError::MissingInProduction { name }
        } else {
            invalid(name, "must be set when STORAGE_BACKEND=s3".to_owned())
        })
    };
    let layout = match get("S3_BUCKET_LAYOUT")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("single") => {
            S3LayoutConfig::Single(bucket_name(required("S3_BUCKET")?, "S3_BUCKET")?)
        }
        Some("per-account") => {
            let prefix = required("S3_BUCKET_PREFIX")?;
            bucket_name(&format!("{prefix}-1"), "S3_BUCKET_PREFIX")?;
            S3LayoutConfig::PerAccount(prefix.to_owned())
        }
        Some(other) => {
            return Err(invalid(
                "S3_BUCKET_LAYOUT",
                format!("'{other}' is not single or per-account"),
            ));
        }
    };
    let endpoint = get("S3_ENDPOINT")
        .map(|u| url_without_slash(u, "S3_ENDPOINT"))
        .transpose()?;
    let part_size: usize = parse(get("S3_PART_SIZE").unwrap_or("5242880"), "S3_PART_SIZE")?;
    if part_size < 5 * 1024 * 1024 {
        return Err(invalid(
            "S3_PART_SIZE",
            "must be at least 5242880 (5 MiB), S3's smallest part".to_owned(),
        ));
    }
    Ok(S3Config {
        force_path_style: flag(
            get("S3_FORCE_PATH_STYLE"),
            "S3_FORCE_PATH_STYLE",
            endpoint.is_some(),
        )?,
        endpoint,
        region: get("S3_REGION").unwrap_or("us-east-1").to_owned(),
        access_key: required("S3_ACCESS_KEY")?.to_owned(),
        secret_key: SecretString::from(required("S3_SECRET_KEY")?.to_owned()),
        layout,
        part_size,
        pipelined_uploads: parse(
            get("S3_PIPELINED_UPLOADS").unwrap_or("1"),
            "S3_PIPELINED_UPLOADS",
        )?,
        connect_timeout: Duration::from_millis(parse(
            get("S3_CONNECT_TIMEOUT_MS").unwrap_or("5000"),
            "S3_CONNECT_TIMEOUT_MS",
        )?),
        operation_timeout: Duration::from_millis(parse(
            get("S3_TIMEOUT_MS").unwrap_or("60000"),
            "S3_TIMEOUT_MS",
        )?),
        max_attempts: parse(get("S3_MAX_ATTEMPTS").unwrap_or("3"), "S3_MAX_ATTEMPTS")?,
        stream_uploads: flag(get("S3_STREAM_UPLOADS"), "S3_STREAM_UPLOADS", true)?,
    })
}

/// S3's DNS-style bucket name rule: 3 to 63 of `a-z 0-9 . -`, starting and ending alphanumeric.
fn bucket_name(name: &str, variable: &'static str) -> Result<String, ConfigError> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if !ok {
        return Err(invalid(
            variable,
            "bucket names are 3 to 63 lower-case letters, digits, dots or hyphens".to_owned(),
        ));
    }
    Ok(name.to_owned())
}

fn rate(value: &str, name: &'static str) -> Result<(u32, Duration), ConfigError> {
    let (requests, window) = value.split_once('/').ok_or_else(|| {
        invalid(
            name,
            format!("'{value}' is not <requests>/<window>, e.g. 10/60s"),
        )
    })?;
    let requests: u32 = parse(requests.trim(), name)?;
    let window = parse_duration(window).map_err(|reason| invalid(name, reason))?;
    if requests == 0 || window.is_zero() {
        return Err(invalid(
            name,
            "requests and window must be greater than 0".to_owned(),
        ));
    }
    Ok((requests, window))
}

/// Parses `30s`, `15m`, `1h`, `7d` or a bare number of seconds.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let (digits, unit) = value.split_at(
        value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{value}' is not a duration like 30s, 15m, 1h or 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(format!("'{value}' has an unknown unit (use s, m, h or d)")),
    };
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
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
        assert!(config.http.hsts);
        assert_eq!(
            config.http.public_url.as_deref(),
            Some("https://example.com")
        );
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
        assert_eq!(c.database.url, "sqlite://./data/stowage.db");
        assert_eq!(c.limits.max_upload_bytes, 104_857_600);
        assert!(c.database.auto_migrate);
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
            ("DATABASE_URL", "postgres://app:dbpassword@db/stowage"),
        ]))
        .unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("topsecretvalue"), "{text}");
        assert!(!text.contains("dbpassword"), "{text}");
        assert_eq!(c.auth.secret_key.unwrap().expose_secret(), "topsecretvalue");
    }

    #[test]
    fn public_url_loses_its_trailing_slash() {
        let c = Config::from_map(&map(&[("PUBLIC_URL", "https://files.example.com/")])).unwrap();
        assert_eq!(
            c.http.public_url.as_deref(),
            Some("https://files.example.com")
        );
    }

    #[test]
    fn rate_limits_parse_requests_per_window() {
        let c = Config::from_map(&map(&[("RATE_LIMIT_UPLOAD", "5/2m")])).unwrap();
        assert_eq!(c.rate_limit.upload, (5, Duration::from_secs(120)));
        assert_eq!(c.rate_limit.download, (100, Duration::from_secs(60)));
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
            c.http.allowed_origins,
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
        assert_eq!(s3.layout, S3LayoutConfig::Single("stowage-files".into()));
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
