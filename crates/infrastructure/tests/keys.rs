//! File keys and metadata in [`SeaOrmFileRepository`]: unique per account by a database
//! constraint, moved by a replacement in one transaction, found by key, listed by a literal,
//! case-sensitive prefix. SQLite always; Postgres under `make test-integration` (server URL in
//! `STOWAGE_TEST_DATABASE_URL`), in a database whose collation is not bytewise (ICU `en-US`).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed step fails the test"
)]

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use stowage_application::events::{Actor, ActorKind, EventKind, FileEvent, RequestFacts};
use stowage_application::ports::{FileRepository, Owner, RepoError};
use stowage_domain::{
    AccountId, ContentType, FileId, FileKey, FileRecord, FileRecordParts, Filename, Metadata,
    UserId,
};
use stowage_infrastructure::SeaOrmFileRepository;
use stowage_infrastructure::db::{DatabaseSettings, WebhookOutbox, connect, migrate};
use tempfile::TempDir;
use time::OffsetDateTime;

const POSTGRES_URL_VAR: &str = "STOWAGE_TEST_DATABASE_URL";

fn at(offset_secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(
        1_763_899_200_123_456_000 + i128::from(offset_secs) * 1_000_000_000,
    )
    .unwrap()
}

fn key(s: &str) -> FileKey {
    FileKey::parse(s).unwrap()
}

/// A record of user 2 in `account`, under `k`.
fn keyed(account: i64, k: Option<&str>, created: i64) -> FileRecord {
    FileRecord::new(FileRecordParts {
        id: FileId::new_random(),
        filename: Filename::sanitize("a.pdf"),
        content_type: ContentType::from_stored("application/pdf".to_owned()),
        size: 7,
        sha256: None,
        created_at: at(created),
        account_id: AccountId::new(account),
        user_id: Some(UserId::new(2)),
    })
    .with_key(k.map(key))
}

fn upload_event(record: &FileRecord) -> FileEvent {
    let actor = Actor {
        kind: ActorKind::User,
        user_id: Some(UserId::new(2)),
        account_id: record.account_id(),
    };
    FileEvent::new(
        EventKind::ALL[0],
        actor,
        record,
        &RequestFacts::default(),
        OffsetDateTime::now_utc(),
    )
}

/// The owner of the files [`keyed`] makes in account 1.
fn user() -> Owner {
    Owner::User(UserId::new(2), AccountId::new(1))
}

/// The keys of a whole listing of [`user`]'s files under `prefix`, walked `limit` at a time.
async fn keys_under(repo: &dyn FileRepository, prefix: &str, limit: u32) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor = None;
    for _ in 0..100 {
        let page = repo
            .list(user(), limit, cursor, Some(prefix.to_owned()))
            .await
            .unwrap();
        assert!(page.items.len() <= limit as usize);
        keys.extend(page.items.iter().map(|r| r.key().unwrap().to_string()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return keys,
        }
    }
    panic!("the listing does not end");
}

/// The behaviours, each on an empty migrated database.
mod contract {
    use super::*;

