//! The composition root: configuration, wiring of adapters into use cases, and the server.

pub mod config;
pub mod secret;
pub mod telemetry;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use sea_orm::DatabaseConnection;
use secrecy::{ExposeSecret, SecretString};
use stowage_application::ports::{BlobStore, Clock, FileRepository};
use stowage_application::use_cases::{
    Authenticate, CheckReadiness, DeleteFile, DownloadFile, GetFileInfo, ListFiles, ReadAccess,
    UploadFile, UploadPolicy,
};
use stowage_infrastructure::db::{self, DatabaseSettings};
use stowage_infrastructure::{FsBlobStore, Hs256Jwt, SeaOrmFileRepository, SystemClock};
use stowage_migration::{Migrator, MigratorTrait};
use stowage_presentation::{AppState, HttpSettings, Services};
use tokio::net::TcpListener;

use crate::config::{Config, StorageConfig};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached or migrated.
    #[error("database: {0}")]
    Database(#[source] sea_orm::DbErr),
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
}

/// Opens the database of `config` and applies pending migrations.
///
/// # Errors
/// [`StartupError::Database`].
pub async fn migrate(config: &Config) -> Result<DatabaseConnection, StartupError> {
    prepare_data_dir(config)?;
    let db = db::connect(&database_settings(config))
        .await
        .map_err(StartupError::Database)?;
    Migrator::up(&db, None)
        .await
        .map_err(StartupError::Database)?;
    Ok(db)
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

/// A built, bound service, ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    local_addr: SocketAddr,
    public_url: String,
    shutdown_grace: Duration,
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
        let repo: Arc<dyn FileRepository> = Arc::new(SeaOrmFileRepository::new(db));
        let blobs: Arc<dyn BlobStore> = match &config.storage {
            StorageConfig::Fs { root } => {
                Arc::new(FsBlobStore::new(root).map_err(StartupError::Storage)?)
            }
        };
        let jwt = Hs256Jwt::new(secret.expose_secret().as_bytes(), clock.clone());

        let access = ReadAccess::new(repo.clone(), None, config.limits.access_policy);
        let policies = HashMap::from([("avatar".to_owned(), UploadPolicy::avatar())]);
        let services = Services {
            authenticate: Authenticate::new(Arc::new(jwt.clone()), None),
            upload: UploadFile::new(
                repo.clone(),
                blobs.clone(),
                clock.clone(),
                config.limits.max_upload_bytes,
                policies,
            ),
            download: DownloadFile::new(access.clone(), blobs.clone()),
            info: GetFileInfo::new(access),
            list: ListFiles::new(repo.clone()),
            delete: DeleteFile::new(repo.clone(), blobs.clone()),
            readiness: CheckReadiness::new(repo, blobs, None),
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
            },
        );
        Ok(Application {
            listener,
            router: stowage_presentation::router(state),
            local_addr,
            public_url,
            shutdown_grace: config.http.shutdown_grace,
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
    ///
    /// # Errors
    /// The I/O error that stopped the server.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then drains as [`Application::run_until_stopped`] does.
    ///
    /// # Errors
    /// The I/O error that stopped the server.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = axum::serve(
            listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            stop.await;
            tracing::info!("shutting down: no new connections, letting requests in flight finish");
            let _ = stopped_tx.send(());
        });
        let grace = self.shutdown_grace;
        let deadline = async move {
            if stopped_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            result = server.into_future() => result,
            () = deadline => {
                tracing::warn!(grace_seconds = grace.as_secs(), "grace period over; exiting with requests in flight");
                Ok(())
            }
        }
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
