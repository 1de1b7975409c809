//! Feeds a body to a streamed `PutObject` of the length it announced.

use aws_sdk_s3::error::BoxError as SdkBoxError;
use bytes::Bytes;
use futures_util::StreamExt;
use stowage_application::BodyError;
use stowage_application::stream::ByteStream;

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// How a body compared with the length its `PutObject` announced.
#[derive(Debug)]
pub(super) enum Fit {
    /// Exactly as long.
    Exact,
    /// Ended after `actual` bytes; the object was completed with zeros.
    Short { actual: u64 },
    /// Went on past the announced length; `rest` followed, and the stream holds the remainder.
    Long { rest: Bytes },
}

/// How feeding a streamed `PutObject` ended.
#[derive(Debug)]
pub(super) enum Fed {
    /// All announced bytes were sent.
    Sent(Fit),
    /// The body failed; the request was cut off before its last byte.
    Failed(BodyError),
    /// The request stopped taking the body.
    Abandoned,
}

/// Sends `len` bytes of `source` to `tx`. The last of them leave only once the source's own
/// end (or what follows) is known, so a body that fails at its very end never completes the
/// object.
pub(super) async fn feed_exactly(
    source: &mut ByteStream,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, SdkBoxError>>,
    len: u64,
) -> Fed {
    let mut sent = 0u64;
    loop {
        // A request that failed early stops taking the body: notice it without waiting for the
        // client's next chunk.
        let next = tokio::select! {
            next = source.next() => next,
            () = tx.closed() => return Fed::Abandoned,
        };
        let chunk = match next {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                let _ = tx.send(Err("the upload body failed".into())).await;
                return Fed::Failed(e);
            }
            None => {
                let actual = sent;
                while sent < len {
                    let n = usize::try_from(len - sent).map_or(ZEROS.len(), |n| n.min(ZEROS.len()));
                    if tx.send(Ok(Bytes::from_static(&ZEROS[..n]))).await.is_err() {
                        return Fed::Abandoned;
                    }
                    sent += n as u64;
                }
                return Fed::Sent(Fit::Short { actual });
            }
        };
        let room = len - sent;
        let size = chunk.len() as u64;
        if size < room {
            sent += size;
            if tx.send(Ok(chunk)).await.is_err() {
                return Fed::Abandoned;
            }
            continue;
        }
        let cut = usize::try_from(room).unwrap_or(chunk.len());
        let mut rest = chunk.slice(cut..);
        let last = chunk.slice(..cut);
        while rest.is_empty() {
            match source.next().await {
                None => break,
                Some(Ok(more)) => rest = more,
                Some(Err(e)) => {
                    let _ = tx.send(Err("the upload body failed".into())).await;
                    return Fed::Failed(e);
                }
            }
        }
        if tx.send(Ok(last)).await.is_err() {
            return Fed::Abandoned;
        }
        return Fed::Sent(if rest.is_empty() {
            Fit::Exact
        } else {
            Fit::Long { rest }
        });
    }
}

/// A request body fed chunk by chunk through a channel, of a length known in advance.
pub(super) struct ChannelBody {
    pub(super) rx: tokio::sync::mpsc::Receiver<Result<Bytes, SdkBoxError>>,
    pub(super) len: u64,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = SdkBoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, SdkBoxError>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|chunk| chunk.map(http_body::Frame::data)))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len)
    }
}
