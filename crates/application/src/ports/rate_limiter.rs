//! Request counting per client and route class.

use std::time::Duration;

use async_trait::async_trait;

/// The route classes with their own limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateClass {
    /// `POST /files`.
    Upload,
    /// Every other `/files` route.
    Download,
}

impl RateClass {
    /// A stable lower-case name, for keys and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RateClass::Upload => "upload",
            RateClass::Download => "download",
        }
    }
}

/// `requests` per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in one window.
    pub requests: u32,
    /// The window.
    pub window: Duration,
}

/// Whether one more request may pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    /// It may.
    Allowed,
    /// It may not; the window reopens after this long.
    Limited {
        /// Time until the window reopens.
        retry_after: Duration,
    },
}

/// Counts requests; never fails (an adapter whose backend fails degrades to counting locally).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one request of `client` in `class` against `limit`.
    async fn hit(&self, client: &str, class: RateClass, limit: RateLimit) -> RateDecision;
}
