//! The composition root: configuration, wiring of adapters into use cases, and the server.

pub mod config;
pub mod memory;
pub mod secret;
pub mod serve;
pub mod telemetry;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::{ExposeSecret, SecretString};
use stowage_application::ports::{
    BlobStore, Clock, FileRepository, PermissionChecker, RateLimit, RateLimiter, TokenStore,
};
use stowage_application::use_cases::{
    Authenticate, CheckRateLimit, CheckReadiness, CreateSignedUrl, DeleteFile, DownloadFile,
    GetFileInfo, ListFiles, ReadAccess, Reconcile, ReconcileReport, UploadFile, UploadPolicy,
};
use stowage_infrastructure::db::{self, DatabasePool, DatabaseSettings, DbError};
use stowage_infrastructure::{
    BlobCacheSettings, CachedBlobStore, FsBlobStore, HmacUrlSigner, Hs256Jwt,
    HttpPermissionChecker, InMemoryRateLimiter, MeteredBlobStore, MeteredFileRepository,
    MeteredPermissionChecker, MeteredRateLimiter, MeteredTokenStore, MeteredTokenVerifier,
    PermissionClientError, PermissionSettings, RedisConnection, RedisRateLimiter, RedisSettings,
    RedisTokenStore, RedisUrlError, S3BlobStore, S3Layout, S3Settings, SeaOrmFileRepository,
    SystemClock, TokenStoreSettings,
};
use stowage_presentation::{AppState, HttpSettings, Services};
use tokio::net::TcpListener;

use crate::config::{Config, S3LayoutConfig, StorageConfig};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached or migrated.
    #[error("database: {0}")]
    Database(#[source] DbError),
    /// The blob store could not be prepared.
    #[error("blob store: {0}")]
    Storage(#[source] std::io::Error),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The generated secret could not be read or written.
    #[error("secret key file: {0}")]
    Secret(#[source] std::io::Error),
    /// `REDIS_URL` is not usable.
    #[error("REDIS_URL: {0}")]
    Redis(#[source] RedisUrlError),
    /// The permission service client could not be built.
    #[error("PERMISSION_CHECK_URL: {0}")]
    Permission(#[source] PermissionClientError),
}

/// Opens the database of `config` and applies pending migrations.
///
/// # Errors
/// [`StartupError::Database`].
pub async fn migrate(config: &Config) -> Result<DatabasePool, StartupError> {
    prepare_data_dir(config)?;
    let db = db::connect(&database_settings(config))
        .await
        .map_err(StartupError::Database)?;
    db::migrate(&db).await.map_err(StartupError::Database)?;
    Ok(db)
}

/// The blob store `config` selects.
///
/// # Errors
/// [`StartupError::Storage`] when the store cannot be prepared.
pub async fn blob_store(config: &Config) -> Result<Arc<dyn BlobStore>, StartupError> {
    match &config.storage {
        StorageConfig::Fs { root } => Ok(Arc::new(
            FsBlobStore::new(root).map_err(StartupError::Storage)?,
        )),
        StorageConfig::S3(s3) => {
            let store = S3BlobStore::new(&S3Settings {
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone(),
                access_key: s3.access_key.clone(),
                secret_key: s3.secret_key.expose_secret().to_owned(),
                force_path_style: s3.force_path_style,
                layout: match &s3.layout {
                    S3LayoutConfig::Single(bucket) => S3Layout::Single {
                        bucket: bucket.clone(),
                    },
                    S3LayoutConfig::PerAccount(prefix) => S3Layout::PerAccount {
                        prefix: prefix.clone(),
                    },
                },
                part_size: s3.part_size,
                pipelined_uploads: s3.pipelined_uploads,
                connect_timeout: s3.connect_timeout,
                operation_timeout: s3.operation_timeout,
                max_attempts: s3.max_attempts,
                stream_uploads: s3.stream_uploads,
            });
            if let Err(e) = store.prepare().await {
                tracing::warn!(error = %e, "the S3 bucket could not be checked or created; readiness will say so");
            }
            Ok(Arc::new(store))
        }
    }
}

/// Reconciles records and blobs (`stowage-api gc`).
///
/// # Errors
/// [`StartupError`] when a dependency cannot be reached; the reconciliation's own error otherwise.
pub async fn gc(
    config: &Config,
    grace: Duration,
    dry_run: bool,
) -> Result<ReconcileReport, GcError> {
    let db = db::connect(&database_settings(config))
        .await
        .map_err(|e| GcError::Startup(StartupError::Database(e)))?;
    let repo: Arc<dyn FileRepository> = Arc::new(SeaOrmFileRepository::new(db));
    let blobs = blob_store(config).await.map_err(GcError::Startup)?;
    Reconcile::new(repo, blobs, Arc::new(SystemClock))
        .execute(grace, dry_run)
        .await
        .map_err(GcError::Run)
}

/// Why `gc` failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// A dependency could not be reached.
    #[error(transparent)]
    Startup(StartupError),
    /// The reconciliation failed.
    #[error("reconciliation failed")]
    Run(#[source] stowage_application::Error),
}

fn prepare_data_dir(config: &Config) -> Result<(), StartupError> {
    if config.database.url.starts_with("sqlite:")
        || matches!(config.storage, StorageConfig::Fs { .. })
    {
        std::fs::create_dir_all(&config.data_dir).map_err(StartupError::Storage)?;
    }
    Ok(())
}

fn database_settings(config: &Config) -> DatabaseSettings {
    DatabaseSettings {
        url: config.database.url.clone(),
        max_connections: config.database.max_connections,
        connect_timeout: config.database.connect_timeout,
        statement_timeout: config.database.statement_timeout,
    }
}

/// The signing secret: `AUTH_SECRET_KEY`, or the one kept in `{DATA_DIR}/secret.key`.
///
/// # Errors
/// [`StartupError::Secret`] when the generated key cannot be read or written.
pub fn auth_secret(config: &Config) -> Result<(SecretString, bool), StartupError> {
    match &config.auth.secret_key {
        Some(key) => Ok((key.clone(), false)),
        None => {
            std::fs::create_dir_all(&config.data_dir).map_err(StartupError::Secret)?;
            secret::load_or_generate(&config.data_dir.join("secret.key"))
                .map(|key| (key, true))
                .map_err(StartupError::Secret)
        }
    }
}

/// The HS256 signer/verifier over the configured secret.
///
/// # Errors
/// See [`auth_secret`].
pub fn jwt(config: &Config) -> Result<Hs256Jwt, StartupError> {
    let (secret, _) = auth_secret(config)?;
    Ok(Hs256Jwt::new(
        secret.expose_secret().as_bytes(),
        Arc::new(SystemClock),
    ))
}

/// The process-wide Prometheus recorder, installed on first use.
fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            const SECONDS: &[f64] = &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ];
            let built = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".to_owned()), SECONDS)
                .and_then(|b| b.install_recorder());
            match built {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics are off: the recorder could not be installed");
                    None
                }
            }
        })
        .clone()
}

