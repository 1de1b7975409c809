use std::sync::Mutex;

use bytes::Bytes;
use stowage_domain::{AccountId, PrincipalKind, UserId};

use super::*;
use crate::events::RequestFacts;
use crate::ports::blob_store::MockBlobStore;
use crate::ports::clock::MockClock;
use crate::ports::direct_upload_repository::MockDirectUploadRepository;
use crate::ports::direct_uploads::MockDirectUploadStore;
use crate::ports::file_repository::MockFileRepository;
use crate::ports::{BlobBody, StoredObject};
use crate::ports::{BlobError, Claim, DirectUploadError, RepoError, UploadedPart};
use crate::stream::BlobDigester;
use crate::stream::BodyError;
use crate::use_cases::fixtures::user;
use futures_util::StreamExt;
use stowage_domain::Filename;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

struct Mocks {
    files: MockFileRepository,
    blobs: MockBlobStore,
    store: MockDirectUploadStore,
    uploads: MockDirectUploadRepository,
}

impl Mocks {
    fn new() -> Self {
        let mut store = MockDirectUploadStore::new();
        store.expect_part_size().return_const(5u64);
        Self {
            files: MockFileRepository::new(),
            blobs: MockBlobStore::new(),
            store,
            uploads: MockDirectUploadRepository::new(),
        }
    }

    fn ports(self) -> DirectUploadPorts {
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| OffsetDateTime::UNIX_EPOCH);
        DirectUploadPorts {
            files: Arc::new(self.files),
            blobs: Arc::new(self.blobs),
            store: Arc::new(self.store),
            uploads: Arc::new(self.uploads),
            clock: Arc::new(clock),
        }
    }

    fn start(self) -> StartDirectUpload {
        StartDirectUpload::new(self.ports(), 100, policies())
    }

    fn complete(self) -> CompleteDirectUpload {
        CompleteDirectUpload::new(self.ports(), 100, policies())
    }
}

fn policies() -> HashMap<String, UploadPolicy> {
    HashMap::from([("avatar".to_owned(), UploadPolicy::avatar())])
}

fn start_request(size: u64) -> StartDirectRequest {
    StartDirectRequest {
        principal: user(1, 2),
        filename: "../a.png".into(),
        content_type: "image/png".into(),
        size,
        sha256: Some(Sha256Digest::from_bytes([3; 32])),
        lifetime: Duration::from_secs(60),
        policy: None,
        key: None,
        multipart: false,
    }
}

fn presigned(url: &str) -> PresignedRequest {
    PresignedRequest {
        url: url.into(),
        headers: vec![("content-type".into(), "image/png".into())],
    }
}

fn pending(size: u64, policy: Option<&str>) -> DirectUpload {
    DirectUpload {
        id: DirectUploadId::new_random(),
        file_id: FileId::new_random(),
        account_id: AccountId::new(2),
        user_id: Some(UserId::new(1)),
        principal_kind: PrincipalKind::User,
        filename: Filename::sanitize("a.png"),
        declared_type: "image/png".into(),
        size,
        sha256: None,
        policy: policy.map(str::to_owned),
        key: None,
        multipart: None,
        expires_at: OffsetDateTime::UNIX_EPOCH + Duration::from_secs(60),
    }
}

/// A store and blob store holding `data` under the upload's key (and its staging object).
fn holding(mocks: &mut Mocks, data: &'static [u8], sha256: Option<Sha256Digest>) {
    mocks.store.expect_inspect_staged().returning(move |_, _| {
        Ok(StoredObject {
            size: data.len() as u64,
            sha256,
        })
    });
    mocks.store.expect_promote().returning(|_, _| Ok(()));
    mocks.store.expect_discard_staged().returning(|_, _| Ok(()));
    mocks.store.expect_inspect().returning(move |_| {
        Ok(StoredObject {
            size: data.len() as u64,
            sha256,
        })
    });
    mocks.blobs.expect_get().returning(move |_, range| {
        let end = range.map_or(data.len(), |r| r.end() as usize + 1);
        let bytes = Bytes::from_static(&data[..end]);
        Ok(BlobBody {
            len: bytes.len() as u64,
            stream: futures_util::stream::iter([Ok::<_, BodyError>(bytes)]).boxed(),
        })
    });
    mocks
        .files
        .expect_get()
        .returning(|_| Err(RepoError::NotFound));
}

/// The repository finds `upload`.
fn found(mocks: &mut Mocks, upload: &DirectUpload) {
    let upload = upload.clone();
    mocks
        .uploads
        .expect_get()
        .returning(move |_| Ok(upload.clone()));
}

fn claimed(mocks: &mut Mocks, upload: &DirectUpload) {
    found(mocks, upload);
    let upload = upload.clone();
    mocks
        .uploads
        .expect_claim()
        .times(1)
        .returning(move |_, _, _| Ok(Claim::Claimed(upload.clone())));
}

