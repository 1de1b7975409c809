use stowage_application::ports::ListedBlob;
use stowage_infrastructure::{MemoryBlobStore, MemoryStoreFull};

use super::*;

/// Room for the contract's largest blobs (a little over 6 MiB) several times over.
const CONTRACT_CAPACITY: u64 = 64 * 1024 * 1024;

/// The keys `store` holds, as `{account_id}/{file_id}`, sorted.
fn keys_of(store: &MemoryBlobStore) -> BoxFuture<'static, Vec<String>> {
    let store = store.clone();
    Box::pin(async move {
        let mut keys: Vec<String> = store
            .list()
            .await
            .unwrap()
            .map(|item| match item.unwrap() {
                ListedBlob::Blob { key, .. } => key.to_string(),
                ListedBlob::Stray { id, .. } => panic!("the memory store listed a stray: {id}"),
            })
            .collect()
            .await;
        keys.sort();
        keys
    })
}

async fn harness() -> Harness {
    let store = MemoryBlobStore::new(CONTRACT_CAPACITY);
    let listed = store.clone();
    Harness {
        store: Box::new(store),
        inventory: Box::new(move || keys_of(&listed)),
        _resources: Box::new(()),
    }
}

blob_store_contract!(
    setup = harness();
    attrs = []
);

/// A body of `len` bytes in chunks of 10 000.
fn body_of_len(len: usize) -> ByteStream {
    let data = pseudo_random_bytes(len);
    body_of(data.chunks(10_000).map(Bytes::copy_from_slice).collect())
}

fn assert_full(put: Result<StoredBlob, BlobError>, capacity: u64) {
    let Err(BlobError::Full(source)) = put else {
        panic!("expected the store to be full, got {put:?}");
    };
    assert_eq!(
        source.downcast_ref::<MemoryStoreFull>(),
        Some(&MemoryStoreFull { capacity })
    );
    assert!(
        source.to_string().contains("memory store is full"),
        "{source}"
    );
    assert!(source.source().is_none());
}

#[tokio::test]
async fn an_upload_over_capacity_fails_keeps_nothing_and_frees_its_reservation() {
    let store = MemoryBlobStore::new(100_000);
    let key = new_key();

    let put = store.put(&key, body_of_len(100_001), None).await;

    assert_full(put, 100_000);
    assert!(matches!(
        store.get(&key, None).await,
        Err(BlobError::NotFound)
    ));
    assert_eq!(keys_of(&store).await, Vec::<String>::new());
    assert_eq!(store.used_bytes(), 0);
    let fits = new_key();
    let stored = store.put(&fits, body_of_len(100_000), None).await.unwrap();
    assert_eq!(stored.size, 100_000);
    assert_eq!(store.used_bytes(), 100_000);
}

#[tokio::test]
async fn a_failed_or_dropped_upload_frees_its_reservation() {
    let store = MemoryBlobStore::new(1_000_000);
    let failing = body_failing_after(
        vec![pseudo_random_bytes(50_000)],
        BodyError::ClientAborted("connection reset".into()),
    );
    let put = store.put(&new_key(), failing, None).await;
    assert!(matches!(put, Err(BlobError::Body(_))), "{put:?}");
    assert_eq!(store.used_bytes(), 0);

    let endless = stream::iter([Ok(pseudo_random_bytes(50_000))])
        .chain(stream::pending())
        .boxed();
    let key = new_key();
    let mut put = store.put(&key, endless, None);
    let waited = tokio::time::timeout(Duration::from_millis(50), &mut put).await;
    assert!(waited.is_err());
    assert_eq!(store.used_bytes(), 50_000, "bytes in flight count");
    drop(put);
    assert_eq!(store.used_bytes(), 0);
}

/// A body fed chunk by chunk by the test, so two uploads can be interleaved exactly.
fn fed_body() -> (tokio::sync::mpsc::UnboundedSender<Bytes>, ByteStream) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let body = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok(chunk), rx))
    })
    .boxed();
    (tx, body)
}

#[tokio::test]
async fn concurrent_uploads_never_pass_the_capacity_together() {
    const CAPACITY: u64 = 100_000;
    let store = MemoryBlobStore::new(CAPACITY);
    let (first_key, second_key) = (new_key(), new_key());
    let (first_tx, first_body) = fed_body();
    let (second_tx, second_body) = fed_body();
    let first = tokio::spawn({
        let store = store.clone();
        async move { store.put(&first_key, first_body, None).await }
    });
    let second = tokio::spawn({
        let store = store.clone();
        async move { store.put(&second_key, second_body, None).await }
    });

    // 60 000 bytes each, 10 000 at a time, alternating.
    let mut peak = 0;
    for _ in 0..6 {
        let _ = first_tx.send(pseudo_random_bytes(10_000));
        let _ = second_tx.send(pseudo_random_bytes(10_000));
        tokio::time::sleep(Duration::from_millis(10)).await;
        peak = peak.max(store.used_bytes());
        assert!(store.used_bytes() <= CAPACITY, "{}", store.used_bytes());
    }
    drop((first_tx, second_tx));
    let results = [first.await.unwrap(), second.await.unwrap()];

    let succeeded: Vec<StoredBlob> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    assert!(succeeded.len() <= 1, "{results:?}");
    for failed in results.into_iter().filter(Result::is_err) {
        assert_full(failed, CAPACITY);
    }
    assert!(peak <= CAPACITY);
    let kept: u64 = succeeded.iter().map(|s| s.size).sum();
    assert_eq!(store.used_bytes(), kept);
    assert_eq!(keys_of(&store).await.len(), succeeded.len());
}

#[tokio::test]
async fn delete_frees_capacity() {
    let store = MemoryBlobStore::new(100_000);
    let first = new_key();
    store.put(&first, body_of_len(80_000), None).await.unwrap();

    assert_full(
        store.put(&new_key(), body_of_len(80_000), None).await,
        100_000,
    );
    store.delete(&first).await.unwrap();
    assert_eq!(store.used_bytes(), 0);
    let second = new_key();
    store.put(&second, body_of_len(80_000), None).await.unwrap();

    assert_eq!(store.used_bytes(), 80_000);
    assert_eq!(keys_of(&store).await, vec![second.to_string()]);
}

#[tokio::test]
async fn replacing_a_blob_frees_the_old_bytes() {
    let store = MemoryBlobStore::new(100_000);
    let key = new_key();
    store.put(&key, body_of_len(30_000), None).await.unwrap();

    store.put(&key, body_of_len(40_000), None).await.unwrap();

    assert_eq!(store.used_bytes(), 40_000);
    assert_eq!(store.head(&key).await.unwrap(), 40_000);
}

#[tokio::test]
async fn a_large_blob_is_read_in_bounded_chunks() {
    let store = MemoryBlobStore::new(10_000_000);
    let key = new_key();
    let data = pseudo_random_bytes(1_000_000);
    store
        .put(&key, body_of(vec![data.clone()]), None)
        .await
        .unwrap();

    let chunks: Vec<Bytes> = store
        .get(&key, None)
        .await
        .unwrap()
        .stream
        .try_collect()
        .await
        .unwrap();

    assert!(chunks.len() > 1);
    assert!(chunks.iter().all(|c| c.len() <= 64 * 1024));
    assert!(chunks.concat() == data.as_ref());
}
