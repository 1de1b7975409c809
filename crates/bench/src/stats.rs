//! Timing and the figures made of it: rates, medians, percentiles, ratios.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};

use crate::client::{MIB, Received};
use crate::procstats::CpuUse;

/// The rate of `bytes` moved in `elapsed`.
pub fn mib_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / MIB as f64 / elapsed.as_secs_f64()
}

/// The middle value (the upper one of an even count); 0 for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The value at fraction `p` of `sorted` (nearest rank), in milliseconds; 0 for none.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// `a / b` to two decimals; 0 when `b` is not positive.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        (a / b * 100.0).round() / 100.0
    } else {
        0.0
    }
}

/// What `f` returns and how long it took.
pub async fn timed<F: Future<Output = Result<T>>, T>(f: F) -> Result<(T, Duration)> {
    let started = Instant::now();
    let out = f.await?;
    Ok((out, started.elapsed()))
}

/// Runs `transfer`, which moves `bytes`, as one step of `cpu`, and adds its rate to `rates`.
pub async fn step<F: Future<Output = Result<T>>, T>(
    cpu: &mut CpuUse,
    rates: &mut Vec<f64>,
    bytes: usize,
    transfer: F,
) -> Result<T> {
    cpu.begin();
    let (out, t) = timed(transfer).await?;
    rates.push(mib_per_s(bytes, t));
    cpu.end(bytes);
    Ok(out)
}

/// When a [`load`] stops.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// After this long; the rate is over this time.
    Elapsed(Duration),
    /// After this many requests in all; the rate is over the time they took.
    Requests(usize),
}

/// Runs `op` from `concurrency` workers until `until`; returns (requests/s, p50 ms, p99 ms).
pub async fn load<F, Fut>(concurrency: usize, until: Until, op: F) -> Result<(f64, f64, f64)>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let started = Instant::now();
    let deadline = match until {
        Until::Elapsed(duration) => Some(started + duration),
        Until::Requests(_) => None,
    };
    let budget = Arc::new(AtomicUsize::new(match until {
        Until::Elapsed(_) => usize::MAX,
        Until::Requests(n) => n,
    }));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, budget) = (op.clone(), budget.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                // A request is only sent once it is taken from the budget, so exactly `n` are.
                let more = || {
                    deadline.is_none_or(|d| Instant::now() < d)
                        && budget
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                n.checked_sub(1)
                            })
                            .is_ok()
                };
                while more() {
                    let started = Instant::now();
                    op().await?;
                    latencies.push(started.elapsed());
                }
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await??);
    }
    let seconds = match until {
        Until::Elapsed(duration) => duration.as_secs_f64(),
        Until::Requests(_) => started.elapsed().as_secs_f64(),
    };
    all.sort();
    Ok((
        all.len() as f64 / seconds,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
    ))
}

/// CPU cost per byte of each way through Stowage and directly, from `cpu` in the order
/// upload, download, direct upload, direct download.
pub fn cpu_table(cpu: &[CpuUse; 4]) -> Value {
    json!({
        "upload": cpu[0].per_byte(),
        "download": cpu[1].per_byte(),
        "direct_upload": cpu[2].per_byte(),
        "direct_download": cpu[3].per_byte(),
    })
}

/// Repeated downloads of one way: their rates and the stalls seen.
#[derive(Default)]
pub struct Downloads {
    mib_s: Vec<f64>,
    stalls: usize,
}

impl Downloads {
    /// Counts one download.
    pub fn add(&mut self, got: &Received) {
        self.mib_s.push(mib_per_s(got.bytes, got.total));
        self.stalls += got.stalls;
    }

    /// The median rate.
    pub fn median(&self) -> f64 {
        median(self.mib_s.clone())
    }

    /// The count, the slowest and fastest rates, and the stalls.
    pub fn summary(&self) -> Value {
        let (lo, hi) = self
            .mib_s
            .iter()
            .fold((f64::MAX, 0.0_f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        json!({
            "runs": self.mib_s.len(), "min_mib_s": lo, "max_mib_s": hi,
            "stalls_of_30ms_or_more": self.stalls,
        })
    }
}
