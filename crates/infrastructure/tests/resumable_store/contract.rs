//! The behaviour every resumable store promises, one function per rule.

use super::*;

/// Appends `parts` one request each, committing every one, then finishes; returns the key and
/// every byte sent.
async fn upload_in_parts(store: &dyn ResumableStore, parts: &[Bytes]) -> (BlobKey, Vec<u8>) {
    let mut upload = Upload::begin(store).await;
    for part in parts {
        upload.append(store, part, None).await;
    }
    upload.finish(store).await;
    (upload.key, parts.concat())
}

pub async fn appends_in_several_requests_finish_into_exactly_their_bytes(
    store: &dyn ResumableStore,
    blobs: &dyn BlobStore,
) {
    let data = pseudo_random_bytes(3 * MIB + 17, 1);
    let parts = [
        data.slice(..1_000_000),
        data.slice(1_000_000..1_000_001),
        data.slice(1_000_001..2_500_000),
        data.slice(2_500_000..),
    ];

    let (key, sent) = upload_in_parts(store, &parts).await;

    assert_blob(blobs, &key, &sent).await;
}

/// Sizes around the 5 MiB a multipart part must reach, and single bytes between them.
pub async fn appends_of_odd_sizes_join_exactly(store: &dyn ResumableStore, blobs: &dyn BlobStore) {
    let sizes = [1, 5 * MIB + 1, 7, 5 * MIB - 1, 1, 5 * MIB, 3];
    let parts: Vec<Bytes> = sizes
        .iter()
        .zip(0..)
        .map(|(&size, seed)| pseudo_random_bytes(size, seed))
        .collect();

    let (key, sent) = upload_in_parts(store, &parts).await;

    assert_blob(blobs, &key, &sent).await;
}

/// An append whose progress the caller never stored (it crashed, or lost the lock) leaves the
/// upload as it was: the next append from the old progress takes its place.
async fn assert_uncommitted_append_is_replaced(
    store: &dyn ResumableStore,
    blobs: &dyn BlobStore,
    lost_len: usize,
    kept_len: usize,
) {
    let first = pseudo_random_bytes(1_500_000, 1);
    let lost = pseudo_random_bytes(lost_len, 2);
    let kept = pseudo_random_bytes(kept_len, 3);
    let mut upload = Upload::begin(store).await;
    upload.append(store, &first, None).await;

    let uncommitted = upload
        .try_append(store, body_of(&lost), Some(lost_len as u64), None)
        .await;
    assert_eq!(uncommitted.written, lost_len as u64);
    drop(uncommitted);
    upload.append(store, &kept, None).await;
    upload.finish(store).await;

    assert_blob(blobs, &upload.key, &[first, kept].concat()).await;
}

pub async fn an_uncommitted_append_is_replaced_by_one_from_the_old_progress(
    store: &dyn ResumableStore,
    blobs: &dyn BlobStore,
) {
    assert_uncommitted_append_is_replaced(store, blobs, 5 * MIB + 300_000, 100_000).await;
}

pub async fn an_uncommitted_shorter_append_is_replaced_by_a_longer_one(
    store: &dyn ResumableStore,
    blobs: &dyn BlobStore,
) {
    assert_uncommitted_append_is_replaced(store, blobs, 100_000, 5 * MIB + 300_000).await;
}

/// A client that drops mid-request resumes after the bytes the store received.
pub async fn a_body_failing_midway_keeps_what_arrived(
    store: &dyn ResumableStore,
    blobs: &dyn BlobStore,
) {
    let first = pseudo_random_bytes(700_000, 1);
    let received = pseudo_random_bytes(5 * MIB + 3, 2);
    let rest = pseudo_random_bytes(1_234_567, 3);
    let total = (first.len() + received.len() + rest.len()) as u64;
    let mut upload = Upload::begin(store).await;
    upload.append(store, &first, Some(total)).await;

    let body = body_failing_after(
        &received,
        BodyError::ClientAborted("connection reset".into()),
    );
    let appended = upload
        .try_append(store, body, Some(total - first.len() as u64), Some(total))
        .await;
    assert!(
        matches!(
            appended.interrupted,
            Some(BlobError::Body(BodyError::ClientAborted(_)))
        ),
        "{:?}",
        appended.interrupted
    );
    // A store keeps at least nothing and at most every byte that arrived (one streaming a part
    // of known length loses that part); what it reports is exactly what it kept.
    let kept = usize::try_from(appended.written).unwrap();
    assert!(kept <= received.len(), "{kept} > {}", received.len());
    upload.commit(store, appended).await;
    upload
        .append(store, &received.slice(kept..), Some(total))
        .await;
    upload.append(store, &rest, Some(total)).await;
    upload.finish(store).await;

    assert_eq!(upload.offset, total);
    assert_blob(blobs, &upload.key, &[first, received, rest].concat()).await;
}

