//! The httpx phase: the same transfers made by a Python `httpx` client, the kind of client a
//! Django backend is, through Stowage and directly on S3 presigned URLs, in the same run.
//!
//! `httpx_client.py` (next to this crate's manifest) does the measuring; this side checks that
//! Python has httpx, presigns the direct requests, hands the script its job on stdin and reads
//! its results on stdout. The token and the URLs travel on stdin only, never in arguments, and
//! neither is in the results.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use serde_json::{Value, json};

use crate::client::DIRECT_BUCKET;
use crate::phases::Run;

/// Threads (each with its connection) the script makes its 4 KiB GETs on.
const CONNECTIONS: usize = 4;
/// Files uploaded at once in the concurrent step; each is 1 MiB.
const CONCURRENT_FILES: usize = 16;
/// How long the presigned URLs work: longer than any run.
const URL_LIFETIME: Duration = Duration::from_secs(6 * 3600);

/// The script, beside the crate's manifest.
fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("httpx_client.py")
}

/// Fails, saying how to fix it, unless `python3` can import httpx.
fn check_httpx() -> Result<()> {
    let found = Command::new("python3")
        .args(["-c", "import httpx"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        bail!(
            "the httpx phase needs python3 with httpx: pip install httpx (`make bench` installs it)"
        );
    }
    Ok(())
}

/// Runs the script on `job`; what it printed, as JSON.
fn run_script(job: &Value) -> Result<Value> {
    let mut child = Command::new("python3")
        .arg(script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting python3")?;
    let mut stdin = child.stdin.take().context("the script's stdin")?;
    stdin.write_all(&serde_json::to_vec(job)?)?;
    // Closed, so that the script sees the end of its job.
    drop(stdin);
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "the httpx client failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    serde_json::from_slice(&output.stdout).context("the httpx client's results")
}

/// A presigned request as the script takes it: its URL and the headers it must send.
fn ticket(request: &PresignedRequest) -> Value {
    let headers: serde_json::Map<String, Value> = request
        .headers()
        .map(|(name, value)| (name.to_owned(), Value::from(value)))
        .collect();
    json!({"url": request.uri(), "headers": headers})
}

impl Run<'_> {
    /// Presigned `PUT`, `GET` or `DELETE` of `key` in the direct bucket.
    async fn presign(&self, method: &str, key: &str) -> Result<Value> {
        let s3 = &self.bench.s3;
        let config = || PresigningConfig::expires_in(URL_LIFETIME);
        let request = match method {
            "PUT" => {
                s3.put_object()
                    .bucket(DIRECT_BUCKET)
                    .key(key)
                    .presigned(config()?)
                    .await?
            }
            "GET" => {
                s3.get_object()
                    .bucket(DIRECT_BUCKET)
                    .key(key)
                    .presigned(config()?)
                    .await?
            }
            _ => {
                s3.delete_object()
                    .bucket(DIRECT_BUCKET)
                    .key(key)
                    .presigned(config()?)
                    .await?
            }
        };
        Ok(ticket(&request))
    }

    /// Presigned `PUT` and `DELETE` of `key`.
    async fn put_and_delete(&self, key: &str) -> Result<Value> {
        Ok(json!({
            "put": self.presign("PUT", key).await?,
            "delete": self.presign("DELETE", key).await?,
        }))
    }

    /// What the script is to do: the Stowage it talks to, the direct URLs (a key per upload,
    /// so that each can be deleted as soon as it is measured), the sizes and the counts, those
    /// of the Rust phases.
    async fn httpx_job(&self) -> Result<Value> {
        let settings = self.settings;
        let reps = settings.reps();
        let up_reps = reps * 2 - 1;
        let mut large = Vec::with_capacity(up_reps);
        for rep in 0..up_reps {
            large.push(self.put_and_delete(&format!("httpx-large-{rep}")).await?);
        }
        let mut concurrent = Vec::with_capacity(up_reps);
        for round in 0..up_reps {
            let mut keys = Vec::with_capacity(CONCURRENT_FILES);
            for i in 0..CONCURRENT_FILES {
                keys.push(self.put_and_delete(&format!("httpx-c-{round}-{i}")).await?);
            }
            concurrent.push(keys);
        }
        let mut small = self.put_and_delete("httpx-small").await?;
        small["get"] = self.presign("GET", "httpx-small").await?;
        Ok(json!({
            "stowage": {"base": self.bench.base, "token": self.bench.token},
            "connections": CONNECTIONS,
            "large_mib": settings.large_mib(),
            "up_reps": up_reps,
            "down_reps": reps * 2 + 1,
            "range_reps": if settings.quick { 5 } else { 21 },
            "load_seconds": settings.load_time().as_secs(),
            "direct": {
                "large": large,
                // The first large upload is kept for the downloads and range reads.
                "large_get": self.presign("GET", "httpx-large-0").await?,
                "concurrent": concurrent,
                "small": small,
            },
        }))
    }

    /// The httpx client's large upload and download, 16 × 1 MiB uploads, a 1 MiB range and
    /// 4 KiB GETs, each through Stowage and directly.
    pub async fn httpx(&self) -> Result<Value> {
        check_httpx()?;
        let job = self.httpx_job().await?;
        // The script takes minutes; the servers it talks to are other processes.
        tokio::task::spawn_blocking(move || run_script(&job)).await?
    }
}
