//! What a run measures and with what, from the environment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow};

/// The phases in the order they run.
pub const PHASES: [&str; 10] = [
    "large",
    "concurrent",
    "small",
    "range",
    "httpx",
    "huge",
    "listing",
    "direct",
    "tus",
    "images",
];

/// The run's environment: `BENCH_QUICK`, `BENCH_PHASES`, the fixtures' URLs and the binaries.
pub struct Settings {
    pub quick: bool,
    /// `BENCH_PHASES`: a comma-separated subset of [`PHASES`].
    pub phases: Option<Vec<String>>,
    pub postgres: String,
    pub redis: String,
    pub stowage_bin: PathBuf,
    pub s3s_bin: PathBuf,
}

impl Settings {
    /// Reads the environment; `root` is the workspace, where the release binary is looked for.
    pub fn from_env(root: &Path) -> Result<Self> {
        Ok(Self {
            quick: std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1"),
            phases: std::env::var("BENCH_PHASES")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| phases_from(&v))
                .transpose()?,
            postgres: env_or(
                "STOWAGE_BENCH_DATABASE_URL",
                "postgres://postgres:postgres@127.0.0.1:5432",
            ),
            redis: env_or("STOWAGE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10"),
            stowage_bin: std::env::var("STOWAGE_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|_| root.join("target/release/stowage-api")),
            s3s_bin: find_s3s_fs()?,
        })
    }

    /// Whether `phase` runs; the range phase reads the large phase's file, so it brings it along.
    pub fn runs(&self, phase: &str) -> bool {
        self.phases.as_ref().is_none_or(|phases| {
            phases
                .iter()
                .any(|p| p == phase || (phase == "large" && p == "range"))
        })
    }

    /// How many times the large and concurrent transfers are repeated, before doubling.
    pub fn reps(&self) -> usize {
        if self.quick { 1 } else { 3 }
    }

    /// The size of the large phase's file.
    pub fn large_mib(&self) -> usize {
        if self.quick { 32 } else { 256 }
    }

    /// The size of each of the huge phase's four files.
    pub fn huge_mib(&self) -> usize {
        if self.quick { 64 } else { 1024 }
    }

    /// How long the small-download load lasts, each way.
    pub fn load_time(&self) -> Duration {
        Duration::from_secs(if self.quick { 3 } else { 15 })
    }
}

fn phases_from(value: &str) -> Result<Vec<String>> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            if PHASES.contains(&p) {
                Ok(p.to_owned())
            } else {
                Err(anyhow!(
                    "BENCH_PHASES: unknown phase {p:?}; phases are {PHASES:?}"
                ))
            }
        })
        .collect()
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn find_s3s_fs() -> Result<PathBuf> {
    if let Ok(bin) = std::env::var("S3S_FS_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let mut candidates: Vec<PathBuf> = env_or("PATH", "")
        .split(':')
        .map(|d| Path::new(d).join("s3s-fs"))
        .collect();
    candidates.push(Path::new(&env_or("HOME", "/root")).join(".cargo/bin/s3s-fs"));
    candidates
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| anyhow!("s3s-fs not found: make s3s-fs installs it"))
}