pub async fn abort_removes_everything_the_upload_held(
    store: &dyn ResumableStore,
    blobs: &dyn BlobStore,
) {
    let mut upload = Upload::begin(store).await;
    upload
        .append(store, &pseudo_random_bytes(5 * MIB + 1, 1), None)
        .await;
    upload
        .append(store, &pseudo_random_bytes(10_000, 2), None)
        .await;
    let uncommitted = upload
        .try_append(store, body_of(&pseudo_random_bytes(50_000, 3)), None, None)
        .await;
    drop(uncommitted);
    let ids = store.stray_ids(&upload.key, &upload.progress);

    store.abort(&upload.key, &upload.progress).await.unwrap();

    let file_id = upload.key.file_id().to_string();
    eventually("the upload's leftovers going", || async {
        let (strays, keys) = listing(blobs).await;
        !strays
            .iter()
            .any(|id| ids.contains(id) || id.contains(&file_id))
            && !keys.contains(&upload.key)
    })
    .await;
    assert!(matches!(
        blobs.get(&upload.key, None).await,
        Err(BlobError::NotFound)
    ));
}

pub async fn abort_of_an_upload_that_is_gone_succeeds(
    store: &dyn ResumableStore,
    _: &dyn BlobStore,
) {
    let mut upload = Upload::begin(store).await;
    upload
        .append(store, &pseudo_random_bytes(1_000, 1), None)
        .await;
    store.abort(&upload.key, &upload.progress).await.unwrap();

    store.abort(&upload.key, &upload.progress).await.unwrap();
}

/// Reconciliation removes the leftovers it lists unless `stray_ids` names them: every leftover
/// of a live upload must be among them, or its bytes are lost. A leftover is recognised by its
/// file id, which any store's naming carries.
pub async fn live_leftovers_are_all_named_by_stray_ids(
    store: &dyn ResumableStore,
    blobs: &dyn BlobStore,
) {
    let mut upload = Upload::begin(store).await;
    let first = pseudo_random_bytes(5 * MIB + 1, 1);
    let second = pseudo_random_bytes(1_000, 2);
    upload.append(store, &first, None).await;
    upload.append(store, &second, None).await;

    let ids = store.stray_ids(&upload.key, &upload.progress);
    let (strays, keys) = listing(blobs).await;

    let file_id = upload.key.file_id().to_string();
    let unnamed: Vec<&String> = strays
        .iter()
        .filter(|id| id.contains(&file_id) && !ids.contains(id))
        .collect();
    assert!(unnamed.is_empty(), "{unnamed:?} not among {ids:?}");
    assert!(
        !keys.contains(&upload.key),
        "an unfinished upload is a blob"
    );
    assert!(matches!(
        blobs.get(&upload.key, None).await,
        Err(BlobError::NotFound)
    ));
    upload.finish(store).await;
    assert_blob(blobs, &upload.key, &[first, second].concat()).await;
}

/// Finishing leaves no leftover and an empty blob, or nothing where a store keeps empty blobs
/// as nothing (as [`BlobStore::put`] allows).
pub async fn finish_of_an_empty_upload_makes_an_empty_blob(
    store: &dyn ResumableStore,
    blobs: &dyn BlobStore,
) {
    let upload = Upload::begin(store).await;
    let ids = store.stray_ids(&upload.key, &upload.progress);

    upload.finish(store).await;

    match blobs.get(&upload.key, None).await {
        Ok(body) => {
            assert_eq!(body.len, 0);
            assert!(read_all(body).await.is_empty());
            assert_eq!(blobs.head(&upload.key).await.unwrap(), 0);
        }
        Err(BlobError::NotFound) => {}
        Err(e) => panic!("reading an empty upload's blob failed: {e:?}"),
    }
    let (strays, _) = listing(blobs).await;
    assert!(!strays.iter().any(|id| ids.contains(id)), "{strays:?}");
}

