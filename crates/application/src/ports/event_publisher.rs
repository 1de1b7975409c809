//! Where events go that a request never waits on for long: the audit stream.

use async_trait::async_trait;

use crate::events::FileEvent;

/// Publishes events best-effort: a sink that is down drops (and counts) them, and the request
/// goes on. Webhooks, which must not lose events, go through the repository's outbox instead.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes `event`; never fails, and returns within the sink's own time bound.
    async fn publish(&self, event: &FileEvent);
}

/// Publishes nothing: events are off.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvents;

#[async_trait]
impl EventPublisher for NoEvents {
    async fn publish(&self, _event: &FileEvent) {}
}
