//! The same contract on the Cloudinary adapter, against the fake Cloudinary of the test harness
//! (the machine has no access to Cloudinary itself), plus what only this adapter does: chunking,
//! resource types, retries, signed delivery with ranges, the `gc` listing.

use secrecy::SecretString;
use stowage_application::ports::ListedBlob;
use stowage_infrastructure::{CloudinaryBlobStore, CloudinarySettings, SignatureAlgorithm};
use stowage_tests::cloudinary::{Algorithm, FakeCloudinary, Route};

use super::*;

const FOLDER: &str = "stowage";
const CHUNK: usize = 5_000_000;

fn settings(fake: &FakeCloudinary, secret: &str) -> CloudinarySettings {
    CloudinarySettings {
        cloud_name: fake.cloud_name.clone(),
        api_key: fake.api_key.clone(),
        api_secret: SecretString::from(secret),
        folder: FOLDER.into(),
        api_url: fake.url(),
        delivery_url: fake.url(),
        chunk_size: CHUNK,
        buffer_bytes: 64 * 1024 * 1024,
        buffer_wait: Duration::from_secs(10),
        signature_algorithm: match fake.algorithm {
            Algorithm::Sha1 => SignatureAlgorithm::Sha1,
            Algorithm::Sha256 => SignatureAlgorithm::Sha256,
        },
        connect_timeout: Duration::from_secs(2),
        timeout: Duration::from_secs(10),
    }
}

fn store_on(fake: &FakeCloudinary) -> CloudinaryBlobStore {
    CloudinaryBlobStore::new(&settings(fake, &fake.api_secret)).unwrap()
}

async fn harness() -> Harness {
    let fake = std::sync::Arc::new(FakeCloudinary::spawn());
    let store = store_on(&fake);
    let seen = std::sync::Arc::clone(&fake);
    Harness {
        store: Box::new(store),
        inventory: Box::new(move || {
            let resources = seen.resources();
            Box::pin(async move { resources })
        }),
        _resources: Box::new(fake),
    }
}

blob_store_contract!(setup = harness(); attrs = []);

fn png(len: usize) -> Bytes {
    let mut data = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    data.extend_from_slice(&pseudo_random_bytes(len - data.len()));
    data.into()
}

#[tokio::test]
async fn a_large_body_is_sent_in_chunks_of_unknown_total_until_the_last() {
    let fake = FakeCloudinary::spawn();
    let store = store_on(&fake);
    let data = pseudo_random_bytes(2 * CHUNK + 123);
    let key = new_key();

    let stored = store
        .put(&key, body_of(uneven_chunks(&data)), None)
        .await
        .unwrap();

    assert_eq!(stored, stored_blob_of(&data));
    let uploads: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.route == Route::Upload)
        .collect();
    let ranges: Vec<&str> = uploads
        .iter()
        .map(|r| r.headers["content-range"].as_str())
        .collect();
    let total = data.len();
    assert_eq!(
        ranges,
        [
            format!("bytes 0-{}/-1", CHUNK - 1),
            format!("bytes {CHUNK}-{}/-1", 2 * CHUNK - 1),
            format!("bytes {}-{}/{total}", 2 * CHUNK, total - 1),
        ]
    );
    let ids: std::collections::HashSet<_> = uploads
        .iter()
        .map(|r| r.headers["x-unique-upload-id"].clone())
        .collect();
    assert_eq!(ids.len(), 1, "one upload id for every chunk");
    assert!(uploads.iter().all(|r| r.fields["type"] == "authenticated"));
    let public_id = format!("{FOLDER}/7/{}", key.file_id());
    assert_eq!(fake.resource("raw", &public_id).unwrap(), data);
    assert_eq!(fake.pending_uploads(), 0);
}

#[tokio::test]
async fn images_are_image_resources_and_other_files_raw_ones() {
    let fake = FakeCloudinary::spawn();
    let store = store_on(&fake);
    let (picture, text) = (new_key(), new_key());

    store
        .put(&picture, body_of(vec![png(70_000)]), None)
        .await
        .unwrap();
    store
        .put(
            &text,
            body_of(vec![Bytes::from_static(b"plain text")]),
            None,
        )
        .await
        .unwrap();

    assert_eq!(fake.resources(), {
        let mut expected = vec![
            format!("image/{FOLDER}/7/{}", picture.file_id()),
            format!("raw/{FOLDER}/7/{}", text.file_id()),
        ];
        expected.sort();
        expected
    });
    // A fresh store has forgotten the types, and still finds both.
    let fresh = store_on(&fake);
    let range = ByteRange::new(2, 5).unwrap();
    assert_eq!(
        read_all(fresh.get(&text, Some(range)).await.unwrap()).await,
        b"ain "
    );
    assert_eq!(fresh.head(&picture).await.unwrap(), 70_000);
    fresh.delete(&text).await.unwrap();
    fresh.delete(&picture).await.unwrap();
    assert!(fake.resources().is_empty());
}