pub async fn an_empty_append_changes_nothing(store: &dyn ResumableStore, blobs: &dyn BlobStore) {
    let first = pseudo_random_bytes(300_000, 1);
    let last = pseudo_random_bytes(5 * MIB + 1, 2);
    let mut upload = Upload::begin(store).await;
    upload.append(store, &Bytes::new(), None).await;
    upload.append(store, &first, None).await;

    let appended = upload
        .try_append(store, stream::empty().boxed(), Some(0), None)
        .await;
    assert_eq!(appended.written, 0);
    assert!(appended.interrupted.is_none());
    upload.commit(store, appended).await;
    upload.append(store, &last, None).await;
    upload.finish(store).await;

    assert_blob(blobs, &upload.key, &[first, last].concat()).await;
}

/// The caller passes the whole length once it knows it (a deferred length declared late), and
/// always on the append that reaches it.
pub async fn total_on_the_last_append_finishes_the_same(
    store: &dyn ResumableStore,
    blobs: &dyn BlobStore,
) {
    let parts = [
        pseudo_random_bytes(5 * MIB + 1, 1),
        pseudo_random_bytes(123_457, 2),
        pseudo_random_bytes(5 * MIB - 1, 3),
    ];
    let total = parts.iter().map(|p| p.len() as u64).sum::<u64>();
    let mut upload = Upload::begin(store).await;
    upload.append(store, &parts[0], None).await;
    upload.append(store, &parts[1], None).await;

    upload.append(store, &parts[2], Some(total)).await;
    upload.finish(store).await;

    assert_eq!(upload.offset, total);
    assert_blob(blobs, &upload.key, &parts.concat()).await;
}

/// A creation-with-upload that carries every byte.
pub async fn one_append_with_every_byte_finishes(
    store: &dyn ResumableStore,
    blobs: &dyn BlobStore,
) {
    for len in [1, 5 * MIB + 1] {
        let data = pseudo_random_bytes(len, 1);
        let mut upload = Upload::begin(store).await;

        upload.append(store, &data, Some(len as u64)).await;
        upload.finish(store).await;

        assert_blob(blobs, &upload.key, &data).await;
    }
}

pub async fn uploads_under_different_keys_stay_apart(
    store: &dyn ResumableStore,
    blobs: &dyn BlobStore,
) {
    let (a1, b1, a2, b2) = (
        pseudo_random_bytes(200_000, 1),
        pseudo_random_bytes(300_000, 2),
        pseudo_random_bytes(5_000, 3),
        pseudo_random_bytes(7, 4),
    );
    let mut a = Upload::begin(store).await;
    let mut b = Upload::begin(store).await;

    a.append(store, &a1, None).await;
    b.append(store, &b1, None).await;
    a.append(store, &a2, None).await;
    b.append(store, &b2, None).await;
    b.finish(store).await;
    a.finish(store).await;

    assert_blob(blobs, &a.key, &[a1, a2].concat()).await;
    assert_blob(blobs, &b.key, &[b1, b2].concat()).await;
}

pub async fn concatenate_joins_finished_parts_when_the_store_can(
    store: &dyn ResumableStore,
    blobs: &dyn BlobStore,
) {
    let mut parts = Vec::new();
    let mut expected = Vec::new();
    for (size, seed) in [(5 * MIB + 1, 1), (1, 2), (300_000, 3)] {
        let data = pseudo_random_bytes(size, seed);
        let (key, sent) = upload_in_parts(store, &[data]).await;
        parts.push(ConcatPart {
            key,
            size: sent.len() as u64,
        });
        expected.push(sent);
    }
    let key = new_key();

    let joined = store.concatenate(&key, &parts).await.unwrap();

    if joined {
        assert_blob(blobs, &key, &expected.concat()).await;
    } else {
        assert!(matches!(
            blobs.get(&key, None).await,
            Err(BlobError::NotFound)
        ));
    }
    for (part, sent) in parts.iter().zip(&expected) {
        assert_blob(blobs, &part.key, sent).await;
    }
}

pub async fn concatenate_of_a_missing_part_is_not_found_when_the_store_can(
    store: &dyn ResumableStore,
    blobs: &dyn BlobStore,
) {
    let (present, sent) = upload_in_parts(store, &[pseudo_random_bytes(1_000, 1)]).await;
    let parts = [
        ConcatPart {
            key: present,
            size: sent.len() as u64,
        },
        ConcatPart {
            key: new_key(),
            size: 1_000,
        },
    ];
    let key = new_key();

    let joined = store.concatenate(&key, &parts).await;

    assert!(
        matches!(joined, Ok(false) | Err(BlobError::NotFound)),
        "{joined:?}"
    );
    assert!(matches!(
        blobs.get(&key, None).await,
        Err(BlobError::NotFound)
    ));
}