/// A built, bound service, ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    local_addr: SocketAddr,
    public_url: String,
    shutdown_grace: Duration,
    connections: serve::ConnectionLimits,
    generated_secret: bool,
    jwt: Hs256Jwt,
}

impl Application {
    /// Connects every adapter, migrates (unless `AUTO_MIGRATE=false`) and binds the listener.
    ///
    /// # Errors
    /// [`StartupError`] naming what failed.
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        prepare_data_dir(&config)?;
        let (secret, generated_secret) = auth_secret(&config)?;
        let db = if config.database.auto_migrate {
            migrate(&config).await?
        } else {
            db::connect(&database_settings(&config))
                .await
                .map_err(StartupError::Database)?
        };

        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let repo: Arc<dyn FileRepository> = Arc::new(MeteredFileRepository::new(Arc::new(
            SeaOrmFileRepository::new(db),
        )));
        let backend = match config.storage {
            StorageConfig::Fs { .. } => "fs",
            StorageConfig::S3(_) => "s3",
        };
        let mut blobs: Arc<dyn BlobStore> =
            Arc::new(MeteredBlobStore::new(blob_store(&config).await?, backend));
        if config.limits.blob_cache_bytes > 0 {
            blobs = Arc::new(CachedBlobStore::new(
                blobs,
                BlobCacheSettings {
                    capacity_bytes: config.limits.blob_cache_bytes,
                    max_item_bytes: config.limits.blob_cache_max_item_bytes,
                },
            ));
        }
        let secret_bytes: Arc<[u8]> = Arc::from(secret.expose_secret().as_bytes());
        let jwt = Hs256Jwt::new(&secret_bytes, clock.clone());
        let signer = match &config.auth.signed_url_secret {
            Some(own) => HmacUrlSigner::new(own.expose_secret().as_bytes()),
            None => HmacUrlSigner::new(&secret_bytes),
        };

