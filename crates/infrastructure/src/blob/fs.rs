//! [`BlobStore`] on local disk: `{root}/{account_id}/{file_id}`, and the file's image variants in
//! `{root}/{account_id}/{file_id}.variants/{name}`, each written to a temporary name and renamed.

use std::io::{ErrorKind, SeekFrom};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use stowage_application::BodyError;
use stowage_application::ports::{BlobBody, BlobError, BlobListing, BlobStore, ListedBlob};
use stowage_application::stream::{BlobDigester, ByteStream, StoredBlob};
use stowage_domain::image::variant::VariantName;
use stowage_domain::{AccountId, BlobKey, ByteRange, FileId};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio_util::io::ReaderStream;

use super::layout::{parse_variants_dir, variants_dir};

/// Bytes gathered before each write to disk: large enough for few blocking-pool hops, small enough
/// that many uploads stalled at once hold little memory.
const WRITE_BUFFER: usize = 256 * 1024;
const READ_CHUNK: usize = 64 * 1024;
const TEMP_SUFFIX: &str = ".part";
/// Removals of a variants folder tried in all, when a variant written meanwhile keeps it non-empty.
const REMOVE_VARIANTS_ATTEMPTS: u32 = 3;

/// Keeps blobs as files under one root directory.
#[derive(Clone, Debug)]
pub struct FsBlobStore {
    root: PathBuf,
}

fn unavailable(e: std::io::Error) -> BlobError {
    BlobError::Unavailable(Box::new(e))
}

impl FsBlobStore {
    /// A store rooted at `root` (created if missing).
    ///
    /// # Errors
    /// The I/O error when `root` cannot be created.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// The directory blobs live under.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn account_dir(&self, key: &BlobKey) -> PathBuf {
        self.root.join(key.account_id().get().to_string())
    }

    fn path_of(&self, key: &BlobKey) -> PathBuf {
        match key.variant() {
            None => self.account_dir(key).join(key.file_id().to_string()),
            Some(name) => self.variants_path(key).join(name.as_str()),
        }
    }

    /// The folder of the variants of `key`'s file.
    fn variants_path(&self, key: &BlobKey) -> PathBuf {
        self.account_dir(key).join(variants_dir(key.file_id()))
    }

    async fn write(
        &self,
        file: &mut BufWriter<tokio::fs::File>,
        mut body: ByteStream,
    ) -> Result<StoredBlob, BlobError> {
        let mut digest = BlobDigester::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            digest.update(&chunk);
            file.write_all(&chunk).await.map_err(unavailable)?;
        }
        file.flush().await.map_err(unavailable)?;
        file.get_mut().sync_all().await.map_err(unavailable)?;
        Ok(digest.finish())
    }
}

/// The leftovers this store reports and removes: `{account}/.{file_id}.part`, and any file of a
/// variants folder, `{account}/{file_id}.variants/{name}`, whose name is no variant name (a
/// variant's temporary file among them).
fn stray_path(id: &str) -> Option<PathBuf> {
    let (account, rest) = id.split_once('/')?;
    account.parse::<i64>().ok()?;
    if let Some((dir, name)) = rest.split_once('/') {
        parse_variants_dir(dir)?;
        let leftover = !matches!(name, "" | "." | "..")
            && !name.contains('/')
            && VariantName::parse(name).is_err();
        return leftover.then(|| Path::new(account).join(dir).join(name));
    }
    let file = rest.strip_prefix('.')?.strip_suffix(TEMP_SUFFIX)?;
    FileId::parse(file).ok()?;
    Some(Path::new(account).join(rest))
}

fn modified(meta: &std::fs::Metadata) -> time::OffsetDateTime {
    meta.modified()
        .map_or(time::OffsetDateTime::UNIX_EPOCH, time::OffsetDateTime::from)
}

fn list_root(root: &Path) -> std::io::Result<Vec<ListedBlob>> {
    let mut items = Vec::new();
    for account_dir in std::fs::read_dir(root)? {
        let account_dir = account_dir?;
        let Some(account) = account_dir
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        if !account_dir.file_type()?.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(account_dir.path())? {
            let entry = entry?;
            let meta = entry.metadata()?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if meta.is_dir()
                && let Some(file_id) = parse_variants_dir(&name)
            {
                let source = BlobKey::new(AccountId::new(account), file_id);
                list_variants(&entry.path(), source, &mut items)?;
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            if let Ok(id) = FileId::parse(&name) {
                items.push(ListedBlob::Blob {
                    key: BlobKey::new(AccountId::new(account), id),
                    size: meta.len(),
                    modified: modified(&meta),
                });
            } else {
                let id = format!("{account}/{name}");
                if stray_path(&id).is_some() {
                    items.push(ListedBlob::Stray {
                        id,
                        modified: modified(&meta),
                    });
                }
            }
        }
    }
    Ok(items)
}

/// The variants of `source` in its variants folder `dir`, and the other files there as strays.
/// A folder or file removed while it is listed is left out.
fn list_variants(dir: &Path, source: BlobKey, items: &mut Vec<ListedBlob>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        // Nothing here writes folders, nor names that are not UTF-8 (which no stray id could name).
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        match VariantName::parse(&name) {
            Ok(variant) => items.push(ListedBlob::Blob {
                key: source.with_variant(variant),
                size: meta.len(),
                modified: modified(&meta),
            }),
            Err(_) => items.push(ListedBlob::Stray {
                id: format!(
                    "{}/{}/{name}",
                    source.account_id().get(),
                    variants_dir(source.file_id())
                ),
                modified: modified(&meta),
            }),
        }
    }
    Ok(())
}

