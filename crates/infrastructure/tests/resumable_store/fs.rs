use std::path::PathBuf;

use stowage_infrastructure::{FsBlobStore, FsResumableStore};
use tempfile::TempDir;

use super::*;

fn new_stores() -> (TempDir, PathBuf, FsResumableStore, FsBlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let resumable = FsResumableStore::new(&root).unwrap();
    let blobs = FsBlobStore::new(&root).unwrap();
    (dir, root, resumable, blobs)
}

async fn harness() -> (
    Arc<dyn ResumableStore>,
    Arc<dyn BlobStore>,
    Box<dyn Any + Send>,
) {
    let (dir, _root, resumable, blobs) = new_stores();
    (Arc::new(resumable), Arc::new(blobs), Box::new(dir))
}

resumable_store_contract!(
    setup = harness();
    attrs = []
);

fn part_file(root: &std::path::Path, key: &BlobKey) -> PathBuf {
    root.join(key.account_id().get().to_string())
        .join(format!(".{}.part", key.file_id()))
}

#[tokio::test]
async fn an_upload_grows_in_the_part_file_the_blob_store_lists_as_its_stray() {
    let (_dir, root, resumable, blobs) = new_stores();
    let mut upload = Upload::begin(&resumable).await;
    let data = pseudo_random_bytes(10_000, 1);

    upload.append(&resumable, &data, None).await;

    assert_eq!(std::fs::read(part_file(&root, &upload.key)).unwrap(), data);
    let ids = resumable.stray_ids(&upload.key, &upload.progress);
    assert_eq!(
        ids,
        vec![format!(
            "{}/.{}.part",
            upload.key.account_id(),
            upload.key.file_id()
        )]
    );
    let (strays, keys) = listing(&blobs).await;
    assert_eq!(strays, ids);
    assert!(keys.is_empty());
}

#[tokio::test]
async fn finish_renames_the_part_file_to_the_blob_path() {
    let (_dir, root, resumable, _blobs) = new_stores();
    let mut upload = Upload::begin(&resumable).await;
    upload
        .append(&resumable, &Bytes::from_static(b"renamed"), None)
        .await;

    upload.finish(&resumable).await;

    assert!(!part_file(&root, &upload.key).exists());
    assert_eq!(
        std::fs::read(root.join(upload.key.to_string())).unwrap(),
        b"renamed"
    );
}

#[tokio::test]
async fn finish_cuts_bytes_past_the_committed_length() {
    let (_dir, _root, resumable, blobs) = new_stores();
    let mut upload = Upload::begin(&resumable).await;
    upload
        .append(&resumable, &Bytes::from_static(b"kept"), None)
        .await;
    let uncommitted = upload
        .try_append(
            &resumable,
            body_of(&Bytes::from_static(b" lost")),
            None,
            None,
        )
        .await;
    drop(uncommitted);

    upload.finish(&resumable).await;

    assert_blob(&blobs, &upload.key, b"kept").await;
}

#[tokio::test]
async fn finish_fails_when_the_file_holds_fewer_bytes_than_the_length() {
    let (_dir, _root, resumable, blobs) = new_stores();
    let mut upload = Upload::begin(&resumable).await;
    upload
        .append(&resumable, &Bytes::from_static(b"short"), None)
        .await;

    let finished = resumable.finish(&upload.key, &upload.progress, 6).await;

    assert!(
        matches!(finished, Err(BlobError::Unavailable(_))),
        "{finished:?}"
    );
    assert!(matches!(
        blobs.get(&upload.key, None).await,
        Err(BlobError::NotFound)
    ));
}

#[tokio::test]
async fn a_finish_retried_after_it_landed_succeeds() {
    let (_dir, _root, resumable, blobs) = new_stores();
    let mut upload = Upload::begin(&resumable).await;
    upload
        .append(&resumable, &Bytes::from_static(b"twice"), None)
        .await;
    upload.finish(&resumable).await;

    upload.finish(&resumable).await;

    assert_blob(&blobs, &upload.key, b"twice").await;
}

#[tokio::test]
async fn append_fails_when_the_part_file_is_gone() {
    let (_dir, _root, resumable, _blobs) = new_stores();
    let upload = Upload::begin(&resumable).await;
    resumable
        .abort(&upload.key, &upload.progress)
        .await
        .unwrap();

    let appended = resumable
        .append(
            &upload.key,
            &upload.progress,
            0,
            None,
            None,
            body_of(&Bytes::from_static(b"x")),
        )
        .await;

    assert!(
        matches!(appended, Err(BlobError::Unavailable(_))),
        "{appended:?}"
    );
}

#[tokio::test]
async fn concatenate_leaves_the_streaming_to_the_caller() {
    let (_dir, _root, resumable, _blobs) = new_stores();

    let joined = resumable.concatenate(&new_key(), &[]).await.unwrap();

    assert!(!joined);
}

#[tokio::test]
async fn appends_longer_than_the_writeback_step_keep_every_byte_in_order() {
    let (_dir, root, resumable, blobs) = new_stores();
    let mut upload = Upload::begin(&resumable).await;
    let first = pseudo_random_bytes(9 * 1024 * 1024 + 17, 3);
    let second = pseudo_random_bytes(5 * 1024 * 1024 + 3, 4);

    upload.append(&resumable, &first, None).await;
    let failing = body_failing_after(&second, BodyError::Malformed("cut".into()));
    let appended = upload.try_append(&resumable, failing, None, None).await;
    assert!(appended.interrupted.is_some());
    assert_eq!(appended.written, second.len() as u64);
    upload.commit(&resumable, appended).await;

    let held = std::fs::read(part_file(&root, &upload.key)).unwrap();
    assert_eq!(held.len(), first.len() + second.len());
    assert!(held[..first.len()] == first[..] && held[first.len()..] == second[..]);
    upload.finish(&resumable).await;
    assert_blob(&blobs, &upload.key, &[first, second].concat()).await;
}
