//! A fake Cloudinary (Upload API, Admin API and authenticated delivery) in memory, so the
//! Cloudinary blob-store adapter can be tested without the internet. It is strict where Cloudinary
//! is strict, so that an adapter that signs, chunks or names things wrongly fails here too.
//!
//! Modelled:
//! - `POST /v1_1/{cloud}/{image|raw}/upload` (multipart): api_key, signature (SHA-1 or SHA-256 of
//!   the sorted `name=value` fields but `file`, `api_key`, `signature`, `resource_type` and
//!   `cloud_name`, joined by `&`, secret appended), a timestamp within an hour, `type=authenticated`,
//!   non-empty files, image magic bytes for `image`, overwriting, and chunked uploads
//!   (`X-Unique-Upload-Id`, `Content-Range` with `-1` totals, in order, 5 MB minimum but the last).
//! - `GET`/`HEAD /{cloud}/{type}/authenticated/s--SIG--/[v123/]{public_id}` with the URL signature
//!   (8 or 32 URL-safe base64 characters), single byte ranges, 416, and a body in 64 KiB frames.
//! - `POST /v1_1/{cloud}/{type}/destroy` (form-urlencoded, signed), `GET /v1_1/{cloud}/ping`,
//!   `GET /v1_1/{cloud}/resources/{type}/authenticated` (Basic auth, prefix, `max_results`
//!   1..=500, opaque `next_cursor`) and `DELETE` of the same path by a non-empty `prefix` (Basic
//!   auth, parameters in the query or a form body, at most 1000 resources a request, then
//!   `partial` and a `next_cursor`), all with Cloudinary's `{"error":{"message":...}}` bodies.
//! - Injected failures per route ([`FakeCloudinary::fail_next`]) and a record of every request.
//!
//! A first path segment `v<digits>` of a delivery URL is taken for a version, as Cloudinary does.
//!
//! Not modelled: transformations, format conversion or re-encoding (bytes are served exactly as
//! uploaded; a public_id with an added extension is not found), other delivery types, remote-URL
//! uploads, upload presets and unsigned uploads, video, CDN caching and invalidation, eventual
//! consistency of the Admin API (listings see every write at once), multi-range requests (served
//! whole), rate-limit headers and quotas, `direction`/`tags`/other listing parameters (the listing
//! is always ordered by public_id), and any size limit on files.

mod admin;
mod delivery;
mod upload;

use std::collections::{BTreeMap, HashMap};
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use serde_json::json;
use sha2::Digest;

use admin::{delete_resources, destroy, list, ping};
use delivery::deliver;
use upload::upload;

/// The account's signature algorithm (SHA-1 unless the account was switched).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    #[default]
    Sha1,
    Sha256,
}

impl Algorithm {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Algorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Algorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
        }
    }
}

/// The routes whose answers a test can replace with failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    Upload,
    Delivery,
    Destroy,
    Ping,
    List,
    DeleteResources,
}

/// One request as the fake saw it, for assertions.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub route: Route,
    pub method: String,
    pub path: String,
    pub query: String,
    /// `range`, `content-range` and `x-unique-upload-id`, when sent (names in lower case).
    pub headers: BTreeMap<String, String>,
    /// Form fields but `file` (query parameters for the listing).
    pub fields: BTreeMap<String, String>,
    pub file_len: Option<usize>,
}

struct Resource {
    bytes: Bytes,
    version: u64,
    created_at: String,
    format: Option<String>,
}

struct Pending {
    resource_type: String,
    public_id: String,
    data: BytesMut,
    total: Option<u64>,
}

#[derive(Default)]
struct Store {
    resources: BTreeMap<(String, String), Resource>,
    pending: HashMap<String, Pending>,
    failures: HashMap<Route, (u16, usize)>,
    requests: Vec<Recorded>,
    last_version: u64,
    /// Deliveries answer `200` with the whole resource whatever `Range` asks, as some proxies do.
    ignore_ranges: bool,
}

struct Shared {
    base: String,
    cloud_name: String,
    api_key: String,
    api_secret: String,
    algorithm: Algorithm,
    store: Mutex<Store>,
}

type Reply = Result<Response, Refusal>;

/// An answer that ends a request early.
enum Refusal {
    /// An Upload or Admin API error, with Cloudinary's JSON body.
    Api(u16, String),
    /// A delivery error: no body, the reason in `X-Cld-Error` as Cloudinary's CDN sends it.
    Cdn(StatusCode, &'static str),
    /// 416 for a resource of this many bytes.
    Unsatisfiable(u64),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Api(status, message) => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (status, Json(json!({ "error": { "message": message } }))).into_response()
            }
            Refusal::Cdn(status, reason) => (status, [("x-cld-error", reason)]).into_response(),
            Refusal::Unsatisfiable(size) => {
                let headers = [(header::CONTENT_RANGE, format!("bytes */{size}"))];
                (StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response()
            }
        }
    }
}

