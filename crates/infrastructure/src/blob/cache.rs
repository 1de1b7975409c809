//! A bounded in-memory cache of small hot blobs in front of any [`BlobStore`].
//!
//! A blob never changes once its file is recorded (a file id always names the same bytes), so a
//! cached copy is never stale; the download use case reaches the store only after the access
//! decision, so the cache never serves anyone the database and access rules would refuse.
//! Deleting a file evicts it, and so does a put (an upload policy may write a blob again before
//! its file is recorded). Image variants are cached like any blob, and removing a file's variants
//! evicts them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use stowage_application::ports::{BlobBody, BlobError, BlobListing, BlobStore};
use stowage_application::stream::{ByteStream, StoredBlob};
use stowage_domain::{BlobKey, ByteRange};

/// How much the cache may hold.
#[derive(Clone, Copy, Debug)]
pub struct BlobCacheSettings {
    /// Total bytes kept.
    pub capacity_bytes: u64,
    /// Largest blob kept.
    pub max_item_bytes: u64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<BlobKey, Bytes>,
    order: VecDeque<BlobKey>,
    bytes: u64,
}

/// [`BlobStore`] serving small blobs from memory, first in first out within a byte budget.
pub struct CachedBlobStore {
    inner: Arc<dyn BlobStore>,
    settings: BlobCacheSettings,
    entries: Mutex<Entries>,
}

impl CachedBlobStore {
    /// A cache over `inner`.
    pub fn new(inner: Arc<dyn BlobStore>, settings: BlobCacheSettings) -> Self {
        Self {
            inner,
            settings,
            entries: Mutex::new(Entries::default()),
        }
    }

    fn lookup(&self, key: &BlobKey) -> Option<Bytes> {
        self.entries.lock().ok()?.map.get(key).cloned()
    }

    fn insert(&self, key: BlobKey, bytes: Bytes) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.map.contains_key(&key) {
            return;
        }
        entries.bytes += bytes.len() as u64;
        entries.map.insert(key, bytes);
        entries.order.push_back(key);
        while entries.bytes > self.settings.capacity_bytes {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            if let Some(evicted) = entries.map.remove(&oldest) {
                entries.bytes -= evicted.len() as u64;
            }
        }
    }

    fn evict(&self, key: &BlobKey) {
        if let Ok(mut entries) = self.entries.lock()
            && let Some(evicted) = entries.map.remove(key)
        {
            entries.bytes -= evicted.len() as u64;
            entries.order.retain(|k| k != key);
        }
    }

    /// Evicts every cached variant of `source`'s file.
    fn evict_variants(&self, source: BlobKey) {
        let is_variant = |k: &BlobKey| k.variant().is_some() && k.source() == source;
        if let Ok(mut entries) = self.entries.lock() {
            let Entries { map, order, bytes } = &mut *entries;
            map.retain(|k, cached| {
                if is_variant(k) {
                    *bytes -= cached.len() as u64;
                    false
                } else {
                    true
                }
            });
            order.retain(|k| !is_variant(k));
        }
    }

    fn serve(bytes: &Bytes, range: Option<ByteRange>) -> BlobBody {
        let slice = match range {
            Some(r) => {
                let start = usize::try_from(r.start())
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = usize::try_from(r.end())
                    .unwrap_or(usize::MAX)
                    .saturating_add(1)
                    .min(bytes.len());
                bytes.slice(start..end.max(start))
            }
            None => bytes.clone(),
        };
        BlobBody {
            len: slice.len() as u64,
            stream: futures_util::stream::once(async move { Ok(slice) }).boxed(),
        }
    }
}

