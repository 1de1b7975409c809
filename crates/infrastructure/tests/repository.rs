//! The [`FileRepository`] contract, run on SQLite always and on Postgres under
//! `make test-integration` (server URL in `STOWAGE_TEST_DATABASE_URL`, one fresh database per test).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed step fails the test"
)]

use std::env;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use stowage_application::ports::{FileRepository, ListCursor, Owner, RepoError};
use stowage_domain::{
    AccountId, ContentType, FileId, FileRecord, FileRecordParts, Filename, Sha256Digest, UserId,
};
use stowage_infrastructure::SeaOrmFileRepository;
use stowage_infrastructure::db::{DatabasePool, DatabaseSettings, connect, migrate};
use tempfile::TempDir;
use time::OffsetDateTime;

const POSTGRES_URL_VAR: &str = "STOWAGE_TEST_DATABASE_URL";

/// 2025-11-23T12:00:00.123456Z: microsecond precision with a non-zero fraction, as uploads store.
const BASE_NANOS: i128 = 1_763_899_200_123_456_000;

fn at(offset_micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(BASE_NANOS + i128::from(offset_micros) * 1_000)
        .unwrap()
}

fn settings(url: String) -> DatabaseSettings {
    DatabaseSettings {
        url: url.into(),
        max_connections: 4,
        connect_timeout: Duration::from_millis(500),
        statement_timeout: Duration::from_secs(5),
    }
}

/// A digest that differs per record, so a mixed-up row shows.
fn digest_of(id: FileId) -> Sha256Digest {
    let mut bytes = [0xa5; 32];
    bytes[..16].copy_from_slice(id.as_uuid().as_bytes());
    Sha256Digest::from_bytes(bytes)
}

fn record_at(account: i64, user: Option<i64>, created_at: OffsetDateTime) -> FileRecord {
    let id = FileId::new_random();
    FileRecord::new(FileRecordParts {
        id,
        filename: Filename::sanitize("quarterly report.pdf"),
        content_type: ContentType::from_stored("application/pdf".to_owned()),
        size: 1234,
        sha256: Some(digest_of(id)),
        created_at,
        account_id: AccountId::new(account),
        user_id: user.map(UserId::new),
    })
}

async fn insert_all(repo: &dyn FileRepository, records: &[FileRecord]) {
    for record in records {
        repo.insert(record, &[]).await.unwrap();
    }
}

/// `records` as a listing must return them: newest first, ties broken by the larger id.
fn newest_first(records: &[FileRecord]) -> Vec<FileRecord> {
    let mut sorted = records.to_vec();
    sorted.sort_by_key(|r| std::cmp::Reverse((r.created_at(), r.id())));
    sorted
}

/// Walks a whole listing page by page, returning every page's items.
async fn walk(repo: &dyn FileRepository, owner: Owner, limit: u32) -> Vec<Vec<FileRecord>> {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = repo.list(owner, limit, cursor, None).await.unwrap();
        assert!(page.items.len() <= limit as usize, "page over the limit");
        pages.push(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return pages,
        }
        assert!(pages.len() <= 100, "the listing does not end");
    }
}

/// Asserts that `call` failed as the database being unavailable.
fn assert_unavailable<T: std::fmt::Debug>(call: &str, result: Result<T, RepoError>) {
    assert!(
        matches!(result, Err(RepoError::Unavailable(_))),
        "{call}: {result:?}"
    );
}

fn ids(records: &[FileRecord]) -> Vec<FileId> {
    records.iter().map(FileRecord::id).collect()
}

/// Behaviours every [`FileRepository`] must have; each gets an empty, migrated database.
mod contract {
    use super::*;

    pub async fn insert_then_get_returns_an_equal_record(repo: &dyn FileRepository) {
        let big = FileRecord::new(FileRecordParts {
            id: FileId::new_random(),
            filename: Filename::sanitize("отчёт 2024.pdf"),
            content_type: ContentType::from_stored("application/octet-stream".to_owned()),
            size: 5 * 1024 * 1024 * 1024 + 7,
            sha256: Some(
                Sha256Digest::parse_hex(
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                )
                .unwrap(),
            ),
            created_at: at(0),
            account_id: AccountId::new(i64::MAX),
            user_id: Some(UserId::new(42)),
        });
        let account_level = record_at(3, None, at(1));
        let cases = [
            ("user upload over 4 GiB", big),
            ("account-level", account_level),
        ];

        for (name, record) in cases {
            repo.insert(&record, &[]).await.unwrap();
            let got = repo.get(record.id()).await.unwrap();

            assert_eq!(got, record, "{name}");
            assert_eq!(got.created_at(), record.created_at(), "{name}: created_at");
            assert_eq!(got.user_id(), record.user_id(), "{name}: user_id");
            assert_eq!(got.size(), record.size(), "{name}: size");
        }
    }

