//! Opaque tokens issued by the application backend and kept in a shared cache.

use async_trait::async_trait;

use crate::error::BoxError;
use crate::ports::token_verifier::TokenClaims;

/// Why the token store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    /// The store failed or timed out.
    #[error("token store unavailable")]
    Unavailable(#[source] BoxError),
}

/// Looks up opaque user tokens and public (form or embed) tokens.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The claims behind an opaque user token; `None` when the token is unknown or its value is unusable.
    ///
    /// # Errors
    /// [`TokenStoreError::Unavailable`] when the store fails.
    async fn user_token(&self, token: &str) -> Result<Option<TokenClaims>, TokenStoreError>;

    /// The account behind a public token; `None` when it is unknown or its value is unusable.
    ///
    /// # Errors
    /// [`TokenStoreError::Unavailable`] when the store fails.
    async fn public_token(&self, token: &str) -> Result<Option<TokenClaims>, TokenStoreError>;

    /// Checks that the store answers.
    ///
    /// # Errors
    /// [`TokenStoreError::Unavailable`] when it does not.
    async fn health(&self) -> Result<(), TokenStoreError>;
}
