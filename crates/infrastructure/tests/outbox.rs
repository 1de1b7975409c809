//! The webhook outbox: rows written in the transaction of the change they report, claimed in
//! order per file under leases, delivered signed. On SQLite always, on Postgres under
//! `make test-integration` (server URL in `STOWAGE_TEST_DATABASE_URL`, one database per test).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed step fails the test"
)]

use std::collections::{HashMap, HashSet};
use std::env;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use stowage_application::events::{Actor, ActorKind, EventKind, FileEvent, RequestFacts};
use stowage_application::ports::{FileRepository, RepoError};
use stowage_domain::{
    AccountId, ContentType, FileId, FileRecord, FileRecordParts, Filename, Sha256Digest, UserId,
};
use stowage_infrastructure::SeaOrmFileRepository;
use stowage_infrastructure::db::{
    DatabasePool, DatabaseSettings, Failure, OutboxStore, WebhookOutbox, connect, migrate,
    now_millis,
};
use stowage_infrastructure::webhooks::{WebhookSettings, WebhookWorker, signature};
use tempfile::TempDir;
use time::OffsetDateTime;

const POSTGRES_URL_VAR: &str = "STOWAGE_TEST_DATABASE_URL";
const LEASE_MS: i64 = 30_000;
const LEASE: Duration = Duration::from_millis(30_000);

fn settings(url: &str) -> DatabaseSettings {
    DatabaseSettings {
        url: url.into(),
        max_connections: 4,
        connect_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(5),
    }
}

fn record() -> FileRecord {
    FileRecord::new(FileRecordParts {
        id: FileId::new_random(),
        filename: Filename::sanitize("report.pdf"),
        content_type: ContentType::from_stored("application/pdf".to_owned()),
        size: 12,
        sha256: Some(Sha256Digest::from_bytes([7; 32])),
        created_at: OffsetDateTime::from_unix_timestamp(1_763_899_200).unwrap(),
        account_id: AccountId::new(1),
        user_id: Some(UserId::new(2)),
    })
}

fn event(kind: EventKind, record: &FileRecord) -> FileEvent {
    let actor = Actor {
        kind: ActorKind::User,
        user_id: Some(UserId::new(2)),
        account_id: AccountId::new(1),
    };
    FileEvent::new(
        kind,
        actor,
        record,
        &RequestFacts::default(),
        OffsetDateTime::now_utc(),
    )
}

fn all_kinds() -> WebhookOutbox {
    WebhookOutbox {
        kinds: EventKind::ALL.into_iter().collect(),
        service: "stowage-test".to_owned(),
    }
}

/// A fresh, migrated database.
struct TestDb {
    url: String,
    pool: DatabasePool,
    _dir: Option<TempDir>,
    postgres: Option<(String, String)>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        TestDb::migrated(url, Some(dir), None).await
    }

    async fn postgres() -> TestDb {
        let server = env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| panic!("{POSTGRES_URL_VAR} is not set"));
        let server = server.trim_end_matches('/').to_owned();
        let database = format!("stowage_ob_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(format!("{server}/postgres"))
            .await
            .unwrap();
        admin
            .execute_unprepared(&format!(r#"CREATE DATABASE "{database}""#))
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = format!("{server}/{database}");
        TestDb::migrated(url, None, Some((server, database))).await
    }

    async fn migrated(url: String, dir: Option<TempDir>, pg: Option<(String, String)>) -> TestDb {
        let pool = connect(&settings(&url)).await.unwrap();
        migrate(&pool).await.unwrap();
        TestDb {
            url,
            pool,
            _dir: dir,
            postgres: pg,
        }
    }

    fn repo(&self, outbox: Option<WebhookOutbox>) -> SeaOrmFileRepository {
        let repo = SeaOrmFileRepository::new(self.pool.clone());
        match outbox {
            Some(outbox) => repo.with_webhooks(outbox),
            None => repo,
        }
    }

    fn store(&self) -> OutboxStore {
        OutboxStore::new(&self.pool)
    }

    /// Moves the outbox `ms` into the past, as if the database's clock had run on that long.
    async fn advance(&self, ms: i64) {
        let db = Database::connect(&self.url).await.unwrap();
        db.execute(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            "UPDATE webhook_outbox SET next_attempt_at = next_attempt_at - $1, \
                 lease_until = lease_until - $1",
            [ms.into()],
        ))
        .await
        .unwrap();
        db.close().await.unwrap();
    }

    /// Event ids in the outbox, in order.
    async fn ids(&self) -> Vec<String> {
        let rows = self.store().list(false, 1000).await.unwrap();
        rows.into_iter().map(|r| r.event_id).collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(admin) = Database::connect(format!("{server}/postgres")).await {
                    let _ = admin
                        .execute_unprepared(&format!(
                            r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                        ))
                        .await;
                }
            });
        })
        .join();
    }
}

