//! The summary printed at the end of a soak, from the results written to `results.json`.

use serde_json::Value;

use super::sampling::FIGURES;

/// `pass` or `FAIL`.
fn verdict(ok: &Value) -> &'static str {
    if ok.as_bool() == Some(true) {
        "pass"
    } else {
        "FAIL"
    }
}

/// A figure to two decimals, or `-` where there is none.
fn f(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"))
}

/// A count, or `-` where there is none.
fn n(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".to_owned(), |x| x.to_string())
}

/// Prints the results `r` of a soak.
pub fn print(r: &Value) {
    let t = &r["traffic"];
    println!(
        "\ntraffic: {} operations in {:.0} s ({}/s), {} of {} ticks missed, {} errors",
        n(&t["operations"]),
        t["seconds"].as_f64().unwrap_or(0.0),
        f(&t["operations_per_s"]),
        n(&t["missed_ticks"]),
        n(&t["ticks"]),
        n(&t["errors"]),
    );
    println!(
        "  {:<16} {:>8} {:>7} {:>9} {:>9} {:>9}",
        "operation", "count", "errors", "p50 ms", "p99 ms", "max ms"
    );
    if let Some(ops) = t["by_operation"].as_object() {
        for (name, o) in ops {
            println!(
                "  {name:<16} {:>8} {:>7} {:>9} {:>9} {:>9}",
                n(&o["count"]),
                n(&o["errors"]),
                f(&o["p50_ms"]),
                f(&o["p99_ms"]),
                f(&o["max_ms"])
            );
        }
    }
    for e in t["first_errors"].as_array().into_iter().flatten() {
        println!("  error: {}", e.as_str().unwrap_or_default());
    }

    let res = &r["resources"];
    println!(
        "\nresources: {}",
        res["method"].as_str().unwrap_or_default()
    );
    println!(
        "  {:<18} {:>10} {:>10} {:>9} {:>10} {:>10}",
        "figure", "first min", "last min", "change", "min", "max"
    );
    for (name, label) in FIGURES {
        let g = &res["figures"][name];
        let change = g["change_pct"]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |c| format!("{c:+.1} %"));
        println!(
            "  {label:<18} {:>10} {:>10} {change:>9} {:>10} {:>10}  {}",
            f(&g["first_minute_median"]),
            f(&g["last_minute_median"]),
            f(&g["min"]),
            f(&g["max"]),
            if g["flat"].as_bool() == Some(true) {
                "flat"
            } else {
                "NOT FLAT"
            }
        );
    }

    let o = &r["orphans"];
    println!("\norphans after the traffic:");
    let gc = &o["gc"];
    println!(
        "  {}: {}  {}",
        gc["command"].as_str().unwrap_or_default(),
        gc["summary"].as_str().unwrap_or_default(),
        verdict(&gc["clean"])
    );
    for line in gc["reported"]["first"].as_array().into_iter().flatten() {
        println!("    {}", line.as_str().unwrap_or_default());
    }
    let b = &o["bucket_vs_rows"];
    println!(
        "  bucket vs rows: {} objects ({} blobs, {} variants) for {} rows; {} objects without row, {} rows without blob, {} unfinished multipart uploads  {}",
        n(&b["objects"]),
        n(&b["blobs"]),
        n(&b["variants"]),
        n(&b["rows"]),
        n(&b["objects_without_row"]["count"]),
        n(&b["rows_without_blob"]["count"]),
        n(&b["unfinished_multipart_uploads"]["count"]),
        verdict(&b["clean"])
    );
    let c = &o["rows_vs_client"];
    println!(
        "  rows vs the client's files: {} rows, {} files; {} rows unknown to the client, {} files without row  {}",
        n(&c["rows"]),
        n(&c["client_files"]),
        n(&c["rows_the_client_does_not_know"]["count"]),
        n(&c["client_files_without_row"]["count"]),
        verdict(&c["clean"])
    );

    let k = &r["checks"];
    println!(
        "\nverdict: {}  (flat: {}, no errors: {}, no orphans: {})",
        if r["passed"].as_bool() == Some(true) {
            "PASS"
        } else {
            "FAIL"
        },
        verdict(&k["flat"]),
        verdict(&k["no_errors"]),
        verdict(&k["no_orphans"])
    );
}
