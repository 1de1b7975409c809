//! Real tus clients against Stowage: tuspy killed mid-upload and resumed by a new process,
//! a connection cut mid-`PATCH` and resumed by tus-js-client, tus-js-client's parallel uploads
//! (partials and a final concatenation) and its creation-with-upload.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures_util::StreamExt;

use reqwest::Method;
use serde_json::{Value, json};
use stowage_tests::TcpProxy;

use crate::common::{
    MIB, OCTETS, assert_file, content, create, head, metadata, patch, server, tus, tus_js,
    tus_js_run, tuspy, tuspy_run, write_file,
};

/// Time a 200 MiB upload may take on a debug build.
const LARGE_UPLOAD: Duration = Duration::from_secs(120);

fn file_id_of(done: &Value, key: &str) -> String {
    done[key]
        .as_str()
        .unwrap_or_else(|| panic!("no Stowage-File-Id in {done}"))
        .to_owned()
}

#[tokio::test]
async fn tuspy_killed_mid_upload_resumes_from_its_stored_url_in_a_new_process() {
    let Some(python) = tuspy() else { return };
    let server = server(&[]).await;
    let auth = server.bearer(Some(3), 7);
    let dir = tempfile::tempdir().unwrap();
    let data = content(200 * MIB, 1);
    let file = write_file(dir.path(), "big.bin", &data);
    let args = vec![
        "--endpoint".to_owned(),
        server.url("/files/tus"),
        "--file".to_owned(),
        file.display().to_string(),
        "--chunk-size".to_owned(),
        (8 * MIB).to_string(),
        "--url-store".to_owned(),
        dir.path().join("urls.json").display().to_string(),
        "--metadata".to_owned(),
        "filename=big.bin".to_owned(),
        "--metadata".to_owned(),
        "filetype=application/octet-stream".to_owned(),
    ];

    let mut first = tuspy_run(python, &args, &auth);
    let started = first
        .wait_for(Duration::from_secs(30), |e| e["event"] == "started")
        .await;
    let url = started["url"].as_str().unwrap().to_owned();
    first
        .wait_for(LARGE_UPLOAD, |e| {
            e["event"] == "progress" && e["offset"].as_u64() >= Some(64 * MIB as u64)
        })
        .await;
    first.kill();

    let (status, offset) = head(&url, &auth).await;
    assert_eq!(status, 200);
    let offset = offset.unwrap();
    assert!(
        offset >= 64 * MIB as u64 && offset < data.len() as u64,
        "kept {offset}"
    );

    let mut second = tuspy_run(python, &args, &auth);
    let resumed = second
        .wait_for(Duration::from_secs(30), |e| e["event"] == "started")
        .await;
    assert_eq!(
        resumed["url"],
        url.as_str(),
        "the stored URL, not a new upload"
    );
    assert!(
        resumed["offset"].as_u64().unwrap() >= 64 * MIB as u64,
        "{resumed}"
    );
    let done = second.done(LARGE_UPLOAD).await;
    let id = file_id_of(&done, "file_id");
    assert!(
        done["file_url"].as_str().is_some_and(|u| u.contains(&id)),
        "{done}"
    );
    assert_file(&server, &auth, &id, &data).await;
    assert_eq!(server.row_count().await, 1);
    assert_eq!(
        head(&url, &auth).await,
        (200, Some(data.len() as u64)),
        "a completed upload reads as complete"
    );
}

/// A `PATCH` body that sends `data` and then stalls, as a client whose network died mid-request;
/// `sent` turns true once every byte is handed to the connection.
fn stalling_body(data: Vec<u8>, sent: Arc<AtomicBool>) -> reqwest::Body {
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(MIB).map(|c| Ok(c.to_vec())).collect();
    let stall = futures_util::stream::poll_fn(move |_| {
        sent.store(true, Ordering::SeqCst);
        Poll::<Option<Result<Vec<u8>, std::io::Error>>>::Pending
    });
    reqwest::Body::wrap_stream(futures_util::stream::iter(pieces).chain(stall))
}

