use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::{FutureExt, stream};
use mockall::predicate::eq;
use stowage_domain::{FileId, PrincipalKind, Sha256Digest};

use super::*;
use crate::ports::blob_store::MockBlobStore;
use crate::ports::clock::MockClock;
use crate::ports::file_repository::{MockFileRepository, RepoError};
use crate::ports::upload_grant_store::MockUploadGrantStore;
use crate::ports::upload_url_signer::MockUploadUrlSigner;
use crate::stream::{BodyError, StoredBlob};
use crate::use_cases::UploadPolicy;
use crate::use_cases::fixtures::{public, user};

const NOW: i64 = 1_000_000;

fn clock() -> Arc<MockClock> {
    let mut clock = MockClock::new();
    clock
        .expect_now()
        .returning(|| OffsetDateTime::from_unix_timestamp(NOW).unwrap());
    Arc::new(clock)
}

fn grant(expires: i64) -> UploadGrant {
    UploadGrant {
        id: UploadGrantId::new_random(),
        principal: GrantPrincipal::of(&user(7, 3)),
        expires,
        policy: None,
        key: None,
        max_bytes: None,
        visibility: None,
    }
}

fn body(data: &'static [u8]) -> ByteStream {
    Box::pin(stream::iter(vec![Ok::<_, BodyError>(Bytes::from_static(
        data,
    ))]))
}

fn url_upload(data: &'static [u8]) -> UrlUpload {
    UrlUpload {
        filename: Some("a.txt".into()),
        declared_type: Some("text/plain".into()),
        body: body(data),
        length: Some(data.len() as u64),
        key: None,
        metadata: Metadata::default(),
        request: RequestFacts::default(),
    }
}

fn creator() -> CreateUploadUrl {
    let mut signer = MockUploadUrlSigner::new();
    signer
        .expect_sign()
        .returning(|g| format!("token-{}", g.expires));
    CreateUploadUrl::new(
        Arc::new(signer),
        clock(),
        HashSet::from(["avatar".to_owned()]),
        1000,
    )
}

fn options(seconds: u64) -> UploadUrlOptions {
    UploadUrlOptions {
        lifetime: Duration::from_secs(seconds),
        ..UploadUrlOptions::default()
    }
}

/// Blobs and records that store anything once.
fn storing() -> (MockFileRepository, MockBlobStore) {
    let mut blobs = MockBlobStore::new();
    blobs.expect_put().times(1).returning(|_, _, _| {
        Ok(StoredBlob {
            size: 5,
            sha256: Sha256Digest::from_bytes([1; 32]),
        })
    });
    let mut repo = MockFileRepository::new();
    repo.expect_insert().times(1).returning(|_, _| Ok(()));
    (repo, blobs)
}

fn with_url(
    repo: MockFileRepository,
    blobs: MockBlobStore,
    grants: MockUploadGrantStore,
) -> UploadWithUrl {
    let policies = HashMap::from([("avatar".to_owned(), UploadPolicy::avatar())]);
    let upload = UploadFile::new(Arc::new(repo), Arc::new(blobs), clock(), 100, policies);
    UploadWithUrl::new(
        upload,
        Arc::new(MockUploadUrlSigner::new()),
        Arc::new(grants),
        clock(),
    )
}

/// A store whose claim answers `free`, and whose hold never loses the claim.
fn grants(free: bool) -> MockUploadGrantStore {
    let mut grants = MockUploadGrantStore::new();
    grants
        .expect_claim()
        .times(1)
        .withf(|_, _, _, lease| *lease == CLAIM_LEASE)
        .returning(move |_, _, _, _| Ok(free));
    grants
        .expect_hold()
        .returning(|_, _, _| std::future::pending().boxed());
    grants
}

