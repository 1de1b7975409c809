//! Completing a direct upload: ownership, claims, checks, refusals and retries.

use super::*;

#[tokio::test]
async fn a_completion_records_the_file_and_marks_the_upload_completed() {
    let mut mocks = Mocks::new();
    let upload = pending(PNG.len() as u64, Some("avatar"));
    claimed(&mut mocks, &upload);
    holding(&mut mocks, PNG, None);
    let file_id = upload.file_id;
    mocks
        .files
        .expect_insert()
        .withf(move |r, _| r.id() == file_id && r.content_type().as_str() == "image/png")
        .times(1)
        .returning(|_, _| Ok(()));
    mocks
        .uploads
        .expect_mark_completed()
        .withf(|_, token| token.is_some())
        .times(1)
        .returning(|_, _| Ok(()));
    // The checks read the copy, and the staging object goes once the file is recorded.
    let (store, size) = (&mut mocks.store, PNG.len() as u64);
    store.checkpoint();
    store.expect_part_size().return_const(5u64);
    let stored = move || Ok(StoredObject { size, sha256: None });
    store
        .expect_inspect_staged()
        .times(1)
        .returning(move |_, _| stored());
    store.expect_promote().times(1).returning(|_, _| Ok(()));
    store.expect_inspect().times(1).returning(move |_| stored());
    store
        .expect_discard_staged()
        .times(1)
        .returning(|_, _| Ok(()));

    let record = mocks
        .complete()
        .execute(&user(1, 2), upload.id, None, &RequestFacts::default())
        .await
        .unwrap();

    assert_eq!(record.id(), file_id);
    assert_eq!(record.size(), PNG.len() as u64);
}

#[tokio::test]
async fn another_principal_gets_404_and_changes_nothing() {
    let mut mocks = Mocks::new();
    let upload = pending(3, None);
    found(&mut mocks, &upload);
    mocks.uploads.expect_claim().never();
    mocks.uploads.expect_release().never();
    mocks.store.expect_inspect().never();

    let err = mocks
        .complete()
        .execute(&user(9, 2), upload.id, None, &RequestFacts::default())
        .await
        .unwrap_err();

    assert!(matches!(err, Error::UploadNotFound), "{err:?}");
}

#[tokio::test]
async fn a_completed_or_busy_upload_answers_completed_and_touches_nothing() {
    for claim in [Claim::Completed, Claim::Busy] {
        let mut mocks = Mocks::new();
        let upload = pending(3, None);
        let answer = claim(upload.clone());
        found(&mut mocks, &upload);
        mocks
            .uploads
            .expect_claim()
            .returning(move |_, _, _| Ok(answer.clone()));
        mocks.store.expect_inspect().never();
        mocks.files.expect_insert().never();

        let err = mocks
            .complete()
            .execute(&user(1, 2), upload.id, None, &RequestFacts::default())
            .await
            .unwrap_err();

        assert!(matches!(err, Error::UploadCompleted), "{err:?}");
    }
}

#[tokio::test]
async fn an_unknown_upload_is_not_found() {
    let mut mocks = Mocks::new();
    mocks
        .uploads
        .expect_get()
        .returning(|_| Err(RepoError::NotFound));
    mocks.uploads.expect_claim().never();
    let err = mocks
        .complete()
        .execute(
            &user(1, 2),
            DirectUploadId::new_random(),
            None,
            &RequestFacts::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UploadNotFound), "{err:?}");
}

#[tokio::test]
async fn a_wrong_size_or_checksum_or_no_object_deletes_the_object_and_the_upload() {
    // Wrong size.
    let mut mocks = Mocks::new();
    let upload = pending(99, None);
    claimed(&mut mocks, &upload);
    holding(&mut mocks, PNG, None);
    expect_discard(&mut mocks);
    let err = mocks
        .complete()
        .execute(&user(1, 2), upload.id, None, &RequestFacts::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DirectUploadInvalid(_)), "{err:?}");

    // A checksum the store did not verify.
    let mut mocks = Mocks::new();
    let mut upload = pending(PNG.len() as u64, None);
    upload.sha256 = Some(Sha256Digest::from_bytes([1; 32]));
    claimed(&mut mocks, &upload);
    holding(&mut mocks, PNG, Some(Sha256Digest::from_bytes([2; 32])));
    expect_discard(&mut mocks);
    let err = mocks
        .complete()
        .execute(&user(1, 2), upload.id, None, &RequestFacts::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DirectUploadInvalid(_)), "{err:?}");

    // No object.
    let mut mocks = Mocks::new();
    let upload = pending(3, None);
    claimed(&mut mocks, &upload);
    mocks
        .files
        .expect_get()
        .returning(|_| Err(RepoError::NotFound));
    mocks
        .store
        .expect_inspect_staged()
        .returning(|_, _| Err(BlobError::NotFound));
    mocks.store.expect_promote().never();
    mocks
        .store
        .expect_discard_staged()
        .times(1)
        .returning(|_, _| Ok(()));
    expect_discard(&mut mocks);
    let err = mocks
        .complete()
        .execute(&user(1, 2), upload.id, None, &RequestFacts::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DirectUploadInvalid(_)), "{err:?}");
}