fn failure(attempts: u32, dead: bool, retry_in: Duration) -> Failure {
    Failure {
        attempts,
        dead,
        retry_in,
        error: "HTTP 500".to_owned(),
    }
}

/// Behaviours on either database.
mod contract {
    use stowage_infrastructure::db::ClaimedEvent;

    use super::*;

    fn ids(claimed: &[ClaimedEvent]) -> Vec<String> {
        claimed.iter().map(|c| c.event_id.clone()).collect()
    }

    pub async fn insert_writes_the_record_and_its_events_together(db: TestDb) {
        let repo = db.repo(Some(all_kinds()));
        let first = record();
        let upload = event(EventKind::Upload, &first);
        repo.insert(&first, std::slice::from_ref(&upload))
            .await
            .unwrap();
        let clash = FileRecord::new(FileRecordParts {
            id: first.id(),
            filename: Filename::sanitize("other.txt"),
            content_type: ContentType::from_stored("text/plain".to_owned()),
            size: 1,
            sha256: Some(Sha256Digest::from_bytes([9; 32])),
            created_at: OffsetDateTime::now_utc(),
            account_id: AccountId::new(1),
            user_id: None,
        });

        let failed = repo
            .insert(&clash, &[event(EventKind::Upload, &clash)])
            .await;

        assert!(
            matches!(failed, Err(RepoError::Unavailable(_))),
            "{failed:?}"
        );
        assert_eq!(repo.get(first.id()).await.unwrap(), first);
        assert_eq!(db.ids().await, vec![upload.id.to_string()]);
        let claimed = db.store().claim(10, LEASE).await.unwrap();
        let body: serde_json::Value = serde_json::from_str(&claimed[0].body).unwrap();
        assert_eq!(body["id"], upload.id.to_string());
        assert_eq!(body["type"], "file.upload");
        assert!(body["created_at"].is_string(), "{body}");
        assert_eq!(body["data"]["type"], "file.upload");
        assert_eq!(body["data"]["service"], "stowage-test");
        assert_eq!(claimed[0].file_id, first.id().to_string());
    }

    pub async fn delete_keeps_its_event_and_a_missing_record_none(db: TestDb) {
        let repo = db.repo(Some(all_kinds()));
        let kept = record();
        repo.insert(&kept, &[]).await.unwrap();
        let missing = record();

        let gone = repo
            .delete(missing.id(), &[event(EventKind::Delete, &missing)])
            .await;
        let delete = event(EventKind::Delete, &kept);
        repo.delete(kept.id(), std::slice::from_ref(&delete))
            .await
            .unwrap();

        assert!(matches!(gone, Err(RepoError::NotFound)), "{gone:?}");
        assert!(matches!(
            repo.get(kept.id()).await,
            Err(RepoError::NotFound)
        ));
        assert_eq!(db.ids().await, vec![delete.id.to_string()]);
    }

    pub async fn only_the_chosen_kinds_are_kept_and_none_when_off(db: TestDb) {
        let only_uploads = WebhookOutbox {
            kinds: HashSet::from([EventKind::Upload]),
            service: "s".to_owned(),
        };
        let file = record();
        let upload = event(EventKind::Upload, &file);
        db.repo(None)
            .record_events(&[event(EventKind::Upload, &file)])
            .await
            .unwrap();
        db.repo(None)
            .insert(&record(), std::slice::from_ref(&upload))
            .await
            .unwrap();
        assert!(db.ids().await.is_empty(), "webhooks off kept events");

        let repo = db.repo(Some(only_uploads));
        repo.record_events(&[
            event(EventKind::Download, &file),
            event(EventKind::AccessDenied, &file),
        ])
        .await
        .unwrap();
        repo.record_events(std::slice::from_ref(&upload))
            .await
            .unwrap();

        assert_eq!(db.ids().await, vec![upload.id.to_string()]);
    }

