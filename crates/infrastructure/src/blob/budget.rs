//! The memory all uploads together may hold in part buffers (`UPLOAD_BUFFER_BYTES`), an S3 part
//! or a Cloudinary chunk: a buffer is charged for each piece as it is copied in (or before it is
//! read back from the store), and the charge is given back once the part is sent. A slow client
//! holds only what it has sent, and a small upload only its own size. Outside the budget: the one
//! piece of the body an upload has read past a full buffer (to learn whether the body ended), at
//! most one network read per upload.

use std::sync::Arc;
use std::time::Duration;

use stowage_application::ports::BlobError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Seconds a client refused for want of buffer memory is told to wait: parts go out in well
/// under that on a working store.
const RETRY_AFTER_SECS: u64 = 1;

/// The budget's unit: permits are KiB, so that a 64 MiB budget is 65 536 permits.
const UNIT: usize = 1024;

/// Part buffers for every upload of one store.
#[derive(Clone, Debug)]
pub(crate) struct PartBudget {
    units: Arc<Semaphore>,
    wait: Duration,
}

impl PartBudget {
    /// `bytes` of buffers (never less than one part of `part_size`, so that any upload can go
    /// on), a charge waited for at most `wait`.
    pub(crate) fn new(bytes: u64, part_size: usize, wait: Duration) -> Self {
        let units = usize::try_from(bytes / UNIT as u64)
            .unwrap_or(usize::MAX)
            .max(part_size.div_ceil(UNIT))
            .min(Semaphore::MAX_PERMITS);
        Self {
            units: Arc::new(Semaphore::new(units)),
            wait,
        }
    }

    /// Charges `share` for `bytes` more (at most one part's worth), waiting while other uploads
    /// hold the budget.
    ///
    /// # Errors
    /// [`BlobError::Busy`] when the budget stays full for the wait: the upload is refused, and
    /// the client may retry.
    pub(crate) async fn charge(
        &self,
        share: &mut PartShare,
        bytes: usize,
    ) -> Result<(), BlobError> {
        // Whole units for the share's bytes so far, so that small chunks do not add up to more
        // than the part they fill.
        let held = share
            .permit
            .as_ref()
            .map_or(0, OwnedSemaphorePermit::num_permits);
        let needed = (share.bytes + bytes).div_ceil(UNIT).saturating_sub(held);
        let units = u32::try_from(needed).unwrap_or(u32::MAX);
        if units == 0 {
            share.bytes += bytes;
            return Ok(());
        }
        let permit = match Arc::clone(&self.units).try_acquire_many_owned(units) {
            Ok(permit) => permit,
            Err(_) => {
                let acquire = Arc::clone(&self.units).acquire_many_owned(units);
                match tokio::time::timeout(self.wait, acquire).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(closed)) => return Err(BlobError::Unavailable(Box::new(closed))),
                    Err(_elapsed) => {
                        tracing::warn!(
                            "every upload buffer of UPLOAD_BUFFER_BYTES is in use; an upload was refused"
                        );
                        return Err(BlobError::Busy {
                            retry_after_secs: RETRY_AFTER_SECS,
                        });
                    }
                }
            }
        };
        metrics::gauge!("upload_buffer_bytes").increment(f64::from(units) * UNIT as f64);
        share.bytes += bytes;
        match &mut share.permit {
            Some(held) => held.merge(permit),
            None => share.permit = Some(permit),
        }
        Ok(())
    }

    /// Bytes of the budget not charged to an upload.
    #[cfg(test)]
    pub(crate) fn free(&self) -> usize {
        self.units.available_permits() * UNIT
    }
}

/// What one part's buffer is charged, held as long as its bytes are.
#[derive(Debug, Default)]
pub(crate) struct PartShare {
    permit: Option<OwnedSemaphorePermit>,
    /// Bytes charged so far; the permit holds them rounded up to whole units.
    bytes: usize,
}

impl Drop for PartShare {
    fn drop(&mut self) {
        if let Some(permit) = &self.permit {
            metrics::gauge!("upload_buffer_bytes")
                .decrement(permit.num_permits() as f64 * UNIT as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PART: usize = 5 * 1024 * 1024;

    #[test]
    fn the_budget_holds_at_least_one_part() {
        let wait = Duration::from_secs(1);
        assert_eq!(PartBudget::new(64 << 20, PART, wait).free(), 64 << 20);
        assert_eq!(PartBudget::new(1, PART, wait).free(), PART);
    }

    #[tokio::test]
    async fn charges_grow_with_the_bytes_and_come_back_when_the_share_is_dropped() {
        let budget = PartBudget::new(2 * PART as u64, PART, Duration::from_millis(50));
        let mut small = PartShare::default();
        budget.charge(&mut small, 200 * 1024).await.unwrap();
        budget.charge(&mut small, 1).await.unwrap();
        budget.charge(&mut small, 7).await.unwrap();
        // A small upload is charged its size (in whole KiB), not a part.
        assert_eq!(budget.free(), 2 * PART - 201 * 1024);
        // Chunks of any size add up to no more than the part they fill.
        let mut chunked = PartShare::default();
        for _ in 0..PART / 1000 {
            budget.charge(&mut chunked, 1000).await.unwrap();
        }
        let chunked_bytes = PART / 1000 * 1000;
        assert_eq!(
            budget.free(),
            2 * PART - 201 * 1024 - chunked_bytes.div_ceil(1024) * 1024
        );
        drop(chunked);
        let mut big = PartShare::default();
        budget.charge(&mut big, PART).await.unwrap();
        let mut refused = PartShare::default();
        let busy = budget.charge(&mut refused, PART).await;
        assert!(matches!(busy, Err(BlobError::Busy { .. })), "{busy:?}");
        drop(small);
        budget.charge(&mut refused, PART - 1024).await.unwrap();
        drop((big, refused));
        assert_eq!(budget.free(), 2 * PART);
    }
}
