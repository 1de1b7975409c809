//! Bodies of the key routes: prefix checks and the batch of signed URLs.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::{Validate, ValidationError};

use super::whole_seconds;

/// Checks a listing prefix: 1 to 512 bytes (a key's own bounds).
///
/// # Errors
/// A [`ValidationError`] saying so.
pub fn check_prefix(prefix: &str) -> Result<(), ValidationError> {
    if prefix.is_empty() || prefix.len() > stowage_domain::MAX_KEY_BYTES {
        return Err(
            ValidationError::new("prefix").with_message("prefix must be 1 to 512 bytes".into())
        );
    }
    Ok(())
}

/// `POST /files/signed-urls` body.
#[derive(Clone, Debug, Default, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct SignedUrlsRequest {
    /// 1 to 100 file ids; one that is not a lower-case UUID v4 gets a `FILE_NOT_FOUND` item.
    #[schema(min_items = 1, max_items = 100)]
    #[validate(length(min = 1, max = 100, message = "file_ids must hold 1 to 100 ids"))]
    pub file_ids: Vec<String>,
    /// Lifetime of every URL in seconds, 1 to 604800 (default 3600 when left out or null).
    #[serde(default, deserialize_with = "whole_seconds")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 604800)]
    #[validate(range(
        min = 1,
        max = 604800,
        message = "expires_in must be from 1 to 604800 seconds"
    ))]
    pub expires_in: Option<i64>,
}

/// `POST /files/signed-urls` answer: one item per requested id, in the request's order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SignedUrlsResponse {
    /// A signed URL, or why there is none, for each id.
    pub items: Vec<SignedUrlItem>,
}

/// One id's outcome.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SignedUrlItem {
    /// The URL.
    Signed {
        /// The id as requested.
        file_id: String,
        /// Absolute URL granting GET/HEAD of the file until `expires_at`.
        url: String,
        /// Expiry, RFC 3339 UTC.
        expires_at: String,
    },
    /// No URL for this id.
    Failed {
        /// The id as requested.
        file_id: String,
        /// What the single route would have answered for it.
        error: SignedUrlItemError,
    },
}

impl std::fmt::Debug for SignedUrlItem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignedUrlItem::Signed {
                file_id,
                expires_at,
                ..
            } => f
                .debug_struct("Signed")
                .field("file_id", file_id)
                .field("url", &"[REDACTED]")
                .field("expires_at", expires_at)
                .finish(),
            SignedUrlItem::Failed { file_id, error } => f
                .debug_struct("Failed")
                .field("file_id", file_id)
                .field("error", error)
                .finish(),
        }
    }
}

/// Why one id got no URL: the contract code and message of the error the single route answers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct SignedUrlItemError {
    /// Contract code, e.g. `FILE_NOT_FOUND`.
    pub code: String,
    /// Human text.
    pub message: String,
}
