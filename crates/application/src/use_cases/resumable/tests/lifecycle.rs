//! Describing uploads (tus `HEAD`) and ending them (tus termination).

use super::*;

#[tokio::test]
async fn status_describes_an_upload_without_locking_it() {
    let upload = received(open(None, meta(&[("filename", "a.txt")])), b"abc");
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    mocks.uploads.expect_lock().never();

    let status = mocks
        .resumable()
        .status(&user(1, 2), upload.id, &RequestFacts::default())
        .await
        .unwrap();

    assert_eq!(status, ResumableStatus::of(&upload, None));
}

#[tokio::test]
async fn status_hides_other_principals_uploads_and_reports_expired_ones() {
    let mut upload = open(Some(3), None);
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    let err = mocks
        .resumable()
        .status(&user(9, 2), upload.id, &RequestFacts::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UploadNotFound), "{err:?}");

    upload.expires_at = now() - Duration::from_secs(1);
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    let err = mocks
        .resumable()
        .status(&user(1, 2), upload.id, &RequestFacts::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UploadExpired), "{err:?}");
}

#[tokio::test]
async fn status_completes_an_upload_whose_every_byte_is_in() {
    let upload = received(open(Some(3), meta(&[("filename", "a.txt")])), b"abc");
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    mocks.lockable();
    mocks.advancing(true);
    mocks.recording();
    mocks.store.expect_append().never();
    let shared = mocks.seen();

    let status = mocks
        .resumable()
        .status(&user(1, 2), upload.id, &RequestFacts::default())
        .await
        .unwrap();

    let file = status.file.expect("a file is recorded");
    assert_eq!((file.id(), file.size()), (upload.file_id, 3));
    assert_eq!(file.sha256(), Some(&sha256(b"abc")));
    let seen = seen(&shared);
    assert_eq!(seen.files, vec![file]);
    assert_eq!(seen.finished, vec![3]);
    assert_eq!(seen.advanced.len(), 1);
    assert_eq!(seen.advanced[0].stage, ResumableStage::Completed);
    assert_eq!(seen.unlocked, 1);
}

#[tokio::test]
async fn termination_of_an_open_upload_drops_its_bytes_and_its_row() {
    let upload = received(open(Some(10), None), b"abc");
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    mocks.lockable();
    let shared = mocks.seen();

    mocks
        .resumable()
        .terminate(&user(1, 2), upload.id)
        .await
        .unwrap();

    let seen = seen(&shared);
    assert_eq!(seen.aborted, vec![key_of(&upload)]);
    assert_eq!(seen.deleted_rows, vec![upload.id]);
    assert!(seen.deleted_blobs.is_empty());
}

#[tokio::test]
async fn termination_of_a_completed_partial_upload_drops_its_blob_and_its_row() {
    let upload = partial(b"abc");
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    mocks.lockable();
    let shared = mocks.seen();

    mocks
        .resumable()
        .terminate(&user(1, 2), upload.id)
        .await
        .unwrap();

    let seen = seen(&shared);
    assert_eq!(seen.deleted_blobs, vec![key_of(&upload)]);
    assert_eq!(seen.deleted_rows, vec![upload.id]);
    assert!(seen.aborted.is_empty());
}

#[tokio::test]
async fn termination_of_a_completed_upload_keeps_its_file() {
    let mut upload = received(open(Some(3), None), b"abc");
    upload.stage = ResumableStage::Completed;
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    mocks.lockable();
    let shared = mocks.seen();

    mocks
        .resumable()
        .terminate(&user(1, 2), upload.id)
        .await
        .unwrap();

    let seen = seen(&shared);
    assert_eq!(seen.deleted_rows, vec![upload.id]);
    assert!(seen.aborted.is_empty() && seen.deleted_blobs.is_empty());
}

#[tokio::test]
async fn termination_of_an_upload_being_written_is_refused() {
    let upload = open(Some(10), None);
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    mocks
        .uploads
        .expect_lock()
        .times(1)
        .returning(|_, _, _| Ok(ResumableLock::Busy));
    let shared = mocks.seen();

    let err = mocks
        .resumable()
        .terminate(&user(1, 2), upload.id)
        .await
        .unwrap_err();

    assert!(matches!(err, Error::UploadLocked), "{err:?}");
    let seen = seen(&shared);
    assert!(seen.aborted.is_empty() && seen.deleted_rows.is_empty());
}

#[tokio::test]
async fn termination_of_an_expired_upload_is_allowed_but_not_of_anothers() {
    let mut upload = open(Some(10), None);
    upload.expires_at = now() - Duration::from_secs(1);
    let mut mocks = Mocks::new();
    mocks.table(std::slice::from_ref(&upload));
    mocks.lockable();
    let shared = mocks.seen();
    let resumable = mocks.resumable();

    let err = resumable
        .terminate(&user(9, 2), upload.id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UploadNotFound), "{err:?}");
    assert!(seen(&shared).deleted_rows.is_empty());

    resumable.terminate(&user(1, 2), upload.id).await.unwrap();
    assert_eq!(seen(&shared).deleted_rows, vec![upload.id]);
}
