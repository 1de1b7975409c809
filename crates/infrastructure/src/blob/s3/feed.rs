//! Feeds a body to a streamed `PutObject` of the length its request stated.

use aws_sdk_s3::error::BoxError as SdkBoxError;
use bytes::Bytes;
use futures_util::StreamExt;
use stowage_application::BodyError;
use stowage_application::stream::ByteStream;

/// How feeding a streamed `PutObject` ended.
#[derive(Debug)]
pub(super) enum Fed {
    /// The body was exactly as long as stated, and all of it was sent.
    Sent,
    /// The body failed, or was not as long as stated; the request was cut off before its last
    /// byte.
    Failed(BodyError),
    /// The request stopped taking the body.
    Abandoned,
}

/// Sends `source`, stated to be `len` bytes long, to `tx`. The last bytes leave only once the
/// source's own end is known, so a body that fails at its very end, or goes on past `len`, never
/// completes the object.
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
            Some(Err(e)) => return fail(&tx, e).await,
            None => return fail(&tx, length_differs(len)).await,
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
        if size > room {
            return fail(&tx, length_differs(len)).await;
        }
        // The stated length is reached: the last chunk leaves only if nothing follows it.
        loop {
            match source.next().await {
                None => break,
                Some(Ok(more)) if more.is_empty() => {}
                Some(Ok(_)) => return fail(&tx, length_differs(len)).await,
                Some(Err(e)) => return fail(&tx, e).await,
            }
        }
        if tx.send(Ok(chunk)).await.is_err() {
            return Fed::Abandoned;
        }
        return Fed::Sent;
    }
}

/// Cuts the request off, so that the store keeps nothing of it.
async fn fail(tx: &tokio::sync::mpsc::Sender<Result<Bytes, SdkBoxError>>, e: BodyError) -> Fed {
    let _ = tx.send(Err("the upload body failed".into())).await;
    Fed::Failed(e)
}

fn length_differs(len: u64) -> BodyError {
    BodyError::Malformed(format!(
        "the body was not the {len} bytes its request stated"
    ))
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
