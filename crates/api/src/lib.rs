//! The composition root: configuration, wiring of adapters into use cases, and the server.

pub mod config;
pub mod memory;
mod metrics;
pub mod secret;
pub mod serve;
pub mod telemetry;
mod wiring;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use stowage_application::use_cases::ReconcileReport;
use stowage_infrastructure::db::{self, DatabasePool, DbError};
use stowage_infrastructure::{Hs256Jwt, PermissionClientError, RedisUrlError, SystemClock};
use stowage_presentation::AppState;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::config::Config;
pub use crate::wiring::{blob_store, webhook_outbox};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be reached or migrated.
    #[error("database")]
    Database(#[source] DbError),
    /// The blob store could not be prepared.
    #[error("blob store")]
    Storage(#[source] std::io::Error),
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The generated secret could not be read or written.
    #[error("secret key file")]
    Secret(#[source] std::io::Error),
    /// `REDIS_URL` is not usable.
    #[error("REDIS_URL")]
    Redis(#[source] RedisUrlError),
    /// `EVENTS_REDIS_URL` (or `LOGS_REDIS_URL`) is not usable.
    #[error("EVENTS_REDIS_URL")]
    Events(#[source] RedisUrlError),
    /// The permission service client could not be built.
    #[error("PERMISSION_CHECK_URL")]
    Permission(#[source] PermissionClientError),
    /// The webhook client could not be built.
    #[error("WEBHOOK_URL")]
    Webhooks(#[source] stowage_infrastructure::webhooks::WebhookClientError),
}

/// Opens the database of `config` and applies pending migrations.
///
/// # Errors
/// [`StartupError::Database`].
pub async fn migrate(config: &Config) -> Result<DatabasePool, StartupError> {
    wiring::prepare_data_dir(config)?;
    let db = wiring::connect_database(config).await?;
    db::migrate(&db).await.map_err(StartupError::Database)?;
    Ok(db)
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
    wiring::reconcile(config)
        .await
        .map_err(GcError::Startup)?
        .execute(grace, dry_run)
        .await
        .map_err(GcError::Run)
}

/// The run of `stowage-api digest`: the missing digests of legacy rows, over the database (not
/// migrated: run `migrate` first) and the blob store.
///
/// # Errors
/// [`StartupError`] when a dependency cannot be reached.
pub async fn digest_legacy_rows(
    config: &Config,
) -> Result<stowage_application::use_cases::DigestLegacyRows, StartupError> {
    let db = wiring::connect_database(config).await?;
    let repo = Arc::new(stowage_infrastructure::SeaOrmFileRepository::new(db));
    let blobs = wiring::blob_store(config).await?;
    Ok(stowage_application::use_cases::DigestLegacyRows::new(
        repo, blobs,
    ))
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
    connections: serve::ConnectionLimits,
    generated_secret: bool,
    jwt: Hs256Jwt,
    webhooks: Option<stowage_infrastructure::webhooks::WebhookWorker>,
}

impl Application {
    /// Connects every adapter, migrates (unless `AUTO_MIGRATE=false`) and binds the listener.
    ///
    /// # Errors
    /// [`StartupError`] naming what failed.
    pub async fn build(config: Config) -> Result<Application, StartupError> {
        wiring::prepare_data_dir(&config)?;
        let (secret, generated_secret) = auth_secret(&config)?;
        let db = if config.auto_migrate {
            migrate(&config).await?
        } else {
            wiring::connect_database(&config).await?
        };
        let webhooks = wiring::webhook_worker(&config, &db)?;
        let adapters = wiring::Adapters::connect(&config, db, &secret).await?;
        let jwt = adapters.jwt.clone();
        let services = wiring::services(&config, adapters);

        let (listener, local_addr) = bind(config.http.bind_addr).await?;
        let public_url = config
            .http
            .public_url()
            .map_or_else(|| format!("http://{local_addr}"), str::to_owned);
        let state = AppState::new(services, wiring::http_settings(&config, &public_url));
        let state = match metrics::handle() {
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
            webhooks,
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
    /// Requests in flight and the webhook worker's attempts share one grace period, counted from
    /// the moment `stop` completes.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) {
        let _trimmer = memory::spawn_trimmer(memory::TRIM_INTERVAL);
        let webhooks = self.webhooks.map(|worker| worker.spawn());
        let (stop, deadline) = with_deadline(stop, self.shutdown_grace);
        serve::serve(
            self.listener,
            self.router,
            stop,
            self.shutdown_grace,
            self.connections,
        )
        .await;
        if let Some(webhooks) = webhooks {
            webhooks.stop(time_left(deadline).await).await;
        }
    }
}

/// `stop`, which also sets the shutdown's deadline: `grace` after it completes.
fn with_deadline(
    stop: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> (
    impl Future<Output = ()> + Send + 'static,
    oneshot::Receiver<Option<Instant>>,
) {
    let (set, deadline) = oneshot::channel();
    let stop = async move {
        stop.await;
        let _ = set.send(Instant::now().checked_add(grace));
    };
    (stop, deadline)
}

/// What is left before `deadline`: nothing once it has passed, or when the server ended without
/// `stop` completing; no limit for a grace period too long to count.
async fn time_left(deadline: oneshot::Receiver<Option<Instant>>) -> Duration {
    match deadline.await {
        Ok(Some(at)) => at.saturating_duration_since(Instant::now()),
        Ok(None) => Duration::MAX,
        Err(_) => Duration::ZERO,
    }
}

/// Binds the listener, and says where it is bound (port 0 picks one).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartupError> {
    let bind_error = |source| StartupError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local_addr))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_drain_and_the_worker_share_one_grace_period() {
        let grace = Duration::from_millis(400);
        let (stop, deadline) = with_deadline(async {}, grace);
        let started = Instant::now();
        stop.await;
        // The HTTP drain takes a part of the grace period: the worker gets what is left.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let left = time_left(deadline).await;
        assert!(left <= grace - Duration::from_millis(150), "{left:?}");
        assert!(started.elapsed() + left <= grace + Duration::from_millis(5));

        let (stop, deadline) = with_deadline(async {}, Duration::from_millis(10));
        stop.await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            time_left(deadline).await,
            Duration::ZERO,
            "a drain past the deadline"
        );

        let (stop, deadline) = with_deadline(std::future::pending(), grace);
        drop(stop);
        assert_eq!(time_left(deadline).await, Duration::ZERO, "never stopped");
    }
}