#[tokio::test]
async fn reads_send_the_range_and_a_signed_delivery_url() {
    let fake = FakeCloudinary::spawn_with(Algorithm::Sha256);
    let store = store_on(&fake);
    let data = pseudo_random_bytes(300_000);
    let key = new_key();
    store
        .put(&key, body_of(vec![data.clone()]), None)
        .await
        .unwrap();

    let body = store
        .get(&key, Some(ByteRange::new(1000, 250_000).unwrap()))
        .await
        .unwrap();

    assert_eq!(body.len, 249_001);
    assert!(read_all(body).await == data[1000..=250_000]);
    let deliveries: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.route == Route::Delivery && r.method == "GET")
        .collect();
    assert_eq!(
        deliveries
            .last()
            .unwrap()
            .headers
            .get("range")
            .map(String::as_str),
        Some("bytes=1000-250000")
    );
}

#[tokio::test]
async fn a_transient_failure_of_a_chunk_is_retried_with_the_same_bytes() {
    let fake = FakeCloudinary::spawn();
    let store = store_on(&fake);
    let data = pseudo_random_bytes(CHUNK + 10);
    fake.fail_next(Route::Upload, 503, 1);

    let stored = store
        .put(&new_key(), body_of(uneven_chunks(&data)), None)
        .await
        .unwrap();

    assert_eq!(stored, stored_blob_of(&data));
    assert_eq!(fake.resources().len(), 1);
}

#[tokio::test]
async fn a_body_failing_after_the_first_chunk_leaves_no_resource() {
    let fake = FakeCloudinary::spawn();
    let store = store_on(&fake);
    let data = pseudo_random_bytes(CHUNK + 100_000);

    let result = store
        .put(
            &new_key(),
            body_failing_after(
                uneven_chunks(&data),
                BodyError::ClientAborted("connection reset".into()),
            ),
            None,
        )
        .await;

    assert!(matches!(result, Err(BlobError::Body(_))), "{result:?}");
    assert!(fake.resources().is_empty());
}

#[tokio::test]
async fn a_wrong_secret_is_unavailable_without_the_secret_in_the_error() {
    let fake = FakeCloudinary::spawn();
    let store = CloudinaryBlobStore::new(&settings(&fake, "not-the-secret")).unwrap();

    let put = store
        .put(&new_key(), body_of(vec![Bytes::from_static(b"x")]), None)
        .await;
    let health = store.health().await;

    for result in [put.map(|_| ()), health] {
        let Err(BlobError::Unavailable(e)) = result else {
            panic!("expected Unavailable, got {result:?}");
        };
        let text = format!("{e} {e:?}");
        assert!(text.contains("401"), "{text}");
        assert!(
            !text.contains("not-the-secret") && !text.contains(&fake.api_secret),
            "{text}"
        );
    }
    assert!(fake.resources().is_empty());
}

#[tokio::test]
async fn health_fails_when_the_admin_api_does() {
    let fake = FakeCloudinary::spawn();
    let store = store_on(&fake);
    fake.fail_next(Route::Ping, 500, 1);

    assert!(matches!(
        store.health().await,
        Err(BlobError::Unavailable(_))
    ));
    store.health().await.unwrap();
}

#[tokio::test]
async fn the_listing_covers_both_types_and_reports_foreign_resources_as_strays() {
    let fake = FakeCloudinary::spawn();
    let store = store_on(&fake);
    let mut keys = Vec::new();
    for i in 0..3 {
        let key = key_in(i);
        store
            .put(&key, body_of(vec![png(100 + i as usize)]), None)
            .await
            .unwrap();
        keys.push(key);
    }
    let text = key_in(9);
    store
        .put(&text, body_of(vec![Bytes::from_static(b"abc")]), None)
        .await
        .unwrap();
    fake.insert(
        "raw",
        &format!("{FOLDER}/not-a-key"),
        Bytes::from_static(b"x"),
    );
    fake.insert("raw", "elsewhere/1/abc", Bytes::from_static(b"x"));

    let listed: Vec<ListedBlob> = store.list().await.unwrap().try_collect().await.unwrap();

    let mut blobs: Vec<(BlobKey, u64)> = listed
        .iter()
        .filter_map(|item| match item {
            ListedBlob::Blob { key, size, .. } => Some((*key, *size)),
            ListedBlob::Stray { .. } => None,
        })
        .collect();
    blobs.sort_by_key(|(key, _)| key.account_id().get());
    assert_eq!(
        blobs,
        vec![(keys[0], 100), (keys[1], 101), (keys[2], 102), (text, 3)]
    );
    let strays: Vec<&str> = listed
        .iter()
        .filter_map(|item| match item {
            ListedBlob::Stray { id, .. } => Some(id.as_str()),
            ListedBlob::Blob { .. } => None,
        })
        .collect();
    assert_eq!(strays, [format!("raw/{FOLDER}/not-a-key")]);
    store.remove_stray(strays[0]).await.unwrap();
    assert_eq!(fake.resource("raw", &format!("{FOLDER}/not-a-key")), None);
    assert!(fake.resource("raw", "elsewhere/1/abc").is_some());
}

