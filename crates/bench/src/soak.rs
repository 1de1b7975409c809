//! `stowage-bench soak` (`make soak`): minutes of steady mixed traffic against a release
//! Stowage on Postgres + Redis + s3s-fs, then a verdict, the exit code failing when a check
//! fails:
//! - flat: the server's RSS, open fds, connections to its database (`pg_stat_activity`) and to
//!   Redis (`CLIENT LIST`), sampled every few seconds, have the same median in the last minute
//!   as in the first, within 10 %;
//! - no error: every answer had the status, bytes and fields expected;
//! - no orphan: `stowage-api gc --dry-run --grace 0s` reports nothing, the bucket holds the
//!   blobs (and variants) of the database's rows and nothing else, and the rows are the files
//!   the client left.
//!
//! Writes `target/soak/results.json` and prints a summary.

mod load;
mod ops;
mod orphans;
mod pool;
mod requests;
mod sampling;
mod summary;

use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use crate::report;
use crate::settings::Settings;
use crate::stack::Stack;
use ops::Soaker;
use sampling::{FIGURES, Sampler, TOLERANCE_PCT, flatness};

/// The soak's environment.
pub struct SoakSettings {
    /// `SOAK_SECONDS` (600): the traffic measured, at least 60.
    pub seconds: u64,
    /// `SOAK_WARMUP_SECONDS` (30): traffic before it, which fills the files and the server's
    /// pools and is checked for errors but not sampled.
    pub warmup: u64,
    /// `SOAK_RATE` (40): operations a second.
    pub rate: f64,
    /// `SOAK_WORKERS` (4): operations at once at most.
    pub workers: usize,
    /// `SOAK_SAMPLE_SECONDS` (5): time between two samples.
    pub every: u64,
}

/// `name` from the environment, `default` when unset or empty.
fn number<T: FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().with_context(|| format!("{name}={v}")),
        _ => Ok(default),
    }
}

impl SoakSettings {
    fn from_env() -> Result<Self> {
        let soak = Self {
            seconds: number("SOAK_SECONDS", 600)?,
            warmup: number("SOAK_WARMUP_SECONDS", 30)?,
            rate: number("SOAK_RATE", 40.0)?,
            workers: number("SOAK_WORKERS", 4)?,
            every: number("SOAK_SAMPLE_SECONDS", 5)?,
        };
        ensure!(soak.seconds >= 60, "SOAK_SECONDS: at least 60");
        ensure!(
            soak.rate > 0.0 && soak.workers > 0,
            "SOAK_RATE, SOAK_WORKERS: above 0"
        );
        ensure!(
            (1..=30).contains(&soak.every),
            "SOAK_SAMPLE_SECONDS: 1 to 30, so that a minute has samples enough"
        );
        Ok(soak)
    }
}

/// Runs the soak; failure when a check fails.
pub async fn run(root: &Path, settings: &Settings) -> Result<ExitCode> {
    let soak = SoakSettings::from_env()?;
    println!(
        "soak: {} s warm-up, then {} s measured, {} operations/s on {} workers",
        soak.warmup, soak.seconds, soak.rate, soak.workers
    );
    let stack = Stack::start(settings, soak.warmup + soak.seconds + 3600).await?;
    let outcome = soak_on(&stack, settings, &soak).await;
    stack.stop().await;
    let (passed, results) = outcome?;
    summary::print(&results);
    report::write(root, "soak", &results)?;
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The traffic, the samples taken meanwhile, the checks after; whether all passed, and the
/// results.
async fn soak_on(stack: &Stack, settings: &Settings, soak: &SoakSettings) -> Result<(bool, Value)> {
    let soaker = Arc::new(Soaker::new(stack.bench.clone())?);
    let sampler = Sampler::new(stack.pid, &stack.database, &settings.redis).await?;
    let from = Instant::now() + Duration::from_secs(soak.warmup);
    let end = from + Duration::from_secs(soak.seconds);
    let seconds = soak.seconds as f64;
    let (traffic, samples) = tokio::join!(
        load::drive(soaker.clone(), soak, end),
        sampler.run(from, seconds, Duration::from_secs(soak.every)),
    );
    let (traffic, samples) = (traffic?, samples?);
    let mut figures = serde_json::Map::new();
    let mut flat = true;
    for (i, (name, _)) in FIGURES.iter().enumerate() {
        let (steady, figure) = flatness(&samples, i, seconds);
        flat &= steady;
        figures.insert((*name).to_owned(), figure);
    }
    let (ids, (lent, lost)) = {
        let pool = soaker.pool();
        (pool.ids(), pool.unsettled())
    };
    let (clean, orphans) = orphans::check(stack, settings, &ids).await?;
    let errors = traffic.errors();
    let passed = flat && errors == 0 && clean && lent == 0 && lost == 0;
    let window = |from: f64| format!("{from:.0}-{:.0} s", from + 60.0);
    Ok((
        passed,
        json!({
            "settings": {
                "seconds": soak.seconds, "warmup_seconds": soak.warmup, "rate_per_s": soak.rate,
                "workers": soak.workers, "sample_every_s": soak.every, "tolerance_pct": TOLERANCE_PCT,
                "image_bytes": soaker.image.len(),
            },
            "traffic": traffic.to_json(),
            "files_whose_fate_is_unknown": lost,
            "resources": {
                "method": format!(
                    "samples every {} s of the measured traffic; the median of those of the first minute ({}) against the median of those of the last ({}); flat when they differ by at most {TOLERANCE_PCT} % of the first",
                    soak.every, window(0.0), window(seconds - 60.0)
                ),
                "figures": figures,
            },
            "samples": samples.iter().map(|s| {
                let mut sample = serde_json::Map::new();
                sample.insert("t_s".into(), json!(s.t));
                for (i, (name, _)) in FIGURES.iter().enumerate() {
                    sample.insert((*name).to_owned(), json!(s.values[i]));
                }
                Value::Object(sample)
            }).collect::<Vec<_>>(),
            "orphans": orphans,
            "checks": {"flat": flat, "no_errors": errors == 0 && lost == 0, "no_orphans": clean},
            "passed": passed,
        }),
    ))
}
