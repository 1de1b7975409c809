//! Reporting what happened to files: webhooks through the repository's outbox (in the same
//! transaction as the change), the audit stream through the best-effort publisher.

use std::sync::Arc;

use stowage_domain::FileRecord;

use crate::events::{Actor, EventKind, FileEvent, RequestFacts};
use crate::ports::{Clock, EventPublisher, FileRepository};

/// What use cases need to report events; absent, they report none.
#[derive(Clone)]
pub struct Audit {
    publisher: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
}

impl Audit {
    /// Reports through `publisher` (and the repository's outbox), timed by `clock`.
    pub fn new(publisher: Arc<dyn EventPublisher>, clock: Arc<dyn Clock>) -> Self {
        Self { publisher, clock }
    }

    /// An event of `kind` by `actor` about `record`, now.
    pub fn event(
        &self,
        kind: EventKind,
        actor: Actor,
        record: &FileRecord,
        request: &RequestFacts,
    ) -> FileEvent {
        FileEvent::new(kind, actor, record, request, self.clock.now())
    }

    /// Publishes an event whose change is committed.
    pub async fn publish(&self, event: &FileEvent) {
        self.publisher.publish(event).await;
    }

    /// Reports an event that changes no record (a download, a refused read): kept in the
    /// outbox and published at once, so the read waits for the slower of the two only. A
    /// failure to keep it is logged (and counted by the repository's metrics); the read goes on.
    pub async fn report(&self, repo: &dyn FileRepository, event: FileEvent) {
        let events = std::slice::from_ref(&event);
        let (kept, ()) =
            futures_util::join!(repo.record_events(events), self.publisher.publish(&event));
        if let Err(e) = kept {
            tracing::warn!(error = %e, kind = event.kind.as_str(), "an event could not be kept for webhooks");
        }
    }
}

