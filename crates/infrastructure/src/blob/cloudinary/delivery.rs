//! Reads through signed delivery URLs of authenticated resources, with `Range`.

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use stowage_application::BodyError;
use stowage_application::ports::{BlobBody, BlobError};
use stowage_domain::{BlobKey, ByteRange};

use super::error::{CloudinaryError, status_error, timed_out, transport};
use super::{CloudinaryBlobStore, ResourceType};

impl CloudinaryBlobStore {
    fn delivery_url(&self, kind: ResourceType, public_id: &str) -> String {
        format!(
            "{}/{}/{}/authenticated/{}/{public_id}",
            self.delivery_url,
            self.cloud_name,
            kind.as_str(),
            self.signer.url_signature(public_id)
        )
    }

    /// Sends a delivery request for `key` under each resource type it may have, the remembered
    /// one first; `None` when no type holds it.
    async fn deliver(
        &self,
        key: &BlobKey,
        method: reqwest::Method,
        range: Option<ByteRange>,
    ) -> Result<Option<reqwest::Response>, CloudinaryError> {
        let public_id = self.public_id(key);
        for kind in self.types_of(key) {
            let mut request = self
                .client
                .request(method.clone(), self.delivery_url(kind, &public_id));
            if let Some(range) = range {
                request = request.header(RANGE, format!("bytes={}-{}", range.start(), range.end()));
            }
            let response = match tokio::time::timeout(self.timeout, request.send()).await {
                Err(_) => return Err(timed_out("delivery")),
                Ok(Err(e)) => return Err(transport("delivery", e)),
                Ok(Ok(response)) => response,
            };
            match response.status() {
                StatusCode::NOT_FOUND => {}
                status if status.is_success() => {
                    self.remember(key, kind);
                    return Ok(Some(response));
                }
                _ => return Err(status_error("delivery", response).await),
            }
        }
        Ok(None)
    }

    pub(super) async fn read(
        &self,
        key: &BlobKey,
        range: Option<ByteRange>,
    ) -> Result<BlobBody, BlobError> {
        let Some(response) = self.deliver(key, reqwest::Method::GET, range).await? else {
            return Err(BlobError::NotFound);
        };
        let partial = response.status() == StatusCode::PARTIAL_CONTENT;
        let (skip, len) = match range {
            // A server that ignores `Range` sends the whole resource: skip to the range's start.
            Some(range) if !partial => (range.start(), range.len()),
            Some(range) => {
                let answered = content_range(&response);
                if answered != Some((range.start(), range.end())) {
                    return Err(CloudinaryError::Unexpected {
                        operation: "delivery",
                        detail: format!("asked for a range, got Content-Range {answered:?}"),
                    }
                    .into());
                }
                (0, range.len())
            }
            None => (0, content_length(&response)?),
        };
        let stream = response
            .bytes_stream()
            .map(|piece| piece.map_err(|e| BodyError::Backend(Box::new(e.without_url()))));
        Ok(BlobBody {
            len,
            stream: window(stream.boxed(), skip, len),
        })
    }

    pub(super) async fn size(&self, key: &BlobKey) -> Result<u64, BlobError> {
        match self.deliver(key, reqwest::Method::HEAD, None).await? {
            Some(response) => Ok(content_length(&response)?),
            None => Err(BlobError::NotFound),
        }
    }
}

fn content_length(response: &reqwest::Response) -> Result<u64, CloudinaryError> {
    response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CloudinaryError::Unexpected {
            operation: "delivery",
            detail: "no Content-Length".to_owned(),
        })
}

/// The first and last byte a `206` answer's `Content-Range: bytes a-b/size` holds.
fn content_range(response: &reqwest::Response) -> Option<(u64, u64)> {
    let value = response.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let (first, last) = value
        .strip_prefix("bytes ")?
        .split_once('/')?
        .0
        .split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// Exactly the `len` bytes of `stream` that follow its first `skip` bytes; a stream that ends
/// sooner fails rather than being taken for the whole.
fn window(
    stream: stowage_application::ByteStream,
    skip: u64,
    len: u64,
) -> stowage_application::ByteStream {
    futures_util::stream::unfold(
        (stream, skip, len),
        |(mut stream, mut skip, mut left)| async move {
            while left > 0 {
                let mut piece = match stream.next().await {
                    Some(Ok(piece)) => piece,
                    Some(Err(e)) => return Some((Err(e), (stream, skip, 0))),
                    None => {
                        let short = CloudinaryError::Unexpected {
                            operation: "delivery",
                            detail: "the answer ended early".to_owned(),
                        };
                        return Some((Err(BodyError::Backend(Box::new(short))), (stream, skip, 0)));
                    }
                };
                let drop = usize::try_from(skip).unwrap_or(usize::MAX).min(piece.len());
                skip -= drop as u64;
                let piece = piece.split_off(drop);
                let keep = usize::try_from(left).unwrap_or(usize::MAX).min(piece.len());
                if keep > 0 {
                    left -= keep as u64;
                    return Some((Ok(piece.slice(..keep)), (stream, skip, left)));
                }
            }
            None
        },
    )
    .boxed()
}