    pub async fn get_returns_not_found_for_an_unknown_id(repo: &dyn FileRepository) {
        repo.insert(&record_at(1, Some(2), at(0)), &[])
            .await
            .unwrap();

        let got = repo.get(FileId::new_random()).await;

        assert!(matches!(got, Err(RepoError::NotFound)), "{got:?}");
    }

    pub async fn insert_of_a_duplicate_id_fails_and_keeps_the_first(repo: &dyn FileRepository) {
        let first = record_at(1, Some(2), at(0));
        let clash = FileRecord::new(FileRecordParts {
            id: first.id(),
            filename: Filename::sanitize("other.txt"),
            content_type: ContentType::from_stored("text/plain".to_owned()),
            size: 1,
            sha256: Some(Sha256Digest::from_bytes([9; 32])),
            created_at: at(5),
            account_id: AccountId::new(9),
            user_id: None,
        });
        repo.insert(&first, &[]).await.unwrap();

        let inserted = repo.insert(&clash, &[]).await;

        assert!(
            matches!(inserted, Err(RepoError::Unavailable(_))),
            "{inserted:?}"
        );
        assert_eq!(repo.get(first.id()).await.unwrap(), first);
    }

    pub async fn delete_then_get_returns_not_found(repo: &dyn FileRepository) {
        let doomed = record_at(1, Some(2), at(0));
        let kept = record_at(1, Some(2), at(1));
        insert_all(repo, &[doomed.clone(), kept.clone()]).await;

        repo.delete(doomed.id(), &[]).await.unwrap();
        let got = repo.get(doomed.id()).await;

        assert!(matches!(got, Err(RepoError::NotFound)), "{got:?}");
        assert_eq!(repo.get(kept.id()).await.unwrap(), kept);
    }

    pub async fn delete_returns_not_found_for_an_unknown_id(repo: &dyn FileRepository) {
        let deleted = repo.delete(FileId::new_random(), &[]).await;

        assert!(matches!(deleted, Err(RepoError::NotFound)), "{deleted:?}");
    }

    pub async fn delete_twice_returns_not_found_the_second_time(repo: &dyn FileRepository) {
        let record = record_at(1, Some(2), at(0));
        repo.insert(&record, &[]).await.unwrap();
        repo.delete(record.id(), &[]).await.unwrap();

        let again = repo.delete(record.id(), &[]).await;

        assert!(matches!(again, Err(RepoError::NotFound)), "{again:?}");
    }

    pub async fn list_by_user_returns_only_that_users_files_newest_first(
        repo: &dyn FileRepository,
    ) {
        let mine = [
            record_at(1, Some(10), at(0)),
            record_at(1, Some(10), at(2_000_000)),
            record_at(1, Some(10), at(1)),
        ];
        let others = [
            // The same user id in another account is someone else.
            record_at(2, Some(10), at(500)),
            record_at(1, Some(11), at(3)),
            record_at(1, None, at(4)),
            record_at(10, None, at(5)),
        ];
        insert_all(repo, &mine).await;
        insert_all(repo, &others).await;

        let page = repo
            .list(
                Owner::User(UserId::new(10), AccountId::new(1)),
                50,
                None,
                None,
            )
            .await
            .unwrap();

        assert_eq!(ids(&page.items), ids(&newest_first(&mine)));
        assert_eq!(page.items, newest_first(&mine));
        assert_eq!(page.next, None);
    }

    pub async fn list_by_account_returns_only_its_null_user_files(repo: &dyn FileRepository) {
        let account_level = [
            record_at(1, None, at(0)),
            record_at(1, None, at(7)),
            record_at(1, None, at(3)),
        ];
        let others = [
            record_at(1, Some(1), at(1)),
            record_at(1, Some(2), at(2)),
            record_at(2, None, at(4)),
        ];
        insert_all(repo, &account_level).await;
        insert_all(repo, &others).await;

        let page = repo
            .list(Owner::Account(AccountId::new(1)), 50, None, None)
            .await
            .unwrap();

        assert_eq!(ids(&page.items), ids(&newest_first(&account_level)));
        assert_eq!(page.next, None);
    }

