//! Expiration: an upload untouched for `TUS_EXPIRY` answers `410 UPLOAD_EXPIRED`, and
//! `stowage-api gc` then removes it and every byte it left in the store (the S3 multipart upload
//! and its tail object, or the `.part` file on disk), sparing the file a completed upload made.

use std::time::Duration;

use stowage_tests::{expect_error, header, run_subcommand};

use crate::common::{MIB, assert_file, content, create, head, leftovers, patch, server};

#[tokio::test]
async fn an_untouched_upload_expires_and_gc_removes_it_and_its_bytes() {
    let server = server(&[("TUS_EXPIRY", "2s")]).await;
    let auth = server.bearer(Some(1), 1);
    let done = content(MIB + 5, 41);
    let finished = create(&server, &auth, done.len(), "").await;
    let completed = patch(&finished, &auth, 0, &done, &[]).await;
    assert_eq!(completed.status(), 204);
    let file = header(&completed, "stowage-file-id").expect("Stowage-File-Id");
    let kept_blobs = leftovers(&server);

    let data = content(6 * MIB + 3, 42);
    let url = create(&server, &auth, 2 * data.len(), "").await;
    let response = patch(&url, &auth, 0, &data, &[]).await;
    assert_eq!(response.status(), 204);
    let expires = header(&response, "upload-expires").expect("Upload-Expires");
    assert!(httpdate::parse_http_date(&expires).is_ok(), "{expires}");
    assert!(
        leftovers(&server).len() > kept_blobs.len(),
        "the unfinished upload's bytes wait in the store"
    );

    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(head(&url, &auth).await, (410, None));
    let late = patch(&url, &auth, data.len(), &data, &[]).await;
    expect_error(late, 410, "UPLOAD_EXPIRED").await;

    let gc = run_subcommand(&server, "gc", &["--grace", "0s"]);
    let report = String::from_utf8_lossy(&gc.stdout).into_owned();
    assert!(
        gc.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&gc.stderr)
    );

    assert_eq!(head(&url, &auth).await, (404, None), "gc report: {report}");
    // On S3 a ListMultipartUploads would be the direct proof that gc aborted the upload, but
    // s3s-fs answers it NotImplemented; its data directory keeps every multipart upload's record
    // (`.upload-{id}.json`) and parts (`.upload_id-{id}.part-{n}`), which `leftovers` lists.
    assert_eq!(
        leftovers(&server),
        kept_blobs,
        "only the completed file's blob is left; gc report: {report}"
    );
    assert_file(&server, &auth, &file, &done).await;
}
