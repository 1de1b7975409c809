//! The [`BlobStore`] contract, run against every adapter that needs no external service.
//!
//! `contract` holds one function per behaviour. Each takes the store as `&dyn BlobStore` and an
//! [`Inventory`] of what the backend holds, so an adapter added later (S3) runs the same suite by
//! writing a harness and one `blob_store_contract!` invocation.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed step fails the test"
)]

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use stowage_application::ports::{BlobBody, BlobError, BlobStore, ListedBlob};
use stowage_application::stream::StoredBlob;
use stowage_application::{BodyError, ByteStream};
use stowage_domain::image::variant::VariantName;
use stowage_domain::{AccountId, BlobKey, ByteRange, FileId, Sha256Digest};

/// Lists every object the backend holds, finished or temporary, as names relative to its root.
type Inventory = Box<dyn Fn() -> BoxFuture<'static, Vec<String>> + Send + Sync>;

/// One adapter under test, with whatever must live as long as it (a temp dir, a bucket).
struct Harness {
    store: Box<dyn BlobStore>,
    inventory: Inventory,
    _resources: Box<dyn std::any::Any + Send>,
}

/// Longest a clean-up that the contract lets run in the background may take.
const EVENTUALLY: Duration = Duration::from_secs(2);

fn key_in(account: i64) -> BlobKey {
    BlobKey::new(AccountId::new(account), FileId::new_random())
}

fn new_key() -> BlobKey {
    key_in(7)
}

/// `len` bytes that do not repeat with a short period, so an offset error shows up as a mismatch.
fn pseudo_random_bytes(len: usize) -> Bytes {
    let mut state: u32 = 0x9e37_79b9;
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

fn variant(name: &str) -> VariantName {
    VariantName::parse(name).unwrap()
}

/// `len` bytes behind a PNG signature: what a store that sorts images by their magic bytes takes
/// for an image.
fn png_like(len: usize) -> Bytes {
    let mut data = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    data.extend_from_slice(&pseudo_random_bytes(len - data.len()));
    data.into()
}

fn body_of(chunks: Vec<Bytes>) -> ByteStream {
    stream::iter(chunks.into_iter().map(Ok)).boxed()
}

fn body_failing_after(chunks: Vec<Bytes>, error: BodyError) -> ByteStream {
    stream::iter(chunks.into_iter().map(Ok))
        .chain(stream::once(async move { Err(error) }))
        .boxed()
}

fn stored_blob_of(data: &[u8]) -> StoredBlob {
    StoredBlob {
        size: data.len() as u64,
        sha256: Sha256Digest::from_bytes(Sha256::digest(data).into()),
    }
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
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs every `contract` function against the [`Harness`] `$setup` builds, as one test each.
///
/// `attrs` go on every generated test (e.g. `[#[ignore = "needs S3: make test-integration"]]`).
macro_rules! blob_store_contract {
    (setup = $setup:expr; attrs = $attrs:tt) => {
        blob_store_contract!(@each $setup, $attrs, [
            put_then_get_round_trips_an_empty_body,
            put_then_get_round_trips_a_one_byte_body,
            put_then_get_round_trips_a_multi_chunk_body,
            get_returns_exactly_the_requested_range,
            get_returns_not_found_for_a_missing_key,
            put_keeps_the_same_file_id_apart_across_accounts,
            delete_then_get_returns_not_found,
            delete_of_a_missing_key_succeeds,
            put_fails_with_too_large_and_leaves_nothing,
            put_fails_with_client_aborted_and_leaves_nothing,
            put_dropped_midway_leaves_nothing_behind,
            put_with_an_exact_length_hint_round_trips,
            put_stores_the_body_when_the_hint_is_too_long,
            put_stores_the_body_when_the_hint_is_too_short,
            put_with_a_hint_fails_on_a_body_error_and_leaves_nothing,
            put_with_a_hint_dropped_midway_leaves_nothing_behind,
            health_is_ok_on_a_working_store,
            a_variant_round_trips_beside_its_source_and_apart_from_it,
            delete_variants_removes_every_variant_of_one_file_and_nothing_else,
            delete_variants_of_a_file_without_any_succeeds,
            list_reports_variants_as_blobs_under_their_variant_keys,
        ]);
    };
    (@each $setup:expr, $attrs:tt, [$($name:ident),+ $(,)?]) => {
        $(blob_store_contract!(@one $setup, $attrs, $name);)+
    };
    (@one $setup:expr, [$(#[$attr:meta])*], $name:ident) => {
        #[tokio::test]
        $(#[$attr])*
        async fn $name() {
            let harness: Harness = $setup.await;
            contract::$name(&*harness.store, &harness.inventory).await;
        }
    };
}

mod cloudinary;
/// Behaviours every [`BlobStore`] must have.
mod contract;
mod fs;
mod memory;
mod s3;
mod s3_moto;
mod s3_wire;
