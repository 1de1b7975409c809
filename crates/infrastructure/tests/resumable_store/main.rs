//! The [`ResumableStore`] contract, run against every adapter.
//!
//! `contract` holds one function per behaviour. Each takes the resumable store and the
//! [`BlobStore`] over the same backend, so a finished upload is read the way a download reads
//! it. An adapter joins the suite with a module whose constructor returns a [`Harness`] (or the
//! tuples it converts from) and one `resumable_store_contract!` invocation.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step fails the test"
)]

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use stowage_application::ports::{
    Appended, BlobBody, BlobError, BlobStore, ConcatPart, ListedBlob, ResumableStore, StoreProgress,
};
use stowage_application::{BodyError, ByteStream};
use stowage_domain::{AccountId, BlobKey, FileId};

/// One adapter under test: its resumable store, the blob store that reads what it finishes, and
/// whatever must live as long as they do (a temp dir, a server process).
struct Harness {
    resumable: Arc<dyn ResumableStore>,
    blobs: Arc<dyn BlobStore>,
    _resources: Box<dyn Any + Send>,
}

impl From<(Arc<dyn ResumableStore>, Arc<dyn BlobStore>)> for Harness {
    fn from((resumable, blobs): (Arc<dyn ResumableStore>, Arc<dyn BlobStore>)) -> Self {
        Self {
            resumable,
            blobs,
            _resources: Box::new(()),
        }
    }
}

impl
    From<(
        Arc<dyn ResumableStore>,
        Arc<dyn BlobStore>,
        Box<dyn Any + Send>,
    )> for Harness
{
    fn from(
        (resumable, blobs, resources): (
            Arc<dyn ResumableStore>,
            Arc<dyn BlobStore>,
            Box<dyn Any + Send>,
        ),
    ) -> Self {
        Self {
            resumable,
            blobs,
            _resources: resources,
        }
    }
}

/// Longest a removal the store may finish in the background may take to show in a listing.
const EVENTUALLY: Duration = Duration::from_secs(5);

const MIB: usize = 1024 * 1024;

fn new_key() -> BlobKey {
    BlobKey::new(AccountId::new(7), FileId::new_random())
}

/// `len` bytes that do not repeat with a short period, so an offset error shows up as a mismatch.
/// `seed` tells apart the bytes of appends that could be confused.
fn pseudo_random_bytes(len: usize, seed: u32) -> Bytes {
    let mut state: u32 = 0x9e37_79b9 ^ seed.wrapping_mul(0x85eb_ca6b);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            state.to_be_bytes()[0]
        })
        .collect::<Vec<u8>>()
        .into()
}

/// Splits `data` into chunks of uneven sizes (1 byte up to just over 1 MiB).
fn uneven_chunks(data: &Bytes) -> Vec<Bytes> {
    const SIZES: [usize; 6] = [1, 7, 65_536, 300_001, 4_093, 1_048_577];
    let mut chunks = Vec::new();
    let mut offset = 0;
    for size in SIZES.iter().cycle() {
        if offset >= data.len() {
            break;
        }
        let end = (offset + size).min(data.len());
        chunks.push(data.slice(offset..end));
        offset = end;
    }
    chunks
}

fn body_of(data: &Bytes) -> ByteStream {
    stream::iter(uneven_chunks(data).into_iter().map(Ok)).boxed()
}

fn body_failing_after(data: &Bytes, error: BodyError) -> ByteStream {
    stream::iter(uneven_chunks(data).into_iter().map(Ok))
        .chain(stream::once(async move { Err(error) }))
        .boxed()
}

async fn read_all(body: BlobBody) -> Vec<u8> {
    body.stream
        .try_fold(Vec::new(), |mut out, chunk| async move {
            out.extend_from_slice(&chunk);
            Ok(out)
        })
        .await
        .expect("the blob stream fails")
}

/// One upload as its caller drives it: the committed progress and offset.
struct Upload {
    key: BlobKey,
    progress: StoreProgress,
    offset: u64,
}

impl Upload {
    async fn begin(store: &dyn ResumableStore) -> Self {
        let key = new_key();
        let progress = store.begin(&key).await.unwrap();
        Self {
            key,
            progress,
            offset: 0,
        }
    }

    /// Appends `data` from the committed state without committing the result.
    async fn try_append(
        &self,
        store: &dyn ResumableStore,
        body: ByteStream,
        length: Option<u64>,
        total: Option<u64>,
    ) -> Appended {
        store
            .append(&self.key, &self.progress, self.offset, length, total, body)
            .await
            .unwrap()
    }

