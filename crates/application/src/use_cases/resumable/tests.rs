//! Resumable uploads over mocked ports. The mocks record what they were asked in [`Seen`], so
//! that each test states the effects it expects (bytes committed, uploads discarded, files
//! recorded) rather than the order of every call.

use std::sync::{Mutex, MutexGuard};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use stowage_domain::{AccountId, FileId, Filename, PrincipalKind, SNIFF_LEN, Sha256Digest, UserId};

use super::*;
use crate::checksum::ResumableDigest;
use crate::ports::blob_store::MockBlobStore;
use crate::ports::clock::MockClock;
use crate::ports::file_repository::MockFileRepository;
use crate::ports::resumable_repository::MockResumableRepository;
use crate::ports::resumable_store::MockResumableStore;
use crate::ports::{Appended, BlobError, ResumableProgress, StoreProgress};
use crate::stream::{BlobDigester, BodyError};
use crate::use_cases::fixtures::user;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
/// The global limit of these tests.
const LIMIT: u64 = 1_000;
/// The limit of the `tiny` policy: exactly one [`PNG`].
const TINY: u64 = 16;
const SHA256_OF_NOTHING: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn now() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::from_secs(86_400)
}

/// What the mocked ports were asked to do.
#[derive(Default)]
struct Seen {
    /// The uploads the repository holds: those a test put there, then those inserted.
    rows: Vec<ResumableUpload>,
    /// The bytes the store read, per append.
    read: Vec<Vec<u8>>,
    /// The store progress each append started from.
    appended_from: Vec<(u64, Option<u64>, StoreProgress)>,
    released: Vec<(StoreProgress, StoreProgress)>,
    advanced: Vec<ResumableProgress>,
    finished: Vec<u64>,
    files: Vec<FileRecord>,
    aborted: Vec<BlobKey>,
    deleted_rows: Vec<ResumableId>,
    deleted_blobs: Vec<BlobKey>,
    unlocked: usize,
}

type Shared = Arc<Mutex<Seen>>;

fn seen(shared: &Shared) -> MutexGuard<'_, Seen> {
    shared.lock().unwrap()
}

struct Mocks {
    files: MockFileRepository,
    blobs: MockBlobStore,
    store: MockResumableStore,
    uploads: MockResumableRepository,
    seen: Shared,
}

impl Mocks {
    /// Mocks whose clean-up calls (unlock, release, abort, deletes) succeed and are recorded.
    fn new() -> Self {
        let shared = Shared::default();
        let mut uploads = MockResumableRepository::new();
        let s = shared.clone();
        uploads.expect_unlock().returning(move |_, _| {
            seen(&s).unlocked += 1;
            Ok(())
        });
        let s = shared.clone();
        uploads.expect_delete().returning(move |id| {
            seen(&s).deleted_rows.push(id);
            Ok(())
        });
        let mut store = MockResumableStore::new();
        store.expect_checkpoints().returning(|_, _, _| Vec::new());
        let s = shared.clone();
        store
            .expect_release()
            .returning(move |_, previous, committed| {
                seen(&s)
                    .released
                    .push((previous.clone(), committed.clone()));
            });
        let s = shared.clone();
        store.expect_abort().returning(move |key, _| {
            seen(&s).aborted.push(*key);
            Ok(())
        });
        let mut blobs = MockBlobStore::new();
        let s = shared.clone();
        blobs.expect_delete().returning(move |key| {
            seen(&s).deleted_blobs.push(*key);
            Ok(())
        });
        Self {
            files: MockFileRepository::new(),
            blobs,
            store,
            uploads,
            seen: shared,
        }
    }

    /// What the mocks record, to be read after the use case consumed them.
    fn seen(&self) -> Shared {
        self.seen.clone()
    }

    fn resumable(self) -> ResumableUploads {
        let mut clock = MockClock::new();
        clock.expect_now().returning(now);
        let ports = ResumablePorts {
            files: Arc::new(self.files),
            blobs: Arc::new(self.blobs),
            store: Arc::new(self.store),
            uploads: Arc::new(self.uploads),
            clock: Arc::new(clock),
        };
        let tiny = UploadPolicy {
            allowed_types: vec!["image/png".into()],
            max_bytes: TINY,
            max_pixels: None,
            visibility: stowage_domain::Visibility::Private,
            strip_metadata: false,
            variants: Vec::new(),
        };
        ResumableUploads::new(
            ports,
            ResumableSettings {
                max_bytes: LIMIT,
                expiry: Duration::from_secs(3_600),
                policies: HashMap::from([
                    // The type rule alone: the image rules read the store back, which these
                    // mocks do not script (they have tests of their own).
                    ("avatar".to_owned(), UploadPolicy::types_only()),
                    ("tiny".to_owned(), tiny),
                    ("stripped".to_owned(), UploadPolicy::avatar()),
                ]),
            },
        )
    }

    /// The repository holds `rows` and keeps what is inserted.
    fn table(&mut self, rows: &[ResumableUpload]) {
        seen(&self.seen).rows.extend_from_slice(rows);
        let s = self.seen.clone();
        self.uploads.expect_get().returning(move |id| {
            let row = seen(&s).rows.iter().find(|u| u.id == id).cloned();
            row.ok_or(RepoError::NotFound)
        });
        let s = self.seen.clone();
        self.uploads.expect_insert().returning(move |upload| {
            seen(&s).rows.push(upload.clone());
            Ok(())
        });
    }

    /// Every lock of an upload the repository holds is taken.
    fn lockable(&mut self) {
        let s = self.seen.clone();
        self.uploads.expect_lock().returning(move |id, _, _| {
            let row = seen(&s).rows.iter().find(|u| u.id == id).cloned();
            row.map(|u| ResumableLock::Locked(u.into()))
                .ok_or(RepoError::NotFound)
        });
        self.holding_the_lock();
    }