#[test]
fn an_upload_url_grants_the_asker_until_its_expiry() {
    let mut signer = MockUploadUrlSigner::new();
    signer
        .expect_sign()
        .withf(|g| {
            g.principal.kind == PrincipalKind::Public
                && g.principal.user_id.is_none()
                && g.principal.account_id.get() == 4
                && g.expires == NOW + 60
                && g.policy.as_deref() == Some("avatar")
                && g.max_bytes == Some(10)
        })
        .times(1)
        .returning(|_| "signed".to_owned());
    let create = CreateUploadUrl::new(
        Arc::new(signer),
        clock(),
        HashSet::from(["avatar".to_owned()]),
        1000,
    );

    let issued = create
        .execute(
            &public(4),
            UploadUrlOptions {
                lifetime: Duration::from_secs(60),
                policy: Some("avatar".into()),
                key: None,
                max_bytes: Some(10),
                visibility: None,
            },
        )
        .unwrap();

    assert_eq!(issued.token, "signed");
    assert_eq!(issued.expires_at.unix_timestamp(), NOW + 60);
    assert!(!format!("{issued:?}").contains("signed"));
}

#[test]
fn an_upload_url_is_refused_for_options_out_of_bounds() {
    let create = creator();
    let refused = [
        options(0),
        options(86_401),
        UploadUrlOptions {
            policy: Some("nope".into()),
            ..options(60)
        },
        UploadUrlOptions {
            max_bytes: Some(0),
            ..options(60)
        },
        UploadUrlOptions {
            max_bytes: Some(1001),
            ..options(60)
        },
    ];
    for asked in refused {
        let err = create.execute(&user(1, 1), asked.clone()).unwrap_err();
        assert!(matches!(err, Error::Validation(_)), "{asked:?}: {err:?}");
    }
    assert!(create.execute(&user(1, 1), options(86_400)).is_ok());
}

#[test]
fn a_token_that_does_not_verify_or_has_expired_is_an_invalid_signature() {
    for (verified, ok) in [
        (None, false),
        (Some(grant(NOW)), false),
        (Some(grant(NOW - 1)), false),
        (Some(grant(NOW + 1)), true),
    ] {
        let mut signer = MockUploadUrlSigner::new();
        let returned = verified.clone();
        signer.expect_verify().returning(move |_| returned.clone());
        let use_case = UploadWithUrl::new(
            UploadFile::new(
                Arc::new(MockFileRepository::new()),
                Arc::new(MockBlobStore::new()),
                clock(),
                100,
                HashMap::new(),
            ),
            Arc::new(signer),
            Arc::new(MockUploadGrantStore::new()),
            clock(),
        );

        let got = use_case.grant("token");

        match got {
            Ok(g) => assert!(ok && Some(g) == verified),
            Err(e) => assert!(!ok && matches!(e, Error::InvalidSignature), "{e:?}"),
        }
    }
}

#[tokio::test]
async fn an_upload_uses_the_grant_up_as_its_principal_under_its_key() {
    let (mut repo, blobs) = storing();
    repo.expect_get_by_key()
        .returning(|_, _| Err(RepoError::NotFound));
    let mut grants = grants(true);
    grants
        .expect_complete()
        .times(1)
        .returning(|_, _, _| Ok(true));
    grants.expect_release().never();
    let use_case = with_url(repo, blobs, grants);
    let mut signed = grant(NOW + 60);
    signed.key = Some(FileKey::parse("avatars/7").unwrap());

    let record = use_case
        .execute(signed, url_upload(b"hello"))
        .await
        .unwrap();

    assert_eq!(record.user_id().map(|u| u.get()), Some(7));
    assert_eq!(record.account_id().get(), 3);
    assert_eq!(record.key().map(FileKey::as_str), Some("avatars/7"));
}

#[tokio::test]
async fn a_used_or_busy_grant_stores_nothing() {
    let mut blobs = MockBlobStore::new();
    blobs.expect_put().never();
    let mut grants = grants(false);
    grants.expect_complete().never();
    grants.expect_release().never();
    let use_case = with_url(MockFileRepository::new(), blobs, grants);

    let err = use_case
        .execute(grant(NOW + 60), url_upload(b"hello"))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::InvalidSignature), "{err:?}");
}

#[tokio::test]
async fn an_upload_the_rules_refuse_releases_the_grant() {
    let mut grants = grants(true);
    let mut signed = grant(NOW + 60);
    let id = signed.id;
    grants
        .expect_release()
        .with(eq(id), mockall::predicate::always())
        .times(1)
        .returning(|_, _| Ok(()));
    grants.expect_complete().never();
    let use_case = with_url(MockFileRepository::new(), MockBlobStore::new(), grants);
    signed.policy = Some("avatar".into());

    let err = use_case
        .execute(signed, url_upload(b"plain text"))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::UnsupportedMediaType(_)), "{err:?}");
}

