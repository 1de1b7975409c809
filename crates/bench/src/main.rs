//! `make bench`: measures Stowage and the S3 server behind it in the same run.
//!
//! Starts s3s-fs, a release `stowage-api` on Postgres + Redis + that S3 server, then measures
//! large and concurrent transfers, authenticated small downloads (opaque Django token: Redis,
//! database and access check on every request), a ranged read, and the server's memory while
//! 4 × 1 GiB cross it. Prints a table and writes `target/bench/results.json`. Not a test: no
//! thresholds, it is how we know. `BENCH_QUICK=1` shortens every phase for a smoke run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use sha2::Sha256;

const MIB: usize = 1024 * 1024;
const DIRECT_BUCKET: &str = "bench-direct";

struct Settings {
    quick: bool,
    /// `BENCH_PHASES`: a comma-separated subset of [`PHASES`].
    phases: Option<Vec<String>>,
    postgres: String,
    redis: String,
    stowage_bin: PathBuf,
    s3s_bin: PathBuf,
}

const PHASES: [&str; 5] = ["large", "concurrent", "small", "range", "huge"];

impl Settings {
    /// Whether `phase` runs; the range phase reads the large phase's file, so it brings it along.
    fn runs(&self, phase: &str) -> bool {
        self.phases.as_ref().is_none_or(|phases| {
            phases
                .iter()
                .any(|p| p == phase || (phase == "large" && p == "range"))
        })
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

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Children killed when the run ends, however it ends.
struct Guard(Vec<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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

fn rss_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The server's resident memory (anonymous and file-backed) and peak after `phase`, in MiB.
fn memory_now(pid: u32, phase: &str) -> Value {
    json!({
        "after": phase,
        "rss_mib": rss_kib(pid, "VmRSS:") as f64 / 1024.0,
        "peak_rss_mib": rss_kib(pid, "VmHWM:") as f64 / 1024.0,
        "anonymous_mib": rss_kib(pid, "RssAnon:") as f64 / 1024.0,
        "file_mib": rss_kib(pid, "RssFile:") as f64 / 1024.0,
    })
}

/// CPU time (user + system) a process has used so far; Linux reports it in USER_HZ ticks of
/// 10 ms.
fn cpu_ms(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // The command name may hold spaces; the fields after it are space-separated.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let user: u64 = fields.get(11)?.parse().ok()?;
            let system: u64 = fields.get(12)?.parse().ok()?;
            Some((user + system) * 10)
        })
        .unwrap_or(0)
}

/// CPU milliseconds used by Stowage, the S3 server and this client over the steps of one
/// measurement, summed over its repetitions.
#[derive(Default)]
struct CpuUse {
    pids: [u32; 3],
    start: [u64; 3],
    total: [u64; 3],
    bytes: usize,
}

impl CpuUse {
    fn new(stowage: u32, s3: u32) -> Self {
        Self {
            pids: [stowage, s3, std::process::id()],
            ..Self::default()
        }
    }

    fn begin(&mut self) {
        for (start, pid) in self.start.iter_mut().zip(self.pids) {
            *start = cpu_ms(pid);
        }
    }

    /// Ends a step that moved `bytes`.
    fn end(&mut self, bytes: usize) {
        for ((total, start), pid) in self.total.iter_mut().zip(self.start).zip(self.pids) {
            *total += cpu_ms(pid).saturating_sub(start);
        }
        self.bytes += bytes;
    }

    /// CPU nanoseconds per byte moved, by process.
    fn per_byte(&self) -> Value {
        let bytes = self.bytes.max(1) as f64;
        let ns = |ms: u64| (ms as f64 * 1e6 / bytes * 100.0).round() / 100.0;
        json!({
            "stowage_ns_per_byte": ns(self.total[0]),
            "s3_server_ns_per_byte": ns(self.total[1]),
            "client_ns_per_byte": ns(self.total[2]),
        })
    }
}

/// Samples the server's resident memory every 20 ms until stopped; returns the largest, in KiB.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(pid, "VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Self { stop, peak, task }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}

/// `mib` MiB of pseudo-random bytes, as 64 KiB zero-copy slices of one 1 MiB block.
fn body_chunks(block: &Bytes, mib: usize) -> Vec<Bytes> {
    let mut chunks = Vec::with_capacity(mib * 16);
    for _ in 0..mib {
        for i in 0..16 {
            chunks.push(block.slice(i * 64 * 1024..(i + 1) * 64 * 1024));
        }
    }
    chunks
}

fn block() -> Bytes {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..MIB)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect::<Vec<u8>>()
        .into()
}

