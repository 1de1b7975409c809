//! Stowage's adapters: each implements a port of `stowage-application` with one technology.

pub mod auth;
pub mod blob;
pub mod clock;
pub mod db;
pub mod events;
pub mod image;
pub mod metered;
pub mod permission;
pub mod rate_limit;
pub mod redis;
pub mod secret_url;
pub mod upload_url;
pub mod webhooks;

pub use auth::jwt::{Hs256Jwt, JwtClaims};
pub use auth::redis_tokens::{RedisTokenStore, TokenStoreSettings};
pub use auth::signed_url::HmacUrlSigner;
pub use blob::cache::{BlobCacheSettings, CachedBlobStore};
pub use blob::cloudinary::{
    CloudinaryBlobStore, CloudinaryError, CloudinarySettings, SignatureAlgorithm,
};
pub use blob::fs::FsBlobStore;
pub use blob::fs_resumable::FsResumableStore;
pub use blob::memory::{MemoryBlobStore, MemoryStoreFull};
pub use blob::s3::{S3BlobStore, S3DirectUploads, S3Layout, S3ResumableStore, S3Settings};
pub use clock::SystemClock;
pub use db::{
    DatabasePool, DatabaseSettings, DbError, SeaOrmDirectUploadRepository, SeaOrmFileRepository,
    SeaOrmResumableRepository, SeaOrmUploadGrantStore,
};
pub use events::{RedisStreamPublisher, RedisStreamSettings};
pub use image::{ImageRendererSettings, PixelRenderer};
pub use metered::{
    MeteredBlobStore, MeteredFileRepository, MeteredPermissionChecker, MeteredRateLimiter,
    MeteredTokenStore, MeteredTokenVerifier,
};
pub use permission::http::{HttpPermissionChecker, PermissionClientError, PermissionSettings};
pub use rate_limit::memory::InMemoryRateLimiter;
pub use rate_limit::redis::RedisRateLimiter;
pub use redis::{RedisCallError, RedisConnection, RedisSettings, RedisUrlError};
pub use secret_url::SecretUrl;
pub use upload_url::HmacUploadUrlSigner;
