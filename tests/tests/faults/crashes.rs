//! `stowage-api` killed with SIGKILL in the middle of a transfer, then started again: an upload
//! cut short is absent (never a truncated file), the files acknowledged before are intact, and
//! `gc` leaves the store holding exactly them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use stowage_tests::{TestServer, client, multipart_body, pattern};

use crate::common::{Ledger, MIB, assert_nothing_lost_nothing_left, owner, upload_recorded};

/// A few acknowledged files of several sizes, the last large enough to stream on S3.
async fn acknowledged_files(server: &TestServer) -> Ledger {
    let mut ledger = Ledger::new();
    for (n, len) in [3 * 1024, 300 * 1024, 3 * MIB / 2].into_iter().enumerate() {
        let data = pattern(len, 100 + n as u64);
        upload_recorded(server, &owner(server), &mut ledger, "kept.bin", data).await;
    }
    ledger
}

/// Bytes of the largest thing in the store that is no blob of `ledger`'s files: an upload in
/// progress (on disk its temporary file, on S3 s3s-fs's temporary object).
fn bytes_in_progress(server: &TestServer, ledger: &Ledger) -> u64 {
    server
        .blob_files()
        .iter()
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            !ledger.contains_key(name.as_ref())
        })
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|meta| meta.len())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_streamed_upload_leaves_no_trace_of_it_after_restart() {
    let mut server = TestServer::process_with(&[("MAX_UPLOAD_BYTES", "209715200")]).await;
    let ledger = acknowledged_files(&server).await;

    // 64 MiB announced with a Content-Length (so it streams into one PutObject on S3); 24 MiB
    // sent, then the client waits for ever.
    let boundary = "sigkill-upload";
    let form = multipart_body(
        boundary,
        "cut.bin",
        "application/octet-stream",
        &pattern(64 * MIB, 7),
    );
    let form_len = form.len();
    let sent = Arc::new(AtomicUsize::new(0));
    let chunks: Vec<Vec<u8>> = form[..24 * MIB]
        .chunks(256 * 1024)
        .map(<[u8]>::to_vec)
        .collect();
    let body = futures_util::stream::unfold(chunks.into_iter(), {
        let sent = sent.clone();
        move |mut rest| {
            let sent = sent.clone();
            async move {
                match rest.next() {
                    Some(chunk) => {
                        sent.fetch_add(chunk.len(), Ordering::SeqCst);
                        Some((Ok::<_, std::io::Error>(chunk), rest))
                    }
                    None => std::future::pending().await,
                }
            }
        }
    });
    let upload = tokio::spawn(
        client()
            .post(server.url("/files"))
            .header("Authorization", owner(&server))
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header("Content-Length", form_len.to_string())
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );
    // The store is writing it: 16 MiB of it are there.
    let deadline = Instant::now() + Duration::from_secs(60);
    while bytes_in_progress(&server, &ledger) < 16 * MIB as u64 {
        assert!(
            Instant::now() < deadline,
            "the upload did not reach the store ({} bytes sent)",
            sent.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.kill();
    let cut = upload.await.unwrap();
    assert!(
        cut.as_ref().map_or(true, |r| !r.status().is_success()),
        "a killed server acknowledged the upload: {cut:?}"
    );
    assert!(sent.load(Ordering::SeqCst) < form_len);
    server.start().await;

    assert_nothing_lost_nothing_left(&server, &ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_download_changes_nothing_after_restart() {
    let mut server = TestServer::process_with(&[]).await;
    let mut ledger = acknowledged_files(&server).await;
    let large = pattern(32 * MIB, 32);
    let id = upload_recorded(&server, &owner(&server), &mut ledger, "large.bin", large).await;

    let mut download = client()
        .get(server.url(&format!("/files/{id}")))
        .header("Authorization", owner(&server))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    let mut received = 0;
    while received < MIB {
        received += download.chunk().await.unwrap().expect("more body").len();
    }

    server.kill();
    // What the client had not read yet may sit in socket buffers; the rest never comes.
    while let Ok(Some(chunk)) = download.chunk().await {
        received += chunk.len();
    }
    assert!(
        received < 32 * MIB,
        "the whole file arrived from a killed server"
    );
    server.start().await;

    assert_nothing_lost_nothing_left(&server, &ledger).await;
}
