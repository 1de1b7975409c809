//! What a process uses, from `/proc`: resident memory and CPU time.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

/// A `/proc/<pid>/status` field in KiB (`VmRSS:`, `VmHWM:`, ...); 0 when it cannot be read.
pub fn rss_kib(pid: u32, field: &str) -> u64 {
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

/// A `/proc/<pid>/status` field in MiB.
pub fn rss_mib(pid: u32, field: &str) -> f64 {
    rss_kib(pid, field) as f64 / 1024.0
}

/// The file descriptors `pid` holds open; 0 when they cannot be read.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// The local ports of the established TCP connections of `pid` to `remote_port`: its socket
/// inodes (from `/proc/<pid>/fd`) looked up in its network namespace's `tcp` and `tcp6` tables.
pub fn tcp_local_ports(pid: u32, remote_port: u16) -> HashSet<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let port = |address: &str| u16::from_str_radix(address.rsplit_once(':')?.1, 16).ok();
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    // sl, local address, remote address, state, …, inode (the tenth field).
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let established = fields.get(3) == Some(&"01");
                    let ours = fields.get(9).is_some_and(|inode| inodes.contains(*inode));
                    (established && ours && port(fields.get(2)?) == Some(remote_port))
                        .then(|| port(fields.get(1)?))
                        .flatten()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The server's resident memory (anonymous and file-backed) and peak after `phase`, in MiB.
pub fn memory_now(pid: u32, phase: &str) -> Value {
    json!({
        "after": phase,
        "rss_mib": rss_mib(pid, "VmRSS:"),
        "peak_rss_mib": rss_mib(pid, "VmHWM:"),
        "anonymous_mib": rss_mib(pid, "RssAnon:"),
        "file_mib": rss_mib(pid, "RssFile:"),
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
pub struct CpuUse {
    pids: [u32; 3],
    start: [u64; 3],
    total: [u64; 3],
    bytes: usize,
}

impl CpuUse {
    /// Measures the Stowage process `stowage`, the S3 server `s3` and this one.
    pub fn new(stowage: u32, s3: u32) -> Self {
        Self {
            pids: [stowage, s3, std::process::id()],
            ..Self::default()
        }
    }

    /// Starts a step.
    pub fn begin(&mut self) {
        for (start, pid) in self.start.iter_mut().zip(self.pids) {
            *start = cpu_ms(pid);
        }
    }

    /// Ends a step that moved `bytes`.
    pub fn end(&mut self, bytes: usize) {
        for ((total, start), pid) in self.total.iter_mut().zip(self.start).zip(self.pids) {
            *total += cpu_ms(pid).saturating_sub(start);
        }
        self.bytes += bytes;
    }

    /// CPU nanoseconds per byte moved, by process.
    pub fn per_byte(&self) -> Value {
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
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> Self {
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

    /// Stops sampling; the largest resident memory seen, in KiB.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}
