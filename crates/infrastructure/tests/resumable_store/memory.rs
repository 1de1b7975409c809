use stowage_infrastructure::{MemoryBlobStore, MemoryStoreFull};

use super::*;

/// Room for the contract's largest uploads (about 16 MiB) several times over.
const CONTRACT_CAPACITY: u64 = 64 * 1024 * 1024;

async fn harness() -> (Arc<dyn ResumableStore>, Arc<dyn BlobStore>) {
    let store = MemoryBlobStore::new(CONTRACT_CAPACITY);
    (Arc::new(store.clone()), Arc::new(store))
}

resumable_store_contract!(
    setup = harness();
    attrs = []
);

fn assert_full(appended: Result<Appended, BlobError>, capacity: u64) {
    let Err(BlobError::Full(source)) = appended else {
        panic!("expected the store to be full, got {appended:?}");
    };
    assert_eq!(
        source.downcast_ref::<MemoryStoreFull>(),
        Some(&MemoryStoreFull { capacity })
    );
}

#[tokio::test]
async fn pending_bytes_count_against_the_capacity() {
    let store = MemoryBlobStore::new(100_000);
    let mut upload = Upload::begin(&store).await;

    upload
        .append(&store, &pseudo_random_bytes(60_000, 1), None)
        .await;

    assert_eq!(store.used_bytes(), 60_000);
    let put = store
        .put(&new_key(), body_of(&pseudo_random_bytes(50_000, 2)), None)
        .await;
    assert!(matches!(put, Err(BlobError::Full(_))), "{put:?}");
}

#[tokio::test]
async fn an_append_past_the_capacity_fails_and_keeps_nothing_of_it() {
    let store = MemoryBlobStore::new(100_000);
    let first = pseudo_random_bytes(60_000, 1);
    let mut upload = Upload::begin(&store).await;
    upload.append(&store, &first, None).await;

    let appended = store
        .append(
            &upload.key,
            &upload.progress,
            upload.offset,
            None,
            None,
            body_of(&pseudo_random_bytes(40_001, 2)),
        )
        .await;

    assert_full(appended, 100_000);
    assert_eq!(store.used_bytes(), 60_000);
    let last = pseudo_random_bytes(40_000, 3);
    upload.append(&store, &last, None).await;
    upload.finish(&store).await;
    assert_blob(&store, &upload.key, &[first, last].concat()).await;
    assert_eq!(store.used_bytes(), 100_000);
}

#[tokio::test]
async fn a_dropped_append_gives_its_bytes_back() {
    let store = MemoryBlobStore::new(1_000_000);
    let upload = Upload::begin(&store).await;
    let endless = stream::iter([Ok(pseudo_random_bytes(50_000, 1))])
        .chain(stream::pending())
        .boxed();
    let mut append = store.append(&upload.key, &upload.progress, 0, None, None, endless);

    let waited = tokio::time::timeout(Duration::from_millis(50), &mut append).await;
    assert!(waited.is_err());
    assert_eq!(store.used_bytes(), 50_000, "bytes in flight count");
    drop(append);

    assert_eq!(store.used_bytes(), 0);
}

#[tokio::test]
async fn an_uncommitted_append_is_given_back_by_the_next() {
    let store = MemoryBlobStore::new(1_000_000);
    let mut upload = Upload::begin(&store).await;
    upload
        .append(&store, &pseudo_random_bytes(1_000, 1), None)
        .await;
    let uncommitted = upload
        .try_append(
            &store,
            body_of(&pseudo_random_bytes(500_000, 2)),
            None,
            None,
        )
        .await;
    drop(uncommitted);
    assert_eq!(store.used_bytes(), 501_000);

    upload
        .append(&store, &pseudo_random_bytes(2_000, 3), None)
        .await;

    assert_eq!(store.used_bytes(), 3_000);
}

#[tokio::test]
async fn abort_frees_the_pending_bytes() {
    let store = MemoryBlobStore::new(1_000_000);
    let mut upload = Upload::begin(&store).await;
    upload
        .append(&store, &pseudo_random_bytes(70_000, 1), None)
        .await;

    store.abort(&upload.key, &upload.progress).await.unwrap();

    assert_eq!(store.used_bytes(), 0);
    assert_eq!(listing(&store).await, (vec![], vec![]));
}

#[tokio::test]
async fn finish_keeps_the_bytes_counted_once() {
    let store = MemoryBlobStore::new(1_000_000);
    let mut upload = Upload::begin(&store).await;
    upload
        .append(&store, &pseudo_random_bytes(70_000, 1), None)
        .await;

    upload.finish(&store).await;

    assert_eq!(store.used_bytes(), 70_000);
    store.delete(&upload.key).await.unwrap();
    assert_eq!(store.used_bytes(), 0);
}

#[tokio::test]
async fn concatenate_joins_in_memory_within_the_capacity() {
    let store = MemoryBlobStore::new(100_000);
    let mut parts = Vec::new();
    for seed in 0..2 {
        let mut upload = Upload::begin(&store).await;
        upload
            .append(&store, &pseudo_random_bytes(30_000, seed), None)
            .await;
        upload.finish(&store).await;
        parts.push(ConcatPart {
            key: upload.key,
            size: 30_000,
        });
    }

    assert!(store.concatenate(&new_key(), &parts[..1]).await.unwrap());
    let over = store.concatenate(&new_key(), &parts).await;

    assert!(matches!(over, Err(BlobError::Full(_))), "{over:?}");
    assert_eq!(store.used_bytes(), 90_000);
}
