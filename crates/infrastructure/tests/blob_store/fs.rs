use std::path::{Path, PathBuf};

use stowage_infrastructure::FsBlobStore;
use tempfile::TempDir;

use super::*;

/// Every file (not directory) under `root`, relative to it; nothing when `root` is gone.
fn files_under(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                found.push(relative.display().to_string());
            }
        }
    }
    found.sort();
    found
}

fn new_store() -> (TempDir, PathBuf, FsBlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let store = FsBlobStore::new(&root).unwrap();
    (dir, root, store)
}

async fn harness() -> Harness {
    let (dir, root, store) = new_store();
    Harness {
        store: Box::new(store),
        inventory: Box::new(move || {
            let root = root.clone();
            Box::pin(async move { files_under(&root) })
        }),
        _resources: Box::new(dir),
    }
}

blob_store_contract!(
    setup = harness();
    attrs = []
);

#[tokio::test]
async fn put_stores_the_blob_at_account_then_file_id() {
    let (_dir, root, store) = new_store();
    let key = new_key();

    store
        .put(&key, body_of(vec![Bytes::from_static(b"laid out")]), None)
        .await
        .unwrap();

    assert_eq!(files_under(&root), vec![key.to_string()]);
    assert_eq!(
        std::fs::read(root.join(key.to_string())).unwrap(),
        b"laid out"
    );
}

#[tokio::test]
async fn put_writes_to_a_part_file_that_a_dropped_put_removes() {
    let (_dir, root, store) = new_store();
    let key = new_key();
    let body = stream::iter([Ok(pseudo_random_bytes(64 * 1024))])
        .chain(stream::pending())
        .boxed();
    let mut put = store.put(&key, body, None);

    let waited = tokio::time::timeout(Duration::from_millis(100), &mut put).await;
    let while_pending = files_under(&root);
    drop(put);
    let after_drop = files_under(&root);

    assert!(waited.is_err());
    let expected_temp = format!("{}/.{}.part", key.account_id(), key.file_id());
    assert_eq!(while_pending, vec![expected_temp]);
    assert_eq!(after_drop, Vec::<String>::new());
}

/// Tokio opens files on its blocking pool, so a put dropped while the open is queued must
/// still leave no temp file once that open has run. One blocking thread, held by a task the
/// test controls, makes the interleaving deterministic.
#[test]
fn put_dropped_while_its_temp_file_opens_leaves_no_part_file() {
    let (_dir, root, store) = new_store();
    let key = new_key();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(1)
        .build()
        .unwrap();

    runtime.block_on(async {
        let body = stream::iter([Ok(Bytes::from_static(b"x"))])
            .chain(stream::pending())
            .boxed();
        let mut put = store.put(&key, body, None);
        assert!(futures_util::poll!(&mut put).is_pending());
        // Queued behind the directory creation, so that has finished once this returns.
        tokio::task::spawn_blocking(|| ()).await.unwrap();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let blocker = tokio::task::spawn_blocking(move || wait.recv());
        assert!(futures_util::poll!(&mut put).is_pending());
        drop(put);
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        // Queued behind the abandoned open, so that has run once this returns.
        tokio::task::spawn_blocking(|| ()).await.unwrap();
    });

    assert_eq!(files_under(&root), Vec::<String>::new());
}

#[tokio::test]
async fn health_fails_when_the_root_is_replaced_by_a_plain_file() {
    let (_dir, root, store) = new_store();
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();

    let health = store.health().await;

    assert!(
        matches!(health, Err(BlobError::Unavailable(_))),
        "{health:?}"
    );
}

#[tokio::test]
async fn health_fails_when_the_root_is_missing() {
    let (_dir, root, store) = new_store();
    std::fs::remove_dir_all(&root).unwrap();

    let health = store.health().await;

    assert!(
        matches!(health, Err(BlobError::Unavailable(_))),
        "{health:?}"
    );
}

#[tokio::test]
async fn put_fails_with_unavailable_when_the_root_is_a_plain_file() {
    let (_dir, root, store) = new_store();
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, b"not a directory").unwrap();

    let put = store
        .put(&new_key(), body_of(vec![Bytes::from_static(b"x")]), None)
        .await;

    assert!(matches!(put, Err(BlobError::Unavailable(_))), "{put:?}");
}

