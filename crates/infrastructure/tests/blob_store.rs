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
use stowage_application::ports::{BlobBody, BlobError, BlobStore};
use stowage_application::stream::StoredBlob;
use stowage_application::{BodyError, ByteStream};
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

/// Behaviours every [`BlobStore`] must have.
mod contract {
    use super::*;

    async fn assert_round_trip(store: &dyn BlobStore, chunks: Vec<Bytes>) {
        let data: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let key = new_key();

        let stored = store.put(&key, body_of(chunks), None).await.unwrap();
        let body = store.get(&key, None).await.unwrap();

        assert_eq!(stored, stored_blob_of(&data));
        assert_eq!(body.len, data.len() as u64);
        let read = read_all(body).await;
        assert_eq!(read.len(), data.len());
        assert!(read == data, "the bytes read differ from the bytes written");
    }

    pub async fn put_then_get_round_trips_an_empty_body(store: &dyn BlobStore, _: &Inventory) {
        assert_round_trip(store, vec![]).await;
        assert_round_trip(store, vec![Bytes::new()]).await;
    }

    pub async fn put_then_get_round_trips_a_one_byte_body(store: &dyn BlobStore, _: &Inventory) {
        assert_round_trip(store, vec![Bytes::from_static(b"x")]).await;
    }

    pub async fn put_then_get_round_trips_a_multi_chunk_body(store: &dyn BlobStore, _: &Inventory) {
        let data = pseudo_random_bytes(3 * 1024 * 1024 + 17);

        assert_round_trip(store, uneven_chunks(&data)).await;
    }

    pub async fn get_returns_exactly_the_requested_range(store: &dyn BlobStore, _: &Inventory) {
        let data = pseudo_random_bytes(200_000);
        let key = new_key();
        store
            .put(&key, body_of(uneven_chunks(&data)), None)
            .await
            .unwrap();
        let last = data.len() as u64 - 1;
        let cases: &[(&str, u64, u64)] = &[
            ("first byte", 0, 0),
            ("first ten bytes", 0, 9),
            ("middle, across read chunks", 65_000, 140_000),
            ("single middle byte", 100_000, 100_000),
            ("last byte", last, last),
            ("tail", last - 99, last),
            ("whole blob", 0, last),
        ];

        for &(name, start, end) in cases {
            let range = ByteRange::new(start, end).unwrap();
            let body = store.get(&key, Some(range)).await.unwrap();

            assert_eq!(body.len, end - start + 1, "{name}: len");
            let read = read_all(body).await;
            let expected = &data[start as usize..=end as usize];
            assert_eq!(read.len(), expected.len(), "{name}: bytes read");
            assert!(read == expected, "{name}: bytes differ");
        }
    }

    pub async fn get_returns_not_found_for_a_missing_key(store: &dyn BlobStore, _: &Inventory) {
        let key = new_key();
        let range = ByteRange::new(0, 9).unwrap();

        let whole = store.get(&key, None).await;
        let ranged = store.get(&key, Some(range)).await;

        assert!(matches!(whole, Err(BlobError::NotFound)), "{whole:?}");
        assert!(matches!(ranged, Err(BlobError::NotFound)), "{ranged:?}");
    }

    pub async fn put_keeps_the_same_file_id_apart_across_accounts(
        store: &dyn BlobStore,
        _: &Inventory,
    ) {
        let file_id = FileId::new_random();
        let first = BlobKey::new(AccountId::new(1), file_id);
        let second = BlobKey::new(AccountId::new(2), file_id);
        store
            .put(&first, body_of(vec![Bytes::from_static(b"first")]), None)
            .await
            .unwrap();
        store
            .put(&second, body_of(vec![Bytes::from_static(b"second")]), None)
            .await
            .unwrap();

        let first_read = read_all(store.get(&first, None).await.unwrap()).await;
        let second_read = read_all(store.get(&second, None).await.unwrap()).await;

        assert_eq!(first_read, b"first");
        assert_eq!(second_read, b"second");
    }

    pub async fn delete_then_get_returns_not_found(store: &dyn BlobStore, inventory: &Inventory) {
        let key = new_key();
        store
            .put(&key, body_of(vec![Bytes::from_static(b"doomed")]), None)
            .await
            .unwrap();

        store.delete(&key).await.unwrap();
        let got = store.get(&key, None).await;

        assert!(matches!(got, Err(BlobError::NotFound)), "{got:?}");
        assert_eq!(inventory().await, Vec::<String>::new());
    }

