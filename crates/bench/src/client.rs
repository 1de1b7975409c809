//! The client side: transfers through Stowage and directly to the S3 server, timed as they
//! arrive.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

pub const MIB: usize = 1024 * 1024;
/// The bucket direct transfers use; Stowage has a bucket of its own.
pub const DIRECT_BUCKET: &str = "bench-direct";

/// `mib` MiB of pseudo-random bytes, as 64 KiB zero-copy slices of one 1 MiB block.
fn body_chunks(block: &Bytes, mib: usize) -> Vec<Bytes> {
    let mut chunks = Vec::with_capacity(mib * 16);
    for _ in 0..mib {
        for i in 0..16 {
            chunks.push(block.slice(i * 64 * 1024..(i + 1) * 64 * 1024));
        }
    }
    chunks
}

/// 1 MiB of pseudo-random bytes, which compress no better than a real file's.
pub fn block() -> Bytes {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..MIB)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect::<Vec<u8>>()
        .into()
}

/// A pause between two chunks of a response long enough to be a delayed-ACK stall.
const STALL: Duration = Duration::from_millis(30);

/// What a client saw of one response body.
pub struct Received {
    pub bytes: usize,
    pub first: Duration,
    pub total: Duration,
    /// Pauses of at least [`STALL`] between chunks.
    pub stalls: usize,
}

/// Times a response body chunk by chunk.
struct Receiving {
    started: Instant,
    last: Option<Instant>,
    out: Received,
}

impl Received {
    fn start() -> Receiving {
        Receiving {
            started: Instant::now(),
            last: None,
            out: Received {
                bytes: 0,
                first: Duration::ZERO,
                total: Duration::ZERO,
                stalls: 0,
            },
        }
    }
}

impl Receiving {
    fn chunk(&mut self, len: usize) {
        let now = Instant::now();
        match self.last {
            None => self.out.first = now - self.started,
            Some(last) if now - last >= STALL => self.out.stalls += 1,
            Some(_) => {}
        }
        self.last = Some(now);
        self.out.bytes += len;
    }

    fn finish(mut self) -> Received {
        self.out.total = self.started.elapsed();
        self.out
    }
}

/// The multipart form's opening (up to the file's bytes) and closing, around one file `name`.
fn form_around(boundary: &str, name: &str) -> (Bytes, Bytes) {
    let head = Bytes::from(format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    ));
    let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    (head, tail)
}

/// The new file's id from an upload's answer.
async fn file_id(response: reqwest::Response) -> Result<String> {
    let info: Value = response.json().await?;
    Ok(info["file_id"].as_str().unwrap_or_default().to_owned())
}

/// Clients of Stowage and of the S3 server behind it, and the bytes they send.
#[derive(Clone)]
pub struct Bench {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub s3: aws_sdk_s3::Client,
    pub block: Bytes,
}

impl Bench {
    /// `POST /files{query}` with a multipart body delimited by `boundary`.
    fn post_form(&self, boundary: &str, query: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}/files{query}", self.base))
            .bearer_auth(&self.token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
    }

