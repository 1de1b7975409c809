//! Wiring: the configuration picks the adapters, the adapters become the use cases.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretSlice, SecretString};
use stowage_application::ports::{
    BlobStore, Clock, DirectUploadRepository, DirectUploadStore, EventPublisher, FileRepository,
    NoEvents, PermissionChecker, RateLimiter, ResumableRepository, ResumableStore, TokenStore,
};
use stowage_application::use_cases::{
    Audit, Authenticate, CheckRateLimit, CheckReadiness, CreateSignedUrl, DeleteFile, DownloadFile,
    GetFileInfo, ListFiles, ReadAccess, Reconcile, SetVisibility, UploadFile,
};
use stowage_application::use_cases::{CompleteDirectUpload, DirectUploadPorts, StartDirectUpload};
use stowage_application::use_cases::{CreateUploadUrl, UploadWithUrl, Variants};
use stowage_application::use_cases::{ResumablePorts, ResumableSettings, ResumableUploads};
use stowage_infrastructure::db::{self, DatabasePool};
use stowage_infrastructure::{
    CachedBlobStore, CloudinaryBlobStore, FsBlobStore, HmacUrlSigner, Hs256Jwt,
    HttpPermissionChecker, InMemoryRateLimiter, MemoryBlobStore, MeteredBlobStore,
    MeteredFileRepository, MeteredPermissionChecker, MeteredRateLimiter, MeteredTokenStore,
    MeteredTokenVerifier, RedisConnection, RedisRateLimiter, RedisTokenStore, S3BlobStore,
    SeaOrmFileRepository, SystemClock, TokenStoreSettings,
};
use stowage_infrastructure::{FsResumableStore, S3ResumableStore, SeaOrmResumableRepository};
use stowage_infrastructure::{HmacUploadUrlSigner, SeaOrmUploadGrantStore};
use stowage_infrastructure::{ImageRendererSettings, PixelRenderer};
use stowage_infrastructure::{S3DirectUploads, SeaOrmDirectUploadRepository};
use stowage_presentation::{HttpSettings, Services};

use crate::StartupError;
use crate::config::{Config, StorageConfig};

mod webhooks;

pub use webhooks::webhook_outbox;
pub(crate) use webhooks::webhook_worker;

/// Creates `DATA_DIR` when SQLite or the local disk keeps data there.
pub(crate) fn prepare_data_dir(config: &Config) -> Result<(), StartupError> {
    if config.database.url.scheme() == "sqlite"
        || matches!(config.storage, StorageConfig::Fs { .. })
    {
        std::fs::create_dir_all(&config.data_dir).map_err(StartupError::Storage)?;
    }
    Ok(())
}

/// Opens the database pool of `config` (without migrating).
pub(crate) async fn connect_database(config: &Config) -> Result<DatabasePool, StartupError> {
    db::connect(&config.database)
        .await
        .map_err(StartupError::Database)
}

/// The reconciliation of `stowage-api gc`, over the database and the blob store (unmetered).
pub(crate) async fn reconcile(config: &Config) -> Result<Reconcile, StartupError> {
    let db = connect_database(config).await?;
    let direct = direct_uploads(config, &db);
    let grants = Arc::new(SeaOrmUploadGrantStore::new(&db));
    let resumable: Arc<dyn ResumableRepository> = Arc::new(SeaOrmResumableRepository::new(&db));
    let repo: Arc<dyn FileRepository> = Arc::new(SeaOrmFileRepository::new(db));
    let (blobs, resumable_store) = stores_beside_the_service(config).await?;
    let mut reconcile =
        Reconcile::new(repo, blobs, Arc::new(SystemClock)).with_upload_grants(grants);
    if let Some((uploads, store)) = direct {
        reconcile = reconcile.with_direct_uploads(uploads, store);
    }
    if let Some(store) = resumable_store {
        reconcile = reconcile.with_resumable_uploads(resumable, store);
    }
    Ok(reconcile)
}

/// Direct uploads' state and presigner: S3 only (other backends answer `501`).
fn direct_uploads(
    config: &Config,
    db: &DatabasePool,
) -> Option<(Arc<dyn DirectUploadRepository>, Arc<dyn DirectUploadStore>)> {
    let StorageConfig::S3(s3) = &config.storage else {
        return None;
    };
    Some((
        Arc::new(SeaOrmDirectUploadRepository::new(db)),
        Arc::new(S3DirectUploads::new(S3BlobStore::new(s3))),
    ))
}

