//! Phase 6: `GET /files` pages of an account of 1 000 000 files, with and without a key prefix.
//!
//! The files are written straight into the run's database (the service has migrated it by then),
//! which takes seconds where a million uploads would take hours; they belong to a user and an
//! account of their own, so the other phases' files stay out of the listings. Half the keys are
//! under `photos/`, a quarter under `docs/`, a quarter of the files have none, and a few hundred
//! are under `rare/`, all spread over the same weeks. Each listing is timed on its first page
//! and on its 1 000th page of 50, reached by following `next_cursor`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use serde_json::{Value, json};

use crate::phases::Run;
use crate::stats::percentile;

/// The user the seeded files belong to; the other phases upload as user 1.
pub const USER: i64 = 2;
/// The account the seeded files belong to.
pub const ACCOUNT: i64 = 2;
/// The page size timed, the service's default.
const LIMIT: usize = 50;
/// The largest page the service serves, used to walk to a deep page in fewer requests.
const STRIDE: usize = 1000;
/// How many files are under the rare prefix, spread over the whole time range.
const RARE: u64 = 300;

/// The listings timed: a label and the prefix asked for.
const CASES: [(&str, Option<&str>); 4] = [
    ("no prefix", None),
    ("photos/", Some("photos/")),
    ("docs/", Some("docs/")),
    ("rare/", Some("rare/")),
];

/// One page as the client saw it.
struct Page {
    items: usize,
    next: Option<String>,
    /// Whether every item that shows its key has one starting with the prefix.
    keys_match: bool,
}

impl Run<'_> {
    /// Seeds the database at `database_url` and times the listings as `token`, the seeded user.
    pub async fn listing(&self, database_url: &str, token: &str) -> Result<Value> {
        let quick = self.settings.quick;
        let files: u64 = if quick { 100_000 } else { 1_000_000 };
        let deep_page: usize = if quick { 100 } else { 1000 };
        let samples: usize = if quick { 7 } else { 25 };
        let db = Database::connect(database_url)
            .await
            .context("the run's database")?;
        let started = Instant::now();
        seed(&db, files).await?;
        let seed_s = started.elapsed().as_secs_f64();
        let mut cases = Vec::new();
        let mut plans = serde_json::Map::new();
        for (label, prefix) in CASES {
            let (mut result, deep_cursor) = self.case(token, prefix, deep_page, samples).await?;
            result["label"] = json!(label);
            cases.push(result);
            if let Some(prefix) = prefix {
                let plan = explain(&db, prefix, deep_cursor.as_deref()).await?;
                plans.insert(label.to_owned(), plan);
            }
        }
        Ok(json!({
            "files": files, "rare_files": RARE, "user_id": USER, "account_id": ACCOUNT,
            "limit": LIMIT, "deep_page": deep_page, "samples": samples,
            "seed_seconds": seed_s, "cases": cases, "plans": Value::Object(plans),
        }))
    }

    /// Times the first page and page `deep_page` of the listing under `prefix`; the figures and
    /// the cursor that leads to the deep page (none when the listing is shorter).
    async fn case(
        &self,
        token: &str,
        prefix: Option<&str>,
        deep_page: usize,
        samples: usize,
    ) -> Result<(Value, Option<String>)> {
        let mut first = Vec::with_capacity(samples);
        self.page(token, prefix, None, LIMIT).await?;
        for _ in 0..samples {
            let (page, t) = self.page(token, prefix, None, LIMIT).await?;
            ensure!(page.keys_match, "a file outside {prefix:?} listed");
            first.push(t);
        }
        let (cursor, walked) = self.walk(token, prefix, (deep_page - 1) * LIMIT).await?;
        let mut deep = Vec::with_capacity(samples);
        if let Some(cursor) = &cursor {
            for _ in 0..samples {
                let (page, t) = self.page(token, prefix, Some(cursor), LIMIT).await?;
                ensure!(
                    page.items == LIMIT,
                    "page {deep_page} has {} files",
                    page.items
                );
                ensure!(page.keys_match, "a file outside {prefix:?} listed");
                deep.push(t);
            }
        }
        let figures = |mut t: Vec<Duration>| {
            t.sort();
            (!t.is_empty()).then(|| {
                json!({"p50_ms": percentile(&t, 0.5), "p99_ms": percentile(&t, 0.99), "samples": t.len()})
            })
        };
        let result = json!({
            "prefix": prefix,
            "first_page": figures(first),
            "deep_page": figures(deep).map(|mut v| { v["page"] = json!(deep_page); v }),
            "files_walked": walked,
        });
        Ok((result, cursor))
    }

    /// Follows `next_cursor` past the first `skip` files of the listing, in pages of up to
    /// [`STRIDE`]; the cursor there and the files passed (fewer than `skip` when the listing ends
    /// first, and then no cursor).
    async fn walk(
        &self,
        token: &str,
        prefix: Option<&str>,
        skip: usize,
    ) -> Result<(Option<String>, usize)> {
        let mut cursor: Option<String> = None;
        let mut passed = 0;
        while passed < skip {
            let limit = STRIDE.min(skip - passed);
            let (page, _) = self.page(token, prefix, cursor.as_deref(), limit).await?;
            passed += page.items;
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok((None, passed)),
            }
        }
        Ok((cursor, passed))
    }

    /// One `GET /files` page, timed from the request to the last byte of the answer.
    async fn page(
        &self,
        token: &str,
        prefix: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Page, Duration)> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(prefix) = prefix {
            query.push(("prefix", prefix.to_owned()));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        let started = Instant::now();
        let response = self
            .bench
            .http
            .get(format!("{}/files", self.bench.base))
            .bearer_auth(token)
            .query(&query)
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        let elapsed = started.elapsed();
        if !status.is_success() {
            bail!(
                "GET /files answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let body: Value = serde_json::from_slice(&body)?;
        let items = body["items"].as_array().map_or(&[][..], Vec::as_slice);
        let keys_match = prefix.is_none_or(|p| {
            items
                .iter()
                .filter_map(|item| item["key"].as_str())
                .all(|key| key.starts_with(p))
        });
        let page = Page {
            items: items.len(),
            next: body["next_cursor"].as_str().map(str::to_owned),
            keys_match,
        };
        Ok((page, elapsed))
    }
}

/// Writes `files` files of [`USER`] in [`ACCOUNT`], one a second going back from now, and
/// [`RARE`] more under `rare/`, then vacuums and analyses `files` as autovacuum would have.
async fn seed(db: &DatabaseConnection, files: u64) -> Result<()> {
    let has_keys = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT 1 AS found FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = 'files' AND column_name = 'key'",
        ))
        .await?
        .is_some();
    ensure!(
        has_keys,
        "files has no key column: the service predates file keys"
    );
    let columns = "INSERT INTO files (file_id, size, content_type, filename, user_id, \
                   account_id, created_at, sha256, storage_key, key, metadata) ";
    let (user, account) = (USER, ACCOUNT);
    // Every row is one the service could have written: a v4 id, a 64-hex digest, the default
    // storage key and no metadata (read as `{}`).
    let bulk = format!(
        "{columns}SELECT gen_random_uuid(), 1024 + n % 65536, \
         CASE n % 4 WHEN 2 THEN 'application/pdf' WHEN 3 THEN 'application/octet-stream' \
         ELSE 'image/jpeg' END, \
         CASE n % 4 WHEN 2 THEN 'doc-' || n || '.pdf' WHEN 3 THEN 'file-' || n || '.bin' \
         ELSE 'photo-' || n || '.jpg' END, \
         {user}, {account}, now() - make_interval(secs => n), \
         md5(n::text) || md5((-n)::text), NULL, \
         CASE n % 4 WHEN 2 THEN 'docs/' || n WHEN 3 THEN NULL ELSE 'photos/' || n END, NULL \
         FROM generate_series(1, {files}) AS n"
    );
    let step = files / RARE;
    let rare = format!(
        "{columns}SELECT gen_random_uuid(), 2048, 'text/plain', 'rare-' || n || '.txt', \
         {user}, {account}, now() - make_interval(secs => n * {step} + 0.5), \
         md5((n + {files})::text) || md5((-n - {files})::text), NULL, 'rare/' || n, NULL \
         FROM generate_series(1, {RARE}) AS n"
    );
    db.execute_unprepared("SET synchronous_commit = off")
        .await?;
    db.execute_unprepared(&bulk)
        .await
        .context("seeding files")?;
    db.execute_unprepared(&rare)
        .await
        .context("seeding files")?;
    db.execute_unprepared("VACUUM (ANALYZE) files").await?;
    Ok(())
}