#[tokio::test]
async fn a_policy_refusing_the_magic_bytes_deletes_the_object() {
    let mut mocks = Mocks::new();
    let upload = pending(5, Some("avatar"));
    claimed(&mut mocks, &upload);
    holding(&mut mocks, b"hello", None);
    expect_discard(&mut mocks);

    let err = mocks
        .complete()
        .execute(&user(1, 2), upload.id, None, &RequestFacts::default())
        .await
        .unwrap_err();

    assert!(matches!(err, Error::UnsupportedMediaType(_)), "{err:?}");
}

#[tokio::test]
async fn a_store_failure_keeps_the_object_and_frees_the_upload_for_a_retry() {
    let mut mocks = Mocks::new();
    let upload = pending(3, None);
    claimed(&mut mocks, &upload);
    mocks
        .files
        .expect_get()
        .returning(|_| Err(RepoError::NotFound));
    mocks
        .store
        .expect_inspect_staged()
        .returning(|_, _| Err(BlobError::Unavailable("timeout".into())));
    mocks
        .uploads
        .expect_release()
        .times(1)
        .returning(|_, _| Ok(()));
    mocks.store.expect_discard_staged().never();
    mocks.blobs.expect_delete().never();
    mocks.uploads.expect_delete().never();

    let err = mocks
        .complete()
        .execute(&user(1, 2), upload.id, None, &RequestFacts::default())
        .await
        .unwrap_err();

    assert!(matches!(err, Error::StorageUnavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_multipart_completion_assembles_the_parts_and_hashes_the_object() {
    let mut mocks = Mocks::new();
    let mut upload = pending(PNG.len() as u64, None);
    upload.multipart = Some("mp-1".into());
    upload.sha256 = Some(BlobDigester::new().finish().sha256);
    let mut digest = BlobDigester::new();
    digest.update(PNG);
    upload.sha256 = Some(digest.finish().sha256);
    claimed(&mut mocks, &upload);
    holding(&mut mocks, PNG, None);
    mocks
        .store
        .expect_complete_multipart()
        .withf(|_, id, parts| id == "mp-1" && parts.len() == 1)
        .times(1)
        .returning(|_, _, _| Ok(()));
    mocks
        .files
        .expect_insert()
        .times(1)
        .returning(|_, _| Ok(()));
    mocks
        .uploads
        .expect_mark_completed()
        .returning(|_, _| Ok(()));
    let parts = vec![UploadedPart {
        number: 1,
        etag: "\"e\"".into(),
    }];

    let record = mocks
        .complete()
        .execute(
            &user(1, 2),
            upload.id,
            Some(parts),
            &RequestFacts::default(),
        )
        .await
        .unwrap();

    assert_eq!(record.sha256(), upload.sha256.as_ref());
}

#[tokio::test]
async fn a_store_that_reports_no_checksum_gets_the_object_hashed() {
    let mut digest = BlobDigester::new();
    digest.update(PNG);
    let mut mocks = Mocks::new();
    let mut upload = pending(PNG.len() as u64, None);
    upload.sha256 = Some(digest.finish().sha256);
    claimed(&mut mocks, &upload);
    holding(&mut mocks, PNG, None);
    mocks
        .files
        .expect_insert()
        .times(1)
        .returning(|_, _| Ok(()));
    mocks
        .uploads
        .expect_mark_completed()
        .returning(|_, _| Ok(()));

    let record = mocks
        .complete()
        .execute(&user(1, 2), upload.id, None, &RequestFacts::default())
        .await
        .unwrap();

    assert_eq!(record.sha256(), upload.sha256.as_ref());
}

#[tokio::test]
async fn a_wrong_list_of_parts_is_invalid_but_leaves_the_upload_for_a_retry() {
    let mut mocks = Mocks::new();
    let mut upload = pending(PNG.len() as u64, None);
    upload.multipart = Some("mp-1".into());
    claimed(&mut mocks, &upload);
    mocks
        .store
        .expect_complete_multipart()
        .returning(|_, _, _| Err(DirectUploadError::Parts("InvalidPart".into())));
    mocks
        .uploads
        .expect_release()
        .withf(move |id, _| *id == upload.id)
        .times(1)
        .returning(|_, _| Ok(()));
    mocks.store.expect_abort_multipart().never();
    mocks.blobs.expect_delete().never();
    mocks.uploads.expect_delete().never();

    let err = mocks
        .complete()
        .execute(&user(1, 2), upload.id, None, &RequestFacts::default())
        .await
        .unwrap_err();

    assert!(matches!(err, Error::DirectUploadInvalid(_)), "{err:?}");
}
