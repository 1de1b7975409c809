use super::*;
use crate::ports::blob_store::MockBlobStore;
use crate::ports::clock::MockClock;
use crate::ports::file_repository::MockFileRepository;
use crate::use_cases::fixtures::record;
use mockall::predicate::eq;
use stowage_domain::AccountId;
use time::OffsetDateTime;

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

#[tokio::test]
async fn reconcile_finds_both_kinds_and_removes_only_old_orphans() {
    let kept = record(Some(1), 1);
    let lost = record(Some(1), 1);
    let old_orphan = BlobKey::new(AccountId::new(1), FileId::new_random());
    let young_orphan = BlobKey::new(AccountId::new(1), FileId::new_random());
    let kept_key = kept.blob_key();
    let records = vec![kept.clone(), lost.clone()];

    let mut repo = MockFileRepository::new();
    repo.expect_scan()
        .with(eq(None), eq(SCAN_PAGE))
        .returning(move |_, _| Ok(records.clone()));
    repo.expect_scan().returning(|_, _| Ok(vec![]));
    repo.expect_scan_replaced().returning(|_, _| Ok(vec![]));
    repo.expect_get()
        .with(eq(old_orphan.file_id()))
        .returning(|_| Err(RepoError::NotFound));
    let mut blobs = MockBlobStore::new();
    blobs.expect_list().returning(move || {
        let items = vec![
            Ok(ListedBlob::Blob {
                key: kept_key,
                size: 1,
                modified: at(0),
            }),
            Ok(ListedBlob::Blob {
                key: old_orphan,
                size: 1,
                modified: at(0),
            }),
            Ok(ListedBlob::Blob {
                key: young_orphan,
                size: 1,
                modified: at(990),
            }),
            Ok(ListedBlob::Stray {
                id: "tmp".into(),
                modified: at(0),
            }),
        ];
        Ok(Box::pin(futures_util::stream::iter(items)))
    });
    blobs
        .expect_delete()
        .with(eq(old_orphan))
        .times(1)
        .returning(|_| Ok(()));
    blobs.expect_remove_stray().times(1).returning(|_| Ok(()));
    let mut clock = MockClock::new();
    clock.expect_now().returning(|| at(1_000));

    let report = Reconcile::new(Arc::new(repo), Arc::new(blobs), Arc::new(clock))
        .execute(Duration::from_secs(60), false)
        .await
        .unwrap();

    assert_eq!(report.records, 2);
    assert_eq!(report.blobs, 3);
    assert_eq!(report.orphan_blobs, vec![old_orphan]);
    assert_eq!(report.strays, vec!["tmp".to_owned()]);
    assert_eq!(report.young, 1);
    assert_eq!(report.missing_blobs, vec![lost.id()]);
    assert_eq!(report.removed, 2);
}

#[tokio::test]
async fn an_empty_file_without_a_blob_is_not_reported_missing() {
    let full = record(Some(1), 1);
    let empty = stowage_domain::FileRecord::new(stowage_domain::FileRecordParts {
        id: FileId::new_random(),
        filename: full.filename().clone(),
        content_type: full.content_type().clone(),
        size: 0,
        sha256: None,
        created_at: full.created_at(),
        account_id: full.account_id(),
        user_id: full.user_id(),
    });
    let records = vec![full.clone(), empty];
    let mut repo = MockFileRepository::new();
    repo.expect_scan()
        .with(eq(None), eq(SCAN_PAGE))
        .returning(move |_, _| Ok(records.clone()));
    repo.expect_scan().returning(|_, _| Ok(vec![]));
    repo.expect_scan_replaced().returning(|_, _| Ok(vec![]));
    let mut blobs = MockBlobStore::new();
    blobs
        .expect_list()
        .returning(|| Ok(Box::pin(futures_util::stream::empty())));
    let mut clock = MockClock::new();
    clock.expect_now().returning(|| at(1_000));

    let report = Reconcile::new(Arc::new(repo), Arc::new(blobs), Arc::new(clock))
        .execute(Duration::from_secs(60), true)
        .await
        .unwrap();

    assert_eq!(report.missing_blobs, vec![full.id()]);
}