/// Expects the object and the row of a refused upload to go.
fn expect_discard(mocks: &mut Mocks) {
    mocks.blobs.expect_delete().times(1).returning(|_| Ok(()));
    mocks.uploads.expect_delete().times(1).returning(|_| Ok(()));
    mocks.files.expect_insert().never();
}

#[tokio::test]
async fn a_size_over_the_limit_is_refused_before_anything_is_presigned() {
    let mut mocks = Mocks::new();
    mocks.store.expect_presign_put().never();
    mocks.uploads.expect_insert().never();

    let err = mocks.start().execute(start_request(101)).await.unwrap_err();

    assert!(matches!(err, Error::TooLarge { limit: 100 }), "{err:?}");
}

#[tokio::test]
async fn a_policy_lowers_the_limit_and_an_unknown_one_is_invalid() {
    let mut over = start_request(5 * 1024 * 1024 + 1);
    over.policy = Some("avatar".into());
    let start = StartDirectUpload::new(Mocks::new().ports(), u64::MAX, policies());
    assert!(matches!(
        start.execute(over).await,
        Err(Error::TooLarge { limit }) if limit == 5 * 1024 * 1024
    ));
    let mut unknown = start_request(1);
    unknown.policy = Some("nope".into());
    assert!(matches!(
        Mocks::new().start().execute(unknown).await,
        Err(Error::Validation(_))
    ));
}

#[tokio::test]
async fn a_start_presigns_one_exact_put_with_the_checksum_and_records_the_upload() {
    let mut mocks = Mocks::new();
    mocks
        .store
        .expect_presign_put()
        .withf(|_, _, size, ty, sha, lifetime| {
            *size == 4 && ty == "image/png" && sha.is_some() && *lifetime == Duration::from_secs(60)
        })
        .times(1)
        .returning(|_, _, _, _, _, _| Ok(presigned("http://s3/put")));
    let recorded = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&recorded);
    mocks.uploads.expect_insert().times(1).returning(move |u| {
        *seen.lock().unwrap() = Some(u.clone());
        Ok(())
    });

    let ticket = mocks.start().execute(start_request(4)).await.unwrap();

    assert_eq!(ticket.target, DirectTarget::Put(presigned("http://s3/put")));
    let row = recorded.lock().unwrap().clone().unwrap();
    assert_eq!(row.id, ticket.id);
    assert_eq!(row.filename.as_str(), "a.png");
    assert_eq!(row.multipart, None);
    assert_eq!(
        ticket.expires_at,
        OffsetDateTime::UNIX_EPOCH + Duration::from_secs(60)
    );
}

#[tokio::test]
async fn a_multipart_start_presigns_one_url_per_part() {
    let mut mocks = Mocks::new();
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let signed = Arc::clone(&sizes);
    mocks
        .store
        .expect_start_multipart()
        .times(1)
        .returning(|_, _| Ok("mp-1".into()));
    mocks
        .uploads
        .expect_insert()
        .withf(|u| u.multipart.as_deref() == Some("mp-1"))
        .times(1)
        .returning(|_| Ok(()));
    mocks
        .store
        .expect_presign_part()
        .times(3)
        .returning(move |_, _, n, size, _| {
            signed.lock().unwrap().push(size);
            Ok(presigned(&format!("http://s3/part/{n}")))
        });
    let mut request = start_request(11);
    request.multipart = true;

    let ticket = mocks.start().execute(request).await.unwrap();

    let DirectTarget::Multipart { part_size, parts } = ticket.target else {
        panic!("not multipart");
    };
    assert_eq!(part_size, 5);
    assert_eq!(parts.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 2, 3]);
    // Each part URL signs its exact length: the last one has the rest.
    assert_eq!(*sizes.lock().unwrap(), [5, 5, 1]);
}

#[tokio::test]
async fn a_lifetime_outside_one_second_to_a_day_is_invalid() {
    for secs in [0, 86_401] {
        let mut request = start_request(4);
        request.lifetime = Duration::from_secs(secs);
        let mut mocks = Mocks::new();
        mocks.store.expect_presign_put().never();
        assert!(matches!(
            mocks.start().execute(request).await,
            Err(Error::Validation(_))
        ));
    }
}

#[tokio::test]
async fn a_file_too_big_for_one_s3_put_goes_multipart() {
    let mut mocks = Mocks::new();
    mocks.store.checkpoint();
    // A part size whose thousand parts exceed S3's 5 GiB single `PUT`.
    mocks.store.expect_part_size().return_const(16u64 << 20);
    mocks.store.expect_presign_put().never();
    mocks
        .store
        .expect_start_multipart()
        .times(1)
        .returning(|_, _| Ok("mp".into()));
    mocks.uploads.expect_insert().returning(|_| Ok(()));
    mocks
        .store
        .expect_presign_part()
        .returning(|_, _, _, _, _| Ok(presigned("http://s3/part")));
    let start = StartDirectUpload::new(mocks.ports(), u64::MAX, policies());

    let ticket = start.execute(start_request((5 << 30) + 1)).await.unwrap();

    assert!(matches!(ticket.target, DirectTarget::Multipart { .. }));
}

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
