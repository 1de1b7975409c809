//! The production storage path as operators meet it: S3 and Postgres outages, large multipart
//! files, `stowage-api gc`, and replicas migrating at once.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use stowage_tests::{
    TcpProxy, TestServer, applied_migrations, binary, client, create_database, file_id, metric,
    multipart_body, pattern, postgres_server, readiness, run_subcommand, scrape_metrics, send,
};

const NEEDS_S3: &str = "needs s3s-fs: make test-integration";
const NEEDS_POSTGRES: &str = "needs Postgres: make test-integration";

async fn get(server: &TestServer, auth: &str, path: &str) -> reqwest::Response {
    send(
        server,
        reqwest::Method::GET,
        path,
        &[("Authorization", auth)],
    )
    .await
}

async fn code_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["code"].as_str().unwrap_or_default().to_owned())
}

async fn s3_server(extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("STORAGE_BACKEND", "s3"), ("MAX_UPLOAD_BYTES", "314572800")];
    env.extend_from_slice(extra);
    TestServer::spawn_with(&env).await
}

/// Uploads `body` (a whole multipart form) as it is, with its `Content-Length` or, when
/// `chunked`, without one; returns the `FileInfo`.
async fn upload_raw(
    server: &TestServer,
    auth: &str,
    boundary: &str,
    body: Vec<u8>,
    chunked: bool,
) -> serde_json::Value {
    let body = if chunked {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
            body.chunks(1024 * 1024).map(|c| Ok(c.to_vec())).collect();
        reqwest::Body::wrap_stream(futures_util::stream::iter(pieces))
    } else {
        reqwest::Body::from(body)
    };
    let response = server
        .post_form("/files", boundary)
        .header("Authorization", auth)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_large_files_round_trip_streamed_or_multipart_with_ranges() {
    let server = s3_server(&[]).await;
    let auth = server.bearer(Some(1), 1);
    // With a Content-Length the file streams into one PutObject; without, it goes multipart.
    for (mib, seed, chunked) in [(64usize, 64u64, false), (200, 200, true)] {
        let data = pattern(mib * 1024 * 1024, seed);
        let boundary = "large-file-boundary";
        let form =
            stowage_tests::multipart_body(boundary, "big.bin", "application/octet-stream", &data);
        let info = upload_raw(&server, &auth, boundary, form, chunked).await;
        let id = file_id(&info);
        assert_eq!(info["size"], data.len() as u64);

        let body = get(&server, &auth, &format!("/files/{id}"))
            .await
            .bytes()
            .await
            .unwrap();
        assert!(body == data, "{mib} MiB download differs");

        let part = 8 * 1024 * 1024;
        let (start, end) = (part - 100, part + 99);
        let ranged = client()
            .get(server.url(&format!("/files/{id}")))
            .header("Authorization", &auth)
            .header("Range", format!("bytes={start}-{end}"))
            .send()
            .await
            .unwrap();
        assert_eq!(ranged.status(), 206);
        assert!(
            ranged.bytes().await.unwrap() == data[start..=end],
            "range across a part boundary"
        );
    }
    assert_eq!(server.blob_files().len(), 2, "two objects, no parts left");
    let _ = NEEDS_S3;
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_limit_breached_after_several_parts_leaves_no_object_and_no_parts() {
    let server = s3_server(&[("MAX_UPLOAD_BYTES", "20971520")]).await;
    let boundary = "limitboundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = std::iter::once(Ok(head.into_bytes()))
        .chain((0..30).map(|i| Ok(pattern(1024 * 1024, i))))
        .collect();
    let response = server
        .post_form("/files", boundary)
        .header("Authorization", server.bearer(Some(1), 1))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    if let Ok(response) = response {
        assert_eq!(code_of(response).await, (413, "FILE_TOO_LARGE".to_owned()));
    }
    wait_until_empty(&server).await;
    assert_eq!(server.row_count().await, 0);
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_uploads_past_the_buffer_budget_wait_then_get_503_and_keep_nothing() {
    // Buffers for one part (5 MiB) in all.
    let server = s3_server(&[("UPLOAD_BUFFER_BYTES", "5242880")]).await;
    let auth = server.bearer(Some(1), 1);
    let boundary = "budget-boundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    // A chunked upload whose client sends all but 16 KiB of a part, then pauses: its buffer
    // holds that much meanwhile.
    let held = 5 * 1024 * 1024 - 16 * 1024;
    let (send_more, more) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    send_more.send(Ok(head.into_bytes())).await.unwrap();
    send_more.send(Ok(pattern(held, 9))).await.unwrap();
    let slow = tokio::spawn({
        let request = server
            .post_form("/files", boundary)
            .header("Authorization", &auth)
            .body(reqwest::Body::wrap_stream(futures_util::stream::unfold(
                more,
                |mut more| async move { more.recv().await.map(|piece| (piece, more)) },
            )));
        async move { request.send().await.unwrap() }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(
        &scrape_metrics(&server.base_url).await,
        "upload_buffer_bytes",
    ) < Some(held as f64)
    {
        assert!(
            Instant::now() < deadline,
            "the first upload's buffer never filled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A second upload needs more than is left: it waits, then is refused.
    let second = multipart_body(
        boundary,
        "second.bin",
        "application/octet-stream",
        &pattern(100 * 1024, 3),
    );
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(second.clone())];
    let refused = server
        .post_form("/files", boundary)
        .header("Authorization", &auth)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(code_of(refused).await, (503, "SERVICE_BUSY".to_owned()));

    // The first client goes on; its upload completes, and then the second one's goes through.
    send_more
        .send(Ok(format!("\r\n--{boundary}--\r\n").into_bytes()))
        .await
        .unwrap();
    drop(send_more);
    assert_eq!(slow.await.unwrap().status(), 201);
    let info = upload_raw(&server, &auth, boundary, second, true).await;
    assert_eq!(info["size"], 100 * 1024);
    assert_eq!(server.row_count().await, 2);
    assert_eq!(
        server.blob_files().len(),
        2,
        "nothing kept of the refused upload"
    );
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_forms_whose_length_misleads_still_store_exactly_the_file() {
    let server = s3_server(&[]).await;
    let auth = server.bearer(Some(1), 1);
    let boundary = "misleading-boundary";
    let data = pattern(6 * 1024 * 1024 + 3, 6);
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n\r\n"
    );
    let later_field = format!(
        "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n{}",
        "n".repeat(300_000)
    );
    let cases = [
        ("a field after the file", later_field.as_str(), "\r\n"),
        ("no CRLF after the closing delimiter", "", ""),
        ("an epilogue", "", "\r\nepilogue text\r\n"),
    ];
    for (name, after_file, after_closing) in cases {
        let mut form = head.clone().into_bytes();
        form.extend_from_slice(&data);
        form.extend_from_slice(after_file.as_bytes());
        form.extend_from_slice(format!("\r\n--{boundary}--{after_closing}").as_bytes());

        let info = upload_raw(&server, &auth, boundary, form, false).await;
        let body = get(&server, &auth, &format!("/files/{}", file_id(&info)))
            .await
            .bytes()
            .await
            .unwrap();

        assert_eq!(info["size"], data.len() as u64, "{name}");
        assert!(body == data, "{name}: the stored bytes differ");
    }
    assert_eq!(server.blob_files().len(), 3, "three objects, nothing else");
}

async fn wait_until_empty(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = server.blob_files();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_outage_answers_503_and_the_service_recovers() {
    let mut server = s3_server(&[("S3_MAX_ATTEMPTS", "2"), ("S3_CONNECT_TIMEOUT_MS", "500")]).await;
    let auth = server.bearer(Some(1), 1);
    let info = server
        .upload_ok(&auth, "before.txt", "text/plain", b"before".to_vec())
        .await;
    let id = file_id(&info);

    server.s3.as_mut().unwrap().stop();

    let upload = server
        .upload(&auth, "during.txt", "text/plain", b"during".to_vec())
        .await;
    let text = upload.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["code"], "STORAGE_UNAVAILABLE", "{text}");
    assert!(
        !text.contains(stowage_tests::TEST_BUCKET),
        "no bucket name in an error body: {text}"
    );
    assert!(
        body.get("details").is_none(),
        "5xx bodies carry no details: {text}"
    );
    let download = get(&server, &auth, &format!("/files/{id}")).await;
    let (status, code) = code_of(download).await;
    assert_eq!((status, code.as_str()), (503, "STORAGE_UNAVAILABLE"));
    let (status, ready) = readiness(&server).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["components"]["storage"], "unavailable");
    assert_eq!(ready["components"]["database"], "ok");
    assert_eq!(
        server.row_count().await,
        1,
        "the failed upload recorded nothing"
    );

    server.s3.as_mut().unwrap().start();

    let body = get(&server, &auth, &format!("/files/{id}")).await;
    assert_eq!(body.status(), 200);
    assert_eq!(&body.bytes().await.unwrap()[..], b"before");
    server
        .upload_ok(&auth, "after.txt", "text/plain", b"after".to_vec())
        .await;
    assert_eq!(readiness(&server).await.0, 200);
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn s3_wrong_secret_fails_readiness_and_the_log_names_the_problem_not_the_secret() {
    let wrong = "wrong-secret-0123456789abcdef";
    // A process: the test reads its log.
    let server =
        TestServer::process_with(&[("STORAGE_BACKEND", "s3"), ("S3_SECRET_KEY", wrong)]).await;

    let (status, ready) = readiness(&server).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["components"]["storage"], "unavailable");

    let log = server.log();
    assert!(
        log.contains("check S3_ACCESS_KEY and S3_SECRET_KEY"),
        "{log}"
    );
    assert!(!log.contains(wrong), "the secret leaked into the log");
}

#[tokio::test]
#[ignore = "needs Postgres: make test-integration"]
async fn database_outage_answers_503_and_leaves_no_orphan_blob() {
    let admin_url = postgres_server().expect(NEEDS_POSTGRES);
    let target = admin_url
        .rsplit('@')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let proxy = TcpProxy::start(target.parse().unwrap()).await;
    let name = create_database(&admin_url, "stowage_outage").await;
    let admin = Database::connect(format!("{admin_url}/postgres"))
        .await
        .unwrap();
    let credentials = admin_url
        .trim_start_matches("postgres://")
        .split('@')
        .next()
        .unwrap()
        .to_owned();
    let through_proxy = format!("postgres://{credentials}@127.0.0.1:{}/{name}", proxy.port);
    let server = TestServer::spawn_with(&[
        ("DATABASE_URL", through_proxy.as_str()),
        ("DATABASE_CONNECT_TIMEOUT_MS", "1000"),
    ])
    .await;
    let auth = server.bearer(Some(1), 1);
    server
        .upload_ok(&auth, "kept.txt", "text/plain", b"kept".to_vec())
        .await;
    let before = server.blob_files();

    proxy.cut();

    let response = server
        .upload(&auth, "lost.txt", "text/plain", pattern(3 * 1024 * 1024, 9))
        .await;
    assert_eq!(
        code_of(response).await,
        (503, "DATABASE_UNAVAILABLE".to_owned())
    );
    assert_eq!(
        server.blob_files(),
        before,
        "the blob of the failed insert was deleted"
    );
    assert_eq!(readiness(&server).await.0, 503);

    drop(server);
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}

#[tokio::test]
#[ignore = "needs Postgres: make test-integration"]
async fn migrations_run_once_when_replicas_start_together() {
    let admin_url = postgres_server().expect(NEEDS_POSTGRES);
    let name = create_database(&admin_url, "stowage_migrate").await;
    let admin = Database::connect(format!("{admin_url}/postgres"))
        .await
        .unwrap();
    let url = format!("{admin_url}/{name}");
    let dir = tempfile::tempdir().unwrap();

    let replicas: Vec<_> = (0..4)
        .map(|_| {
            let mut command = Command::new(binary());
            command
                .env_clear()
                .env("DATABASE_URL", &url)
                .env("DATA_DIR", dir.path())
                .env("AUTH_SECRET_KEY", "k")
                .arg("migrate");
            tokio::task::spawn_blocking(move || command.output())
        })
        .collect();
    for output in futures_util::future::join_all(replicas).await {
        let output = output.unwrap().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    // Every migration (the table, its adoption, the webhook outbox, file keys, the owner listing
    // index, upload grants, direct uploads, resumable uploads, visibility), each applied once.
    assert_eq!(applied_migrations(&url).await, (9, 9));
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}

/// Runs `stowage-api gc` with the server's own configuration.
fn run_gc(server: &TestServer, args: &[&str]) -> String {
    let output = run_subcommand(server, "gc", args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn delete_row(server: &TestServer, id: &str) {
    let db = Database::connect(&server.database_url).await.unwrap();
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "DELETE FROM files WHERE file_id = $1",
        _ => "DELETE FROM files WHERE file_id = ?",
    };
    let uuid: uuid::Uuid = id.parse().unwrap();
    let done = db
        .execute(Statement::from_sql_and_values(backend, sql, [uuid.into()]))
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
}

async fn gc_scenario(server: TestServer) {
    let auth = server.bearer(Some(1), 1);
    let kept = file_id(
        &server
            .upload_ok(&auth, "kept.txt", "text/plain", b"kept".to_vec())
            .await,
    );
    let orphan = file_id(
        &server
            .upload_ok(&auth, "orphan.txt", "text/plain", b"orphan".to_vec())
            .await,
    );
    let lost = file_id(
        &server
            .upload_ok(&auth, "lost.txt", "text/plain", b"lost".to_vec())
            .await,
    );
    delete_row(&server, &orphan).await;
    std::fs::remove_file(server.blob_path(1, &lost)).unwrap();

    let report = run_gc(&server, &["--dry-run", "--grace", "0s"]);
    assert!(
        report.contains(&format!("orphan blob 1/{orphan}")),
        "{report}"
    );
    assert!(
        report.contains(&format!("record without blob {lost}")),
        "{report}"
    );
    assert!(!report.contains(&kept), "{report}");
    assert!(
        server.blob_path(1, &orphan).exists(),
        "dry run removes nothing"
    );

    let young = run_gc(&server, &["--grace", "1h"]);
    assert!(
        !young.contains(&orphan),
        "younger than the grace period: {young}"
    );
    assert!(server.blob_path(1, &orphan).exists());

    let report = run_gc(&server, &["--grace", "0s"]);
    assert!(
        report.contains(&format!("orphan blob 1/{orphan}")),
        "{report}"
    );
    assert!(
        !server.blob_path(1, &orphan).exists(),
        "gc removed the orphan"
    );
    assert!(
        server.blob_path(1, &kept).exists(),
        "gc kept the file that has a record"
    );
    let kept_body = get(&server, &auth, &format!("/files/{kept}")).await;
    assert_eq!(kept_body.status(), 200);

    let again = run_gc(&server, &["--grace", "0s"]);
    assert!(
        !again.contains(&format!("orphan blob 1/{orphan}")),
        "{again}"
    );
    assert!(
        again.contains(&format!("record without blob {lost}")),
        "reported, never changed: {again}"
    );
}

#[tokio::test]
async fn gc_reports_and_removes_a_planted_orphan_blob() {
    gc_scenario(TestServer::spawn().await).await;
}

#[tokio::test]
#[ignore = "needs s3s-fs: make test-integration"]
async fn gc_reports_and_removes_a_planted_orphan_blob_on_s3() {
    gc_scenario(s3_server(&[]).await).await;
}

#[tokio::test]
async fn gc_removes_a_temporary_file_left_by_a_crash() {
    let server = TestServer::spawn_with(&[("STORAGE_BACKEND", "fs")]).await;
    let auth = server.bearer(Some(1), 1);
    server
        .upload_ok(&auth, "a.txt", "text/plain", b"a".to_vec())
        .await;
    let part = server
        .data_dir
        .path()
        .join("blobs/1")
        .join(format!(".{}.part", uuid::Uuid::new_v4()));
    std::fs::write(&part, b"half a file").unwrap();

    let report = run_gc(&server, &["--grace", "0s"]);

    assert!(report.contains("unfinished upload"), "{report}");
    assert!(!part.exists());
}
