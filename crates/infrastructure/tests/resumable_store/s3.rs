//! The contract on S3, against a real s3s-fs server spawned per test, and how the S3 store lays
//! an upload out: streamed parts, the tail kept as an object, what abort and finish leave.

use std::path::{Path, PathBuf};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use stowage_infrastructure::{S3BlobStore, S3Layout, S3ResumableStore, S3Settings};
use stowage_tests::S3Server;

use super::*;

const BUCKET: &str = "resumable";
const PART: usize = 5 * MIB;

fn settings(server: &S3Server) -> S3Settings {
    S3Settings {
        endpoint: Some(server.endpoint()),
        region: "us-east-1".into(),
        access_key: server.access_key.clone(),
        secret_key: server.secret_key.clone().into(),
        force_path_style: true,
        layout: S3Layout::Single {
            bucket: BUCKET.into(),
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

async fn stores() -> (S3Server, S3ResumableStore, S3BlobStore) {
    let server = S3Server::spawn();
    let blobs = S3BlobStore::new(&settings(&server));
    blobs.prepare().await.unwrap();
    (server, S3ResumableStore::new(blobs.clone()), blobs)
}

async fn harness() -> (
    Arc<dyn ResumableStore>,
    Arc<dyn BlobStore>,
    Box<dyn Any + Send>,
) {
    let (server, resumable, blobs) = stores().await;
    (Arc::new(resumable), Arc::new(blobs), Box::new(server))
}

resumable_store_contract!(
    setup = harness();
    attrs = [#[ignore = "needs s3s-fs: make test-integration"]]
);

/// A plain client on the same server, to see the parts of an upload.
fn client_on(server: &S3Server) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            server.access_key.clone(),
            server.secret_key.clone(),
            None,
            None,
            "test",
        ))
        .force_path_style(true)
        .endpoint_url(server.endpoint())
        .build();
    Client::from_conf(config)
}

/// The sizes of the parts an unfinished upload holds, in part order.
async fn part_sizes(client: &Client, key: &BlobKey, progress: &StoreProgress) -> Vec<i64> {
    let upload_id = upload_id_of(progress);
    let listed = client
        .list_parts()
        .bucket(BUCKET)
        .key(key.to_string())
        .upload_id(upload_id)
        .send()
        .await
        .unwrap();
    let mut parts: Vec<(i32, i64)> = listed
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap(), p.size().unwrap()))
        .collect();
    parts.sort_unstable();
    parts.into_iter().map(|(_, size)| size).collect()
}

fn upload_id_of(progress: &StoreProgress) -> String {
    let json: serde_json::Value = serde_json::from_str(&progress.0).unwrap();
    json["upload_id"].as_str().unwrap().to_owned()
}

/// Tail objects in the bucket, with their sizes.
fn tails(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut found: Vec<(PathBuf, u64)> = stowage_tests::s3s_fs_files(root, BUCKET)
        .into_iter()
        .filter(|path| {
            path.strip_prefix(root.join(BUCKET))
                .is_ok_and(|p| p.starts_with("direct/tus"))
        })
        .map(|path| {
            let size = std::fs::metadata(&path).unwrap().len();
            (path, size)
        })
        .collect();
    found.sort();
    found
}

