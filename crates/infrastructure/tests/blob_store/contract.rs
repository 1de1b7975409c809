//! The behaviour every blob store promises, one function per rule.

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

/// An empty body is stored as an empty blob, or as nothing at all.
pub async fn put_then_get_round_trips_an_empty_body(store: &dyn BlobStore, inventory: &Inventory) {
    for chunks in [vec![], vec![Bytes::new()]] {
        let key = new_key();

        let stored = store.put(&key, body_of(chunks), None).await.unwrap();

        assert_eq!(stored, stored_blob_of(b""));
        match store.get(&key, None).await {
            Ok(body) => {
                assert_eq!(body.len, 0);
                assert!(read_all(body).await.is_empty());
                assert_eq!(store.head(&key).await.unwrap(), 0);
            }
            Err(BlobError::NotFound) => {
                let held = inventory().await;
                let name = key.file_id().to_string();
                assert!(!held.iter().any(|n| n.contains(&name)), "{held:?}");
            }
            Err(e) => panic!("reading an empty blob failed: {e:?}"),
        }
    }
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

/// Puts `written` (announced as `length`) followed by `error`; the put must fail with that
/// error and leave nothing.
async fn assert_failed_body_leaves_nothing(
    store: &dyn BlobStore,
    inventory: &Inventory,
    (written, length): (&Bytes, Option<u64>),
    error: BodyError,
    expected: fn(&BodyError) -> bool,
) {
    let key = new_key();
    let body = body_failing_after(uneven_chunks(written), error);

    let put = store.put(&key, body, length).await;

    match put {
        Err(BlobError::Body(ref e)) if expected(e) => {}
        other => panic!(
            "{} bytes announced as {length:?}: expected the body's own error, got {other:?}",
            written.len()
        ),
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
        (&pseudo_random_bytes(2 * 1024 * 1024), None),
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
        (&pseudo_random_bytes(2 * 1024 * 1024), None),
        BodyError::ClientAborted("connection reset".into()),
        |e| matches!(e, BodyError::ClientAborted(_)),
    )
    .await;
}

/// Drops a put whose body never ends; nothing may be visible or stay behind.
async fn assert_dropped_put_leaves_nothing(
    store: &dyn BlobStore,
    inventory: &Inventory,
    len: Option<u64>,
) {
    let key = new_key();
    let body = stream::iter([Ok(pseudo_random_bytes(64 * 1024))])
        .chain(stream::pending())
        .boxed();
    let mut put = store.put(&key, body, len);

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
        assert_failed_body_leaves_nothing(
            store,
            inventory,
            (&sent, Some(hint as u64)),
            BodyError::ClientAborted("connection reset".into()),
            |e| matches!(e, BodyError::ClientAborted(_)),
        )
        .await;
    }
}

pub async fn put_with_a_hint_dropped_midway_leaves_nothing_behind(
    store: &dyn BlobStore,
    inventory: &Inventory,
) {
    assert_dropped_put_leaves_nothing(store, inventory, Some(HINTED as u64)).await;
}

pub async fn health_is_ok_on_a_working_store(store: &dyn BlobStore, _: &Inventory) {
    let health = store.health().await;

    assert!(health.is_ok(), "{health:?}");
}

async fn read_key(store: &dyn BlobStore, key: &BlobKey) -> Vec<u8> {
    read_all(store.get(key, None).await.unwrap()).await
}

async fn assert_missing(store: &dyn BlobStore, key: &BlobKey) {
    let got = store.get(key, None).await;
    let head = store.head(key).await;
    assert!(matches!(got, Err(BlobError::NotFound)), "{key}: {got:?}");
    assert!(matches!(head, Err(BlobError::NotFound)), "{key}: {head:?}");
}

/// A variant is a blob of its own beside its source: written before or after it, read whole or
/// by range, replaced, and kept or deleted independently of it.
pub async fn a_variant_round_trips_beside_its_source_and_apart_from_it(
    store: &dyn BlobStore,
    _: &Inventory,
) {
    let source = new_key();
    let small = source.with_variant(variant("w32-q80.png"));
    let large = source.with_variant(variant("w300-h300-cover-q80.webp"));
    let small_bytes = png_like(300);
    let large_bytes = pseudo_random_bytes(150_000);

    let stored = store
        .put(&small, body_of(vec![small_bytes.clone()]), None)
        .await
        .unwrap();
    assert_eq!(stored, stored_blob_of(&small_bytes));
    assert_missing(store, &source).await;
    store
        .put(&source, body_of(vec![Bytes::from_static(b"source")]), None)
        .await
        .unwrap();
    store
        .put(
            &large,
            body_of(uneven_chunks(&large_bytes)),
            Some(large_bytes.len() as u64),
        )
        .await
        .unwrap();

    assert!(read_key(store, &small).await == small_bytes);
    assert_eq!(store.head(&small).await.unwrap(), 300);
    let range = ByteRange::new(8, 17).unwrap();
    let body = store.get(&small, Some(range)).await.unwrap();
    assert_eq!(body.len, 10);
    assert!(read_all(body).await == small_bytes[8..18]);
    assert!(read_key(store, &large).await == large_bytes);
    assert_eq!(read_key(store, &source).await, b"source");
    assert_missing(store, &new_key().with_variant(variant("w32-q80.png"))).await;

    let replaced = png_like(200);
    store
        .put(&small, body_of(vec![replaced.clone()]), None)
        .await
        .unwrap();
    assert!(
        read_key(store, &small).await == replaced,
        "a put replaces a variant"
    );

    store.delete(&source).await.unwrap();
    assert!(
        read_key(store, &small).await == replaced,
        "deleting the source leaves its variants"
    );
    store.delete(&small).await.unwrap();
    assert_missing(store, &small).await;
    assert!(read_key(store, &large).await == large_bytes);
    assert!(
        store.delete(&small).await.is_ok(),
        "deleting a missing variant succeeds"
    );
}

