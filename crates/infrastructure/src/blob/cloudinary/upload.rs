//! Uploads through Cloudinary's chunked Upload API: the body is cut into chunks of
//! `chunk_size` bytes, each sent as its own signed `multipart/form-data` request under one
//! `X-Unique-Upload-Id`, with `Content-Range: bytes a-b/-1` until the last chunk states the
//! total. Cloudinary assembles the resource only when the last chunk arrives, so a body that
//! fails or a request that is dropped before that leaves no resource. A chunk's bytes are charged
//! to the upload buffer budget as they arrive and given back once the chunk is sent; an upload
//! that finds the budget spent is refused like a body that failed.

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use stowage_application::ports::BlobError;
use stowage_application::stream::{BlobDigester, ByteStream, StoredBlob};
use stowage_domain::{BlobKey, ContentType, SNIFF_LEN};

use super::error::{CloudinaryError, status_error, timed_out, transport};
use super::{CloudinaryBlobStore, ResourceType};
use crate::blob::budget::{PartBudget, PartShare};

/// Transient failures of one chunk are retried this many times in all, with the same bytes.
const CHUNK_ATTEMPTS: u32 = 3;

/// One chunk of the body, kept as the pieces it arrived in, with the share of the upload
/// buffers they are charged to.
#[derive(Default)]
struct Chunk {
    pieces: Vec<Bytes>,
    len: usize,
    share: PartShare,
}

impl Chunk {
    /// Keeps `piece` once `budget` has room for it.
    async fn push(&mut self, piece: Bytes, budget: &PartBudget) -> Result<(), BlobError> {
        budget.charge(&mut self.share, piece.len()).await?;
        self.len += piece.len();
        self.pieces.push(piece);
        Ok(())
    }

    /// The first bytes, enough to recognise a format by its magic bytes.
    fn prefix(&self) -> Vec<u8> {
        let mut prefix = Vec::with_capacity(SNIFF_LEN);
        for piece in &self.pieces {
            let take = (SNIFF_LEN - prefix.len()).min(piece.len());
            prefix.extend_from_slice(&piece[..take]);
            if prefix.len() == SNIFF_LEN {
                break;
            }
        }
        prefix
    }
}

/// Destroys, in the background, a resource whose last chunk was in flight when the upload was
/// dropped.
struct DestroyOnDrop {
    store: CloudinaryBlobStore,
    kind: ResourceType,
    public_id: String,
    armed: bool,
}

impl Drop for DestroyOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, kind) = (self.store.clone(), self.kind);
        let public_id = std::mem::take(&mut self.public_id);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { store.destroy_quietly(kind, &public_id).await });
        }
    }
}

/// Where a chunk sits in the upload.
#[derive(Clone, Copy)]
struct Placement<'a> {
    upload_id: &'a str,
    start: u64,
    /// The total, on the last chunk only.
    total: Option<u64>,
}

impl CloudinaryBlobStore {
    pub(super) async fn upload(
        &self,
        key: &BlobKey,
        mut body: ByteStream,
    ) -> Result<StoredBlob, BlobError> {
        let mut digest = BlobDigester::new();
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let public_id = self.public_id(key);
        let mut resource_type = None;
        let mut chunk = Chunk::default();
        let mut start = 0u64;
        let mut carry: Option<Bytes> = None;
        loop {
            // Fill a chunk, then look one piece further to learn whether it is the last.
            let mut ended = false;
            while chunk.len < self.chunk_size {
                let piece = match carry.take() {
                    Some(piece) => piece,
                    None => match body.next().await {
                        Some(piece) => piece?,
                        None => {
                            ended = true;
                            break;
                        }
                    },
                };
                if piece.is_empty() {
                    continue;
                }
                let room = self.chunk_size - chunk.len;
                let piece = if piece.len() > room {
                    carry = Some(piece.slice(room..));
                    piece.slice(..room)
                } else {
                    piece
                };
                digest.update(&piece);
                chunk.push(piece, &self.budget).await?;
            }
            if !ended && carry.is_none() {
                match next_non_empty(&mut body).await? {
                    Some(piece) => carry = Some(piece),
                    None => ended = true,
                }
            }
            if chunk.len == 0 {
                // An empty body: Cloudinary refuses empty uploads, so nothing is stored.
                return Ok(digest.finish());
            }
            let mut kind = *resource_type.get_or_insert_with(|| resource_type_of(&chunk.prefix()));
            let len = chunk.len as u64;
            let placement = Placement {
                upload_id: &upload_id,
                start,
                total: ended.then_some(start + len),
            };
            if !ended {
                self.send_chunk(kind, &public_id, &chunk, &placement)
                    .await?;
                start += len;
                // The sent chunk's buffers go back to the budget.
                chunk = Chunk::default();
                continue;
            }
            // The last chunk makes the resource: if its answer is lost (a timeout, the client
            // gone), the resource may exist anyway, so it is destroyed rather than left behind.
            let mut guard = DestroyOnDrop {
                store: self.clone(),
                kind,
                public_id: public_id.clone(),
                armed: true,
            };
            let mut sent = self.send_chunk(kind, &public_id, &chunk, &placement).await;
            if start == 0
                && kind == ResourceType::Image
                && matches!(sent, Err(CloudinaryError::Status { status: 400, .. }))
            {
                // Magic bytes of an image that Cloudinary cannot decode: the whole file is in
                // this one chunk, so it is kept as a raw resource instead.
                kind = ResourceType::Raw;
                guard.kind = kind;
                let upload_id = uuid::Uuid::new_v4().simple().to_string();
                let placement = Placement {
                    upload_id: &upload_id,
                    ..placement
                };
                sent = self.send_chunk(kind, &public_id, &chunk, &placement).await;
            }
            drop(chunk);
            let answer = match sent {
                Ok(answer) => answer,
                Err(e) => {
                    guard.armed = false;
                    self.destroy_quietly(kind, &public_id).await;
                    return Err(e.into());
                }
            };
            guard.armed = false;
            let stored = digest.finish();
            let bytes = answer.get("bytes").and_then(serde_json::Value::as_u64);
            if bytes != Some(stored.size) {
                self.destroy_quietly(kind, &public_id).await;
                return Err(CloudinaryError::Unexpected {
                    operation: "upload",
                    detail: format!(
                        "the resource holds {bytes:?} bytes, {} were sent",
                        stored.size
                    ),
                }
                .into());
            }
            self.remember(key, kind);
            return Ok(stored);
        }
    }