#[tokio::test]
async fn variants_live_in_the_variants_folder_of_their_file() {
    let (_dir, root, store) = new_store();
    let key = new_key();
    let small = key.with_variant(variant("w32.png"));
    store
        .put(&key, body_of(vec![Bytes::from_static(b"source")]), None)
        .await
        .unwrap();
    store
        .put(&small, body_of(vec![Bytes::from_static(b"small")]), None)
        .await
        .unwrap();

    let folder = format!("{}/{}.variants", key.account_id(), key.file_id());
    assert_eq!(
        files_under(&root),
        vec![key.to_string(), format!("{folder}/w32.png")]
    );
    assert_eq!(
        std::fs::read(root.join(&folder).join("w32.png")).unwrap(),
        b"small"
    );

    store.delete_variants(&key).await.unwrap();

    assert!(
        !root.join(&folder).exists(),
        "the folder goes with its variants"
    );
    assert_eq!(files_under(&root), vec![key.to_string()]);
}

#[tokio::test]
async fn a_variant_is_written_to_a_part_file_of_its_own_that_a_dropped_put_removes() {
    let (_dir, root, store) = new_store();
    let key = new_key().with_variant(variant("w32.png"));
    let body = stream::iter([Ok(pseudo_random_bytes(1024))])
        .chain(stream::pending())
        .boxed();
    let mut put = store.put(&key, body, None);

    let waited = tokio::time::timeout(Duration::from_millis(100), &mut put).await;
    let while_pending = files_under(&root);
    drop(put);

    assert!(waited.is_err());
    let folder = format!("{}/{}.variants/", key.account_id(), key.file_id());
    assert_eq!(while_pending.len(), 1, "{while_pending:?}");
    let temp = while_pending[0].strip_prefix(&folder).unwrap();
    assert!(
        temp.starts_with(".w32.png.") && temp.ends_with(".part"),
        "{temp}"
    );
    assert_eq!(files_under(&root), Vec::<String>::new());
}

#[tokio::test]
async fn whatever_else_sits_in_a_variants_folder_is_a_stray() {
    let (_dir, root, store) = new_store();
    let key = new_key();
    let kept = key.with_variant(variant("w32.png"));
    store
        .put(&kept, body_of(vec![Bytes::from_static(b"kept")]), None)
        .await
        .unwrap();
    let folder = format!("{}/{}.variants", key.account_id(), key.file_id());
    for leftover in [".w300.png.0123.part", "NOTES.txt", "w300.png.bak"] {
        std::fs::write(root.join(&folder).join(leftover), b"left").unwrap();
    }
    std::fs::create_dir(root.join(&folder).join("nested")).unwrap();

    let listed: Vec<ListedBlob> = store.list().await.unwrap().try_collect().await.unwrap();

    let mut strays: Vec<String> = listed
        .iter()
        .filter_map(|item| match item {
            ListedBlob::Stray { id, .. } => Some(id.clone()),
            ListedBlob::Blob { .. } => None,
        })
        .collect();
    strays.sort();
    assert_eq!(
        strays,
        [
            format!("{folder}/.w300.png.0123.part"),
            format!("{folder}/NOTES.txt"),
            format!("{folder}/w300.png.bak"),
        ]
    );
    assert_eq!(listed.len(), 4, "and the variant: {listed:?}");
    for stray in &strays {
        store.remove_stray(stray).await.unwrap();
    }
    assert_eq!(files_under(&root), vec![format!("{folder}/w32.png")]);
    for not_a_leftover in [
        format!("{folder}/w32.png"),
        format!("{folder}/.."),
        format!("{folder}/nested/x"),
        format!("{}/{}", key.account_id(), key.file_id()),
    ] {
        let removed = store.remove_stray(&not_a_leftover).await;
        assert!(
            matches!(removed, Err(BlobError::Unavailable(_))),
            "{not_a_leftover}: {removed:?}"
        );
    }
    assert_eq!(
        read_all(store.get(&kept, None).await.unwrap()).await,
        b"kept"
    );
}
