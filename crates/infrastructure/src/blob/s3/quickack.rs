//! The S3 client's HTTP connections for a plain-HTTP endpoint, acknowledging what they receive
//! at once.
//!
//! A store that writes its responses without `TCP_NODELAY` (s3s-fs, and servers built like it)
//! holds the last small segment of a response until the one before it is acknowledged. Linux
//! delays that acknowledgement by 40 ms on a connection it deems interactive, which a kept-alive
//! connection becomes as soon as a request follows a response: a 1 MiB range took 48 ms instead
//! of 6. After every write (a request's head or body) these connections set `TCP_QUICKACK`,
//! which leaves that mode, and again after each read from 64 KiB to 2 MiB into an answer, where
//! Linux would still delay (see [`QUICK_READS`]). Setting it after every read of a large object
//! acknowledged each segment at once, and the store then sent it in many small segments, which
//! slowed large downloads. HTTPS endpoints keep the SDK's own client (and its TLS); the AWS SDK
//! offers no hook into its TCP connections, hence this client.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{
    Connected, Connection, HttpConnector as TcpConnector, capture_connection,
};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether the environment's proxy settings (`HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`) send
/// `endpoint` through a proxy: the SDK's own client honours them and this one does not, so such
/// an endpoint keeps the SDK's client.
pub(super) fn proxied_by_environment(endpoint: &str) -> bool {
    endpoint
        .parse::<http::Uri>()
        .is_ok_and(|uri| Matcher::from_env().intercept(&uri).is_some())
}

/// How long an idle pooled connection is kept, as the SDK's own client does.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// An HTTP/1.1 client for the S3 SDK whose connections acknowledge at once.
#[derive(Clone, Debug)]
pub(super) struct QuickAckClient {
    client: Client<QuickAckConnector, SdkBody>,
}

impl QuickAckClient {
    /// A client whose connections give up connecting after `connect_timeout`.
    pub(super) fn new(connect_timeout: Duration) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(QuickAckConnector {
                tcp,
                connect_timeout,
            });
        Self { client }
    }
}

impl HttpClient for QuickAckClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for QuickAckClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        // The SDK poisons the connection of a failed attempt, so that a retry opens a new one.
        let captured = capture_connection(&mut request);
        if let Some(capture) = request.extensions().get::<CaptureSmithyConnection>() {
            capture.set_connection_retriever(move || {
                if captured.connection_metadata().is_none() {
                    return None;
                }
                let captured = captured.clone();
                Some(
                    ConnectionMetadata::builder()
                        .proxied(false)
                        .poison_fn(move || {
                            if let Some(connection) = captured.connection_metadata().as_ref() {
                                connection.poison();
                            }
                        })
                        .build(),
                )
            });
        }
        let response = self.client.request(request);
        HttpConnectorFuture::new(async move {
            match response.await {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|e| ConnectorError::other(e.into(), None)),
                Err(e) => Err(connector_error(e)),
            }
        })
    }
}

/// Classifies a failed request as the SDK's own client does, so that its retry policy treats
/// it the same: a timeout is a timeout, a failure of the request itself (its body) is the
/// caller's, and a connection that could not be made or broke is an I/O error (retried).
fn connector_error(e: hyper_util::client::legacy::Error) -> ConnectorError {
    if has_source::<ConnectTimedOut>(&e) {
        return ConnectorError::timeout(Box::new(e));
    }
    if let Some(hyper) = source_of::<hyper::Error>(&e) {
        if hyper.is_timeout() {
            return ConnectorError::timeout(Box::new(e));
        }
        if hyper.is_user() {
            return ConnectorError::user(Box::new(e));
        }
        if hyper.is_closed() || hyper.is_canceled() || has_source::<io::Error>(hyper) {
            return ConnectorError::io(Box::new(e));
        }
        if hyper.is_incomplete_message() {
            return ConnectorError::other(Box::new(e), Some(ErrorKind::TransientError));
        }
        return ConnectorError::other(Box::new(e), None);
    }
    if e.is_connect() || has_source::<io::Error>(&e) {
        return ConnectorError::io(Box::new(e));
    }
    ConnectorError::other(Box::new(e), None)
}

fn source_of<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

fn has_source<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    source_of::<T>(e).is_some()
}

/// Makes TCP connections that acknowledge at once, resolving and connecting within
/// `connect_timeout` together, as the SDK's own client does.
#[derive(Clone, Debug)]
struct QuickAckConnector {
    tcp: TcpConnector,
    connect_timeout: Duration,
}

/// The connection was not made within the connect timeout.
#[derive(Debug, thiserror::Error)]
#[error("connecting to the S3 endpoint timed out after {0:?}")]
struct ConnectTimedOut(Duration);

impl tower_service::Service<http::Uri> for QuickAckConnector {
    type Response = TokioIo<QuickAckTcp>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.tcp.call(uri);
        let limit = self.connect_timeout;
        Box::pin(async move {
            match tokio::time::timeout(limit, connecting).await {
                Ok(connected) => Ok(TokioIo::new(QuickAckTcp::new(connected?.into_inner()))),
                Err(_) => Err(Box::new(ConnectTimedOut(limit)) as BoxError),
            }
        })
    }
}

