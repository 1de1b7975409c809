//! What every fault test checks once the fault is over: the service serves every file it
//! acknowledged, byte for byte, and nothing partial, and the blob store holds exactly the blobs
//! of the files served (and variants of live files), nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::Value;
use stowage_tests::{TestServer, fetch, file_id, run_subcommand, sha256_hex};

pub const MIB: usize = 1024 * 1024;

/// The account every test uploads to, as user 1.
pub const ACCOUNT: i64 = 1;

/// Files the service acknowledged with `201`: id → SHA-256 (hex) of the bytes sent.
pub type Ledger = BTreeMap<String, String>;

/// `Authorization` of the user every test uploads as.
pub fn owner(server: &TestServer) -> String {
    server.bearer(Some(1), ACCOUNT)
}

/// Uploads `data` as `name` with `auth`, asserts `201` with the size and digest of `data`, and
/// records it in `ledger`; returns its id.
pub async fn upload_recorded(
    server: &TestServer,
    auth: &str,
    ledger: &mut Ledger,
    name: &str,
    data: Vec<u8>,
) -> String {
    let sha = sha256_hex(&data);
    let len = data.len();
    let info = server
        .upload_ok(auth, name, "application/octet-stream", data)
        .await;
    assert_eq!(info["size"], len, "{info}");
    assert_eq!(info["sha256"], sha.as_str(), "{info}");
    let id = file_id(&info);
    ledger.insert(id.clone(), sha);
    id
}

