//! [`BlobStore`] on Cloudinary, with its HTTP APIs.
//!
//! Blobs are resources of type `authenticated` under `{folder}/{account_id}/{file_id}`: `image`
//! for the image formats Cloudinary processes (JPEG, PNG, WebP, GIF, AVIF, recognised by their
//! magic bytes), `raw` for everything else. Uploads stream in chunks through the chunked Upload
//! API, each chunk's buffer charged to `UPLOAD_BUFFER_BYTES` as its bytes arrive; reads stream
//! from signed delivery URLs with `Range`; deletion is `destroy`, health the Admin API's `ping`,
//! the `gc` listing its `resources`. An empty blob is kept without a resource (Cloudinary refuses
//! empty uploads) and reads as missing: callers know a blob is empty from its record. No
//! Cloudinary URL leaves the adapter: Stowage's access rules decide who reads. A file's image
//! variants are resources beside it, `{folder}/{account_id}/{file_id}/{name}` (the name's `.`
//! written `_`), removed together by the Admin API's delete by prefix.

mod admin;
mod delivery;
mod error;
mod settings;
mod sign;
mod upload;
mod variants;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use stowage_application::ports::{BlobBody, BlobError, BlobListing, BlobStore};
use stowage_application::stream::{ByteStream, StoredBlob};
use stowage_domain::{BlobKey, ByteRange};

pub use error::CloudinaryError;
pub use settings::{CloudinarySettings, MIN_CHUNK_SIZE, SignatureAlgorithm};

use super::budget::PartBudget;
use sign::Signer;

/// Resource types remembered per blob, so that a read asks the right one first; cleared when
/// full (a forgotten type costs one extra request).
const REMEMBERED_TYPES: usize = 10_000;

/// Cloudinary's resource type of a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResourceType {
    Image,
    Raw,
}

impl ResourceType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Raw => "raw",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Image => Self::Raw,
            Self::Raw => Self::Image,
        }
    }
}

/// Keeps blobs as Cloudinary resources.
#[derive(Clone)]
pub struct CloudinaryBlobStore {
    client: reqwest::Client,
    signer: Signer,
    cloud_name: String,
    folder: String,
    api_url: String,
    delivery_url: String,
    chunk_size: usize,
    timeout: Duration,
    budget: PartBudget,
    types: Arc<Mutex<HashMap<BlobKey, ResourceType>>>,
    healthy_until: Arc<Mutex<Option<std::time::Instant>>>,
}

impl std::fmt::Debug for CloudinaryBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudinaryBlobStore")
            .field("cloud_name", &self.cloud_name)
            .field("folder", &self.folder)
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl CloudinaryBlobStore {
    /// A store for the account and folder `settings` name.
    ///
    /// # Errors
    /// [`CloudinaryError::Client`] when the HTTP client cannot be built.
    pub fn new(settings: &CloudinarySettings) -> Result<Self, CloudinaryError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            // A body (a download, an answer) that stops flowing for this long fails.
            .read_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CloudinaryError::Client(Box::new(e)))?;
        let chunk_size = settings.chunk_size.max(MIN_CHUNK_SIZE);
        Ok(Self {
            client,
            signer: Signer::new(
                settings.api_key.clone(),
                settings.api_secret.clone(),
                settings.signature_algorithm,
            ),
            cloud_name: settings.cloud_name.clone(),
            folder: settings.folder.clone(),
            api_url: settings.api_url.clone(),
            delivery_url: settings.delivery_url.clone(),
            chunk_size,
            timeout: settings.timeout,
            budget: PartBudget::new(settings.buffer_bytes, chunk_size, settings.buffer_wait),
            types: Arc::new(Mutex::new(HashMap::new())),
            healthy_until: Arc::new(Mutex::new(None)),
        })
    }

    fn public_id(&self, key: &BlobKey) -> String {
        let source = format!(
            "{}/{}/{}",
            self.folder,
            key.account_id().get(),
            key.file_id()
        );
        match key.variant() {
            None => source,
            Some(name) => format!("{source}/{}", variants::encode(name)),
        }
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, HashMap<BlobKey, ResourceType>> {
        self.types
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember(&self, key: &BlobKey, kind: ResourceType) {
        let mut types = self.remembered();
        if types.len() >= REMEMBERED_TYPES {
            types.clear();
        }
        types.insert(*key, kind);
    }

    fn forget(&self, key: &BlobKey) {
        self.remembered().remove(key);
    }

    /// The resource types to try for `key`, the remembered one first.
    fn types_of(&self, key: &BlobKey) -> [ResourceType; 2] {
        let first = self
            .remembered()
            .get(key)
            .copied()
            .unwrap_or(ResourceType::Image);
        [first, first.other()]
    }
}

#[async_trait]
impl BlobStore for CloudinaryBlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        body: ByteStream,
        _length: Option<u64>,
    ) -> Result<StoredBlob, BlobError> {
        self.upload(key, body).await
    }

    async fn get(&self, key: &BlobKey, range: Option<ByteRange>) -> Result<BlobBody, BlobError> {
        self.read(key, range).await
    }

    async fn head(&self, key: &BlobKey) -> Result<u64, BlobError> {
        self.size(key).await
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.remove(key).await
    }

    async fn delete_variants(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.remove_variants(key).await
    }

    async fn health(&self) -> Result<(), BlobError> {
        self.ping().await
    }

    async fn list(&self) -> Result<BlobListing, BlobError> {
        Ok(self.listing())
    }

    async fn remove_stray(&self, id: &str) -> Result<(), BlobError> {
        self.remove_listed_stray(id).await
    }
}
