//! [`ResumableStore`] on local disk: an upload's bytes grow in the temporary file
//! [`FsBlobStore`](super::fs::FsBlobStore) reports as a leftover, `{root}/{account_id}/.{file_id}.part`,
//! and are renamed to the blob's path when the upload is finished.
//!
//! The caller keeps the committed offset, so the store's progress stays empty: bytes past that
//! offset are from an append that was never committed and the next append cuts them off.

use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures_util::StreamExt;
use stowage_application::ByteStream;
use stowage_application::ports::{Appended, BlobError, ConcatPart, ResumableStore, StoreProgress};
use stowage_domain::BlobKey;
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};

/// Bytes gathered before each write to disk, as [`FsBlobStore`](super::fs::FsBlobStore) does:
/// few blocking-pool hops, little memory per stalled upload.
const WRITE_BUFFER: usize = 256 * 1024;
const TEMP_SUFFIX: &str = ".part";

/// Why the disk does not hold what the caller's record of an upload says it does.
#[derive(Debug, thiserror::Error)]
enum PartFileError {
    /// The file is shorter than the committed offset or length: bytes were lost behind our back.
    #[error("the upload's file holds {held} bytes, fewer than the {expected} committed")]
    Short { held: u64, expected: u64 },
    /// The file is gone (aborted, or removed by reconciliation).
    #[error("the upload's file is missing")]
    Missing,
}

/// Keeps resumable uploads as files under the same root as the blobs they become.
#[derive(Clone, Debug)]
pub struct FsResumableStore {
    root: PathBuf,
}

fn unavailable(e: std::io::Error) -> BlobError {
    BlobError::Unavailable(Box::new(e))
}

fn part_error(e: PartFileError) -> BlobError {
    BlobError::Unavailable(Box::new(e))
}

/// Opening the part file: a missing one means the upload's bytes are gone, not a disk failure.
fn open_error(e: std::io::Error) -> BlobError {
    if e.kind() == ErrorKind::NotFound {
        part_error(PartFileError::Missing)
    } else {
        unavailable(e)
    }
}

impl FsResumableStore {
    /// A store rooted at `root` (created if missing): the same root as the
    /// [`FsBlobStore`](super::fs::FsBlobStore) that serves the finished blobs.
    ///
    /// # Errors
    /// The I/O error when `root` cannot be created.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    fn dir_of(&self, key: &BlobKey) -> PathBuf {
        self.root.join(key.account_id().get().to_string())
    }

    fn blob_path(&self, key: &BlobKey) -> PathBuf {
        self.dir_of(key).join(key.file_id().to_string())
    }

    fn part_path(&self, key: &BlobKey) -> PathBuf {
        self.dir_of(key).join(part_name(key))
    }
}

fn part_name(key: &BlobKey) -> String {
    format!(".{}{TEMP_SUFFIX}", key.file_id())
}

/// Makes a created, removed or renamed entry of `dir` survive a crash.
async fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    let dir = tokio::fs::File::open(dir).await.map_err(unavailable)?;
    dir.sync_all().await.map_err(unavailable)
}

/// Streams `body` into `writer`, counting the bytes; stops at the body's first error. Every
/// [`WRITEBACK_EVERY`] bytes it starts syncing what the file holds so far in the background, so
/// that the disk writes an append's bytes back while the next ones arrive and the sync that ends
/// the append waits for the last few only.
async fn copy_body(
    writer: &mut BufWriter<tokio::fs::File>,
    mut body: ByteStream,
) -> Result<(u64, Option<BlobError>), BlobError> {
    let mut written = 0u64;
    let mut writeback = Writeback::default();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                writer.write_all(&chunk).await.map_err(unavailable)?;
                written += chunk.len() as u64;
                writeback.after(writer.get_ref(), written).await?;
            }
            Err(e) => {
                writeback.wait().await?;
                return Ok((written, Some(BlobError::Body(e))));
            }
        }
    }
    writeback.wait().await?;
    Ok((written, None))
}

/// Bytes an append writes between two background syncs.
const WRITEBACK_EVERY: u64 = 2 * 1024 * 1024;

/// At most one background `fdatasync` of the file an append writes.
#[derive(Default)]
struct Writeback {
    in_flight: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    started_at: u64,
}

