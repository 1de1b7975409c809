//! What one hostile client can hold: each test replays an attack and asserts the bound, measured
//! on the server process (`/proc/PID`), while a normal request is still served.

use std::time::{Duration, Instant};

use stowage_tests::{TestServer, client, pattern, scrape_metrics};
use tokio::net::TcpStream;

use crate::common::{
    assert_error_shape, assert_nothing_stored, connect, read_response, write_lenient,
};

const BOUNDARY: &str = "stowage-resources-boundary";

/// `POST /files` head for a multipart body of `content_length` bytes, and the file part's head.
fn upload_head(server: &TestServer, auth: &str, content_length: usize) -> String {
    format!(
        "POST /files HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: {auth}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {content_length}\r\n\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
        server.port
    )
}

async fn assert_live(server: &TestServer) {
    let started = Instant::now();
    let response = client()
        .get(server.url("/health/live"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn resources_made_up_methods_mint_no_metric_labels() {
    // The page's size is measured: the metrics recorder is process-wide, so no other server may
    // add to it.
    let server = TestServer::process().await;
    for i in 0..200 {
        let method = format!("M{i:06}{}", "X".repeat(2000));
        let mut stream = connect(&server).await;
        let head =
            format!("{method} /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        write_lenient(&mut stream, head.as_bytes()).await;
        let _ = read_response(&mut stream, Duration::from_secs(5)).await;
    }

    let metrics = scrape_metrics(&server.base_url).await;

    assert!(
        !metrics.contains("M000001"),
        "a made-up method became a label"
    );
    assert!(metrics.contains("method=\"OTHER\""), "{metrics}");
    assert!(
        metrics.len() < 64 * 1024,
        "the metrics page grew to {} bytes",
        metrics.len()
    );
}

#[tokio::test]
async fn resources_head_and_get_agree_on_a_record_whose_blob_is_gone() {
    let server = TestServer::spawn_with(&[("BLOB_CACHE_BYTES", "0")]).await;
    let auth = server.bearer(Some(1), 1);
    let info = server
        .upload_ok(
            &auth,
            "gone.bin",
            "application/octet-stream",
            b"soon gone".to_vec(),
        )
        .await;
    let id = info["file_id"].as_str().unwrap().to_owned();
    std::fs::remove_file(server.blob_path(1, &id)).unwrap();

    for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
        let response = client()
            .request(method.clone(), server.url(&format!("/files/{id}")))
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{method}");
    }
}

/// A GET of `path` on a new HTTP/2 connection whose peer grants no flow-control window: the
/// server can send headers but never a byte of the body.
async fn never_reading_streams(
    server: &TestServer,
    auth: &str,
    path: &str,
    streams: usize,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    Vec<u16>,
    Vec<h2::RecvStream>,
) {
    let tcp = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let mut pending = Vec::new();
    for _ in 0..streams {
        let request = http::Request::get(format!("http://127.0.0.1:{}{path}", server.port))
            .header("authorization", auth)
            .body(())
            .unwrap();
        client = client.ready().await.unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        pending.push(response);
    }
    let mut statuses = Vec::new();
    let mut bodies = Vec::new();
    for response in pending {
        let response = tokio::time::timeout(Duration::from_secs(20), response)
            .await
            .unwrap_or_else(|_| panic!("a stream got no headers within 20 s"))
            .unwrap();
        statuses.push(response.status().as_u16());
        // The body stays unread, and with it the stream.
        bodies.push(response.into_body());
    }
    (client, statuses, bodies)
}

#[tokio::test]
async fn resources_http2_downloads_never_read_hold_bounded_descriptors_and_memory() {
    let server = TestServer::process_with(&[
        ("BLOB_CACHE_BYTES", "0"),
        ("MAX_DOWNLOADS_PER_CLIENT", "16"),
        ("RESPONSE_STALL_TIMEOUT_SECONDS", "3"),
    ])
    .await;
    let auth = server.bearer(Some(1), 1);
    let data = pattern(1024 * 1024, 7);
    let info = server
        .upload_ok(&auth, "big.bin", "application/octet-stream", data.clone())
        .await;
    let path = format!("/files/{}", info["file_id"].as_str().unwrap());
    // Many requests at once grow the database pool to its size first, so that what is measured
    // below is what the attack holds.
    let warm_up = (0..64).map(|_| {
        client()
            .get(server.url(&format!("{path}/info")))
            .header("Authorization", &auth)
            .send()
    });
    for response in futures_util::future::join_all(warm_up).await {
        assert_eq!(response.unwrap().status(), 200);
    }
    assert_live(&server).await;
    let (fds_before, rss_before) = (server.open_fds(), server.rss_kib());

    let mut connections = Vec::new();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (connection, answered, bodies) =
            never_reading_streams(&server, &auth, &path, 100).await;
        connections.push((connection, bodies));
        statuses.extend(answered);
    }

    let served = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(served + refused, 600, "{statuses:?}");
    assert!(
        served <= 16,
        "{served} downloads streaming at once for one client"
    );
    let fds = server.open_fds();
    let rss = server.rss_kib();
    assert!(
        fds <= fds_before + 6 + 16 + 16,
        "{fds} descriptors open, {fds_before} before"
    );
    assert!(
        rss < rss_before + 32 * 1024,
        "resident memory grew from {rss_before} KiB to {rss} KiB"
    );
    assert_live(&server).await;

    // Past the stall timeout the stalled downloads are ended and their slots given back.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        server.open_fds() <= fds_before + 6 + 16,
        "{} descriptors still open after the stall timeout, {fds_before} before",
        server.open_fds()
    );
    let again = client()
        .get(server.url(&path))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.bytes().await.unwrap().as_ref(), data.as_slice());
    drop(connections);
}