/// Every file `auth`'s listing shows, page after page.
pub async fn list_all(server: &TestServer, auth: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/files?limit=1000".to_owned();
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = fetch(server, &path, &[("Authorization", auth)]).await;
        assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
        let page = page.json();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

/// Asserts the service serves every file of `ledger` to `auth` and, besides them, only files
/// holding the bytes of an upload of `unconfirmed` (digests of uploads answered with an error or
/// not at all, which may be recorded all the same): the listing and the `files` table hold them,
/// and each downloads whole with its digest. Returns every file served.
pub async fn assert_serves(
    server: &TestServer,
    auth: &str,
    ledger: &Ledger,
    unconfirmed: &BTreeSet<String>,
) -> Ledger {
    let listed: BTreeMap<String, Value> = list_all(server, auth)
        .await
        .into_iter()
        .map(|info| (file_id(&info), info))
        .collect();
    let unlisted: Vec<&String> = ledger
        .keys()
        .filter(|id| !listed.contains_key(*id))
        .collect();
    assert!(
        unlisted.is_empty(),
        "acknowledged uploads are not listed: {unlisted:?}"
    );
    let mut served = ledger.clone();
    for (id, info) in &listed {
        let sha = info["sha256"].as_str().unwrap().to_owned();
        match ledger.get(id) {
            Some(acknowledged) => assert_eq!(&sha, acknowledged, "{info}"),
            None => assert!(
                unconfirmed.contains(&sha),
                "a file no upload sent is listed: {info}"
            ),
        }
        served.insert(id.clone(), sha);
    }
    assert_eq!(
        server.row_count().await,
        i64::try_from(served.len()).unwrap(),
        "rows that are not listed"
    );
    for (id, sha) in &served {
        let got = fetch(server, &format!("/files/{id}"), &[("Authorization", auth)]).await;
        assert_eq!(
            got.status,
            200,
            "{id}: {}",
            String::from_utf8_lossy(&got.body)
        );
        assert_eq!(
            &sha256_hex(&got.body),
            sha,
            "{id} is served with other bytes"
        );
        assert_eq!(
            got.header("etag").as_deref(),
            Some(format!("\"{sha}\"").as_str())
        );
    }
    served
}

/// Asserts the service serves exactly `ledger` to `auth` (see [`assert_serves`]).
pub async fn assert_serves_exactly(server: &TestServer, auth: &str, ledger: &Ledger) {
    assert_serves(server, auth, ledger, &BTreeSet::new()).await;
}

/// Runs `stowage-api gc --grace 0s` beside the server; returns its report.
pub fn collect_garbage(server: &TestServer) -> String {
    let output = run_subcommand(server, "gc", &["--grace", "0s"]);
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "gc failed: {report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    report
}

/// What the blob store holds that no file of `ledger` accounts for (orphan blobs, variants of
/// other files, temporary files, unfinished uploads); panics when a blob of `ledger` is gone.
pub fn unaccounted(server: &TestServer, ledger: &Ledger) -> Vec<String> {
    // s3s-fs writes a PutObject into `.tmp.N.internal.part` and keeps it when the connection is
    // cut (a proxy taken down, a process killed) rather than closed: a file of the test server's
    // own, which S3's API never shows and no client could remove. Anything else counts.
    let held: BTreeSet<String> = server
        .stored_keys()
        .into_iter()
        .filter(|key| {
            let name = key.rsplit('/').next().unwrap_or(key);
            !(server.env().contains_key("S3_ENDPOINT")
                && name.starts_with(".tmp.")
                && name.ends_with(".internal.part"))
        })
        .collect();
    let blobs: BTreeSet<String> = ledger.keys().map(|id| format!("{ACCOUNT}/{id}")).collect();
    let missing: Vec<&String> = blobs.difference(&held).collect();
    assert!(
        missing.is_empty(),
        "blobs of acknowledged files are gone: {missing:?}"
    );
    held.into_iter()
        .filter(|path| !blobs.contains(path) && !is_variant_of_live_file(path, ledger))
        .collect()
}

/// Asserts the blob store holds the blob of every file of `ledger`, variants only of those files,
/// and nothing else: no orphan blob, no temporary file, no unfinished upload.
pub fn assert_store_holds_exactly(server: &TestServer, ledger: &Ledger) {
    let unexpected = unaccounted(server, ledger);
    assert!(
        unexpected.is_empty(),
        "the store holds what no file accounts for: {unexpected:?}"
    );
}

/// `{account}/{file_id}.variants/{name}` of a file of `ledger`, `name` no temporary file's.
fn is_variant_of_live_file(path: &str, ledger: &Ledger) -> bool {
    let mut parts = path.split('/');
    let (Some(account), Some(dir), Some(name), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    account == ACCOUNT.to_string()
        && dir
            .strip_suffix(".variants")
            .is_some_and(|id| ledger.contains_key(id))
        && !name.starts_with('.')
        && !name.ends_with(".part")
}

/// After a fault: the service serves exactly `ledger`, and once `gc` has run the store holds
/// exactly its files (and `gc` finds nothing more to do).
pub async fn assert_nothing_lost_nothing_left(server: &TestServer, ledger: &Ledger) {
    assert_serves_exactly(server, &owner(server), ledger).await;
    let report = collect_garbage(server);
    assert!(
        !report.contains("record without blob"),
        "a recorded file lost its blob: {report}"
    );
    assert_store_holds_exactly(server, ledger);
    let again = collect_garbage(server);
    assert!(
        again.contains("orphan blobs 0, unfinished uploads 0"),
        "gc found more on a second run: {again}"
    );
}

/// Waits until the server process holds at most `at_most` descriptors; panics with what it holds
/// when it does not within 30 s.
pub async fn wait_for_fds_at_most(server: &TestServer, at_most: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open = server.open_fds();
        if open <= at_most {
            return;
        }
        if Instant::now() > deadline {
            let held: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
                .unwrap()
                .flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.display().to_string())
                .collect();
            panic!("the server holds {open} descriptors, more than {at_most}: {held:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What `sql` (a `COUNT(*) AS n` whose `$1` is a database's name) counts on the Postgres server
/// `admin`, asked from its `postgres` database so that the asking is not counted.
pub async fn postgres_count(admin: &str, sql: &str, database: &str) -> usize {
    let db = Database::connect(format!("{admin}/postgres"))
        .await
        .unwrap();
    let row = db
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [database.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    db.close().await.unwrap();
    usize::try_from(row.try_get::<i64>("", "n").unwrap()).unwrap()
}

/// The `host:port` a dependency URL (`scheme://[userinfo@]host:port[/rest]`) points at.
pub fn address_of(url: &str) -> SocketAddr {
    let (_, rest) = url.split_once("://").unwrap();
    let authority = rest.split('/').next().unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    let host_port = host_port.replace("localhost", "127.0.0.1");
    host_port
        .parse()
        .unwrap_or_else(|e| panic!("{url} does not name an IP address and port: {e}"))
}

/// `url` with its host and port replaced by `127.0.0.1:{port}` (a proxy in front of it).
pub fn through(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let userinfo = authority
        .rsplit_once('@')
        .map(|(userinfo, _)| format!("{userinfo}@"))
        .unwrap_or_default();
    format!("{scheme}://{userinfo}127.0.0.1:{port}{path}")
}