/// Everything the server holds for the bucket, bytes and unfinished uploads alike.
fn inventory(root: &Path) -> Vec<PathBuf> {
    let mut found = stowage_tests::s3s_fs_files(root, BUCKET);
    found.sort();
    found
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_appends_of_8_mib_stream_into_one_part_each() {
    let (server, store, blobs) = stores().await;
    let client = client_on(&server);
    let data = pseudo_random_bytes(24 * MIB, 1);
    let total = Some(data.len() as u64);
    let mut upload = Upload::begin(&store).await;

    for (i, start) in (0..data.len()).step_by(8 * MIB).enumerate() {
        upload
            .append(&store, &data.slice(start..start + 8 * MIB), total)
            .await;
        assert_eq!(
            part_sizes(&client, &upload.key, &upload.progress).await,
            vec![8 * MIB as i64; i + 1]
        );
    }
    assert!(tails(server.dir.path()).is_empty());
    upload.finish(&store).await;

    assert_blob(&blobs, &upload.key, &data).await;
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_appends_below_a_part_grow_one_tail_until_a_part_is_reached() {
    for total in [None, Some(7 * MIB as u64)] {
        let (server, store, blobs) = stores().await;
        let client = client_on(&server);
        let data = pseudo_random_bytes(7 * MIB, 2);
        let mut upload = Upload::begin(&store).await;

        for i in 0..4 {
            upload
                .append(&store, &data.slice(i * MIB..(i + 1) * MIB), total)
                .await;
            let kept = tails(server.dir.path());
            assert_eq!(kept.len(), 1, "one tail, the older ones released: {kept:?}");
            assert_eq!(kept[0].1, ((i + 1) * MIB) as u64);
        }
        assert!(
            part_sizes(&client, &upload.key, &upload.progress)
                .await
                .is_empty()
        );
        upload
            .append(&store, &data.slice(4 * MIB..5 * MIB), total)
            .await;
        assert_eq!(
            part_sizes(&client, &upload.key, &upload.progress).await,
            vec![PART as i64]
        );
        assert!(tails(server.dir.path()).is_empty());
        upload
            .append(&store, &data.slice(5 * MIB..6 * MIB), total)
            .await;
        upload.append(&store, &data.slice(6 * MIB..), total).await;
        match total {
            // The bytes that end the upload are its last part, however few.
            Some(_) => {
                assert!(tails(server.dir.path()).is_empty());
                assert_eq!(
                    part_sizes(&client, &upload.key, &upload.progress).await,
                    vec![PART as i64, 2 * MIB as i64]
                );
            }
            None => assert_eq!(tails(server.dir.path()).len(), 1),
        }
        upload.finish(&store).await;

        assert_blob(&blobs, &upload.key, &data).await;
        assert!(tails(server.dir.path()).is_empty());
    }
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_appends_of_unknown_length_are_read_a_part_at_a_time() {
    let (server, store, blobs) = stores().await;
    let client = client_on(&server);
    let data = pseudo_random_bytes(16 * MIB + 1, 3);
    let mut upload = Upload::begin(&store).await;

    for (start, end) in [
        (0, 12 * MIB),
        (12 * MIB, 16 * MIB),
        (16 * MIB, 16 * MIB + 1),
    ] {
        let appended = upload
            .try_append(&store, body_of(&data.slice(start..end)), None, None)
            .await;
        assert!(appended.interrupted.is_none());
        assert_eq!(appended.written, (end - start) as u64);
        upload.commit(&store, appended).await;
    }

    assert_eq!(
        part_sizes(&client, &upload.key, &upload.progress).await,
        vec![PART as i64; 3]
    );
    assert_eq!(tails(server.dir.path())[0].1, (MIB + 1) as u64);
    upload.finish(&store).await;
    assert_blob(&blobs, &upload.key, &data).await;
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_a_body_failing_in_a_streamed_part_keeps_the_parts_sent_before() {
    let (server, store, blobs) = stores().await;
    let client = client_on(&server);
    let head = pseudo_random_bytes(700_000, 4);
    let rest = pseudo_random_bytes(45 * MIB, 5);
    let total = (head.len() + rest.len()) as u64;
    let mut upload = Upload::begin(&store).await;
    upload.append(&store, &head, Some(total)).await;

    // Parts of four part sizes: the first (the tail and 20 MiB less the tail) is whole when the
    // body fails inside the second.
    let body = body_failing_after(
        &rest.slice(..30 * MIB),
        BodyError::ClientAborted("connection reset".into()),
    );
    let appended = upload
        .try_append(&store, body, Some(rest.len() as u64), Some(total))
        .await;

    assert!(matches!(
        appended.interrupted,
        Some(BlobError::Body(BodyError::ClientAborted(_)))
    ));
    let first_part = 4 * PART as u64;
    assert_eq!(appended.written, first_part - head.len() as u64);
    upload.commit(&store, appended).await;
    assert_eq!(
        part_sizes(&client, &upload.key, &upload.progress).await,
        vec![first_part as i64]
    );
    assert!(
        tails(server.dir.path()).is_empty(),
        "the tail went into the part"
    );
    let sent = upload.offset as usize - head.len();
    upload
        .append(&store, &rest.slice(sent..), Some(total))
        .await;
    upload.finish(&store).await;
    assert_blob(&blobs, &upload.key, &[head, rest].concat()).await;
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_a_body_failing_while_buffered_keeps_every_byte_received() {
    let (server, store, blobs) = stores().await;
    let client = client_on(&server);
    let data = pseudo_random_bytes(9 * MIB, 6);
    let received = 7 * MIB + 3;
    let mut upload = Upload::begin(&store).await;

    let body = body_failing_after(&data.slice(..received), BodyError::TimedOut);
    let appended = upload.try_append(&store, body, None, None).await;

    assert!(matches!(
        appended.interrupted,
        Some(BlobError::Body(BodyError::TimedOut))
    ));
    assert_eq!(appended.written, received as u64);
    upload.commit(&store, appended).await;
    assert_eq!(
        part_sizes(&client, &upload.key, &upload.progress).await,
        vec![PART as i64]
    );
    assert_eq!(tails(server.dir.path())[0].1, (received - PART) as u64);
    upload.append(&store, &data.slice(received..), None).await;
    upload.finish(&store).await;
    assert_blob(&blobs, &upload.key, &data).await;
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_abort_leaves_no_part_no_upload_and_no_tail() {
    let (server, store, _blobs) = stores().await;
    let mut upload = Upload::begin(&store).await;
    upload
        .append(&store, &pseudo_random_bytes(6 * MIB, 7), None)
        .await;
    upload
        .append(&store, &pseudo_random_bytes(MIB, 8), None)
        .await;
    // A tail of an append never committed.
    let uncommitted = upload
        .try_append(&store, body_of(&pseudo_random_bytes(MIB, 9)), None, None)
        .await;
    drop(uncommitted);
    assert_eq!(tails(server.dir.path()).len(), 2);

    store.abort(&upload.key, &upload.progress).await.unwrap();

    assert_eq!(inventory(server.dir.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_stray_ids_are_the_ids_the_listing_gives_the_tail() {
    let (_server, store, blobs) = stores().await;
    let mut upload = Upload::begin(&store).await;
    upload
        .append(&store, &pseudo_random_bytes(1_000, 10), None)
        .await;

    let ids = store.stray_ids(&upload.key, &upload.progress);
    let (strays, _) = listing(&blobs).await;

    assert_eq!(ids.len(), 2, "the multipart upload and the tail: {ids:?}");
    assert_eq!(
        ids[0],
        format!(
            "{BUCKET}\t{}\t{}",
            upload.key,
            upload_id_of(&upload.progress)
        )
    );
    // s3s-fs cannot list multipart uploads: only the tail shows.
    assert_eq!(strays, ids[1..].to_vec());
    for id in &strays {
        blobs.remove_stray(id).await.unwrap();
    }
    assert_eq!(listing(&blobs).await.0, Vec::<String>::new());
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_concatenate_copies_parts_of_6_mib_inside_the_store() {
    let (server, store, blobs) = stores().await;
    let mut parts = Vec::new();
    let mut expected = Vec::new();
    for seed in 0..3 {
        let data = pseudo_random_bytes(6 * MIB, 20 + seed);
        let mut upload = Upload::begin(&store).await;
        upload.append(&store, &data, Some(data.len() as u64)).await;
        upload.finish(&store).await;
        parts.push(ConcatPart {
            key: upload.key,
            size: data.len() as u64,
        });
        expected.push(data);
    }
    let key = new_key();

    assert!(store.concatenate(&key, &parts).await.unwrap());

    assert_blob(&blobs, &key, &expected.concat()).await;
    for (part, data) in parts.iter().zip(&expected) {
        assert_blob(&blobs, &part.key, data).await;
    }
    let objects = inventory(server.dir.path());
    assert_eq!(objects.len(), 4, "four blobs, no upload left: {objects:?}");
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_concatenate_of_a_missing_part_is_not_found_and_leaves_no_upload() {
    let (server, store, _blobs) = stores().await;
    let data = pseudo_random_bytes(6 * MIB, 30);
    let mut upload = Upload::begin(&store).await;
    upload.append(&store, &data, Some(data.len() as u64)).await;
    upload.finish(&store).await;
    let parts = [
        ConcatPart {
            key: upload.key,
            size: data.len() as u64,
        },
        ConcatPart {
            key: new_key(),
            size: 10,
        },
    ];

    let joined = store.concatenate(&new_key(), &parts).await;

    assert!(matches!(joined, Err(BlobError::NotFound)), "{joined:?}");
    assert_eq!(inventory(server.dir.path()).len(), 1);
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_a_finish_retried_after_it_landed_succeeds() {
    let (_server, store, blobs) = stores().await;
    let data = pseudo_random_bytes(6 * MIB + 5, 40);
    let mut upload = Upload::begin(&store).await;
    upload.append(&store, &data.slice(..6 * MIB), None).await;
    upload.append(&store, &data.slice(6 * MIB..), None).await;
    upload.finish(&store).await;

    upload.finish(&store).await;

    assert_blob(&blobs, &upload.key, &data).await;
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_finish_with_another_length_fails() {
    let (_server, store, blobs) = stores().await;
    let mut upload = Upload::begin(&store).await;
    upload
        .append(&store, &pseudo_random_bytes(10, 50), None)
        .await;

    let finished = store.finish(&upload.key, &upload.progress, 11).await;

    assert!(
        matches!(finished, Err(BlobError::Unavailable(_))),
        "{finished:?}"
    );
    assert!(matches!(
        blobs.get(&upload.key, None).await,
        Err(BlobError::NotFound)
    ));
}
