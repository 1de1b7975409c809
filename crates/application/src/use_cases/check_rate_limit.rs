//! Rate limits per client and route class.

use std::sync::Arc;

use crate::error::Error;
use crate::ports::{RateClass, RateDecision, RateLimit, RateLimiter};

/// Applies the configured limit of each route class.
#[derive(Clone)]
pub struct CheckRateLimit {
    limiter: Arc<dyn RateLimiter>,
    upload: RateLimit,
    download: RateLimit,
}

impl CheckRateLimit {
    /// Limits uploads to `upload` and every other file route to `download`, per client.
    pub fn new(limiter: Arc<dyn RateLimiter>, upload: RateLimit, download: RateLimit) -> Self {
        Self {
            limiter,
            upload,
            download,
        }
    }

    /// Counts one request of `client` in `class`.
    ///
    /// # Errors
    /// `RateLimited` with the time until the window reopens.
    pub async fn execute(&self, client: &str, class: RateClass) -> Result<(), Error> {
        let limit = match class {
            RateClass::Upload => self.upload,
            RateClass::Download => self.download,
        };
        match self.limiter.hit(client, class, limit).await {
            RateDecision::Allowed => Ok(()),
            RateDecision::Limited { retry_after } => Err(Error::RateLimited { retry_after }),
        }
    }
}
