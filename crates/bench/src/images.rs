//! The image variant phase, on copies of a 12 MP camera-like JPEG: the first thumbnail of a file
//! beside `vipsthumbnail` making the same one, a stored variant's request rate beside a plain
//! file of the same size, and the server's memory while 16 variants are made at once.

mod photo;
mod vips;

use std::time::Duration;

use anyhow::{Result, bail};
use bytes::Bytes;
use futures_util::future::try_join_all;
use serde_json::{Value, json};

use crate::client::Bench;
use crate::phases::{Run, SMALL_CONNECTIONS};
use crate::procstats::{RssSampler, rss_mib};
use crate::stats::{Until, load, median, ratio, timed};
use vips::Vips;

/// The thumbnail both ways make: a 300 × 300 centre crop in WebP, at the default quality 80.
const THUMBNAIL: &str = "w=300&h=300&format=webp";
/// The variants asked for at once of each of [`AT_ONCE_SOURCES`] sources.
const AT_ONCE: [&str; 4] = [
    "w=300&format=webp",
    "w=150&format=jpeg",
    "w=800&format=png",
    "variant=large",
];
/// Sources whose variants are asked for at once.
const AT_ONCE_SOURCES: usize = 4;
/// Goal: a first thumbnail within this multiple of `vipsthumbnail`'s time.
pub const THUMBNAIL_GOAL: f64 = 1.5;
/// Goal: a stored variant served at least at this fraction of a plain file's request rate.
pub const CACHED_GOAL: f64 = 0.9;
/// Goal: the server's peak memory while the variants are made at once, above idle, in MiB.
pub const AT_ONCE_GOAL_MIB: f64 = 64.0;
/// `503`s one request takes before the run gives up on it.
const MAX_BUSY: usize = 60;

impl Bench {
    /// A variant's first request, sent again after the `Retry-After` of every `503` (the
    /// renderer's queue was full, as a client is told to); the body and the `503`s taken.
    async fn first_variant(&self, id: &str, query: &str) -> Result<(Bytes, usize)> {
        let url = format!("{}/files/{id}?{query}", self.base);
        for busy in 0..MAX_BUSY {
            let response = self.http.get(&url).bearer_auth(&self.token).send().await?;
            let status = response.status();
            if status == 503 {
                let wait = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                continue;
            }
            if !status.is_success() {
                let why = response.text().await.unwrap_or_default();
                bail!("GET ?{query} answered {status}: {why}");
            }
            return Ok((response.bytes().await?, busy));
        }
        bail!("GET ?{query} answered 503 {MAX_BUSY} times")
    }
}

/// A WebP's width and height, from its `VP8 `, `VP8L` or `VP8X` header.
fn webp_size(b: &[u8]) -> Option<(u32, u32)> {
    if b.len() < 30 || &b[..4] != b"RIFF" || &b[8..12] != b"WEBP" {
        return None;
    }
    let le =
        |r: std::ops::Range<usize>| b[r].iter().rev().fold(0u32, |n, &x| n << 8 | u32::from(x));
    match &b[12..16] {
        b"VP8 " => Some((le(26..28) & 0x3fff, le(28..30) & 0x3fff)),
        b"VP8L" => {
            let bits = le(21..25);
            Some(((bits & 0x3fff) + 1, (bits >> 14 & 0x3fff) + 1))
        }
        b"VP8X" => Some((le(24..27) + 1, le(27..30) + 1)),
        _ => None,
    }
}

/// `(w, h)` as `WxH`, or `-` for an answer that is no WebP.
fn size_label(size: Option<(u32, u32)>) -> String {
    size.map_or_else(|| "-".to_owned(), |(w, h)| format!("{w}x{h}"))
}

