//! The ports: traits the use cases need, implemented by adapters in `stowage-infrastructure`.

pub mod blob_store;
pub mod clock;
pub mod direct_upload_repository;
pub mod direct_uploads;
pub mod event_publisher;
pub mod file_repository;
pub mod image_renderer;
pub mod permission_checker;
pub mod rate_limiter;
pub mod resumable_repository;
pub mod resumable_store;
pub mod token_store;
pub mod token_verifier;
pub mod upload_grant_store;
pub mod upload_url_signer;
pub mod url_signer;

pub use blob_store::{BlobBody, BlobError, BlobListing, BlobStore, ListedBlob};
pub use clock::Clock;
pub use direct_upload_repository::{Claim, DirectUpload, DirectUploadId, DirectUploadRepository};
pub use direct_uploads::{
    DirectUploadError, DirectUploadStore, PresignedRequest, StoredObject, UploadedPart,
};
pub use event_publisher::{EventPublisher, NoEvents};
pub use file_repository::{FileRepository, ListCursor, ListPage, Owner, RepoError};
pub use image_renderer::{ImageRenderer, RenderError, RenderSlot, Rendered};
pub use permission_checker::{PermissionChecker, PermissionError, PermissionVerdict};
pub use rate_limiter::{RateClass, RateDecision, RateLimit, RateLimiter};
pub use resumable_repository::{
    Concat, ResumableId, ResumableLock, ResumableProgress, ResumableRepository, ResumableStage,
    ResumableUpload,
};
pub use resumable_store::{Appended, ConcatPart, ResumableStore, StoreProgress};
pub use token_store::{TokenStore, TokenStoreError};
pub use token_verifier::{InvalidToken, TokenClaims, TokenKind, TokenVerifier};
pub use upload_grant_store::{ClaimToken, GrantStoreError, UploadGrantStore};
pub use upload_url_signer::{GrantPrincipal, UploadGrant, UploadGrantId, UploadUrlSigner};
pub use url_signer::UrlSigner;