    /// Sends one chunk, retrying transient failures of all but the last (which may have made
    /// the resource although its answer was lost); returns Cloudinary's JSON answer.
    async fn send_chunk(
        &self,
        kind: ResourceType,
        public_id: &str,
        chunk: &Chunk,
        placement: &Placement<'_>,
    ) -> Result<serde_json::Value, CloudinaryError> {
        let url = format!(
            "{}/v1_1/{}/{}/upload",
            self.api_url,
            self.cloud_name,
            kind.as_str()
        );
        let end = placement.start + chunk.len as u64 - 1;
        let total = placement
            .total
            .map_or_else(|| "-1".to_owned(), |t| t.to_string());
        let content_range = format!("bytes {}-{end}/{total}", placement.start);
        let mut attempt = 1;
        loop {
            let params = self.signer.signed_params(
                vec![
                    ("public_id", public_id.to_owned()),
                    ("type", "authenticated".to_owned()),
                ],
                unix_now(),
            );
            let (boundary, form) = form_body(&params, chunk);
            let request = self
                .client
                .post(&url)
                .header("X-Unique-Upload-Id", placement.upload_id)
                .header("Content-Range", &content_range)
                .header(
                    CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .header(CONTENT_LENGTH, form.iter().map(Bytes::len).sum::<usize>())
                .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                    form.into_iter().map(Ok::<_, std::convert::Infallible>),
                )));
            let failure = match tokio::time::timeout(self.timeout, request.send()).await {
                Err(_) => timed_out("upload"),
                Ok(Err(e)) => transport("upload", e),
                Ok(Ok(response)) if response.status().is_success() => {
                    return response
                        .json::<serde_json::Value>()
                        .await
                        .map_err(|e| transport("upload", e));
                }
                Ok(Ok(response)) => {
                    let transient = response.status().is_server_error();
                    let error = status_error("upload", response).await;
                    if !transient {
                        return Err(error);
                    }
                    error
                }
            };
            if attempt >= CHUNK_ATTEMPTS || placement.total.is_some() {
                return Err(failure);
            }
            tracing::debug!(error = %failure, attempt, "retrying a Cloudinary upload chunk");
            tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt))).await;
            attempt += 1;
        }
    }
}

async fn next_non_empty(body: &mut ByteStream) -> Result<Option<Bytes>, BlobError> {
    while let Some(piece) = body.next().await {
        let piece = piece?;
        if !piece.is_empty() {
            return Ok(Some(piece));
        }
    }
    Ok(None)
}

/// `image` for the image types Cloudinary processes as images, `raw` for everything else.
fn resource_type_of(prefix: &[u8]) -> ResourceType {
    const IMAGES: [&str; 5] = [
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/gif",
        "image/avif",
    ];
    match ContentType::sniff(prefix) {
        Some(sniffed) if sniffed.matches_any(&IMAGES) => ResourceType::Image,
        _ => ResourceType::Raw,
    }
}

/// A `multipart/form-data` body of the signed parameters and the chunk as the part `file`.
fn form_body(params: &[(&'static str, String)], chunk: &Chunk) -> (String, Vec<Bytes>) {
    let boundary = format!("stowage-{}", uuid::Uuid::new_v4().simple());
    let mut head = String::new();
    for (name, value) in params {
        head.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    head.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    ));
    let mut form = Vec::with_capacity(chunk.pieces.len() + 2);
    form.push(Bytes::from(head));
    form.extend(chunk.pieces.iter().cloned());
    form.push(Bytes::from(format!("\r\n--{boundary}--\r\n")));
    (boundary, form)
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_go_to_the_image_type_and_everything_else_to_raw() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let jpeg = b"\xff\xd8\xff\xe0\0\x10JFIF\0";

        assert_eq!(resource_type_of(png), ResourceType::Image);
        assert_eq!(resource_type_of(jpeg), ResourceType::Image);
        assert_eq!(resource_type_of(b"%PDF-1.7\n"), ResourceType::Raw);
        assert_eq!(resource_type_of(b"plain text"), ResourceType::Raw);
    }
}
