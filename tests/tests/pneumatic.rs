//! Stowage dropped onto a Pneumatic deployment: its Postgres database as the Pneumatic Alembic
//! migrations leave it, its objects in per-account buckets, its rows served as they are, and
//! `stowage-api digest` filling in their digests.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Output;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use sha2::{Digest, Sha256};
use stowage_tests::{
    S3Server, TestServer, client, create_database, header, postgres_server, run_subcommand,
};

const NEEDS: &str = "needs Postgres and s3s-fs: make test-integration";
const PREFIX: &str = "pneu";
const ACCOUNT: i64 = 3;
const USER: i64 = 7;

/// The Pneumatic database's schema as its Alembic migrations leave it, one statement a line.
const SCHEMA: &str = include_str!("../../crates/infrastructure/tests/fixtures/pneumatic_files.sql");

/// A file the Pneumatic service stored.
struct Legacy {
    id: &'static str,
    user: Option<i64>,
    content_type: &'static str,
    filename: &'static str,
    bytes: &'static [u8],
    /// The `Content-Type` and ASCII file name Stowage serves it with.
    served_type: &'static str,
    served_name: &'static str,
}

const LEGACY: &[Legacy] = &[
    Legacy {
        id: "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
        user: Some(USER),
        content_type: "application/pdf",
        filename: "Quarterly report 2024.pdf",
        bytes: b"%PDF-1.4 a legacy report",
        served_type: "application/pdf",
        served_name: "Quarterly_report_2024.pdf",
    },
    Legacy {
        id: "9b2e4c1a-7d3f-4e8a-b5c6-1d2e3f4a5b6c",
        user: Some(USER),
        content_type: "text/html",
        filename: "../evil\"name\r\n.html",
        bytes: b"<script>alert(1)</script>",
        served_type: "application/octet-stream",
        served_name: "evil_name_.html",
    },
    Legacy {
        id: "c0ffee00-1234-4abc-8def-0123456789ab",
        user: None,
        content_type: "text/plain; charset=utf-8",
        filename: "notes.txt",
        bytes: b"account-level notes\n",
        served_type: "text/plain",
        served_name: "notes.txt",
    },
];

/// A row whose id is an object key of an older store, which no request can name.
const GCS_KEY: &str = "a1b2c3d4_old report.pdf";

/// A row whose object was never written.
const LOST: &str = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9";