    /// Commits what `appended` made durable, as the caller does once it stored the progress.
    async fn commit(&mut self, store: &dyn ResumableStore, appended: Appended) {
        store
            .release(&self.key, &self.progress, &appended.progress)
            .await;
        self.progress = appended.progress;
        self.offset += appended.written;
    }

    /// Appends all of `data` and commits it; `total` is passed as the caller knows it.
    async fn append(&mut self, store: &dyn ResumableStore, data: &Bytes, total: Option<u64>) {
        let length = Some(data.len() as u64);
        let appended = self.try_append(store, body_of(data), length, total).await;
        assert!(appended.interrupted.is_none(), "{:?}", appended.interrupted);
        assert_eq!(appended.written, data.len() as u64);
        self.commit(store, appended).await;
    }

    async fn finish(&self, store: &dyn ResumableStore) {
        store
            .finish(&self.key, &self.progress, self.offset)
            .await
            .unwrap();
    }
}

/// The blob under `key` is exactly `expected`, through both `get` and `head`.
async fn assert_blob(blobs: &dyn BlobStore, key: &BlobKey, expected: &[u8]) {
    let body = blobs.get(key, None).await.unwrap();
    assert_eq!(body.len, expected.len() as u64);
    let read = read_all(body).await;
    assert_eq!(read.len(), expected.len(), "bytes read");
    assert!(
        read == expected,
        "the bytes read differ from the bytes sent"
    );
    assert_eq!(blobs.head(key).await.unwrap(), expected.len() as u64);
}

/// Stray ids and blob keys the blob store lists now.
async fn listing(blobs: &dyn BlobStore) -> (Vec<String>, Vec<BlobKey>) {
    let mut strays = Vec::new();
    let mut keys = Vec::new();
    let mut items = blobs.list().await.unwrap();
    while let Some(item) = items.next().await {
        match item.unwrap() {
            ListedBlob::Stray { id, .. } => strays.push(id),
            ListedBlob::Blob { key, .. } => keys.push(key),
        }
    }
    (strays, keys)
}

/// Polls `check` until it holds, failing the test after [`EVENTUALLY`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {EVENTUALLY:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs every `contract` function against the adapter `$setup` builds, as one test each.
///
/// `$setup` is a future whose output converts into a [`Harness`]:
/// `(Arc<dyn ResumableStore>, Arc<dyn BlobStore>)`, or the same with a third
/// `Box<dyn Any + Send>` holding what must outlive the test (a temp dir, a server).
/// `attrs` go on every generated test (e.g. `[#[ignore = "needs S3: make test-integration"]]`).
macro_rules! resumable_store_contract {
    (setup = $setup:expr; attrs = $attrs:tt) => {
        resumable_store_contract!(@each $setup, $attrs, [
            appends_in_several_requests_finish_into_exactly_their_bytes,
            appends_of_odd_sizes_join_exactly,
            an_uncommitted_append_is_replaced_by_one_from_the_old_progress,
            an_uncommitted_shorter_append_is_replaced_by_a_longer_one,
            a_body_failing_midway_keeps_what_arrived,
            abort_removes_everything_the_upload_held,
            abort_of_an_upload_that_is_gone_succeeds,
            live_leftovers_are_all_named_by_stray_ids,
            finish_of_an_empty_upload_makes_an_empty_blob,
            an_empty_append_changes_nothing,
            total_on_the_last_append_finishes_the_same,
            one_append_with_every_byte_finishes,
            uploads_under_different_keys_stay_apart,
            concatenate_joins_finished_parts_when_the_store_can,
            concatenate_of_a_missing_part_is_not_found_when_the_store_can,
        ]);
    };
    (@each $setup:expr, $attrs:tt, [$($name:ident),+ $(,)?]) => {
        $(resumable_store_contract!(@one $setup, $attrs, $name);)+
    };
    (@one $setup:expr, [$(#[$attr:meta])*], $name:ident) => {
        #[tokio::test]
        $(#[$attr])*
        async fn $name() {
            let harness: Harness = ($setup).await.into();
            contract::$name(&*harness.resumable, &*harness.blobs).await;
        }
    };
}

/// Behaviours every [`ResumableStore`] must have.
mod contract;
mod fs;
mod memory;
mod s3;
mod s3_moto;