    pub async fn list_of_an_owner_without_files_is_empty(repo: &dyn FileRepository) {
        repo.insert(&record_at(1, Some(2), at(0)), &[])
            .await
            .unwrap();

        let by_user = repo
            .list(
                Owner::User(UserId::new(3), AccountId::new(1)),
                10,
                None,
                None,
            )
            .await
            .unwrap();
        let by_account = repo
            .list(Owner::Account(AccountId::new(1)), 10, None, None)
            .await
            .unwrap();

        assert!(by_user.items.is_empty() && by_user.next.is_none());
        assert!(by_account.items.is_empty() && by_account.next.is_none());
    }

    pub async fn list_pages_walk_every_record_once_in_order(repo: &dyn FileRepository) {
        let records = [
            record_at(1, Some(10), at(0)),
            record_at(1, Some(10), at(5)),
            record_at(1, Some(10), at(5)),
            record_at(1, Some(10), at(5)),
            record_at(1, Some(10), at(9)),
        ];
        insert_all(repo, &records).await;
        insert_all(repo, &[record_at(1, Some(11), at(5))]).await;

        let pages = walk(repo, Owner::User(UserId::new(10), AccountId::new(1)), 2).await;

        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        let walked: Vec<FileRecord> = pages.concat();
        assert_eq!(ids(&walked), ids(&newest_first(&records)));
    }

    pub async fn list_cursor_is_the_last_item_of_the_page(repo: &dyn FileRepository) {
        let records = [
            record_at(1, None, at(0)),
            record_at(1, None, at(1)),
            record_at(1, None, at(1)),
        ];
        insert_all(repo, &records).await;

        let page = repo
            .list(Owner::Account(AccountId::new(1)), 2, None, None)
            .await
            .unwrap();

        let last = page.items.last().unwrap();
        assert_eq!(
            page.next,
            Some(ListCursor {
                created_at: last.created_at(),
                file_id: last.id(),
            })
        );
    }

    pub async fn list_gives_no_cursor_when_the_last_page_is_full(repo: &dyn FileRepository) {
        let records: Vec<FileRecord> = (0..4).map(|i| record_at(1, Some(10), at(i))).collect();
        insert_all(repo, &records).await;

        let pages = walk(repo, Owner::User(UserId::new(10), AccountId::new(1)), 2).await;

        assert_eq!(pages.len(), 2, "an empty trailing page was offered");
        assert_eq!(ids(&pages.concat()), ids(&newest_first(&records)));
    }

    /// Timestamps in one second whose fractions share leading digits (`.12` and `.123456`):
    /// ordered by instant, not by their spelling (SQLite compares `created_at` as text).
    pub async fn list_orders_by_instant_within_one_second(repo: &dyn FileRepository) {
        let second = 1_763_899_200_i128 * 1_000_000_000;
        let times = [120_000_000, 123_456_000, 500_000_000, 500_001_000, 1_000];
        let records: Vec<FileRecord> = times
            .iter()
            .map(|nanos| {
                let created = OffsetDateTime::from_unix_timestamp_nanos(second + nanos).unwrap();
                record_at(1, Some(10), created)
            })
            .collect();
        insert_all(repo, &records).await;

        let whole = repo
            .list(
                Owner::User(UserId::new(10), AccountId::new(1)),
                50,
                None,
                None,
            )
            .await
            .unwrap();
        let paged = walk(repo, Owner::User(UserId::new(10), AccountId::new(1)), 1)
            .await
            .concat();

        let expected = ids(&newest_first(&records));
        assert_eq!(ids(&whole.items), expected, "one page");
        assert_eq!(ids(&paged), expected, "pages of one");
    }

    pub async fn health_is_ok(repo: &dyn FileRepository) {
        let health = repo.health().await;

        assert!(health.is_ok(), "{health:?}");
    }

    /// Every call on a repository whose pool was closed under it.
    pub async fn every_call_fails_with_unavailable(repo: &dyn FileRepository) {
        let record = record_at(1, Some(2), at(0));

        let health = repo.health().await;
        let insert = repo.insert(&record, &[]).await;
        let get = repo.get(record.id()).await;
        let delete = repo.delete(record.id(), &[]).await;
        let list = repo
            .list(
                Owner::User(UserId::new(2), AccountId::new(1)),
                10,
                None,
                None,
            )
            .await;

        assert_unavailable("health", health);
        assert_unavailable("insert", insert);
        assert_unavailable("get", get);
        assert_unavailable("delete", delete);
        assert_unavailable("list", list);
    }
}

/// A fresh, migrated database and how to dispose of it.
struct TestDb {
    conn: DatabasePool,
    repo: SeaOrmFileRepository,
    disposal: Disposal,
}

