//! Bodies that bound how long a transfer may stand still: a request body that sends nothing, a
//! download the client does not read.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::Stream;
use http_body::{Frame, SizeHint};
use stowage_application::{BodyError, ByteStream};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use crate::client_limits::Slot;

/// Why a request body was abandoned: the client sent nothing for the idle timeout. Recognised by
/// the upload path (through the error chain) to answer `408`.
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing for {0:?}")]
pub struct BodyIdle(pub Duration);

/// Ends every request body that sends nothing for `idle`, so a stalled upload frees its buffers,
/// its temporary blob and its connection instead of holding them until the client leaves.
pub async fn body_idle_timeout(
    State(idle): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let request = request.map(|body| {
        Body::new(IdleBody {
            inner: body,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        })
    });
    next.run(request).await
}

struct IdleBody {
    inner: Body,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl HttpBody for IdleBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = Instant::now() + this.idle;
                this.deadline.as_mut().reset(next);
                Poll::Ready(frame)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyIdle(this.idle))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// True when `error`'s chain holds a [`BodyIdle`].
pub fn is_body_idle(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<BodyIdle>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A download's bytes, holding the client's download slot while they stream.
///
/// When the client takes nothing for `stall` (it does not read, or an HTTP/2 peer grants no flow
/// control window), a watchdog drops the blob stream and the slot: the store's file handle or
/// connection and the read buffers are released, and the body ends with an error, which resets
/// the stream.
pub fn guarded_download(stream: ByteStream, slot: Slot, stall: Duration) -> Body {
    let shared = Arc::new(Guarded {
        held: Mutex::new(Some((stream, slot))),
        last_poll: Mutex::new(Instant::now()),
    });
    let (done_tx, done_rx) = oneshot::channel::<()>();
    tokio::spawn(watch_for_stall(Arc::downgrade(&shared), stall, done_rx));
    Body::from_stream(StallGuard {
        shared,
        _done: done_tx,
        stall,
    })
}

struct Guarded {
    held: Mutex<Option<(ByteStream, Slot)>>,
    last_poll: Mutex<Instant>,
}

impl Guarded {
    fn last_poll(&self) -> Instant {
        *self
            .last_poll
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Ends the download once it has not been polled for `stall`; returns when the body is dropped.
/// It holds the body's state weakly, so that dropping the body releases the blob and the slot at
/// once.
async fn watch_for_stall(shared: Weak<Guarded>, stall: Duration, mut done: oneshot::Receiver<()>) {
    loop {
        let Some(deadline) = shared.upgrade().map(|s| s.last_poll() + stall) else {
            return;
        };
        tokio::select! {
            _ = &mut done => return,
            () = tokio::time::sleep_until(deadline) => {}
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.last_poll().elapsed() >= stall {
            let released = shared
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if released.is_some() {
                tracing::info!(
                    stall_seconds = stall.as_secs(),
                    "download ended: the client read nothing for too long"
                );
            }
            return;
        }
    }
}

struct StallGuard {
    shared: Arc<Guarded>,
    /// Dropped with the body, which stops the watchdog at once.
    _done: oneshot::Sender<()>,
    stall: Duration,
}

impl Stream for StallGuard {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        *self
            .shared
            .last_poll
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        let mut held = self
            .shared
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some((stream, _slot)) = held.as_mut() else {
            return Poll::Ready(Some(Err(BodyError::Backend(
                format!("the client read nothing for {:?}", self.stall).into(),
            ))));
        };
        let polled = stream.as_mut().poll_next(cx);
        if matches!(polled, Poll::Ready(None)) {
            // Finished: give the slot back now rather than when hyper drops the body.
            *held = None;
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::client_limits::ClientSlots;

    fn endless() -> ByteStream {
        futures_util::stream::repeat_with(|| Ok(Bytes::from_static(b"0123456789"))).boxed()
    }

    const STALL: Duration = Duration::from_millis(200);

    #[tokio::test]
    async fn a_download_nobody_reads_gives_its_slot_back_after_the_stall_timeout() {
        let slots = ClientSlots::new(1);
        let body = guarded_download(endless(), slots.acquire("c").unwrap(), STALL);
        let mut stream = body.into_data_stream();
        assert!(stream.next().await.unwrap().is_ok());
        assert_eq!(slots.held_by("c"), 1);

        tokio::time::sleep(STALL * 2).await;

        assert_eq!(slots.held_by("c"), 0, "the slot is back");
        assert!(
            stream.next().await.unwrap().is_err(),
            "the body ends in an error"
        );
    }

    #[tokio::test]
    async fn a_download_read_steadily_is_never_cut() {
        let slots = ClientSlots::new(1);
        let body = guarded_download(endless(), slots.acquire("c").unwrap(), STALL);
        let mut stream = body.into_data_stream();
        for _ in 0..6 {
            tokio::time::sleep(STALL / 2).await;
            assert!(stream.next().await.unwrap().is_ok());
        }
        assert_eq!(slots.held_by("c"), 1);
        drop(stream);
        assert_eq!(slots.held_by("c"), 0);
    }

    #[tokio::test]
    async fn a_finished_download_gives_its_slot_back_before_it_is_dropped() {
        let slots = ClientSlots::new(1);
        let once = futures_util::stream::iter([Ok(Bytes::from_static(b"abc"))]).boxed();
        let body = guarded_download(once, slots.acquire("c").unwrap(), Duration::from_secs(60));
        let mut stream = body.into_data_stream();
        assert_eq!(stream.next().await.unwrap().unwrap(), "abc");
        assert!(stream.next().await.is_none());
        assert_eq!(slots.held_by("c"), 0);
    }

    #[tokio::test]
    async fn a_request_body_that_sends_nothing_fails_after_the_idle_timeout() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let inner = Body::from_stream(tokio_stream_from(rx));
        let body = IdleBody {
            inner,
            idle: STALL,
            deadline: Box::pin(tokio::time::sleep(STALL)),
        };
        tx.send(Ok(Bytes::from_static(b"first"))).await.unwrap();
        let mut stream = Body::new(body).into_data_stream();
        assert_eq!(stream.next().await.unwrap().unwrap(), "first");

        let error = stream.next().await.unwrap().unwrap_err();

        assert!(is_body_idle(&error), "{error}");
        drop(tx);
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl Stream<Item = T> + Send + 'static {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
