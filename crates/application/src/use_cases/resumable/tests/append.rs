//! Appending bytes: who may, under the lock, at the right offset, and what is committed of
//! bytes that arrive whole, broken, lost, over the length or with a checksum.

use super::*;
use crate::checksum::{Checksum, ChecksumAlgorithm};

/// Mocks holding `upload`, whose lock is free and whose appends are stored.
fn appendable(upload: &ResumableUpload) -> Mocks {
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(upload));
    mocks.lockable();
    mocks.storing();
    mocks
}

/// Mocks holding `upload`, whose lock is free and whose appends are stored and committed.
fn committing(upload: &ResumableUpload) -> Mocks {
    let mut mocks = appendable(upload);
    mocks.advancing(true);
    mocks
}

#[tokio::test]
async fn another_principal_learns_nothing_of_an_upload() {
    let upload = open(Some(3), None);
    for principal in [
        user(9, 2),
        user(1, 3),
        crate::use_cases::fixtures::public(2),
    ] {
        let mut mocks = Mocks::new();
        mocks.table(std::slice::from_ref(&upload));
        mocks.uploads.expect_lock().never();
        let mut request = patch(&upload, body(&[b"abc"]));
        request.principal = principal;

        let err = mocks.resumable().append(request).await.unwrap_err();

        assert!(matches!(err, Error::UploadNotFound), "{err:?}");
    }
}

#[tokio::test]
async fn an_expired_upload_takes_no_bytes() {
    let mut upload = open(Some(3), None);
    upload.expires_at = now();
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    mocks.uploads.expect_lock().never();

    let err = mocks
        .resumable()
        .append(patch(&upload, body(&[b"abc"])))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::UploadExpired), "{err:?}");
}

#[tokio::test]
async fn an_upload_another_request_writes_is_locked() {
    let upload = open(Some(3), None);
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    mocks
        .uploads
        .expect_lock()
        .times(1)
        .returning(|_, _, lease| {
            assert_eq!(lease, RESUMABLE_LEASE);
            Ok(ResumableLock::Busy)
        });
    mocks.store.expect_append().never();
    let shared = mocks.seen();

    let err = mocks
        .resumable()
        .append(patch(&upload, body(&[b"abc"])))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::UploadLocked), "{err:?}");
    assert_eq!(
        seen(&shared).unlocked,
        0,
        "a lock not taken is not given up"
    );
}

#[tokio::test]
async fn a_wrong_offset_is_answered_with_the_current_one() {
    let upload = received(open(Some(10), None), b"abcd");
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    mocks.lockable();
    mocks.store.expect_append().never();
    let shared = mocks.seen();
    let mut request = patch(&upload, body(&[b"ef"]));
    request.offset = 2;

    let err = mocks.resumable().append(request).await.unwrap_err();

    assert!(
        matches!(err, Error::UploadOffsetMismatch { offset: 4 }),
        "{err:?}"
    );
    assert_eq!(seen(&shared).unlocked, 1);
}

#[tokio::test]
async fn a_final_concatenation_takes_no_bytes() {
    let mut upload = open(Some(3), None);
    upload.concat = Some(Concat::Final(vec![ResumableId::new_random()]));
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    mocks.uploads.expect_lock().never();

    let err = mocks
        .resumable()
        .append(patch(&upload, body(&[b"abc"])))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::AccessDenied), "{err:?}");
}