    pub async fn delete_of_a_missing_key_succeeds(store: &dyn BlobStore, _: &Inventory) {
        let key = new_key();

        let deleted = store.delete(&key).await;

        assert!(deleted.is_ok(), "{deleted:?}");
    }

    async fn assert_failed_body_leaves_nothing(
        store: &dyn BlobStore,
        inventory: &Inventory,
        error: BodyError,
        expected: fn(&BodyError) -> bool,
    ) {
        let key = new_key();
        let written = pseudo_random_bytes(2 * 1024 * 1024);
        let body = body_failing_after(uneven_chunks(&written), error);

        let put = store.put(&key, body, None).await;

        match put {
            Err(BlobError::Body(ref e)) if expected(e) => {}
            other => panic!("expected the body's own error, got {other:?}"),
        }
        let got = store.get(&key, None).await;
        assert!(matches!(got, Err(BlobError::NotFound)), "{got:?}");
        eventually("removal of the partial blob", || async {
            inventory().await.is_empty()
        })
        .await;
    }

    pub async fn put_fails_with_too_large_and_leaves_nothing(
        store: &dyn BlobStore,
        inventory: &Inventory,
    ) {
        assert_failed_body_leaves_nothing(
            store,
            inventory,
            BodyError::TooLarge { limit: 2_000_000 },
            |e| matches!(e, BodyError::TooLarge { limit: 2_000_000 }),
        )
        .await;
    }

    pub async fn put_fails_with_client_aborted_and_leaves_nothing(
        store: &dyn BlobStore,
        inventory: &Inventory,
    ) {
        assert_failed_body_leaves_nothing(
            store,
            inventory,
            BodyError::ClientAborted("connection reset".into()),
            |e| matches!(e, BodyError::ClientAborted(_)),
        )
        .await;
    }

    /// Drops a put whose body never ends; nothing may be visible or stay behind.
    async fn assert_dropped_put_leaves_nothing(
        store: &dyn BlobStore,
        inventory: &Inventory,
        len_hint: Option<u64>,
    ) {
        let key = new_key();
        let body = stream::iter([Ok(pseudo_random_bytes(64 * 1024))])
            .chain(stream::pending())
            .boxed();
        let mut put = store.put(&key, body, len_hint);

        let waited = tokio::time::timeout(Duration::from_millis(100), &mut put).await;
        let got_while_pending = store.get(&key, None).await;
        drop(put);

        assert!(waited.is_err(), "put finished on a body that never ends");
        assert!(
            matches!(got_while_pending, Err(BlobError::NotFound)),
            "a half-written blob is visible: {got_while_pending:?}"
        );
        eventually("removal of the abandoned upload", || async {
            inventory().await.is_empty()
        })
        .await;
    }

    pub async fn put_dropped_midway_leaves_nothing_behind(
        store: &dyn BlobStore,
        inventory: &Inventory,
    ) {
        assert_dropped_put_leaves_nothing(store, inventory, None).await;
    }

    /// Six MiB and a bit: over the size from which a store may stream a hinted body in one request.
    const HINTED: usize = 6 * 1024 * 1024 + 13;

    /// Puts `data` announced as `hint` bytes; the blob must be `data` whatever the hint said,
    /// and nothing else may be left.
    async fn assert_hinted_round_trip(
        store: &dyn BlobStore,
        inventory: &Inventory,
        data: &Bytes,
        hint: u64,
    ) {
        let key = new_key();

        let stored = store
            .put(&key, body_of(uneven_chunks(data)), Some(hint))
            .await
            .unwrap();
        let body = store.get(&key, None).await.unwrap();

        assert_eq!(stored, stored_blob_of(data), "hint {hint}");
        assert_eq!(body.len, data.len() as u64, "hint {hint}");
        let read = read_all(body).await;
        assert!(read == data.as_ref(), "hint {hint}: the bytes read differ");
        store.delete(&key).await.unwrap();
        eventually("removal of every trace of the write", || async {
            inventory().await.is_empty()
        })
        .await;
    }