#[async_trait]
impl BlobStore for CachedBlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        body: ByteStream,
        length: Option<u64>,
    ) -> Result<StoredBlob, BlobError> {
        // A put may replace the blob (an upload policy writes a stored image again without its
        // metadata), which only this process can have read yet: its record is not stored.
        self.evict(key);
        let stored = self.inner.put(key, body, length).await;
        self.evict(key);
        stored
    }

    async fn head(&self, key: &BlobKey) -> Result<u64, BlobError> {
        match self.lookup(key) {
            Some(bytes) => Ok(bytes.len() as u64),
            None => self.inner.head(key).await,
        }
    }

    async fn get(&self, key: &BlobKey, range: Option<ByteRange>) -> Result<BlobBody, BlobError> {
        if let Some(bytes) = self.lookup(key) {
            metrics::counter!("blob_cache_total", "result" => "hit").increment(1);
            return Ok(Self::serve(&bytes, range));
        }
        metrics::counter!("blob_cache_total", "result" => "miss").increment(1);
        if range.is_some() {
            return self.inner.get(key, range).await;
        }
        let body = self.inner.get(key, None).await?;
        if body.len > self.settings.max_item_bytes {
            return Ok(body);
        }
        let len = body.len;
        let mut stream = body.stream;
        let mut buffer = BytesMut::with_capacity(usize::try_from(len).unwrap_or(0));
        while let Some(chunk) = stream.next().await {
            buffer.extend_from_slice(&chunk.map_err(BlobError::Body)?);
            if buffer.len() as u64 > self.settings.max_item_bytes {
                // The store announced a smaller length than it sends: stop collecting and
                // stream the rest through instead of buffering it.
                let head = futures_util::stream::once(async move { Ok(buffer.freeze()) });
                return Ok(BlobBody {
                    len,
                    stream: head.chain(stream).boxed(),
                });
            }
        }
        let bytes = buffer.freeze();
        self.insert(*key, bytes.clone());
        Ok(Self::serve(&bytes, None))
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        self.evict(key);
        self.inner.delete(key).await
    }

    async fn delete_variants(&self, key: &BlobKey) -> Result<(), BlobError> {
        // Evicted again afterwards: a read may have cached a variant while the store removed it.
        let source = key.source();
        self.evict_variants(source);
        let deleted = self.inner.delete_variants(key).await;
        self.evict_variants(source);
        deleted
    }

    async fn health(&self) -> Result<(), BlobError> {
        self.inner.health().await
    }

    async fn list(&self) -> Result<BlobListing, BlobError> {
        self.inner.list().await
    }

    async fn remove_stray(&self, id: &str) -> Result<(), BlobError> {
        self.inner.remove_stray(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FsBlobStore;
    use futures_util::TryStreamExt;
    use stowage_domain::image::variant::VariantName;
    use stowage_domain::{AccountId, FileId};

    async fn read(body: BlobBody) -> Vec<u8> {
        let chunks: Vec<Bytes> = body.stream.try_collect().await.unwrap();
        chunks.concat()
    }

    fn body(data: &'static [u8]) -> ByteStream {
        futures_util::stream::once(async move { Ok(Bytes::from_static(data)) }).boxed()
    }

    #[tokio::test]
    async fn cached_blob_survives_its_file_and_serves_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FsBlobStore::new(dir.path()).unwrap());
        let cache = CachedBlobStore::new(
            fs.clone(),
            BlobCacheSettings {
                capacity_bytes: 1024,
                max_item_bytes: 16,
            },
        );
        let key = BlobKey::new(AccountId::new(1), FileId::new_random());
        cache.put(&key, body(b"0123456789"), None).await.unwrap();

        assert_eq!(
            read(cache.get(&key, None).await.unwrap()).await,
            b"0123456789"
        );
        std::fs::remove_dir_all(dir.path().join("1")).unwrap();
        assert_eq!(
            read(cache.get(&key, None).await.unwrap()).await,
            b"0123456789",
            "served from memory"
        );
        let range = ByteRange::new(2, 4).unwrap();
        assert_eq!(
            read(cache.get(&key, Some(range)).await.unwrap()).await,
            b"234"
        );
    }

    #[tokio::test]
    async fn delete_evicts_and_large_blobs_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FsBlobStore::new(dir.path()).unwrap());
        let cache = CachedBlobStore::new(
            fs,
            BlobCacheSettings {
                capacity_bytes: 1024,
                max_item_bytes: 4,
            },
        );
        let small = BlobKey::new(AccountId::new(1), FileId::new_random());
        let large = BlobKey::new(AccountId::new(1), FileId::new_random());
        cache.put(&small, body(b"abc"), None).await.unwrap();
        cache.put(&large, body(b"abcdefgh"), None).await.unwrap();
        read(cache.get(&small, None).await.unwrap()).await;
        read(cache.get(&large, None).await.unwrap()).await;
        assert!(cache.lookup(&small).is_some());
        assert!(cache.lookup(&large).is_none());
        cache.delete(&small).await.unwrap();
        assert!(cache.lookup(&small).is_none());
        assert!(matches!(
            cache.get(&small, None).await,
            Err(BlobError::NotFound)
        ));
    }

    #[tokio::test]
    async fn a_put_over_a_cached_blob_is_what_the_next_read_serves() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FsBlobStore::new(dir.path()).unwrap());
        let cache = CachedBlobStore::new(
            fs,
            BlobCacheSettings {
                capacity_bytes: 1024,
                max_item_bytes: 64,
            },
        );
        let key = BlobKey::new(AccountId::new(1), FileId::new_random());
        cache.put(&key, body(b"with metadata"), None).await.unwrap();
        read(cache.get(&key, None).await.unwrap()).await;
        assert!(cache.lookup(&key).is_some());

        cache.put(&key, body(b"stripped"), None).await.unwrap();

        assert_eq!(
            read(cache.get(&key, None).await.unwrap()).await,
            b"stripped"
        );
    }

    #[tokio::test]
    async fn deleting_variants_evicts_those_of_that_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FsBlobStore::new(dir.path()).unwrap());
        let cache = CachedBlobStore::new(
            fs,
            BlobCacheSettings {
                capacity_bytes: 1024,
                max_item_bytes: 64,
            },
        );
        let name = VariantName::parse("w10.png").unwrap();
        let source = BlobKey::new(AccountId::new(1), FileId::new_random());
        let other = BlobKey::new(AccountId::new(1), FileId::new_random());
        let keys = [source, source.with_variant(name), other.with_variant(name)];
        for key in &keys {
            cache.put(key, body(b"bytes"), None).await.unwrap();
            read(cache.get(key, None).await.unwrap()).await;
        }

        cache.delete_variants(&source).await.unwrap();

        assert!(cache.lookup(&keys[0]).is_some(), "the source stays");
        assert!(cache.lookup(&keys[1]).is_none());
        assert!(
            cache.lookup(&keys[2]).is_some(),
            "another file's variant stays"
        );
        assert!(matches!(
            cache.get(&keys[1], None).await,
            Err(BlobError::NotFound)
        ));
        let entries = cache.entries.lock().unwrap();
        assert_eq!((entries.bytes, entries.order.len()), (10, 2));
    }

    #[test]
    fn budget_evicts_the_oldest_first() {
        let cache = CachedBlobStore::new(
            Arc::new(FsBlobStore::new(tempfile::tempdir().unwrap().path()).unwrap()),
            BlobCacheSettings {
                capacity_bytes: 10,
                max_item_bytes: 10,
            },
        );
        let keys: Vec<BlobKey> = (0..3)
            .map(|_| BlobKey::new(AccountId::new(1), FileId::new_random()))
            .collect();
        for key in &keys {
            cache.insert(*key, Bytes::from_static(b"12345"));
        }
        assert!(cache.lookup(&keys[0]).is_none());
        assert!(cache.lookup(&keys[1]).is_some() && cache.lookup(&keys[2]).is_some());
    }
}
