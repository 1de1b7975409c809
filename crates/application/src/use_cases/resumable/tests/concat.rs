//! Final concatenations: which partial uploads they may name, how their bytes are joined, and
//! what is left of the partials.

use crate::ports::ConcatPart;
use crate::stream::StoredBlob;

use super::*;

/// The creation of the final concatenation of `partials` by `user(1, 2)`.
fn final_of(partials: &[ResumableId], metadata: Option<String>) -> CreateResumable {
    CreateResumable {
        concat: Some(Concat::Final(partials.to_vec())),
        ..creation(None, metadata, None)
    }
}

/// Mocks holding `parts`, ready to store, lock and complete a final upload.
fn joining(parts: &[ResumableUpload]) -> Mocks {
    let mut mocks = Mocks::new();
    mocks.table(parts);
    mocks.lockable();
    mocks.advancing(true);
    mocks.recording();
    mocks
}

/// The PNG cut in two complete partial uploads.
fn png_parts() -> [ResumableUpload; 2] {
    [partial(&PNG[..5]), partial(&PNG[5..])]
}

fn png_meta() -> Option<String> {
    meta(&[
        ("filename", "joined.png"),
        ("filetype", "image/png"),
        ("policy", "avatar"),
    ])
}

#[tokio::test]
async fn a_final_names_only_this_principals_complete_partial_uploads_each_once() {
    let theirs = ResumableUpload {
        user_id: Some(UserId::new(9)),
        ..partial(b"abc")
    };
    let open_partial = ResumableUpload {
        stage: ResumableStage::Open,
        ..partial(b"abc")
    };
    let not_partial = ResumableUpload {
        concat: None,
        ..partial(b"abc")
    };
    let expired = ResumableUpload {
        expires_at: now(),
        ..partial(b"abc")
    };
    let mine = partial(b"def");
    let cases: Vec<(&str, Vec<ResumableId>)> = vec![
        ("another principal's", vec![mine.id, theirs.id]),
        ("not complete", vec![open_partial.id, mine.id]),
        ("not partial", vec![not_partial.id]),
        ("expired", vec![expired.id]),
        ("named twice", vec![mine.id, mine.id]),
        ("unknown", vec![ResumableId::new_random()]),
        ("none", vec![]),
    ];
    for (case, ids) in cases {
        let mut mocks = Mocks::new();
        mocks.table(&[
            theirs.clone(),
            open_partial.clone(),
            not_partial.clone(),
            expired.clone(),
            mine.clone(),
        ]);
        mocks.uploads.expect_insert().never();
        mocks.store.expect_concatenate().never();
        mocks.blobs.expect_put().never();
        let shared = mocks.seen();

        let err = mocks
            .resumable()
            .create(final_of(&ids, None))
            .await
            .unwrap_err();

        assert!(matches!(err, Error::Validation(_)), "{case}: {err:?}");
        let seen = seen(&shared);
        assert!(
            seen.deleted_rows.is_empty() && seen.deleted_blobs.is_empty(),
            "{case}: the partials stay"
        );
    }
}

#[tokio::test]
async fn parts_joined_by_the_store_are_read_once_for_the_digest() {
    let parts = png_parts();
    let mut mocks = joining(&parts);
    let expected = vec![
        ConcatPart {
            key: key_of(&parts[0]),
            size: 5,
        },
        ConcatPart {
            key: key_of(&parts[1]),
            size: PNG.len() as u64 - 5,
        },
    ];
    mocks
        .store
        .expect_concatenate()
        .withf(move |_, pieces| pieces == expected)
        .times(1)
        .returning(|_, _| Ok(true));
    mocks.blobs.expect_get().times(1).returning(|_, range| {
        assert_eq!(range, None);
        Ok(crate::ports::BlobBody {
            len: PNG.len() as u64,
            stream: futures_util::stream::iter([
                Ok(Bytes::from_static(&PNG[..7])),
                Ok(Bytes::from_static(&PNG[7..])),
            ])
            .boxed(),
        })
    });
    mocks.blobs.expect_put().never();
    let shared = mocks.seen();

    let status = mocks
        .resumable()
        .create(final_of(&[parts[0].id, parts[1].id], png_meta()))
        .await
        .unwrap();

    let file = status.file.expect("a file is recorded");
    assert_eq!(file.sha256(), Some(&sha256(PNG)));
    assert_eq!(file.size(), PNG.len() as u64);
    assert_eq!(
        file.content_type().as_str(),
        "image/png",
        "judged by the parts' heads"
    );
    assert_eq!(file.filename().as_str(), "joined.png");
    assert_eq!(
        (status.offset, status.length),
        (PNG.len() as u64, Some(PNG.len() as u64))
    );
    let seen = seen(&shared);
    let last = seen.rows.last().expect("the final upload is stored");
    assert_eq!(
        last.concat,
        Some(Concat::Final(vec![parts[0].id, parts[1].id]))
    );
    assert_eq!(last.head, PNG);
    assert_eq!(file.id(), last.file_id);
    assert_eq!(seen.files, vec![file]);
    assert_eq!(seen.advanced.len(), 1);
    assert_eq!(seen.advanced[0].stage, ResumableStage::Completed);
    assert_eq!(
        seen.deleted_blobs,
        vec![key_of(&parts[0]), key_of(&parts[1])],
        "the partials go"
    );
    assert_eq!(seen.deleted_rows, vec![parts[0].id, parts[1].id]);
}