        let redis = match &config.redis {
            None => None,
            Some(r) => Some(
                RedisConnection::new(&RedisSettings {
                    url: r.url.clone(),
                    timeout: r.timeout,
                })
                .map_err(StartupError::Redis)?,
            ),
        };
        let tokens: Option<Arc<dyn TokenStore>> = match (&redis, &config.redis) {
            (Some(connection), Some(r)) => Some(Arc::new(MeteredTokenStore::new(Arc::new(
                RedisTokenStore::new(
                    connection.clone(),
                    TokenStoreSettings {
                        key_prefix: r.key_prefix.clone(),
                        secret: secret_bytes.clone(),
                        iterations: config.auth.token_iterations,
                    },
                ),
            )))),
            _ => None,
        };
        let permissions: Option<Arc<dyn PermissionChecker>> = match &config.permission {
            None => None,
            Some(p) => Some(Arc::new(MeteredPermissionChecker::new(Arc::new(
                HttpPermissionChecker::new(&PermissionSettings {
                    url: p.url.clone(),
                    timeout: p.timeout,
                })
                .map_err(StartupError::Permission)?,
            )))),
        };
        let rate_limit = if config.rate_limit.enabled {
            let limiter: Arc<dyn RateLimiter> = match (&redis, &config.redis) {
                (Some(connection), Some(r)) => Arc::new(RedisRateLimiter::new(
                    connection.clone(),
                    r.key_prefix.clone(),
                )),
                _ => Arc::new(InMemoryRateLimiter::new()),
            };
            let limit = |(requests, window)| RateLimit { requests, window };
            Some(CheckRateLimit::new(
                Arc::new(MeteredRateLimiter::new(limiter)),
                limit(config.rate_limit.upload),
                limit(config.rate_limit.download),
            ))
        } else {
            None
        };

        let access = ReadAccess::new(repo.clone(), permissions, config.limits.access_policy);
        let policies = HashMap::from([("avatar".to_owned(), UploadPolicy::avatar())]);
        let signer = Arc::new(signer);
        let services = Services {
            authenticate: Authenticate::new(
                Arc::new(MeteredTokenVerifier::new(Arc::new(jwt.clone()))),
                tokens.clone(),
            ),
            upload: UploadFile::new(
                repo.clone(),
                blobs.clone(),
                clock.clone(),
                config.limits.max_upload_bytes,
                policies,
            ),
            download: DownloadFile::new(
                access.clone(),
                blobs.clone(),
                signer.clone(),
                clock.clone(),
            ),
            info: GetFileInfo::new(access.clone()),
            list: ListFiles::new(repo.clone()),
            delete: DeleteFile::new(repo.clone(), blobs.clone()),
            readiness: CheckReadiness::new(repo, blobs, tokens),
            signed_url: CreateSignedUrl::new(access, signer, clock.clone()),
            rate_limit,
        };

        let listener = TcpListener::bind(config.http.bind_addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.http.bind_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: config.http.bind_addr,
            source,
        })?;
        let public_url = config
            .http
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local_addr}"));
        let state = AppState::new(
            services,
            HttpSettings {
                public_url: public_url.clone(),
                frontend_url: config.http.frontend_url.clone(),
                debug: config.http.debug,
                hsts: config.http.hsts,
                trust_proxy_headers: config.http.trust_proxy_headers,
                allowed_origins: config.http.allowed_origins.clone(),
                limits: config.http.requests,
            },
        );
        let state = match metrics_handle() {
            Some(handle) => state.with_metrics(Arc::new(move || handle.render())),
            None => state,
        };
        Ok(Application {
            listener,
            router: stowage_presentation::router(state),
            local_addr,
            public_url,
            shutdown_grace: config.http.shutdown_grace,
            connections: serve::fit_to_descriptor_limit(config.http.connections),
            generated_secret,
            jwt,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The origin clients see.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// True when the signing secret was generated into `DATA_DIR` (no `AUTH_SECRET_KEY`).
    pub fn uses_generated_secret(&self) -> bool {
        self.generated_secret
    }

    /// Signs a token with the service's secret.
    pub fn issue_token(&self, user_id: Option<i64>, account_id: i64, ttl: Duration) -> String {
        self.jwt.issue(user_id, account_id, ttl)
    }

    /// Serves until SIGTERM or SIGINT, then lets requests in flight finish for up to the grace period.
    pub async fn run_until_stopped(self) {
        self.run_until(shutdown_signal()).await;
    }

    /// Serves until `stop` completes, then drains as [`Application::run_until_stopped`] does.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) {
        let _trimmer = memory::spawn_trimmer(memory::TRIM_INTERVAL);
        serve::serve(
            self.listener,
            self.router,
            stop,
            self.shutdown_grace,
            self.connections,
        )
        .await;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
