//! The application's error: one variant per meaning a caller must react to.

use std::time::Duration;

use crate::ports::blob_store::BlobError;
use crate::ports::file_repository::RepoError;
use crate::ports::permission_checker::PermissionError;
use crate::ports::token_store::TokenStoreError;
use crate::ports::upload_grant_store::GrantStoreError;
use crate::stream::BodyError;

/// A boxed error from a backend, kept as the source of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, in terms the presentation layer maps to the contract's codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such file, or it was deleted.
    #[error("file not found")]
    NotFound,
    /// The key belongs to a file the caller may not replace.
    #[error("the key belongs to another file")]
    KeyExists,
    /// The caller is known but may not do this.
    #[error("access to the file is denied")]
    AccessDenied,
    /// A signed URL was tampered with or has expired.
    #[error("the signature is invalid or has expired")]
    InvalidSignature,
    /// No valid credential was presented.
    #[error("authentication required")]
    Unauthenticated,
    /// The request is malformed; the text says how, for the client.
    #[error("{0}")]
    Validation(String),
    /// The upload is larger than the limit (in bytes).
    #[error("file exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: u64,
    },
    /// An upload policy refuses the file's type.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// An image over the pixel or byte limits of a policy or a variant; the text says which.
    #[error("{0}")]
    ImageTooLarge(String),
    /// A file that should be an image and is not a well-formed one; the text says how.
    #[error("{0}")]
    UnsupportedImage(String),
    /// The requested range starts at or past the end of the file.
    #[error("range not satisfiable")]
    RangeNotSatisfiable {
        /// The file's size, for `Content-Range: bytes */{size}`.
        size: u64,
    },
    /// Too many requests; try again after this long.
    #[error("too many requests")]
    RateLimited {
        /// How long the client should wait.
        retry_after: Duration,
    },
    /// The client went away before the request body was complete.
    #[error("the client aborted the request")]
    ClientAborted,
    /// The client stopped sending the request body before it was complete.
    #[error("the client sent nothing for too long")]
    RequestTimeout,
    /// The blob store failed or timed out.
    #[error("storage is unavailable")]
    StorageUnavailable(#[source] BoxError),
    /// The blob store has no room for the upload.
    #[error("storage is full")]
    StorageFull(#[source] BoxError),
    /// The database failed or timed out.
    #[error("the database is unavailable")]
    DatabaseUnavailable(#[source] BoxError),
    /// The credential store (Redis) failed or timed out.
    #[error("the authentication backend is unavailable")]
    AuthBackendUnavailable(#[source] BoxError),
    /// The permission service failed, timed out or answered something unexpected.
    #[error("the permission service is unavailable")]
    PermissionServiceUnavailable(#[source] BoxError),
    /// The configured storage backend cannot do this (direct uploads off S3).
    #[error("{0}")]
    NotSupported(String),
    /// A direct upload's stored object is missing or not what was announced; the text says how.
    #[error("{0}")]
    DirectUploadInvalid(String),
    /// No such direct upload, or it belongs to someone else.
    #[error("upload not found")]
    UploadNotFound,
    /// The direct upload was completed already (or is being completed).
    #[error("the upload was already completed")]
    UploadCompleted,
    /// Another request is writing the same resumable upload.
    #[error("another request is writing this upload")]
    UploadLocked,
    /// A resumable upload's bytes were sent for another offset than it stands at.
    #[error("the upload is at offset {offset}")]
    UploadOffsetMismatch {
        /// The offset the upload stands at.
        offset: u64,
    },
    /// A resumable upload went untouched past its expiry.
    #[error("the upload has expired")]
    UploadExpired,
    /// The bytes of a request do not match the checksum it announced; they were not kept.
    #[error("the bytes do not match the checksum announced")]
    ChecksumMismatch,
    /// Every slot for CPU-bound work (making image variants) stays taken; try again later.
    #[error("too busy to make the variant now")]
    ServiceBusy {
        /// Seconds the client should wait.
        retry_after_secs: u64,
    },
    /// A bug.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl From<RepoError> for Error {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::NotFound => Error::NotFound,
            RepoError::KeyTaken => Error::KeyExists,
            RepoError::Unavailable(source) | RepoError::Unconfirmed(source) => {
                Error::DatabaseUnavailable(source)
            }
        }
    }
}

impl From<BodyError> for Error {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge { limit } => Error::TooLarge { limit },
            BodyError::ClientAborted(_) => Error::ClientAborted,
            BodyError::TimedOut => Error::RequestTimeout,
            BodyError::Malformed(reason) => Error::Validation(reason),
            BodyError::ImageTooLarge(reason) => Error::ImageTooLarge(reason),
            BodyError::UnsupportedImage(reason) => Error::UnsupportedImage(reason),
            BodyError::Backend(source) => Error::StorageUnavailable(source),
        }
    }
}

impl From<BlobError> for Error {
    fn from(e: BlobError) -> Self {
        match e {
            BlobError::NotFound => Error::NotFound,
            BlobError::Body(body) => body.into(),
            BlobError::Unavailable(source) => Error::StorageUnavailable(source),
            BlobError::Full(source) => Error::StorageFull(source),
            BlobError::Busy { retry_after_secs } => Error::ServiceBusy { retry_after_secs },
        }
    }
}

impl From<PermissionError> for Error {
    fn from(e: PermissionError) -> Self {
        match e {
            PermissionError::Unavailable(source) => Error::PermissionServiceUnavailable(source),
        }
    }
}

impl From<GrantStoreError> for Error {
    fn from(e: GrantStoreError) -> Self {
        match e {
            GrantStoreError::Unavailable(source) => Error::DatabaseUnavailable(source),
        }
    }
}

impl From<TokenStoreError> for Error {
    fn from(e: TokenStoreError) -> Self {
        match e {
            TokenStoreError::Unavailable(source) => Error::AuthBackendUnavailable(source),
        }
    }
}