#[tokio::test]
async fn reconcile_dry_run_removes_nothing() {
    let orphan = BlobKey::new(AccountId::new(1), FileId::new_random());
    let mut repo = MockFileRepository::new();
    repo.expect_scan().returning(|_, _| Ok(vec![]));
    repo.expect_scan_replaced().returning(|_, _| Ok(vec![]));
    let mut blobs = MockBlobStore::new();
    blobs.expect_list().returning(move || {
        let items = vec![Ok(ListedBlob::Blob {
            key: orphan,
            size: 1,
            modified: at(0),
        })];
        Ok(Box::pin(futures_util::stream::iter(items)))
    });
    blobs.expect_delete().times(0);
    let mut clock = MockClock::new();
    clock.expect_now().returning(|| at(1_000));
    let report = Reconcile::new(Arc::new(repo), Arc::new(blobs), Arc::new(clock))
        .execute(Duration::from_secs(60), true)
        .await
        .unwrap();
    assert_eq!(report.orphan_blobs, vec![orphan]);
    assert_eq!(report.removed, 0);
}

fn direct_upload(expires_at: i64) -> crate::ports::DirectUpload {
    crate::ports::DirectUpload {
        id: crate::ports::DirectUploadId::new_random(),
        file_id: FileId::new_random(),
        account_id: AccountId::new(1),
        user_id: None,
        principal_kind: stowage_domain::PrincipalKind::Public,
        filename: stowage_domain::Filename::sanitize("a"),
        declared_type: "text/plain".into(),
        size: 1,
        sha256: None,
        policy: None,
        key: None,
        visibility: None,
        multipart: Some(format!("mp-{expires_at}")),
        expires_at: at(expires_at),
    }
}

#[tokio::test]
async fn reconcile_ends_expired_direct_uploads_and_spares_pending_ones() {
    use crate::ports::direct_upload_repository::MockDirectUploadRepository;
    use crate::ports::direct_uploads::MockDirectUploadStore;
    let (expired, live) = (direct_upload(500), direct_upload(2_000));
    let (expired_key, live_key) = (
        BlobKey::new(AccountId::new(1), expired.file_id),
        BlobKey::new(AccountId::new(1), live.file_id),
    );
    let mut uploads = MockDirectUploadRepository::new();
    let rows = vec![expired.clone(), live.clone()];
    uploads
        .expect_unfinished()
        .returning(move |_| Ok(rows.clone()));
    let expired_id = expired.id;
    uploads
        .expect_delete_abandoned()
        .withf(move |id, _| *id == expired_id)
        .times(1)
        .returning(|_, _| Ok(true));
    uploads.expect_purge_completed().returning(|_| Ok(0));
    let mut store = MockDirectUploadStore::new();
    store
        .expect_abort_multipart()
        .withf(|_, id| id == "mp-500")
        .times(1)
        .returning(|_, _| Ok(()));
    store
        .expect_stray_id()
        .returning(|_, id| format!("stray {id}"));
    let mut repo = MockFileRepository::new();
    repo.expect_scan().returning(|_, _| Ok(vec![]));
    repo.expect_scan_replaced().returning(|_, _| Ok(vec![]));
    repo.expect_get()
        .with(eq(expired.file_id))
        .returning(|_| Err(RepoError::NotFound));
    let mut blobs = MockBlobStore::new();
    blobs.expect_list().returning(move || {
        let items = vec![
            Ok(ListedBlob::Blob {
                key: live_key,
                size: 1,
                modified: at(0),
            }),
            Ok(ListedBlob::Stray {
                id: "stray mp-2000".into(),
                modified: at(0),
            }),
        ];
        Ok(Box::pin(futures_util::stream::iter(items)))
    });
    blobs
        .expect_delete()
        .with(eq(expired_key))
        .times(1)
        .returning(|_| Ok(()));
    blobs.expect_remove_stray().never();
    let mut clock = MockClock::new();
    clock.expect_now().returning(|| at(1_000));

    let report = Reconcile::new(Arc::new(repo), Arc::new(blobs), Arc::new(clock))
        .with_direct_uploads(Arc::new(uploads), Arc::new(store))
        .execute(Duration::from_secs(0), false)
        .await
        .unwrap();

    assert_eq!(report.expired_uploads, vec![expired.file_id]);
    assert!(report.orphan_blobs.is_empty(), "{report:?}");
    assert!(report.strays.is_empty(), "{report:?}");
    assert_eq!(report.young, 2);
    assert_eq!(report.removed, 1);
}

