//! Creating uploads: limits and metadata judged before anything is stored, a failed creation
//! leaving nothing, and uploads completed by their creation.

use super::*;

#[tokio::test]
async fn a_length_over_the_limit_is_refused_before_anything_is_stored() {
    let cases = [(None, LIMIT), (meta(&[("policy", "tiny")]), TINY)];
    for (metadata, limit) in cases {
        let mut mocks = Mocks::new();
        mocks.store.expect_begin().never();
        mocks.uploads.expect_insert().never();

        let err = mocks
            .resumable()
            .create(creation(Some(limit + 1), metadata, None))
            .await
            .unwrap_err();

        assert!(
            matches!(err, Error::TooLarge { limit: l } if l == limit),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_policy_or_bad_metadata_is_refused_before_anything_is_stored() {
    let cases = [
        meta(&[("policy", "nope")]),
        Some("filename !!!".to_owned()),
        meta(&[("visibility", "shared")]),
        meta(&[("key", "/absolute")]),
    ];
    for metadata in cases {
        let mut mocks = Mocks::new();
        mocks.store.expect_begin().never();
        mocks.uploads.expect_insert().never();

        let err = mocks
            .resumable()
            .create(creation(Some(3), metadata.clone(), None))
            .await
            .unwrap_err();

        assert!(matches!(err, Error::Validation(_)), "{metadata:?}: {err:?}");
    }
}

#[tokio::test]
async fn a_key_held_by_another_users_file_is_refused_before_anything_is_stored() {
    let mut mocks = Mocks::new();
    mocks
        .files
        .expect_get_by_key()
        .times(1)
        .returning(|_, _| Ok(crate::use_cases::fixtures::record(Some(9), 2)));
    mocks.store.expect_begin().never();
    mocks.uploads.expect_insert().never();

    let err = mocks
        .resumable()
        .create(creation(Some(3), meta(&[("key", "docs/a.txt")]), None))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::KeyExists), "{err:?}");
}

#[tokio::test]
async fn an_upload_the_database_does_not_take_has_its_stored_place_aborted() {
    let mut mocks = Mocks::new();
    mocks.beginning();
    mocks
        .uploads
        .expect_insert()
        .times(1)
        .returning(|_| Err(unavailable()));
    mocks.uploads.expect_lock().never();
    let shared = mocks.seen();

    let err = mocks
        .resumable()
        .create(creation(Some(3), None, None))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::DatabaseUnavailable(_)), "{err:?}");
    let seen = seen(&shared);
    assert_eq!(seen.aborted.len(), 1, "the place begun in the store goes");
    assert_eq!(seen.aborted[0].account_id(), AccountId::new(2));
}

#[tokio::test]
async fn a_creation_without_bytes_stores_an_open_upload() {
    let mut mocks = Mocks::new();
    mocks.table(&[]);
    mocks.beginning();
    mocks.uploads.expect_lock().never();
    mocks.store.expect_append().never();
    let shared = mocks.seen();

    let status = mocks
        .resumable()
        .create(creation(None, meta(&[("filename", "a.txt")]), None))
        .await
        .unwrap();

    let seen = seen(&shared);
    assert_eq!(seen.rows.len(), 1);
    let row = &seen.rows[0];
    assert_eq!(status.id, row.id);
    assert_eq!((status.offset, status.length, status.file), (0, None, None));
    assert_eq!(row.store, StoreProgress("begun".into()));
    assert_eq!(row.stage, ResumableStage::Open);
    assert_eq!(
        (row.account_id, row.user_id, row.principal_kind),
        (AccountId::new(2), Some(UserId::new(1)), PrincipalKind::User)
    );
    assert_eq!(status.expires_at, now() + Duration::from_secs(3_600));
}