#[tokio::test]
async fn a_range_is_cut_from_the_whole_answer_when_the_server_ignores_range() {
    let fake = FakeCloudinary::spawn();
    let store = store_on(&fake);
    let data = pseudo_random_bytes(200_000);
    let key = new_key();
    store
        .put(&key, body_of(uneven_chunks(&data)), None)
        .await
        .unwrap();
    fake.ignore_ranges(true);

    for (start, end) in [(0, 99), (150_000, 199_999), (70_000, 70_000)] {
        let body = store
            .get(&key, Some(ByteRange::new(start, end).unwrap()))
            .await
            .unwrap();

        assert_eq!(body.len, end - start + 1);
        assert!(read_all(body).await == data[start as usize..=end as usize]);
    }
}

#[tokio::test]
async fn an_image_cloudinary_cannot_decode_is_kept_as_a_raw_resource() {
    let fake = FakeCloudinary::spawn();
    let store = store_on(&fake);
    let key = new_key();
    // A PNG signature on bytes no decoder takes: the fake refuses it as an image.
    fake.fail_next(Route::Upload, 400, 1);

    let stored = store
        .put(&key, body_of(vec![png(1000)]), None)
        .await
        .unwrap();

    assert_eq!(stored.size, 1000);
    assert_eq!(
        fake.resources(),
        [format!("raw/{FOLDER}/7/{}", key.file_id())]
    );
    assert_eq!(
        read_all(store.get(&key, None).await.unwrap()).await.len(),
        1000
    );
}

#[tokio::test]
async fn a_failed_last_chunk_is_not_retried_and_leaves_no_resource() {
    let fake = FakeCloudinary::spawn();
    let store = store_on(&fake);
    fake.fail_next(Route::Upload, 503, 1);

    let result = store
        .put(&new_key(), body_of(vec![Bytes::from_static(b"abc")]), None)
        .await;

    assert!(
        matches!(result, Err(BlobError::Unavailable(_))),
        "{result:?}"
    );
    assert!(fake.resources().is_empty());
    let uploads = fake
        .requests()
        .into_iter()
        .filter(|r| r.route == Route::Upload)
        .count();
    assert_eq!(uploads, 1, "the last chunk was sent again");
}

#[tokio::test]
async fn variants_are_resources_beside_their_source_deleted_by_prefix() {
    let fake = FakeCloudinary::spawn();
    let store = store_on(&fake);
    let key = new_key();
    let small = key.with_variant(variant("w32-q80.png"));
    let odd = key.with_variant(variant("w300.webp"));
    store
        .put(&key, body_of(vec![png(500)]), None)
        .await
        .unwrap();
    store
        .put(&small, body_of(vec![png(100)]), None)
        .await
        .unwrap();
    store
        .put(
            &odd,
            body_of(vec![Bytes::from_static(b"not an image")]),
            None,
        )
        .await
        .unwrap();
    let source_id = format!("{FOLDER}/7/{}", key.file_id());
    assert_eq!(
        fake.resources(),
        [
            format!("image/{source_id}"),
            format!("image/{source_id}/w32-q80_png"),
            format!("raw/{source_id}/w300_webp"),
        ]
    );
    fake.insert(
        "image",
        &format!("{source_id}/w32-q80.png"),
        Bytes::from_static(b"x"),
    );

    let listed: Vec<ListedBlob> = store.list().await.unwrap().try_collect().await.unwrap();

    let strays: Vec<&str> = listed
        .iter()
        .filter_map(|item| match item {
            ListedBlob::Stray { id, .. } => Some(id.as_str()),
            ListedBlob::Blob { .. } => None,
        })
        .collect();
    assert_eq!(strays, [format!("image/{source_id}/w32-q80.png")]);
    assert_eq!(listed.len(), 4, "{listed:?}");

    // A fresh store has not seen the variants, and still removes both types.
    store_on(&fake).delete_variants(&key).await.unwrap();

    assert_eq!(fake.resources(), [format!("image/{source_id}")]);
    let deletions: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.route == Route::DeleteResources)
        .collect();
    assert_eq!(deletions.len(), 2, "one per resource type");
    for deletion in &deletions {
        assert_eq!(deletion.method, "DELETE");
        assert_eq!(deletion.fields["prefix"], format!("{source_id}/"));
    }
    assert!(matches!(
        store.get(&small, None).await,
        Err(BlobError::NotFound)
    ));
}

