//! The resumable upload phase: a large file sent over tus 1.0 in sequential `PATCH`es beside a
//! plain `POST /files` of the same bytes, taking turns, then the server's memory while several
//! tus uploads run at once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures_util::future::try_join_all;
use serde_json::{Value, json};

use crate::client::{Bench, MIB};
use crate::phases::Run;
use crate::procstats::{CpuUse, rss_mib};
use crate::stats::{median, ratio, step};

/// Each `PATCH` carries this much, as a tus client with a fixed chunk size sends it.
pub const CHUNK_MIB: usize = 8;
/// Uploads running at once while the memory is sampled.
const CONCURRENT: usize = 8;
/// `filename tus.bin,filetype application/octet-stream`, values in base64 as tus wants them.
const METADATA: &str = "filename dHVzLmJpbg==,filetype YXBwbGljYXRpb24vb2N0ZXQtc3RyZWFt";
/// The 64 KiB slices a chunk is streamed in.
const SLICE: usize = 64 * 1024;

/// How one tus upload went, request by request.
pub struct TusUpload {
    pub file_id: String,
    /// The `POST` that creates the upload.
    pub create: Duration,
    /// Each `PATCH`, from sending it to its answer.
    pub patches: Vec<Duration>,
    /// Each `PATCH`, from its last byte handed to the connection to its answer: what the server
    /// still had to do once it had the bytes.
    pub after_body: Vec<Duration>,
}

