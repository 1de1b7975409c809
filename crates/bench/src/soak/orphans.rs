//! After the traffic, nothing left behind, seen three ways: the service's own reconciliation
//! (`stowage-api gc --dry-run --grace 0s`), the bucket's objects against the database's rows,
//! and the rows against the files the client believes it left.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result};
use aws_sdk_s3::error::ProvideErrorMetadata;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Value, json};

use crate::processes::STOWAGE_BUCKET;
use crate::settings::Settings;
use crate::stack::Stack;

/// Names and ids listed in the results at most.
const LISTED: usize = 20;

/// Whether all three are clean, and what each found.
pub async fn check(stack: &Stack, settings: &Settings, client: &[String]) -> Result<(bool, Value)> {
    let (gc_clean, gc) = gc_dry_run(stack, settings).await?;
    let rows = rows(&stack.database_url).await?;
    let (bucket_clean, bucket) = bucket_against(stack, &rows).await?;
    let ids: HashSet<&str> = rows.iter().map(|(id, _, _)| id.as_str()).collect();
    let known: HashSet<&str> = client.iter().map(String::as_str).collect();
    let unexpected: Vec<&str> = ids.difference(&known).copied().collect();
    let vanished: Vec<&str> = known.difference(&ids).copied().collect();
    let client_clean = unexpected.is_empty() && vanished.is_empty();
    Ok((
        gc_clean && bucket_clean && client_clean,
        json!({
            "gc": gc,
            "bucket_vs_rows": bucket,
            "rows_vs_client": {
                "rows": ids.len(), "client_files": known.len(),
                "rows_the_client_does_not_know": first(&unexpected),
                "client_files_without_row": first(&vanished),
                "clean": client_clean,
            },
        }),
    ))
}

/// `{"count": n, "first": [...]}` of `items`, `n` of them.
fn first<T: ToString>(items: &[T]) -> Value {
    let listed: Vec<String> = items.iter().take(LISTED).map(T::to_string).collect();
    json!({"count": items.len(), "first": listed})
}

/// `stowage-api gc --dry-run --grace 0s` with the server's own environment: clean when it exits
/// 0, reports no item and every count but records and blobs is 0.
async fn gc_dry_run(stack: &Stack, settings: &Settings) -> Result<(bool, Value)> {
    let args = ["gc", "--dry-run", "--grace", "0s"];
    let mut command = stack.stowage(settings, 0, "data", "s3").command();
    command.args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .context("running stowage-api gc")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (clean, summary, counts, reported) = gc_findings(&stdout, output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    Ok((
        clean,
        json!({
            "command": format!("stowage-api {}", args.join(" ")),
            "exit_code": output.status.code(),
            "summary": summary,
            "counts": counts,
            "reported": first(&reported),
            "stderr": stderr.chars().take(2000).collect::<String>(),
            "clean": clean,
        }),
    ))
}

/// What `gc --dry-run` printed (`stdout`, and whether it exited 0): clean when it exited 0,
/// printed no item and its summary's counts are all 0 but records and blobs; the summary, its
/// counts and the items.
fn gc_findings(stdout: &str, success: bool) -> (bool, &str, BTreeMap<&str, u64>, Vec<&str>) {
    let (summary, reported): (Vec<&str>, Vec<&str>) =
        stdout.lines().partition(|l| l.starts_with("records "));
    let summary = summary.last().copied().unwrap_or_default();
    // "records 200, blobs 230, orphan blobs 0, …, replaced files 0; would remove 0"
    let counts: BTreeMap<&str, u64> = summary
        .split([',', ';'])
        .filter_map(|part| {
            let (label, n) = part.trim().rsplit_once(' ')?;
            Some((label, n.parse().ok()?))
        })
        .collect();
    let clean = success
        && reported.is_empty()
        && counts.len() >= 8
        && counts
            .iter()
            .all(|(label, n)| matches!(*label, "records" | "blobs") || *n == 0);
    (clean, summary, counts, reported)
}

/// Every row of the run's database: id, account and size.
async fn rows(database_url: &str) -> Result<Vec<(String, i64, i64)>> {
    let db = Database::connect(database_url)
        .await
        .context("the run's database")?;
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT file_id::text AS id, account_id, size FROM files",
        ))
        .await?;
    let rows = rows
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<String>("", "id")?,
                row.try_get::<i64>("", "account_id")?,
                row.try_get::<i64>("", "size")?,
            ))
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    db.close().await?;
    Ok(rows)
}