/// The part of an answer, in bytes from its start, whose reads each end with `TCP_QUICKACK`.
///
/// Linux acknowledges a read that empties the socket when the segment was marked pushed, which
/// covers a small answer's few segments. Further into an answer, once two segments of the same
/// small size arrive in a row, it takes that size for the store's segment size, marks nothing
/// pushed, and the acknowledgement waits for its 40 ms timer while the store holds the rest:
/// a 1 MiB range took 50–60 ms. Acknowledging each read from here on avoids that; past the end,
/// the bulk of a large object keeps the store's larger segments, which acknowledging each read
/// broke up (a 256 MiB download at 0.78 of the store's speed instead of 0.88).
const QUICK_READS: std::ops::Range<usize> = 64 * 1024..2 * 1024 * 1024;

/// A TCP connection that sets `TCP_QUICKACK` after every write, and after the reads of the part
/// of each answer that [`QUICK_READS`] spans; it counts what it has read since its last write.
#[derive(Debug)]
struct QuickAckTcp {
    tcp: TcpStream,
    read_since_write: usize,
}

impl QuickAckTcp {
    fn new(tcp: TcpStream) -> Self {
        Self {
            tcp,
            read_since_write: 0,
        }
    }

    /// Acknowledges at once what the socket has received, and leaves the interactive mode
    /// that sending data may have entered.
    fn quick_ack(&self) {
        // Failing leaves delayed acknowledgements, as without this option: nothing to report.
        let _ = socket2::SockRef::from(&self.tcp).set_tcp_quickack(true);
    }

    fn after_write<T>(&mut self, written: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if matches!(written, Poll::Ready(Ok(_))) {
            self.read_since_write = 0;
            self.quick_ack();
        }
        written
    }
}

impl tokio::io::AsyncRead for QuickAckTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.tcp).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            if QUICK_READS.contains(&this.read_since_write) {
                this.quick_ack();
            }
            this.read_since_write = this.read_since_write.saturating_add(n);
        }
        read
    }
}

impl tokio::io::AsyncWrite for QuickAckTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.tcp).poll_write(cx, buf);
        this.after_write(written)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs);
        this.after_write(written)
    }
}

impl Connection for QuickAckTcp {
    fn connected(&self) -> Connected {
        self.tcp.connected()
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::primitives::ByteStream;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn get(uri: &str) -> HttpRequest {
        let request = http::Request::builder()
            .uri(uri)
            .body(SdkBody::empty())
            .unwrap();
        HttpRequest::try_from(request).unwrap()
    }

    /// The error of a `GET` to `address`, which must fail.
    async fn failed_get(address: std::net::SocketAddr) -> ConnectorError {
        QuickAckClient::new(Duration::from_secs(2))
            .call(get(&format!("http://{address}/o")))
            .await
            .unwrap_err()
    }

    /// Reads one request's head from `socket`.
    async fn read_head(socket: &mut TcpStream) {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed the connection");
            head.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn responses_written_in_pieces_arrive_whole_on_one_kept_alive_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // One connection only: the second request must reuse the first one's.
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            for _ in 0..2 {
                read_head(&mut socket).await;
                socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
                    .await
                    .unwrap();
                socket.write_all(b"world").await.unwrap();
            }
        });
        let client = QuickAckClient::new(Duration::from_secs(2));

        for _ in 0..2 {
            let response = client
                .call(get(&format!("http://{address}/o")))
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
            let body = ByteStream::new(response.into_body()).collect().await;
            assert_eq!(body.unwrap().into_bytes().as_ref(), b"helloworld");
        }
        server.await.unwrap();
    }

    #[tokio::test]
    async fn an_answer_read_through_the_quick_ack_window_arrives_whole_and_the_count_restarts() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let long = QUICK_READS.end + 12_345;
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 2];
            socket.read_exact(&mut request).await.unwrap();
            // Small pieces of one size, as the stores that need the window write them.
            let piece: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
            let mut left = long;
            while left > 0 {
                let n = left.min(piece.len());
                socket.write_all(&piece[..n]).await.unwrap();
                left -= n;
            }
            socket.read_exact(&mut request).await.unwrap();
            socket.write_all(b"second").await.unwrap();
        });
        let mut tcp = QuickAckTcp::new(TcpStream::connect(address).await.unwrap());

        tcp.write_all(b"r1").await.unwrap();
        let mut answer = vec![0u8; long];
        tcp.read_exact(&mut answer).await.unwrap();
        assert!(
            answer
                .iter()
                .enumerate()
                .all(|(i, b)| *b == ((i % 4096) % 251) as u8)
        );
        assert_eq!(tcp.read_since_write, long);

        tcp.write_all(b"r2").await.unwrap();
        assert_eq!(tcp.read_since_write, 0);
        let mut second = [0u8; 6];
        tcp.read_exact(&mut second).await.unwrap();
        assert_eq!(&second, b"second");
        assert_eq!(tcp.read_since_write, 6);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_refused_connection_is_an_io_error_the_sdk_retries() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);

        let error = failed_get(address).await;

        assert!(error.is_io(), "{error:?}");
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_is_retried() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            read_head(&mut socket).await;
        });

        let error = failed_get(address).await;

        // As the SDK's own client: an I/O error, or a transient one when hyper saw an unfinished answer.
        assert!(
            error.is_io() || error.as_other() == Some(ErrorKind::TransientError),
            "{error:?}"
        );
        server.await.unwrap();
    }
}
