//! The requests of each operation and what their answers must be: the status, and the bytes or
//! fields where there are any. Whatever else comes back is an error of the run.

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ops::{Op, Plan, Soaker};
use super::pool::{Content, Live, Rng, bytes_of, sha256_hex};
use crate::client::MIB;

/// Widths of the variants asked for; each file gets at most these few, made once and then read.
const WIDTHS: [usize; 4] = [48, 96, 160, 240];
/// The longest range asked for.
const RANGE_MAX: usize = 64 * 1024;

/// `response` if its status is `status`; else an error with the status and the body's start.
async fn expect(response: reqwest::Response, status: u16, what: &str) -> Result<reqwest::Response> {
    if response.status().as_u16() == status {
        return Ok(response);
    }
    let got = response.status();
    let body: String = response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    bail!("{what} answered {got} where {status} was expected: {body}")
}

impl Soaker {
    /// A request to `path` (from `/files` on) with the run's token.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.bench
            .http
            .request(method, format!("{}{path}", self.bench.base))
            .bearer_auth(&self.bench.token)
    }

    /// Sends what `plan` says and checks the answer, then tells the files what changed.
    pub async fn perform(&self, plan: Plan, rng: &mut Rng) -> Result<()> {
        match plan {
            Plan::Upload => {
                let live = self.upload(rng, None).await?;
                self.pool().add(live);
            }
            Plan::Upsert { key, old } => match (self.upload(rng, Some(&key)).await, old) {
                (Ok(new), Some(old)) if new.id == old.id => {
                    self.pool().lost(old);
                    bail!("POST /files?key={key} answered the id of the file it replaced");
                }
                (Ok(new), Some(old)) => self.pool().replaced(old, new),
                (Ok(new), None) => self.pool().add(new),
                (Err(e), Some(old)) => {
                    self.pool().lost(old);
                    return Err(e);
                }
                (Err(e), None) => {
                    self.pool().free_key(key);
                    return Err(e);
                }
            },
            Plan::Read(op, live) => {
                let read = self.read(op, &live, rng).await;
                self.pool().give_back(live);
                read?;
            }
            Plan::List => self.list(rng).await?,
            Plan::Delete(live) => {
                let path = match &live.key {
                    Some(key) if rng.below(2) == 0 => format!("/files/by-key/{key}"),
                    _ => format!("/files/{}", live.id),
                };
                let deleted = self.request(Method::DELETE, &path).send().await;
                match deleted.map_err(anyhow::Error::from) {
                    Ok(response) => match expect(response, 204, "DELETE").await {
                        Ok(_) => self.pool().deleted(live),
                        Err(e) => {
                            self.pool().lost(live);
                            return Err(e);
                        }
                    },
                    Err(e) => {
                        self.pool().lost(live);
                        return Err(e);
                    }
                }
            }
            Plan::Gone(id) => {
                let response = self.request(Method::GET, &format!("/files/{id}")).send();
                expect(response.await?, 404, "GET of a deleted file").await?;
            }
            Plan::Tus => {
                let size = (1 + rng.below(2)) * MIB;
                let up = self.bench.upload_tus(size / MIB).await?;
                let content = Content::Block { offset: 0 };
                let bytes = bytes_of(content, &self.image, &self.bench.block, 0, size);
                self.pool().add(Live {
                    id: up.file_id,
                    size,
                    content,
                    sha256: sha256_hex(&bytes),
                    key: None,
                });
            }
            Plan::Image => {
                let (image, content) = (self.image.clone(), Content::Image);
                let live = self.post("soak.jpg", "", image, true, content, None);
                let live = live.await?;
                self.pool().add(live);
            }
        }
        Ok(())
    }

    /// Uploads 1 KiB to 4 MiB of the block from a random offset, under `key` if given; files
    /// of 1 MiB and more go half of the time without an announced length.
    async fn upload(&self, rng: &mut Rng, key: Option<&str>) -> Result<Live> {
        let size = Self::size(rng);
        let content = Content::Block {
            offset: rng.below(MIB),
        };
        let bytes = bytes_of(content, &self.image, &self.bench.block, 0, size);
        let announced = size < MIB || rng.below(2) == 0;
        let query = key.map(|k| format!("?key={k}")).unwrap_or_default();
        let name = format!("soak-{size}.bin");
        self.post(&name, &query, bytes.into(), announced, content, key)
            .await
    }

    /// `POST /files{query}` of `bytes`: `201`, and a FileInfo of their size, SHA-256 and `key`.
    async fn post(
        &self,
        name: &str,
        query: &str,
        bytes: Bytes,
        announced: bool,
        content: Content,
        key: Option<&str>,
    ) -> Result<Live> {
        let (size, sha256) = (bytes.len(), sha256_hex(&bytes));
        let response = self.bench.post_file(name, query, bytes, announced).await?;
        let info: Value = expect(response, 201, "POST /files").await?.json().await?;
        let id = info["file_id"]
            .as_str()
            .context("FileInfo without file_id")?;
        ensure!(
            info["size"].as_u64() == Some(size as u64)
                && info["sha256"].as_str() == Some(sha256.as_str())
                && info["key"].as_str() == key,
            "POST /files of {size} bytes (key {key:?}) answered {info}"
        );
        Ok(Live {
            id: id.to_owned(),
            size,
            content,
            sha256,
            key: key.map(str::to_owned),
        })
    }

    /// An operation that reads `live`: a download (by key for half of the keyed files), a
    /// range, a HEAD, its info or a variant.
    async fn read(&self, op: Op, live: &Live, rng: &mut Rng) -> Result<()> {
        let by_id = format!("/files/{}", live.id);
        match op {
            Op::Download => {
                let path = match &live.key {
                    Some(key) if rng.below(2) == 0 => format!("/files/by-key/{key}"),
                    _ => by_id,
                };
                let response = self.request(Method::GET, &path).send().await?;
                let mut body = expect(response, 200, "GET").await?.bytes_stream();
                let (mut hash, mut len) = (Sha256::new(), 0);
                while let Some(chunk) = body.next().await {
                    let chunk = chunk?;
                    len += chunk.len();
                    hash.update(&chunk);
                }
                ensure!(
                    len == live.size && hex::encode(hash.finalize()) == live.sha256,
                    "GET {path}: {len} bytes that are not the {} uploaded",
                    live.size
                );
            }
            Op::Range => {
                let start = rng.below(live.size - 1);
                let len = 1 + rng.below(RANGE_MAX.min(live.size - start));
                let end = start + len - 1;
                let response = self
                    .request(Method::GET, &by_id)
                    .header("range", format!("bytes={start}-{end}"))
                    .send()
                    .await?;
                let response = expect(response, 206, "GET with Range").await?;
                let range = response.headers().get("content-range").cloned();
                let expected = format!("bytes {start}-{end}/{}", live.size);
                ensure!(
                    range.as_ref().and_then(|v| v.to_str().ok()) == Some(expected.as_str()),
                    "Content-Range {range:?} where {expected} was expected"
                );
                let got = response.bytes().await?;
                let want = bytes_of(live.content, &self.image, &self.bench.block, start, len);
                ensure!(got[..] == want[..], "range {start}-{end}: other bytes");
            }
            Op::Head => {
                let response = self.request(Method::HEAD, &by_id).send().await?;
                let response = expect(response, 200, "HEAD").await?;
                let length = response
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
                ensure!(
                    length == Some(live.size),
                    "HEAD: Content-Length {length:?} of a file of {}",
                    live.size
                );
            }
            Op::Info => {
                let path = format!("{by_id}/info");
                let response = self.request(Method::GET, &path).send().await?;
                let info: Value = expect(response, 200, "GET info").await?.json().await?;
                ensure!(
                    info["file_id"].as_str() == Some(live.id.as_str())
                        && info["size"].as_u64() == Some(live.size as u64),
                    "GET {path} answered {info}"
                );
            }
            _ => {
                let query = format!("?w={}&format=webp", WIDTHS[rng.below(WIDTHS.len())]);
                let response = self
                    .request(Method::GET, &format!("{by_id}{query}"))
                    .send()
                    .await?;
                let body = expect(response, 200, "GET of a variant").await?.bytes();
                let body = body.await?;
                ensure!(
                    body.len() > 12 && &body[..4] == b"RIFF" && &body[8..12] == b"WEBP",
                    "GET {query} answered {} bytes that are no WebP",
                    body.len()
                );
            }
        }
        Ok(())
    }

    /// `GET /files?limit=50`, half of the time under `prefix=soak/`, whose items must all have
    /// a key under it.
    async fn list(&self, rng: &mut Rng) -> Result<()> {
        let prefixed = rng.below(2) == 0;
        let path = if prefixed {
            "/files?limit=50&prefix=soak/"
        } else {
            "/files?limit=50"
        };
        let response = self.request(Method::GET, path).send().await?;
        let page: Value = expect(response, 200, "GET /files").await?.json().await?;
        let items = page["items"]
            .as_array()
            .with_context(|| format!("GET {path} answered {page}"))?;
        ensure!(
            !prefixed
                || items
                    .iter()
                    .all(|i| i["key"].as_str().is_some_and(|k| k.starts_with("soak/"))),
            "GET {path}: an item without a key under soak/"
        );
        Ok(())
    }
}
