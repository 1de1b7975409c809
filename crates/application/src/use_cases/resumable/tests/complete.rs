//! Completing an upload with its last bytes: the upload rules, the record, and what a refusal
//! or an earlier completion leaves.

use super::*;

/// Mocks holding `upload`, whose next append is stored, committed and completed.
fn completing(upload: &ResumableUpload) -> Mocks {
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(upload));
    mocks.lockable();
    mocks.storing();
    mocks.advancing(true);
    mocks
}

#[tokio::test]
async fn the_last_bytes_make_a_file_under_the_upload_rules() {
    let metadata = meta(&[
        ("filename", "../holiday photo.png"),
        ("filetype", "text/plain"),
        ("policy", "avatar"),
    ]);
    let upload = received(open(Some(PNG.len() as u64), metadata), &PNG[..5]);
    let mut mocks = completing(&upload);
    mocks.recording();
    let shared = mocks.seen();

    let status = mocks
        .resumable()
        .append(patch(&upload, body(&[&PNG[5..]])))
        .await
        .unwrap();

    let file = status.file.expect("a file is recorded");
    assert_eq!(file.id(), upload.file_id);
    assert_eq!(file.filename(), &Filename::sanitize("../holiday photo.png"));
    assert!(!file.filename().as_str().contains('/'));
    assert_eq!(
        file.content_type().as_str(),
        "image/png",
        "the magic bytes outweigh the declared type"
    );
    assert_eq!(file.size(), PNG.len() as u64);
    assert_eq!(file.sha256(), Some(&sha256(PNG)));
    assert_eq!(
        (file.account_id(), file.user_id()),
        (AccountId::new(2), Some(UserId::new(1)))
    );
    assert_eq!(
        (status.offset, status.length),
        (PNG.len() as u64, Some(PNG.len() as u64))
    );
    let seen = seen(&shared);
    assert_eq!(seen.files, vec![file]);
    assert_eq!(seen.finished, vec![PNG.len() as u64]);
    let stages: Vec<_> = seen.advanced.iter().map(|p| (p.offset, p.stage)).collect();
    assert_eq!(
        stages,
        vec![
            (PNG.len() as u64, ResumableStage::Open),
            (PNG.len() as u64, ResumableStage::Completed)
        ],
        "the bytes are committed, then the upload is marked completed"
    );
    assert_eq!(seen.unlocked, 1);
    assert!(seen.aborted.is_empty() && seen.deleted_rows.is_empty());
}

#[tokio::test]
async fn a_type_the_policy_refuses_by_its_magic_bytes_ends_the_upload() {
    let metadata = meta(&[
        ("filename", "a.png"),
        ("filetype", "image/png"),
        ("policy", "avatar"),
    ]);
    let upload = open(Some(3), metadata);
    let mut mocks = completing(&upload);
    mocks
        .files
        .expect_get()
        .returning(|_| Err(RepoError::NotFound));
    mocks.store.expect_finish().never();
    mocks.files.expect_insert().never();
    let shared = mocks.seen();

    let err = mocks
        .resumable()
        .append(patch(&upload, body(&[b"abc"])))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::UnsupportedMediaType(_)), "{err:?}");
    let seen = seen(&shared);
    assert_eq!(seen.aborted, vec![key_of(&upload)], "its bytes go");
    assert_eq!(seen.deleted_rows, vec![upload.id], "its row goes");
    assert_eq!(seen.unlocked, 1);
}

#[tokio::test]
async fn a_key_taken_by_another_user_meanwhile_ends_the_upload() {
    let upload = open(Some(3), meta(&[("key", "docs/a.txt")]));
    let mut mocks = completing(&upload);
    mocks
        .files
        .expect_get()
        .returning(|_| Err(RepoError::NotFound));
    mocks
        .files
        .expect_get_by_key()
        .returning(|_, _| Ok(crate::use_cases::fixtures::record(Some(9), 2)));
    mocks.store.expect_finish().never();
    mocks.files.expect_insert().never();
    let shared = mocks.seen();

    let err = mocks
        .resumable()
        .append(patch(&upload, body(&[b"abc"])))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::KeyExists), "{err:?}");
    let seen = seen(&shared);
    assert_eq!(seen.aborted, vec![key_of(&upload)]);
    assert_eq!(seen.deleted_rows, vec![upload.id]);
}