    /// Uploads `mib` MiB through Stowage as `name`; the file's id.
    pub async fn upload(&self, name: &str, mib: usize) -> Result<String> {
        let boundary = "stowagebenchboundary";
        let (head, tail) = form_around(boundary, name);
        // Streamed like `curl -F file=@big.bin`: the length is announced, the bytes are not held.
        let length = head.len() + mib * MIB + tail.len();
        let chunks = std::iter::once(head)
            .chain(body_chunks(&self.block, mib))
            .chain(std::iter::once(tail))
            .map(Ok::<_, std::io::Error>);
        let response = self
            .post_form(boundary, "")
            .header("content-length", length)
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
            .await?;
        if response.status() != 201 {
            bail!(
                "upload answered {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        file_id(response).await
    }

    /// Uploads 4 KiB through Stowage in one buffered body; the file's id.
    pub async fn upload_small(&self) -> Result<String> {
        self.upload_bytes("small.bin", &self.block[..4096]).await
    }

    /// Uploads `bytes` through Stowage as `name` in one buffered body; the file's id.
    pub async fn upload_bytes(&self, name: &str, bytes: &[u8]) -> Result<String> {
        let response = self
            .post_file(name, "", Bytes::copy_from_slice(bytes), true)
            .await?;
        if response.status() != 201 {
            bail!("upload answered {}", response.status());
        }
        file_id(response).await
    }

    /// `POST /files{query}` of `bytes` as the file `name`: in one body of announced length, or
    /// (`announced` false) streamed in 64 KiB chunks of unknown length, as a client that pipes
    /// sends it; the answer, whatever its status.
    pub async fn post_file(
        &self,
        name: &str,
        query: &str,
        bytes: Bytes,
        announced: bool,
    ) -> Result<reqwest::Response> {
        let boundary = "stowagebenchbytes";
        let (head, tail) = form_around(boundary, name);
        let request = self.post_form(boundary, query);
        let request = if announced {
            let mut body = Vec::with_capacity(head.len() + bytes.len() + tail.len());
            for part in [&head, &bytes, &tail] {
                body.extend_from_slice(part);
            }
            request.body(body)
        } else {
            let chunks = (0..bytes.len().div_ceil(64 * 1024))
                .map(move |i| bytes.slice(i * 64 * 1024..((i + 1) * 64 * 1024).min(bytes.len())));
            let parts = std::iter::once(head)
                .chain(chunks)
                .chain(std::iter::once(tail))
                .map(Ok::<_, std::io::Error>);
            request.body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                parts,
            )))
        };
        Ok(request.send().await?)
    }

    /// Downloads `id` (or a range of it).
    pub async fn download(&self, id: &str, range: Option<(usize, usize)>) -> Result<Received> {
        self.download_with(id, "", range).await
    }

    /// Downloads `id` with the query string `query` (an image variant's parameters; empty for
    /// the file itself), or a range of it.
    pub async fn download_with(
        &self,
        id: &str,
        query: &str,
        range: Option<(usize, usize)>,
    ) -> Result<Received> {
        let mut received = Received::start();
        let separator = if query.is_empty() { "" } else { "?" };
        let mut request = self
            .http
            .get(format!("{}/files/{id}{separator}{query}", self.base))
            .bearer_auth(&self.token);
        if let Some((a, b)) = range {
            request = request.header("range", format!("bytes={a}-{b}"));
        }
        let response = request.send().await?;
        if !response.status().is_success() {
            bail!("download answered {}", response.status());
        }
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            received.chunk(chunk?.len());
        }
        Ok(received.finish())
    }

    /// Puts `mib` MiB straight into the S3 server in one request.
    pub async fn put_direct(&self, key: &str, mib: usize) -> Result<()> {
        let mut body = bytes::BytesMut::with_capacity(mib * MIB);
        for chunk in body_chunks(&self.block, mib) {
            body.extend_from_slice(&chunk);
        }
        self.s3
            .put_object()
            .bucket(DIRECT_BUCKET)
            .key(key)
            .body(body.freeze().into())
            .send()
            .await?;
        Ok(())
    }

    /// A direct multipart upload in 5 MiB parts, as Stowage sends files of unknown length.
    pub async fn put_direct_multipart(&self, key: &str, mib: usize) -> Result<()> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let upload = self
            .s3
            .create_multipart_upload()
            .bucket(DIRECT_BUCKET)
            .key(key)
            .send()
            .await?;
        let id = upload.upload_id().unwrap_or_default().to_owned();
        let chunks = body_chunks(&self.block, mib);
        let mut parts = Vec::new();
        for (i, group) in chunks.chunks(80).enumerate() {
            let mut part = bytes::BytesMut::with_capacity(5 * MIB);
            for chunk in group {
                part.extend_from_slice(chunk);
            }
            let number = i32::try_from(i + 1)?;
            let sent = self
                .s3
                .upload_part()
                .bucket(DIRECT_BUCKET)
                .key(key)
                .upload_id(&id)
                .part_number(number)
                .body(part.freeze().into())
                .send()
                .await?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(sent.e_tag().map(str::to_owned))
                    .build(),
            );
        }
        self.s3
            .complete_multipart_upload()
            .bucket(DIRECT_BUCKET)
            .key(key)
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await?;
        Ok(())
    }

    /// Deletes `id` through Stowage.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let response = self
            .http
            .delete(format!("{}/files/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("delete answered {}", response.status());
        }
        Ok(())
    }

    /// Deletes `key` straight from the S3 server.
    pub async fn delete_direct(&self, key: &str) -> Result<()> {
        self.s3
            .delete_object()
            .bucket(DIRECT_BUCKET)
            .key(key)
            .send()
            .await?;
        Ok(())
    }

    /// Gets `key` (or a range of it) straight from the S3 server.
    pub async fn get_direct(&self, key: &str, range: Option<(usize, usize)>) -> Result<Received> {
        let mut received = Received::start();
        let mut request = self.s3.get_object().bucket(DIRECT_BUCKET).key(key);
        if let Some((a, b)) = range {
            request = request.range(format!("bytes={a}-{b}"));
        }
        let mut body = request.send().await?.body;
        while let Some(chunk) = body.next().await {
            received.chunk(chunk?.len());
        }
        Ok(received.finish())
    }
}
