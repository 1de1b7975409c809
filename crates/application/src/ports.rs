//! The ports: traits the use cases need, implemented by adapters in `stowage-infrastructure`.

pub mod blob_store;
pub mod clock;
pub mod file_repository;
pub mod permission_checker;
pub mod token_store;
pub mod token_verifier;

pub use blob_store::{BlobBody, BlobError, BlobStore};
pub use clock::Clock;
pub use file_repository::{FileRepository, ListCursor, ListPage, Owner, RepoError};
pub use permission_checker::{PermissionChecker, PermissionError, PermissionVerdict};
pub use token_store::{TokenStore, TokenStoreError};
pub use token_verifier::{InvalidToken, TokenClaims, TokenVerifier};
