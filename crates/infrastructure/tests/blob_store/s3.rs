//! The same contract on S3, against a real s3s-fs server spawned per test.

use std::path::Path;

use stowage_infrastructure::{S3BlobStore, S3Layout, S3Settings};
use stowage_tests::S3Server;

use super::*;

const BUCKET: &str = "contract";
const PART: usize = 5 * 1024 * 1024;

/// Objects of the bucket plus every trace of an unfinished multipart upload, relative to the
/// server's root (s3s-fs cannot list uploads over the API).
fn inventory_of(root: &Path) -> Vec<String> {
    let mut found: Vec<String> = stowage_tests::s3s_fs_files(root, BUCKET)
        .iter()
        .map(|path| path.strip_prefix(root).unwrap().display().to_string())
        .collect();
    found.sort();
    found
}

fn settings(server: &S3Server, secret: Option<&str>, layout: S3Layout) -> S3Settings {
    S3Settings {
        endpoint: Some(server.endpoint()),
        region: "us-east-1".into(),
        access_key: server.access_key.clone(),
        secret_key: secret.unwrap_or(&server.secret_key).into(),
        force_path_style: true,
        layout,
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

async fn store_on(secret: Option<&str>) -> (S3Server, S3BlobStore) {
    let server = S3Server::spawn();
    let store = S3BlobStore::new(&settings(
        &server,
        secret,
        S3Layout::Single {
            bucket: BUCKET.into(),
        },
    ));
    if secret.is_none() {
        store.prepare().await.unwrap();
    }
    (server, store)
}

async fn harness() -> Harness {
    let (server, store) = store_on(None).await;
    let root = server.dir.path().to_path_buf();
    Harness {
        store: Box::new(store),
        inventory: Box::new(move || {
            let root = root.clone();
            Box::pin(async move { inventory_of(&root) })
        }),
        _resources: Box::new(server),
    }
}

blob_store_contract!(
    setup = harness();
    attrs = [#[ignore = "needs s3s-fs: make test-integration"]]
);

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_body_over_one_part_goes_multipart_and_round_trips() {
    let (server, store) = store_on(None).await;
    let data = pseudo_random_bytes(2 * PART + 12_345);
    let key = new_key();

    let stored = store
        .put(&key, body_of(uneven_chunks(&data)), None)
        .await
        .unwrap();

    assert_eq!(stored.size, data.len() as u64);
    assert_eq!(
        stored.sha256,
        Sha256Digest::from_bytes(Sha256::digest(&data).into())
    );
    let whole: Vec<u8> = read_all(store.get(&key, None).await.unwrap()).await;
    assert_eq!(whole, data.to_vec());
    let across = ByteRange::new(PART as u64 - 10, PART as u64 + 9).unwrap();
    let part: Vec<u8> = read_all(store.get(&key, Some(across)).await.unwrap()).await;
    assert_eq!(part, data[PART - 10..PART + 10].to_vec());
    assert_eq!(
        inventory_of(server.dir.path()).len(),
        1,
        "one object, no parts left"
    );
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_failure_after_parts_were_sent_aborts_the_upload() {
    let (server, store) = store_on(None).await;
    let data = pseudo_random_bytes(2 * PART + 1);
    let mut chunks: Vec<Result<Bytes, BodyError>> =
        uneven_chunks(&data).into_iter().map(Ok).collect();
    chunks.push(Err(BodyError::TooLarge { limit: 1 }));
    let body: ByteStream = Box::pin(stream::iter(chunks));

    let err = store.put(&new_key(), body, None).await.unwrap_err();

    assert!(matches!(err, BlobError::Body(BodyError::TooLarge { .. })));
    assert_eq!(inventory_of(server.dir.path()), Vec::<String>::new());
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_wrong_secret_fails_health_without_revealing_it() {
    let (_server, store) = store_on(Some("not-the-secret-xyz")).await;
    let err = store.health().await.unwrap_err();
    let text = format!("{err}: {:?}", std::error::Error::source(&err));
    assert!(matches!(err, BlobError::Unavailable(_)));
    assert!(text.contains("HeadBucket"), "{text}");
    assert!(text.contains("403"), "names the problem: {text}");
    assert!(
        !text.contains("not-the-secret-xyz") && !text.contains(BUCKET),
        "{text}"
    );
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_stopped_server_is_unavailable() {
    let (server, store) = store_on(None).await;
    drop(server);
    assert!(matches!(
        store.health().await,
        Err(BlobError::Unavailable(_))
    ));
    let err = store
        .put(&new_key(), body_of(vec![Bytes::from_static(b"x")]), None)
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::Unavailable(_)));
    assert!(matches!(
        store.get(&new_key(), None).await,
        Err(BlobError::Unavailable(_))
    ));
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_per_account_layout_creates_each_bucket_once_even_in_a_race() {
    let (server, _) = store_on(None).await;
    let per_account = |prefix: &str| {
        settings(
            &server,
            None,
            S3Layout::PerAccount {
                prefix: prefix.into(),
            },
        )
    };
    // Two replicas (two stores) racing to create the same account bucket.
    let replicas = [
        S3BlobStore::new(&per_account("acct")),
        S3BlobStore::new(&per_account("acct")),
    ];
    let keys: Vec<BlobKey> = (0..4).map(|_| key_in(42)).collect();
    let puts = keys.iter().enumerate().map(|(i, key)| {
        let store = replicas[i % 2].clone();
        let key = *key;
        async move {
            store
                .put(&key, body_of(vec![Bytes::from(format!("blob {i}"))]), None)
                .await
        }
    });
    for result in futures_util::future::join_all(puts).await {
        result.unwrap();
    }

    assert!(
        server.dir.path().join("acct-42").is_dir(),
        "bucket {{prefix}}-{{account}}"
    );
    for (i, key) in keys.iter().enumerate() {
        assert!(
            server
                .dir
                .path()
                .join("acct-42")
                .join(key.file_id().to_string())
                .is_file()
        );
        let body = read_all(replicas[0].get(key, None).await.unwrap()).await;
        assert_eq!(&body[..], format!("blob {i}").as_bytes());
    }
    let other = key_in(43);
    replicas[1]
        .put(&other, body_of(vec![Bytes::from_static(b"x")]), None)
        .await
        .unwrap();
    assert!(server.dir.path().join("acct-43").is_dir());
    assert!(matches!(
        replicas[0].get(&key_in(44), None).await,
        Err(BlobError::NotFound)
    ));
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_variants_sit_in_a_folder_beside_their_source_in_both_layouts() {
    let (server, single) = store_on(None).await;
    let per_account = S3BlobStore::new(&settings(
        &server,
        None,
        S3Layout::PerAccount {
            prefix: "acct".into(),
        },
    ));
    let root = server.dir.path();
    for (store, bucket, folder) in [(&single, BUCKET, "7/"), (&per_account, "acct-7", "")] {
        let key = key_in(7);
        let small = key.with_variant(variant("w32.png"));
        store
            .put(&key, body_of(vec![Bytes::from_static(b"source")]), None)
            .await
            .unwrap();
        store
            .put(&small, body_of(vec![png_like(50)]), None)
            .await
            .unwrap();
        let object = |name: &str| root.join(bucket).join(format!("{folder}{name}"));
        let variants = format!("{}.variants", key.file_id());
        assert!(object(&key.file_id().to_string()).is_file(), "{bucket}");
        assert!(object(&format!("{variants}/w32.png")).is_file(), "{bucket}");

        // s3s-fs lists what its directory holds: a leftover dropped in the variants folder.
        std::fs::write(object(&format!("{variants}/junk")), b"x").unwrap();
        let listed: Vec<ListedBlob> = store.list().await.unwrap().try_collect().await.unwrap();
        let strays: Vec<&str> = listed
            .iter()
            .filter_map(|item| match item {
                ListedBlob::Stray { id, .. } => Some(id.as_str()),
                ListedBlob::Blob { .. } => None,
            })
            .collect();
        let expected = format!("{bucket}\t{folder}{variants}/junk");
        assert_eq!(strays, [expected.as_str()], "{bucket}");
        let variant_size = listed.iter().find_map(|item| match item {
            ListedBlob::Blob { key, size, .. } if *key == small => Some(*size),
            _ => None,
        });
        assert_eq!(variant_size, Some(50), "{bucket}: {listed:?}");
        store.remove_stray(&expected).await.unwrap();
        assert!(!object(&format!("{variants}/junk")).exists(), "{bucket}");

        store.delete_variants(&key).await.unwrap();
        assert!(matches!(
            store.get(&small, None).await,
            Err(BlobError::NotFound)
        ));
        assert_eq!(
            read_all(store.get(&key, None).await.unwrap()).await,
            b"source"
        );
    }
    // An account whose bucket was never created has no variant to delete.
    per_account.delete_variants(&key_in(44)).await.unwrap();
    assert!(!root.join("acct-44").exists());
}
