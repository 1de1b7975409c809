//! An HTTP/1 answer given before its request's body was read to the end says `Connection: close`.
//!
//! Such an answer comes early: an upload refused on its credential, its rate limit or an outage
//! of a dependency, before its bytes are read. The server then closes the connection, since the
//! rest of the body cannot be skipped cheaply, but names the close in the answer only when it
//! noticed the unread body before writing the head. A client that keeps the connection sends its
//! next request into a socket being closed, and that request fails without ever being seen.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// Adds `Connection: close` to the error answer of an HTTP/1 request whose body was not read to
/// its end by the time the answer is ready. HTTP/2 ends such a stream on its own, and a connection
/// header is not allowed there.
pub async fn close_after_unread_body(request: Request, next: Next) -> Response {
    let http1 = matches!(request.version(), Version::HTTP_10 | Version::HTTP_11);
    if !http1 || request.body().is_end_stream() {
        return next.run(request).await;
    }
    let finished = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(WatchedBody {
            inner: body,
            finished: Arc::clone(&finished),
        })
    });
    let mut response = next.run(request).await;
    // A success was answered after the body's content (a form read to its closing boundary);
    // what is left, such as a chunked body's last chunk, is in hand and hyper drains it.
    let refused = response.status().is_client_error() || response.status().is_server_error();
    if refused && !finished.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that says when it has been read to its end.
struct WatchedBody {
    inner: Body,
    finished: Arc<AtomicBool>,
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt;

    use axum::http::StatusCode;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route(
                "/refuse",
                post(|| async { (StatusCode::UNAUTHORIZED, "refused unread") }),
            )
            .route(
                "/accept",
                post(|| async { (StatusCode::CREATED, "taken, the rest in hand") }),
            )
            .route(
                "/read",
                post(|body: Body| async move {
                    let _ = axum::body::to_bytes(body, usize::MAX).await;
                    "read"
                }),
            )
            .layer(axum::middleware::from_fn(close_after_unread_body))
    }

    async fn connection_of(path: &str, version: Version, body: Body) -> Option<HeaderValue> {
        let request = Request::post(path).version(version).body(body).unwrap();
        let response = app().oneshot(request).await.unwrap();
        response.headers().get(header::CONNECTION).cloned()
    }

    fn chunked() -> Body {
        Body::from_stream(futures_util::stream::iter([
            Ok::<_, std::io::Error>(Bytes::from_static(b"one")),
            Ok(Bytes::from_static(b"two")),
        ]))
    }

    #[tokio::test]
    async fn an_answer_that_left_the_body_unread_closes_the_connection() {
        let close = Some(HeaderValue::from_static("close"));
        assert_eq!(
            connection_of("/refuse", Version::HTTP_11, Body::from(vec![7; 4096])).await,
            close
        );
        assert_eq!(
            connection_of("/refuse", Version::HTTP_11, chunked()).await,
            close
        );
        assert_eq!(
            connection_of("/refuse", Version::HTTP_10, Body::from("x")).await,
            close
        );
    }

    #[tokio::test]
    async fn an_answer_after_the_whole_body_or_without_one_keeps_the_connection() {
        assert_eq!(
            connection_of("/read", Version::HTTP_11, Body::from(vec![7; 4096])).await,
            None
        );
        assert_eq!(
            connection_of("/read", Version::HTTP_11, chunked()).await,
            None
        );
        assert_eq!(
            connection_of("/refuse", Version::HTTP_11, Body::empty()).await,
            None
        );
        // A success leaves at most the body's end unread (a chunked form's last chunk), which
        // hyper drains: the connection stays.
        assert_eq!(
            connection_of("/accept", Version::HTTP_11, chunked()).await,
            None
        );
        // HTTP/2 ends the stream instead; a connection header is not allowed there.
        assert_eq!(
            connection_of("/refuse", Version::HTTP_2, Body::from(vec![7; 4096])).await,
            None
        );
    }
}
