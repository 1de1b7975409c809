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
                if crate::use_cases::variants::may_have_variants(record) {
                    self.blobs.delete_variants(&record.blob_key()).await?;
                }
                report.removed += 1;
            }
            if dry_run {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests;