/// The bucket's objects against `rows`: each object must be the blob `{account}/{id}` of a row
/// or one of its variants `{account}/{id}.variants/…`, each row with bytes must have its blob,
/// and no multipart upload may be left unfinished.
async fn bucket_against(stack: &Stack, rows: &[(String, i64, i64)]) -> Result<(bool, Value)> {
    let s3 = &stack.bench.s3;
    let blobs: HashSet<String> = rows
        .iter()
        .map(|(id, account, _)| format!("{account}/{id}"))
        .collect();
    let mut pages = s3
        .list_objects_v2()
        .bucket(STOWAGE_BUCKET)
        .into_paginator()
        .send();
    let (mut objects, mut variants, mut present, mut orphans) = (0, 0, HashSet::new(), vec![]);
    while let Some(page) = pages.next().await {
        for object in page?.contents() {
            let name = object.key().unwrap_or_default().to_owned();
            objects += 1;
            let owner = name.split_once(".variants/").map(|(owner, _)| owner);
            match owner {
                Some(owner) if blobs.contains(owner) => variants += 1,
                None if blobs.contains(&name) => {
                    present.insert(name);
                }
                _ => orphans.push(name),
            }
        }
    }
    let (unfinished, listed_by) = unfinished_uploads(stack).await?;
    let missing: Vec<&str> = rows
        .iter()
        .filter(|(id, account, size)| *size > 0 && !present.contains(&format!("{account}/{id}")))
        .map(|(id, _, _)| id.as_str())
        .collect();
    let clean = orphans.is_empty() && missing.is_empty() && unfinished.is_empty();
    Ok((
        clean,
        json!({
            "bucket": STOWAGE_BUCKET, "objects": objects, "blobs": present.len(),
            "variants": variants, "rows": rows.len(),
            "objects_without_row": first(&orphans),
            "rows_without_blob": first(&missing),
            "unfinished_multipart_uploads": first(&unfinished),
            "unfinished_listed_by": listed_by,
            "clean": clean,
        }),
    ))
}

/// The multipart uploads left unfinished in the bucket, and how they were found: by
/// `ListMultipartUploads`, or where the store does not implement it (s3s-fs), by the files
/// s3s-fs keeps an upload in (`.upload-{id}.json` and its parts) in its folder.
async fn unfinished_uploads(stack: &Stack) -> Result<(Vec<String>, &'static str)> {
    let listed = stack
        .bench
        .s3
        .list_multipart_uploads()
        .bucket(STOWAGE_BUCKET)
        .send()
        .await;
    match listed {
        Ok(page) => Ok((
            page.uploads()
                .iter()
                .map(|u| u.key().unwrap_or_default().to_owned())
                .collect(),
            "ListMultipartUploads",
        )),
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("NotImplemented") => {
            let mut files = Vec::new();
            for entry in std::fs::read_dir(stack.work.join("s3"))? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                if name.starts_with(".upload") {
                    files.push(name);
                }
            }
            Ok((files, "the S3 server's folder: .upload-* files"))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::gc_findings;

    const CLEAN: &str = "records 196, blobs 206, orphan blobs 0, unfinished uploads 0, younger than the grace period 0, records without blob 0, replaced files 0; would remove 0\n";

    #[test]
    fn a_gc_that_finds_nothing_is_clean_and_anything_it_finds_is_not() {
        let (clean, summary, counts, reported) = gc_findings(CLEAN, true);
        assert!(clean);
        assert!(summary.starts_with("records 196"));
        assert_eq!(counts.len(), 8);
        assert_eq!(counts["younger than the grace period"], 0);
        assert!(reported.is_empty());

        let orphan = format!(
            "orphan blob 1/3f2504e0-4f89-41d3-9a0c-0305e82c3301\n{}",
            CLEAN
                .replace("orphan blobs 0", "orphan blobs 1")
                .replace("would remove 0", "would remove 1")
        );
        let (clean, _, counts, reported) = gc_findings(&orphan, true);
        assert!(!clean);
        assert_eq!(counts["orphan blobs"], 1);
        assert_eq!(reported.len(), 1);

        // A count alone, an item line alone, a failed run or no summary each fail it.
        let young = CLEAN.replace("grace period 0", "grace period 2");
        assert!(!gc_findings(&young, true).0);
        assert!(!gc_findings(&format!("replaced file x\n{CLEAN}"), true).0);
        assert!(!gc_findings(CLEAN, false).0);
        assert!(!gc_findings("", true).0);
    }
}