/// Removes a temporary file unless the write completed, also when the writing future is dropped.
struct TempFile {
    path: Option<PathBuf>,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take()
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(error = %e, path = %path.display(), "temporary blob file could not be removed");
        }
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        body: ByteStream,
        _length: Option<u64>,
    ) -> Result<StoredBlob, BlobError> {
        let target = self.path_of(key);
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        let temp_name = match key.variant() {
            None => format!(".{}{TEMP_SUFFIX}", key.file_id()),
            // Two requests may render the same variant at once: each writes a file of its own.
            Some(name) => format!(".{name}.{}{TEMP_SUFFIX}", uuid::Uuid::new_v4().simple()),
        };
        let temp_path = dir.join(temp_name);
        // Creating and renaming are done synchronously (they are single metadata syscalls): run on
        // the blocking pool, a dropped future would let them finish later, behind the guard's back.
        std::fs::create_dir_all(&dir).map_err(unavailable)?;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(unavailable)?;
        let mut guard = TempFile {
            path: Some(temp_path.clone()),
        };
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER, tokio::fs::File::from_std(file));
        let stored = self.write(&mut writer, body).await?;
        drop(writer);
        std::fs::rename(&temp_path, &target).map_err(unavailable)?;
        guard.path = None;
        if let Ok(dir) = tokio::fs::File::open(&dir).await {
            // The rename is durable only once the directory entry is.
            let _ = dir.sync_all().await;
        }
        Ok(stored)
    }

    async fn get(&self, key: &BlobKey, range: Option<ByteRange>) -> Result<BlobBody, BlobError> {
        let mut file = match tokio::fs::File::open(self.path_of(key)).await {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(BlobError::NotFound),
            Err(e) => return Err(unavailable(e)),
        };
        let size = file.metadata().await.map_err(unavailable)?.len();
        let (start, len) = match range {
            Some(r) => (r.start(), r.len().min(size.saturating_sub(r.start()))),
            None => (0, size),
        };
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .await
                .map_err(unavailable)?;
        }
        let stream = ReaderStream::with_capacity(file.take(len), READ_CHUNK)
            .map_err(|e| BodyError::Backend(Box::new(e)))
            .boxed();
        Ok(BlobBody { len, stream })
    }

    async fn head(&self, key: &BlobKey) -> Result<u64, BlobError> {
        match tokio::fs::metadata(self.path_of(key)).await {
            Ok(meta) if meta.is_file() => Ok(meta.len()),
            Ok(_) => Err(BlobError::NotFound),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(BlobError::NotFound),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete_variants(&self, key: &BlobKey) -> Result<(), BlobError> {
        let dir = self.variants_path(key);
        let mut attempt = 1;
        loop {
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                // A variant renamed into the folder after its files were removed.
                Err(e)
                    if e.kind() == ErrorKind::DirectoryNotEmpty
                        && attempt < REMOVE_VARIANTS_ATTEMPTS =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    async fn health(&self) -> Result<(), BlobError> {
        let meta = tokio::fs::metadata(&self.root).await.map_err(unavailable)?;
        if !meta.is_dir() {
            return Err(BlobError::Unavailable(
                "blob root is not a directory".into(),
            ));
        }
        Ok(())
    }

    async fn list(&self) -> Result<BlobListing, BlobError> {
        let root = self.root.clone();
        let items = tokio::task::spawn_blocking(move || list_root(&root))
            .await
            .map_err(|e| BlobError::Unavailable(Box::new(e)))?
            .map_err(unavailable)?;
        Ok(futures_util::stream::iter(items.into_iter().map(Ok)).boxed())
    }

    async fn remove_stray(&self, id: &str) -> Result<(), BlobError> {
        let Some(relative) = stray_path(id) else {
            return Err(BlobError::Unavailable(
                "not a leftover of this store".into(),
            ));
        };
        match tokio::fs::remove_file(self.root.join(relative)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}
