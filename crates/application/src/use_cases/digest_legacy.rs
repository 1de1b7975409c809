//! Digests of legacy rows: the SHA-256 of every record that has none (rows the Pneumatic service
//! wrote), computed by streaming its blob.

use std::sync::Arc;

use futures_util::StreamExt;
use stowage_domain::{FileId, FileRecord, Sha256Digest};

use crate::error::Error;
use crate::ports::{BlobError, BlobStore, FileRepository, RepoError};
use crate::stream::{BlobDigester, BodyError};

const PAGE: u32 = 500;

/// What happened to one legacy row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegacyRow {
    /// Its digest was computed and written.
    Digested {
        /// The digest.
        sha256: Sha256Digest,
    },
    /// (Dry run) its blob is there, with this size.
    BlobPresent {
        /// The blob's size in bytes.
        size: u64,
    },
    /// Its blob is missing; the row is left as it is.
    BlobMissing,
    /// Its blob does not have the recorded size; no digest is written.
    SizeMismatch {
        /// The blob's size in bytes.
        actual: u64,
    },
    /// The record was deleted while the run went on.
    Deleted,
}

/// Totals of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DigestReport {
    /// Records without a digest when the run started.
    pub total: u64,
    /// Records looked at so far.
    pub done: u64,
    /// Digests written.
    pub digested: u64,
    /// Bytes read (or, in a dry run, the size of the blobs found).
    pub bytes: u64,
    /// Records whose blob is missing.
    pub missing: Vec<FileId>,
    /// Records whose blob's size differs from the recorded one.
    pub mismatched: Vec<FileId>,
}

impl DigestReport {
    /// Whether every legacy row's blob was found with its recorded size.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.mismatched.is_empty()
    }
}

/// Computes the missing digests, one record at a time, each written as soon as it is known: an
/// interrupted run resumes where it stopped, since rows that have a digest are not looked at.
pub struct DigestLegacyRows {
    repo: Arc<dyn FileRepository>,
    blobs: Arc<dyn BlobStore>,
}

impl DigestLegacyRows {
    /// A run over `repo` and `blobs`.
    pub fn new(repo: Arc<dyn FileRepository>, blobs: Arc<dyn BlobStore>) -> Self {
        Self { repo, blobs }
    }

    /// Visits every record without a digest, in id order. With `dry_run`, only checks that each
    /// blob exists and changes nothing. `on_row` hears of every record as soon as it is done,
    /// with the totals so far. A missing blob is reported and the run goes on.
    ///
    /// # Errors
    /// `DatabaseUnavailable`, `StorageUnavailable` (the digests written until then stay).
    pub async fn execute(
        &self,
        dry_run: bool,
        on_row: &mut (dyn FnMut(&FileRecord, &LegacyRow, &DigestReport) + Send),
    ) -> Result<DigestReport, Error> {
        let mut report = DigestReport {
            total: self.repo.count_without_digest().await?,
            ..DigestReport::default()
        };
        let mut after = None;
        loop {
            let page = self.repo.scan_without_digest(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id());
            for record in &page {
                let outcome = if dry_run {
                    self.check(record).await?
                } else {
                    self.digest(record).await?
                };
                report.done += 1;
                match &outcome {
                    LegacyRow::Digested { .. } => {
                        report.digested += 1;
                        report.bytes += record.size();
                    }
                    LegacyRow::BlobPresent { size } => report.bytes += size,
                    LegacyRow::BlobMissing => report.missing.push(record.id()),
                    LegacyRow::SizeMismatch { .. } => report.mismatched.push(record.id()),
                    LegacyRow::Deleted => {}
                }
                on_row(record, &outcome, &report);
            }
        }
        Ok(report)
    }

    async fn check(&self, record: &FileRecord) -> Result<LegacyRow, Error> {
        match self.blobs.head(&record.blob_key()).await {
            Ok(size) if size == record.size() => Ok(LegacyRow::BlobPresent { size }),
            Ok(actual) => Ok(LegacyRow::SizeMismatch { actual }),
            Err(BlobError::NotFound) => Ok(LegacyRow::BlobMissing),
            Err(e) => Err(e.into()),
        }
    }

