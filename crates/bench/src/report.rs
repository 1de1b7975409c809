//! The table printed at the end of a run, from the results written to `results.json`.

mod httpx;
mod images;

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

/// Writes `results` to `target/{mode}/results.json` under the workspace `root`, and says so.
pub fn write(root: &Path, mode: &str, results: &Value) -> Result<()> {
    let out = root.join("target").join(mode);
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(results)?,
    )?;
    println!("\nwritten to target/{mode}/results.json");
    Ok(())
}

/// A figure to two decimals, or `-` where there is none.
fn f(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"))
}

/// A row with Stowage's figure, the direct one and their ratio.
fn compared(label: &str, stowage: &str, direct: &str, ratio: &str) {
    println!("{label:<44} {stowage:>12} {direct:>12} {ratio:>8}");
}

/// A row with Stowage's figure and the direct one.
fn beside(label: &str, stowage: &str, direct: &str) {
    println!("{label:<44} {stowage:>12} {direct:>12}");
}

/// A row with one figure.
fn single(label: &str, value: &str) {
    println!("{label:<44} {value:>12}");
}

/// A `{stowage_*, direct_*, ratio}` result of `way` as a [`compared`] row.
fn compared_way(label: &str, way: &Value) {
    compared(
        label,
        &f(&way["stowage_mib_s"]),
        &f(&way["direct_mib_s"]),
        &f(&way["ratio"]),
    );
}

/// Prints the results `r` as a table, one measurement a row.
pub fn print_table(r: &Value) {
    println!();
    compared("measurement", "stowage", "direct S3", "ratio");
    let large = &r["large"];
    if !large.is_null() {
        for (way, label) in [
            ("upload", "upload"),
            ("upload_vs_direct_multipart", "upload vs direct multipart"),
            ("download", "download"),
        ] {
            compared_way(&format!("{} MiB {label}, MiB/s", large["mib"]), &large[way]);
        }
        let d = &large["download"];
        let spread = |w: &Value| format!("{}-{}", f(&w["min_mib_s"]), f(&w["max_mib_s"]));
        beside(
            &format!("{} MiB download, slowest-fastest", large["mib"]),
            &spread(&d["stowage"]),
            &spread(&d["direct"]),
        );
        // A JSON value's `Display` takes no width, so the counts stand unpadded.
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
        compared_way(&format!("16 x 4 MiB {way}, aggregate MiB/s"), &c[way]);
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
        compared(
            "4 KiB GET (opaque token), requests/s",
            &f(&s["stowage"]["requests_per_s"]),
            &f(&s["direct"]["requests_per_s"]),
            &f(&s["ratio_requests_per_s"]),
        );
        for p in ["p50_ms", "p99_ms"] {
            beside(
                &format!("4 KiB GET {p}"),
                &f(&s["stowage"][p]),
                &f(&s["direct"][p]),
            );
        }
    }
    let g = &r["range_1mib_from_the_middle"];
    for p in ["ttfb_p50_ms", "total_p50_ms"] {
        if g.is_null() {
            break;
        }
        beside(
            &format!("1 MiB range {p}"),
            &f(&g["stowage"][p]),
            &f(&g["direct"][p]),
        );
    }
    httpx::httpx_rows(&r["httpx"]);
    let h = &r["concurrent_4_huge"];
    if !h.is_null() {
        for (way, key) in [("up", "upload_mib_s"), ("down", "download_mib_s")] {
            single(
                &format!("4 x {} MiB {way}, aggregate MiB/s", h["mib_each"]),
                &f(&h[key]),
            );
        }
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
            single(label, &f(&h[key]));
        }
    }
    listing_rows(&r["listing"]);
    let d = &r["direct_upload_256mib"];
    if !d.is_null() {
        compared(
            "256 MiB direct upload vs PutObject, MiB/s",
            &f(&d["direct_upload_mib_s"]),
            &f(&d["put_object_mib_s"]),
            &f(&d["ratio"]),
        );
    }
    tus_rows(&r["tus_upload"], "S3");
    tus_rows(&r["tus_upload_fs"], "disk");
    images::image_rows(&r["images"]);
    single(
        "peak RSS over the whole run, MiB",
        &f(&r["peak_rss_whole_run_mib"]),
    );
    if let Some(phases) = r["memory_after_each_phase"].as_array() {
        for m in phases {
            let phase = m["after"].as_str().unwrap_or_default();
            single(
                &format!("RSS (anonymous + file) / peak after {phase}, MiB"),
                &format!(
                    "{} ({} + {}) / {}",
                    f(&m["rss_mib"]),
                    f(&m["anonymous_mib"]),
                    f(&m["file_mib"]),
                    f(&m["peak_rss_mib"])
                ),
            );
        }
    }
}

/// The listing phase's rows: p50 / p99 of the first and the deep page of each listing.
fn listing_rows(l: &Value) {
    let Some(cases) = l["cases"].as_array() else {
        return;
    };
    println!(
        "{:<44} {:>12} {:>12}",
        format!(
            "GET /files?limit={}, {} files: p50 / p99 ms",
            l["limit"], l["files"]
        ),
        "page 1",
        format!("page {}", l["deep_page"])
    );
    let figures = |p: &Value| {
        if p.is_null() {
            "-".to_owned()
        } else {
            format!("{} / {}", f(&p["p50_ms"]), f(&p["p99_ms"]))
        }
    };
    for case in cases {
        beside(
            &format!("  {}", case["label"].as_str().unwrap_or_default()),
            &figures(&case["first_page"]),
            &figures(&case["deep_page"]),
        );
    }
    single("  seeding the files, s", &f(&l["seed_seconds"]));
}

/// The tus phase's rows: the rate beside a plain upload, where a `PATCH`'s time goes, and the
/// memory of concurrent uploads.
fn tus_rows(t: &Value, store: &str) {
    if t.is_null() {
        return;
    }
    let size = format!(
        "{} MiB tus ({} MiB PATCHes) on {store}",
        t["mib"], t["chunk_mib"]
    );
    compared(
        &format!("{size} vs POST /files, MiB/s"),
        &f(&t["tus_mib_s"]),
        &f(&t["post_mib_s"]),
        &f(&t["ratio"]),
    );
    let p50_max = |p: &Value| format!("{} / {}", f(&p["p50_ms"]), f(&p["max_ms"]));
    for (key, label) in [
        ("create_ms", "tus POST (creation)"),
        ("patch_ms", "tus PATCH, all but the last"),
        ("patch_after_body_ms", "tus PATCH, last byte sent to answer"),
        ("last_patch_ms", "tus last PATCH (completes the file)"),
    ] {
        single(&format!("{label}: p50 / max ms"), &p50_max(&t[key]));
    }
    let cpu = |way: &str| f(&t["cpu"][way]["stowage_ns_per_byte"]);
    beside(
        "CPU ns/B stowage, tus / POST /files",
        &cpu("tus"),
        &cpu("post"),
    );
    let c = &t["concurrent"];
    let many = format!(
        "{} x {} MiB tus at once on {store}",
        c["uploads"], c["mib_each"]
    );
    single(
        &format!("{many}, aggregate MiB/s"),
        &f(&c["aggregate_mib_s"]),
    );
    single(&format!("{many}: RSS idle, MiB"), &f(&c["rss_idle_mib"]));
    single(&format!("{many}: peak RSS, MiB"), &f(&c["peak_rss_mib"]));
    single(
        &format!("{many}: peak above idle, MiB"),
        &f(&c["peak_above_idle_mib"]),
    );
}