    pub async fn put_with_an_exact_length_hint_round_trips(
        store: &dyn BlobStore,
        inventory: &Inventory,
    ) {
        let data = pseudo_random_bytes(HINTED);

        assert_hinted_round_trip(store, inventory, &data, HINTED as u64).await;
    }

    pub async fn put_stores_the_body_when_the_hint_is_too_long(
        store: &dyn BlobStore,
        inventory: &Inventory,
    ) {
        let data = pseudo_random_bytes(HINTED);

        for extra in [1, 2, 300_000] {
            assert_hinted_round_trip(store, inventory, &data, (HINTED + extra) as u64).await;
        }
    }

    pub async fn put_stores_the_body_when_the_hint_is_too_short(
        store: &dyn BlobStore,
        inventory: &Inventory,
    ) {
        let data = pseudo_random_bytes(HINTED);

        for missing in [1, 2, 1_048_577] {
            assert_hinted_round_trip(store, inventory, &data, (HINTED - missing) as u64).await;
        }
    }

    pub async fn put_with_a_hint_fails_on_a_body_error_and_leaves_nothing(
        store: &dyn BlobStore,
        inventory: &Inventory,
    ) {
        let data = pseudo_random_bytes(HINTED);
        // Mid-way; right after the announced length; and one byte short of it.
        let cases = [
            (data.slice(..HINTED / 2), HINTED),
            (data.clone(), HINTED),
            (data.slice(..HINTED - 1), HINTED),
        ];
        for (sent, hint) in cases {
            let key = new_key();
            let body = body_failing_after(
                uneven_chunks(&sent),
                BodyError::ClientAborted("connection reset".into()),
            );

            let put = store.put(&key, body, Some(hint as u64)).await;

            assert!(
                matches!(put, Err(BlobError::Body(BodyError::ClientAborted(_)))),
                "{} of {hint} bytes: {put:?}",
                sent.len()
            );
            let got = store.get(&key, None).await;
            assert!(matches!(got, Err(BlobError::NotFound)), "{got:?}");
            eventually("removal of the partial blob", || async {
                inventory().await.is_empty()
            })
            .await;
        }
    }

    pub async fn put_with_a_hint_dropped_midway_leaves_nothing_behind(
        store: &dyn BlobStore,
        inventory: &Inventory,
    ) {
        assert_dropped_put_leaves_nothing(store, inventory, Some(HINTED as u64)).await;
    }

    pub async fn delete_detached_removes_the_blob(store: &dyn BlobStore, inventory: &Inventory) {
        let key = new_key();
        store
            .put(&key, body_of(vec![Bytes::from_static(b"orphan")]), None)
            .await
            .unwrap();

        store.delete_detached(key);

        eventually("the detached delete", || async {
            matches!(store.get(&key, None).await, Err(BlobError::NotFound))
        })
        .await;
        assert_eq!(inventory().await, Vec::<String>::new());
    }

    pub async fn health_is_ok_on_a_working_store(store: &dyn BlobStore, _: &Inventory) {
        let health = store.health().await;

        assert!(health.is_ok(), "{health:?}");
    }
}

