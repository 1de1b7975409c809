//! [`RateLimiter`] counting fixed windows in this process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use stowage_application::ports::{RateClass, RateDecision, RateLimit, RateLimiter};

/// Past this many clients, expired windows are swept (at most once a second).
const SWEEP_THRESHOLD: usize = 10_000;

#[derive(Debug)]
struct Window {
    start: Instant,
    count: u32,
    length: Duration,
}

#[derive(Debug, Default)]
struct Windows {
    by_client: HashMap<(RateClass, String), Window>,
    last_sweep: Option<Instant>,
}

/// Counts requests per client and class in fixed windows, in memory.
#[derive(Debug, Default)]
pub struct InMemoryRateLimiter {
    windows: Mutex<Windows>,
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
        let due = windows
            .last_sweep
            .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(1));
        if windows.by_client.len() > SWEEP_THRESHOLD && due {
            windows
                .by_client
                .retain(|_, w| now.duration_since(w.start) < w.length);
            windows.last_sweep = Some(now);
        }
        let entry = windows
            .by_client
            .entry((class, client.to_owned()))
            .or_insert(Window {
                start: now,
                count: 0,
                length: limit.window,
            });
        if now.duration_since(entry.start) >= limit.window {
            *entry = Window {
                start: now,
                count: 0,
                length: limit.window,
            };
        }
        entry.count = entry.count.saturating_add(1);
        if entry.count > limit.requests {
            RateDecision::Limited {
                retry_after: limit.window.saturating_sub(now.duration_since(entry.start)),
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

    /// A request of `client` in `class` at `at`, under [`LIMIT`].
    fn hit(
        limiter: &InMemoryRateLimiter,
        at: Instant,
        client: &str,
        class: RateClass,
    ) -> RateDecision {
        limiter.hit_at(at, client, class, LIMIT)
    }

    /// Asserts that a request of `client` in `class` at `at` is allowed.
    fn assert_allowed(limiter: &InMemoryRateLimiter, at: Instant, client: &str, class: RateClass) {
        assert_eq!(hit(limiter, at, client, class), RateDecision::Allowed);
    }

    #[test]
    fn third_request_in_a_window_is_limited_until_it_reopens() {
        let limiter = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        assert_allowed(&limiter, t0, "a", RateClass::Upload);
        assert_allowed(&limiter, t0, "a", RateClass::Upload);
        assert_eq!(
            hit(
                &limiter,
                t0 + Duration::from_secs(10),
                "a",
                RateClass::Upload
            ),
            RateDecision::Limited {
                retry_after: Duration::from_secs(50)
            }
        );
        assert_allowed(
            &limiter,
            t0 + Duration::from_secs(60),
            "a",
            RateClass::Upload,
        );
    }

    #[test]
    fn expired_windows_are_swept_once_there_are_many_clients() {
        let limiter = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        for i in 0..=SWEEP_THRESHOLD {
            hit(&limiter, t0, &format!("c{i}"), RateClass::Download);
        }
        hit(
            &limiter,
            t0 + Duration::from_secs(61),
            "late",
            RateClass::Download,
        );
        let count = limiter.windows.lock().unwrap().by_client.len();
        assert_eq!(count, 1, "only the new client's window is left");
    }

    #[test]
    fn clients_and_classes_are_counted_apart() {
        let limiter = InMemoryRateLimiter::new();
        let t0 = Instant::now();
        for _ in 0..2 {
            hit(&limiter, t0, "a", RateClass::Upload);
        }
        assert_allowed(&limiter, t0, "b", RateClass::Upload);
        assert_allowed(&limiter, t0, "a", RateClass::Download);
    }
}