#[tokio::test]
async fn resources_stalled_uploads_are_refused_past_a_share_and_abandoned_when_idle() {
    let server = TestServer::process_with(&[
        ("BODY_IDLE_TIMEOUT_SECONDS", "2"),
        ("MAX_UPLOADS_PER_CLIENT", "4"),
    ])
    .await;
    let auth = server.bearer(Some(1), 1);
    let fds_before = server.open_fds();
    let mut sockets = Vec::new();
    for _ in 0..6 {
        let mut stream = connect(&server).await;
        write_lenient(
            &mut stream,
            upload_head(&server, &auth, 10 << 20).as_bytes(),
        )
        .await;
        write_lenient(&mut stream, &pattern(256 * 1024, 1)).await;
        sockets.push(stream);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_live(&server).await;

    let mut statuses = Vec::new();
    for stream in &mut sockets {
        let response = read_response(stream, Duration::from_secs(10)).await;
        let body = response.json();
        assert_error_shape(&body);
        statuses.push((
            response.status,
            body["code"].as_str().unwrap_or("").to_owned(),
        ));
    }
    let timed_out = statuses
        .iter()
        .filter(|(status, code)| *status == 408 && code == "REQUEST_TIMEOUT")
        .count();
    let refused = statuses
        .iter()
        .filter(|(status, code)| *status == 429 && code == "RATE_LIMITED")
        .count();
    assert_eq!((timed_out, refused), (4, 2), "{statuses:?}");

    assert_nothing_stored(&server, Duration::from_secs(5)).await;
    drop(sockets);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.open_fds() <= fds_before + 2,
        "{} descriptors open after the uploads ended, {fds_before} before",
        server.open_fds()
    );
    server
        .upload_ok(
            &auth,
            "after.bin",
            "application/octet-stream",
            b"still works".to_vec(),
        )
        .await;
}

#[tokio::test]
async fn resources_a_client_past_its_share_of_connections_is_closed() {
    let server = TestServer::spawn_with(&[("MAX_CONNECTIONS_PER_CLIENT", "8")]).await;
    let mut open = Vec::new();
    for _ in 0..8 {
        let mut stream = connect(&server).await;
        write_lenient(&mut stream, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert_eq!(
            read_response(&mut stream, Duration::from_secs(5))
                .await
                .status,
            200
        );
        open.push(stream);
    }

    let mut ninth = connect(&server).await;
    write_lenient(&mut ninth, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = [0_u8; 64];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut ninth, &mut buf),
    )
    .await
    .unwrap_or_else(|_| panic!("the ninth connection was left waiting, not closed"));
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "a ninth connection was served"
    );

    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_live(&server).await;
}
