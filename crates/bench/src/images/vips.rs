//! The yardstick for making a thumbnail: libvips's `vipsthumbnail`, run as a process on the same
//! file. It is looked for on the `PATH` and, when missing, installed once with apt-get; when
//! that fails too the comparison is left out rather than the run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// How long the one installation attempt may take.
const INSTALL_LIMIT: Duration = Duration::from_secs(300);

/// `vipsthumbnail` and the libvips version it reports.
#[derive(Clone)]
pub struct Vips {
    bin: PathBuf,
    /// `vipsthumbnail --vips-version`, as printed.
    pub version: String,
}

fn on_path() -> Option<PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("vipsthumbnail"))
        .find(|p| p.is_file())
}

/// Runs `apt-get install -y -qq libvips-tools`, killed past [`INSTALL_LIMIT`].
fn install() -> Result<()> {
    let mut apt = Command::new("apt-get")
        .args(["install", "-y", "-qq", "libvips-tools"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + INSTALL_LIMIT;
    loop {
        if let Some(status) = apt.try_wait()? {
            if !status.success() {
                bail!("apt-get install libvips-tools: {status}");
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = apt.kill();
            let _ = apt.wait();
            bail!("apt-get install libvips-tools took over {INSTALL_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Vips {
    /// `vipsthumbnail`, installed first if need be; why there is none otherwise. Blocks.
    pub fn find() -> Result<Self, String> {
        let bin = match on_path() {
            Some(bin) => bin,
            None => {
                install().map_err(|e| format!("vipsthumbnail missing; {e:#}"))?;
                on_path().ok_or("vipsthumbnail missing after installing libvips-tools")?
            }
        };
        let version = Command::new(&bin)
            .arg("--vips-version")
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .unwrap_or_default();
        Ok(Self { bin, version })
    }

    /// Times `vipsthumbnail IN --size 300x300 --crop -o OUT[Q=80]`: the same 300 × 300 centre
    /// crop in WebP at quality 80 that Stowage is asked for, start to exit. Blocks.
    pub fn thumbnail(&self, input: &Path, output: &Path) -> Result<Duration> {
        let started = Instant::now();
        let status = Command::new(&self.bin)
            .arg(input)
            .args(["--size", "300x300", "--crop", "-o"])
            .arg(format!("{}[Q=80]", output.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        let took = started.elapsed();
        if !status.success() {
            bail!("vipsthumbnail: {status}");
        }
        if !output.is_file() {
            bail!("vipsthumbnail wrote no {}", output.display());
        }
        Ok(took)
    }
}