/// Runs every `contract` function against the [`Harness`] `$setup` builds, as one test each.
///
/// `attrs` go on every generated test (e.g. `[#[ignore = "needs S3: make test-integration"]]`).
macro_rules! blob_store_contract {
    (setup = $setup:expr; attrs = $attrs:tt; tests = [$($name:ident),+ $(,)?]) => {
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

mod fs {
    use std::path::{Path, PathBuf};

    use stowage_infrastructure::FsBlobStore;
    use tempfile::TempDir;

    use super::*;

    /// Every file (not directory) under `root`, relative to it; nothing when `root` is gone.
    fn files_under(root: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(root).unwrap();
                    found.push(relative.display().to_string());
                }
            }
        }
        found.sort();
        found
    }

    fn new_store() -> (TempDir, PathBuf, FsBlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("blobs");
        let store = FsBlobStore::new(&root).unwrap();
        (dir, root, store)
    }

    async fn harness() -> Harness {
        let (dir, root, store) = new_store();
        Harness {
            store: Box::new(store),
            inventory: Box::new(move || {
                let root = root.clone();
                Box::pin(async move { files_under(&root) })
            }),
            _resources: Box::new(dir),
        }
    }

    blob_store_contract!(
        setup = harness();
        attrs = [];
        tests = [
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
            delete_detached_removes_the_blob,
            health_is_ok_on_a_working_store,
        ]
    );

    #[tokio::test]
    async fn put_stores_the_blob_at_account_then_file_id() {
        let (_dir, root, store) = new_store();
        let key = new_key();

        store
            .put(&key, body_of(vec![Bytes::from_static(b"laid out")]), None)
            .await
            .unwrap();

        assert_eq!(files_under(&root), vec![key.to_string()]);
        assert_eq!(
            std::fs::read(root.join(key.to_string())).unwrap(),
            b"laid out"
        );
    }

    #[tokio::test]
    async fn put_writes_to_a_part_file_that_a_dropped_put_removes() {
        let (_dir, root, store) = new_store();
        let key = new_key();
        let body = stream::iter([Ok(pseudo_random_bytes(64 * 1024))])
            .chain(stream::pending())
            .boxed();
        let mut put = store.put(&key, body, None);

        let waited = tokio::time::timeout(Duration::from_millis(100), &mut put).await;
        let while_pending = files_under(&root);
        drop(put);
        let after_drop = files_under(&root);

        assert!(waited.is_err());
        let expected_temp = format!("{}/.{}.part", key.account_id(), key.file_id());
        assert_eq!(while_pending, vec![expected_temp]);
        assert_eq!(after_drop, Vec::<String>::new());
    }

    /// Tokio opens files on its blocking pool, so a put dropped while the open is queued must
    /// still leave no temp file once that open has run. One blocking thread, held by a task the
    /// test controls, makes the interleaving deterministic.
    #[test]
    fn put_dropped_while_its_temp_file_opens_leaves_no_part_file() {
        let (_dir, root, store) = new_store();
        let key = new_key();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .build()
            .unwrap();

        runtime.block_on(async {
            let body = stream::iter([Ok(Bytes::from_static(b"x"))])
                .chain(stream::pending())
                .boxed();
            let mut put = store.put(&key, body, None);
            assert!(futures_util::poll!(&mut put).is_pending());
            // Queued behind the directory creation, so that has finished once this returns.
            tokio::task::spawn_blocking(|| ()).await.unwrap();
            let (release, wait) = std::sync::mpsc::channel::<()>();
            let blocker = tokio::task::spawn_blocking(move || wait.recv());
            assert!(futures_util::poll!(&mut put).is_pending());
            drop(put);
            release.send(()).unwrap();
            blocker.await.unwrap().unwrap();
            // Queued behind the abandoned open, so that has run once this returns.
            tokio::task::spawn_blocking(|| ()).await.unwrap();
        });

        assert_eq!(files_under(&root), Vec::<String>::new());
    }

    #[tokio::test]
    async fn health_fails_when_the_root_is_replaced_by_a_plain_file() {
        let (_dir, root, store) = new_store();
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::write(&root, b"not a directory").unwrap();

        let health = store.health().await;

        assert!(
            matches!(health, Err(BlobError::Unavailable(_))),
            "{health:?}"
        );
    }

    #[tokio::test]
    async fn health_fails_when_the_root_is_missing() {
        let (_dir, root, store) = new_store();
        std::fs::remove_dir_all(&root).unwrap();

        let health = store.health().await;

        assert!(
            matches!(health, Err(BlobError::Unavailable(_))),
            "{health:?}"
        );
    }

    #[tokio::test]
    async fn put_fails_with_unavailable_when_the_root_is_a_plain_file() {
        let (_dir, root, store) = new_store();
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::write(&root, b"not a directory").unwrap();

        let put = store
            .put(&new_key(), body_of(vec![Bytes::from_static(b"x")]), None)
            .await;

        assert!(matches!(put, Err(BlobError::Unavailable(_))), "{put:?}");
    }

    #[test]
    fn delete_detached_outside_a_runtime_removes_the_blob_at_once() {
        let (_dir, root, store) = new_store();
        let key = new_key();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(store.put(&key, body_of(vec![Bytes::from_static(b"orphan")]), None))
            .unwrap();
        drop(runtime);

        store.delete_detached(key);

        assert_eq!(files_under(&root), Vec::<String>::new());
    }
}

/// The same contract on S3, against a real s3s-fs server spawned per test.
mod s3 {
    use std::path::Path;