impl Bench {
    /// Creates a tus upload of `mib` MiB and sends it in [`CHUNK_MIB`] `PATCH`es, one after the
    /// other; how each request went and the file's id.
    pub async fn upload_tus(&self, mib: usize) -> Result<TusUpload> {
        let length = mib * MIB;
        let started = Instant::now();
        let created = self
            .http
            .post(format!("{}/files/tus", self.base))
            .bearer_auth(&self.token)
            .header("tus-resumable", "1.0.0")
            .header("upload-length", length)
            .header("upload-metadata", METADATA)
            .send()
            .await?;
        if created.status() != 201 {
            let status = created.status();
            bail!(
                "POST /files/tus answered {status}: {}",
                created.text().await?
            );
        }
        let create = started.elapsed();
        let location = created
            .headers()
            .get("location")
            .context("POST /files/tus answered no Location")?
            .to_str()?;
        // Absolute or not, the Location is resolved as a client resolves it.
        let url = reqwest::Url::parse(&self.base)?.join(location)?;
        let (mut patches, mut after_body) = (vec![], vec![]);
        let mut file_id = None;
        let mut offset = 0;
        while offset < length {
            let len = (CHUNK_MIB * MIB).min(length - offset);
            let last_byte = Arc::new(Mutex::new(None));
            let body = self.chunk_body(offset, len, last_byte.clone());
            let started = Instant::now();
            let answer = self
                .http
                .patch(url.clone())
                .bearer_auth(&self.token)
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", offset)
                .header("content-type", "application/offset+octet-stream")
                .header("content-length", len)
                .body(body)
                .send()
                .await?;
            let answered = Instant::now();
            if answer.status() != 204 {
                let status = answer.status();
                bail!(
                    "PATCH at {offset} answered {status}: {}",
                    answer.text().await?
                );
            }
            let now_at = answer
                .headers()
                .get("upload-offset")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            ensure!(
                now_at == Some(offset + len),
                "PATCH at {offset} answered Upload-Offset {now_at:?}"
            );
            patches.push(answered - started);
            let sent = last_byte.lock().ok().and_then(|t| *t).unwrap_or(answered);
            after_body.push(answered.saturating_duration_since(sent));
            file_id = answer
                .headers()
                .get("stowage-file-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            offset += len;
        }
        let file_id = file_id.context("the last PATCH answered no Stowage-File-Id")?;
        Ok(TusUpload {
            file_id,
            create,
            patches,
            after_body,
        })
    }

    /// `len` bytes of the file from `offset`, streamed in 64 KiB slices; `last_byte` gets the
    /// moment the last slice is handed over.
    fn chunk_body(
        &self,
        offset: usize,
        len: usize,
        last_byte: Arc<Mutex<Option<Instant>>>,
    ) -> reqwest::Body {
        let block = self.block.clone();
        let slices = len.div_ceil(SLICE);
        let chunks = (0..slices).map(move |i| {
            let at = (offset + i * SLICE) % MIB;
            let size = SLICE.min(len - i * SLICE).min(MIB - at);
            if i + 1 == slices
                && let Ok(mut t) = last_byte.lock()
            {
                *t = Some(Instant::now());
            }
            Ok::<_, std::io::Error>(block.slice(at..at + size))
        });
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
    }
}

/// Milliseconds to two decimals.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

/// p50 and max of `durations`, in milliseconds.
fn spread(durations: &[Duration]) -> Value {
    let mut sorted = durations.to_vec();
    sorted.sort();
    json!({
        "p50_ms": sorted.get(sorted.len() / 2).copied().map_or(0.0, ms),
        "max_ms": sorted.last().copied().map_or(0.0, ms),
    })
}

impl Run<'_> {
    /// A tus upload in [`CHUNK_MIB`] `PATCH`es against a plain upload of the same size, taking
    /// turns at going first; then [`CONCURRENT`] tus uploads at once, with the server's memory.
    pub async fn tus(&self) -> Result<Value> {
        let bench = &self.bench;
        let mib = self.settings.large_mib();
        let bytes = mib * MIB;
        let (mut via_tus, mut via_post) = (vec![], vec![]);
        let mut cpu = [
            CpuUse::new(self.pid, self.s3_pid),
            CpuUse::new(self.pid, self.s3_pid),
        ];
        let (mut creates, mut patches, mut after_body, mut last_patch) =
            (vec![], vec![], vec![], vec![]);
        for rep in 0..self.settings.reps() * 2 - 1 {
            for tus_turn in [rep % 2 == 0, rep % 2 == 1] {
                if tus_turn {
                    let upload = bench.upload_tus(mib);
                    let up = step(&mut cpu[0], &mut via_tus, bytes, upload).await?;
                    creates.push(up.create);
                    last_patch.extend(up.patches.last().copied());
                    let middle = up.patches.len().saturating_sub(1);
                    patches.extend_from_slice(&up.patches[..middle]);
                    after_body.extend_from_slice(&up.after_body[..middle]);
                    bench.delete(&up.file_id).await?;
                } else {
                    let upload = bench.upload("plain.bin", mib);
                    let id = step(&mut cpu[1], &mut via_post, bytes, upload).await?;
                    bench.delete(&id).await?;
                }
            }
        }
        let (tus, post) = (median(via_tus.clone()), median(via_post.clone()));
        let each_mib = if self.settings.quick { 16 } else { 64 };
        let idle = rss_mib(self.pid, "VmRSS:");
        let uploads = try_join_all((0..CONCURRENT).map(|_| bench.upload_tus(each_mib)));
        let (ups, rate, peak) = self.sampled(CONCURRENT * each_mib * MIB, uploads).await?;
        try_join_all(ups.iter().map(|up| bench.delete(&up.file_id))).await?;
        let peak = peak as f64 / 1024.0;
        Ok(json!({
            "mib": mib, "chunk_mib": CHUNK_MIB,
            "tus_mib_s": tus, "post_mib_s": post, "ratio": ratio(tus, post),
            "tus_runs_mib_s": via_tus, "post_runs_mib_s": via_post,
            "create_ms": spread(&creates),
            "patch_ms": spread(&patches),
            "patch_after_body_ms": spread(&after_body),
            "last_patch_ms": spread(&last_patch),
            "cpu": {"tus": cpu[0].per_byte(), "post": cpu[1].per_byte()},
            "concurrent": {
                "uploads": CONCURRENT, "mib_each": each_mib, "aggregate_mib_s": rate,
                "rss_idle_mib": idle, "peak_rss_mib": peak, "peak_above_idle_mib": peak - idle,
            },
        }))
    }
}