#[tokio::test]
async fn a_patch_cut_by_the_network_keeps_what_arrived_and_tus_js_client_resumes_it() {
    let Some(node) = tus_js() else { return };
    let server = server(&[]).await;
    let auth = server.bearer(Some(4), 7);
    let dir = tempfile::tempdir().unwrap();
    let data = content(40 * MIB, 2);
    let file = write_file(dir.path(), "cut.bin", &data);
    let data_len = data.len();
    let url = create(
        &server,
        &auth,
        data.len(),
        &metadata(&[("filename", "cut.bin")]),
    )
    .await;
    let target = format!("127.0.0.1:{}", server.port).parse().unwrap();
    let proxy = TcpProxy::start(target).await;
    let through_proxy = url.replacen(
        &format!(":{}/", server.port),
        &format!(":{}/", proxy.port),
        1,
    );
    assert_ne!(through_proxy, url);

    // 40 MiB announced, 26 sent, then the connection dies. On S3 the body streams into parts of
    // four S3_PART_SIZE (20 MiB by default) and a part cut off is lost, so 20 MiB are kept there;
    // on disk all 26.
    let sent = Arc::new(AtomicBool::new(false));
    let body = stalling_body(data[..26 * MIB].to_vec(), Arc::clone(&sent));
    let cut_patch = tokio::spawn({
        let auth = auth.clone();
        async move {
            tus(Method::PATCH, &through_proxy, &auth)
                .header("Content-Type", OCTETS)
                .header("Upload-Offset", "0")
                .header("Content-Length", data_len.to_string())
                .body(body)
                .send()
                .await
        }
    });
    while !sent.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.cut();
    assert!(
        cut_patch.await.unwrap().is_err(),
        "the client saw its request fail"
    );

    // The cut request holds the upload until the server has seen its body end and committed
    // what it kept: an empty PATCH is refused (409) until then.
    let mut kept = 0;
    for _ in 0..100 {
        let (status, offset) = head(&url, &auth).await;
        assert_eq!(status, 200);
        kept = offset.unwrap();
        if patch(&url, &auth, kept as usize, b"", &[]).await.status() == 204 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        (20 * MIB as u64..=26 * MIB as u64).contains(&kept),
        "the bytes that arrived before the cut are kept: {kept}"
    );

    let options = json!({
        "file": file,
        "endpoint": server.url("/files/tus"),
        "uploadUrl": url,
        "chunkSize": 8 * MIB,
    });
    let done = tus_js_run(node, &options, &auth).done(LARGE_UPLOAD).await;
    assert_eq!(done["url"], url.as_str(), "resumed, not uploaded anew");
    assert_eq!(done["status"], 204);
    assert_file(&server, &auth, &file_id_of(&done, "fileId"), &data).await;
}

#[tokio::test]
async fn tus_js_client_parallel_uploads_are_concatenated_into_one_file() {
    let Some(node) = tus_js() else { return };
    let server = server(&[]).await;
    let auth = server.bearer(Some(5), 7);
    let dir = tempfile::tempdir().unwrap();
    let data = content(200 * MIB, 3);
    let file = write_file(dir.path(), "parallel.bin", &data);
    let options = json!({
        "file": file,
        "endpoint": server.url("/files/tus"),
        "parallelUploads": 4,
        "chunkSize": 16 * MIB,
        "metadata": {"filename": "parallel.bin", "filetype": "application/octet-stream"},
    });

    let done = tus_js_run(node, &options, &auth).done(LARGE_UPLOAD).await;

    assert_eq!(done["status"], 201, "the final concatenation's answer");
    let id = file_id_of(&done, "fileId");
    assert_file(&server, &auth, &id, &data).await;
    assert_eq!(server.row_count().await, 1, "the partials are no files");
    let info = stowage_tests::send(
        &server,
        Method::GET,
        &format!("/files/{id}/info"),
        &[("Authorization", auth.as_str())],
    )
    .await;
    let info: Value = info.json().await.unwrap();
    assert_eq!(info["filename"], "parallel.bin");
}

#[tokio::test]
async fn tus_js_client_sends_data_with_the_creation_then_in_chunks() {
    let Some(node) = tus_js() else { return };
    let server = server(&[]).await;
    let auth = server.bearer(Some(6), 7);
    let dir = tempfile::tempdir().unwrap();
    // Not a whole number of chunks, so that the last PATCH is short.
    let data = content(27 * MIB + 4321, 4);
    let file = write_file(dir.path(), "report.csv", &data);
    let options = json!({
        "file": file,
        "endpoint": server.url("/files/tus"),
        "chunkSize": 8 * MIB,
        "uploadDataDuringCreation": true,
        "metadata": {"filename": "report.bin", "filetype": "application/octet-stream"},
    });

    let done = tus_js_run(node, &options, &auth).done(LARGE_UPLOAD).await;

    assert_eq!(done["status"], 204, "the last PATCH completed it");
    assert_file(&server, &auth, &file_id_of(&done, "fileId"), &data).await;
}