#[tokio::test]
async fn a_failed_variant_deletion_is_unavailable() {
    let fake = FakeCloudinary::spawn();
    let store = store_on(&fake);
    fake.fail_next(Route::DeleteResources, 500, 1);

    let deleted = store.delete_variants(&new_key()).await;

    assert!(
        matches!(deleted, Err(BlobError::Unavailable(_))),
        "{deleted:?}"
    );
}

/// A body that sends `first`, then stalls as a client that pauses until `go_on` fires, then
/// sends `rest`; `stalled` fires when the store asks for more than `first`.
fn pausing_after(
    first: Bytes,
    rest: Bytes,
) -> (
    ByteStream,
    tokio::sync::oneshot::Receiver<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (stalled_tx, stalled) = tokio::sync::oneshot::channel();
    let (go_on, resumed) = tokio::sync::oneshot::channel::<()>();
    let body = stream::once(async move { Ok(first) })
        .chain(stream::once(async move {
            let _ = stalled_tx.send(());
            let _ = resumed.await;
            Ok(rest)
        }))
        .boxed();
    (body, stalled, go_on)
}

fn store_with_budget(
    fake: &FakeCloudinary,
    buffer_bytes: u64,
    wait: Duration,
) -> CloudinaryBlobStore {
    CloudinaryBlobStore::new(&CloudinarySettings {
        buffer_bytes,
        buffer_wait: wait,
        ..settings(fake, &fake.api_secret)
    })
    .unwrap()
}

fn upload_count(fake: &FakeCloudinary) -> usize {
    fake.requests()
        .into_iter()
        .filter(|r| r.route == Route::Upload)
        .count()
}

#[tokio::test]
async fn chunks_share_the_buffer_budget_and_a_finished_upload_gives_its_share_back() {
    let fake = FakeCloudinary::spawn();
    // One chunk's worth of buffers for everyone, waited for briefly.
    let wait = Duration::from_millis(300);
    let store = store_with_budget(&fake, CHUNK as u64, wait);
    // A client sends all but 16 KiB of a chunk, then stalls: its chunk holds that much.
    let data = pseudo_random_bytes(CHUNK + 50_000);
    let held = CHUNK - 16 * 1024;
    let (body, stalled, go_on) = pausing_after(data.slice(..held), data.slice(held..));
    let holding = tokio::spawn({
        let store = store.clone();
        async move { store.put(&new_key(), body, None).await }
    });
    stalled.await.unwrap();

    // A small upload fits in what is left; a larger one waits, then is refused unsent.
    let small = pseudo_random_bytes(8 * 1024);
    let stored = store
        .put(&new_key(), body_of(vec![small.clone()]), None)
        .await
        .unwrap();
    assert_eq!(stored, stored_blob_of(&small));
    let second = pseudo_random_bytes(100_000);
    let started = std::time::Instant::now();
    let refused = store
        .put(&new_key(), body_of(uneven_chunks(&second)), None)
        .await;
    assert!(
        matches!(
            refused,
            Err(BlobError::Busy {
                retry_after_secs: 1
            })
        ),
        "{refused:?}"
    );
    assert!(started.elapsed() >= wait, "refused without waiting");
    assert_eq!(upload_count(&fake), 1, "only the small upload was sent");

    // The stalled client goes on: its upload completes and gives its buffers back, so the
    // refused one goes through when it is sent again.
    go_on.send(()).unwrap();
    assert_eq!(holding.await.unwrap().unwrap(), stored_blob_of(&data));
    let stored = store
        .put(&new_key(), body_of(uneven_chunks(&second)), None)
        .await
        .unwrap();
    assert_eq!(stored, stored_blob_of(&second));
    assert_eq!(fake.resources().len(), 3);
}

#[tokio::test]
async fn an_upload_larger_than_the_budget_goes_through_one_chunk_at_a_time() {
    let fake = FakeCloudinary::spawn();
    let store = store_with_budget(&fake, CHUNK as u64, Duration::from_secs(5));
    // Three chunks through a budget of one: each waits for the previous one to be sent.
    let data = pseudo_random_bytes(2 * CHUNK + 123);

    let stored = store
        .put(&new_key(), body_of(uneven_chunks(&data)), None)
        .await
        .unwrap();

    assert_eq!(stored, stored_blob_of(&data));
    assert_eq!(upload_count(&fake), 3);
}