    use stowage_infrastructure::{S3BlobStore, S3Layout, S3Settings};
    use stowage_tests::S3Server;

    use super::*;

    const BUCKET: &str = "contract";
    const PART: usize = 5 * 1024 * 1024;

    /// Objects of the bucket plus every trace of an unfinished multipart upload, relative to the
    /// server's root (s3s-fs cannot list uploads over the API).
    fn inventory_of(root: &Path) -> Vec<String> {
        let mut found: Vec<String> = stowage_tests::s3s_fs_files(root, BUCKET)
            .iter()
            .map(|path| path.strip_prefix(root).unwrap().display().to_string())
            .collect();
        found.sort();
        found
    }

    fn settings(server: &S3Server, secret: Option<&str>, layout: S3Layout) -> S3Settings {
        S3Settings {
            endpoint: Some(server.endpoint()),
            region: "us-east-1".into(),
            access_key: server.access_key.clone(),
            secret_key: secret.unwrap_or(&server.secret_key).into(),
            force_path_style: true,
            layout,
            part_size: PART,
            pipelined_uploads: 2,
            connect_timeout: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(30),
            max_attempts: 2,
            stream_uploads: true,
        }
    }

    async fn store_on(secret: Option<&str>) -> (S3Server, S3BlobStore) {
        let server = S3Server::spawn();
        let store = S3BlobStore::new(&settings(
            &server,
            secret,
            S3Layout::Single {
                bucket: BUCKET.into(),
            },
        ));
        if secret.is_none() {
            store.prepare().await.unwrap();
        }
        (server, store)
    }

    async fn harness() -> Harness {
        let (server, store) = store_on(None).await;
        let root = server.dir.path().to_path_buf();
        Harness {
            store: Box::new(store),
            inventory: Box::new(move || {
                let root = root.clone();
                Box::pin(async move { inventory_of(&root) })
            }),
            _resources: Box::new(server),
        }
    }