/// The blob store `config` selects, for a command that runs beside the service (`gc`,
/// `digest`).
///
/// # Errors
/// [`StartupError::Storage`] when the store cannot be prepared, or when it is the memory store:
/// that one lives inside the serving process, and another process would find it empty.
pub async fn blob_store(config: &Config) -> Result<Arc<dyn BlobStore>, StartupError> {
    Ok(stores_beside_the_service(config).await?.0)
}

/// [`blob_store`] and its resumable side.
async fn stores_beside_the_service(
    config: &Config,
) -> Result<(Arc<dyn BlobStore>, Option<Arc<dyn ResumableStore>>), StartupError> {
    if matches!(config.storage, StorageConfig::Memory { .. }) {
        return Err(StartupError::Storage(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "STORAGE_BACKEND=memory keeps blobs inside the serving process; \
             no other process can read them",
        )));
    }
    open_stores(config).await
}

/// The blob store `config` selects and, where it can keep unfinished uploads, its resumable
/// side (over the same bytes: one memory store serves both).
async fn open_stores(
    config: &Config,
) -> Result<(Arc<dyn BlobStore>, Option<Arc<dyn ResumableStore>>), StartupError> {
    match &config.storage {
        StorageConfig::Fs { root } => Ok((
            Arc::new(FsBlobStore::new(root).map_err(StartupError::Storage)?),
            Some(Arc::new(
                FsResumableStore::new(root).map_err(StartupError::Storage)?,
            )),
        )),
        StorageConfig::S3(s3) => {
            let store = S3BlobStore::new(s3);
            if let Err(e) = store.prepare().await {
                tracing::warn!(error = %e, "the S3 bucket could not be checked or created; readiness will say so");
            }
            let resumable = Arc::new(S3ResumableStore::new(store.clone()));
            Ok((Arc::new(store), Some(resumable)))
        }
        StorageConfig::Memory { capacity_bytes } => {
            tracing::warn!(
                capacity_bytes,
                "blobs are kept in process memory and lost when the service stops (STORAGE_BACKEND=memory)"
            );
            let store = Arc::new(MemoryBlobStore::new(*capacity_bytes));
            Ok((store.clone(), Some(store)))
        }
        StorageConfig::Cloudinary(settings) => Ok((
            Arc::new(
                CloudinaryBlobStore::new(settings)
                    .map_err(|e| StartupError::Storage(std::io::Error::other(e)))?,
            ),
            None,
        )),
    }
}

/// Every adapter the service runs on, metered, before they become use cases.
pub(crate) struct Adapters {
    clock: Arc<dyn Clock>,
    repo: Arc<dyn FileRepository>,
    blobs: Arc<dyn BlobStore>,
    /// The HS256 signer/verifier over the service's secret.
    pub(crate) jwt: Hs256Jwt,
    signer: Arc<HmacUrlSigner>,
    tokens: Option<Arc<dyn TokenStore>>,
    permissions: Option<Arc<dyn PermissionChecker>>,
    rate_limiter: Option<Arc<dyn RateLimiter>>,
    events: Arc<dyn EventPublisher>,
    /// Upload URLs: their signer (the download signer's secret) and their single use.
    upload_urls: (Arc<HmacUploadUrlSigner>, Arc<SeaOrmUploadGrantStore>),
    direct: Option<(Arc<dyn DirectUploadRepository>, Arc<dyn DirectUploadStore>)>,
    /// Resumable uploads' state and unfinished bytes, where the store can keep them.
    resumable: Option<(Arc<dyn ResumableRepository>, Arc<dyn ResumableStore>)>,
}

