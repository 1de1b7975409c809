//! The same contract on a second S3 implementation, moto's server: one per test process, a fresh
//! bucket per test, and what the bucket holds read back over the S3 API.

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use stowage_infrastructure::{S3BlobStore, S3Layout, S3Settings};
use stowage_tests::MotoServer;

use super::*;

const PART: usize = 5 * 1024 * 1024;
/// Moto accepts any credentials.
const ACCESS_KEY: &str = "moto-access";
const SECRET_KEY: &str = "moto-secret";
const REGION: &str = "us-east-1";

fn settings(server: &MotoServer, bucket: &str) -> S3Settings {
    S3Settings {
        endpoint: Some(server.endpoint()),
        region: REGION.into(),
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
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

/// A plain client on the same server, to see what the bucket holds.
fn client_on(server: &MotoServer) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "moto"))
        .force_path_style(true)
        .endpoint_url(server.endpoint())
        .build();
    Client::from_conf(config)
}

/// The objects of `bucket` and its unfinished multipart uploads (`upload:{key}`), sorted.
async fn inventory_of(client: &Client, bucket: &str) -> Vec<String> {
    let objects = client
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let uploads = client
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let mut found: Vec<String> = objects
        .contents()
        .iter()
        .filter_map(|object| object.key().map(str::to_owned))
        .chain(
            uploads
                .uploads()
                .iter()
                .map(|upload| format!("upload:{}", upload.key().unwrap_or_default())),
        )
        .collect();
    found.sort();
    found
}

/// A store on a bucket of its own, created, with a client on that bucket.
async fn store_on_fresh_bucket() -> (S3BlobStore, Client, String) {
    let server = MotoServer::shared();
    let bucket = MotoServer::unique_bucket("contract");
    let store = S3BlobStore::new(&settings(server, &bucket));
    store.prepare().await.unwrap();
    (store, client_on(server), bucket)
}

async fn harness() -> Harness {
    let (store, client, bucket) = store_on_fresh_bucket().await;
    Harness {
        store: Box::new(store),
        inventory: Box::new(move || {
            let (client, bucket) = (client.clone(), bucket.clone());
            Box::pin(async move { inventory_of(&client, &bucket).await })
        }),
        _resources: Box::new(()),
    }
}

blob_store_contract!(
    setup = harness();
    attrs = [#[ignore = "needs moto_server: make test-integration"]]
);

#[tokio::test]
#[ignore = "needs moto_server: make test-integration"]
async fn moto_body_over_one_part_goes_multipart_and_round_trips() {
    let (store, client, bucket) = store_on_fresh_bucket().await;
    let data = pseudo_random_bytes(2 * PART + 12_345);
    let key = new_key();

    let stored = store
        .put(&key, body_of(uneven_chunks(&data)), None)
        .await
        .unwrap();

    assert_eq!(stored, stored_blob_of(&data));
    let whole: Vec<u8> = read_all(store.get(&key, None).await.unwrap()).await;
    assert!(
        whole == data,
        "the bytes read differ from the bytes written"
    );
    let across = ByteRange::new(PART as u64 - 10, PART as u64 + 9).unwrap();
    let part: Vec<u8> = read_all(store.get(&key, Some(across)).await.unwrap()).await;
    assert_eq!(part, data[PART - 10..PART + 10].to_vec());
    assert_eq!(
        inventory_of(&client, &bucket).await.len(),
        1,
        "one object, no upload left"
    );
}

#[tokio::test]
#[ignore = "needs moto_server: make test-integration"]
async fn moto_failure_after_parts_were_sent_aborts_the_upload() {
    let (store, client, bucket) = store_on_fresh_bucket().await;
    let data = pseudo_random_bytes(2 * PART + 1);
    let body = body_failing_after(uneven_chunks(&data), BodyError::TooLarge { limit: 1 });

    let err = store.put(&new_key(), body, None).await.unwrap_err();

    assert!(matches!(err, BlobError::Body(BodyError::TooLarge { .. })));
    eventually("abort of the multipart upload", || async {
        inventory_of(&client, &bucket).await.is_empty()
    })
    .await;
}

#[tokio::test]
#[ignore = "needs moto_server: make test-integration"]
async fn moto_objects_in_a_variants_folder_that_are_no_variants_are_strays() {
    let (store, client, bucket) = store_on_fresh_bucket().await;
    let key = new_key();
    let kept = key.with_variant(variant("w32.png"));
    store
        .put(&kept, body_of(vec![png_like(40)]), None)
        .await
        .unwrap();
    let folder = format!("{}/{}.variants", key.account_id(), key.file_id());
    let leftover = format!("{folder}/W32.PNG");
    client
        .put_object()
        .bucket(&bucket)
        .key(&leftover)
        .body(Bytes::from_static(b"x").into())
        .send()
        .await
        .unwrap();
    // Not the store's: left alone.
    client
        .put_object()
        .bucket(&bucket)
        .key(format!("{}/{}/w32.png", key.account_id(), key.file_id()))
        .body(Bytes::from_static(b"x").into())
        .send()
        .await
        .unwrap();

    let listed: Vec<ListedBlob> = store.list().await.unwrap().try_collect().await.unwrap();

    let strays: Vec<&str> = listed
        .iter()
        .filter_map(|item| match item {
            ListedBlob::Stray { id, .. } => Some(id.as_str()),
            ListedBlob::Blob { .. } => None,
        })
        .collect();
    let expected = format!("{bucket}\t{leftover}");
    assert_eq!(strays, [expected.as_str()]);
    assert_eq!(listed.len(), 2, "and the variant: {listed:?}");
    store.remove_stray(&expected).await.unwrap();
    assert_eq!(
        inventory_of(&client, &bucket).await,
        [
            format!("{folder}/w32.png"),
            format!("{}/{}/w32.png", key.account_id(), key.file_id()),
        ]
    );
    store.delete_variants(&key).await.unwrap();
    assert_eq!(
        inventory_of(&client, &bucket).await,
        [format!("{}/{}/w32.png", key.account_id(), key.file_id())]
    );
}
