//! Self-contained signed tokens (JWT).

use stowage_domain::{AccountId, UserId};

/// Who a valid token speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    /// The user, or `None` for account-level callers.
    pub user_id: Option<UserId>,
    /// The account.
    pub account_id: AccountId,
    /// What the token itself says it is, whatever header or cookie it arrived in.
    pub kind: TokenKind,
}

/// The kind of a token, read from the token (its claims), never from where it was presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A user's token: a user JWT or an opaque Django user token (and the account-level tokens).
    User,
    /// A workflow guest's JWT (`token_type` "guest", or a `task_id` claim).
    Guest,
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
