//! Route handlers.

pub mod direct;
pub mod docs;
pub mod download;
pub mod files;
pub mod health;
pub mod keys;
pub mod metrics;
pub mod tus;
pub mod upload_urls;
mod variants;

use crate::error::ApiError;

/// Any path no route serves.
pub async fn not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// A known path with a method it does not serve.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