#[tokio::test]
async fn bytes_are_committed_with_their_offset_digest_and_head() {
    let data: Vec<u8> = (0..700u32).map(|i| (i % 251) as u8).collect();
    let (first, second) = data.split_at(300);
    let upload = open(Some(1_000), None);

    // The first request, from the upload as it was created.
    let mocks = committing(&upload);
    let shared = mocks.seen();
    let status = mocks
        .resumable()
        .append(patch(&upload, body(&[&first[..100], &first[100..]])))
        .await
        .unwrap();
    assert_eq!(
        (status.offset, status.length, status.file),
        (300, Some(1_000), None)
    );
    let after_first = {
        let seen = seen(&shared);
        assert_eq!(
            seen.appended_from,
            vec![(0, Some(1_000), upload.store.clone())]
        );
        assert_eq!(seen.advanced.len(), 1);
        let progress = seen.advanced[0].clone();
        assert_eq!(progress.offset, 300);
        assert_eq!(progress.stage, ResumableStage::Open);
        assert_eq!(progress.head, first);
        assert_eq!(progress.store, StoreProgress("p+300".into()));
        assert_eq!(progress.expires_at, now() + Duration::from_secs(3_600));
        assert_eq!(
            seen.released,
            vec![(upload.store.clone(), progress.store.clone())]
        );
        assert_eq!(seen.unlocked, 1);
        ResumableUpload {
            offset: progress.offset,
            store: progress.store,
            digest: progress.digest,
            head: progress.head,
            ..upload.clone()
        }
    };

    // The second request, from what the first committed.
    let mocks = committing(&after_first);
    let shared = mocks.seen();
    let status = mocks
        .resumable()
        .append(patch(&after_first, body(&[second])))
        .await
        .unwrap();
    assert_eq!(status.offset, 700);
    let seen = seen(&shared);
    assert_eq!(seen.appended_from[0].0, 300);
    let progress = &seen.advanced[0];
    assert_eq!(progress.offset, 700);
    assert_eq!(
        progress.head,
        data[..SNIFF_LEN],
        "the head keeps the first bytes only"
    );
    let digest = ResumableDigest::restore(&progress.digest).expect("a saved state");
    assert_eq!(
        digest.finish(),
        sha256(&data),
        "the digest spans both requests"
    );
}

#[tokio::test]
async fn a_deferred_length_is_committed_once_declared() {
    let upload = received(open(None, None), b"ab");
    let mocks = committing(&upload);
    let shared = mocks.seen();
    let mut request = patch(&upload, body(&[b"c"]));
    request.length = Some(5);

    let status = mocks.resumable().append(request).await.unwrap();

    assert_eq!((status.offset, status.length), (3, Some(5)));
    let seen = seen(&shared);
    assert_eq!(
        seen.appended_from[0].1,
        Some(5),
        "the store learns the whole length"
    );
    assert_eq!(seen.advanced[0].length, Some(5));
}

#[tokio::test]
async fn bytes_that_do_not_match_their_checksum_are_not_committed() {
    let upload = open(Some(10), None);
    let mut mocks = appendable(&upload);
    mocks.uploads.expect_advance().never();
    let shared = mocks.seen();
    let mut request = patch(&upload, body(&[b"abc"]));
    request.body.checksum = Some(Checksum {
        algorithm: ChecksumAlgorithm::Sha256,
        expected: sha256(b"abd").as_bytes().to_vec(),
    });

    let err = mocks.resumable().append(request).await.unwrap_err();

    assert!(matches!(err, Error::ChecksumMismatch), "{err:?}");
    assert_eq!(seen(&shared).unlocked, 1);
}

#[tokio::test]
async fn bytes_that_match_their_checksum_are_committed() {
    let upload = open(Some(10), None);
    let mocks = committing(&upload);
    let shared = mocks.seen();
    let mut request = patch(&upload, body(&[b"ab", b"c"]));
    request.body.checksum = Some(Checksum {
        algorithm: ChecksumAlgorithm::Sha256,
        expected: sha256(b"abc").as_bytes().to_vec(),
    });

    let status = mocks.resumable().append(request).await.unwrap();

    assert_eq!(status.offset, 3);
    assert_eq!(seen(&shared).advanced[0].offset, 3);
}

#[tokio::test]
async fn what_an_interrupted_body_wrote_is_committed() {
    let upload = received(open(Some(10), None), b"ab");
    let mocks = committing(&upload);
    let shared = mocks.seen();
    let gone = BodyError::ClientAborted("connection reset".into());
    let request = patch(
        &upload,
        unstated(vec![Ok(Bytes::from_static(b"cde")), Err(gone)]),
    );

    let err = mocks.resumable().append(request).await.unwrap_err();

    assert!(matches!(err, Error::ClientAborted), "{err:?}");
    let seen = seen(&shared);
    assert_eq!(seen.advanced.len(), 1);
    assert_eq!(seen.advanced[0].offset, 5);
    let digest = ResumableDigest::restore(&seen.advanced[0].digest).expect("a saved state");
    assert_eq!(digest.finish(), sha256(b"abcde"));
    assert_eq!(seen.unlocked, 1);
    assert!(
        seen.aborted.is_empty() && seen.deleted_rows.is_empty(),
        "it resumes"
    );
}