fn mib_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / MIB as f64 / elapsed.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// A pause between two chunks of a response long enough to be a delayed-ACK stall.
const STALL: Duration = Duration::from_millis(30);

/// What a client saw of one response body.
struct Received {
    bytes: usize,
    first: Duration,
    total: Duration,
    /// Pauses of at least [`STALL`] between chunks.
    stalls: usize,
}

/// Times a response body chunk by chunk.
struct Receiving {
    started: Instant,
    last: Option<Instant>,
    out: Received,
}

impl Received {
    fn start() -> Receiving {
        Receiving {
            started: Instant::now(),
            last: None,
            out: Received {
                bytes: 0,
                first: Duration::ZERO,
                total: Duration::ZERO,
                stalls: 0,
            },
        }
    }
}

impl Receiving {
    fn chunk(&mut self, len: usize) {
        let now = Instant::now();
        match self.last {
            None => self.out.first = now - self.started,
            Some(last) if now - last >= STALL => self.out.stalls += 1,
            Some(_) => {}
        }
        self.last = Some(now);
        self.out.bytes += len;
    }

    fn finish(mut self) -> Received {
        self.out.total = self.started.elapsed();
        self.out
    }
}

struct Bench {
    http: reqwest::Client,
    base: String,
    token: String,
    s3: aws_sdk_s3::Client,
    block: Bytes,
}

impl Bench {
    async fn upload(&self, name: &str, mib: usize) -> Result<String> {
        let boundary = "stowagebenchboundary";
        let head = Bytes::from(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        ));
        let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
        // Streamed like `curl -F file=@big.bin`: the length is announced, the bytes are not held.
        let length = head.len() + mib * MIB + tail.len();
        let chunks = std::iter::once(head)
            .chain(body_chunks(&self.block, mib))
            .chain(std::iter::once(tail))
            .map(Ok::<_, std::io::Error>);
        let response = self
            .http
            .post(format!("{}/files", self.base))
            .bearer_auth(&self.token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header("content-length", length)
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
            .await?;
        if response.status() != 201 {
            bail!(
                "upload answered {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        let info: Value = response.json().await?;
        Ok(info["file_id"].as_str().unwrap_or_default().to_owned())
    }

    /// Downloads `id` (or a range of it).
    async fn download(&self, id: &str, range: Option<(usize, usize)>) -> Result<Received> {
        let mut received = Received::start();
        let mut request = self
            .http
            .get(format!("{}/files/{id}", self.base))
            .bearer_auth(&self.token);
        if let Some((a, b)) = range {
            request = request.header("range", format!("bytes={a}-{b}"));
        }
        let response = request.send().await?;
        if !response.status().is_success() {
            bail!("download answered {}", response.status());
        }
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            received.chunk(chunk?.len());
        }
        Ok(received.finish())
    }

    async fn put_direct(&self, key: &str, mib: usize) -> Result<()> {
        let mut body = bytes::BytesMut::with_capacity(mib * MIB);
        for chunk in body_chunks(&self.block, mib) {
            body.extend_from_slice(&chunk);
        }
        self.s3
            .put_object()
            .bucket(DIRECT_BUCKET)
            .key(key)
            .body(body.freeze().into())
            .send()
            .await?;
        Ok(())
    }

    /// A direct multipart upload in 5 MiB parts, as Stowage sends files of unknown length.
    async fn put_direct_multipart(&self, key: &str, mib: usize) -> Result<()> {
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let upload = self
            .s3
            .create_multipart_upload()
            .bucket(DIRECT_BUCKET)
            .key(key)
            .send()
            .await?;
        let id = upload.upload_id().unwrap_or_default().to_owned();
        let chunks = body_chunks(&self.block, mib);
        let mut parts = Vec::new();
        for (i, group) in chunks.chunks(80).enumerate() {
            let mut part = bytes::BytesMut::with_capacity(5 * MIB);
            for chunk in group {
                part.extend_from_slice(chunk);
            }
            let number = i32::try_from(i + 1)?;
            let sent = self
                .s3
                .upload_part()
                .bucket(DIRECT_BUCKET)
                .key(key)
                .upload_id(&id)
                .part_number(number)
                .body(part.freeze().into())
                .send()
                .await?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(sent.e_tag().map(str::to_owned))
                    .build(),
            );
        }
        self.s3
            .complete_multipart_upload()
            .bucket(DIRECT_BUCKET)
            .key(key)
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await?;
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let response = self
            .http
            .delete(format!("{}/files/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("delete answered {}", response.status());
        }
        Ok(())
    }

    async fn delete_direct(&self, key: &str) -> Result<()> {
        self.s3
            .delete_object()
            .bucket(DIRECT_BUCKET)
            .key(key)
            .send()
            .await?;
        Ok(())
    }

    async fn get_direct(&self, key: &str, range: Option<(usize, usize)>) -> Result<Received> {
        let mut received = Received::start();
        let mut request = self.s3.get_object().bucket(DIRECT_BUCKET).key(key);
        if let Some((a, b)) = range {
            request = request.range(format!("bytes={a}-{b}"));
        }
        let mut body = request.send().await?.body;
        while let Some(chunk) = body.next().await {
            received.chunk(chunk?.len());
        }
        Ok(received.finish())
    }
}

async fn timed<F: std::future::Future<Output = Result<T>>, T>(f: F) -> Result<(T, Duration)> {
    let started = Instant::now();
    let out = f.await?;
    Ok((out, started.elapsed()))
}

/// Runs `op` from `concurrency` workers for `duration`; returns (requests/s, p50 ms, p99 ms).
async fn load<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Result<(f64, f64, f64)>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let deadline = Instant::now() + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
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
    all.sort();
    Ok((
        all.len() as f64 / duration.as_secs_f64(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
    ))
}

/// CPU cost per byte of each way through Stowage and directly, from `cpu` in the order
/// upload, download, direct upload, direct download.
fn cpu_table(cpu: &[CpuUse; 4]) -> Value {
    json!({
        "upload": cpu[0].per_byte(),
        "download": cpu[1].per_byte(),
        "direct_upload": cpu[2].per_byte(),
        "direct_download": cpu[3].per_byte(),
    })
}

/// Repeated downloads of one way: their rates and the stalls seen.
#[derive(Default)]
struct Downloads {
    mib_s: Vec<f64>,
    stalls: usize,
}

impl Downloads {
    fn add(&mut self, got: &Received) {
        self.mib_s.push(mib_per_s(got.bytes, got.total));
        self.stalls += got.stalls;
    }