    async fn digest(&self, record: &FileRecord) -> Result<LegacyRow, Error> {
        let body = match self.blobs.get(&record.blob_key(), None).await {
            Ok(body) => body,
            Err(BlobError::NotFound) => return Ok(LegacyRow::BlobMissing),
            Err(e) => return Err(e.into()),
        };
        let mut digester = BlobDigester::new();
        let mut stream = body.stream;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| match e {
                BodyError::Backend(source) => Error::StorageUnavailable(source),
                other => Error::StorageUnavailable(Box::new(other)),
            })?;
            digester.update(&chunk);
        }
        let stored = digester.finish();
        if stored.size != record.size() {
            return Ok(LegacyRow::SizeMismatch {
                actual: stored.size,
            });
        }
        match self.repo.set_digest(record.id(), &stored.sha256).await {
            Ok(()) => Ok(LegacyRow::Digested {
                sha256: stored.sha256,
            }),
            Err(RepoError::NotFound) => Ok(LegacyRow::Deleted),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::blob_store::{BlobBody, MockBlobStore};
    use crate::ports::file_repository::MockFileRepository;
    use crate::use_cases::fixtures::record;
    use bytes::Bytes;
    use mockall::predicate::eq;
    use sha2::{Digest, Sha256};
    use stowage_domain::FileRecordParts;

    /// A legacy record (no digest) of `size` bytes.
    fn legacy(size: u64) -> FileRecord {
        let r = record(Some(1), 1);
        FileRecord::new(FileRecordParts {
            id: r.id(),
            filename: r.filename().clone(),
            content_type: r.content_type().clone(),
            size,
            sha256: None,
            created_at: r.created_at(),
            account_id: r.account_id(),
            user_id: r.user_id(),
        })
    }

    fn body(data: &'static [u8]) -> BlobBody {
        let chunks = data
            .chunks(2)
            .map(|c| Ok(Bytes::from_static(c)))
            .collect::<Vec<_>>();
        BlobBody {
            len: data.len() as u64,
            stream: Box::pin(futures_util::stream::iter(chunks)),
        }
    }

    fn sha(data: &[u8]) -> Sha256Digest {
        Sha256Digest::from_bytes(Sha256::digest(data).into())
    }

    /// A repository whose legacy rows are `rows`, in one page.
    fn repo_with(rows: Vec<FileRecord>) -> MockFileRepository {
        let mut repo = MockFileRepository::new();
        let count = rows.len() as u64;
        repo.expect_count_without_digest()
            .returning(move || Ok(count));
        let last = rows.last().map(FileRecord::id);
        repo.expect_scan_without_digest()
            .with(eq(None), eq(PAGE))
            .returning(move |_, _| Ok(rows.clone()));
        repo.expect_scan_without_digest()
            .with(eq(last), eq(PAGE))
            .returning(|_, _| Ok(vec![]));
        repo
    }

    #[tokio::test]
    async fn digests_each_row_and_goes_on_past_a_missing_blob() {
        let found = legacy(5);
        let lost = legacy(3);
        let deleted = legacy(2);
        let mut repo = repo_with(vec![found.clone(), lost.clone(), deleted.clone()]);
        repo.expect_set_digest()
            .with(eq(found.id()), eq(sha(b"hello")))
            .times(1)
            .returning(|_, _| Ok(()));
        repo.expect_set_digest()
            .with(eq(deleted.id()), eq(sha(b"hi")))
            .times(1)
            .returning(|_, _| Err(RepoError::NotFound));
        let mut blobs = MockBlobStore::new();
        blobs
            .expect_get()
            .with(eq(found.blob_key()), eq(None))
            .returning(|_, _| Ok(body(b"hello")));
        blobs
            .expect_get()
            .with(eq(lost.blob_key()), eq(None))
            .returning(|_, _| Err(BlobError::NotFound));
        blobs
            .expect_get()
            .with(eq(deleted.blob_key()), eq(None))
            .returning(|_, _| Ok(body(b"hi")));
        blobs.expect_head().times(0);

        let mut seen = Vec::new();
        let report = DigestLegacyRows::new(Arc::new(repo), Arc::new(blobs))
            .execute(false, &mut |record, outcome, so_far| {
                seen.push((record.id(), outcome.clone(), so_far.done));
            })
            .await
            .unwrap();

        assert_eq!(
            seen,
            vec![
                (
                    found.id(),
                    LegacyRow::Digested {
                        sha256: sha(b"hello")
                    },
                    1
                ),
                (lost.id(), LegacyRow::BlobMissing, 2),
                (deleted.id(), LegacyRow::Deleted, 3),
            ]
        );
        assert_eq!(report.total, 3);
        assert_eq!(report.done, 3);
        assert_eq!(report.digested, 1);
        assert_eq!(report.bytes, 5);
        assert_eq!(report.missing, vec![lost.id()]);
        assert!(!report.is_clean());
    }

    #[tokio::test]
    async fn a_blob_of_another_size_gets_no_digest() {
        let row = legacy(4);
        let mut repo = repo_with(vec![row.clone()]);
        repo.expect_set_digest().times(0);
        let mut blobs = MockBlobStore::new();
        blobs.expect_get().returning(|_, _| Ok(body(b"hello")));

        let report = DigestLegacyRows::new(Arc::new(repo), Arc::new(blobs))
            .execute(false, &mut |_, outcome, _| {
                assert_eq!(outcome, &LegacyRow::SizeMismatch { actual: 5 });
            })
            .await
            .unwrap();

        assert_eq!(report.mismatched, vec![row.id()]);
        assert_eq!(report.digested, 0);
    }

    #[tokio::test]
    async fn dry_run_only_looks_for_the_blobs() {
        let found = legacy(5);
        let lost = legacy(3);
        let mut repo = repo_with(vec![found.clone(), lost.clone()]);
        repo.expect_set_digest().times(0);
        let mut blobs = MockBlobStore::new();
        blobs.expect_get().times(0);
        blobs
            .expect_head()
            .with(eq(found.blob_key()))
            .returning(|_| Ok(5));
        blobs
            .expect_head()
            .with(eq(lost.blob_key()))
            .returning(|_| Err(BlobError::NotFound));

        let mut outcomes = Vec::new();
        let report = DigestLegacyRows::new(Arc::new(repo), Arc::new(blobs))
            .execute(true, &mut |_, outcome, _| outcomes.push(outcome.clone()))
            .await
            .unwrap();

        assert_eq!(
            outcomes,
            vec![LegacyRow::BlobPresent { size: 5 }, LegacyRow::BlobMissing]
        );
        assert_eq!(report.missing, vec![lost.id()]);
        assert_eq!(report.bytes, 5);
    }

    #[tokio::test]
    async fn resumes_after_the_last_page_and_stops_on_a_store_failure() {
        let first = legacy(1);
        let mut repo = MockFileRepository::new();
        repo.expect_count_without_digest().returning(|| Ok(1));
        let page = vec![first.clone()];
        repo.expect_scan_without_digest()
            .returning(move |_, _| Ok(page.clone()));
        let mut blobs = MockBlobStore::new();
        blobs
            .expect_get()
            .returning(|_, _| Err(BlobError::Unavailable("down".into())));

        let result = DigestLegacyRows::new(Arc::new(repo), Arc::new(blobs))
            .execute(false, &mut |_, _, _| {})
            .await;

        assert!(matches!(result, Err(Error::StorageUnavailable(_))));
    }

    #[tokio::test]
    async fn a_database_failure_stops_the_run() {
        let mut repo = MockFileRepository::new();
        repo.expect_count_without_digest()
            .returning(|| Err(RepoError::Unavailable("down".into())));
        let blobs = MockBlobStore::new();

        let result = DigestLegacyRows::new(Arc::new(repo), Arc::new(blobs))
            .execute(false, &mut |_, _, _| {})
            .await;

        assert!(matches!(result, Err(Error::DatabaseUnavailable(_))));
    }
}
