//! [`BlobStore`] in process memory, bounded by a byte capacity: for tests and demos.
//!
//! Bytes are reserved against the capacity as they arrive, so uploads in flight count and two
//! concurrent uploads cannot overshoot it together; an upload that would pass it fails with
//! [`BlobError::Full`] instead of growing the process without bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use stowage_application::ports::{BlobBody, BlobError, BlobListing, BlobStore, ListedBlob};
use stowage_application::stream::{BlobDigester, ByteStream, StoredBlob};
use stowage_domain::{BlobKey, ByteRange};
use time::OffsetDateTime;

mod resumable;

/// Largest chunk a download yields, so a large blob does not leave as one giant chunk.
const READ_CHUNK: usize = 64 * 1024;

/// Why an upload was refused: it would have taken the store past its capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the memory store is full: it holds at most {capacity} bytes")]
pub struct MemoryStoreFull {
    /// The store's capacity in bytes (`MEMORY_STORE_BYTES`).
    pub capacity: u64,
}

/// Keeps blobs in a map in process memory; clones share the same blobs.
#[derive(Clone, Debug)]
pub struct MemoryBlobStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    capacity: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    blobs: HashMap<BlobKey, Stored>,
    /// Bytes of resumable uploads not finished yet, under the key of the blob each will become.
    pending: HashMap<BlobKey, BytesMut>,
    /// Bytes of every stored blob, every pending resumable upload and every reservation of an
    /// upload in flight.
    used: u64,
}

#[derive(Debug)]
struct Stored {
    bytes: Bytes,
    modified: OffsetDateTime,
}

impl Shared {
    /// The state; a panic elsewhere cannot leave it half-updated (every update is one step).
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Bytes an upload in flight holds against the capacity, given back when it is dropped (a
/// failed body, a full store or an abandoned future) unless the upload completed.
struct Reservation<'a> {
    shared: &'a Shared,
    bytes: u64,
}

impl Reservation<'_> {
    /// Reserves `more` bytes, or fails when the store would pass its capacity.
    fn grow(&mut self, more: u64) -> Result<(), MemoryStoreFull> {
        let mut state = self.shared.state();
        match state.used.checked_add(more) {
            Some(used) if used <= self.shared.capacity => {
                state.used = used;
                self.bytes += more;
                Ok(())
            }
            _ => Err(MemoryStoreFull {
                capacity: self.shared.capacity,
            }),
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            let mut state = self.shared.state();
            state.used = state.used.saturating_sub(self.bytes);
        }
    }
}

impl MemoryBlobStore {
    /// An empty store that holds at most `capacity_bytes` bytes of blobs.
    pub fn new(capacity_bytes: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                capacity: capacity_bytes,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The most bytes the store holds.
    pub fn capacity(&self) -> u64 {
        self.shared.capacity
    }

    /// Bytes held now: stored blobs and reservations of uploads in flight.
    pub fn used_bytes(&self) -> u64 {
        self.shared.state().used
    }

    fn bytes_of(&self, key: &BlobKey) -> Result<Bytes, BlobError> {
        self.shared
            .state()
            .blobs
            .get(key)
            .map(|stored| stored.bytes.clone())
            .ok_or(BlobError::NotFound)
    }
}

/// `bytes` as a stream of chunks of at most [`READ_CHUNK`] bytes, sharing its buffer.
fn chunked(bytes: Bytes) -> ByteStream {
    let len = bytes.len();
    futures_util::stream::iter((0..len).step_by(READ_CHUNK))
        .map(move |start| Ok(bytes.slice(start..len.min(start + READ_CHUNK))))
        .boxed()
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        mut body: ByteStream,
        _length: Option<u64>,
    ) -> Result<StoredBlob, BlobError> {
        let mut reservation = Reservation {
            shared: &self.shared,
            bytes: 0,
        };
        let mut digest = BlobDigester::new();
        let mut buffer = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            reservation
                .grow(chunk.len() as u64)
                .map_err(|full| BlobError::Full(Box::new(full)))?;
            digest.update(&chunk);
            buffer.extend_from_slice(&chunk);
        }
        let stored = digest.finish();
        let mut state = self.shared.state();
        let previous = state.blobs.insert(
            *key,
            Stored {
                bytes: buffer.freeze(),
                modified: OffsetDateTime::now_utc(),
            },
        );
        if let Some(previous) = previous {
            state.used = state.used.saturating_sub(previous.bytes.len() as u64);
        }
        // The reserved bytes now belong to the stored blob.
        reservation.bytes = 0;
        Ok(stored)
    }

    async fn get(&self, key: &BlobKey, range: Option<ByteRange>) -> Result<BlobBody, BlobError> {
        let bytes = self.bytes_of(key)?;
        let size = bytes.len() as u64;
        let (start, len) = match range {
            Some(r) => {
                let start = r.start().min(size);
                (start, r.len().min(size - start))
            }
            None => (0, size),
        };
        // Both fit in usize: they are bounded by the length of an in-memory buffer.
        let (start, end) = (start as usize, (start + len) as usize);
        Ok(BlobBody {
            len,
            stream: chunked(bytes.slice(start..end)),
        })
    }

    async fn head(&self, key: &BlobKey) -> Result<u64, BlobError> {
        self.bytes_of(key).map(|bytes| bytes.len() as u64)
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        let mut state = self.shared.state();
        if let Some(removed) = state.blobs.remove(key) {
            state.used = state.used.saturating_sub(removed.bytes.len() as u64);
        }
        Ok(())
    }

    async fn delete_variants(&self, key: &BlobKey) -> Result<(), BlobError> {
        let source = key.source();
        let mut state = self.shared.state();
        let mut freed = 0u64;
        state.blobs.retain(|stored_key, stored| {
            let variant_of_source = stored_key.variant().is_some() && stored_key.source() == source;
            if variant_of_source {
                freed += stored.bytes.len() as u64;
            }
            !variant_of_source
        });
        state.used = state.used.saturating_sub(freed);
        Ok(())
    }

    async fn health(&self) -> Result<(), BlobError> {
        Ok(())
    }

    async fn list(&self) -> Result<BlobListing, BlobError> {
        let items: Vec<ListedBlob> = self
            .shared
            .state()
            .blobs
            .iter()
            .map(|(key, stored)| ListedBlob::Blob {
                key: *key,
                size: stored.bytes.len() as u64,
                modified: stored.modified,
            })
            .collect();
        Ok(futures_util::stream::iter(items.into_iter().map(Ok)).boxed())
    }

    async fn remove_stray(&self, _id: &str) -> Result<(), BlobError> {
        // An unfinished upload leaves nothing here, so there is never a stray to remove.
        Ok(())
    }
}
