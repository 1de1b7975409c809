//! The maintenance commands killed with SIGKILL while they work: `gc` in the middle of removing
//! orphans, `migrate` in the middle of a fresh database's migrations. Run again, each finishes
//! the job, and the service serves what it acknowledged, nothing else.

use std::process::Child;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use stowage_tests::{TestServer, pattern, postgres_server, run_subcommand, spawn_subcommand};

use crate::common::{
    ACCOUNT, Ledger, MIB, assert_nothing_lost_nothing_left, owner, postgres_count, upload_recorded,
};

/// Orphan blobs planted for `gc`: enough that removing them takes a while on disk too.
const ORPHANS: usize = 2000;

/// Kills `child` and reaps it; panics if it had already exited, since it was meant to be killed
/// while it worked.
fn kill_working(child: &mut Child, what: &str) {
    if let Some(status) = child.try_wait().unwrap() {
        panic!("{what} exited ({status}) before it could be killed");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_gc_then_gc_again_removes_every_orphan_and_keeps_every_file() {
    let server = TestServer::process_with(&[]).await;
    let mut ledger = Ledger::new();
    for n in 0..5 {
        let data = pattern(100 * 1024 + n, 500 + n as u64);
        upload_recorded(&server, &owner(&server), &mut ledger, "live.bin", data).await;
    }
    // Blobs whose record is gone, as a crash between a blob's write and its insert leaves them.
    for _ in 0..ORPHANS {
        let path = server.blob_path(ACCOUNT, &uuid::Uuid::new_v4().to_string());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"orphan").unwrap();
    }
    let planted = server.stored_keys().len();
    assert_eq!(planted, ORPHANS + ledger.len());

    let mut gc = spawn_subcommand(&server, "gc", &["--grace", "0s"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.stored_keys().len() == planted {
        assert!(Instant::now() < deadline, "gc removed nothing");
        assert!(
            gc.try_wait().unwrap().is_none(),
            "gc exited without removing anything"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    kill_working(&mut gc, "gc");
    let left = server.stored_keys().len() - ledger.len();
    assert!(
        left > 0 && left < ORPHANS,
        "the kill did not land while gc removed orphans: {left} of {ORPHANS} left"
    );

    assert_nothing_lost_nothing_left(&server, &ledger).await;
}

/// A server whose database is fresh (never migrated), stopped: its environment is what
/// `migrate` runs with.
async fn server_on_a_fresh_database() -> TestServer {
    let mut server = TestServer::process_with(&[("AUTO_MIGRATE", "false")]).await;
    server.stop();
    assert_eq!(
        migrations_applied(&server).await,
        None,
        "the database is not fresh"
    );
    server
}

/// The versions in the migration table of the server's database, `None` when there is none.
async fn migrations_applied(server: &TestServer) -> Option<Vec<String>> {
    let db = Database::connect(&server.database_url).await.unwrap();
    let backend = db.get_database_backend();
    let exists = match backend {
        DbBackend::Postgres => {
            "SELECT COUNT(*) AS n FROM pg_tables WHERE tablename = 'seaql_migrations'"
        }
        _ => {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'"
        }
    };
    let row = db
        .query_one(Statement::from_string(backend, exists))
        .await
        .unwrap()
        .unwrap();
    if row.try_get::<i64>("", "n").unwrap() == 0 {
        db.close().await.unwrap();
        return None;
    }
    let versions = db
        .query_all(Statement::from_string(
            backend,
            "SELECT version FROM seaql_migrations ORDER BY version",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "version").unwrap())
        .collect();
    db.close().await.unwrap();
    Some(versions)
}

/// Whether `migrate` is in the middle of its work on the server's database: on Postgres it holds
/// the migration lock (its work is one transaction, invisible until it commits); on SQLite it has
/// recorded a migration (each is committed on its own).
async fn migrating(server: &TestServer) -> bool {
    match postgres_server() {
        Some(admin) => {
            let database = server.database_url.rsplit('/').next().unwrap();
            let sql = "SELECT COUNT(*) AS n FROM pg_locks l JOIN pg_database d ON l.database = d.oid \
                       WHERE l.locktype = 'advisory' AND l.granted AND d.datname = $1";
            postgres_count(&admin, sql, database).await > 0
        }
        None => {
            let Ok(db) = Database::connect(&server.database_url).await else {
                return false;
            };
            let recorded = db
                .query_one(Statement::from_string(
                    DbBackend::Sqlite,
                    "SELECT COUNT(*) AS n FROM seaql_migrations",
                ))
                .await;
            let _ = db.close().await;
            matches!(recorded, Ok(Some(row)) if row.try_get::<i64>("", "n").unwrap_or(0) > 0)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_migrate_on_a_fresh_database_then_the_service_migrates_and_serves() {
    let reference = server_on_a_fresh_database().await;
    let output = run_subcommand(&reference, "migrate", &[]);
    assert!(output.status.success(), "{output:?}");
    let all = migrations_applied(&reference).await.unwrap();
    drop(reference);

    // A kill lands mid-way when migrate is still at work once it is seen working; a migrate that
    // finished first is tried again on another fresh database.
    let mut server = None;
    for _ in 0..10 {
        let candidate = server_on_a_fresh_database().await;
        let mut migrate = spawn_subcommand(&candidate, "migrate", &[]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !migrating(&candidate).await && migrate.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "migrate did not get going");
        }
        if migrate.try_wait().unwrap().is_some() {
            continue;
        }
        migrate.kill().unwrap();
        migrate.wait().unwrap();
        let applied = migrations_applied(&candidate).await.unwrap_or_default();
        if applied == all {
            // It committed between the look and the kill.
            continue;
        }
        // What a killed migrate leaves is a prefix of the migrations (on Postgres, none).
        assert_eq!(applied[..], all[..applied.len()], "{applied:?}");
        if postgres_server().is_some() {
            assert!(
                applied.is_empty(),
                "a killed transaction committed: {applied:?}"
            );
        }
        server = Some(candidate);
        break;
    }
    let mut server = server.expect("no migrate could be killed mid-way in ten tries");

    // serve migrates the rest on start, and serves.
    server.set_env("AUTO_MIGRATE", "true");
    server.start().await;
    assert_eq!(migrations_applied(&server).await.as_ref(), Some(&all));
    let mut ledger = Ledger::new();
    upload_recorded(
        &server,
        &owner(&server),
        &mut ledger,
        "after.bin",
        pattern(MIB, 9),
    )
    .await;
    let again = run_subcommand(&server, "migrate", &[]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(migrations_applied(&server).await.as_ref(), Some(&all));
    assert_nothing_lost_nothing_left(&server, &ledger).await;
}