/// A fake Cloudinary account on a free local port, with its own runtime thread; stops on drop.
pub struct FakeCloudinary {
    pub cloud_name: String,
    pub api_key: String,
    pub api_secret: String,
    pub algorithm: Algorithm,
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeCloudinary {
    /// An account signing with SHA-1.
    pub fn spawn() -> Self {
        Self::spawn_with(Algorithm::Sha1)
    }

    /// An account signing with `algorithm`.
    pub fn spawn_with(algorithm: Algorithm) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let random = || uuid::Uuid::new_v4().simple().to_string();
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            cloud_name: format!("cloud{}", &random()[..10]),
            api_key: (uuid::Uuid::new_v4().as_u128() % 10u128.pow(15)).to_string(),
            api_secret: random(),
            algorithm,
            store: Mutex::default(),
        });
        let app = Router::new()
            .route("/v1_1/{cloud}/{resource_type}/upload", post(upload))
            .route("/v1_1/{cloud}/{resource_type}/destroy", post(destroy))
            .route("/v1_1/{cloud}/ping", get(ping))
            .route(
                "/v1_1/{cloud}/resources/{resource_type}/{kind}",
                get(list).delete(delete_resources),
            )
            .route(
                "/{cloud}/{resource_type}/authenticated/{signature}/{*rest}",
                get(deliver),
            )
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::select! {
                    served = axum::serve(listener, app).into_future() => served.unwrap(),
                    _ = rx => {}
                }
            });
        });
        FakeCloudinary {
            cloud_name: shared.cloud_name.clone(),
            api_key: shared.api_key.clone(),
            api_secret: shared.api_secret.clone(),
            algorithm,
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Origin of both the API and delivery.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The account as the `CLOUDINARY_URL` environment variable names it.
    pub fn cloudinary_url(&self) -> String {
        format!(
            "cloudinary://{}:{}@{}",
            self.api_key, self.api_secret, self.cloud_name
        )
    }

    /// `{resource_type}/{public_id}` of every stored resource, sorted.
    pub fn resources(&self) -> Vec<String> {
        let store = self.shared.store.lock().unwrap();
        let mut all: Vec<String> = store
            .resources
            .keys()
            .map(|(t, id)| format!("{t}/{id}"))
            .collect();
        all.sort();
        all
    }

    /// The bytes of one stored resource.
    pub fn resource(&self, resource_type: &str, public_id: &str) -> Option<Bytes> {
        let store = self.shared.store.lock().unwrap();
        let key = (resource_type.to_owned(), public_id.to_owned());
        store.resources.get(&key).map(|r| r.bytes.clone())
    }

    /// Stores a resource as if it had been uploaded (no checks), e.g. one the adapter must find.
    pub fn insert(&self, resource_type: &str, public_id: &str, bytes: Bytes) {
        self.shared.store(resource_type, public_id, bytes);
    }

    /// Chunked uploads started and not finished.
    pub fn pending_uploads(&self) -> usize {
        self.shared.store.lock().unwrap().pending.len()
    }

    /// Answers the next `times` requests of `route` with `status` and a Cloudinary error body.
    pub fn fail_next(&self, route: Route, status: u16, times: usize) {
        let mut store = self.shared.store.lock().unwrap();
        store.failures.insert(route, (status, times));
    }

    /// Makes deliveries ignore `Range` (a proxy in front of the CDN may), or honour it again.
    pub fn ignore_ranges(&self, ignore: bool) {
        self.shared.store.lock().unwrap().ignore_ranges = ignore;
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.store.lock().unwrap().requests.clone()
    }
}

impl Drop for FakeCloudinary {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn error(status: u16, message: impl Into<String>) -> Refusal {
    Refusal::Api(status, message.into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn check_resource_type(resource_type: &str) -> Result<(), Refusal> {
    match resource_type {
        "image" | "raw" => Ok(()),
        other => Err(error(400, format!("Invalid resource type {other}"))),
    }
}

impl Shared {
    /// Records the request, then answers an injected failure or a wrong cloud name.
    fn begin(
        &self,
        route: Route,
        parts: &Parts,
        cloud: &str,
        fields: BTreeMap<String, String>,
        file_len: Option<usize>,
    ) -> Result<(), Refusal> {
        let headers = ["range", "content-range", "x-unique-upload-id"]
            .into_iter()
            .filter_map(|n| {
                Some((
                    n.to_owned(),
                    parts.headers.get(n)?.to_str().ok()?.to_owned(),
                ))
            })
            .collect();
        let mut store = self.store.lock().unwrap();
        store.requests.push(Recorded {
            route,
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            headers,
            fields,
            file_len,
        });
        if let Some((status, times)) = store.failures.get_mut(&route).filter(|(_, t)| *t > 0) {
            *times -= 1;
            return Err(error(*status, "injected"));
        }
        if cloud != self.cloud_name {
            return Err(error(404, format!("Invalid cloud_name {cloud}")));
        }
        Ok(())
    }
}