#[tokio::test]
async fn parts_the_store_cannot_join_are_streamed_into_the_blob() {
    let parts = png_parts();
    let mut mocks = joining(&parts);
    mocks
        .store
        .expect_concatenate()
        .times(1)
        .returning(|_, _| Ok(false));
    let blobs: HashMap<BlobKey, &'static [u8]> = HashMap::from([
        (key_of(&parts[0]), &PNG[..5]),
        (key_of(&parts[1]), &PNG[5..]),
    ]);
    mocks.blobs.expect_get().times(2).returning(move |key, _| {
        let bytes = blobs[key];
        Ok(crate::ports::BlobBody {
            len: bytes.len() as u64,
            stream: futures_util::stream::iter([Ok(Bytes::from_static(bytes))]).boxed(),
        })
    });
    let put = Arc::new(Mutex::new(Vec::new()));
    let p = put.clone();
    mocks
        .blobs
        .expect_put()
        .times(1)
        .returning(move |key, body, length| {
            let (bytes, error) = read(body);
            assert!(error.is_none(), "{error:?}");
            let stored = StoredBlob {
                size: bytes.len() as u64,
                sha256: sha256(&bytes),
            };
            p.lock().unwrap().push((*key, bytes, length));
            Ok(stored)
        });
    let shared = mocks.seen();

    let status = mocks
        .resumable()
        .create(final_of(&[parts[0].id, parts[1].id], png_meta()))
        .await
        .unwrap();

    let file = status.file.expect("a file is recorded");
    assert_eq!(file.sha256(), Some(&sha256(PNG)));
    let put = put.lock().unwrap();
    assert_eq!(
        *put,
        vec![(file.blob_key(), PNG.to_vec(), Some(PNG.len() as u64))]
    );
    let seen = seen(&shared);
    assert_eq!(
        seen.deleted_rows,
        vec![parts[0].id, parts[1].id],
        "the partials go"
    );
}

#[tokio::test]
async fn a_final_over_the_policys_limit_is_refused_and_nothing_is_joined() {
    let parts = [partial(&[0; 10]), partial(&[0; 10])];
    let mut mocks = Mocks::new();
    mocks.table(&parts);
    mocks.uploads.expect_insert().never();
    mocks.store.expect_concatenate().never();

    let err = mocks
        .resumable()
        .create(final_of(
            &[parts[0].id, parts[1].id],
            meta(&[("policy", "tiny")]),
        ))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::TooLarge { limit: TINY }), "{err:?}");
}

#[tokio::test]
async fn a_final_the_policy_refuses_by_type_ends_its_partials() {
    let parts = [partial(b"abc"), partial(b"def")];
    let mut mocks = Mocks::new();
    mocks.table(&parts);
    mocks.uploads.expect_insert().never();
    mocks.store.expect_concatenate().never();
    let shared = mocks.seen();

    let err = mocks
        .resumable()
        .create(final_of(
            &[parts[0].id, parts[1].id],
            meta(&[("policy", "tiny")]),
        ))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::UnsupportedMediaType(_)), "{err:?}");
    let seen = seen(&shared);
    assert_eq!(
        seen.deleted_blobs,
        vec![key_of(&parts[0]), key_of(&parts[1])]
    );
    assert_eq!(seen.deleted_rows, vec![parts[0].id, parts[1].id]);
}

#[tokio::test]
async fn a_final_whose_file_cannot_be_recorded_leaves_the_partials_for_a_retry() {
    let parts = png_parts();
    let mut mocks = Mocks::new();
    mocks.table(&parts);
    mocks.lockable();
    mocks.store.expect_concatenate().returning(|_, _| Ok(true));
    mocks.blobs.expect_get().returning(|_, _| {
        Ok(crate::ports::BlobBody {
            len: PNG.len() as u64,
            stream: futures_util::stream::iter([Ok(Bytes::from_static(PNG))]).boxed(),
        })
    });
    mocks
        .files
        .expect_insert()
        .returning(|_, _| Err(unavailable()));
    mocks.uploads.expect_advance().never();
    let shared = mocks.seen();

    let err = mocks
        .resumable()
        .create(final_of(&[parts[0].id, parts[1].id], png_meta()))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::DatabaseUnavailable(_)), "{err:?}");
    let seen = seen(&shared);
    let last = seen.rows.last().expect("the final upload was stored");
    assert_eq!(
        seen.deleted_rows,
        vec![last.id],
        "only the final upload goes"
    );
    assert!(
        parts
            .iter()
            .all(|p| !seen.deleted_blobs.contains(&key_of(p))),
        "the partials' blobs stay"
    );
}

#[tokio::test]
async fn a_final_upload_is_unlocked_once_assembled() {
    let parts = png_parts();
    let mut mocks = joining(&parts);
    mocks.store.expect_concatenate().returning(|_, _| Ok(true));
    mocks.blobs.expect_get().returning(|_, _| {
        Ok(crate::ports::BlobBody {
            len: PNG.len() as u64,
            stream: futures_util::stream::iter([Ok(Bytes::from_static(PNG))]).boxed(),
        })
    });
    let shared = mocks.seen();

    mocks
        .resumable()
        .create(final_of(&[parts[0].id, parts[1].id], png_meta()))
        .await
        .unwrap();

    // Else terminating the final upload answers UPLOAD_LOCKED until the lease lapses.
    assert_eq!(seen(&shared).unlocked, 1);
}