/// The plan Postgres picks for the prefix listing's shape (the first page, and the page after
/// `cursor`), run once with `EXPLAIN ANALYZE`: one line a step.
async fn explain(db: &DatabaseConnection, prefix: &str, cursor: Option<&str>) -> Result<Value> {
    let after = match cursor.and_then(decode_cursor) {
        Some((micros, id)) => format!(
            " AND (created_at, file_id) < (to_timestamp({micros}::numeric / 1000000), '{id}')"
        ),
        None => String::new(),
    };
    // As the repository asks it: a range of the key index, and the exact start of the key.
    let mut next: Vec<char> = prefix.chars().collect();
    let last = next.pop().and_then(|c| char::from_u32(u32::from(c) + 1));
    next.extend(last);
    let (literal, next) = (
        prefix.replace('\'', "''"),
        next.into_iter().collect::<String>().replace('\'', "''"),
    );
    let chars = prefix.chars().count();
    let sql = format!(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM files \
         WHERE key IS NOT NULL AND key COLLATE \"C\" >= '{literal}' \
         AND key COLLATE \"C\" < '{next}' AND substr(key, 1, {chars}) = '{literal}' \
         AND user_id = {USER} AND account_id = {ACCOUNT}{after} \
         ORDER BY created_at DESC, file_id DESC LIMIT {}",
        LIMIT + 1
    );
    let rows = db
        .query_all(Statement::from_string(db.get_database_backend(), sql))
        .await?;
    let lines = rows
        .iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!(lines))
}

/// The position a `next_cursor` stands for: microseconds since the epoch and a file id.
fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let raw = String::from_utf8(hex::decode(cursor).ok()?).ok()?;
    let (micros, id) = raw.split_once(':')?;
    let id = uuid::Uuid::parse_str(id).ok()?;
    Some((micros.parse().ok()?, id.to_string()))
}
