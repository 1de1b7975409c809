//! Reconciliation: blobs without a record, leftovers of unfinished writes, records without a blob.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use stowage_domain::{BlobKey, FileId};

use crate::error::Error;
use crate::ports::{
    BlobStore, Clock, DirectUploadRepository, DirectUploadStore, FileRepository, ListedBlob,
    RepoError, ResumableRepository, ResumableStore,
};

mod resumable;

const SCAN_PAGE: u32 = 1_000;

/// What a reconciliation found (and removed, unless it was a dry run).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Records examined.
    pub records: u64,
    /// Blobs examined.
    pub blobs: u64,
    /// Blobs with no record, older than the grace period.
    pub orphan_blobs: Vec<BlobKey>,
    /// Leftovers of unfinished writes older than the grace period.
    pub strays: Vec<String>,
    /// Blobs or leftovers without a record but younger than the grace period (uploads in flight).
    pub young: u64,
    /// Records of non-empty files whose blob is missing (reported, never changed).
    pub missing_blobs: Vec<FileId>,
    /// Files a keyed upload replaced whose deletion never happened, older than the grace period.
    pub replaced_files: Vec<FileId>,
    /// Direct uploads never completed that expired (their objects and multipart uploads go).
    pub expired_uploads: Vec<FileId>,
    /// Resumable uploads that expired (their unfinished bytes and state go).
    pub expired_resumable_uploads: Vec<FileId>,
    /// Orphan blobs, leftovers, replaced files and expired uploads removed.
    pub removed: u64,
    /// Records of upload URLs expired before the grace period (removed unless a dry run).
    pub expired_upload_grants: u64,
}

/// Finds orphans in both directions and removes orphan blobs.
pub struct Reconcile {
    repo: Arc<dyn FileRepository>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    direct: Option<(Arc<dyn DirectUploadRepository>, Arc<dyn DirectUploadStore>)>,
    grants: Option<Arc<dyn crate::ports::UploadGrantStore>>,
    resumable: Option<(Arc<dyn ResumableRepository>, Arc<dyn ResumableStore>)>,
}

/// What pending direct and resumable uploads hold in the store, which no record accounts for yet.
#[derive(Default)]
struct Pending {
    files: HashSet<FileId>,
    ended: HashSet<FileId>,
    strays: HashSet<String>,
}

