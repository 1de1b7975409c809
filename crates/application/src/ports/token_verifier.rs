//! Self-contained signed tokens (JWT).

use stowage_domain::{AccountId, UserId};

/// Who a valid token speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    /// The user, or `None` for account-level callers.
    pub user_id: Option<UserId>,
    /// The account.
    pub account_id: AccountId,
}

/// A token that is not valid: bad shape, bad signature, refused algorithm, expired or missing claims.
#[derive(Debug, thiserror::Error)]
#[error("invalid token: {reason}")]
pub struct InvalidToken {
    /// Why, for debug logs (never contains the token).
    pub reason: &'static str,
}

/// Verifies signed tokens offline.
#[cfg_attr(test, mockall::automock)]
pub trait TokenVerifier: Send + Sync {
    /// The claims of `token` if it is valid now.
    ///
    /// # Errors
    /// [`InvalidToken`] when it is not.
    fn verify(&self, token: &str) -> Result<TokenClaims, InvalidToken>;
}