/// `delete_variants` removes the variants of one file, and neither its source nor the variants of
/// another file, even one of the same id in another account.
pub async fn delete_variants_removes_every_variant_of_one_file_and_nothing_else(
    store: &dyn BlobStore,
    inventory: &Inventory,
) {
    let doomed = key_in(7);
    let neighbour = key_in(7);
    let same_id_elsewhere = BlobKey::new(AccountId::new(8), doomed.file_id());
    let names = ["w32-q80.png", "w300-h300-cover-q80.webp", "h100-q90.jpeg"];
    for key in [doomed, neighbour, same_id_elsewhere] {
        let source = Bytes::from(format!("source {key}"));
        store.put(&key, body_of(vec![source]), None).await.unwrap();
        for name in names {
            let key = key.with_variant(variant(name));
            store
                .put(&key, body_of(vec![png_like(100)]), None)
                .await
                .unwrap();
        }
    }

    store.delete_variants(&doomed).await.unwrap();

    for name in names {
        assert_missing(store, &doomed.with_variant(variant(name))).await;
        for kept in [neighbour, same_id_elsewhere] {
            assert_eq!(
                store.head(&kept.with_variant(variant(name))).await.unwrap(),
                100
            );
        }
    }
    for key in [doomed, neighbour, same_id_elsewhere] {
        assert_eq!(
            read_key(store, &key).await,
            format!("source {key}").as_bytes()
        );
    }
    let held = inventory().await;
    let traces: Vec<&String> = held
        .iter()
        .filter(|n| n.contains(&doomed.to_string()))
        .collect();
    assert_eq!(traces.len(), 1, "only the source is left: {held:?}");
}

pub async fn delete_variants_of_a_file_without_any_succeeds(store: &dyn BlobStore, _: &Inventory) {
    let never_written = new_key();
    let deleted = store.delete_variants(&never_written).await;
    assert!(deleted.is_ok(), "{deleted:?}");

    let source = new_key();
    store
        .put(&source, body_of(vec![Bytes::from_static(b"kept")]), None)
        .await
        .unwrap();
    store.delete_variants(&source).await.unwrap();
    assert_eq!(read_key(store, &source).await, b"kept");

    let only = source.with_variant(variant("w32.png"));
    store
        .put(&only, body_of(vec![png_like(64)]), None)
        .await
        .unwrap();
    store.delete_variants(&source).await.unwrap();
    store.delete_variants(&source).await.unwrap();
    assert_missing(store, &only).await;
    assert_eq!(read_key(store, &source).await, b"kept");
}

/// The listing names each variant by its key, sources gone or not, and takes none for a stray.
pub async fn list_reports_variants_as_blobs_under_their_variant_keys(
    store: &dyn BlobStore,
    _: &Inventory,
) {
    let source = new_key();
    let orphan = key_in(9).with_variant(variant("w32.png"));
    let written = [
        (source, Bytes::from_static(b"bytes")),
        (source.with_variant(variant("w32-q80.png")), png_like(120)),
        (source.with_variant(variant("w300-q80.webp")), png_like(140)),
        (orphan, png_like(90)),
    ];
    for (key, bytes) in &written {
        store
            .put(key, body_of(vec![bytes.clone()]), None)
            .await
            .unwrap();
    }

    let listed: Vec<ListedBlob> = store.list().await.unwrap().try_collect().await.unwrap();

    let mut blobs: Vec<(BlobKey, u64)> = listed
        .iter()
        .filter_map(|item| match item {
            ListedBlob::Blob { key, size, .. } => Some((*key, *size)),
            ListedBlob::Stray { .. } => None,
        })
        .collect();
    blobs.sort_by_key(|(key, _)| key.to_string());
    let mut expected: Vec<(BlobKey, u64)> = written
        .iter()
        .map(|(key, bytes)| (*key, bytes.len() as u64))
        .collect();
    expected.sort_by_key(|(key, _)| key.to_string());
    assert_eq!(blobs, expected);
    let strays: Vec<&ListedBlob> = listed
        .iter()
        .filter(|item| matches!(item, ListedBlob::Stray { .. }))
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
}