impl Reconcile {
    /// A reconciliation over `repo` and `blobs`.
    pub fn new(
        repo: Arc<dyn FileRepository>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            repo,
            blobs,
            clock,
            direct: None,
            grants: None,
            resumable: None,
        }
    }

    /// This reconciliation, also ending expired resumable uploads and sparing live ones.
    #[must_use]
    pub fn with_resumable_uploads(
        mut self,
        uploads: Arc<dyn ResumableRepository>,
        store: Arc<dyn ResumableStore>,
    ) -> Self {
        self.resumable = Some((uploads, store));
        self
    }

    /// This reconciliation, also ending expired direct uploads and sparing pending ones.
    #[must_use]
    pub fn with_direct_uploads(
        mut self,
        uploads: Arc<dyn DirectUploadRepository>,
        store: Arc<dyn DirectUploadStore>,
    ) -> Self {
        self.direct = Some((uploads, store));
        self
    }

    /// This reconciliation, also removing the records of expired upload URLs.
    #[must_use]
    pub fn with_upload_grants(mut self, grants: Arc<dyn crate::ports::UploadGrantStore>) -> Self {
        self.grants = Some(grants);
        self
    }

    /// Compares every record with every blob. Records are read first, so a blob written after
    /// that is young and left alone; each orphan is checked once more just before it is removed.
    ///
    /// # Errors
    /// `DatabaseUnavailable`, `StorageUnavailable`.
    pub async fn execute(&self, grace: Duration, dry_run: bool) -> Result<ReconcileReport, Error> {
        let mut report = ReconcileReport::default();
        // (id, blob key, whether the file has bytes): a store may keep an empty blob as nothing.
        let mut records: Vec<(FileId, BlobKey, bool)> = Vec::new();
        let mut after = None;
        loop {
            let page = self.repo.scan(after, SCAN_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id());
            records.extend(page.iter().map(|r| (r.id(), r.blob_key(), r.size() > 0)));
        }
        report.records = records.len() as u64;
        let known: HashSet<FileId> = records.iter().map(|(id, _, _)| *id).collect();

        let mut pending = self.direct_uploads(dry_run, &mut report).await?;
        self.resumable_uploads(dry_run, &mut report, &mut pending)
            .await?;
        let cutoff = self.clock.now() - grace;
        let mut present: HashSet<BlobKey> = HashSet::new();
        let mut listing = self.blobs.list().await?;
        while let Some(item) = listing.next().await {
            match item? {
                ListedBlob::Blob { key, modified, .. } => {
                    report.blobs += 1;
                    present.insert(key);
                    if known.contains(&key.file_id()) {
                        continue;
                    }
                    if pending.ended.contains(&key.file_id()) {
                        continue;
                    }
                    if pending.files.contains(&key.file_id()) {
                        report.young += 1;
                        continue;
                    }
                    if modified > cutoff {
                        report.young += 1;
                    } else {
                        report.orphan_blobs.push(key);
                    }
                }
                ListedBlob::Stray { id, modified } => {
                    if modified > cutoff || pending.strays.contains(&id) {
                        report.young += 1;
                    } else {
                        report.strays.push(id);
                    }
                }
            }
        }
        report.missing_blobs = records
            .iter()
            .filter(|(_, key, has_bytes)| *has_bytes && !present.contains(key))
            .map(|(id, _, _)| *id)
            .collect();

        if !dry_run {
            for key in &report.orphan_blobs {
                match self.repo.get(key.file_id()).await {
                    Err(RepoError::NotFound) => {
                        self.blobs.delete(key).await?;
                        report.removed += 1;
                    }
                    Ok(_) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            for id in &report.strays {
                self.blobs.remove_stray(id).await?;
                report.removed += 1;
            }
        }
        self.remove_replaced(cutoff, dry_run, &mut report).await?;
        if let Some(grants) = &self.grants {
            // The grace period covers replicas whose clocks lag: one may still accept the URL.
            report.expired_upload_grants = grants.remove_expired(cutoff, dry_run).await?;
        }
        Ok(report)
    }

    /// Ends the direct uploads that expired uncompleted (row, then multipart upload or staging
    /// object, and object), settles those whose file was recorded, and forgets completed ones
    /// past their expiry; returns what the pending ones hold.
    async fn direct_uploads(
        &self,
        dry_run: bool,
        report: &mut ReconcileReport,
    ) -> Result<Pending, Error> {
        let mut pending = Pending::default();
        let Some((uploads, store)) = &self.direct else {
            return Ok(pending);
        };
        let now = self.clock.now();
        for upload in uploads.unfinished(u32::MAX).await? {
            let key = BlobKey::new(upload.account_id, upload.file_id);
            let expired = upload.expires_at < now;
            // A completion that recorded the file but never marked the upload (it failed or
            // died in between) leaves a file whose object must stay: the upload is settled.
            if expired {
                match self.repo.get(upload.file_id).await {
                    Ok(_) => {
                        if !dry_run {
                            uploads.mark_completed(upload.id, None).await?;
                        }
                        continue;
                    }
                    Err(RepoError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if expired && dry_run {
                report.expired_uploads.push(upload.file_id);
                continue;
            }
            if !expired || !uploads.delete_abandoned(upload.id, now).await? {
                pending.files.insert(upload.file_id);
                match &upload.multipart {
                    Some(multipart) => pending.strays.insert(store.stray_id(&key, multipart)),
                    None => pending.strays.insert(store.staged_id(&key, upload.id)),
                };
                continue;
            }
            match &upload.multipart {
                Some(multipart) => store.abort_multipart(&key, multipart).await?,
                None => store.discard_staged(&key, upload.id).await?,
            }
            self.blobs.delete(&key).await?;
            report.expired_uploads.push(upload.file_id);
            pending.ended.insert(upload.file_id);
            report.removed += 1;
        }
        if !dry_run {
            uploads.purge_completed(now).await?;
        }
        Ok(pending)
    }

    /// Files a keyed upload replaced but whose deletion never happened (a crash between the two):
    /// removed, record then blob, once older than the grace period (one page of them in a dry run).
    async fn remove_replaced(
        &self,
        cutoff: time::OffsetDateTime,
        dry_run: bool,
        report: &mut ReconcileReport,
    ) -> Result<(), Error> {
        loop {
            let page = self.repo.scan_replaced(cutoff, SCAN_PAGE).await?;
            if page.is_empty() {
                return Ok(());
            }
            for record in &page {
                report.replaced_files.push(record.id());
                if dry_run {
                    continue;
                }
                match self.repo.delete(record.id(), &[]).await {
                    Ok(()) | Err(RepoError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
                self.blobs.delete(&record.blob_key()).await?;
                report.removed += 1;
            }
            if dry_run {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
