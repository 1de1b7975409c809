//! The servers under measurement: s3s-fs and a release `stowage-api`, on free local ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::client::MIB;

/// The access key s3s-fs accepts, and Stowage and the direct client use.
pub const S3_ACCESS_KEY: &str = "BENCHAK";
/// The secret key that goes with [`S3_ACCESS_KEY`].
pub const S3_SECRET_KEY: &str = "BENCHSECRETKEY";

/// Children killed when the run ends, however it ends.
pub struct Guard(Vec<Child>);

impl Guard {
    /// No children yet.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Keeps `child` until the guard drops; its process id.
    fn keep(&mut self, child: Child) -> u32 {
        let pid = child.id();
        self.0.push(child);
        pid
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port nothing listens on now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_for_port(port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("nothing listens on {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Starts s3s-fs on `port`, serving the folder `dir`, and waits until it listens; its pid.
pub fn start_s3s_fs(children: &mut Guard, bin: &Path, port: u16, dir: PathBuf) -> Result<u32> {
    let pid = children.keep(
        Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting s3s-fs")?,
    );
    wait_for_port(port)?;
    Ok(pid)
}

/// Where the Stowage under measurement keeps its state and finds its backends.
pub struct Stowage<'a> {
    pub bin: &'a Path,
    pub port: u16,
    pub data_dir: PathBuf,
    pub auth_secret: &'a str,
    pub database_url: String,
    pub redis_url: &'a str,
    pub redis_prefix: &'a str,
    pub s3_endpoint: &'a str,
    /// `STORAGE_BACKEND`: `s3` (on `s3_endpoint`) or `fs` (under `data_dir`).
    pub backend: &'a str,
}

/// Starts `stowage-api` with only the environment `stowage` sets and waits until it listens;
/// its pid.
pub fn start_stowage(children: &mut Guard, stowage: Stowage<'_>) -> Result<u32> {
    let server = Command::new(stowage.bin)
        .env_clear()
        .env("BIND_ADDR", format!("127.0.0.1:{}", stowage.port))
        .env("DATA_DIR", stowage.data_dir)
        .env("AUTH_SECRET_KEY", stowage.auth_secret)
        .env("DATABASE_URL", stowage.database_url)
        .env("DATABASE_MAX_CONNECTIONS", "32")
        .env("REDIS_URL", stowage.redis_url)
        .env("REDIS_KEY_PREFIX", stowage.redis_prefix)
        .env("STORAGE_BACKEND", stowage.backend)
        .env("S3_ENDPOINT", stowage.s3_endpoint)
        .env("S3_ACCESS_KEY", S3_ACCESS_KEY)
        .env("S3_SECRET_KEY", S3_SECRET_KEY)
        .env("S3_BUCKET", "bench-stowage")
        .env("MAX_UPLOAD_BYTES", (2 * 1024 * MIB).to_string())
        .env("RATE_LIMIT_ENABLED", "false")
        .env("LOG_LEVEL", "warn")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", stowage.bin.display()))?;
    let pid = children.keep(server);
    wait_for_port(stowage.port)?;
    Ok(pid)
}