fn sha_hex(bytes: &[u8]) -> String {
    hex_of(&Sha256::digest(bytes))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sql_text(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn insert_sql(
    id: &str,
    size: usize,
    content_type: &str,
    filename: &str,
    user: Option<i64>,
) -> String {
    // Seven columns, as the Pneumatic backend writes them: created_at takes its default.
    format!(
        "INSERT INTO files (file_id, size, content_type, filename, user_id, account_id) \
         VALUES ({}, {size}, {}, {}, {}, {ACCOUNT})",
        sql_text(id),
        sql_text(content_type),
        sql_text(filename),
        user.map_or("NULL".to_owned(), |u| u.to_string())
    )
}

/// Inserts `file`'s row as the Pneumatic backend wrote it.
async fn insert_legacy(db: &DatabaseConnection, file: &Legacy) {
    let sql = insert_sql(
        file.id,
        file.bytes.len(),
        file.content_type,
        file.filename,
        file.user,
    );
    db.execute_unprepared(&sql).await.unwrap();
}

async fn pneumatic_database(server: &str) -> (String, DatabaseConnection) {
    let name = create_database(server, "stowage_pneumatic").await;
    let url = format!("{server}/{name}");
    let db = Database::connect(&url).await.unwrap();
    for statement in SCHEMA.lines().filter(|l| !l.starts_with("--")) {
        db.execute_unprepared(statement).await.unwrap();
    }
    for file in LEGACY {
        insert_legacy(&db, file).await;
    }
    db.execute_unprepared(&insert_sql(LOST, 4, "image/png", "lost.png", Some(USER)))
        .await
        .unwrap();
    // The Pneumatic backend's migration from Google Cloud Storage copied object keys in as ids.
    db.execute_unprepared(&insert_sql(
        GCS_KEY,
        9,
        "application/pdf",
        "old.pdf",
        Some(USER),
    ))
    .await
    .unwrap();
    (url, db)
}

/// Puts an object where the Pneumatic service kept it: bucket `{prefix}-{account}`, key `{id}`.
fn put_object(s3: &S3Server, id: &str, bytes: &[u8]) {
    let bucket = s3.dir.path().join(format!("{PREFIX}-{ACCOUNT}"));
    std::fs::create_dir_all(&bucket).unwrap();
    std::fs::write(bucket.join(id), bytes).unwrap();
}

/// User, password, host and port of `postgres://user:password@host:port`.
fn postgres_parts(server: &str) -> (String, String, String, String) {
    let rest = server.split_once("://").unwrap().1;
    let (credentials, address) = rest.rsplit_once('@').unwrap();
    let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
    let (host, port) = address.rsplit_once(':').unwrap_or((address, "5432"));
    (
        user.to_owned(),
        password.to_owned(),
        host.to_owned(),
        port.trim_end_matches('/').to_owned(),
    )
}

fn auth_for(server: &TestServer, user: Option<i64>) -> String {
    server.bearer(user, ACCOUNT)
}

async fn download(server: &TestServer, file: &Legacy) -> reqwest::Response {
    client()
        .get(server.url(&format!("/files/{}", file.id)))
        .header("Authorization", auth_for(server, file.user))
        .send()
        .await
        .unwrap()
}

async fn info(server: &TestServer, id: &str, user: Option<i64>) -> serde_json::Value {
    let response = client()
        .get(server.url(&format!("/files/{id}/info")))
        .header("Authorization", auth_for(server, user))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn run_digest(server: &TestServer, args: &[&str]) -> Output {
    run_subcommand(server, "digest", args)
}

#[tokio::test]
#[ignore = "needs Postgres and s3s-fs: make test-integration"]
async fn a_pneumatic_deployment_is_served_and_digested() {
    let pg = postgres_server().expect(NEEDS);
    let (database_url, db) = pneumatic_database(&pg).await;
    // Only Pneumatic's own names, as its docker-compose sets them; the harness's Stowage names
    // are blanked, which Stowage reads as unset.
    let s3 = S3Server::spawn();
    let (user, password, host, port) = postgres_parts(&pg);
    let database = database_url.rsplit('/').next().unwrap().to_owned();
    let endpoint = s3.endpoint();
    // A process: the test reads its log.
    let server = TestServer::process_with(&[
        ("STORAGE_BACKEND", ""),
        ("DATABASE_URL", ""),
        ("AUTH_SECRET_KEY", ""),
        (
            "DJANGO_SECRET_KEY",
            "django_secret_django_secret_django_secret",
        ),
        ("POSTGRES_USER", &user),
        ("POSTGRES_PASSWORD", &password),
        ("POSTGRES_HOST", &host),
        ("POSTGRES_PORT", &port),
        ("POSTGRES_DB", &database),
        ("STORAGE_TYPE", "local"),
        ("SEAWEEDFS_S3_ENDPOINT", &endpoint),
        ("SEAWEEDFS_S3_ACCESS_KEY", &s3.access_key),
        ("SEAWEEDFS_S3_SECRET_KEY", &s3.secret_key),
        ("SEAWEEDFS_S3_REGION", "us-central1"),
        ("BUCKET_PREFIX", PREFIX),
        ("MAX_FILE_SIZE", "104857600"),
        ("CONFIG", "Development"),
    ])
    .await;
    let read = server
        .log_line(|line| {
            line["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Pneumatic file service's environment names"))
        })
        .await
        .to_string();
    for name in [
        "DJANGO_SECRET_KEY",
        "POSTGRES_HOST",
        "STORAGE_TYPE",
        "BUCKET_PREFIX",
    ] {
        assert!(read.contains(name), "{read}");
    }
    assert!(
        !read.contains("django_secret_django"),
        "a value was logged: {read}"
    );
    for file in LEGACY {
        put_object(&s3, file.id, file.bytes);
    }

    // Every legacy file downloads as it was stored, its id as its ETag.
    for file in LEGACY {
        let response = download(&server, file).await;
        if response.status() != 200 {
            let log = server.log();
            panic!(
                "{} answered {}: {}",
                file.id,
                response.status(),
                &log[log.len().saturating_sub(3000)..]
            );
        }
        let etag = format!("\"{}\"", file.id);
        assert_eq!(header(&response, "etag").as_deref(), Some(etag.as_str()));
        assert_eq!(
            header(&response, "content-type").as_deref(),
            Some(file.served_type)
        );
        let disposition = header(&response, "content-disposition").unwrap();
        assert!(
            disposition.contains(&format!("filename=\"{}\"", file.served_name)),
            "{disposition}"
        );
        assert_eq!(response.bytes().await.unwrap().as_ref(), file.bytes);
        assert_eq!(
            info(&server, file.id, file.user).await["sha256"],
            serde_json::Value::Null
        );
        let revalidated = client()
            .get(server.url(&format!("/files/{}", file.id)))
            .header("Authorization", auth_for(&server, file.user))
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(revalidated.status(), 304);
    }

    // The dry run lists every legacy row, changes nothing, and fails on the lost blob.
    let dry = run_digest(&server, &["--dry-run"]);
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(!dry.status.success(), "{out}");
    for file in LEGACY {
        assert!(out.contains(&format!("legacy row {} ", file.id)), "{out}");
    }
    assert!(out.contains(&format!("legacy row {LOST} ")), "{out}");
    assert!(out.contains("blob missing"), "{out}");
    assert_eq!(out.matches("blob present").count(), LEGACY.len(), "{out}");
    assert!(out.contains("digests written 0"), "{out}");
    assert_eq!(
        info(&server, LEGACY[0].id, LEGACY[0].user).await["sha256"],
        serde_json::Value::Null
    );

    // The real run fills in every digest it can, and still fails on the lost blob.
    let run = run_digest(&server, &[]);
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(!run.status.success(), "{out}");
    assert!(
        out.contains(&format!("digests written {}", LEGACY.len())),
        "{out}"
    );
    for file in LEGACY {
        let digest = sha_hex(file.bytes);
        assert_eq!(
            info(&server, file.id, file.user).await["sha256"],
            digest.as_str()
        );
        let response = download(&server, file).await;
        let etag = format!("\"{digest}\"");
        assert_eq!(header(&response, "etag").as_deref(), Some(etag.as_str()));
        // The id ETag a client kept from before still validates: the bytes are the same.
        let revalidated = client()
            .get(server.url(&format!("/files/{}", file.id)))
            .header("Authorization", auth_for(&server, file.user))
            .header("If-None-Match", format!("\"{}\"", file.id))
            .send()
            .await
            .unwrap();
        assert_eq!(revalidated.status(), 304);
    }
    // The listing has every servable row, and leaves out the one no request could name.
    let listing = client()
        .get(server.url("/files?limit=100"))
        .header("Authorization", auth_for(&server, Some(USER)))
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), 200);
    let listing: serde_json::Value = listing.json().await.unwrap();
    let listed: Vec<&str> = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item["file_id"].as_str())
        .collect();
    assert!(
        listed.contains(&LEGACY[0].id) && listed.contains(&LOST),
        "{listing}"
    );
    assert!(!listed.contains(&GCS_KEY), "{listing}");
    assert!(server.log().contains("ids that are not lower-case UUIDs"));

    // A second run has nothing left but the lost row.
    let again = run_digest(&server, &[]);
    let out = String::from_utf8_lossy(&again.stdout);
    assert!(out.contains("legacy rows 1,"), "{out}");

    // A new upload goes into the Pneumatic bucket layout.
    let auth = auth_for(&server, Some(USER));
    let uploaded = server
        .upload_ok(&auth, "fresh.txt", "text/plain", b"fresh bytes".to_vec())
        .await;
    let fresh_id = uploaded["file_id"].as_str().unwrap().to_owned();
    assert_eq!(uploaded["sha256"], sha_hex(b"fresh bytes").as_str());
    let bucket = s3.dir.path().join(format!("{PREFIX}-{ACCOUNT}"));
    assert!(
        bucket.join(&fresh_id).exists(),
        "not at {PREFIX}-{ACCOUNT}/{fresh_id}"
    );

    // A row the Pneumatic backend inserts after the adoption (seven columns) is served too.
    let late = Legacy {
        id: "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6",
        user: Some(USER),
        content_type: "image/png",
        filename: "late.png",
        bytes: b"\x89PNG\r\n\x1a\nlate",
        served_type: "image/png",
        served_name: "late.png",
    };
    insert_legacy(&db, &late).await;
    put_object(&s3, late.id, late.bytes);
    let response = download(&server, &late).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "etag").as_deref(),
        Some(format!("\"{}\"", late.id).as_str())
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), late.bytes);
    let alembic = db
        .query_one(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT version_num FROM alembic_version",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        alembic.try_get::<String>("", "version_num").unwrap(),
        "5ba2db086f1a"
    );

    db.close().await.unwrap();
    drop(server);
    let admin = Database::connect(format!("{pg}/postgres")).await.unwrap();
    let name = database_url.rsplit('/').next().unwrap();
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}