impl Writeback {
    /// Starts a sync once [`WRITEBACK_EVERY`] bytes were written since the last one began, unless
    /// that one is still running. Its error is the append's: a sync error is reported once per
    /// open file, so the final sync would not see it again.
    async fn after(&mut self, file: &tokio::fs::File, written: u64) -> Result<(), BlobError> {
        if written - self.started_at < WRITEBACK_EVERY {
            return Ok(());
        }
        if self.in_flight.as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        self.wait().await?;
        let file = file.try_clone().await.map_err(unavailable)?;
        self.in_flight = Some(tokio::spawn(async move { file.sync_data().await }));
        self.started_at = written;
        Ok(())
    }

    /// Waits for the sync in flight, if any.
    async fn wait(&mut self) -> Result<(), BlobError> {
        let Some(handle) = self.in_flight.take() else {
            return Ok(());
        };
        match handle.await {
            Ok(result) => result.map_err(unavailable),
            Err(e) => Err(unavailable(std::io::Error::other(e))),
        }
    }
}

#[async_trait]
impl ResumableStore for FsResumableStore {
    async fn begin(&self, key: &BlobKey) -> Result<StoreProgress, BlobError> {
        let dir = self.dir_of(key);
        tokio::fs::create_dir_all(&dir).await.map_err(unavailable)?;
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.part_path(key))
            .await
            .map_err(unavailable)?;
        file.sync_all().await.map_err(unavailable)?;
        sync_dir(&dir).await?;
        Ok(StoreProgress::default())
    }

    async fn append(
        &self,
        key: &BlobKey,
        _progress: &StoreProgress,
        offset: u64,
        _length: Option<u64>,
        _total: Option<u64>,
        body: ByteStream,
    ) -> Result<Appended, BlobError> {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(self.part_path(key))
            .await
            .map_err(open_error)?;
        let held = file.metadata().await.map_err(unavailable)?.len();
        if held < offset {
            return Err(part_error(PartFileError::Short {
                held,
                expected: offset,
            }));
        }
        // Bytes past the committed offset belong to an append whose progress was never committed.
        file.set_len(offset).await.map_err(unavailable)?;
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(unavailable)?;
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER, file);
        let (written, interrupted) = copy_body(&mut writer, body).await?;
        // What was received is kept even when the body broke off: the client resumes after it.
        writer.flush().await.map_err(unavailable)?;
        // The data and the length that reads it back; the rest of the inode can wait.
        writer.get_mut().sync_data().await.map_err(unavailable)?;
        Ok(Appended {
            progress: StoreProgress::default(),
            written,
            interrupted,
        })
    }

    /// Every byte that arrived is kept.
    fn checkpoints(&self, _: &StoreProgress, _: u64, _: Option<u64>) -> Vec<u64> {
        Vec::new()
    }

    async fn release(&self, _key: &BlobKey, _previous: &StoreProgress, _committed: &StoreProgress) {
        // Every append rewrites the one file in place: no replaced tail outlives its commit.
    }

    async fn finish(
        &self,
        key: &BlobKey,
        _progress: &StoreProgress,
        length: u64,
    ) -> Result<(), BlobError> {
        let part = self.part_path(key);
        let target = self.blob_path(key);
        let file = match tokio::fs::OpenOptions::new().write(true).open(&part).await {
            Ok(file) => file,
            // A finish retried after its rename landed: the blob is already there.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return match tokio::fs::metadata(&target).await {
                    Ok(meta) if meta.is_file() && meta.len() == length => Ok(()),
                    Ok(_) => Err(part_error(PartFileError::Missing)),
                    Err(e) => Err(open_error(e)),
                };
            }
            Err(e) => return Err(unavailable(e)),
        };
        let held = file.metadata().await.map_err(unavailable)?.len();
        if held < length {
            return Err(part_error(PartFileError::Short {
                held,
                expected: length,
            }));
        }
        // Anything past `length` was written by an append that was never committed.
        if held > length {
            file.set_len(length).await.map_err(unavailable)?;
        }
        file.sync_all().await.map_err(unavailable)?;
        drop(file);
        tokio::fs::rename(&part, &target)
            .await
            .map_err(unavailable)?;
        sync_dir(&self.dir_of(key)).await
    }

    async fn concatenate(&self, _key: &BlobKey, _parts: &[ConcatPart]) -> Result<bool, BlobError> {
        // A file cannot be made of other files' blocks: the caller streams the parts.
        Ok(false)
    }

    async fn abort(&self, key: &BlobKey, _progress: &StoreProgress) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.part_path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    fn stray_ids(&self, key: &BlobKey, _progress: &StoreProgress) -> Vec<String> {
        // The id `FsBlobStore::list` gives the part file: `{account}/{file name}`.
        vec![format!("{}/{}", key.account_id().get(), part_name(key))]
    }
}
