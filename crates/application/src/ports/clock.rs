//! Time, from a port so that expiry and ordering can be tested.

use time::OffsetDateTime;

/// The current time.
#[cfg_attr(test, mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}
