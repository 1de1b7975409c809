//! The accept loop: HTTP/1.1 and HTTP/2 on every connection, with bounded per-connection buffers
//! and a graceful drain.
//!
//! `axum::serve` lets hyper grow each connection's read buffer to about 400 KiB while a large body
//! streams in, and an idle keep-alive connection keeps that buffer: with a few dozen pooled client
//! connections that was most of the server's resident memory between bursts. Here the buffer is
//! capped at [`READ_BUFFER_MAX`], which still reads a streaming upload in large chunks. An HTTP/2
//! connection is bounded the same way: at most [`H2_MAX_STREAMS`] requests, each queueing at most
//! [`H2_SEND_BUFFER_MAX`] of its response for a slow reader.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
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
use tokio::sync::{Semaphore, watch};
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

/// Bounds on the connections served at once, so that neither one client nor all of them together
/// can take every file descriptor of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// All clients together (`MAX_CONNECTIONS`); past it, new connections wait in the listen
    /// backlog until one closes.
    pub total: usize,
    /// One client address (`MAX_CONNECTIONS_PER_CLIENT`); past it, a new connection from that
    /// address is closed at once. 0 means no bound (behind a proxy every client has its address).
    pub per_client: usize,
}

/// Descriptors kept for everything but client connections: the database pool, store and Redis
/// connections, blobs being read or written, the listener, logs.
const DESCRIPTORS_KEPT: u64 = 256;

/// `limits` with the total lowered to what the process's open-file limit leaves for client
/// connections, so that running out of descriptors cannot stop the process from opening blobs
/// or reaching its database.
pub fn fit_to_descriptor_limit(limits: ConnectionLimits) -> ConnectionLimits {
    let Some(soft) = open_file_limit() else {
        return limits;
    };
    let room = usize::try_from(soft.saturating_sub(DESCRIPTORS_KEPT).max(16)).unwrap_or(usize::MAX);
    if limits.total <= room {
        return limits;
    }
    tracing::warn!(
        max_connections = limits.total,
        open_file_limit = soft,
        serving = room,
        "MAX_CONNECTIONS is above what the open-file limit allows; raise the limit (ulimit -n, \
         LimitNOFILE=) to serve more"
    );
    ConnectionLimits {
        total: room,
        ..limits
    }
}

/// The soft limit on open files, from `/proc/self/limits` (Linux).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Connections open per client address.
#[derive(Clone, Default)]
struct OpenPerClient(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One open connection of a client, counted until dropped.
struct ClientConnection {
    open: OpenPerClient,
    ip: IpAddr,
}

impl OpenPerClient {
    fn enter(&self, ip: IpAddr, max: usize) -> Option<ClientConnection> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if max > 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientConnection {
            open: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientConnection {
    fn drop(&mut self) {
        let mut open = self.open.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `stop` completes; then accepts nothing more, lets the
/// connections finish the requests they are serving, and returns once they have, or once `grace`
/// has passed (with a warning).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: impl Future<Output = ()> + Send,
    grace: Duration,
    limits: ConnectionLimits,
) {
    let slots = Arc::new(Semaphore::new(limits.total.max(1)));
    let per_client = OpenPerClient::default();
    let open_connections = metrics::gauge!("http_connections_open");
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
        let slot = tokio::select! {
            () = &mut stop => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
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
        let Some(client) = per_client.enter(remote.ip(), limits.per_client) else {
            metrics::counter!("http_connections_refused_total", "reason" => "per_client")
                .increment(1);
            tracing::debug!(client = %remote.ip(), "connection refused: the client has its share open");
            continue;
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
        let open_connections = open_connections.clone();
        open_connections.increment(1.0);
        tokio::spawn(async move {
            let _held = (slot, client);
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
            open_connections.decrement(1.0);
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
mod tests;