    /// Progress is stored while the lock holds (`held`), and recorded.
    fn advancing(&mut self, held: bool) {
        let s = self.seen.clone();
        self.uploads
            .expect_advance()
            .returning(move |_, _, progress| {
                seen(&s).advanced.push(progress.clone());
                Ok(held)
            });
    }

    /// The store reads each body to its end (or its error) and keeps every byte it read.
    fn storing(&mut self) {
        self.holding_the_lock();
        let s = self.seen.clone();
        self.store
            .expect_append()
            .returning(move |_, progress, offset, _, total, body| {
                let (bytes, error) = read(body);
                let written = bytes.len() as u64;
                let mut seen = seen(&s);
                seen.read.push(bytes);
                seen.appended_from.push((offset, total, progress.clone()));
                Ok(Appended {
                    progress: StoreProgress(format!("{}+{written}", progress.0)),
                    written,
                    interrupted: error.map(BlobError::Body),
                })
            });
    }

    /// The lock's lease is renewed for as long as the write runs.
    fn holding_the_lock(&mut self) {
        self.uploads
            .expect_hold()
            .returning(|_, _, _| futures_util::future::pending().boxed());
    }

    /// No file is recorded yet; finishing bytes and recording files succeed, and are recorded.
    fn recording(&mut self) {
        self.files
            .expect_get()
            .returning(|_| Err(RepoError::NotFound));
        let s = self.seen.clone();
        self.store.expect_finish().returning(move |_, _, length| {
            seen(&s).finished.push(length);
            Ok(())
        });
        let s = self.seen.clone();
        self.files.expect_insert().returning(move |record, _| {
            seen(&s).files.push(record.clone());
            Ok(())
        });
    }

    /// The store begins every upload.
    fn beginning(&mut self) {
        self.store
            .expect_begin()
            .returning(|_| Ok(StoreProgress("begun".into())));
    }
}

/// Every chunk of `body`, up to its first error.
fn read(body: ByteStream) -> (Vec<u8>, Option<BodyError>) {
    let chunks = body
        .collect::<Vec<_>>()
        .now_or_never()
        .expect("test bodies are ready at once");
    let mut bytes = Vec::new();
    for chunk in chunks {
        match chunk {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(e) => return (bytes, Some(e)),
        }
    }
    (bytes, None)
}

/// An open upload of `user(1, 2)` with nothing received.
fn open(length: Option<u64>, metadata: Option<String>) -> ResumableUpload {
    ResumableUpload {
        id: ResumableId::new_random(),
        file_id: FileId::new_random(),
        account_id: AccountId::new(2),
        user_id: Some(UserId::new(1)),
        principal_kind: PrincipalKind::User,
        length,
        offset: 0,
        metadata,
        concat: None,
        store: StoreProgress("p".into()),
        digest: Vec::new(),
        head: Vec::new(),
        stage: ResumableStage::Open,
        expires_at: now() + Duration::from_secs(60),
    }
}

/// `upload` once `bytes` were committed to it.
fn received(mut upload: ResumableUpload, bytes: &[u8]) -> ResumableUpload {
    let mut digest = ResumableDigest::new();
    digest.update(bytes);
    upload.offset = bytes.len() as u64;
    upload.digest = digest.save();
    upload.head = bytes[..bytes.len().min(SNIFF_LEN)].to_vec();
    upload
}

/// A complete partial upload of `user(1, 2)` holding `bytes`.
fn partial(bytes: &[u8]) -> ResumableUpload {
    let mut upload = received(open(Some(bytes.len() as u64), None), bytes);
    upload.concat = Some(Concat::Partial);
    upload.stage = ResumableStage::Completed;
    upload
}

/// `Upload-Metadata` of `pairs`.
fn meta(pairs: &[(&str, &str)]) -> Option<String> {
    let pairs: Vec<String> = pairs
        .iter()
        .map(|(key, value)| format!("{key} {}", STANDARD.encode(value)))
        .collect();
    Some(pairs.join(","))
}

/// A body of `chunks`, its length stated.
fn body(chunks: &[&[u8]]) -> AppendBody {
    let length = chunks.iter().map(|c| c.len() as u64).sum();
    AppendBody {
        length: Some(length),
        ..unstated(
            chunks
                .iter()
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect(),
        )
    }
}

/// A body of `chunks`, its length not stated.
fn unstated(chunks: Vec<Result<Bytes, BodyError>>) -> AppendBody {
    AppendBody {
        bytes: futures_util::stream::iter(chunks).boxed(),
        length: None,
        checksum: None,
    }
}

/// A `PATCH` of `user(1, 2)` at `upload`'s offset.
fn patch(upload: &ResumableUpload, body: AppendBody) -> AppendResumable {
    AppendResumable {
        principal: user(1, 2),
        id: upload.id,
        offset: upload.offset,
        length: None,
        body,
        request: RequestFacts::default(),
    }
}

/// A creation by `user(1, 2)`.
fn creation(
    length: Option<u64>,
    metadata: Option<String>,
    body: Option<AppendBody>,
) -> CreateResumable {
    CreateResumable {
        principal: user(1, 2),
        length,
        metadata,
        concat: None,
        body,
        request: RequestFacts::default(),
    }
}

fn sha256(bytes: &[u8]) -> Sha256Digest {
    let mut digest = BlobDigester::new();
    digest.update(bytes);
    digest.finish().sha256
}

fn unavailable() -> RepoError {
    RepoError::Unavailable("database down".into())
}

fn key_of(upload: &ResumableUpload) -> BlobKey {
    BlobKey::new(upload.account_id, upload.file_id)
}

mod append;
mod complete;
mod concat;
mod create;
mod lifecycle;
