//! `migrate` adopting existing databases: the Pneumatic service's (Postgres, as its Alembic
//! migrations leave it) and Stowage's own of before the adoption migration (SQLite and Postgres).
//! Postgres under `make test-integration` (server URL in `STOWAGE_TEST_DATABASE_URL`).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed step fails the test"
)]

use std::time::Duration;

use sea_orm::sea_query::Alias;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use stowage_application::ports::{FileRepository, Owner, RepoError};
use stowage_domain::{
    AccountId, ContentType, FileId, FileKey, FileRecord, FileRecordParts, Filename, Metadata,
    Sha256Digest, UserId,
};
use stowage_infrastructure::SeaOrmFileRepository;
use stowage_infrastructure::db::{DatabasePool, DatabaseSettings, connect, migrate};
use stowage_migration::files::{Shape, files_indexes, files_table};
use time::OffsetDateTime;

/// The Pneumatic database's schema as its Alembic migrations leave it, one statement a line.
const PNEUMATIC_SCHEMA: &str = include_str!("fixtures/pneumatic_files.sql");

const SPREADSHEET: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
const HOSTILE: &str = "9b2e4c1a-7d3f-4e8a-b5c6-1d2e3f4a5b6c";
const ACCOUNT_LEVEL: &str = "c0ffee00-1234-4abc-8def-0123456789ab";

/// Rows the Pneumatic backend wrote: seven columns, one with a name and type no upload would keep.
const PNEUMATIC_ROWS: &[&str] = &[
    "INSERT INTO files VALUES ('3f2504e0-4f89-41d3-9a0c-0305e82c3301', 11, \
     'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', 'Budget 2024.xlsx', \
     7, 3, '2024-01-02T03:04:05.123456Z')",
    "INSERT INTO files VALUES ('9b2e4c1a-7d3f-4e8a-b5c6-1d2e3f4a5b6c', 5, 'text/html', \
     '../evil\"name\r\n.html', 7, 3, '2024-01-02T03:04:06Z')",
    "INSERT INTO files (file_id, size, content_type, filename, user_id, account_id) \
     VALUES ('c0ffee00-1234-4abc-8def-0123456789ab', 0, 'text/plain', 'empty.txt', NULL, 3)",
];

fn settings(url: String) -> DatabaseSettings {
    DatabaseSettings {
        url: url.into(),
        max_connections: 4,
        connect_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(10),
    }
}