    pub async fn key_and_metadata_round_trip(db: &TestDb) {
        let repo = &db.repo;
        let with = keyed(1, Some("docs/é/report.pdf"), 0)
            .with_metadata(Metadata::parse(r#"{"a": [1, 2], "b": "ü"}"#).unwrap());
        let without = keyed(1, None, 1);
        repo.insert(&with, &[]).await.unwrap();
        repo.insert(&without, &[]).await.unwrap();

        assert_eq!(repo.get(with.id()).await.unwrap(), with);
        assert_eq!(
            repo.get(with.id()).await.unwrap().metadata().as_str(),
            r#"{"a":[1,2],"b":"ü"}"#
        );
        assert_eq!(
            repo.get_by_key(AccountId::new(1), &key("docs/é/report.pdf"))
                .await
                .unwrap(),
            with
        );
        let got = repo.get(without.id()).await.unwrap();
        assert_eq!(got.key(), None);
        assert_eq!(got.metadata().as_str(), "{}");

        // A row written without metadata (the Pneumatic service's) reads as `{}`.
        db.raw("UPDATE files SET metadata = NULL").await;
        assert_eq!(repo.get(with.id()).await.unwrap().metadata().as_str(), "{}");
        let listed = repo.list(user(), 10, None, None).await.unwrap();
        assert_eq!(listed.items.len(), 2);
        assert_eq!(repo.scan(None, 10).await.unwrap().len(), 2);
    }

    pub async fn a_key_is_unique_per_account_only(db: &TestDb) {
        let repo = &db.repo;
        let first = keyed(1, Some("a/b"), 0);
        repo.insert(&first, &[]).await.unwrap();

        let again = keyed(1, Some("a/b"), 1);
        let result = repo.insert(&again, &[]).await;
        assert!(matches!(result, Err(RepoError::KeyTaken)), "{result:?}");
        assert!(matches!(
            repo.get(again.id()).await,
            Err(RepoError::NotFound)
        ));
        let holder = repo.get_by_key(AccountId::new(1), &key("a/b")).await;
        assert_eq!(holder.unwrap().id(), first.id());

        repo.insert(&keyed(2, Some("a/b"), 2), &[]).await.unwrap();
        repo.insert(&keyed(1, Some("A/b"), 3), &[]).await.unwrap();
        repo.insert(&keyed(1, None, 4), &[]).await.unwrap();
        repo.insert(&keyed(1, None, 5), &[]).await.unwrap();

        // A duplicate id is not a taken key.
        let result = repo.insert(&first.clone().with_key(None), &[]).await;
        assert!(
            matches!(result, Err(RepoError::Unavailable(_))),
            "{result:?}"
        );
        let missing = repo.get_by_key(AccountId::new(3), &key("a/b")).await;
        assert!(matches!(missing, Err(RepoError::NotFound)), "{missing:?}");
    }

    pub async fn a_taken_key_keeps_no_event(db: &TestDb) {
        let repo = db.repo.clone().with_webhooks(WebhookOutbox {
            kinds: EventKind::ALL.into_iter().collect(),
            service: "stowage-test".to_owned(),
        });
        let first = keyed(1, Some("k"), 0);
        repo.insert(&first, &[upload_event(&first)]).await.unwrap();
        let second = keyed(1, Some("k"), 1);
        let result = repo.insert(&second, &[upload_event(&second)]).await;
        assert!(matches!(result, Err(RepoError::KeyTaken)), "{result:?}");
        assert_eq!(db.outbox_rows().await, 1);

        let stale = keyed(1, Some("k"), 2);
        let result = repo
            .insert_replacing(&stale, FileId::new_random(), &[upload_event(&stale)])
            .await;
        assert!(matches!(result, Err(RepoError::KeyTaken)), "{result:?}");
        assert_eq!(db.outbox_rows().await, 1);

        let newer = keyed(1, Some("k"), 3);
        repo.insert_replacing(&newer, first.id(), &[upload_event(&newer)])
            .await
            .unwrap();
        assert_eq!(db.outbox_rows().await, 2);
    }

    pub async fn concurrent_inserts_of_one_key_have_one_winner(db: &TestDb) {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let repo = db.repo.clone();
                tokio::spawn(async move { repo.insert(&keyed(1, Some("race"), i), &[]).await })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => won += 1,
                Err(RepoError::KeyTaken) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(won, 1);
        assert_eq!(db.repo.scan(None, 100).await.unwrap().len(), 1);
    }

    pub async fn a_replacement_moves_the_key_and_marks_the_old_file(db: &TestDb) {
        let repo = &db.repo;
        let old = keyed(1, Some("avatar"), 0);
        repo.insert(&old, &[]).await.unwrap();
        let before = OffsetDateTime::now_utc() - Duration::from_secs(1);

        let new = keyed(1, Some("avatar"), 1).with_metadata(Metadata::parse(r#"{"v":2}"#).unwrap());
        repo.insert_replacing(&new, old.id(), &[]).await.unwrap();

        let holder = repo.get_by_key(AccountId::new(1), &key("avatar")).await;
        assert_eq!(holder.unwrap(), new);
        assert_eq!(repo.get(old.id()).await.unwrap().key(), None);
        assert!(repo.scan_replaced(before, 10).await.unwrap().is_empty());
        let later = OffsetDateTime::now_utc() + Duration::from_secs(1);
        let replaced = repo.scan_replaced(later, 10).await.unwrap();
        assert_eq!(
            replaced.iter().map(FileRecord::id).collect::<Vec<_>>(),
            [old.id()]
        );

        // The old file no longer holds the key: a second replacement of it loses.
        let late = keyed(1, Some("avatar"), 2);
        let result = repo.insert_replacing(&late, old.id(), &[]).await;
        assert!(matches!(result, Err(RepoError::KeyTaken)), "{result:?}");
        assert!(matches!(
            repo.get(late.id()).await,
            Err(RepoError::NotFound)
        ));
        // Nor does another account's file of that key replace it.
        let foreign = keyed(2, Some("avatar"), 3);
        let result = repo.insert_replacing(&foreign, new.id(), &[]).await;
        assert!(matches!(result, Err(RepoError::KeyTaken)), "{result:?}");
        assert_eq!(
            repo.get(new.id()).await.unwrap().key(),
            Some(&key("avatar"))
        );

        // Oldest replacement first, at most `limit`.
        let newest = keyed(1, Some("avatar"), 4);
        repo.insert_replacing(&newest, new.id(), &[]).await.unwrap();
        let later = OffsetDateTime::now_utc() + Duration::from_secs(1);
        let replaced = repo.scan_replaced(later, 10).await.unwrap();
        assert_eq!(
            replaced.iter().map(FileRecord::id).collect::<Vec<_>>(),
            [old.id(), new.id()]
        );
        assert_eq!(repo.scan_replaced(later, 1).await.unwrap().len(), 1);
    }

    pub async fn concurrent_replacements_of_one_file_have_one_winner(db: &TestDb) {
        let old = keyed(1, Some("doc"), 0);
        db.repo.insert(&old, &[]).await.unwrap();
        let old = old.id();
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let repo = db.repo.clone();
                let record = keyed(1, Some("doc"), 1 + i);
                tokio::spawn(async move {
                    let result = repo.insert_replacing(&record, old, &[]).await;
                    (record.id(), result)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (id, Ok(())) => winners.push(id),
                (_, Err(RepoError::KeyTaken)) => {}
                (_, Err(e)) => panic!("{e:?}"),
            }
        }
        assert_eq!(winners.len(), 1);
        let holder = db.repo.get_by_key(AccountId::new(1), &key("doc")).await;
        assert_eq!(holder.unwrap().id(), winners[0]);
        assert_eq!(db.repo.scan(None, 100).await.unwrap().len(), 2);
    }

    pub async fn a_prefix_matches_literally_and_case_sensitively(db: &TestDb) {
        let repo = &db.repo;
        let keys = [
            "a%b",
            "a_b",
            "axb",
            "a/x",
            "A/y",
            "a",
            "é/ü.png",
            "e/x",
            "ab/%",
            "a\u{10FFFF}",
        ];
        for (i, k) in keys.iter().enumerate() {
            repo.insert(&keyed(1, Some(k), i64::try_from(i).unwrap()), &[])
                .await
                .unwrap();
        }
        repo.insert(&keyed(1, None, 20), &[]).await.unwrap();
        let mut other_user = keyed(1, Some("a/other"), 21);
        other_user = FileRecord::new(FileRecordParts {
            user_id: Some(UserId::new(3)),
            id: other_user.id(),
            filename: other_user.filename().clone(),
            content_type: other_user.content_type().clone(),
            size: 1,
            sha256: None,
            created_at: other_user.created_at(),
            account_id: other_user.account_id(),
        })
        .with_key(Some(key("a/other")));
        repo.insert(&other_user, &[]).await.unwrap();
        repo.insert(&keyed(2, Some("a/x2"), 22), &[]).await.unwrap();

        for (prefix, expected) in [
            ("a%", &["a%b"][..]),
            ("a_", &["a_b"]),
            ("a/", &["a/x"]),
            ("A/", &["A/y"]),
            ("A", &["A/y"]),
            ("é", &["é/ü.png"]),
            ("é/ü", &["é/ü.png"]),
            ("e", &["e/x"]),
            ("ab/%", &["ab/%"]),
            ("a\u{10FFFF}", &["a\u{10FFFF}"]),
            ("\u{10FFFF}", &[]),
            ("b", &[]),
            ("a/x/", &[]),
            ("a\0", &[]),
            (
                "a",
                &["a\u{10FFFF}", "ab/%", "a", "a/x", "axb", "a_b", "a%b"],
            ),
        ] {
            assert_eq!(keys_under(repo, prefix, 10).await, expected, "{prefix:?}");
        }
        assert_eq!(keys_under(repo, "", 100).await.len(), keys.len());
        assert_eq!(keys_under(repo, &"x".repeat(600), 10).await.len(), 0);
    }

    pub async fn a_prefix_listing_pages_with_the_cursor(db: &TestDb) {
        let repo = &db.repo;
        let mut expected = Vec::new();
        for i in 0..23 {
            // Pairs share a timestamp, so that the id breaks the tie.
            let record = keyed(1, Some(&format!("p/{i:02}")), i / 2);
            repo.insert(&record, &[]).await.unwrap();
            expected.push(record);
            repo.insert(&keyed(1, Some(&format!("q/{i:02}")), i / 2), &[])
                .await
                .unwrap();
        }
        expected.sort_by_key(|r| std::cmp::Reverse((r.created_at(), r.id())));
        let expected: Vec<_> = expected
            .iter()
            .map(|r| r.key().unwrap().to_string())
            .collect();
        for limit in [1, 4, 23, 50] {
            assert_eq!(
                keys_under(repo, "p/", limit).await,
                expected,
                "limit {limit}"
            );
        }
    }
}

/// A fresh, migrated database and how to dispose of it.
struct TestDb {
    repo: SeaOrmFileRepository,
    url: String,
    _dir: Option<TempDir>,
    postgres: Option<(String, String)>,
}

fn settings(url: String) -> DatabaseSettings {
    DatabaseSettings {
        url: url.into(),
        max_connections: 4,
        connect_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(10),
    }
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        TestDb::migrated(url, Some(dir), None).await
    }

    /// A database of its own, ordering text as `en-US` does (not bytewise).
    async fn postgres() -> TestDb {
        let server = std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| panic!("{POSTGRES_URL_VAR} is not set"))
            .trim_end_matches('/')
            .to_owned();
        let database = format!("stowage_keys_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(format!("{server}/postgres"))
            .await
            .unwrap();
        admin
            .execute_unprepared(&format!(
                r#"CREATE DATABASE "{database}" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"#
            ))
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = format!("{server}/{database}");
        TestDb::migrated(url, None, Some((server, database))).await
    }

    async fn migrated(
        url: String,
        dir: Option<TempDir>,
        postgres: Option<(String, String)>,
    ) -> TestDb {
        let pool = connect(&settings(url.clone())).await.unwrap();
        migrate(&pool).await.unwrap();
        TestDb {
            repo: SeaOrmFileRepository::new(pool),
            url,
            _dir: dir,
            postgres,
        }
    }

    async fn connection(&self) -> DatabaseConnection {
        Database::connect(&self.url).await.unwrap()
    }

    async fn raw(&self, sql: &str) {
        let db = self.connection().await;
        db.execute_unprepared(sql).await.unwrap();
        db.close().await.unwrap();
    }

    async fn outbox_rows(&self) -> i64 {
        let db = self.connection().await;
        let backend = db.get_database_backend();
        let row = db
            .query_one(Statement::from_string(
                backend,
                "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM webhook_outbox",
            ))
            .await
            .unwrap()
            .unwrap();
        db.close().await.unwrap();
        row.try_get("", "n").unwrap()
    }

    async fn dispose(self) {
        if let Some((server, database)) = self.postgres {
            let admin = Database::connect(format!("{server}/postgres"))
                .await
                .unwrap();
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

/// The query plan Postgres picks for a listing under a rare prefix in an account of many files.
async fn plan_of_a_rare_prefix(db: &TestDb) -> String {
    let raw = db.connection().await;
    raw.execute_unprepared(
        "INSERT INTO files (file_id, size, content_type, filename, user_id, account_id, key) \
         SELECT gen_random_uuid(), 1, 'text/plain', 'f', 2, 1, 'bulk/' || i \
         FROM generate_series(1, 20000) AS i",
    )
    .await
    .unwrap();
    raw.execute_unprepared("ANALYZE files").await.unwrap();
    let rows = raw
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            "EXPLAIN SELECT file_id FROM files WHERE user_id = 2 AND account_id = 1 \
             AND key IS NOT NULL AND (key COLLATE \"C\") >= 'rare/' AND (key COLLATE \"C\") < 'rare0' \
             AND substr(key, 1, 5) = 'rare/' ORDER BY created_at DESC, file_id DESC LIMIT 11",
        ))
        .await
        .unwrap();
    raw.close().await.unwrap();
    rows.iter()
        .map(|r| r.try_get::<String>("", "QUERY PLAN").unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

macro_rules! keys_suite {
    (setup = $setup:path; attrs = [$(#[$attr:meta])*]) => {
        keys_suite!(@each $setup, [$(#[$attr])*], [
            key_and_metadata_round_trip,
            a_key_is_unique_per_account_only,
            a_taken_key_keeps_no_event,
            concurrent_inserts_of_one_key_have_one_winner,
            a_replacement_moves_the_key_and_marks_the_old_file,
            concurrent_replacements_of_one_file_have_one_winner,
            a_prefix_matches_literally_and_case_sensitively,
            a_prefix_listing_pages_with_the_cursor,
        ]);
    };
    (@each $setup:path, $attrs:tt, [$($name:ident),+ $(,)?]) => {
        $(keys_suite!(@one $setup, $attrs, $name);)+
    };
    (@one $setup:path, [$(#[$attr:meta])*], $name:ident) => {
        #[tokio::test]
        $(#[$attr])*
        async fn $name() {
            let db = $setup().await;
            let outcome = AssertUnwindSafe(contract::$name(&db)).catch_unwind().await;
            db.dispose().await;
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        }
    };
}

mod sqlite {
    use super::*;

    keys_suite!(setup = TestDb::sqlite; attrs = []);
}

mod postgres {
    use super::*;

    keys_suite!(setup = TestDb::postgres; attrs = [#[ignore = "needs Postgres: make test-integration"]]);

    #[tokio::test]
    #[ignore = "needs Postgres: make test-integration"]
    async fn a_rare_prefix_reads_the_key_index() {
        let db = TestDb::postgres().await;
        let plan = AssertUnwindSafe(plan_of_a_rare_prefix(&db))
            .catch_unwind()
            .await;
        db.dispose().await;
        let plan = plan.unwrap_or_else(|p| std::panic::resume_unwind(p));
        assert!(plan.contains("idx_files_account_key"), "{plan}");
    }
}
