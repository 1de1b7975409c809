//! `make bench`: measures Stowage and the S3 server behind it in the same run.
//!
//! Starts s3s-fs, a release `stowage-api` on Postgres + Redis + that S3 server, then measures
//! large and concurrent transfers, authenticated small downloads (opaque Django token: Redis,
//! database and access check on every request), a ranged read, the same transfers made by a
//! Python `httpx` client (the kind of client a Django backend is), and the server's memory while
//! 4 × 1 GiB cross it, and last `GET /files` pages of an account of 1 000 000 files, with and
//! without a key prefix (seeded straight into the database), a direct upload, and a tus upload
//! in 8 MiB `PATCH`es beside a plain one, with the memory of 8 at once; then image variants of
//! 12 MP photos: a first thumbnail beside `vipsthumbnail`, a stored variant beside a plain
//! file of its size, and the memory of 16 made at once. Prints a table (the image rows with
//! their goals) and writes `target/bench/results.json`. Not a test: it fails on no threshold,
//! it is how we know.
//! `BENCH_QUICK=1` shortens every phase for a smoke run.
//!
//! `stowage-bench soak` (`make soak`) is the other mode: steady mixed traffic for minutes on the
//! same servers, then a verdict on leaks, errors and orphans (see [`soak`]).

mod client;
mod direct;
mod fixtures;
mod httpx;
mod images;
mod listing;
mod phases;
mod processes;
mod procstats;
mod report;
mod settings;
mod soak;
mod stack;
mod stats;
mod tus;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::client::Bench;
use crate::phases::Run;
use crate::processes::free_port;
use crate::procstats::{memory_now, rss_mib};
use crate::settings::Settings;
use crate::stack::Stack;

#[tokio::main]
async fn main() -> Result<ExitCode> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let settings = Settings::from_env(&root)?;
    match std::env::args().nth(1).as_deref() {
        None | Some("bench") => bench(&root, &settings).await.map(|()| ExitCode::SUCCESS),
        Some("soak") => soak::run(&root, &settings).await,
        Some(other) => bail!("unknown mode {other:?}: `stowage-bench` or `stowage-bench soak`"),
    }
}

/// `make bench`: every phase of [`PHASES`](settings::PHASES) that `BENCH_PHASES` names.
async fn bench(root: &Path, settings: &Settings) -> Result<()> {
    let stack = Stack::start(settings, 3600).await?;
    let (pid, database_url, auth) = (stack.pid, stack.database_url.clone(), &stack.auth);
    let run = Run {
        settings,
        bench: stack.bench.clone(),
        pid,
        s3_pid: stack.s3_pid,
    };
    let reps = settings.reps();
    let mut results = serde_json::Map::new();
    results.insert(
        "settings".into(),
        json!({"quick": settings.quick, "large_mib": settings.large_mib(), "repetitions_large_upload": reps * 2 - 1, "repetitions_large_download": reps * 2 + 1, "repetitions_16x4mib": reps * 2 - 1, "load_seconds": settings.load_time().as_secs()}),
    );

    let mut memory = vec![memory_now(pid, "start")];
    let mut large_id = String::new();
    if settings.runs("large") {
        let (result, id) = run.large().await?;
        large_id = id;
        results.insert("large".into(), result);
        memory.push(memory_now(pid, "large"));
    }
    if settings.runs("concurrent") {
        results.insert("concurrent_16x4mib".into(), run.concurrent().await?);
        memory.push(memory_now(pid, "concurrent"));
    }
    if settings.runs("small") {
        let result = run.small().await?;
        results.insert("small_4kib_get_32_connections".into(), result);
        memory.push(memory_now(pid, "small"));
    }
    if settings.runs("range") {
        if !large_id.is_empty() {
            let result = run.range(&large_id).await?;
            results.insert("range_1mib_from_the_middle".into(), result);
        }
        memory.push(memory_now(pid, "range"));
    }
    if settings.runs("httpx") {
        results.insert("httpx".into(), run.httpx().await?);
        memory.push(memory_now(pid, "httpx"));
    }
    if settings.runs("huge") {
        results.insert("concurrent_4_huge".into(), run.huge().await?);
        memory.push(memory_now(pid, "huge"));
    }
    if settings.runs("listing") {
        let token = auth
            .grant(&settings.redis, listing::USER, listing::ACCOUNT)
            .await?;
        results.insert("listing".into(), run.listing(&database_url, &token).await?);
        memory.push(memory_now(pid, "listing"));
    }

    if settings.runs("direct") {
        results.insert("direct_upload_256mib".into(), run.direct().await?);
        memory.push(memory_now(pid, "direct"));
    }
    if settings.runs("tus") {
        results.insert("tus_upload".into(), run.tus().await?);
        memory.push(memory_now(pid, "tus"));
        // The same on local disk, where finishing an upload is a rename rather than the S3
        // server assembling its parts: a second Stowage on the same database.
        let fs_port = free_port()?;
        let fs_pid = stack.launch(settings, fs_port, "data-fs", "fs")?;
        let on_disk = Run {
            settings,
            bench: Arc::new(Bench {
                base: format!("http://127.0.0.1:{fs_port}"),
                ..run.bench.as_ref().clone()
            }),
            pid: fs_pid,
            s3_pid: stack.s3_pid,
        };
        results.insert("tus_upload_fs".into(), on_disk.tus().await?);
    }
    if settings.runs("images") {
        results.insert("images".into(), run.images().await?);
        memory.push(memory_now(pid, "images"));
    }
    results.insert("memory_after_each_phase".into(), Value::Array(memory));
    results.insert(
        "peak_rss_whole_run_mib".into(),
        json!(rss_mib(pid, "VmHWM:")),
    );

    stack.stop().await;

    let results = Value::Object(results);
    report::print_table(&results);
    report::write(root, "bench", &results)
}