#[tokio::test]
async fn bytes_read_but_not_written_commit_nothing() {
    for interrupted in [false, true] {
        let upload = open(Some(10), None);
        let mut mocks = Mocks::new();
        mocks.table(std::slice::from_ref(&upload));
        mocks.lockable();
        mocks.holding_the_lock();
        mocks
            .store
            .expect_append()
            .times(1)
            .returning(move |_, progress, _, _, _, body| {
                let (bytes, _) = read(body);
                let aborted = BodyError::ClientAborted("connection reset".into());
                Ok(Appended {
                    progress: StoreProgress(format!("{}+some", progress.0)),
                    written: bytes.len() as u64 - 1,
                    interrupted: interrupted.then_some(BlobError::Body(aborted)),
                })
            });
        mocks.uploads.expect_advance().never();
        let shared = mocks.seen();

        let err = mocks
            .resumable()
            .append(patch(&upload, body(&[b"abc"])))
            .await
            .unwrap_err();

        if interrupted {
            assert!(matches!(err, Error::ClientAborted), "{err:?}");
        } else {
            assert!(matches!(err, Error::StorageUnavailable(_)), "{err:?}");
        }
        assert_eq!(seen(&shared).unlocked, 1);
    }
}

#[tokio::test]
async fn a_body_over_the_declared_length_is_refused_and_the_upload_stays() {
    let upload = received(open(Some(5), None), b"ab");
    // Stated by the request: refused before any byte is read.
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    mocks.lockable();
    mocks.store.expect_append().never();
    let stated = mocks.seen();
    let err = mocks
        .resumable()
        .append(patch(&upload, body(&[b"cdef"])))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 5 }), "{err:?}");

    // Found out on the way.
    let mut mocks = appendable(&upload);
    mocks.uploads.expect_advance().never();
    let streamed = mocks.seen();
    let chunks = vec![Ok(Bytes::from_static(b"cd")), Ok(Bytes::from_static(b"ef"))];
    let err = mocks
        .resumable()
        .append(patch(&upload, unstated(chunks)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: 5 }), "{err:?}");
    assert_eq!(
        seen(&streamed).read,
        vec![b"cd".to_vec()],
        "the store reads no further"
    );

    for shared in [stated, streamed] {
        let seen = seen(&shared);
        assert!(
            seen.aborted.is_empty() && seen.deleted_rows.is_empty(),
            "it resumes"
        );
        assert_eq!(seen.unlocked, 1);
    }
}

#[tokio::test]
async fn a_deferred_length_over_the_limit_ends_the_upload() {
    let upload = received(open(None, None), b"ab");
    // Declared.
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    mocks.lockable();
    mocks.store.expect_append().never();
    let declared = mocks.seen();
    let mut request = patch(&upload, body(&[b"c"]));
    request.length = Some(LIMIT + 1);
    let err = mocks.resumable().append(request).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: LIMIT }), "{err:?}");

    // Never declared, and streamed past the limit.
    let mut mocks = appendable(&upload);
    mocks.uploads.expect_advance().never();
    let streamed = mocks.seen();
    let big = vec![0u8; LIMIT as usize];
    let request = patch(&upload, unstated(vec![Ok(Bytes::from(big))]));
    let err = mocks.resumable().append(request).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge { limit: LIMIT }), "{err:?}");

    for shared in [declared, streamed] {
        let seen = seen(&shared);
        assert_eq!(seen.aborted, vec![key_of(&upload)], "its bytes go");
        assert_eq!(seen.deleted_rows, vec![upload.id], "its row goes");
    }
}

#[tokio::test]
async fn a_lock_lost_before_the_commit_commits_nothing() {
    let upload = open(Some(10), None);
    let mut mocks = appendable(&upload);
    mocks.advancing(false);
    let shared = mocks.seen();

    let err = mocks
        .resumable()
        .append(patch(&upload, body(&[b"abc"])))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::UploadLocked), "{err:?}");
    let seen = seen(&shared);
    assert!(
        seen.released.is_empty(),
        "the old progress stays the upload's"
    );
    assert_eq!(seen.unlocked, 1);
}
