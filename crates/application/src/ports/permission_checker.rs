//! The outside authority on who may read a file.

use async_trait::async_trait;
use stowage_domain::{FileId, Principal};

use crate::error::BoxError;

/// What the permission service answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PermissionVerdict {
    /// Read allowed.
    Allowed,
    /// Read refused.
    Denied,
}

/// Why the permission service could not answer.
#[derive(Debug, thiserror::Error)]
pub enum PermissionError {
    /// It timed out, could not be reached, or answered with an unexpected status.
    #[error("permission service unavailable")]
    Unavailable(#[source] BoxError),
}

/// Asks the application backend whether `principal` may read a file.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait PermissionChecker: Send + Sync {
    /// Asks about `file_id`, forwarding `principal`'s credential.
    ///
    /// # Errors
    /// [`PermissionError::Unavailable`] for a timeout, a connection error or an unexpected answer
    /// (the caller fails closed).
    async fn check(
        &self,
        principal: &Principal,
        file_id: FileId,
    ) -> Result<PermissionVerdict, PermissionError>;
}