#[tokio::test]
async fn a_failed_record_leaves_the_upload_for_a_retry() {
    let upload = open(Some(3), None);
    let mut mocks = completing(&upload);
    mocks
        .files
        .expect_get()
        .returning(|_| Err(RepoError::NotFound));
    mocks.store.expect_finish().returning(|_, _, _| Ok(()));
    mocks
        .files
        .expect_insert()
        .returning(|_, _| Err(unavailable()));
    let shared = mocks.seen();

    let err = mocks
        .resumable()
        .append(patch(&upload, body(&[b"abc"])))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::DatabaseUnavailable(_)), "{err:?}");
    let seen = seen(&shared);
    assert_eq!(
        seen.advanced.len(),
        1,
        "the bytes stay committed, the upload open"
    );
    assert!(seen.aborted.is_empty() && seen.deleted_rows.is_empty());
    assert!(seen.deleted_blobs.is_empty());
}

#[tokio::test]
async fn a_file_recorded_by_an_earlier_completion_counts_as_done() {
    let upload = open(Some(3), None);
    let mut mocks = completing(&upload);
    let earlier = crate::use_cases::fixtures::record(Some(1), 2);
    let expected = earlier.clone();
    mocks
        .files
        .expect_get()
        .withf(move |id| *id == upload.file_id)
        .returning(move |_| Ok(earlier.clone()));
    mocks.store.expect_finish().never();
    mocks.files.expect_insert().never();

    let status = mocks
        .resumable()
        .append(patch(&upload, body(&[b"abc"])))
        .await
        .unwrap();

    assert_eq!(status.file, Some(expected));
}

#[tokio::test]
async fn a_partial_upload_completes_into_its_blob_without_a_file() {
    let mut upload = open(Some(3), None);
    upload.concat = Some(Concat::Partial);
    let mut mocks = completing(&upload);
    mocks.files.expect_get().never();
    mocks.files.expect_insert().never();
    let shared = mocks.seen();
    mocks
        .store
        .expect_finish()
        .times(1)
        .returning(|_, progress, length| {
            assert_eq!((progress.0.as_str(), length), ("p+3", 3));
            Ok(())
        });

    let status = mocks
        .resumable()
        .append(patch(&upload, body(&[b"abc"])))
        .await
        .unwrap();

    assert_eq!((status.offset, status.file), (3, None));
    let seen = seen(&shared);
    assert_eq!(
        seen.advanced.last().map(|p| p.stage),
        Some(ResumableStage::Completed)
    );
}

#[tokio::test]
async fn a_completed_upload_takes_only_an_empty_request() {
    let mut upload = received(open(Some(3), None), b"abc");
    upload.stage = ResumableStage::Completed;
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    mocks.lockable();
    mocks.store.expect_append().never();
    let file = crate::use_cases::fixtures::record(None, 1);
    let answered = file.clone();
    mocks
        .files
        .expect_get()
        .with(mockall::predicate::eq(upload.file_id))
        .returning(move |_| Ok(answered.clone()));
    let shared = mocks.seen();
    let resumable = mocks.resumable();

    let status = resumable
        .append(patch(&upload, AppendBody::empty()))
        .await
        .unwrap();
    // A client that lost the completing answer still learns the file.
    assert_eq!(status.file, Some(file));
    let err = resumable
        .append(patch(&upload, body(&[b"d"])))
        .await
        .unwrap_err();

    assert_eq!(status.offset, 3);
    assert!(matches!(err, Error::TooLarge { limit: 3 }), "{err:?}");
    assert_eq!(seen(&shared).unlocked, 2);
}