#[tokio::test]
async fn an_expired_upload_whose_file_was_recorded_is_settled_not_deleted() {
    use crate::ports::direct_upload_repository::MockDirectUploadRepository;
    use crate::ports::direct_uploads::MockDirectUploadStore;
    // Recorded by a completion that could not mark it; and a pending single `PUT`.
    let file = record(None, 1);
    let (recorded, pending) = (
        crate::ports::DirectUpload {
            file_id: file.id(),
            multipart: None,
            ..direct_upload(500)
        },
        crate::ports::DirectUpload {
            multipart: None,
            ..direct_upload(2_000)
        },
    );
    let mut uploads = MockDirectUploadRepository::new();
    let rows = vec![recorded.clone(), pending.clone()];
    uploads
        .expect_unfinished()
        .returning(move |_| Ok(rows.clone()));
    let recorded_id = recorded.id;
    uploads
        .expect_mark_completed()
        .withf(move |id, token| *id == recorded_id && token.is_none())
        .times(1)
        .returning(|_, _| Ok(()));
    uploads.expect_delete_abandoned().never();
    uploads.expect_purge_completed().returning(|_| Ok(0));
    let mut store = MockDirectUploadStore::new();
    store.expect_discard_staged().never();
    store
        .expect_staged_id()
        .returning(|_, id| format!("staged {id}"));
    let staged = format!("staged {}", pending.id);
    let mut repo = MockFileRepository::new();
    let scanned = file.clone();
    repo.expect_scan().returning(move |after, _| {
        Ok(if after.is_none() {
            vec![scanned.clone()]
        } else {
            vec![]
        })
    });
    repo.expect_scan_replaced().returning(|_, _| Ok(vec![]));
    repo.expect_get()
        .with(eq(recorded.file_id))
        .returning(move |_| Ok(file.clone()));
    let recorded_key = BlobKey::new(AccountId::new(1), recorded.file_id);
    let mut blobs = MockBlobStore::new();
    blobs.expect_list().returning(move || {
        let items = vec![
            Ok(ListedBlob::Blob {
                key: recorded_key,
                size: 1,
                modified: at(0),
            }),
            Ok(ListedBlob::Stray {
                id: staged.clone(),
                modified: at(0),
            }),
        ];
        Ok(Box::pin(futures_util::stream::iter(items)))
    });
    blobs.expect_delete().never();
    blobs.expect_remove_stray().never();
    let mut clock = MockClock::new();
    clock.expect_now().returning(|| at(1_000));

    let report = Reconcile::new(Arc::new(repo), Arc::new(blobs), Arc::new(clock))
        .with_direct_uploads(Arc::new(uploads), Arc::new(store))
        .execute(Duration::from_secs(0), false)
        .await
        .unwrap();

    assert!(report.expired_uploads.is_empty(), "{report:?}");
    assert!(report.orphan_blobs.is_empty(), "{report:?}");
    assert!(report.strays.is_empty(), "{report:?}");
    assert_eq!(report.removed, 0);
}

#[tokio::test]
async fn variants_live_and_die_with_their_file() {
    use stowage_domain::image::variant::VariantName;
    let kept = record(Some(1), 1);
    let name = VariantName::parse("w32-h32-cover.png").unwrap();
    let kept_variant = kept.blob_key().with_variant(name);
    let orphan_variant = BlobKey::new(AccountId::new(1), FileId::new_random()).with_variant(name);
    let kept_key = kept.blob_key();
    let records = vec![kept.clone()];

    let mut repo = MockFileRepository::new();
    repo.expect_scan()
        .with(eq(None), eq(SCAN_PAGE))
        .returning(move |_, _| Ok(records.clone()));
    repo.expect_scan().returning(|_, _| Ok(vec![]));
    repo.expect_scan_replaced().returning(|_, _| Ok(vec![]));
    repo.expect_get()
        .with(eq(orphan_variant.file_id()))
        .returning(|_| Err(RepoError::NotFound));
    let mut blobs = MockBlobStore::new();
    blobs.expect_list().returning(move || {
        let items = [kept_key, kept_variant, orphan_variant].map(|key| {
            Ok(ListedBlob::Blob {
                key,
                size: 1,
                modified: at(0),
            })
        });
        Ok(Box::pin(futures_util::stream::iter(items)))
    });
    blobs
        .expect_delete()
        .with(eq(orphan_variant))
        .times(1)
        .returning(|_| Ok(()));
    let mut clock = MockClock::new();
    clock.expect_now().returning(|| at(1_000));

    let report = Reconcile::new(Arc::new(repo), Arc::new(blobs), Arc::new(clock))
        .execute(Duration::from_secs(60), false)
        .await
        .unwrap();

    assert_eq!(report.orphan_blobs, vec![orphan_variant]);
    assert!(report.missing_blobs.is_empty());
    assert_eq!(report.removed, 1);
}
