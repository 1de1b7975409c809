//! What every handler can reach: the use cases and the HTTP settings.

use std::sync::Arc;

use crate::client_limits::{ClientSlots, RequestLimits};

use stowage_application::use_cases::{
    Authenticate, CheckRateLimit, CheckReadiness, CompleteDirectUpload, CreateSignedUrl,
    CreateUploadUrl, DeleteFile, DownloadFile, GetFileInfo, ListFiles, ResumableUploads,
    SetVisibility, StartDirectUpload, UploadFile, UploadWithUrl, Variants,
};

/// The use cases, wired by the composition root.
pub struct Services {
    /// Credentials → principal.
    pub authenticate: Authenticate,
    /// `POST /files`.
    pub upload: UploadFile,
    /// `GET`/`HEAD /files/{id}`.
    pub download: DownloadFile,
    /// `GET /files/{id}?w=…`: image variants.
    pub variants: Variants,
    /// `GET /files/{id}/info`.
    pub info: GetFileInfo,
    /// `GET /files`.
    pub list: ListFiles,
    /// `DELETE /files/{id}`.
    pub delete: DeleteFile,
    /// `PATCH /files/{id}`.
    pub set_visibility: SetVisibility,
    /// `GET /health/ready`.
    pub readiness: CheckReadiness,
    /// `POST /files/{id}/signed-url`.
    pub signed_url: CreateSignedUrl,
    /// `POST /files/upload-url`.
    pub create_upload_url: CreateUploadUrl,
    /// `POST`/`PUT /files/upload-url/{token}`.
    pub upload_with_url: UploadWithUrl,
    /// `POST /files/direct`; `None` off S3 (`501`).
    pub start_direct: Option<StartDirectUpload>,
    /// `POST /files/direct/{upload_id}/complete`; `None` off S3 (`501`).
    pub complete_direct: Option<CompleteDirectUpload>,
    /// `/files/tus`; `None` where the storage backend cannot keep unfinished uploads (`501`).
    pub resumable: Option<ResumableUploads>,
    /// Per-client limits; `None` when rate limiting is off.
    pub rate_limit: Option<CheckRateLimit>,
}

/// Settings of the HTTP layer.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// The origin clients see, without a trailing slash (`PUBLIC_URL`).
    pub public_url: String,
    /// Where clients reach the file routes, without a trailing slash (`FILES_URL`, by default
    /// `{PUBLIC_URL}/files`): `public_url`, `Location` and signed URLs are built on it.
    pub files_url: String,
    /// Where clients reach public files, without a trailing slash (`PUBLIC_FILES_URL`, a CDN in
    /// front of Stowage); `None` serves them from `files_url` like every file.
    pub public_files_url: Option<String>,
    /// Where browsers are sent on 401/403/404/5xx (`FRONTEND_URL`), without a trailing slash.
    pub frontend_url: Option<String>,
    /// Put the error chain into 5xx bodies (`DEBUG`).
    pub debug: bool,
    /// Send `Strict-Transport-Security` (`HSTS_ENABLED`).
    pub hsts: bool,
    /// Take the client address from `X-Real-IP` (`TRUST_PROXY_HEADERS`).
    pub trust_proxy_headers: bool,
    /// Origins allowed by CORS (`ALLOWED_ORIGINS`); empty means no CORS headers.
    pub allowed_origins: Vec<String>,
    /// What one client may hold at once, and how long a transfer may stand still.
    pub limits: RequestLimits,
}

impl HttpSettings {
    /// The URL a client reads `record` at: under `public_files_url` for a public file when it is
    /// set, else under `files_url`.
    pub fn file_url(&self, record: &stowage_domain::FileRecord) -> String {
        let base = match &self.public_files_url {
            Some(public) if record.is_public() => public,
            _ => &self.files_url,
        };
        format!("{base}/{}", record.id())
    }
}

/// Renders the metrics registry in the Prometheus text format.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// Shared, cheaply cloned state of the router.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
    metrics: Option<MetricsRenderer>,
}

struct Shared {
    services: Services,
    settings: HttpSettings,
    uploads: ClientSlots,
    downloads: ClientSlots,
}

impl AppState {
    /// State over `services` and `settings`.
    pub fn new(services: Services, settings: HttpSettings) -> Self {
        let uploads = ClientSlots::new(settings.limits.uploads_per_client);
        let downloads = ClientSlots::new(settings.limits.downloads_per_client);
        Self {
            inner: Arc::new(Shared {
                services,
                settings,
                uploads,
                downloads,
            }),
            metrics: None,
        }
    }

    /// Uploads in progress, per client.
    pub fn upload_slots(&self) -> &ClientSlots {
        &self.inner.uploads
    }

    /// Downloads streaming, per client.
    pub fn download_slots(&self) -> &ClientSlots {
        &self.inner.downloads
    }

    /// Serves `GET /metrics` from `render`.
    pub fn with_metrics(mut self, render: MetricsRenderer) -> Self {
        self.metrics = Some(render);
        self
    }

    /// The metrics renderer, when metrics are on.
    pub fn metrics(&self) -> Option<&MetricsRenderer> {
        self.metrics.as_ref()
    }

    /// The use cases.
    pub fn services(&self) -> &Services {
        &self.inner.services
    }

    /// The HTTP settings.
    pub fn settings(&self) -> &HttpSettings {
        &self.inner.settings
    }
}