    pub async fn claims_keep_each_files_order_even_behind_dead_rows(db: TestDb) {
        let repo = db.repo(Some(all_kinds()));
        let (a, b) = (record(), record());
        let a1 = event(EventKind::Upload, &a);
        let a2 = event(EventKind::Download, &a);
        let a3 = event(EventKind::Delete, &a);
        let b1 = event(EventKind::Upload, &b);
        for e in [&a1, &a2, &b1, &a3] {
            repo.record_events(std::slice::from_ref(e)).await.unwrap();
        }
        let store = db.store();

        let first = store.claim(10, LEASE).await.unwrap();
        assert_eq!(ids(&first), vec![a1.id.to_string(), b1.id.to_string()]);
        assert!(
            store.claim(10, LEASE).await.unwrap().is_empty(),
            "leased twice"
        );

        // a1 fails: a2 waits behind it even once a1's lease is gone.
        let retry_in = Duration::from_secs(1);
        assert!(
            store
                .failed(&first[0], &failure(1, false, retry_in))
                .await
                .unwrap()
        );
        assert!(store.delivered(&first[1]).await.unwrap());
        assert!(store.claim(10, LEASE).await.unwrap().is_empty());
        db.advance(1_000).await;
        let retried = store.claim(10, LEASE).await.unwrap();
        assert_eq!(ids(&retried), vec![a1.id.to_string()]);
        assert_eq!(retried[0].attempts, 1);

        // a1 dies: a2 and a3 stay behind it however long it stays dead; other files go on.
        assert!(
            store
                .failed(&retried[0], &failure(2, true, Duration::ZERO))
                .await
                .unwrap()
        );
        assert_eq!(store.dead_count().await.unwrap(), 1);
        db.advance(10 * LEASE_MS).await;
        assert!(
            store.claim(10, LEASE).await.unwrap().is_empty(),
            "an event went out after a dead one of its file"
        );
        let b2 = event(EventKind::Download, &b);
        repo.record_events(std::slice::from_ref(&b2)).await.unwrap();
        let other = store.claim(10, LEASE).await.unwrap();
        assert_eq!(ids(&other), vec![b2.id.to_string()]);
        assert!(store.delivered(&other[0]).await.unwrap());

        let dead = store.list(true, 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].event_id, a1.id.to_string());
        assert_eq!(dead[0].attempts, 2);
        assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 500"));

        // Revived, a1 goes first, then a2, then a3.
        assert_eq!(store.retry_dead().await.unwrap(), 1);
        let mut order = Vec::new();
        loop {
            let claimed = store.claim(10, LEASE).await.unwrap();
            let [one] = claimed.as_slice() else {
                assert!(claimed.is_empty(), "{claimed:?}");
                break;
            };
            assert_eq!(one.attempts, 0);
            assert!(store.delivered(one).await.unwrap());
            order.push(one.event_id.clone());
        }
        assert_eq!(
            order,
            vec![a1.id.to_string(), a2.id.to_string(), a3.id.to_string()]
        );
    }

    pub async fn a_claim_taken_over_records_no_outcome(db: TestDb) {
        let file = record();
        let upload = event(EventKind::Upload, &file);
        db.repo(Some(all_kinds()))
            .record_events(std::slice::from_ref(&upload))
            .await
            .unwrap();
        let store = db.store();

        let late = store.claim(1, LEASE).await.unwrap();
        assert_eq!(ids(&late), vec![upload.id.to_string()]);
        let expected = now_millis() + LEASE_MS;
        assert!(
            (late[0].lease_until - expected).abs() < 60_000,
            "the lease is not in Unix milliseconds: {} vs {expected}",
            late[0].lease_until
        );
        // The first claimer stalls past its lease; another claims the row.
        db.advance(LEASE_MS).await;
        let current = store.claim(1, LEASE).await.unwrap();
        assert_eq!(ids(&current), vec![upload.id.to_string()]);
        assert_ne!(current[0].lease_token, late[0].lease_token);

        assert!(
            !store
                .failed(&late[0], &failure(1, true, Duration::ZERO))
                .await
                .unwrap(),
            "a lost lease recorded a failure"
        );
        assert!(
            !store.delivered(&late[0]).await.unwrap(),
            "a lost lease deleted the row"
        );
        let rows = store.list(false, 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].state.as_str(), rows[0].attempts), ("pending", 0));
        assert!(
            store.claim(1, LEASE).await.unwrap().is_empty(),
            "lease lost"
        );

        assert!(
            store
                .failed(&current[0], &failure(1, false, Duration::ZERO))
                .await
                .unwrap()
        );
        let again = store.claim(1, LEASE).await.unwrap();
        assert_eq!(again[0].attempts, 1);
        assert!(
            !store.delivered(&current[0]).await.unwrap(),
            "a recorded outcome ends the claim"
        );
        assert!(store.delivered(&again[0]).await.unwrap());
        assert!(db.ids().await.is_empty());
    }

    pub async fn the_worker_posts_signed_events_and_deletes_what_was_taken(db: TestDb) {
        use wiremock::matchers::{header, method};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let receiver = MockServer::start().await;
        Mock::given(method("POST"))
            .and(header("content-type", "application/json"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&receiver)
            .await;
        let repo = db.repo(Some(all_kinds()));
        let file = record();
        let upload = event(EventKind::Upload, &file);
        repo.insert(&file, std::slice::from_ref(&upload))
            .await
            .unwrap();
        let worker = WebhookWorker::new(
            db.store(),
            WebhookSettings {
                url: receiver.uri().into(),
                secret: "whsec".into(),
                max_attempts: 3,
                timeout: Duration::from_secs(5),
                retry_base: Duration::from_millis(50),
                poll_interval: Duration::from_millis(50),
                batch: 8,
            },
        )
        .unwrap();

        assert_eq!(worker.deliver_due().await.unwrap(), 1);

        let requests = receiver.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
        let body = String::from_utf8(requests[0].body.clone()).unwrap();
        let signed = requests[0].headers["stowage-signature"].to_str().unwrap();
        let t: i64 = signed
            .strip_prefix("t=")
            .and_then(|rest| rest.split(',').next())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(signed, signature(b"whsec", t, &body));
        assert!((now_millis() / 1000 - t).abs() < 60);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["id"], upload.id.to_string());
        assert!(db.ids().await.is_empty(), "a delivered event stayed");
    }
}

