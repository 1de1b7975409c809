//! The httpx phase's rows: the Python client's figures, Stowage beside direct S3.

use serde_json::Value;

use super::{beside, compared, compared_way, f};

/// Reads per download and the client's CPU per MiB, as `reads / ms`.
fn reads_and_cpu(d: &Value, way: &str) -> String {
    let cpu_ms = d[format!("{way}_client_cpu_s_per_mib")]
        .as_f64()
        .map(|s| Value::from(s * 1000.0))
        .unwrap_or_default();
    format!("{} / {}", d[format!("{way}_reads")], f(&cpu_ms))
}

/// The rows of the httpx client, each labelled as its own.
pub(super) fn httpx_rows(h: &Value) {
    if h.is_null() {
        return;
    }
    let mib = &h["large_mib"];
    compared_way(&format!("httpx: {mib} MiB upload, MiB/s"), &h["upload"]);
    let c = &h["concurrent"];
    compared_way(
        &format!(
            "httpx: {} x {} MiB uploads, MiB/s",
            c["files"], c["mib_each"]
        ),
        &c["upload"],
    );
    let d = &h["download"];
    compared_way(&format!("httpx: {mib} MiB download, MiB/s"), d);
    beside(
        &format!("httpx: {mib} MiB download: reads / CPU ms/MiB"),
        &reads_and_cpu(d, "stowage"),
        &reads_and_cpu(d, "direct"),
    );
    let g = &h["range_1mib_from_the_middle"];
    for p in ["ttfb_p50_ms", "total_p50_ms"] {
        beside(
            &format!("httpx: 1 MiB range {p}"),
            &f(&g["stowage"][p]),
            &f(&g["direct"][p]),
        );
    }
    let s = &h["small_4kib_get"];
    compared(
        &format!("httpx: 4 KiB GET, {} conns, requests/s", s["connections"]),
        &f(&s["stowage"]["requests_per_s"]),
        &f(&s["direct"]["requests_per_s"]),
        &f(&s["ratio_requests_per_s"]),
    );
    beside(
        "httpx: 4 KiB GET p99_ms",
        &f(&s["stowage"]["p99_ms"]),
        &f(&s["direct"]["p99_ms"]),
    );
}
