//! The resumable upload repository: every field kept as written, one lock holder at a time,
//! lapsed locks taken over, progress stored only under the live lock, expired and live uploads
//! told apart. On SQLite always, on Postgres under `make test-integration` (server URL in
//! `STOWAGE_TEST_DATABASE_URL`, one database per test).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed step fails the test"
)]

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use stowage_application::ports::{
    ClaimToken, Concat, RepoError, ResumableId, ResumableLock, ResumableProgress,
    ResumableRepository, ResumableStage, ResumableUpload, StoreProgress,
};
use stowage_domain::{AccountId, FileId, PrincipalKind, UserId};
use stowage_infrastructure::SeaOrmResumableRepository;
use stowage_infrastructure::db::{DatabaseSettings, connect, migrate};
use tempfile::TempDir;
use time::OffsetDateTime;

const LEASE: Duration = Duration::from_secs(60);

async fn repository(url: &str) -> SeaOrmResumableRepository {
    let pool = connect(&DatabaseSettings {
        url: url.into(),
        max_connections: 4,
        connect_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    migrate(&pool).await.unwrap();
    SeaOrmResumableRepository::new(&pool)
}

async fn sqlite() -> (SeaOrmResumableRepository, Option<TempDir>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    (repository(&url).await, Some(dir))
}

async fn postgres() -> (SeaOrmResumableRepository, Option<TempDir>) {
    let server = std::env::var("STOWAGE_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("STOWAGE_TEST_DATABASE_URL is not set"));
    let server = server.trim_end_matches('/').to_owned();
    let database = format!("stowage_ru_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(format!("{server}/postgres"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!(r#"CREATE DATABASE "{database}""#))
        .await
        .unwrap();
    admin.close().await.unwrap();
    (repository(&format!("{server}/{database}")).await, None)
}

/// A time the table keeps exactly (whole milliseconds), `secs` from now.
fn in_secs(secs: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + time::Duration::seconds(secs)
}

fn upload() -> ResumableUpload {
    ResumableUpload {
        id: ResumableId::new_random(),
        file_id: FileId::new_random(),
        account_id: AccountId::new(1),
        user_id: Some(UserId::new(2)),
        principal_kind: PrincipalKind::User,
        length: Some(10),
        offset: 0,
        metadata: Some("filename YS50eHQ=".into()),
        concat: None,
        store: StoreProgress("mpu-1".into()),
        digest: vec![0, 1, 2, 0xff],
        head: vec![],
        stage: ResumableStage::Open,
        expires_at: in_secs(3600),
    }
}

fn progress(offset: u64) -> ResumableProgress {
    ResumableProgress {
        length: Some(100),
        offset,
        store: StoreProgress(format!("mpu-1 parts={offset}")),
        digest: vec![0xde, 0xad, 0, 0xbe, 0xef],
        head: b"\x89PNG\r\n\x1a\n\0".to_vec(),
        stage: ResumableStage::Completed,
        expires_at: in_secs(7200),
    }
}

fn is_locked(lock: &ResumableLock) -> bool {
    matches!(lock, ResumableLock::Locked(_))
}

async fn every_field_is_kept_as_written(repo: SeaOrmResumableRepository) {
    let (first, second) = (ResumableId::new_random(), ResumableId::new_random());
    let uploads = [
        upload(),
        ResumableUpload {
            user_id: None,
            principal_kind: PrincipalKind::Guest,
            length: None,
            metadata: None,
            concat: Some(Concat::Partial),
            store: StoreProgress::default(),
            digest: vec![],
            head: b"\0\xff\x00binary".to_vec(),
            ..upload()
        },
        ResumableUpload {
            principal_kind: PrincipalKind::Public,
            length: Some(u64::try_from(i64::MAX).unwrap()),
            offset: 7,
            concat: Some(Concat::Final(vec![first, second, first])),
            stage: ResumableStage::Completed,
            expires_at: in_secs(-60),
            ..upload()
        },
        ResumableUpload {
            concat: Some(Concat::Final(vec![])),
            ..upload()
        },
    ];

    for up in &uploads {
        repo.insert(up).await.unwrap();
    }

    for up in &uploads {
        assert_eq!(&repo.get(up.id).await.unwrap(), up);
    }
    assert!(matches!(
        repo.get(ResumableId::new_random()).await,
        Err(RepoError::NotFound)
    ));
    // An id is stored once.
    assert!(repo.insert(&uploads[0]).await.is_err());
}

async fn a_lock_is_held_by_one_token_until_unlocked(repo: SeaOrmResumableRepository) {
    let up = upload();
    repo.insert(&up).await.unwrap();
    let (a, b) = (ClaimToken::new_random(), ClaimToken::new_random());

    assert_eq!(
        repo.lock(up.id, a, LEASE).await.unwrap(),
        ResumableLock::Locked(Box::new(up.clone()))
    );
    assert_eq!(
        repo.lock(up.id, b, LEASE).await.unwrap(),
        ResumableLock::Busy
    );
    // Another token does not free it.
    repo.unlock(up.id, b).await.unwrap();
    assert_eq!(
        repo.lock(up.id, b, LEASE).await.unwrap(),
        ResumableLock::Busy
    );

    repo.unlock(up.id, a).await.unwrap();
    assert!(is_locked(&repo.lock(up.id, b, LEASE).await.unwrap()));
    assert_eq!(
        repo.lock(up.id, a, LEASE).await.unwrap(),
        ResumableLock::Busy
    );
    // Unlocking what one does not hold is nothing.
    repo.unlock(up.id, a).await.unwrap();
    repo.unlock(ResumableId::new_random(), a).await.unwrap();

    assert!(matches!(
        repo.lock(ResumableId::new_random(), a, LEASE).await,
        Err(RepoError::NotFound)
    ));
}

async fn of_concurrent_lockers_exactly_one_wins(repo: SeaOrmResumableRepository) {
    let up = upload();
    repo.insert(&up).await.unwrap();

    let attempts: Vec<_> = (0..8)
        .map(|_| {
            let repo = repo.clone();
            tokio::spawn(async move { repo.lock(up.id, ClaimToken::new_random(), LEASE).await })
        })
        .collect();
    let mut locked = 0;
    for attempt in attempts {
        match attempt.await.unwrap().unwrap() {
            ResumableLock::Locked(got) => {
                assert_eq!(*got, up);
                locked += 1;
            }
            ResumableLock::Busy => {}
        }
    }

    assert_eq!(locked, 1);
}

async fn a_lapsed_lock_is_taken_over_and_its_holder_shut_out(repo: SeaOrmResumableRepository) {
    let up = upload();
    repo.insert(&up).await.unwrap();
    let (crashed, next) = (ClaimToken::new_random(), ClaimToken::new_random());
    let short = Duration::from_millis(30);
    assert!(is_locked(&repo.lock(up.id, crashed, short).await.unwrap()));
    tokio::time::sleep(Duration::from_millis(60)).await;

    // Lapsed but not taken over yet: its holder may no longer write.
    assert!(!repo.advance(up.id, crashed, &progress(1)).await.unwrap());
    assert!(is_locked(&repo.lock(up.id, next, LEASE).await.unwrap()));

    assert!(!repo.advance(up.id, crashed, &progress(2)).await.unwrap());
    // Its keep-alive finds the lock gone and ends; its unlock frees nothing.
    tokio::time::timeout(Duration::from_secs(5), repo.hold(up.id, crashed, short))
        .await
        .unwrap();
    repo.unlock(up.id, crashed).await.unwrap();
    assert!(repo.advance(up.id, next, &progress(3)).await.unwrap());
    assert_eq!(repo.get(up.id).await.unwrap().offset, 3);
}

async fn progress_is_stored_only_under_the_live_lock(repo: SeaOrmResumableRepository) {
    let up = upload();
    repo.insert(&up).await.unwrap();
    let (a, b) = (ClaimToken::new_random(), ClaimToken::new_random());
    assert!(!repo.advance(up.id, a, &progress(1)).await.unwrap());
    assert!(is_locked(&repo.lock(up.id, a, LEASE).await.unwrap()));

    assert!(!repo.advance(up.id, b, &progress(2)).await.unwrap());
    assert!(repo.advance(up.id, a, &progress(5)).await.unwrap());

    let p = progress(5);
    let stored = repo.get(up.id).await.unwrap();
    assert_eq!(
        stored,
        ResumableUpload {
            length: p.length,
            offset: p.offset,
            store: p.store,
            digest: p.digest,
            head: p.head,
            stage: p.stage,
            expires_at: p.expires_at,
            ..up.clone()
        }
    );
    // The length may be unknown still.
    let deferred = ResumableProgress {
        length: None,
        ..progress(6)
    };
    assert!(repo.advance(up.id, a, &deferred).await.unwrap());
    assert_eq!(repo.get(up.id).await.unwrap().length, None);

    repo.unlock(up.id, a).await.unwrap();
    assert!(!repo.advance(up.id, a, &progress(7)).await.unwrap());
    assert_eq!(repo.get(up.id).await.unwrap().offset, 6);
    assert!(
        !repo
            .advance(ResumableId::new_random(), a, &progress(1))
            .await
            .unwrap()
    );
}

async fn a_hold_keeps_a_short_lease_alive(repo: SeaOrmResumableRepository) {
    let up = upload();
    repo.insert(&up).await.unwrap();
    let (a, b) = (ClaimToken::new_random(), ClaimToken::new_random());
    let short = Duration::from_millis(150);
    assert!(is_locked(&repo.lock(up.id, a, short).await.unwrap()));
    let hold = tokio::spawn(repo.hold(up.id, a, short));

    tokio::time::sleep(short * 4).await;

    assert_eq!(
        repo.lock(up.id, b, LEASE).await.unwrap(),
        ResumableLock::Busy
    );
    assert!(repo.advance(up.id, a, &progress(1)).await.unwrap());
    assert!(!hold.is_finished());

    // Dropping the hold leaves the lock to its lease...
    hold.abort();
    assert!(hold.await.unwrap_err().is_cancelled());
    assert_eq!(
        repo.lock(up.id, b, LEASE).await.unwrap(),
        ResumableLock::Busy
    );
    tokio::time::sleep(short * 2).await;
    assert!(is_locked(&repo.lock(up.id, b, LEASE).await.unwrap()));

    // ...and a hold whose lock was given up ends.
    repo.unlock(up.id, b).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), repo.hold(up.id, b, short))
        .await
        .unwrap();
}

async fn expired_and_live_uploads_are_told_apart(repo: SeaOrmResumableRepository) {
    let expired = ResumableUpload {
        expires_at: in_secs(-60),
        ..upload()
    };
    let expired_locked = ResumableUpload {
        expires_at: in_secs(-120),
        ..upload()
    };
    let expired_lapsed = ResumableUpload {
        expires_at: in_secs(-30),
        ..upload()
    };
    let live = ResumableUpload {
        expires_at: in_secs(60),
        stage: ResumableStage::Completed,
        concat: Some(Concat::Partial),
        ..upload()
    };
    let later = ResumableUpload {
        expires_at: in_secs(120),
        ..upload()
    };
    for up in [&expired, &expired_locked, &expired_lapsed, &live, &later] {
        repo.insert(up).await.unwrap();
    }
    let token = ClaimToken::new_random();
    assert!(is_locked(
        &repo.lock(expired_locked.id, token, LEASE).await.unwrap()
    ));
    let short = Duration::from_millis(10);
    assert!(is_locked(
        &repo.lock(expired_lapsed.id, token, short).await.unwrap()
    ));
    tokio::time::sleep(Duration::from_millis(40)).await;
    let now = OffsetDateTime::now_utc();

    assert_eq!(
        repo.expired(now, 10).await.unwrap(),
        [expired.clone(), expired_lapsed]
    );
    assert_eq!(repo.expired(now, 1).await.unwrap(), [expired]);
    // A locked upload is live whatever its expiry: a request is writing it.
    assert_eq!(
        repo.live(now, 10).await.unwrap(),
        [expired_locked.clone(), live.clone(), later]
    );
    assert_eq!(
        repo.live(now, 1).await.unwrap(),
        std::slice::from_ref(&expired_locked)
    );
    // Once its lock is given up, gc may have it.
    repo.unlock(expired_locked.id, token).await.unwrap();
    assert_eq!(repo.expired(now, 10).await.unwrap().len(), 3);
}

async fn a_deleted_upload_is_gone(repo: SeaOrmResumableRepository) {
    let (up, other) = (upload(), upload());
    repo.insert(&up).await.unwrap();
    repo.insert(&other).await.unwrap();

    repo.delete(up.id).await.unwrap();

    assert!(matches!(repo.get(up.id).await, Err(RepoError::NotFound)));
    assert!(matches!(
        repo.lock(up.id, ClaimToken::new_random(), LEASE).await,
        Err(RepoError::NotFound)
    ));
    repo.delete(up.id).await.unwrap();
    assert_eq!(repo.get(other.id).await.unwrap(), other);
}

macro_rules! suite {
    ($setup:path; $(#[$attr:meta])*) => {
        suite!(@one $setup, [$(#[$attr])*], every_field_is_kept_as_written);
        suite!(@one $setup, [$(#[$attr])*], a_lock_is_held_by_one_token_until_unlocked);
        suite!(@one $setup, [$(#[$attr])*], of_concurrent_lockers_exactly_one_wins);
        suite!(@one $setup, [$(#[$attr])*], a_lapsed_lock_is_taken_over_and_its_holder_shut_out);
        suite!(@one $setup, [$(#[$attr])*], progress_is_stored_only_under_the_live_lock);
        suite!(@one $setup, [$(#[$attr])*], a_hold_keeps_a_short_lease_alive);
        suite!(@one $setup, [$(#[$attr])*], expired_and_live_uploads_are_told_apart);
        suite!(@one $setup, [$(#[$attr])*], a_deleted_upload_is_gone);
    };
    (@one $setup:path, [$(#[$attr:meta])*], $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $(#[$attr])*
        async fn $name() {
            let (repo, _dir) = $setup().await;
            super::$name(repo).await;
        }
    };
}

mod on_sqlite {
    suite!(super::sqlite;);
}

mod on_postgres {
    suite!(super::postgres; #[ignore = "needs Postgres: make test-integration"]);
}