#[tokio::test]
async fn an_upload_of_length_zero_is_completed_at_its_creation() {
    let mut mocks = Mocks::new();
    mocks.table(&[]);
    mocks.beginning();
    mocks.lockable();
    mocks.storing();
    mocks.advancing(true);
    mocks.recording();
    let shared = mocks.seen();

    let status = mocks
        .resumable()
        .create(creation(Some(0), meta(&[("filename", "empty.txt")]), None))
        .await
        .unwrap();

    let file = status.file.expect("a file is recorded");
    assert_eq!(file.size(), 0);
    assert_eq!(
        file.sha256().map(Sha256Digest::to_hex).as_deref(),
        Some(SHA256_OF_NOTHING)
    );
    let seen = seen(&shared);
    assert_eq!(seen.finished, vec![0], "the store finishes the empty blob");
    assert_eq!(seen.files.len(), 1);
    assert_eq!(seen.files[0].id(), seen.rows[0].file_id);
    assert_eq!(
        seen.advanced.last().map(|p| p.stage),
        Some(ResumableStage::Completed)
    );
    assert_eq!(seen.unlocked, 1);
    assert!(seen.aborted.is_empty() && seen.deleted_rows.is_empty());
}

#[tokio::test]
async fn a_creation_that_brings_every_byte_completes_the_upload() {
    let mut mocks = Mocks::new();
    mocks.table(&[]);
    mocks.beginning();
    mocks.lockable();
    mocks.storing();
    mocks.advancing(true);
    mocks.recording();
    let shared = mocks.seen();

    let status = mocks
        .resumable()
        .create(creation(
            Some(3),
            meta(&[("filename", "notes.txt"), ("filetype", "text/plain")]),
            Some(body(&[b"ab", b"c"])),
        ))
        .await
        .unwrap();

    assert_eq!((status.offset, status.length), (3, Some(3)));
    let file = status.file.expect("a file is recorded");
    assert_eq!(file.size(), 3);
    assert_eq!(file.sha256(), Some(&sha256(b"abc")));
    assert_eq!(file.filename().as_str(), "notes.txt");
    let seen = seen(&shared);
    assert_eq!(seen.read, vec![b"abc".to_vec()]);
    assert_eq!(seen.finished, vec![3]);
    assert_eq!(seen.files.len(), 1);
    assert_eq!(seen.unlocked, 1);
    assert!(seen.aborted.is_empty() && seen.deleted_rows.is_empty());
}

#[tokio::test]
async fn a_creation_whose_bytes_fail_leaves_no_upload() {
    let mut mocks = Mocks::new();
    mocks.table(&[]);
    mocks.beginning();
    mocks.lockable();
    mocks.holding_the_lock();
    mocks
        .store
        .expect_append()
        .times(1)
        .returning(|_, _, _, _, _, _| Err(BlobError::Unavailable("store down".into())));
    mocks.uploads.expect_advance().never();
    let shared = mocks.seen();

    let err = mocks
        .resumable()
        .create(creation(Some(3), None, Some(body(&[b"abc"]))))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::StorageUnavailable(_)), "{err:?}");
    let seen = seen(&shared);
    assert_eq!(
        seen.aborted.len(),
        1,
        "nothing could resume it: its bytes go"
    );
    assert_eq!(seen.deleted_rows, vec![seen.rows[0].id]);
}

#[tokio::test]
async fn a_creation_whose_bytes_pass_its_length_leaves_no_upload() {
    let mut mocks = Mocks::new();
    mocks.table(&[]);
    mocks.beginning();
    mocks.lockable();
    mocks.storing();
    mocks.uploads.expect_advance().never();
    let shared = mocks.seen();

    let err = mocks
        .resumable()
        .create(creation(Some(3), None, Some(body(&[b"abcd"]))))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::TooLarge { limit: 3 }), "{err:?}");
    let seen = seen(&shared);
    // The client learns no URL from a failed creation: an upload left behind is unreachable.
    assert_eq!(seen.aborted.len(), 1, "its place in the store goes");
    assert_eq!(seen.deleted_rows, vec![seen.rows[0].id], "its row goes");
}

#[tokio::test]
async fn a_policy_that_strips_metadata_is_refused_before_anything_is_stored() {
    let mut mocks = Mocks::new();
    mocks.store.expect_begin().never();
    mocks.uploads.expect_insert().never();

    let err = mocks
        .resumable()
        .create(creation(Some(3), meta(&[("policy", "stripped")]), None))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, Error::Validation(reason) if reason.contains("POST /files")),
        "{err:?}"
    );
}