    blob_store_contract!(
        setup = harness();
        attrs = [#[ignore = "needs s3s-fs: make test-integration"]];
        tests = [
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
            delete_detached_removes_the_blob,
            health_is_ok_on_a_working_store,
        ]
    );

    #[tokio::test]
    #[ignore = "needs s3s-fs: make test-integration"]
    async fn s3_body_over_one_part_goes_multipart_and_round_trips() {
        let (server, store) = store_on(None).await;
        let data = pseudo_random_bytes(2 * PART + 12_345);
        let key = new_key();

        let stored = store
            .put(&key, body_of(uneven_chunks(&data)), None)
            .await
            .unwrap();

        assert_eq!(stored.size, data.len() as u64);
        assert_eq!(
            stored.sha256,
            Sha256Digest::from_bytes(Sha256::digest(&data).into())
        );
        let whole: Vec<u8> = read_all(store.get(&key, None).await.unwrap()).await;
        assert_eq!(whole, data.to_vec());
        let across = ByteRange::new(PART as u64 - 10, PART as u64 + 9).unwrap();
        let part: Vec<u8> = read_all(store.get(&key, Some(across)).await.unwrap()).await;
        assert_eq!(part, data[PART - 10..PART + 10].to_vec());
        assert_eq!(
            inventory_of(server.dir.path()).len(),
            1,
            "one object, no parts left"
        );
    }

    #[tokio::test]
    #[ignore = "needs s3s-fs: make test-integration"]
    async fn s3_failure_after_parts_were_sent_aborts_the_upload() {
        let (server, store) = store_on(None).await;
        let data = pseudo_random_bytes(2 * PART + 1);
        let mut chunks: Vec<Result<Bytes, BodyError>> =
            uneven_chunks(&data).into_iter().map(Ok).collect();
        chunks.push(Err(BodyError::TooLarge { limit: 1 }));
        let body: ByteStream = Box::pin(stream::iter(chunks));

        let err = store.put(&new_key(), body, None).await.unwrap_err();

        assert!(matches!(err, BlobError::Body(BodyError::TooLarge { .. })));
        assert_eq!(inventory_of(server.dir.path()), Vec::<String>::new());
    }

    #[tokio::test]
    #[ignore = "needs s3s-fs: make test-integration"]
    async fn s3_wrong_secret_fails_health_without_revealing_it() {
        let (_server, store) = store_on(Some("not-the-secret-xyz")).await;
        let err = store.health().await.unwrap_err();
        let text = format!("{err}: {:?}", std::error::Error::source(&err));
        assert!(matches!(err, BlobError::Unavailable(_)));
        assert!(text.contains("HeadBucket"), "{text}");
        assert!(text.contains("403"), "names the problem: {text}");
        assert!(
            !text.contains("not-the-secret-xyz") && !text.contains(BUCKET),
            "{text}"
        );
    }

    #[tokio::test]
    #[ignore = "needs s3s-fs: make test-integration"]
    async fn s3_stopped_server_is_unavailable() {
        let (server, store) = store_on(None).await;
        drop(server);
        assert!(matches!(
            store.health().await,
            Err(BlobError::Unavailable(_))
        ));
        let err = store
            .put(&new_key(), body_of(vec![Bytes::from_static(b"x")]), None)
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::Unavailable(_)));
        assert!(matches!(
            store.get(&new_key(), None).await,
            Err(BlobError::Unavailable(_))
        ));
    }

    #[tokio::test]
    #[ignore = "needs s3s-fs: make test-integration"]
    async fn s3_per_account_layout_creates_each_bucket_once_even_in_a_race() {
        let (server, _) = store_on(None).await;
        let per_account = |prefix: &str| {
            settings(
                &server,
                None,
                S3Layout::PerAccount {
                    prefix: prefix.into(),
                },
            )
        };
        // Two replicas (two stores) racing to create the same account bucket.
        let replicas = [
            S3BlobStore::new(&per_account("acct")),
            S3BlobStore::new(&per_account("acct")),
        ];
        let keys: Vec<BlobKey> = (0..4).map(|_| key_in(42)).collect();
        let puts = keys.iter().enumerate().map(|(i, key)| {
            let store = replicas[i % 2].clone();
            let key = *key;
            async move {
                store
                    .put(&key, body_of(vec![Bytes::from(format!("blob {i}"))]), None)
                    .await
            }
        });
        for result in futures_util::future::join_all(puts).await {
            result.unwrap();
        }

        assert!(
            server.dir.path().join("acct-42").is_dir(),
            "bucket {{prefix}}-{{account}}"
        );
        for (i, key) in keys.iter().enumerate() {
            assert!(
                server
                    .dir
                    .path()
                    .join("acct-42")
                    .join(key.file_id().to_string())
                    .is_file()
            );
            let body = read_all(replicas[0].get(key, None).await.unwrap()).await;
            assert_eq!(&body[..], format!("blob {i}").as_bytes());
        }
        let other = key_in(43);
        replicas[1]
            .put(&other, body_of(vec![Bytes::from_static(b"x")]), None)
            .await
            .unwrap();
        assert!(server.dir.path().join("acct-43").is_dir());
        assert!(matches!(
            replicas[0].get(&key_in(44), None).await,
            Err(BlobError::NotFound)
        ));
    }
}

/// What the S3 adapter puts on the wire, seen by a stand-in server (no S3 store needed).
mod s3_wire {
    use stowage_infrastructure::{S3BlobStore, S3Layout, S3Settings};
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    fn store_on(server: &MockServer) -> S3BlobStore {
        S3BlobStore::new(&S3Settings {
            endpoint: Some(server.uri()),
            region: "us-east-1".into(),
            access_key: "AKWIRE".into(),
            secret_key: "SKWIRESECRET".into(),
            force_path_style: true,
            layout: S3Layout::Single {
                bucket: "wire".into(),
            },
            part_size: 5 * 1024 * 1024,
            pipelined_uploads: 1,
            connect_timeout: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(10),
            max_attempts: 1,
            stream_uploads: true,
        })
    }

    async fn answering_puts() -> MockServer {
        let server = MockServer::start().await;
        answering_puts_on(&server).await;
        server
    }

