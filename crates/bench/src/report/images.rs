//! The image variant rows, each with its goal, so that a regression shows in the table.

use serde_json::Value;

use super::{beside, f, single};

/// `goal` and whether the figure meets it (`-` when the figure is missing).
fn goal(goal: &str, met: &Value) -> String {
    let verdict = match met.as_bool() {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "-",
    };
    format!("goal {goal}: {verdict}")
}

/// A row with Stowage's figure, the baseline's, their ratio and the goal.
fn against(label: &str, stowage: &str, baseline: &str, ratio: &str, goal: &str) {
    println!("{label:<44} {stowage:>12} {baseline:>12} {ratio:>8}  {goal}");
}

/// The image phase's rows: the first thumbnail beside `vipsthumbnail`, a stored variant beside
/// a plain file of its size, and the memory of variants made at once.
pub(super) fn image_rows(i: &Value) {
    if i.is_null() {
        return;
    }
    let (t, c, a) = (
        &i["thumbnail_vs_vipsthumbnail"],
        &i["cached_variant_vs_plain_file"],
        &i["variants_at_once"],
    );
    let source = &i["source"];
    against(
        &format!(
            "image variants of {}x{} JPEG, {} KiB",
            source["width"],
            source["height"],
            source["bytes"].as_u64().unwrap_or(0) / 1024
        ),
        "stowage",
        "baseline",
        "ratio",
        "goal",
    );
    let vips = if t["vips_ms"].is_null() {
        "missing".to_owned()
    } else {
        f(&t["vips_ms"])
    };
    against(
        "300x300 WebP: 1st GET vs vipsthumbnail, ms",
        &f(&t["stowage_first_get_ms"]),
        &vips,
        &f(&t["ratio"]),
        &goal(&format!("<= {}", f(&t["goal_max_ratio"])), &t["meets_goal"]),
    );
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    beside(
        "  thumbnail size, stowage / vips",
        &text(&t["stowage_output"]),
        &text(&t["vips_output"]),
    );
    if let Some(why) = t["vips_missing"].as_str() {
        println!("  vipsthumbnail left out: {why}");
    }
    against(
        "stored variant vs same-size file, req/s",
        &f(&c["variant"]["requests_per_s"]),
        &f(&c["plain_file"]["requests_per_s"]),
        &f(&c["ratio_requests_per_s"]),
        &goal(&format!(">= {}", f(&c["goal_min_ratio"])), &c["meets_goal"]),
    );
    for p in ["p50_ms", "p99_ms"] {
        beside(
            &format!("  stored variant ({} B) {p}", c["bytes"]),
            &f(&c["variant"][p]),
            &f(&c["plain_file"][p]),
        );
    }
    against(
        &format!(
            "{} new variants at once: RSS above idle, MiB",
            a["requests"]
        ),
        &f(&a["peak_above_idle_mib"]),
        "",
        "",
        &goal(
            &format!("<= {} MiB", f(&a["goal_max_above_idle_mib"])),
            &a["meets_goal"],
        ),
    );
    single(
        &format!("  {} at once: RSS idle / peak, MiB", a["requests"]),
        &format!("{} / {}", f(&a["rss_idle_mib"]), f(&a["peak_rss_mib"])),
    );
    single(
        &format!("  {} at once: seconds, 503 answers", a["requests"]),
        &format!("{}, {}", f(&a["seconds"]), a["busy_answers"]),
    );
}
