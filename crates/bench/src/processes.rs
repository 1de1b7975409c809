//! The servers under measurement: s3s-fs and a release `stowage-api`, on free local ports.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::client::MIB;

/// The access key s3s-fs accepts, and Stowage and the direct client use.
pub const S3_ACCESS_KEY: &str = "BENCHAK";
/// The secret key that goes with [`S3_ACCESS_KEY`].
pub const S3_SECRET_KEY: &str = "BENCHSECRETKEY";
/// The bucket Stowage keeps its blobs in.
pub const STOWAGE_BUCKET: &str = "bench-stowage";

/// Children killed when the run ends, however it ends.
pub struct Guard(Mutex<Vec<Child>>);

impl Guard {
    /// No children yet.
    pub fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    /// Keeps `child` until the guard drops; its process id.
    fn keep(&self, child: Child) -> u32 {
        let pid = child.id();
        if let Ok(mut children) = self.0.lock() {
            children.push(child);
        }
        pid
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(children) = self.0.get_mut() {
            for child in children {
                let _ = child.kill();
                let _ = child.wait();
            }
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
pub fn start_s3s_fs(children: &Guard, bin: &Path, port: u16, dir: PathBuf) -> Result<u32> {
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

impl Stowage<'_> {
    /// `stowage-api` with only the environment this sets, for `serve` or any other command.
    pub fn command(&self) -> Command {
        let mut command = Command::new(self.bin);
        command
            .env_clear()
            .env("BIND_ADDR", format!("127.0.0.1:{}", self.port))
            .env("DATA_DIR", &self.data_dir)
            .env("AUTH_SECRET_KEY", self.auth_secret)
            .env("DATABASE_URL", &self.database_url)
            .env("DATABASE_MAX_CONNECTIONS", "32")
            .env("REDIS_URL", self.redis_url)
            .env("REDIS_KEY_PREFIX", self.redis_prefix)
            .env("STORAGE_BACKEND", self.backend)
            .env("S3_ENDPOINT", self.s3_endpoint)
            .env("S3_ACCESS_KEY", S3_ACCESS_KEY)
            .env("S3_SECRET_KEY", S3_SECRET_KEY)
            .env("S3_BUCKET", STOWAGE_BUCKET)
            .env("MAX_UPLOAD_BYTES", (2 * 1024 * MIB).to_string())
            .env("RATE_LIMIT_ENABLED", "false")
            .env("LOG_LEVEL", "warn")
            .env("LOG_FORMAT", "json");
        command
    }
}

/// Starts `stowage-api serve` and waits until it listens; its pid.
pub fn start_stowage(children: &Guard, stowage: Stowage<'_>) -> Result<u32> {
    let server = stowage
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", stowage.bin.display()))?;
    let pid = children.keep(server);
    wait_for_port(stowage.port)?;
    Ok(pid)
}
