//! The accept loop: HTTP/1.1 and HTTP/2 on every connection, with bounded per-connection buffers
//! and a graceful drain.
//!
//! `axum::serve` lets hyper grow each connection's read buffer to about 400 KiB while a large body
//! streams in, and an idle keep-alive connection keeps that buffer: with a few dozen pooled client
//! connections that was most of the server's resident memory between bursts. Here the buffer is
//! capped at [`READ_BUFFER_MAX`], which still reads a streaming upload in large chunks. An HTTP/2
//! connection is bounded the same way: at most [`H2_MAX_STREAMS`] requests, each queueing at most
//! [`H2_SEND_BUFFER_MAX`] of its response for a slow reader.

use std::io::ErrorKind;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;

/// Largest read buffer of one connection, and so the largest HTTP/1.1 request head (larger ones get
/// `431`); proxies in front forward at most this much (nginx 32 KiB by default, AWS ALB 64 KiB).
pub const READ_BUFFER_MAX: usize = 64 * 1024;

/// Most requests one HTTP/2 connection may have open at once (hyper's default is 200).
pub const H2_MAX_STREAMS: u32 = 100;

/// Most response bytes queued per HTTP/2 stream while the peer is slow to read (hyper's default
/// is 400 KiB, so 80 MiB for one connection's full set of streams); one read from the store.
pub const H2_SEND_BUFFER_MAX: usize = 64 * 1024;

/// How long a closing connection keeps reading, and discarding, what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

/// How often an idle HTTP/2 connection is pinged; a peer that does not answer within hyper's
/// 20 s is dropped with its streams.
const H2_PING_INTERVAL: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `stop` completes; then accepts nothing more, lets the
/// connections finish the requests they are serving, and returns once they have, or once `grace`
/// has passed (with a warning).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: impl Future<Output = ()> + Send,
    grace: Duration,
) {
    let (stop_tx, stop_rx) = watch::channel(());
    let (open_tx, open_rx) = watch::channel(());
    let mut builder = Builder::new(TokioExecutor::new());
    // The timer turns on hyper's 30 s limit for reading a request head.
    builder
        .http1()
        .max_buf_size(READ_BUFFER_MAX)
        .timer(TokioTimer::new());
    builder
        .http2()
        .enable_connect_protocol()
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_send_buf_size(H2_SEND_BUFFER_MAX)
        .keep_alive_interval(H2_PING_INTERVAL)
        .timer(TokioTimer::new());
    tokio::pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A peer that gave up before its connection was accepted.
                Err(e) if matches!(
                    e.kind(),
                    ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
                ) => continue,
                Err(e) => {
                    // Out of file descriptors, most likely: back off instead of spinning.
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::select! {
                        () = &mut stop => break,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                request.map(Body::new)
            });
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(LingeringClose::new(stream)),
                TowerToHyperService::new(service),
            )
            .into_owned();
        let mut stop_rx = stop_rx.clone();
        let open_rx = open_rx.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            let mut stopping = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::trace!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stop_rx.changed(), if !stopping => {
                        stopping = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(open_rx);
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, letting requests in flight finish");
    let _ = stop_tx.send(());
    drop(open_rx);
    tokio::select! {
        () = open_tx.closed() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_seconds = grace.as_secs(), "grace period over; exiting with requests in flight");
        }
    }
}

/// A connection whose close is a lingering one: it sends its FIN, then reads and discards what
/// the client still sends until the client closes too, or [`LINGER`] has passed.
///
/// A server that answers before reading the whole request (`413` to an upload over the limit)
/// would otherwise close with the rest of the body unread, and the kernel would answer that
/// unread data with a reset: the client, still sending, then sees "connection reset" or "broken
/// pipe" instead of the answer waiting in its socket.
struct LingeringClose {
    stream: TcpStream,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl LingeringClose {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            deadline: None,
        }
    }
}

impl AsyncRead for LingeringClose {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LingeringClose {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let deadline = match &mut this.deadline {
            Some(deadline) => deadline,
            None => {
                ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
                this.deadline.insert(Box::pin(tokio::time::sleep(LINGER)))
            }
        };
        let mut scratch = [0_u8; 8192];
        loop {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut discarded = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut this.stream).poll_read(cx, &mut discarded)) {
                Ok(()) if !discarded.filled().is_empty() => {}
                // The client closed too, or the connection is gone.
                Ok(()) | Err(_) => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use axum::routing::get;

    use super::*;

    async fn started(
        grace: Duration,
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
}