/// Runs each `contract` function on a fresh database from `$setup`.
macro_rules! outbox_suite {
    (setup = $setup:path; attrs = [$(#[$attr:meta])*]) => {
        outbox_suite!(@each $setup, [$(#[$attr])*], [
            insert_writes_the_record_and_its_events_together,
            delete_keeps_its_event_and_a_missing_record_none,
            only_the_chosen_kinds_are_kept_and_none_when_off,
            claims_keep_each_files_order_even_behind_dead_rows,
            a_claim_taken_over_records_no_outcome,
            the_worker_posts_signed_events_and_deletes_what_was_taken,
        ]);
    };
    (@each $setup:path, $attrs:tt, [$($name:ident),+ $(,)?]) => {
        $(outbox_suite!(@one $setup, $attrs, $name);)+
    };
    (@one $setup:path, [$(#[$attr:meta])*], $name:ident) => {
        #[tokio::test]
        $(#[$attr])*
        async fn $name() {
            contract::$name($setup().await).await;
        }
    };
}

mod sqlite {
    use super::*;

    outbox_suite!(setup = TestDb::sqlite; attrs = []);
}

mod postgres {
    use super::*;

    outbox_suite!(setup = TestDb::postgres; attrs = [#[ignore = "needs Postgres: make test-integration"]]);

    /// Two replicas claiming at once never get the same row, and between them get every row.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "needs Postgres: make test-integration"]
    async fn two_claimers_never_get_the_same_row() {
        let db = TestDb::postgres().await;
        let repo = db.repo(Some(all_kinds()));
        let mut written = HashSet::new();
        for _ in 0..120 {
            let file = record();
            let upload = event(EventKind::Upload, &file);
            written.insert(upload.id.to_string());
            repo.record_events(&[upload]).await.unwrap();
        }
        let claimer = |url: String| async move {
            let pool = connect(&settings(&url)).await.unwrap();
            let store = OutboxStore::new(&pool);
            let mut got = Vec::new();
            loop {
                let claimed = store.claim(7, LEASE).await.unwrap();
                if claimed.is_empty() {
                    return got;
                }
                got.extend(claimed.into_iter().map(|c| c.event_id));
            }
        };

        let (one, two) = tokio::join!(
            tokio::spawn(claimer(db.url.clone())),
            tokio::spawn(claimer(db.url.clone()))
        );
        let (one, two) = (one.unwrap(), two.unwrap());

        let mut seen: HashMap<String, usize> = HashMap::new();
        for id in one.iter().chain(&two) {
            *seen.entry(id.clone()).or_default() += 1;
        }
        assert!(seen.values().all(|n| *n == 1), "a row was claimed twice");
        assert_eq!(seen.keys().cloned().collect::<HashSet<_>>(), written);
    }
}