impl Adapters {
    /// Builds the adapters `config` selects over the open database `db`, signing with `secret`.
    pub(crate) async fn connect(
        config: &Config,
        db: DatabasePool,
        secret: &SecretString,
    ) -> Result<Adapters, StartupError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let grants = Arc::new(SeaOrmUploadGrantStore::new(&db));
        let direct = direct_uploads(config, &db);
        let db_for_resumable = db.clone();
        let repo = Arc::new(MeteredFileRepository::new(Arc::new(
            webhooks::file_repository(config, db),
        )));
        let (blobs, resumable) = blobs(config).await?;
        let resumable = resumable.map(|store| {
            let uploads: Arc<dyn ResumableRepository> =
                Arc::new(SeaOrmResumableRepository::new(&db_for_resumable));
            (uploads, store)
        });
        let secret_bytes: Arc<[u8]> = Arc::from(secret.expose_secret().as_bytes());
        let jwt = Hs256Jwt::new(&secret_bytes, clock.clone());
        let signer = match &config.auth.signed_url_secret {
            Some(own) => HmacUrlSigner::new(own.expose_secret().as_bytes()),
            None => HmacUrlSigner::new(&secret_bytes),
        };
        let upload_signer = match &config.auth.signed_url_secret {
            Some(own) => HmacUploadUrlSigner::new(own.expose_secret().as_bytes()),
            None => HmacUploadUrlSigner::new(&secret_bytes),
        };
        let redis = redis(config)?;
        Ok(Adapters {
            tokens: token_store(config, redis.as_ref(), secret),
            permissions: permissions(config)?,
            rate_limiter: rate_limiter(config, redis),
            events: event_publisher(config)?,
            upload_urls: (Arc::new(upload_signer), grants),
            direct,
            resumable,
            clock,
            repo,
            blobs,
            jwt,
            signer: Arc::new(signer),
        })
    }
}

/// The configured blob store, metered, behind the in-memory cache when one is configured; and
/// its resumable side, when it has one.
async fn blobs(
    config: &Config,
) -> Result<(Arc<dyn BlobStore>, Option<Arc<dyn ResumableStore>>), StartupError> {
    let backend = match config.storage {
        StorageConfig::Fs { .. } => "fs",
        StorageConfig::S3(_) => "s3",
        StorageConfig::Memory { .. } => "memory",
        StorageConfig::Cloudinary(_) => "cloudinary",
    };
    let (store, resumable) = open_stores(config).await?;
    let blobs: Arc<dyn BlobStore> = Arc::new(MeteredBlobStore::new(store, backend));
    if config.limits.blob_cache.capacity_bytes == 0 {
        return Ok((blobs, resumable));
    }
    let cached = Arc::new(CachedBlobStore::new(blobs, config.limits.blob_cache));
    Ok((cached, resumable))
}

/// The audit stream when `EVENTS_REDIS_URL` is set (nothing is dialled yet), else no events.
pub(crate) fn event_publisher(config: &Config) -> Result<Arc<dyn EventPublisher>, StartupError> {
    let Some(settings) = &config.events.stream else {
        return Ok(Arc::new(NoEvents));
    };
    let publisher = stowage_infrastructure::RedisStreamPublisher::new(settings)
        .map_err(StartupError::Events)?;
    tracing::info!(
        url = %settings.url,
        stream = %settings.stream,
        maxlen = settings.maxlen,
        "audit events are added to a Redis stream"
    );
    Ok(Arc::new(publisher))
}

/// The shared Redis connection, when `REDIS_URL` is set (nothing is dialled yet).
fn redis(config: &Config) -> Result<Option<RedisConnection>, StartupError> {
    config
        .redis
        .as_ref()
        .map(|r| RedisConnection::new(r).map_err(StartupError::Redis))
        .transpose()
}

fn token_store(
    config: &Config,
    redis: Option<&RedisConnection>,
    secret: &SecretString,
) -> Option<Arc<dyn TokenStore>> {
    let (connection, r) = redis.zip(config.redis.as_ref())?;
    Some(Arc::new(MeteredTokenStore::new(Arc::new(
        RedisTokenStore::new(
            connection.clone(),
            TokenStoreSettings {
                key_prefix: r.key_prefix.clone(),
                secret: Arc::new(SecretSlice::from(
                    secret.expose_secret().as_bytes().to_vec(),
                )),
                iterations: config.auth.token_iterations,
            },
        ),
    ))))
}

fn permissions(config: &Config) -> Result<Option<Arc<dyn PermissionChecker>>, StartupError> {
    let Some(p) = &config.permission else {
        return Ok(None);
    };
    let checker = HttpPermissionChecker::new(p).map_err(StartupError::Permission)?;
    Ok(Some(Arc::new(MeteredPermissionChecker::new(Arc::new(
        checker,
    )))))
}

/// Counters in Redis when it is configured, in memory otherwise; none when rate limiting is off.
fn rate_limiter(config: &Config, redis: Option<RedisConnection>) -> Option<Arc<dyn RateLimiter>> {
    if !config.rate_limit.enabled {
        return None;
    }
    let limiter: Arc<dyn RateLimiter> = match (redis, &config.redis) {
        (Some(connection), Some(r)) => {
            Arc::new(RedisRateLimiter::new(connection, r.key_prefix.clone()))
        }
        _ => Arc::new(InMemoryRateLimiter::new()),
    };
    Some(Arc::new(MeteredRateLimiter::new(limiter)))
}

