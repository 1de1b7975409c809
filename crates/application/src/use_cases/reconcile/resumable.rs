//! Resumable uploads in reconciliation: expired ones end, live ones keep what they hold.

use stowage_domain::BlobKey;

use super::{Pending, Reconcile, ReconcileReport};
use crate::error::Error;
use crate::ports::{Concat, RepoError, ResumableStage, ResumableStore, ResumableUpload};

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
            let mut ended = 0;
            for upload in &expired {
                report.expired_resumable_uploads.push(upload.file_id);
                if dry_run {
                    continue;
                }
                // One upload that cannot be ended now must not stop the rest of the run.
                match self.end_resumable(upload, store.as_ref()).await {
                    Ok(recorded) => {
                        if !recorded {
                            pending.ended.insert(upload.file_id);
                        }
                        uploads.delete(upload.id).await?;
                        report.removed += 1;
                        ended += 1;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, upload = %upload.id, "an expired resumable upload could not be ended; the next gc will try again");
                    }
                }
            }
            // A page of uploads that all failed would come back forever.
            if dry_run || expired.len() < PAGE as usize || ended == 0 {
                return Ok(());
            }
        }
    }
}

impl Reconcile {
    /// Drops what an expired upload holds in the store; says whether its file was recorded (a
    /// completion that died before it marked the upload left an ordinary file, which stays).
    async fn end_resumable(
        &self,
        upload: &ResumableUpload,
        store: &dyn ResumableStore,
    ) -> Result<bool, Error> {
        let key = BlobKey::new(upload.account_id, upload.file_id);
        match self.repo.get(upload.file_id).await {
            Ok(_) => return Ok(true),
            Err(RepoError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        match (upload.stage, &upload.concat) {
            // A final concatenation holds nothing unfinished, at most its joined blob.
            (ResumableStage::Open, Some(Concat::Final(_))) => self.blobs.delete(&key).await?,
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
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use mockall::predicate::eq;
    use stowage_domain::{AccountId, BlobKey, FileId, PrincipalKind};
    use time::OffsetDateTime;

    use crate::ports::blob_store::MockBlobStore;
    use crate::ports::clock::MockClock;
    use crate::ports::file_repository::MockFileRepository;
    use crate::ports::resumable_repository::MockResumableRepository;
    use crate::ports::resumable_store::MockResumableStore;
    use crate::ports::{
        Concat, ListedBlob, RepoError, ResumableId, ResumableStage, ResumableUpload, StoreProgress,
    };
    use crate::use_cases::Reconcile;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(seconds).unwrap()
    }

    fn upload(stage: ResumableStage, concat: Option<Concat>, expires_at: i64) -> ResumableUpload {
        ResumableUpload {
            id: ResumableId::new_random(),
            file_id: FileId::new_random(),
            account_id: AccountId::new(1),
            user_id: None,
            principal_kind: PrincipalKind::Public,
            length: Some(10),
            offset: 4,
            metadata: None,
            concat,
            store: StoreProgress(format!("progress-{expires_at}")),
            digest: Vec::new(),
            head: Vec::new(),
            stage,
            expires_at: at(expires_at),
        }
    }

    fn key(upload: &ResumableUpload) -> BlobKey {
        BlobKey::new(upload.account_id, upload.file_id)
    }

    #[tokio::test]
    async fn expired_uploads_end_and_live_ones_keep_their_bytes() {
        let open = upload(ResumableStage::Open, None, 500);
        let partial = upload(ResumableStage::Completed, Some(Concat::Partial), 500);
        let live_open = upload(ResumableStage::Open, None, 2_000);
        let live_partial = upload(ResumableStage::Completed, Some(Concat::Partial), 2_000);
        let (open_key, partial_key) = (key(&open), key(&partial));
        let live_stray = format!("stray-of-{}", live_open.file_id);

        let mut uploads = MockResumableRepository::new();
        let live = vec![live_open.clone(), live_partial.clone()];
        uploads
            .expect_live()
            .returning(move |_, _| Ok(live.clone()));
        let expired = vec![open.clone(), partial.clone()];
        let mut pages = vec![Vec::new(), expired];
        uploads
            .expect_expired()
            .returning(move |_, _| Ok(pages.pop().unwrap_or_default()));
        uploads
            .expect_delete()
            .with(eq(open.id))
            .times(1)
            .returning(|_| Ok(()));
        uploads
            .expect_delete()
            .with(eq(partial.id))
            .times(1)
            .returning(|_| Ok(()));
        let mut store = MockResumableStore::new();
        let stray = live_stray.clone();
        store
            .expect_stray_ids()
            .returning(move |_, _| vec![stray.clone()]);
        store
            .expect_abort()
            .withf(move |k, _| *k == open_key)
            .times(1)
            .returning(|_, _| Ok(()));

        let mut repo = MockFileRepository::new();
        repo.expect_scan().returning(|_, _| Ok(vec![]));
        repo.expect_scan_replaced().returning(|_, _| Ok(vec![]));
        repo.expect_get().returning(|_| Err(RepoError::NotFound));
        let mut blobs = MockBlobStore::new();
        let (live_partial_key, stray) = (key(&live_partial), live_stray.clone());
        blobs.expect_list().returning(move || {
            let items = vec![
                Ok(ListedBlob::Blob {
                    key: live_partial_key,
                    size: 4,
                    modified: at(0),
                }),
                Ok(ListedBlob::Stray {
                    id: stray.clone(),
                    modified: at(0),
                }),
            ];
            Ok(Box::pin(futures_util::stream::iter(items)))
        });
        // The expired open upload's key (bytes a dead completion may have finished) and the
        // expired partial's blob go; nothing live does.
        blobs
            .expect_delete()
            .withf(move |k| *k == open_key || *k == partial_key)
            .times(2)
            .returning(|_| Ok(()));
        blobs.expect_remove_stray().times(0);
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| at(1_000));

        let report = Reconcile::new(Arc::new(repo), Arc::new(blobs), Arc::new(clock))
            .with_resumable_uploads(Arc::new(uploads), Arc::new(store))
            .execute(Duration::from_secs(60), false)
            .await
            .unwrap();

        assert_eq!(
            report.expired_resumable_uploads,
            vec![open.file_id, partial.file_id]
        );
        assert!(report.orphan_blobs.is_empty(), "{report:?}");
        assert!(report.strays.is_empty(), "{report:?}");
        assert_eq!(report.young, 2);
        assert_eq!(report.removed, 2);
    }

    #[tokio::test]
    async fn an_expired_upload_whose_file_was_recorded_keeps_the_file() {
        let open = upload(ResumableStage::Open, None, 500);
        let mut uploads = MockResumableRepository::new();
        uploads.expect_live().returning(|_, _| Ok(vec![]));
        let mut pages = vec![Vec::new(), vec![open.clone()]];
        uploads
            .expect_expired()
            .returning(move |_, _| Ok(pages.pop().unwrap_or_default()));
        uploads.expect_delete().times(1).returning(|_| Ok(()));
        let mut store = MockResumableStore::new();
        store.expect_abort().times(0);
        let mut repo = MockFileRepository::new();
        repo.expect_scan().returning(|_, _| Ok(vec![]));
        repo.expect_scan_replaced().returning(|_, _| Ok(vec![]));
        let recorded = crate::use_cases::fixtures::record(None, 1);
        repo.expect_get().returning(move |_| Ok(recorded.clone()));
        let mut blobs = MockBlobStore::new();
        blobs
            .expect_list()
            .returning(|| Ok(Box::pin(futures_util::stream::empty())));
        blobs.expect_delete().times(0);
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| at(1_000));

        let report = Reconcile::new(Arc::new(repo), Arc::new(blobs), Arc::new(clock))
            .with_resumable_uploads(Arc::new(uploads), Arc::new(store))
            .execute(Duration::from_secs(60), false)
            .await
            .unwrap();

        assert_eq!(report.expired_resumable_uploads, vec![open.file_id]);
    }
}