    fn median(&self) -> f64 {
        median(self.mib_s.clone())
    }

    fn summary(&self) -> Value {
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

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        (a / b * 100.0).round() / 100.0
    } else {
        0.0
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let settings = Settings {
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
    };
    let reps = if settings.quick { 1 } else { 3 };
    let large_mib = if settings.quick { 32 } else { 256 };
    let huge_mib = if settings.quick { 64 } else { 1024 };
    let load_time = Duration::from_secs(if settings.quick { 3 } else { 15 });

    let work =
        std::env::temp_dir().join(format!("stowage-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(work.join("s3"))?;
    let mut children = Guard(Vec::new());

    let s3_port = free_port()?;
    children.0.push(
        Command::new(&settings.s3s_bin)
            .args(["--host", "127.0.0.1", "--port", &s3_port.to_string()])
            .args(["--access-key", "BENCHAK", "--secret-key", "BENCHSECRETKEY"])
            .arg(work.join("s3"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting s3s-fs")?,
    );
    let s3_pid = children.0[0].id();
    wait_for_port(s3_port)?;
    let endpoint = format!("http://127.0.0.1:{s3_port}");
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                "BENCHAK",
                "BENCHSECRETKEY",
                None,
                None,
                "bench",
            ))
            .build(),
    );
    s3.create_bucket().bucket(DIRECT_BUCKET).send().await?;

    let db_name = format!("stowage_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(format!("{}/postgres", settings.postgres))
        .await
        .context("Postgres")?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {db_name}"))
        .await?;

    let secret = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let prefix = format!(":1:bench{}:", uuid::Uuid::new_v4().simple());
    let token = format!("opaque{}", uuid::Uuid::new_v4().simple());
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(token.as_bytes(), secret.as_bytes(), 1, &mut key);
    let redis = redis::Client::open(settings.redis.as_str())?;
    let mut con = redis
        .get_multiplexed_async_connection()
        .await
        .context("Redis")?;
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}{}", hex::encode(key)))
        .arg(r#"{"user_id": 1, "account_id": 1}"#)
        .arg("EX")
        .arg(3600)
        .query_async(&mut con)
        .await?;

    let port = free_port()?;
    let server = Command::new(&settings.stowage_bin)
        .env_clear()
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("DATA_DIR", work.join("data"))
        .env("AUTH_SECRET_KEY", &secret)
        .env("DATABASE_URL", format!("{}/{db_name}", settings.postgres))
        .env("DATABASE_MAX_CONNECTIONS", "32")
        .env("REDIS_URL", &settings.redis)
        .env("REDIS_KEY_PREFIX", &prefix)
        .env("STORAGE_BACKEND", "s3")
        .env("S3_ENDPOINT", &endpoint)
        .env("S3_ACCESS_KEY", "BENCHAK")
        .env("S3_SECRET_KEY", "BENCHSECRETKEY")
        .env("S3_BUCKET", "bench-stowage")
        .env("MAX_UPLOAD_BYTES", (2 * 1024 * MIB).to_string())
        .env("RATE_LIMIT_ENABLED", "false")
        .env("LOG_LEVEL", "warn")
        .env("LOG_FORMAT", "json")
        .envs(std::env::vars().filter(|(k, _)| k.starts_with("MALLOC_")))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", settings.stowage_bin.display()))?;
    let pid = server.id();
    children.0.push(server);
    wait_for_port(port)?;

    let bench = Arc::new(Bench {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()?,
        base: format!("http://127.0.0.1:{port}"),
        token,
        s3,
        block: block(),
    });
    let mut results = serde_json::Map::new();
    results.insert(
        "settings".into(),
        json!({"quick": settings.quick, "large_mib": large_mib, "repetitions_large_upload": reps * 2 - 1, "repetitions_large_download": reps * 2 + 1, "repetitions_16x4mib": reps * 2 - 1, "load_seconds": load_time.as_secs()}),
    );

    let mut memory = vec![memory_now(pid, "start")];

    // 1. One large file, each way.
    let mut large_id = String::new();
    if settings.runs("large") {
        let (mut up_s, mut up_d, mut up_dm) = (vec![], vec![], vec![]);
        let mut cpu: [CpuUse; 4] = std::array::from_fn(|_| CpuUse::new(pid, s3_pid));
        // Each way takes turns at going first. Only the first file of each way is kept (for the
        // downloads and the range reads): the others are deleted at once, before the kernel
        // writes them back to disk while later transfers run.
        let up_reps = reps * 2 - 1;
        for rep in 0..up_reps {
            for stowage_turn in [rep % 2 == 0, rep % 2 == 1] {
                if stowage_turn {
                    cpu[0].begin();
                    let (id, t) = timed(bench.upload("large.bin", large_mib)).await?;
                    cpu[0].end(large_mib * MIB);
                    up_s.push(mib_per_s(large_mib * MIB, t));
                    if large_id.is_empty() {
                        large_id = id;
                    } else {
                        bench.delete(&id).await?;
                    }
                } else {
                    let key = format!("large-{rep}");
                    cpu[2].begin();
                    let ((), t) = timed(bench.put_direct(&key, large_mib)).await?;
                    cpu[2].end(large_mib * MIB);
                    up_d.push(mib_per_s(large_mib * MIB, t));
                    if rep > 0 {
                        bench.delete_direct(&key).await?;
                    }
                }
            }
            let key = format!("large-mp-{rep}");
            let ((), t) = timed(bench.put_direct_multipart(&key, large_mib)).await?;
            up_dm.push(mib_per_s(large_mib * MIB, t));
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
                anyhow::ensure!(got.bytes == large_mib * MIB, "short download");
                way.add(&got);
            }
        }
        let (us, ud, udm) = (median(up_s), median(up_d), median(up_dm));
        let (ds, dd) = (down_s.median(), down_d.median());
        results.insert(
            "large".into(),
            json!({
                "mib": large_mib,
                "upload": {"stowage_mib_s": us, "direct_mib_s": ud, "ratio": ratio(us, ud)},
                "upload_vs_direct_multipart": {"stowage_mib_s": us, "direct_mib_s": udm, "ratio": ratio(us, udm)},
                "download": {
                    "stowage_mib_s": ds, "direct_mib_s": dd, "ratio": ratio(ds, dd),
                    "stowage": down_s.summary(), "direct": down_d.summary(),
                },
                "cpu": cpu_table(&cpu),
            }),
        );
    }

    if settings.runs("large") {
        memory.push(memory_now(pid, "large"));
    }

    // 2. 16 concurrent 4 MiB files, each way; a round lasts a fraction of a second, so it gets
    // more repetitions than the large file.
    if settings.runs("concurrent") {
        let (mut up_s, mut down_s, mut up_d, mut down_d) = (vec![], vec![], vec![], vec![]);
        let mut cpu: [CpuUse; 4] = std::array::from_fn(|_| CpuUse::new(pid, s3_pid));
        let rounds = reps * 2 - 1;
        for rep in 0..rounds {
            cpu[0].begin();
            let started = Instant::now();
            let ids = futures_util::future::try_join_all((0..16).map(|_| bench.upload("c.bin", 4)))
                .await?;
            up_s.push(mib_per_s(16 * 4 * MIB, started.elapsed()));
            cpu[0].end(16 * 4 * MIB);
            cpu[1].begin();
            let started = Instant::now();
            futures_util::future::try_join_all(ids.iter().map(|id| bench.download(id, None)))
                .await?;
            down_s.push(mib_per_s(16 * 4 * MIB, started.elapsed()));
            cpu[1].end(16 * 4 * MIB);
            let keys: Vec<String> = (0..16).map(|i| format!("c-{rep}-{i}")).collect();
            cpu[2].begin();
            let started = Instant::now();
            futures_util::future::try_join_all(keys.iter().map(|k| bench.put_direct(k, 4))).await?;
            up_d.push(mib_per_s(16 * 4 * MIB, started.elapsed()));
            cpu[2].end(16 * 4 * MIB);
            cpu[3].begin();
            let started = Instant::now();
            futures_util::future::try_join_all(keys.iter().map(|k| bench.get_direct(k, None)))
                .await?;
            down_d.push(mib_per_s(16 * 4 * MIB, started.elapsed()));
            cpu[3].end(16 * 4 * MIB);
            futures_util::future::try_join_all(ids.iter().map(|id| bench.delete(id))).await?;
            futures_util::future::try_join_all(keys.iter().map(|k| bench.delete_direct(k))).await?;
        }
        let (us, ud, ds, dd) = (median(up_s), median(up_d), median(down_s), median(down_d));
        results.insert(
            "concurrent_16x4mib".into(),
            json!({
                "upload": {"stowage_mib_s": us, "direct_mib_s": ud, "ratio": ratio(us, ud)},
                "download": {"stowage_mib_s": ds, "direct_mib_s": dd, "ratio": ratio(ds, dd)},
                "cpu": cpu_table(&cpu),
            }),
        );
    }

    if settings.runs("concurrent") {
        memory.push(memory_now(pid, "concurrent"));
    }

    // 3. Authenticated 4 KiB downloads at 32 connections.
    if settings.runs("small") {
        let small = {
            let boundary_bench = bench.clone();
            let id = boundary_bench.upload_small().await?;
            bench
                .s3
                .put_object()
                .bucket(DIRECT_BUCKET)
                .key("small")
                .body(bench.block.slice(0..4096).into())
                .send()
                .await?;
            id
        };
        let b = bench.clone();
        let id = small.clone();
        let (rps_s, p50_s, p99_s) = load(32, load_time, move || {
            let (b, id) = (b.clone(), id.clone());
            async move { b.download(&id, None).await.map(|_| ()) }
        })
        .await?;
        let b = bench.clone();
        let (rps_d, p50_d, p99_d) = load(32, load_time, move || {
            let b = b.clone();
            async move { b.get_direct("small", None).await.map(|_| ()) }
        })
        .await?;
        results.insert(
            "small_4kib_get_32_connections".into(),
            json!({
                "stowage": {"requests_per_s": rps_s, "p50_ms": p50_s, "p99_ms": p99_s},
                "direct": {"requests_per_s": rps_d, "p50_ms": p50_d, "p99_ms": p99_d},
                "ratio_requests_per_s": ratio(rps_s, rps_d),
            }),
        );
    }

    if settings.runs("small") {
        memory.push(memory_now(pid, "small"));
    }

    // 4. A 1 MiB range from the middle of the large file.
    if settings.runs("range") && !large_id.is_empty() {
        let mid = large_mib * MIB / 2;
        let range = Some((mid, mid + MIB - 1));
        let (mut ttfb_s, mut total_s, mut ttfb_d, mut total_d) = (vec![], vec![], vec![], vec![]);
        for _ in 0..if settings.quick { 5 } else { 21 } {
            let got = bench.download(&large_id, range).await?;
            anyhow::ensure!(got.bytes == MIB, "range length {}", got.bytes);
            ttfb_s.push(got.first.as_secs_f64() * 1000.0);
            total_s.push(got.total.as_secs_f64() * 1000.0);
            let got = bench.get_direct("large-0", range).await?;
            ttfb_d.push(got.first.as_secs_f64() * 1000.0);
            total_d.push(got.total.as_secs_f64() * 1000.0);
        }
        results.insert(
            "range_1mib_from_the_middle".into(),
            json!({
                "stowage": {"ttfb_p50_ms": median(ttfb_s), "total_p50_ms": median(total_s)},
                "direct": {"ttfb_p50_ms": median(ttfb_d), "total_p50_ms": median(total_d)},
            }),
        );
    }

    if settings.runs("range") {
        memory.push(memory_now(pid, "range"));
    }

    // 5. Memory while 4 huge files go up at once, and then down at once.
    if settings.runs("huge") {
        let before = rss_kib(pid, "VmRSS:");
        let sampler = RssSampler::start(pid);
        let started = Instant::now();
        let ids =
            futures_util::future::try_join_all((0..4).map(|_| bench.upload("huge.bin", huge_mib)))
                .await?;
        let up = mib_per_s(4 * huge_mib * MIB, started.elapsed());
        let peak_up = sampler.finish().await;
        let sampler = RssSampler::start(pid);
        let started = Instant::now();
        futures_util::future::try_join_all(ids.iter().map(|id| bench.download(id, None))).await?;
        let down = mib_per_s(4 * huge_mib * MIB, started.elapsed());
        let peak_down = sampler.finish().await;
        results.insert(
            "concurrent_4_huge".into(),
            json!({
                "mib_each": huge_mib, "upload_mib_s": up, "download_mib_s": down,
                "rss_before_mib": before as f64 / 1024.0,
                "peak_rss_upload_mib": peak_up as f64 / 1024.0,
                "peak_rss_download_mib": peak_down as f64 / 1024.0,
                "peak_rss_mib": peak_up.max(peak_down) as f64 / 1024.0,
            }),
        );
    }
    if settings.runs("huge") {
        memory.push(memory_now(pid, "huge"));
    }

    results.insert("memory_after_each_phase".into(), Value::Array(memory));
    results.insert(
        "peak_rss_whole_run_mib".into(),
        json!(rss_kib(pid, "VmHWM:") as f64 / 1024.0),
    );

    drop(children);
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        .await;
    let _ = std::fs::remove_dir_all(&work);

    let results = Value::Object(results);
    print_table(&results);
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    println!("\nwritten to target/bench/results.json");
    Ok(())
}

impl Bench {
    async fn upload_small(&self) -> Result<String> {
        let boundary = "stowagebenchsmall";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"small.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&self.block[..4096]);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let response = self
            .http
            .post(format!("{}/files", self.base))
            .bearer_auth(&self.token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await?;
        let info: Value = response.json().await?;
        Ok(info["file_id"].as_str().unwrap_or_default().to_owned())
    }
}

fn print_table(r: &Value) {
    let f = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"))
    };
    println!(
        "\n{:<44} {:>12} {:>12} {:>8}",
        "measurement", "stowage", "direct S3", "ratio"
    );
    let large = &r["large"];
    if !large.is_null() {
        for (way, label) in [
            ("upload", "upload"),
            ("upload_vs_direct_multipart", "upload vs direct multipart"),
            ("download", "download"),
        ] {
            println!(
                "{:<44} {:>12} {:>12} {:>8}",
                format!("{} MiB {label}, MiB/s", large["mib"]),
                f(&large[way]["stowage_mib_s"]),
                f(&large[way]["direct_mib_s"]),
                f(&large[way]["ratio"])
            );
        }
        let d = &large["download"];
        let spread = |w: &Value| format!("{}-{}", f(&w["min_mib_s"]), f(&w["max_mib_s"]));
        println!(
            "{:<44} {:>12} {:>12}",
            format!("{} MiB download, slowest-fastest", large["mib"]),
            spread(&d["stowage"]),
            spread(&d["direct"])
        );
        println!(
            "{:<44} {:>12} {:>12}",
            format!("{} MiB download, stalls >= 30 ms", large["mib"]),
            d["stowage"]["stalls_of_30ms_or_more"],
            d["direct"]["stalls_of_30ms_or_more"]
        );
    }
    let c = &r["concurrent_16x4mib"];
    for way in ["upload", "download"] {
        if c.is_null() {
            break;
        }
        println!(
            "{:<44} {:>12} {:>12} {:>8}",
            format!("16 x 4 MiB {way}, aggregate MiB/s"),
            f(&c[way]["stowage_mib_s"]),
            f(&c[way]["direct_mib_s"]),
            f(&c[way]["ratio"])
        );
    }
    for (key, label) in [("large", "large"), ("concurrent_16x4mib", "16x4")] {
        for way in ["upload", "direct_upload", "download", "direct_download"] {
            let c = &r[key]["cpu"][way];
            if c.is_null() {
                continue;
            }
            println!(
                "{:<52} {:>16}",
                format!("CPU ns/B (stowage/s3/client), {label} {way}"),
                format!(
                    "{}/{}/{}",
                    f(&c["stowage_ns_per_byte"]),
                    f(&c["s3_server_ns_per_byte"]),
                    f(&c["client_ns_per_byte"])
                )
            );
        }
    }
    let s = &r["small_4kib_get_32_connections"];
    if !s.is_null() {
        println!(
            "{:<44} {:>12} {:>12} {:>8}",
            "4 KiB GET (opaque token), requests/s",
            f(&s["stowage"]["requests_per_s"]),
            f(&s["direct"]["requests_per_s"]),
            f(&s["ratio_requests_per_s"])
        );
        for p in ["p50_ms", "p99_ms"] {
            println!(
                "{:<44} {:>12} {:>12}",
                format!("4 KiB GET {p}"),
                f(&s["stowage"][p]),
                f(&s["direct"][p])
            );
        }
    }
    let g = &r["range_1mib_from_the_middle"];
    for p in ["ttfb_p50_ms", "total_p50_ms"] {
        if g.is_null() {
            break;
        }
        println!(
            "{:<44} {:>12} {:>12}",
            format!("1 MiB range {p}"),
            f(&g["stowage"][p]),
            f(&g["direct"][p])
        );
    }
    let h = &r["concurrent_4_huge"];
    if !h.is_null() {
        println!(
            "{:<44} {:>12}",
            format!("4 x {} MiB up, aggregate MiB/s", h["mib_each"]),
            f(&h["upload_mib_s"])
        );
        println!(
            "{:<44} {:>12}",
            format!("4 x {} MiB down, aggregate MiB/s", h["mib_each"]),
            f(&h["download_mib_s"])
        );
        for (key, label) in [
            ("rss_before_mib", "RSS before the 4 huge transfers, MiB"),
            (
                "peak_rss_upload_mib",
                "peak RSS during the 4 huge uploads, MiB",
            ),
            (
                "peak_rss_download_mib",
                "peak RSS during the 4 huge downloads, MiB",
            ),
        ] {
            println!("{:<44} {:>12}", label, f(&h[key]));
        }
    }
    println!(
        "{:<44} {:>12}",
        "peak RSS over the whole run, MiB",
        f(&r["peak_rss_whole_run_mib"])
    );
    if let Some(phases) = r["memory_after_each_phase"].as_array() {
        for m in phases {
            let phase = m["after"].as_str().unwrap_or_default();
            println!(
                "{:<44} {:>12}",
                format!("RSS (anonymous + file) / peak after {phase}, MiB"),
                format!(
                    "{} ({} + {}) / {}",
                    f(&m["rss_mib"]),
                    f(&m["anonymous_mib"]),
                    f(&m["file_mib"]),
                    f(&m["peak_rss_mib"])
                )
            );
        }
    }
}
