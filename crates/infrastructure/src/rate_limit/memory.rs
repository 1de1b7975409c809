//! [`RateLimiter`] counting fixed windows in this process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use stowage_application::ports::{RateClass, RateDecision, RateLimit, RateLimiter};

/// Windows older than this many entries trigger a sweep of expired ones.
const SWEEP_THRESHOLD: usize = 10_000;

/// Counts requests per client and class in fixed windows, in memory.
#[derive(Debug, Default)]
pub struct InMemoryRateLimiter {
    windows: Mutex<HashMap<(RateClass, String), (Instant, u32)>>,
}

impl InMemoryRateLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request at `now` (separate from the clock for tests).
    pub fn hit_at(
        &self,
        now: Instant,
        client: &str,
        class: RateClass,
        limit: RateLimit,
    ) -> RateDecision {
        let Ok(mut windows) = self.windows.lock() else {
            // A poisoned lock only means another request panicked mid-update; fail open for this one.
            return RateDecision::Allowed;
        };
        if windows.len() > SWEEP_THRESHOLD {
            windows.retain(|_, (start, _)| {
                now.duration_since(*start) < limit.window.max(Duration::from_secs(3600))
            });
        }
        let entry = windows
            .entry((class, client.to_owned()))
            .or_insert((now, 0));
        if now.duration_since(entry.0) >= limit.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if entry.1 > limit.requests {
            RateDecision::Limited {
                retry_after: limit.window.saturating_sub(now.duration_since(entry.0)),
            }
        } else {
            RateDecision::Allowed
        }
    }
}

#[async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn hit(&self, client: &str, class: RateClass, limit: RateLimit) -> RateDecision {
        self.hit_at(Instant::now(), client, class, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        requests: 2,
        window: Duration::from_secs(60),
    };

    #[test]
    fn third_request_in_a_window_is_limited_until_it_reopens() {
        let limiter = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        assert_eq!(
            limiter.hit_at(t0, "a", RateClass::Upload, LIMIT),
            RateDecision::Allowed
        );
        assert_eq!(
            limiter.hit_at(t0, "a", RateClass::Upload, LIMIT),
            RateDecision::Allowed
        );
        assert_eq!(
            limiter.hit_at(t0 + Duration::from_secs(10), "a", RateClass::Upload, LIMIT),
            RateDecision::Limited {
                retry_after: Duration::from_secs(50)
            }
        );
        assert_eq!(
            limiter.hit_at(t0 + Duration::from_secs(60), "a", RateClass::Upload, LIMIT),
            RateDecision::Allowed
        );
    }

    #[test]
    fn clients_and_classes_are_counted_apart() {
        let limiter = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        for _ in 0..2 {
            limiter.hit_at(t0, "a", RateClass::Upload, LIMIT);
        }
        assert_eq!(
            limiter.hit_at(t0, "b", RateClass::Upload, LIMIT),
            RateDecision::Allowed
        );
        assert_eq!(
            limiter.hit_at(t0, "a", RateClass::Download, LIMIT),
            RateDecision::Allowed
        );
    }
}
