//! Reconciliation: blobs without a record, leftovers of unfinished writes, records without a blob.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use stowage_domain::{BlobKey, FileId};

use crate::error::Error;
use crate::ports::{BlobStore, Clock, FileRepository, ListedBlob, RepoError};

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
    /// Orphan blobs, leftovers and replaced files removed.
    pub removed: u64,
}

/// Finds orphans in both directions and removes orphan blobs.
pub struct Reconcile {
    repo: Arc<dyn FileRepository>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
}

impl Reconcile {
    /// A reconciliation over `repo` and `blobs`.
    pub fn new(
        repo: Arc<dyn FileRepository>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { repo, blobs, clock }
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
                    if modified > cutoff {
                        report.young += 1;
                    } else {
                        report.orphan_blobs.push(key);
                    }
                }
                ListedBlob::Stray { id, modified } => {
                    if modified > cutoff {
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
        Ok(report)
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
}