/// The use cases over `adapters`, with the limits of `config`.
pub(crate) fn services(config: &Config, adapters: Adapters) -> Services {
    let Adapters {
        clock,
        repo,
        blobs,
        jwt,
        signer,
        tokens,
        permissions,
        rate_limiter,
        events,
        direct,
        resumable,
        upload_urls: (upload_signer, grants),
    } = adapters;
    let audit = Audit::new(events, clock.clone());
    let access = ReadAccess::new(repo.clone(), permissions, config.limits.access_policy)
        .with_audit(audit.clone());
    let policies = config.policies.clone();
    let renderer = PixelRenderer::new(ImageRendererSettings {
        concurrency: config.images.concurrency,
        ..ImageRendererSettings::default()
    });
    let variants = Variants::new(
        blobs.clone(),
        Arc::new(renderer),
        config.images.limits,
        config.images.presets.clone(),
    );
    let direct = direct.map(|(uploads, store)| DirectUploadPorts {
        files: repo.clone(),
        blobs: blobs.clone(),
        store,
        uploads,
        clock: clock.clone(),
    });
    let max_bytes = config.limits.max_upload_bytes;
    let resumable = resumable.map(|(uploads, store)| {
        let ports = ResumablePorts {
            files: repo.clone(),
            blobs: blobs.clone(),
            store,
            uploads,
            clock: clock.clone(),
        };
        let settings = ResumableSettings {
            max_bytes,
            expiry: config.limits.tus_expiry,
            policies: policies.clone(),
        };
        ResumableUploads::new(ports, settings)
            .with_audit(audit.clone())
            .with_variants(variants.clone())
    });
    Services {
        resumable,
        start_direct: direct
            .clone()
            .map(|ports| StartDirectUpload::new(ports, max_bytes, policies.clone())),
        complete_direct: direct.map(|ports| {
            CompleteDirectUpload::new(ports, max_bytes, policies.clone())
                .with_audit(audit.clone())
                .with_variants(variants.clone())
        }),
        create_upload_url: CreateUploadUrl::new(
            upload_signer.clone(),
            clock.clone(),
            policies.keys().cloned().collect(),
            config.limits.max_upload_bytes,
        ),
        upload_with_url: UploadWithUrl::new(
            UploadFile::new(
                repo.clone(),
                blobs.clone(),
                clock.clone(),
                config.limits.max_upload_bytes,
                policies.clone(),
            )
            .with_audit(audit.clone())
            .with_variants(variants.clone()),
            upload_signer,
            grants,
            clock.clone(),
        ),
        authenticate: Authenticate::new(
            Arc::new(MeteredTokenVerifier::new(Arc::new(jwt))),
            tokens.clone(),
        ),
        upload: UploadFile::new(
            repo.clone(),
            blobs.clone(),
            clock.clone(),
            config.limits.max_upload_bytes,
            policies,
        )
        .with_audit(audit.clone())
        .with_variants(variants.clone()),
        variants,
        download: DownloadFile::new(access.clone(), blobs.clone(), signer.clone(), clock.clone())
            .with_audit(audit.clone()),
        info: GetFileInfo::new(access.clone()),
        list: ListFiles::new(repo.clone()),
        delete: DeleteFile::new(repo.clone(), blobs.clone()).with_audit(audit),
        set_visibility: SetVisibility::new(repo.clone()),
        readiness: CheckReadiness::new(repo, blobs, tokens),
        signed_url: CreateSignedUrl::new(access, signer, clock),
        rate_limit: rate_limiter.map(|limiter| {
            CheckRateLimit::new(
                limiter,
                config.rate_limit.upload,
                config.rate_limit.download,
            )
        }),
    }
}

/// The HTTP layer's settings, with `public_url` as the origin clients see and the file routes
/// under `FILES_URL`, by default `{public_url}/files`.
pub(crate) fn http_settings(config: &Config, public_url: &str) -> HttpSettings {
    let configured = &config.http.settings.files_url;
    let files_url = if configured.is_empty() {
        format!("{public_url}/files")
    } else {
        configured.clone()
    };
    HttpSettings {
        public_url: public_url.to_owned(),
        files_url,
        ..config.http.settings.clone()
    }
}
