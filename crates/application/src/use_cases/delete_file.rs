//! Delete: only the uploading user may remove a file.

use std::sync::Arc;

use stowage_domain::{FileId, FileKey, FileRecord, Principal, may_delete};

use crate::error::Error;
use crate::events::{Actor, EventKind, RequestFacts};
use crate::ports::{BlobStore, FileRepository};
use crate::use_cases::Audit;
use crate::use_cases::audit::events_of;
use crate::use_cases::variants::remove_bytes;

/// Removes a file's record and blob.
#[derive(Clone)]
pub struct DeleteFile {
    repo: Arc<dyn FileRepository>,
    blobs: Arc<dyn BlobStore>,
    audit: Option<Audit>,
}

impl DeleteFile {
    /// A use case over `repo` and `blobs`.
    pub fn new(repo: Arc<dyn FileRepository>, blobs: Arc<dyn BlobStore>) -> Self {
        Self {
            repo,
            blobs,
            audit: None,
        }
    }

    /// This use case, reporting each deletion through `audit`.
    #[must_use]
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Deletes `id` if `principal` uploaded it. The record goes first, so a file is never listed
    /// without its bytes; a blob left behind by a storage failure is reclaimed by `stowage-api gc`.
    ///
    /// # Errors
    /// `NotFound`, `AccessDenied`, `DatabaseUnavailable`.
    #[tracing::instrument(name = "delete_file", skip_all, fields(file_id = %id))]
    pub async fn execute(
        &self,
        principal: &Principal,
        id: FileId,
        request: &RequestFacts,
    ) -> Result<(), Error> {
        let record = self.repo.get(id).await?;
        self.remove(principal, record, request).await
    }

    /// Deletes the file holding `key` in `principal`'s account, if `principal` uploaded it.
    ///
    /// # Errors
    /// `NotFound`, `AccessDenied`, `DatabaseUnavailable`.
    #[tracing::instrument(name = "delete_file_by_key", skip_all)]
    pub async fn execute_by_key(
        &self,
        principal: &Principal,
        key: &FileKey,
        request: &RequestFacts,
    ) -> Result<(), Error> {
        let record = self.repo.get_by_key(principal.account_id(), key).await?;
        self.remove(principal, record, request).await
    }

    async fn remove(
        &self,
        principal: &Principal,
        record: FileRecord,
        request: &RequestFacts,
    ) -> Result<(), Error> {
        if !may_delete(principal, &record) {
            return Err(Error::AccessDenied);
        }
        let id = record.id();
        let event = self
            .audit
            .as_ref()
            .map(|audit| audit.event(EventKind::Delete, Actor::of(principal), &record, request));
        self.repo.delete(id, events_of(event.as_ref())).await?;
        if let (Some(audit), Some(event)) = (&self.audit, &event) {
            audit.publish(event).await;
        }
        remove_bytes(self.blobs.as_ref(), &record).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::blob_store::MockBlobStore;
    use crate::use_cases::fixtures::{public, record, repo_returning, user};

    /// Deletion of `rec`, expecting its record and its blob to be deleted `deletes` times.
    fn deleting(rec: FileRecord, deletes: usize) -> DeleteFile {
        let mut repo = repo_returning(rec);
        repo.expect_delete().times(deletes).returning(|_, _| Ok(()));
        let mut blobs = MockBlobStore::new();
        blobs.expect_delete().times(deletes).returning(|_| Ok(()));
        DeleteFile::new(Arc::new(repo), Arc::new(blobs))
    }

    async fn assert_denied(principal: Principal, rec: FileRecord) {
        let err = deleting(rec, 0)
            .execute(&principal, FileId::new_random(), &RequestFacts::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::AccessDenied));
    }

    #[tokio::test]
    async fn public_principal_cannot_delete_account_level_file() {
        assert_denied(public(10), record(None, 10)).await;
    }

    #[tokio::test]
    async fn owner_deletes_record_then_blob() {
        deleting(record(Some(1), 10), 1)
            .execute(&user(1, 10), FileId::new_random(), &RequestFacts::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn other_user_cannot_delete() {
        assert_denied(user(2, 10), record(Some(1), 10)).await;
    }

    #[tokio::test]
    async fn same_user_id_of_another_account_cannot_delete() {
        assert_denied(user(1, 20), record(Some(1), 10)).await;
    }
}
