//! The measured phases, each Stowage beside direct S3 on the same server.

use std::future::Future;
use std::sync::Arc;

use anyhow::{Result, ensure};
use futures_util::future::try_join_all;
use serde_json::{Value, json};

use crate::client::{Bench, DIRECT_BUCKET, MIB};
use crate::procstats::{CpuUse, RssSampler, rss_mib};
use crate::settings::Settings;
use crate::stats::{Downloads, Until, cpu_table, load, median, mib_per_s, ratio, step, timed};

/// Connections the small downloads are made on, and any other request-rate measurement.
pub const SMALL_CONNECTIONS: usize = 32;

/// What the phases share: the clients, the sizes and the processes measured.
pub struct Run<'a> {
    pub settings: &'a Settings,
    pub bench: Arc<Bench>,
    /// The Stowage server's pid.
    pub pid: u32,
    /// The S3 server's pid.
    pub s3_pid: u32,
}

impl Run<'_> {
    fn cpu(&self) -> [CpuUse; 4] {
        std::array::from_fn(|_| CpuUse::new(self.pid, self.s3_pid))
    }

    /// Phase 1: one large file, each way; the result and the id of the file kept in Stowage.
    pub async fn large(&self) -> Result<(Value, String)> {
        let (bench, reps, large_mib) =
            (&self.bench, self.settings.reps(), self.settings.large_mib());
        let bytes = large_mib * MIB;
        let mut large_id = String::new();
        let (mut up_s, mut up_d, mut up_dm) = (vec![], vec![], vec![]);
        let mut cpu = self.cpu();
        // Each way takes turns at going first. Only the first file of each way is kept (for the
        // downloads and the range reads): the others are deleted at once, before the kernel
        // writes them back to disk while later transfers run.
        let up_reps = reps * 2 - 1;
        for rep in 0..up_reps {
            for stowage_turn in [rep % 2 == 0, rep % 2 == 1] {
                if stowage_turn {
                    let upload = bench.upload("large.bin", large_mib);
                    let id = step(&mut cpu[0], &mut up_s, bytes, upload).await?;
                    if large_id.is_empty() {
                        large_id = id;
                    } else {
                        bench.delete(&id).await?;
                    }
                } else {
                    let key = format!("large-{rep}");
                    step(
                        &mut cpu[2],
                        &mut up_d,
                        bytes,
                        bench.put_direct(&key, large_mib),
                    )
                    .await?;
                    if rep > 0 {
                        bench.delete_direct(&key).await?;
                    }
                }
            }
            let key = format!("large-mp-{rep}");
            let ((), t) = timed(bench.put_direct_multipart(&key, large_mib)).await?;
            up_dm.push(mib_per_s(bytes, t));
            bench.delete_direct(&key).await?;
        }
        let (mut down_s, mut down_d) = (Downloads::default(), Downloads::default());
        for rep in 0..reps * 2 + 1 {
            for stowage_turn in [rep % 2 == 0, rep % 2 == 1] {
                let (way, got) = if stowage_turn {
                    cpu[1].begin();
                    let got = bench.download(&large_id, None).await?;
                    cpu[1].end(got.bytes);
                    (&mut down_s, got)
                } else {
                    cpu[3].begin();
                    let got = bench.get_direct("large-0", None).await?;
                    cpu[3].end(got.bytes);
                    (&mut down_d, got)
                };
                ensure!(got.bytes == bytes, "short download");
                way.add(&got);
            }
        }
        let (us, ud, udm) = (median(up_s), median(up_d), median(up_dm));
        let (ds, dd) = (down_s.median(), down_d.median());
        let result = json!({
            "mib": large_mib,
            "upload": {"stowage_mib_s": us, "direct_mib_s": ud, "ratio": ratio(us, ud)},
            "upload_vs_direct_multipart": {"stowage_mib_s": us, "direct_mib_s": udm, "ratio": ratio(us, udm)},
            "download": {
                "stowage_mib_s": ds, "direct_mib_s": dd, "ratio": ratio(ds, dd),
                "stowage": down_s.summary(), "direct": down_d.summary(),
            },
            "cpu": cpu_table(&cpu),
        });
        Ok((result, large_id))
    }

    /// Phase 2: 16 concurrent 4 MiB files, each way; a round lasts a fraction of a second, so it
    /// gets more repetitions than the large file.
    pub async fn concurrent(&self) -> Result<Value> {
        let bench = &self.bench;
        let bytes = 16 * 4 * MIB;
        let (mut up_s, mut down_s, mut up_d, mut down_d) = (vec![], vec![], vec![], vec![]);
        let mut cpu = self.cpu();
        let rounds = self.settings.reps() * 2 - 1;
        for rep in 0..rounds {
            let uploads = try_join_all((0..16).map(|_| bench.upload("c.bin", 4)));
            let ids = step(&mut cpu[0], &mut up_s, bytes, uploads).await?;
            let downloads = try_join_all(ids.iter().map(|id| bench.download(id, None)));
            step(&mut cpu[1], &mut down_s, bytes, downloads).await?;
            let keys: Vec<String> = (0..16).map(|i| format!("c-{rep}-{i}")).collect();
            let puts = try_join_all(keys.iter().map(|k| bench.put_direct(k, 4)));
            step(&mut cpu[2], &mut up_d, bytes, puts).await?;
            let gets = try_join_all(keys.iter().map(|k| bench.get_direct(k, None)));
            step(&mut cpu[3], &mut down_d, bytes, gets).await?;
            try_join_all(ids.iter().map(|id| bench.delete(id))).await?;
            try_join_all(keys.iter().map(|k| bench.delete_direct(k))).await?;
        }
        let (us, ud, ds, dd) = (median(up_s), median(up_d), median(down_s), median(down_d));
        Ok(json!({
            "upload": {"stowage_mib_s": us, "direct_mib_s": ud, "ratio": ratio(us, ud)},
            "download": {"stowage_mib_s": ds, "direct_mib_s": dd, "ratio": ratio(ds, dd)},
            "cpu": cpu_table(&cpu),
        }))
    }

    /// Phase 3: authenticated 4 KiB downloads on [`SMALL_CONNECTIONS`] connections.
    pub async fn small(&self) -> Result<Value> {
        let bench = &self.bench;
        let small = bench.upload_small().await?;
        bench
            .s3
            .put_object()
            .bucket(DIRECT_BUCKET)
            .key("small")
            .body(bench.block.slice(0..4096).into())
            .send()
            .await?;
        let load_time = Until::Elapsed(self.settings.load_time());
        let b = bench.clone();
        let (rps_s, p50_s, p99_s) = load(SMALL_CONNECTIONS, load_time, move || {
            let (b, id) = (b.clone(), small.clone());
            async move { b.download(&id, None).await.map(|_| ()) }
        })
        .await?;
        let b = bench.clone();
        let (rps_d, p50_d, p99_d) = load(SMALL_CONNECTIONS, load_time, move || {
            let b = b.clone();
            async move { b.get_direct("small", None).await.map(|_| ()) }
        })
        .await?;
        Ok(json!({
            "stowage": {"requests_per_s": rps_s, "p50_ms": p50_s, "p99_ms": p99_s},
            "direct": {"requests_per_s": rps_d, "p50_ms": p50_d, "p99_ms": p99_d},
            "ratio_requests_per_s": ratio(rps_s, rps_d),
        }))
    }

    /// Phase 4: a 1 MiB range from the middle of the large file, `large_id` in Stowage.
    pub async fn range(&self, large_id: &str) -> Result<Value> {
        let bench = &self.bench;
        let mid = self.settings.large_mib() * MIB / 2;
        let range = Some((mid, mid + MIB - 1));
        let (mut ttfb_s, mut total_s, mut ttfb_d, mut total_d) = (vec![], vec![], vec![], vec![]);
        for _ in 0..if self.settings.quick { 5 } else { 21 } {
            let got = bench.download(large_id, range).await?;
            ensure!(got.bytes == MIB, "range length {}", got.bytes);
            ttfb_s.push(got.first.as_secs_f64() * 1000.0);
            total_s.push(got.total.as_secs_f64() * 1000.0);
            let got = bench.get_direct("large-0", range).await?;
            ttfb_d.push(got.first.as_secs_f64() * 1000.0);
            total_d.push(got.total.as_secs_f64() * 1000.0);
        }
        Ok(json!({
            "stowage": {"ttfb_p50_ms": median(ttfb_s), "total_p50_ms": median(total_s)},
            "direct": {"ttfb_p50_ms": median(ttfb_d), "total_p50_ms": median(total_d)},
        }))
    }

    /// Phase 5: memory while 4 huge files go up at once, and then down at once.
    pub async fn huge(&self) -> Result<Value> {
        let bench = &self.bench;
        let huge_mib = self.settings.huge_mib();
        let bytes = 4 * huge_mib * MIB;
        let before = rss_mib(self.pid, "VmRSS:");
        let uploads = try_join_all((0..4).map(|_| bench.upload("huge.bin", huge_mib)));
        let (ids, up, peak_up) = self.sampled(bytes, uploads).await?;
        let downloads = try_join_all(ids.iter().map(|id| bench.download(id, None)));
        let (_, down, peak_down) = self.sampled(bytes, downloads).await?;
        Ok(json!({
            "mib_each": huge_mib, "upload_mib_s": up, "download_mib_s": down,
            "rss_before_mib": before,
            "peak_rss_upload_mib": peak_up as f64 / 1024.0,
            "peak_rss_download_mib": peak_down as f64 / 1024.0,
            "peak_rss_mib": peak_up.max(peak_down) as f64 / 1024.0,
        }))
    }

    /// Runs `transfer`, which moves `bytes`, while sampling the server's memory; what it
    /// returns, its rate and the server's peak resident memory in KiB.
    pub(crate) async fn sampled<F: Future<Output = Result<T>>, T>(
        &self,
        bytes: usize,
        transfer: F,
    ) -> Result<(T, f64, u64)> {
        let sampler = RssSampler::start(self.pid);
        let (out, t) = timed(transfer).await?;
        let rate = mib_per_s(bytes, t);
        Ok((out, rate, sampler.finish().await))
    }
}