fn server() -> String {
    std::env::var("STOWAGE_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("STOWAGE_TEST_DATABASE_URL is not set"))
        .trim_end_matches('/')
        .to_owned()
}

/// A fresh Postgres database, dropped when the value is.
struct PgDb {
    server: String,
    name: String,
}

impl PgDb {
    async fn create() -> PgDb {
        let server = server();
        let name = format!("stowage_adopt_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(format!("{server}/postgres"))
            .await
            .unwrap();
        admin
            .execute_unprepared(&format!(r#"CREATE DATABASE "{name}""#))
            .await
            .unwrap();
        admin.close().await.unwrap();
        PgDb { server, name }
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    async fn raw(&self) -> DatabaseConnection {
        Database::connect(self.url()).await.unwrap()
    }

    async fn drop_it(self) {
        let admin = Database::connect(format!("{}/postgres", self.server))
            .await
            .unwrap();
        let _ = admin
            .execute_unprepared(&format!(
                r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#,
                self.name
            ))
            .await;
        let _ = admin.close().await;
    }
}

/// The statements of [`PNEUMATIC_SCHEMA`].
fn pneumatic_schema() -> Vec<&'static str> {
    PNEUMATIC_SCHEMA
        .lines()
        .filter(|l| !l.starts_with("--"))
        .collect()
}

async fn run_all(db: &DatabaseConnection, statements: &[&str]) {
    for statement in statements {
        db.execute_unprepared(statement).await.unwrap();
    }
}

/// Rows of `sql`, every column as text, for comparing before and after.
async fn text_rows(db: &DatabaseConnection, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows = db
        .query_all(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            row.column_names()
                .iter()
                .map(|c| row.try_get::<Option<String>>("", c).unwrap())
                .collect()
        })
        .collect()
}

const PG_COLUMNS: &str = "SELECT column_name::text, data_type::text, is_nullable::text, \
     column_default::text, character_maximum_length::text FROM information_schema.columns \
     WHERE table_schema = current_schema() AND table_name = 'files' ORDER BY ordinal_position";
const PG_INDEXES: &str = "SELECT indexname::text, indexdef::text FROM pg_indexes \
     WHERE schemaname = current_schema() AND tablename = 'files' ORDER BY indexname";
const PG_SEVEN: &str = "SELECT file_id::text, size::text, content_type, filename, \
     user_id::text, account_id::text, created_at::text FROM files ORDER BY file_id";

async fn migrate_twice(url: &str) -> DatabasePool {
    let pool = connect(&settings(url.to_owned())).await.unwrap();
    migrate(&pool).await.unwrap();
    migrate(&pool).await.unwrap();
    pool
}

fn id(s: &str) -> FileId {
    FileId::parse(s).unwrap()
}

fn new_record(account: i64, user: Option<i64>) -> FileRecord {
    FileRecord::new(FileRecordParts {
        id: FileId::new_random(),
        filename: Filename::sanitize("new.pdf"),
        content_type: ContentType::from_stored("application/pdf".to_owned()),
        size: 42,
        sha256: Some(Sha256Digest::from_bytes([3; 32])),
        created_at: OffsetDateTime::from_unix_timestamp_nanos(1_763_899_200_123_456_000).unwrap(),
        account_id: AccountId::new(account),
        user_id: user.map(UserId::new),
    })
}

/// Keys and metadata on an adopted table, whose older rows have none: a key is unique in the
/// account, moves with a replacement, and lists by prefix among unkeyed rows.
async fn keyed_rows_work(repo: &SeaOrmFileRepository, account: AccountId, user: UserId) {
    let key = FileKey::parse("reports/2024.pdf").unwrap();
    let keyed = |key: &FileKey| {
        new_record(account.get(), Some(user.get()))
            .with_key(Some(key.clone()))
            .with_metadata(Metadata::parse(r#"{"year":2024}"#).unwrap())
    };
    let first = keyed(&key);
    repo.insert(&first, &[]).await.unwrap();
    assert_eq!(repo.get(first.id()).await.unwrap(), first);
    let taken = repo.insert(&keyed(&key), &[]).await;
    assert!(matches!(taken, Err(RepoError::KeyTaken)), "{taken:?}");
    let second = keyed(&key);
    repo.insert_replacing(&second, first.id(), &[])
        .await
        .unwrap();
    assert_eq!(repo.get_by_key(account, &key).await.unwrap(), second);
    let later = OffsetDateTime::now_utc() + std::time::Duration::from_secs(1);
    let replaced = repo.scan_replaced(later, 10).await.unwrap();
    assert_eq!(
        replaced.iter().map(FileRecord::id).collect::<Vec<_>>(),
        [first.id()]
    );
    let page = repo
        .list(
            Owner::User(user, account),
            10,
            None,
            Some("reports/".to_owned()),
        )
        .await
        .unwrap();
    assert_eq!(page.items, [second]);
}

#[tokio::test]
#[ignore = "needs Postgres: make test-integration"]
async fn a_pneumatic_database_is_adopted_without_changing_its_columns() {
    let pg = PgDb::create().await;
    let raw = pg.raw().await;
    run_all(&raw, &pneumatic_schema()).await;
    run_all(&raw, PNEUMATIC_ROWS).await;
    let columns_before = text_rows(&raw, PG_COLUMNS).await;
    let rows_before = text_rows(&raw, PG_SEVEN).await;
    let indexes_before = text_rows(&raw, PG_INDEXES).await;

    let pool = migrate_twice(&pg.url()).await;

    let columns_after = text_rows(&raw, PG_COLUMNS).await;
    assert_eq!(
        columns_after[..7],
        columns_before[..],
        "a Pneumatic column changed"
    );
    let added: Vec<_> = columns_after[7..]
        .iter()
        .map(|c| (c[0].clone().unwrap(), c[2].clone().unwrap()))
        .collect();
    assert_eq!(
        added,
        [
            "sha256",
            "storage_key",
            "key",
            "metadata",
            "replaced_at",
            "visibility"
        ]
        .map(|c| (c.to_owned(), "YES".to_owned()))
    );
    assert_eq!(
        text_rows(&raw, PG_SEVEN).await,
        rows_before,
        "a row changed"
    );
    assert_eq!(
        text_rows(&raw, "SELECT version_num::text FROM alembic_version").await,
        [[Some("5ba2db086f1a".to_owned())]]
    );
    let indexes_after = text_rows(&raw, PG_INDEXES).await;
    for index in &indexes_before {
        assert!(indexes_after.contains(index), "{index:?} is gone");
    }
    let names: Vec<_> = indexes_after
        .iter()
        .map(|i| i[0].clone().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "files_pkey",
            "idx_files_account_key",
            "idx_files_created_at",
            "idx_files_owner_created",
            "idx_files_replaced_at",
            "ix_files_account_id",
            "ix_files_user_id"
        ],
        "only the missing index, the key indexes and the listing index are added"
    );

    // What the Pneumatic backend's data migration does, after the adoption: seven columns.
    raw.execute_unprepared(
        "INSERT INTO files (file_id, size, content_type, filename, user_id, account_id) \
         VALUES ('0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6', 3, 'image/png', 'late.png', 7, 3)",
    )
    .await
    .unwrap();

    let repo = SeaOrmFileRepository::new(pool.clone());
    let sheet = repo.get(id(SPREADSHEET)).await.unwrap();
    assert_eq!(sheet.sha256(), None);
    assert_eq!(sheet.etag(), SPREADSHEET);
    assert_eq!(sheet.size(), 11);
    assert_eq!(sheet.filename().as_str(), "Budget_2024.xlsx");
    assert_eq!(
        sheet.content_type().as_str(),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert_eq!(sheet.account_id(), AccountId::new(3));
    assert_eq!(sheet.user_id(), Some(UserId::new(7)));
    let hostile = repo.get(id(HOSTILE)).await.unwrap();
    assert_eq!(hostile.filename().as_str(), "evil_name_.html");
    assert_eq!(hostile.content_type().as_str(), "application/octet-stream");
    let late = repo
        .get(id("0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"))
        .await
        .unwrap();
    assert_eq!(late.content_type().as_str(), "image/png");

    let user_files = repo
        .list(
            Owner::User(UserId::new(7), AccountId::new(3)),
            1,
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(user_files.items.len(), 1);
    let rest = repo
        .list(
            Owner::User(UserId::new(7), AccountId::new(3)),
            10,
            user_files.next,
            None,
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 2);
    let account_files = repo
        .list(Owner::Account(AccountId::new(3)), 10, None, None)
        .await
        .unwrap();
    assert_eq!(
        account_files
            .items
            .iter()
            .map(FileRecord::id)
            .collect::<Vec<_>>(),
        [id(ACCOUNT_LEVEL)]
    );

    let uploaded = new_record(3, Some(7));
    repo.insert(&uploaded, &[]).await.unwrap();
    assert_eq!(repo.get(uploaded.id()).await.unwrap(), uploaded);
    repo.delete(uploaded.id(), &[]).await.unwrap();
    assert!(repo.get(uploaded.id()).await.is_err());

    assert_eq!(repo.count_without_digest().await.unwrap(), 4);
    let first = repo.scan_without_digest(None, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let digest = Sha256Digest::from_bytes([5; 32]);
    repo.set_digest(first[0].id(), &digest).await.unwrap();
    assert_eq!(
        repo.get(first[0].id()).await.unwrap().sha256(),
        Some(&digest)
    );
    let next = repo
        .scan_without_digest(Some(first[1].id()), 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 2);
    assert_eq!(repo.count_without_digest().await.unwrap(), 3);
    assert_eq!(repo.scan(None, 100).await.unwrap().len(), 4);
    keyed_rows_work(&repo, AccountId::new(3), UserId::new(7)).await;

    pool.close().await.unwrap();
    raw.close().await.unwrap();
    pg.drop_it().await;
}

#[tokio::test]
#[ignore = "needs Postgres: make test-integration"]
async fn replicas_adopting_at_once_all_succeed() {
    let pg = PgDb::create().await;
    let raw = pg.raw().await;
    run_all(&raw, &pneumatic_schema()).await;
    run_all(&raw, PNEUMATIC_ROWS).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = pg.url();
        tasks.push(tokio::spawn(async move {
            let pool = connect(&settings(url)).await.unwrap();
            let result = migrate(&pool).await;
            pool.close().await.unwrap();
            result
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        text_rows(&raw, "SELECT count(*)::text FROM files").await,
        [[Some("3".to_owned())]]
    );
    raw.close().await.unwrap();
    pg.drop_it().await;
}

/// Stowage's schema as its first migration made it, before the adoption migration existed.
async fn first_shape(db: &DatabaseConnection) {
    let backend = db.get_database_backend();
    let table = files_table(Alias::new("files"), Shape::First);
    db.execute(backend.build(&table)).await.unwrap();
    for index in files_indexes() {
        db.execute(backend.build(&index)).await.unwrap();
    }
    run_all(
        db,
        &[
            "CREATE TABLE seaql_migrations (version VARCHAR NOT NULL PRIMARY KEY, \
             applied_at BIGINT NOT NULL)",
            "INSERT INTO seaql_migrations VALUES ('m20261123_000001_create_files', 1763899200)",
        ],
    )
    .await;
}

/// An existing Stowage database keeps its rows and takes rows without a digest afterwards.
async fn existing_stowage_database_is_adopted(url: String) {
    let raw_url = if url.starts_with("sqlite:") {
        format!("{url}?mode=rwc")
    } else {
        url.clone()
    };
    let raw = Database::connect(raw_url).await.unwrap();
    first_shape(&raw).await;
    // A row as Stowage wrote it then: the nine columns of the first shape.
    let kept = new_record(1, Some(2));
    raw.execute(Statement::from_sql_and_values(
        raw.get_database_backend(),
        "INSERT INTO files (file_id, size, content_type, filename, user_id, account_id, \
         created_at, sha256, storage_key) VALUES ($1, 42, $2, $3, $4, $5, $6, $7, $8)",
        [
            kept.id().as_uuid().into(),
            kept.content_type().as_str().into(),
            kept.filename().as_str().into(),
            2_i64.into(),
            1_i64.into(),
            kept.created_at().into(),
            kept.sha256().map(Sha256Digest::to_hex).into(),
            kept.blob_key().to_string().into(),
        ],
    ))
    .await
    .unwrap();
    raw.close().await.unwrap();

    let pool = migrate_twice(&url).await;
    let repo = SeaOrmFileRepository::new(pool.clone());
    assert_eq!(repo.get(kept.id()).await.unwrap(), kept);
    assert_eq!(repo.count_without_digest().await.unwrap(), 0);
    let later = new_record(1, Some(2));
    let legacy = FileRecord::new(FileRecordParts {
        sha256: None,
        id: later.id(),
        filename: later.filename().clone(),
        content_type: later.content_type().clone(),
        size: later.size(),
        created_at: later.created_at(),
        account_id: later.account_id(),
        user_id: later.user_id(),
    });
    repo.insert(&legacy, &[]).await.unwrap();
    assert_eq!(repo.get(legacy.id()).await.unwrap(), legacy);
    assert_eq!(repo.count_without_digest().await.unwrap(), 1);
    let page = repo
        .list(
            Owner::User(UserId::new(2), AccountId::new(1)),
            10,
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    pool.close().await.unwrap();
}

#[tokio::test]
async fn an_existing_sqlite_database_is_rebuilt_with_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/stowage.db", dir.path().display());
    existing_stowage_database_is_adopted(url.clone()).await;

    // A seven-column insert is valid, and gets a created_at the repository can read and order.
    let raw = Database::connect(&url).await.unwrap();
    raw.execute(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "INSERT INTO files (file_id, size, content_type, filename, user_id, account_id) \
         VALUES (?, 1, 'text/plain', 'a.txt', 2, 1)",
        [uuid::Uuid::new_v4().into()],
    ))
    .await
    .unwrap();
    raw.close().await.unwrap();
    let pool = migrate_twice(&url).await;
    let page = SeaOrmFileRepository::new(pool.clone())
        .list(
            Owner::User(UserId::new(2), AccountId::new(1)),
            10,
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(page.items[0].created_at() > page.items[1].created_at());
    let repo = SeaOrmFileRepository::new(pool.clone());
    keyed_rows_work(&repo, AccountId::new(1), UserId::new(2)).await;
    pool.close().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Postgres: make test-integration"]
async fn an_existing_postgres_database_keeps_its_rows() {
    let pg = PgDb::create().await;
    existing_stowage_database_is_adopted(pg.url()).await;
    let raw = pg.raw().await;
    let columns = text_rows(&raw, PG_COLUMNS).await;
    let shape: Vec<_> = columns
        .iter()
        .map(|c| (c[0].clone().unwrap(), c[2].clone().unwrap(), c[3].is_some()))
        .collect();
    assert!(shape.contains(&("sha256".to_owned(), "YES".to_owned(), false)));
    assert!(shape.contains(&("storage_key".to_owned(), "YES".to_owned(), false)));
    assert!(shape.contains(&("created_at".to_owned(), "NO".to_owned(), true)));
    raw.execute_unprepared(
        "INSERT INTO files (file_id, size, content_type, filename, user_id, account_id) \
         VALUES ('0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6', 3, 'image/png', 'late.png', 7, 3)",
    )
    .await
    .unwrap();
    raw.close().await.unwrap();
    pg.drop_it().await;
}

#[tokio::test]
#[ignore = "needs Postgres: make test-integration"]
async fn a_fresh_postgres_database_gets_the_adopted_shape() {
    let pg = PgDb::create().await;
    let pool = migrate_twice(&pg.url()).await;
    let raw = pg.raw().await;
    let columns = text_rows(&raw, PG_COLUMNS).await;
    let nullable: Vec<_> = columns
        .iter()
        .filter(|c| c[2].as_deref() == Some("YES"))
        .map(|c| c[0].clone().unwrap())
        .collect();
    assert_eq!(
        nullable,
        [
            "user_id",
            "sha256",
            "storage_key",
            "key",
            "metadata",
            "replaced_at",
            "visibility"
        ]
    );
    raw.execute_unprepared(
        "INSERT INTO files (file_id, size, content_type, filename, user_id, account_id) \
         VALUES ('0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6', 3, 'image/png', 'late.png', 7, 3)",
    )
    .await
    .unwrap();
    let late = SeaOrmFileRepository::new(pool.clone())
        .get(id("0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"))
        .await
        .unwrap();
    assert_eq!(late.sha256(), None);
    pool.close().await.unwrap();
    raw.close().await.unwrap();
    pg.drop_it().await;
}