#[tokio::test]
async fn a_key_other_than_the_signed_one_or_a_stated_length_over_the_grant_claims_nothing() {
    let cases: [(Option<&str>, Option<&str>, Option<u64>); 3] = [
        (Some("a"), Some("b"), None),
        (None, Some("b"), None),
        (None, None, Some(4)),
    ];
    for (signed_key, asked_key, max_bytes) in cases {
        let mut grants = MockUploadGrantStore::new();
        grants.expect_claim().never();
        let use_case = with_url(MockFileRepository::new(), MockBlobStore::new(), grants);
        let mut signed = grant(NOW + 60);
        signed.key = signed_key.map(|k| FileKey::parse(k).unwrap());
        signed.max_bytes = max_bytes;
        let mut upload = url_upload(b"hello");
        upload.key = asked_key.map(|k| FileKey::parse(k).unwrap());

        let err = use_case.execute(signed, upload).await.unwrap_err();

        match max_bytes {
            Some(limit) => assert!(matches!(err, Error::TooLarge { limit: l } if l == limit)),
            None => assert!(matches!(err, Error::Validation(_)), "{err:?}"),
        }
    }
}

#[tokio::test]
async fn a_body_over_the_grants_limit_without_a_stated_length_is_cut_off() {
    let mut blobs = MockBlobStore::new();
    blobs.expect_put().never();
    let mut grants = grants(true);
    grants.expect_release().times(1).returning(|_, _| Ok(()));
    let use_case = with_url(MockFileRepository::new(), blobs, grants);
    let mut signed = grant(NOW + 60);
    signed.max_bytes = Some(3);
    let mut upload = url_upload(b"hello");
    upload.length = None;

    let err = use_case.execute(signed, upload).await.unwrap_err();

    assert!(matches!(err, Error::TooLarge { limit: 3 }), "{err:?}");
}

#[tokio::test]
async fn an_upload_whose_claim_is_taken_over_answers_invalid_signature() {
    let mut grants = MockUploadGrantStore::new();
    grants.expect_claim().returning(|_, _, _, _| Ok(true));
    grants
        .expect_hold()
        .returning(|_, _, _| std::future::ready(()).boxed());
    grants.expect_complete().never();
    grants.expect_release().never();
    let mut blobs = MockBlobStore::new();
    // The body never ends: only the lost claim can end this upload.
    blobs
        .expect_put()
        .returning(|_, _, _| Err(crate::ports::BlobError::Unavailable("unreachable".into())));
    let use_case = with_url(MockFileRepository::new(), blobs, grants);
    let mut upload = url_upload(b"");
    upload.length = None;
    upload.body = Box::pin(stream::pending());

    let err = use_case.execute(grant(NOW + 60), upload).await.unwrap_err();

    assert!(matches!(err, Error::InvalidSignature), "{err:?}");
}

#[tokio::test]
async fn a_grant_store_failure_is_a_database_failure() {
    let mut grants = MockUploadGrantStore::new();
    grants
        .expect_claim()
        .returning(|_, _, _, _| Err(store_down()));
    let use_case = with_url(MockFileRepository::new(), MockBlobStore::new(), grants);

    let err = use_case
        .execute(grant(NOW + 60), url_upload(b"hello"))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::DatabaseUnavailable(_)), "{err:?}");
}

/// Blobs and records that store one file and, when `deletable`, delete exactly that file again.
fn storing_then_deleting(deletable: bool) -> (MockFileRepository, MockBlobStore) {
    let stored: Arc<Mutex<Option<FileId>>> = Arc::default();
    let (mut repo, mut blobs) = (MockFileRepository::new(), MockBlobStore::new());
    blobs.expect_put().times(1).returning(|_, _, _| {
        Ok(StoredBlob {
            size: 5,
            sha256: Sha256Digest::from_bytes([1; 32]),
        })
    });
    let inserted = Arc::clone(&stored);
    repo.expect_insert().times(1).returning(move |record, _| {
        *inserted.lock().unwrap() = Some(record.id());
        Ok(())
    });
    repo.expect_delete()
        .times(1)
        .withf(move |id, _| *stored.lock().unwrap() == Some(*id))
        .returning(move |_, _| {
            if deletable {
                Ok(())
            } else {
                Err(RepoError::Unavailable("connection refused".into()))
            }
        });
    blobs
        .expect_delete()
        .times(usize::from(deletable))
        .returning(|_| Ok(()));
    (repo, blobs)
}