impl Run<'_> {
    /// The image variant phase; every file it uploads is deleted at its end.
    pub async fn images(&self) -> Result<Value> {
        let bench = &self.bench;
        let thumbnails = if self.settings.quick { 3 } else { 5 };
        let photo = tokio::task::spawn_blocking(|| photo::photo(1)).await??;
        let copies: Vec<Vec<u8>> = (0..thumbnails + AT_ONCE_SOURCES)
            .map(|n| photo::copy(&photo, n as u64))
            .collect();
        let mut ids = Vec::with_capacity(copies.len());
        for (n, copy) in copies.iter().enumerate() {
            ids.push(bench.upload_bytes(&format!("photo-{n}.jpg"), copy).await?);
        }
        let work = std::env::temp_dir().join(format!(
            "stowage-bench-images-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&work)?;
        let thumbnail = self
            .thumbnails(&ids[..thumbnails], &copies[..thumbnails], &work)
            .await;
        let _ = std::fs::remove_dir_all(&work);
        let thumbnail = thumbnail?;
        let cached = self.cached(&ids[0]).await?;
        let at_once = self.at_once(&ids[thumbnails..]).await?;
        try_join_all(ids.iter().map(|id| bench.delete(id))).await?;
        Ok(json!({
            "source": {
                "width": photo::WIDTH, "height": photo::HEIGHT, "quality": photo::QUALITY,
                "exif_orientation": photo::ORIENTATION, "bytes": copies[0].len(),
            },
            "thumbnail_vs_vipsthumbnail": thumbnail,
            "cached_variant_vs_plain_file": cached,
            "variants_at_once": at_once,
        }))
    }

    /// Row 1: the first `?w=300&h=300&format=webp` of each of the files `ids` (whose bytes are
    /// `copies`), each followed by `vipsthumbnail` making the same thumbnail of the same bytes
    /// written under `work`.
    async fn thumbnails(
        &self,
        ids: &[String],
        copies: &[Vec<u8>],
        work: &std::path::Path,
    ) -> Result<Value> {
        let vips = tokio::task::spawn_blocking(Vips::find).await?;
        let (mut stowage_ms, mut vips_ms, mut busy) = (vec![], vec![], 0);
        let (mut stowage_size, mut vips_size) = (None, None);
        let mut vips_failure = vips.as_ref().err().cloned();
        for (n, (id, copy)) in ids.iter().zip(copies).enumerate() {
            let ((body, refused), t) = timed(self.bench.first_variant(id, THUMBNAIL)).await?;
            stowage_ms.push(t.as_secs_f64() * 1000.0);
            stowage_size = webp_size(&body);
            busy += refused;
            let (Ok(vips), None) = (&vips, &vips_failure) else {
                continue;
            };
            let (input, output) = (
                work.join(format!("{n}.jpg")),
                work.join(format!("{n}.webp")),
            );
            std::fs::write(&input, copy)?;
            let made = tokio::task::spawn_blocking({
                let (vips_bin, input, output) = (vips.clone(), input.clone(), output.clone());
                move || vips_bin.thumbnail(&input, &output)
            })
            .await?;
            match made {
                Ok(t) => {
                    vips_ms.push(t.as_secs_f64() * 1000.0);
                    vips_size = webp_size(&std::fs::read(&output)?);
                }
                Err(e) => vips_failure = Some(format!("{e:#}")),
            }
        }
        let stowage = median(stowage_ms.clone());
        let vips_median = vips_failure.is_none().then(|| median(vips_ms.clone()));
        let thumb_ratio = vips_median.map(|v| ratio(stowage, v));
        Ok(json!({
            "files": ids.len(), "query": THUMBNAIL,
            "stowage_first_get_ms": stowage, "stowage_runs_ms": stowage_ms,
            "stowage_output": size_label(stowage_size), "stowage_busy_answers": busy,
            "vips_ms": vips_median, "vips_runs_ms": vips_ms, "vips_output": size_label(vips_size),
            "vips_version": vips.as_ref().map(|v| v.version.clone()).ok(),
            "vips_missing": vips_failure,
            "ratio": thumb_ratio, "goal_max_ratio": THUMBNAIL_GOAL,
            "meets_goal": thumb_ratio.map(|r| r <= THUMBNAIL_GOAL),
        }))
    }

    /// Row 2: the request rate of the stored variant [`THUMBNAIL`] of `id` (made by its first
    /// request in row 1) beside a plain file of the same size, on the small downloads'
    /// connections, the two taking turns over three rounds.
    async fn cached(&self, id: &str) -> Result<Value> {
        let bench = &self.bench;
        let size = bench.download_with(id, THUMBNAIL, None).await?.bytes;
        let same_size: Vec<u8> = bench.block.iter().cycle().take(size).copied().collect();
        let plain = bench.upload_bytes("plain.bin", &same_size).await?;
        let requests = if self.settings.quick { 2_000 } else { 5_000 };
        let rate = |query: &'static str, id: String, until: Until| {
            let b = bench.clone();
            load(SMALL_CONNECTIONS, until, move || {
                let (b, id) = (b.clone(), id.clone());
                async move {
                    let got = b.download_with(&id, query, None).await?;
                    if got.bytes != size {
                        bail!("{} bytes where {size} were expected", got.bytes);
                    }
                    Ok(())
                }
            })
        };
        // Both are read once per connection first, so that neither pays for connecting.
        let warm = Until::Requests(4 * SMALL_CONNECTIONS);
        rate(THUMBNAIL, id.to_owned(), warm).await?;
        rate("", plain.clone(), warm).await?;
        let (mut variant, mut file) = (vec![], vec![]);
        for round in 0..3 {
            for variant_turn in [round % 2 == 0, round % 2 == 1] {
                if variant_turn {
                    variant.push(rate(THUMBNAIL, id.to_owned(), Until::Requests(requests)).await?);
                } else {
                    file.push(rate("", plain.clone(), Until::Requests(requests)).await?);
                }
            }
        }
        bench.delete(&plain).await?;
        let figures = |runs: &[(f64, f64, f64)]| {
            let rps = median(runs.iter().map(|r| r.0).collect());
            json!({
                "requests_per_s": rps,
                "p50_ms": median(runs.iter().map(|r| r.1).collect()),
                "p99_ms": median(runs.iter().map(|r| r.2).collect()),
                "runs_requests_per_s": runs.iter().map(|r| r.0).collect::<Vec<_>>(),
            })
        };
        let (variant, file) = (figures(&variant), figures(&file));
        let r = ratio(
            variant["requests_per_s"].as_f64().unwrap_or(0.0),
            file["requests_per_s"].as_f64().unwrap_or(0.0),
        );
        Ok(json!({
            "bytes": size, "requests_per_round": requests, "rounds": 3,
            "connections": SMALL_CONNECTIONS,
            "variant": variant, "plain_file": file,
            "ratio_requests_per_s": r, "goal_min_ratio": CACHED_GOAL, "meets_goal": r >= CACHED_GOAL,
        }))
    }

    /// Row 3: the server's memory while every one of [`AT_ONCE`] of each file of `ids` is asked
    /// for at once, none of them made before.
    async fn at_once(&self, ids: &[String]) -> Result<Value> {
        // Idle as a server between bursts is: freed memory goes back to the OS once a second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let idle = rss_mib(self.pid, "VmRSS:");
        let gets = ids
            .iter()
            .flat_map(|id| AT_ONCE.map(|query| self.bench.first_variant(id, query)));
        let sampler = RssSampler::start(self.pid);
        let (got, t) = timed(try_join_all(gets)).await?;
        let peak = sampler.finish().await as f64 / 1024.0;
        let bytes: usize = got.iter().map(|(body, _)| body.len()).sum();
        let busy: usize = got.iter().map(|(_, busy)| busy).sum();
        let above = peak - idle;
        Ok(json!({
            "requests": got.len(), "sources": ids.len(), "queries": AT_ONCE,
            "renderer_slots": std::thread::available_parallelism().map_or(1, usize::from),
            "seconds": t.as_secs_f64(), "variant_bytes": bytes, "busy_answers": busy,
            "rss_idle_mib": idle, "peak_rss_mib": peak, "peak_above_idle_mib": above,
            "goal_max_above_idle_mib": AT_ONCE_GOAL_MIB, "meets_goal": above <= AT_ONCE_GOAL_MIB,
        }))
    }
}