    async fn answering_puts_on(server: &MockServer) -> &MockServer {
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(200).insert_header("ETag", "\"etag\""))
            .mount(server)
            .await;
        server
    }

    fn header<'r>(request: &'r wiremock::Request, name: &str) -> Option<&'r str> {
        request.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The payload of an aws-chunked body (`hex-size[;chunk-signature=…]\r\ndata\r\n`…).
    fn decode_aws_chunked(mut raw: &[u8]) -> Vec<u8> {
        let mut data = Vec::new();
        loop {
            let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
            let line = std::str::from_utf8(&raw[..line_end]).unwrap();
            let size = usize::from_str_radix(line.split(';').next().unwrap(), 16).unwrap();
            raw = &raw[line_end + 2..];
            if size == 0 {
                return data;
            }
            data.extend_from_slice(&raw[..size]);
            raw = &raw[size + 2..];
        }
    }

    #[tokio::test]
    async fn a_single_put_signs_the_sha256_of_exactly_its_body() {
        let server = answering_puts().await;
        let store = store_on(&server);
        let data = pseudo_random_bytes(300 * 1024);
        let stored = store
            .put(&new_key(), body_of(uneven_chunks(&data)), None)
            .await
            .unwrap();

        assert_eq!(stored, stored_blob_of(&data));
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1, "one PutObject");
        let put = &requests[0];
        assert_eq!(put.body, data.as_ref());
        assert_eq!(
            put.headers
                .get("x-amz-content-sha256")
                .and_then(|v| v.to_str().ok()),
            Some(stored.sha256.to_hex().as_str()),
            "the signed payload hash is the body's SHA-256"
        );
        let authorization = put
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            authorization.contains("x-amz-content-sha256"),
            "the payload hash is one of the signed headers: {authorization}"
        );
    }

    /// Answers `HeadObject` as if the object held `len` bytes.
    async fn answering_heads(server: &MockServer, len: usize) {
        Mock::given(method("HEAD"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("Content-Length", len.to_string().as_str())
                    .insert_header("ETag", "\"etag\""),
            )
            .mount(server)
            .await;
    }

    #[tokio::test]
    async fn a_hinted_put_streams_one_signed_aws_chunked_put_object_with_a_crc32_trailer() {
        let server = answering_puts().await;
        let store = store_on(&server);
        let data = pseudo_random_bytes(2 * 1024 * 1024 + 5);
        answering_heads(&server, data.len()).await;

        let stored = store
            .put(
                &new_key(),
                body_of(uneven_chunks(&data)),
                Some(data.len() as u64),
            )
            .await
            .unwrap();

        assert_eq!(stored, stored_blob_of(&data));
        let requests = server.received_requests().await.unwrap();
        let methods: Vec<&str> = requests.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(
            methods,
            ["PUT", "HEAD"],
            "one PutObject and the check of its size, no multipart upload"
        );
        let put = &requests[0];
        assert_eq!(header(put, "content-encoding"), Some("aws-chunked"));
        assert_eq!(
            header(put, "x-amz-decoded-content-length"),
            Some(data.len().to_string().as_str())
        );
        assert_eq!(header(put, "x-amz-trailer"), Some("x-amz-checksum-crc32"));
        assert_eq!(
            header(put, "x-amz-content-sha256"),
            Some("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"),
            "every chunk is signed over plain HTTP"
        );
        let contains = |needle: &[u8]| put.body.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b";chunk-signature="), "the chunks are signed");
        assert!(
            contains(b"x-amz-checksum-crc32:"),
            "the CRC32 trails the body"
        );
        let sent = decode_aws_chunked(&put.body);
        assert!(
            sent == data.as_ref(),
            "the decoded body differs from the data"
        );
    }

    #[tokio::test]
    async fn a_store_that_keeps_the_chunk_framing_fails_the_upload_and_ends_streaming() {
        let server = answering_puts().await;
        let store = store_on(&server);
        let data = pseudo_random_bytes(2 * 1024 * 1024 + 5);
        answering_heads(&server, data.len() + 4096).await;
        Mock::given(method("DELETE"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;

        let first = store
            .put(
                &new_key(),
                body_of(uneven_chunks(&data)),
                Some(data.len() as u64),
            )
            .await;
        server.reset().await;
        let server_again = answering_puts_on(&server).await;
        let second = store
            .put(
                &new_key(),
                body_of(uneven_chunks(&data)),
                Some(data.len() as u64),
            )
            .await;

        assert!(matches!(first, Err(BlobError::Unavailable(_))), "{first:?}");
        assert_eq!(second.unwrap(), stored_blob_of(&data));
        let requests = server_again.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1, "one buffered PutObject");
        assert_eq!(header(&requests[0], "content-encoding"), None);
        assert_eq!(requests[0].body, data.as_ref());
    }
}
