//! The memory all uploads together may hold in part buffers (`UPLOAD_BUFFER_BYTES`): a part is
//! buffered only with a share of it, given back once the part is sent.

use std::sync::Arc;
use std::time::Duration;

use stowage_application::ports::BlobError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Seconds a client refused for want of buffer memory is told to wait: parts go out in well
/// under that on a working store.
const RETRY_AFTER_SECS: u64 = 1;

/// Part buffers for every upload of one store, counted in whole parts.
#[derive(Clone, Debug)]
pub(super) struct PartBudget {
    parts: Arc<Semaphore>,
    wait: Duration,
}

impl PartBudget {
    /// As many parts of `part_size` as `bytes` holds (at least one, so that uploads go on), each
    /// waited for at most `wait`.
    pub(super) fn new(bytes: u64, part_size: usize, wait: Duration) -> Self {
        let parts = usize::try_from(bytes / part_size.max(1) as u64)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        Self {
            parts: Arc::new(Semaphore::new(parts)),
            wait,
        }
    }

    /// One part's share, waited for while other uploads hold the budget.
    ///
    /// # Errors
    /// [`BlobError::Busy`] when none came free in time: the upload is refused before any of its
    /// part is read, and the client may retry.
    pub(super) async fn part(&self) -> Result<PartShare, BlobError> {
        if let Ok(permit) = Arc::clone(&self.parts).try_acquire_owned() {
            return Ok(PartShare { _permit: permit });
        }
        match tokio::time::timeout(self.wait, Arc::clone(&self.parts).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(PartShare { _permit: permit }),
            Ok(Err(closed)) => Err(BlobError::Unavailable(Box::new(closed))),
            Err(_elapsed) => {
                tracing::warn!(
                    "every part buffer of UPLOAD_BUFFER_BYTES is in use; an upload was refused"
                );
                Err(BlobError::Busy {
                    retry_after_secs: RETRY_AFTER_SECS,
                })
            }
        }
    }

    /// Parts of the budget not held by an upload.
    #[cfg(test)]
    pub(super) fn free(&self) -> usize {
        self.parts.available_permits()
    }
}

/// A part's share of the budget, held as long as its bytes are.
#[derive(Debug)]
pub(super) struct PartShare {
    _permit: OwnedSemaphorePermit,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PART: usize = 5 * 1024 * 1024;

    #[test]
    fn the_budget_is_counted_in_whole_parts_and_holds_at_least_one() {
        let wait = Duration::from_secs(1);
        assert_eq!(PartBudget::new(64 * 1024 * 1024, PART, wait).free(), 12);
        assert_eq!(PartBudget::new(PART as u64, PART, wait).free(), 1);
        assert_eq!(PartBudget::new(1, PART, wait).free(), 1);
    }

    #[tokio::test]
    async fn a_share_comes_back_when_its_part_is_dropped() {
        let budget = PartBudget::new(2 * PART as u64, PART, Duration::from_millis(50));
        let first = budget.part().await.unwrap();
        let second = budget.part().await.unwrap();
        assert_eq!(budget.free(), 0);
        let refused = budget.part().await;
        assert!(
            matches!(refused, Err(BlobError::Busy { .. })),
            "{refused:?}"
        );
        drop(first);
        let third = budget.part().await.unwrap();
        drop((second, third));
        assert_eq!(budget.free(), 2);
    }
}
