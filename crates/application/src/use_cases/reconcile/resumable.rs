//! Resumable uploads in reconciliation: expired ones end, live ones keep what they hold.

use stowage_domain::BlobKey;

use super::{Pending, Reconcile, ReconcileReport};
use crate::error::Error;
use crate::ports::{Concat, RepoError, ResumableStage};

/// Uploads handled per call of the repository.
const PAGE: u32 = 1_000;

impl Reconcile {
    /// Ends the resumable uploads that expired (their unfinished bytes, or a finished partial's
    /// blob, then their state) and adds what the live ones hold in the store to `pending`.
    pub(super) async fn resumable_uploads(
        &self,
        dry_run: bool,
        report: &mut ReconcileReport,
        pending: &mut Pending,
    ) -> Result<(), Error> {
        let Some((uploads, store)) = &self.resumable else {
            return Ok(());
        };
        let now = self.clock.now();
        for upload in uploads.live(now, u32::MAX).await? {
            let key = BlobKey::new(upload.account_id, upload.file_id);
            // A finished partial's blob has no record, and an open upload's may be being
            // finished right now.
            pending.files.insert(upload.file_id);
            if upload.stage == ResumableStage::Open {
                pending.strays.extend(store.stray_ids(&key, &upload.store));
            }
        }
        loop {
            let expired = uploads.expired(now, PAGE).await?;
            if expired.is_empty() {
                return Ok(());
            }
            for upload in &expired {
                report.expired_resumable_uploads.push(upload.file_id);
                if dry_run {
                    continue;
                }
                let key = BlobKey::new(upload.account_id, upload.file_id);
                // A completion that recorded the file and died before it marked the upload left
                // an ordinary file: only the state goes.
                let recorded = match self.repo.get(upload.file_id).await {
                    Ok(_) => true,
                    Err(RepoError::NotFound) => false,
                    Err(e) => return Err(e.into()),
                };
                if !recorded {
                    match (upload.stage, &upload.concat) {
                        (ResumableStage::Open, _) => {
                            store.abort(&key, &upload.store).await?;
                            // Bytes finished by a completion that died before its record.
                            self.blobs.delete(&key).await?;
                        }
                        (ResumableStage::Completed, Some(Concat::Partial)) => {
                            self.blobs.delete(&key).await?;
                        }
                        (ResumableStage::Completed, _) => {}
                    }
                    pending.ended.insert(upload.file_id);
                }
                uploads.delete(upload.id).await?;
                report.removed += 1;
            }
            if dry_run || expired.len() < PAGE as usize {
                return Ok(());
            }
        }
    }
}
