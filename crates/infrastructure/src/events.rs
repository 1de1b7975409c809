//! The audit events' wire form and where they are published.

pub mod envelope;
pub mod redis_stream;

pub use envelope::envelope;
pub use redis_stream::{RedisStreamPublisher, RedisStreamSettings};
