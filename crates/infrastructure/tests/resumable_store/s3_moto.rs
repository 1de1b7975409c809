//! The contract on a second S3 implementation, moto's server (one per test process, a fresh
//! bucket per test), which also lists unfinished multipart uploads over the API.

use stowage_infrastructure::{S3BlobStore, S3Layout, S3ResumableStore, S3Settings};
use stowage_tests::MotoServer;

use super::*;

const PART: usize = 5 * MIB;

fn settings(server: &MotoServer, bucket: &str) -> S3Settings {
    S3Settings {
        endpoint: Some(server.endpoint()),
        region: "us-east-1".into(),
        // Moto accepts any credentials.
        access_key: "moto-access".into(),
        secret_key: "moto-secret".into(),
        force_path_style: true,
        layout: S3Layout::Single {
            bucket: bucket.into(),
        },
        part_size: PART,
        pipelined_uploads: 2,
        buffer_bytes: 64 * 1024 * 1024,
        buffer_wait: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        operation_timeout: Duration::from_secs(30),
        max_attempts: 2,
        stream_uploads: true,
    }
}

async fn stores() -> (S3ResumableStore, S3BlobStore) {
    let server = MotoServer::shared();
    let bucket = MotoServer::unique_bucket("resumable");
    let blobs = S3BlobStore::new(&settings(server, &bucket));
    blobs.prepare().await.unwrap();
    (S3ResumableStore::new(blobs.clone()), blobs)
}

async fn harness() -> (Arc<dyn ResumableStore>, Arc<dyn BlobStore>) {
    let (resumable, blobs) = stores().await;
    (Arc::new(resumable), Arc::new(blobs))
}

resumable_store_contract!(
    setup = harness();
    attrs = [#[ignore = "needs moto_server: make test-integration"]]
);

#[tokio::test]
#[ignore = "needs moto_server: make test-integration"]
async fn moto_abort_leaves_no_multipart_upload_and_no_tail() {
    let (store, blobs) = stores().await;
    let mut upload = Upload::begin(&store).await;
    upload
        .append(&store, &pseudo_random_bytes(6 * MIB, 1), None)
        .await;
    upload
        .append(&store, &pseudo_random_bytes(MIB, 2), None)
        .await;
    let mut ids = store.stray_ids(&upload.key, &upload.progress);
    let (mut strays, _) = listing(&blobs).await;
    ids.sort();
    strays.sort();
    assert_eq!(strays, ids, "the multipart upload and the tail, as listed");

    store.abort(&upload.key, &upload.progress).await.unwrap();

    assert_eq!(listing(&blobs).await, (vec![], vec![]));
}