enum Disposal {
    Sqlite(TempDir),
    Postgres { server: String, database: String },
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        TestDb::migrated(url, Disposal::Sqlite(dir)).await
    }

    /// A database of its own on the server named by [`POSTGRES_URL_VAR`].
    ///
    /// # Panics
    /// When the variable is unset: a missing server fails the test, it never skips it.
    async fn postgres() -> TestDb {
        let server = env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "{POSTGRES_URL_VAR} is not set; run `make test-integration` or set it to a \
                     server URL without a database, e.g. postgres://postgres@127.0.0.1:5432"
                )
            });
        let server = server.trim_end_matches('/').to_owned();
        let database = format!("stowage_it_{}", uuid::Uuid::new_v4().simple());
        let admin = admin(&server)
            .await
            .unwrap_or_else(|e| panic!("cannot reach Postgres from {POSTGRES_URL_VAR}: {e}"));
        admin
            .execute_unprepared(&format!(r#"CREATE DATABASE "{database}""#))
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = format!("{server}/{database}");
        TestDb::migrated(url, Disposal::Postgres { server, database }).await
    }

    async fn migrated(url: String, disposal: Disposal) -> TestDb {
        let conn = connect(&settings(url)).await.unwrap();
        migrate(&conn).await.unwrap();
        TestDb {
            repo: SeaOrmFileRepository::new(conn.clone()),
            conn,
            disposal,
        }
    }

    /// Closes the pool under the repository, which keeps its own handle to it.
    async fn close_pool(&self) {
        self.conn.clone().close().await.unwrap();
    }

    async fn dispose(self) {
        let _ = self.conn.close().await;
        match self.disposal {
            Disposal::Sqlite(dir) => drop(dir),
            Disposal::Postgres { server, database } => {
                let admin = admin(&server).await.unwrap();
                admin
                    .execute_unprepared(&format!(
                        r#"DROP DATABASE IF EXISTS "{database}" WITH (FORCE)"#
                    ))
                    .await
                    .unwrap();
                admin.close().await.unwrap();
            }
        }
    }
}

/// A connection to the server's `postgres` database, for creating and dropping test databases.
async fn admin(server: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    Database::connect(format!("{server}/postgres")).await
}

/// Runs each `contract` function on a fresh [`TestDb`] from `$setup`, disposing of it even when the
/// test fails. `attrs` go on every generated test.
macro_rules! repository_contract {
    (setup = $setup:path; attrs = $attrs:tt; tests = [$($name:ident),+ $(,)?]) => {
        $(repository_contract!(@one $setup, $attrs, $name);)+
    };
    (@one $setup:path, [$(#[$attr:meta])*], $name:ident) => {
        #[tokio::test]
        $(#[$attr])*
        async fn $name() {
            let db = $setup().await;
            let outcome = AssertUnwindSafe(contract::$name(&db.repo)).catch_unwind().await;
            db.dispose().await;
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
    };
}

/// Runs the whole contract on one backend: `$setup` makes a fresh database.
macro_rules! repository_suite {
    (setup = $setup:path; attrs = [$(#[$attr:meta])*]) => {
        repository_contract!(
            setup = $setup;
            attrs = [$(#[$attr])*];
            tests = [
                insert_then_get_returns_an_equal_record,
                get_returns_not_found_for_an_unknown_id,
                insert_of_a_duplicate_id_fails_and_keeps_the_first,
                delete_then_get_returns_not_found,
                delete_returns_not_found_for_an_unknown_id,
                delete_twice_returns_not_found_the_second_time,
                list_by_user_returns_only_that_users_files_newest_first,
                list_by_account_returns_only_its_null_user_files,
                list_of_an_owner_without_files_is_empty,
                list_pages_walk_every_record_once_in_order,
                list_cursor_is_the_last_item_of_the_page,
                list_gives_no_cursor_when_the_last_page_is_full,
                health_is_ok,
            ]
        );

        #[tokio::test]
        $(#[$attr])*
        async fn every_call_fails_with_unavailable_when_the_pool_is_closed() {
            let db = $setup().await;
            db.close_pool().await;

            let outcome = AssertUnwindSafe(contract::every_call_fails_with_unavailable(&db.repo))
                .catch_unwind()
                .await;
            db.dispose().await;
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
    };
}

mod sqlite {
    use super::*;

    repository_suite!(setup = TestDb::sqlite; attrs = []);

    repository_contract!(
        setup = TestDb::sqlite;
        attrs = [];
        tests = [list_orders_by_instant_within_one_second]
    );
}

mod postgres {
    use super::*;

    repository_suite!(setup = TestDb::postgres; attrs = [#[ignore = "needs Postgres: make test-integration"]]);

    repository_contract!(
        setup = TestDb::postgres;
        attrs = [#[ignore = "needs Postgres: make test-integration"]];
        tests = [list_orders_by_instant_within_one_second]
    );
}
