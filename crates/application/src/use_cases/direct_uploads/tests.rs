use std::sync::Mutex;

use bytes::Bytes;
use stowage_domain::{AccountId, PrincipalKind, UserId};

use super::*;
use crate::events::RequestFacts;
use crate::ports::blob_store::MockBlobStore;
use crate::ports::clock::MockClock;
use crate::ports::direct_upload_repository::MockDirectUploadRepository;
use crate::ports::direct_uploads::MockDirectUploadStore;
use crate::ports::file_repository::MockFileRepository;
use crate::ports::{BlobBody, StoredObject};
use crate::ports::{BlobError, Claim, DirectUploadError, RepoError, UploadedPart};
use crate::stream::BlobDigester;
use crate::stream::BodyError;
use crate::use_cases::fixtures::user;
use futures_util::StreamExt;
use stowage_domain::Filename;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

struct Mocks {
    files: MockFileRepository,
    blobs: MockBlobStore,
    store: MockDirectUploadStore,
    uploads: MockDirectUploadRepository,
}

impl Mocks {
    fn new() -> Self {
        let mut store = MockDirectUploadStore::new();
        store.expect_part_size().return_const(5u64);
        Self {
            files: MockFileRepository::new(),
            blobs: MockBlobStore::new(),
            store,
            uploads: MockDirectUploadRepository::new(),
        }
    }

    fn ports(self) -> DirectUploadPorts {
        let mut clock = MockClock::new();
        clock.expect_now().returning(|| OffsetDateTime::UNIX_EPOCH);
        DirectUploadPorts {
            files: Arc::new(self.files),
            blobs: Arc::new(self.blobs),
            store: Arc::new(self.store),
            uploads: Arc::new(self.uploads),
            clock: Arc::new(clock),
        }
    }

    fn start(self) -> StartDirectUpload {
        StartDirectUpload::new(self.ports(), 100, policies())
    }

    fn complete(self) -> CompleteDirectUpload {
        CompleteDirectUpload::new(self.ports(), 100, policies())
    }
}

fn policies() -> HashMap<String, UploadPolicy> {
    // The type rule alone: the image rules read the store back, which these mocks do not script
    // (they have tests of their own).
    HashMap::from([("avatar".to_owned(), UploadPolicy::types_only())])
}

fn start_request(size: u64) -> StartDirectRequest {
    StartDirectRequest {
        principal: user(1, 2),
        filename: "../a.png".into(),
        content_type: "image/png".into(),
        size,
        sha256: Some(Sha256Digest::from_bytes([3; 32])),
        lifetime: Duration::from_secs(60),
        policy: None,
        key: None,
        visibility: None,
        multipart: false,
    }
}

fn presigned(url: &str) -> PresignedRequest {
    PresignedRequest {
        url: url.into(),
        headers: vec![("content-type".into(), "image/png".into())],
    }
}

fn pending(size: u64, policy: Option<&str>) -> DirectUpload {
    DirectUpload {
        id: DirectUploadId::new_random(),
        file_id: FileId::new_random(),
        account_id: AccountId::new(2),
        user_id: Some(UserId::new(1)),
        principal_kind: PrincipalKind::User,
        filename: Filename::sanitize("a.png"),
        declared_type: "image/png".into(),
        size,
        sha256: None,
        policy: policy.map(str::to_owned),
        key: None,
        visibility: None,
        multipart: None,
        expires_at: OffsetDateTime::UNIX_EPOCH + Duration::from_secs(60),
    }
}

/// A store and blob store holding `data` under the upload's key (and its staging object).
fn holding(mocks: &mut Mocks, data: &'static [u8], sha256: Option<Sha256Digest>) {
    mocks.store.expect_inspect_staged().returning(move |_, _| {
        Ok(StoredObject {
            size: data.len() as u64,
            sha256,
        })
    });
    mocks.store.expect_promote().returning(|_, _| Ok(()));
    mocks.store.expect_discard_staged().returning(|_, _| Ok(()));
    mocks.store.expect_inspect().returning(move |_| {
        Ok(StoredObject {
            size: data.len() as u64,
            sha256,
        })
    });
    mocks.blobs.expect_get().returning(move |_, range| {
        let end = range.map_or(data.len(), |r| r.end() as usize + 1);
        let bytes = Bytes::from_static(&data[..end]);
        Ok(BlobBody {
            len: bytes.len() as u64,
            stream: futures_util::stream::iter([Ok::<_, BodyError>(bytes)]).boxed(),
        })
    });
    mocks
        .files
        .expect_get()
        .returning(|_| Err(RepoError::NotFound));
}

/// The repository finds `upload`.
fn found(mocks: &mut Mocks, upload: &DirectUpload) {
    let upload = upload.clone();
    mocks
        .uploads
        .expect_get()
        .returning(move |_| Ok(upload.clone()));
}

fn claimed(mocks: &mut Mocks, upload: &DirectUpload) {
    found(mocks, upload);
    let upload = upload.clone();
    mocks
        .uploads
        .expect_claim()
        .times(1)
        .returning(move |_, _, _| Ok(Claim::Claimed(upload.clone())));
}

/// Expects the object and the row of a refused upload to go.
fn expect_discard(mocks: &mut Mocks) {
    mocks.blobs.expect_delete().times(1).returning(|_| Ok(()));
    mocks.uploads.expect_delete().times(1).returning(|_| Ok(()));
    mocks.files.expect_insert().never();
}

mod complete;
mod start;
