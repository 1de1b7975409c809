//! The real clock.

use stowage_application::ports::Clock;
use time::OffsetDateTime;

/// [`Clock`] reading the system time.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
