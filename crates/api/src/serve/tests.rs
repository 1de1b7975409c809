//! Tests of the accept loop over real sockets.

use std::net::SocketAddr;
use std::time::Instant;

use axum::routing::get;

use super::*;

const UNBOUNDED: ConnectionLimits = ConnectionLimits {
    total: 10_000,
    per_client: 0,
};

async fn started(
    grace: Duration,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    started_with(grace, UNBOUNDED).await
}

async fn started_with(
    grace: Duration,
    limits: ConnectionLimits,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = Router::new()
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
        )
        .route(
            "/refuse",
            axum::routing::post(|| async { axum::http::StatusCode::PAYLOAD_TOO_LARGE }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        router,
        async move {
            let _ = stop_rx.await;
        },
        grace,
        limits,
    ));
    (address, stop_tx, server)
}

#[tokio::test]
async fn serves_http1_and_h2c_with_the_peer_address() {
    let (address, stop, server) = started(Duration::from_secs(5)).await;
    for client in [
        reqwest::Client::new(),
        reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap(),
    ] {
        let response = client
            .get(format!("http://{address}/peer"))
            .send()
            .await
            .unwrap();
        let version = response.version();
        let peer: SocketAddr = response.text().await.unwrap().parse().unwrap();
        assert!(peer.ip().is_loopback(), "{version:?}: {peer}");
        assert_ne!(peer.port(), address.port());
    }
    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test]
async fn a_client_still_sending_when_answered_can_send_the_rest_and_read_the_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (address, stop, server) = started(Duration::from_secs(5)).await;
    let body = vec![7_u8; 16 * 1024 * 1024];
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /refuse HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server answers at once and reads none of the body; closing then would reset the
    // connection under the client, which is still writing.
    let written = stream.write_all(&body).await;
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer).await;
    assert!(written.is_ok(), "writing the body failed: {written:?}");
    assert!(read.is_ok(), "reading the answer failed: {read:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    drop(stream);
    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test]
async fn an_h2_peer_is_offered_at_most_h2_max_streams_at_once() {
    let (address, stop, server) = started(Duration::from_secs(5)).await;
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut client, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let request = Request::get(format!("http://{address}/peer"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let response = tokio::select! {
        response = response => response.unwrap(),
        ended = &mut connection => panic!("the connection ended first: {ended:?}"),
    };
    assert_eq!(response.status(), 200);
    assert_eq!(
        connection.max_concurrent_send_streams(),
        H2_MAX_STREAMS as usize
    );
    drop((client, connection));
    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test]
async fn stopping_closes_idle_keep_alive_connections_without_waiting_for_the_grace_period() {
    let (address, stop, server) = started(Duration::from_secs(30)).await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("http://{address}/peer"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let started = Instant::now();
    let _ = stop.send(());
    server.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an idle connection held the drain for {:?}",
        started.elapsed()
    );
    assert!(
        tokio::net::TcpStream::connect(address).await.is_err(),
        "no new connections once stopped"
    );
}

#[tokio::test]
async fn the_grace_period_bounds_the_wait_for_a_request_in_flight() {
    let (address, stop, server) = started(Duration::from_millis(300)).await;
    let request = tokio::spawn(reqwest::get(format!("http://{address}/slow")));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let _ = stop.send(());
    server.await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(10),
        "waited {waited:?} for a 60 s request with a 300 ms grace period"
    );
    request.abort();
}

/// The status line of `GET /peer` on a new connection, or `None` when the server closes it
/// (or does not answer within a second); the connection is kept open for the caller.
async fn get_on_new_connection(address: SocketAddr) -> (TcpStream, Option<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = TcpStream::connect(address).await.unwrap();
    let _ = socket
        .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut answer = vec![0; 256];
    let read = tokio::time::timeout(Duration::from_secs(1), socket.read(&mut answer)).await;
    let line = match read {
        Ok(Ok(n)) if n > 0 => String::from_utf8_lossy(&answer[..n])
            .lines()
            .next()
            .map(str::to_owned),
        _ => None,
    };
    (socket, line)
}

#[test]
fn the_total_fits_under_the_open_file_limit() {
    let soft = open_file_limit().unwrap();
    let fitted = fit_to_descriptor_limit(ConnectionLimits {
        total: usize::MAX,
        per_client: 7,
    });
    assert!(fitted.total as u64 <= soft.saturating_sub(DESCRIPTORS_KEPT).max(16));
    assert_eq!(fitted.per_client, 7);
    let small = ConnectionLimits {
        total: 10,
        per_client: 0,
    };
    assert_eq!(fit_to_descriptor_limit(small), small);
}

#[tokio::test]
async fn a_client_past_its_share_of_connections_is_closed_and_others_are_served() {
    let limits = ConnectionLimits {
        total: 100,
        per_client: 2,
    };
    let (address, stop, server) = started_with(Duration::from_secs(5), limits).await;
    let (first, line) = get_on_new_connection(address).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 200 OK"));
    let (_second, line) = get_on_new_connection(address).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 200 OK"));

    let (_third, line) = get_on_new_connection(address).await;
    assert_eq!(
        line, None,
        "a third connection from the same address is refused"
    );

    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_again, line) = get_on_new_connection(address).await;
    assert_eq!(
        line.as_deref(),
        Some("HTTP/1.1 200 OK"),
        "a closed one frees its place"
    );
    let _ = stop.send(());
    server.await.unwrap();
}

#[tokio::test]
async fn past_the_total_a_connection_waits_until_another_closes() {
    let limits = ConnectionLimits {
        total: 1,
        per_client: 0,
    };
    let (address, stop, server) = started_with(Duration::from_secs(5), limits).await;
    let (first, line) = get_on_new_connection(address).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 200 OK"));

    let (mut waiting, line) = get_on_new_connection(address).await;
    assert_eq!(line, None, "not served while the first is open");

    drop(first);
    let mut answer = vec![0; 256];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut waiting, &mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200 OK"),
        "served once the first closed"
    );
    let _ = stop.send(());
    server.await.unwrap();
}

async fn status_line_for_a_header_of(address: SocketAddr, size: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "GET /peer HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(size)
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0; 64];
    let n = socket.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_request_head_over_the_read_buffer_gets_431_and_a_large_one_under_it_is_served() {
    let (address, stop, server) = started(Duration::from_secs(5)).await;
    assert_eq!(
        status_line_for_a_header_of(address, 40 * 1024).await,
        "HTTP/1.1 200 OK"
    );
    assert_eq!(
        status_line_for_a_header_of(address, READ_BUFFER_MAX + 1024).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    let _ = stop.send(());
    server.await.unwrap();
}
