//! [`RateLimiter`] counting fixed windows in Redis, atomically, shared by every replica.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use stowage_application::ports::{RateClass, RateDecision, RateLimit, RateLimiter};

use super::memory::InMemoryRateLimiter;
use crate::redis::RedisConnection;

/// INCR and the window's expiry in one atomic step; returns the count and the window's remaining ms.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
";

/// Counts in Redis under `{prefix}stowage:ratelimit:{class}:{client}`; when Redis fails it counts
/// in memory instead (uploads keep working) and says so in the log once per outage.
#[derive(Debug)]
pub struct RedisRateLimiter {
    redis: RedisConnection,
    prefix: String,
    script: redis::Script,
    fallback: InMemoryRateLimiter,
    degraded: AtomicBool,
}

impl RedisRateLimiter {
    /// A limiter over `redis` with keys under `prefix`.
    pub fn new(redis: RedisConnection, prefix: impl Into<String>) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
            script: redis::Script::new(HIT),
            fallback: InMemoryRateLimiter::new(),
            degraded: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(&self, client: &str, class: RateClass, limit: RateLimit) -> RateDecision {
        let key = format!(
            "{}stowage:ratelimit:{}:{client}",
            self.prefix,
            class.as_str()
        );
        let window_ms = u64::try_from(limit.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        match self
            .redis
            .eval::<(u64, i64)>(&self.script, &[&key], &[window_ms])
            .await
        {
            Ok((count, ttl_ms)) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limiting is back on Redis");
                }
                if count > u64::from(limit.requests) {
                    RateDecision::Limited {
                        retry_after: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0)),
                    }
                } else {
                    RateDecision::Allowed
                }
            }
            Err(e) => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "rate limiting falls back to in-memory counters while Redis fails");
                }
                self.fallback.hit(client, class, limit).await
            }
        }
    }
}
