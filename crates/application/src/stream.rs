//! Byte streams that cross the ports, and the small combinators uploads need.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, Stream, StreamExt};
use sha2::{Digest, Sha256};
use stowage_domain::Sha256Digest;

use crate::error::BoxError;

/// A stream of file bytes, moved between presentation, use cases and blob stores.
pub type ByteStream = BoxStream<'static, Result<Bytes, BodyError>>;

/// Why a byte stream ended early; the cause survives every adapter it passes.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body grew past the limit (in bytes).
    #[error("body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: u64,
    },
    /// The client disconnected or sent a broken body.
    #[error("the client aborted the body")]
    ClientAborted(#[source] BoxError),
    /// The client sent nothing for longer than the body idle timeout.
    #[error("the client sent nothing for too long")]
    TimedOut,
    /// The body is not what the route expects (e.g. broken multipart framing).
    #[error("{0}")]
    Malformed(String),
    /// An image over the limits of the policy it is uploaded under.
    #[error("{0}")]
    ImageTooLarge(String),
    /// Bytes of an image format that are not a well-formed image of it.
    #[error("{0}")]
    UnsupportedImage(String),
    /// The backend a download streams from failed mid-way.
    #[error("the storage backend failed mid-stream")]
    Backend(#[source] BoxError),
}

/// Size and SHA-256 of a blob as it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredBlob {
    /// Bytes written.
    pub size: u64,
    /// SHA-256 of the bytes written.
    pub sha256: Sha256Digest,
}

/// Counts and hashes bytes on their way to a blob store.
#[derive(Clone, Default)]
pub struct BlobDigester {
    hasher: Sha256,
    size: u64,
}

impl BlobDigester {
    /// A digester that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
    }

    /// Bytes seen so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The size and digest of everything fed.
    pub fn finish(self) -> StoredBlob {
        StoredBlob {
            size: self.size,
            sha256: Sha256Digest::from_bytes(self.hasher.finalize().into()),
        }
    }
}

/// Wraps `inner` so that it fails with [`BodyError::TooLarge`] as soon as more than `limit` bytes passed.
pub fn limit_stream(inner: ByteStream, limit: u64) -> ByteStream {
    Box::pin(Limited {
        inner,
        limit,
        seen: 0,
        done: false,
    })
}

struct Limited {
    inner: ByteStream,
    limit: u64,
    seen: u64,
    done: bool,
}

impl Stream for Limited {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen += chunk.len() as u64;
                if self.seen > self.limit {
                    self.done = true;
                    let limit = self.limit;
                    Poll::Ready(Some(Err(BodyError::TooLarge { limit })))
                } else {
                    Poll::Ready(Some(Ok(chunk)))
                }
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Reads from `stream` until at least `want` bytes (or the end) arrived, and gives back those
/// bytes together with a stream that yields the whole body again from its first byte.
///
/// # Errors
/// The first error the stream yields while the prefix is being read.
pub async fn peek_prefix(
    mut stream: ByteStream,
    want: usize,
) -> Result<(Bytes, ByteStream), BodyError> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut have = 0usize;
    while have < want {
        match stream.next().await {
            Some(Ok(chunk)) => {
                have += chunk.len();
                chunks.push(chunk);
            }
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    let prefix = match chunks.as_slice() {
        [] => Bytes::new(),
        [one] => one.clone(),
        many => {
            let mut joined = BytesMut::with_capacity(have);
            for c in many {
                joined.extend_from_slice(c);
            }
            joined.freeze()
        }
    };
    let replay = futures_util::stream::iter(chunks.into_iter().map(Ok));
    Ok((prefix, Box::pin(replay.chain(stream))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn body(chunks: &[&'static [u8]]) -> ByteStream {
        Box::pin(stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        ))
    }

    async fn drain(mut s: ByteStream) -> Result<Vec<u8>, BodyError> {
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn limit_stream_passes_a_body_at_the_limit() {
        let out = drain(limit_stream(body(&[b"abc", b"de"]), 5))
            .await
            .unwrap();
        assert_eq!(out, b"abcde");
    }

    #[tokio::test]
    async fn limit_stream_fails_one_byte_past_the_limit() {
        let err = drain(limit_stream(body(&[b"abc", b"def"]), 5))
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 5 }));
    }

    #[tokio::test]
    async fn peek_prefix_replays_the_whole_body() {
        let (prefix, rest) = peek_prefix(body(&[b"ab", b"cd", b"ef"]), 3).await.unwrap();
        assert_eq!(&prefix[..], b"abcd");
        assert_eq!(drain(rest).await.unwrap(), b"abcdef");
    }

    #[tokio::test]
    async fn peek_prefix_of_an_empty_body_is_empty() {
        let (prefix, rest) = peek_prefix(body(&[]), 8).await.unwrap();
        assert!(prefix.is_empty());
        assert!(drain(rest).await.unwrap().is_empty());
    }

    #[test]
    fn digester_matches_known_sha256() {
        let mut d = BlobDigester::new();
        d.update(b"a");
        d.update(b"bc");
        let out = d.finish();
        assert_eq!(out.size, 3);
        assert_eq!(
            out.sha256.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
