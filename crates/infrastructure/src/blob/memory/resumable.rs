//! [`ResumableStore`] for [`MemoryBlobStore`]: an unfinished upload's bytes wait in the store's
//! state, counted against its capacity like the blobs, and become a blob when it is finished.
//!
//! The caller keeps the committed offset, so the store's progress stays empty: bytes past that
//! offset are from an append that was never committed and the next append cuts them off.

use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use futures_util::StreamExt;
use stowage_application::ByteStream;
use stowage_application::ports::{Appended, BlobError, ConcatPart, ResumableStore, StoreProgress};
use stowage_domain::BlobKey;
use time::OffsetDateTime;

use super::{MemoryBlobStore, MemoryStoreFull, Reservation, State, Stored};

/// Why the store does not hold what the caller's record of an upload says it does.
#[derive(Debug, thiserror::Error)]
enum PendingError {
    /// No such unfinished upload: never begun here, aborted, or lost with a restart.
    #[error("no unfinished upload under that key")]
    Missing,
    /// Fewer bytes than the committed offset or length.
    #[error("the upload holds {held} bytes, fewer than the {expected} committed")]
    Short { held: u64, expected: u64 },
    /// A part to concatenate is not the size the caller recorded for it.
    #[error("a part holds {held} bytes, not the {expected} recorded")]
    PartSize { held: u64, expected: u64 },
}

fn unavailable(e: PendingError) -> BlobError {
    BlobError::Unavailable(Box::new(e))
}

/// Both fit in usize: they are bounded by the length of an in-memory buffer that holds more.
fn as_index(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl State {
    /// Cuts the unfinished upload under `key` to its first `len` bytes, giving the rest back.
    fn cut_pending(&mut self, key: &BlobKey, len: u64) -> Result<(), PendingError> {
        let pending = self.pending.get_mut(key).ok_or(PendingError::Missing)?;
        let held = pending.len() as u64;
        if held < len {
            return Err(PendingError::Short {
                held,
                expected: len,
            });
        }
        pending.truncate(as_index(len));
        self.used = self.used.saturating_sub(held - len);
        Ok(())
    }

    /// Stores `bytes` (already counted in `used`) as the blob under `key`, freeing the one it replaces.
    fn store_blob(&mut self, key: &BlobKey, bytes: bytes::Bytes) {
        let previous = self.blobs.insert(
            *key,
            Stored {
                bytes,
                modified: OffsetDateTime::now_utc(),
            },
        );
        if let Some(previous) = previous {
            self.used = self.used.saturating_sub(previous.bytes.len() as u64);
        }
    }
}

#[async_trait]
impl ResumableStore for MemoryBlobStore {
    async fn begin(&self, key: &BlobKey) -> Result<StoreProgress, BlobError> {
        let mut state = self.shared.state();
        if let Some(previous) = state.pending.insert(*key, BytesMut::new()) {
            state.used = state.used.saturating_sub(previous.len() as u64);
        }
        Ok(StoreProgress::default())
    }

    async fn append(
        &self,
        key: &BlobKey,
        _progress: &StoreProgress,
        offset: u64,
        _length: Option<u64>,
        _total: Option<u64>,
        mut body: ByteStream,
    ) -> Result<Appended, BlobError> {
        self.shared
            .state()
            .cut_pending(key, offset)
            .map_err(unavailable)?;
        // This append's bytes are reserved as they arrive and join the upload only at the end,
        // so a full store or a dropped future keeps none of them.
        let mut reservation = Reservation {
            shared: &self.shared,
            bytes: 0,
        };
        let mut received = BytesMut::new();
        let mut interrupted = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    reservation
                        .grow(chunk.len() as u64)
                        .map_err(|full| BlobError::Full(Box::new(full)))?;
                    received.put(chunk);
                }
                Err(e) => {
                    interrupted = Some(BlobError::Body(e));
                    break;
                }
            }
        }
        let written = received.len() as u64;
        {
            let mut state = self.shared.state();
            // Aborted while the body streamed in, or cut by another append: the reservation is
            // given back once the lock is.
            if let Err(e) = state.cut_pending(key, offset) {
                drop(state);
                return Err(unavailable(e));
            }
            if let Some(pending) = state.pending.get_mut(key) {
                pending.put(received);
            }
            // The reserved bytes now belong to the pending upload.
            reservation.bytes = 0;
        }
        Ok(Appended {
            progress: StoreProgress::default(),
            written,
            interrupted,
        })
    }

    /// Every byte that arrived is kept.
    fn checkpoints(&self, _: &StoreProgress, _: u64, _: Option<u64>) -> Vec<u64> {
        Vec::new()
    }

    async fn release(&self, _key: &BlobKey, _previous: &StoreProgress, _committed: &StoreProgress) {
        // Every append rewrites the one buffer in place: no replaced tail outlives its commit.
    }

    async fn finish(
        &self,
        key: &BlobKey,
        _progress: &StoreProgress,
        length: u64,
    ) -> Result<(), BlobError> {
        let mut state = self.shared.state();
        if !state.pending.contains_key(key) {
            // A finish retried after the first one landed: the blob is already there.
            return match state.blobs.get(key) {
                Some(stored) if stored.bytes.len() as u64 == length => Ok(()),
                _ => Err(unavailable(PendingError::Missing)),
            };
        }
        // Anything past `length` was written by an append that was never committed.
        state.cut_pending(key, length).map_err(unavailable)?;
        let bytes = state
            .pending
            .remove(key)
            .map(BytesMut::freeze)
            .unwrap_or_default();
        state.store_blob(key, bytes);
        Ok(())
    }

    async fn concatenate(&self, key: &BlobKey, parts: &[ConcatPart]) -> Result<bool, BlobError> {
        let mut state = self.shared.state();
        let mut joined = BytesMut::new();
        for part in parts {
            let stored = state.blobs.get(&part.key).ok_or(BlobError::NotFound)?;
            let held = stored.bytes.len() as u64;
            if held != part.size {
                return Err(unavailable(PendingError::PartSize {
                    held,
                    expected: part.size,
                }));
            }
            joined.extend_from_slice(&stored.bytes);
        }
        let replaced = state.blobs.get(key).map_or(0, |b| b.bytes.len() as u64);
        let used = state.used.saturating_sub(replaced);
        match used.checked_add(joined.len() as u64) {
            Some(total) if total <= self.shared.capacity => {
                state.used += joined.len() as u64;
                state.store_blob(key, joined.freeze());
                Ok(true)
            }
            _ => Err(BlobError::Full(Box::new(MemoryStoreFull {
                capacity: self.shared.capacity,
            }))),
        }
    }

    async fn abort(&self, key: &BlobKey, _progress: &StoreProgress) -> Result<(), BlobError> {
        let mut state = self.shared.state();
        if let Some(removed) = state.pending.remove(key) {
            state.used = state.used.saturating_sub(removed.len() as u64);
        }
        Ok(())
    }

    fn stray_ids(&self, _key: &BlobKey, _progress: &StoreProgress) -> Vec<String> {
        // Pending uploads are never listed as leftovers: they vanish with the process.
        Vec::new()
    }
}