/// The events of a change, when events are on.
pub(crate) fn events_of(event: Option<&FileEvent>) -> &[FileEvent] {
    event.map_or(&[], std::slice::from_ref)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use bytes::Bytes;
    use futures_util::StreamExt;
    use stowage_domain::{AccessPolicy, ByteRange, Principal};
    use time::OffsetDateTime;

    use super::*;
    use crate::events::ActorKind;
    use crate::ports::PermissionVerdict;
    use crate::ports::blob_store::MockBlobStore;
    use crate::ports::clock::MockClock;
    use crate::ports::file_repository::MockFileRepository;
    use crate::ports::permission_checker::MockPermissionChecker;
    use crate::ports::url_signer::MockUrlSigner;
    use crate::ports::{BlobBody, BlobStore, FileRepository};
    use crate::stream::StoredBlob;
    use crate::use_cases::fixtures::{record, user};
    use crate::use_cases::{DeleteFile, DownloadFile, ReadAccess, UploadFile, UploadRequest};

    /// Every event published, in order.
    #[derive(Default)]
    struct Published(Mutex<Vec<FileEvent>>);

    #[async_trait]
    impl EventPublisher for Published {
        async fn publish(&self, event: &FileEvent) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    fn audit() -> (Arc<Published>, Audit) {
        let published = Arc::new(Published::default());
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| OffsetDateTime::UNIX_EPOCH);
        let audit = Audit::new(
            Arc::clone(&published) as Arc<dyn EventPublisher>,
            Arc::new(clock),
        );
        (published, audit)
    }

    fn facts() -> RequestFacts {
        RequestFacts::new(
            Some("10.0.0.1".into()),
            Some("curl/8"),
            Some("req-1".into()),
        )
    }

    /// A repository that finds `rec` and keeps every event it is given.
    fn repo_keeping(
        rec: stowage_domain::FileRecord,
        kept: &Arc<Mutex<Vec<FileEvent>>>,
    ) -> MockFileRepository {
        let mut repo = crate::use_cases::fixtures::repo_returning(rec);
        let (a, b, c) = (kept.clone(), kept.clone(), kept.clone());
        repo.expect_insert().returning(move |_, events| {
            a.lock().unwrap().extend_from_slice(events);
            Ok(())
        });
        repo.expect_delete().returning(move |_, events| {
            b.lock().unwrap().extend_from_slice(events);
            Ok(())
        });
        repo.expect_record_events().returning(move |events| {
            c.lock().unwrap().extend_from_slice(events);
            Ok(())
        });
        repo
    }

    fn blobs_holding(data: &'static [u8]) -> MockBlobStore {
        let mut blobs = MockBlobStore::new();
        blobs.expect_get().returning(move |_, _| {
            Ok(BlobBody {
                len: data.len() as u64,
                stream: futures_util::stream::iter([Ok(Bytes::from_static(data))]).boxed(),
            })
        });
        blobs.expect_put().returning(|_, _, _| {
            Ok(StoredBlob {
                size: 3,
                sha256: stowage_domain::Sha256Digest::from_bytes([1; 32]),
            })
        });
        blobs.expect_delete().returning(|_| Ok(()));
        blobs
    }

    #[tokio::test]
    async fn an_upload_is_kept_with_its_record_then_published() {
        let (published, audit) = audit();
        let kept = Arc::new(Mutex::new(Vec::new()));
        let repo: Arc<dyn FileRepository> = Arc::new(repo_keeping(record(Some(1), 2), &kept));
        let blobs: Arc<dyn BlobStore> = Arc::new(blobs_holding(b"abc"));
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| OffsetDateTime::UNIX_EPOCH);
        let upload =
            UploadFile::new(repo, blobs, Arc::new(clock), 100, HashMap::new()).with_audit(audit);

        let stored = upload
            .execute(UploadRequest {
                principal: user(1, 2),
                filename: Some("a.txt".into()),
                declared_type: None,
                policy: None,
                body: futures_util::stream::iter([Ok(Bytes::from_static(b"abc"))]).boxed(),
                length: None,
                request: facts(),
                key: None,
                metadata: stowage_domain::Metadata::default(),
                visibility: None,
                replaces: None,
            })
            .await
            .unwrap();

        let kept = kept.lock().unwrap().clone();
        assert_eq!(kept.len(), 1);
        let event = &kept[0];
        assert_eq!(event.kind, EventKind::Upload);
        assert_eq!(event.file_id, stored.id());
        assert_eq!(event.actor.kind, ActorKind::User);
        assert_eq!(event.request, facts());
        assert_eq!(published.0.lock().unwrap().clone(), kept);
    }

    async fn downloaded(range: Option<ByteRange>, reader: Option<&Principal>) -> Vec<FileEvent> {
        let (published, audit) = audit();
        let kept = Arc::new(Mutex::new(Vec::new()));
        let rec = record(Some(1), 2);
        let repo: Arc<dyn FileRepository> = Arc::new(repo_keeping(rec.clone(), &kept));
        let download = DownloadFile::new(
            ReadAccess::new(repo, None, AccessPolicy::Owner),
            Arc::new(blobs_holding(b"abc")),
            Arc::new(MockUrlSigner::new()),
            Arc::new(MockClock::new()),
        )
        .with_audit(audit);

        download.open(&rec, range, reader, &facts()).await.unwrap();

        assert_eq!(*published.0.lock().unwrap(), *kept.lock().unwrap());
        kept.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn a_download_from_the_first_byte_is_reported_and_a_later_range_is_not() {
        let owner = user(1, 2);
        let whole = downloaded(None, Some(&owner)).await;
        let first = downloaded(Some(ByteRange::new(0, 1).unwrap()), Some(&user(5, 2))).await;
        let later = downloaded(Some(ByteRange::new(1, 2).unwrap()), Some(&owner)).await;
        let signed = downloaded(None, None).await;

        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].kind, EventKind::Download);
        assert_eq!(whole[0].is_owner, Some(true));
        assert_eq!(first[0].is_owner, Some(false));
        assert!(later.is_empty());
        assert_eq!(signed[0].actor.kind, ActorKind::Guest);
        assert_eq!(signed[0].actor.user_id, None);
    }

    #[tokio::test]
    async fn a_read_the_permission_service_refuses_is_reported() {
        let (published, audit) = audit();
        let kept = Arc::new(Mutex::new(Vec::new()));
        let rec = record(Some(1), 2);
        let mut checker = MockPermissionChecker::new();
        checker
            .expect_check()
            .returning(|_, _| Ok(PermissionVerdict::Denied));
        let access = ReadAccess::new(
            Arc::new(repo_keeping(rec.clone(), &kept)),
            Some(Arc::new(checker)),
            AccessPolicy::Owner,
        )
        .with_audit(audit);

        let refused = access.authorize(&user(9, 2), rec.id(), &facts()).await;

        assert!(matches!(refused, Err(crate::Error::AccessDenied)));
        let kept = kept.lock().unwrap().clone();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].kind, EventKind::AccessDenied);
        assert_eq!(kept[0].actor.user_id, Some(stowage_domain::UserId::new(9)));
        assert_eq!(*published.0.lock().unwrap(), kept);
    }

    #[tokio::test]
    async fn a_deletion_is_kept_in_the_same_call_as_the_record_change() {
        let (published, audit) = audit();
        let kept = Arc::new(Mutex::new(Vec::new()));
        let rec = record(Some(1), 2);
        let delete = DeleteFile::new(
            Arc::new(repo_keeping(rec.clone(), &kept)),
            Arc::new(blobs_holding(b"abc")),
        )
        .with_audit(audit);

        delete
            .execute(&user(1, 2), rec.id(), &facts())
            .await
            .unwrap();

        let kept = kept.lock().unwrap().clone();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].kind, EventKind::Delete);
        assert_eq!(*published.0.lock().unwrap(), kept);
    }
}