/// A store whose claim succeeds and whose `complete` answers `completed` every time; its hold
/// never loses the claim, and `dropped` tells whether the hold was dropped.
fn completing(
    completed: fn() -> Result<bool, crate::ports::GrantStoreError>,
    attempts: usize,
    dropped: Arc<AtomicBool>,
) -> MockUploadGrantStore {
    struct Guard(Arc<AtomicBool>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let mut grants = MockUploadGrantStore::new();
    grants.expect_claim().returning(|_, _, _, _| Ok(true));
    grants.expect_hold().returning(move |_, _, _| {
        let guard = Guard(Arc::clone(&dropped));
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }
        .boxed()
    });
    grants
        .expect_complete()
        .times(attempts)
        .returning(move |_, _, _| completed());
    grants
}

#[tokio::test]
async fn a_file_whose_claim_was_lost_before_it_was_marked_used_is_deleted() {
    let (repo, blobs) = storing_then_deleting(true);
    let dropped = Arc::new(AtomicBool::new(false));
    let mut grants = completing(|| Ok(false), 1, Arc::clone(&dropped));
    grants.expect_release().returning(|_, _| Ok(()));
    let use_case = with_url(repo, blobs, grants);

    let err = use_case
        .execute(grant(NOW + 60), url_upload(b"hello"))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::InvalidSignature), "{err:?}");
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_file_whose_grant_cannot_be_marked_used_is_deleted_and_the_url_freed() {
    let (repo, blobs) = storing_then_deleting(true);
    let dropped = Arc::new(AtomicBool::new(false));
    let mut grants = completing(|| Err(store_down()), 3, Arc::clone(&dropped));
    grants.expect_release().times(1).returning(|_, _| Ok(()));
    let use_case = with_url(repo, blobs, grants);

    let err = use_case
        .execute(grant(NOW + 60), url_upload(b"hello"))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::DatabaseUnavailable(_)), "{err:?}");
    assert!(dropped.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_file_that_can_be_neither_marked_used_nor_deleted_keeps_the_claim() {
    let (repo, blobs) = storing_then_deleting(false);
    let dropped = Arc::new(AtomicBool::new(false));
    let mut grants = completing(|| Err(store_down()), 3, Arc::clone(&dropped));
    grants.expect_release().never();
    let use_case = with_url(repo, blobs, grants);

    let err = use_case
        .execute(grant(NOW + 60), url_upload(b"hello"))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::DatabaseUnavailable(_)), "{err:?}");
    // Dropping the hold would release the claim in the background.
    assert!(!dropped.load(Ordering::SeqCst));
}

fn store_down() -> crate::ports::GrantStoreError {
    crate::ports::GrantStoreError::Unavailable("connection refused".into())
}

#[tokio::test]
async fn an_upload_whose_record_may_have_been_written_keeps_the_claim() {
    let mut blobs = MockBlobStore::new();
    blobs.expect_put().times(1).returning(|_, _, _| {
        Ok(StoredBlob {
            size: 5,
            sha256: Sha256Digest::from_bytes([1; 32]),
        })
    });
    // The bytes stay for gc: the record may yet show up.
    blobs.expect_delete().never();
    let mut repo = MockFileRepository::new();
    repo.expect_insert()
        .times(1)
        .returning(|_, _| Err(RepoError::Unconfirmed("connection reset".into())));
    repo.expect_get().returning(|_| Err(RepoError::NotFound));
    let dropped = Arc::new(AtomicBool::new(false));
    let mut grants = completing(|| Ok(true), 0, Arc::clone(&dropped));
    grants.expect_release().never();
    let use_case = with_url(repo, blobs, grants);

    let err = use_case
        .execute(grant(NOW + 60), url_upload(b"hello"))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::DatabaseUnavailable(_)), "{err:?}");
    // Released (or its hold dropped), the claim would let the URL store a second file.
    assert!(!dropped.load(Ordering::SeqCst));
}
