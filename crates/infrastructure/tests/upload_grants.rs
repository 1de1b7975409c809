//! The upload grant store: one claim at a time, lapsed claims taken over, used grants never
//! claimed again, abandoned claims released. On SQLite always, on Postgres under
//! `make test-integration` (server URL in `STOWAGE_TEST_DATABASE_URL`, one database per test).

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failed step fails the test"
)]

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use stowage_application::ports::{ClaimToken, UploadGrantId, UploadGrantStore};
use stowage_domain::FileId;
use stowage_infrastructure::SeaOrmUploadGrantStore;
use stowage_infrastructure::db::{DatabasePool, DatabaseSettings, connect, migrate};
use tempfile::TempDir;
use time::OffsetDateTime;

const LEASE: Duration = Duration::from_secs(60);

async fn pool(url: &str) -> DatabasePool {
    let pool = connect(&DatabaseSettings {
        url: url.into(),
        max_connections: 4,
        connect_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    migrate(&pool).await.unwrap();
    pool
}

async fn sqlite() -> (SeaOrmUploadGrantStore, Option<TempDir>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    (SeaOrmUploadGrantStore::new(&pool(&url).await), Some(dir))
}

async fn postgres() -> (SeaOrmUploadGrantStore, Option<TempDir>) {
    let server = std::env::var("STOWAGE_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("STOWAGE_TEST_DATABASE_URL is not set"));
    let server = server.trim_end_matches('/').to_owned();
    let database = format!("stowage_ug_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(format!("{server}/postgres"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!(r#"CREATE DATABASE "{database}""#))
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = format!("{server}/{database}");
    (SeaOrmUploadGrantStore::new(&pool(&url).await), None)
}

fn in_an_hour() -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::from_secs(3600)
}

async fn claims_are_exclusive_until_released_or_used(store: SeaOrmUploadGrantStore) {
    let grant = UploadGrantId::new_random();
    let (a, b, c) = (
        ClaimToken::new_random(),
        ClaimToken::new_random(),
        ClaimToken::new_random(),
    );
    assert!(store.claim(grant, a, in_an_hour(), LEASE).await.unwrap());
    assert!(!store.claim(grant, b, in_an_hour(), LEASE).await.unwrap());

    store.release(grant, a).await.unwrap();
    assert!(store.claim(grant, b, in_an_hour(), LEASE).await.unwrap());
    store.release(grant, a).await.unwrap();
    assert!(!store.claim(grant, c, in_an_hour(), LEASE).await.unwrap());

    let file = FileId::new_random();
    assert!(!store.complete(grant, a, file).await.unwrap());
    assert!(store.complete(grant, b, file).await.unwrap());
    store.release(grant, b).await.unwrap();
    assert!(!store.claim(grant, c, in_an_hour(), LEASE).await.unwrap());
}

async fn a_lapsed_claim_is_taken_over_and_its_holder_told(store: SeaOrmUploadGrantStore) {
    let grant = UploadGrantId::new_random();
    let (crashed, next) = (ClaimToken::new_random(), ClaimToken::new_random());
    let short = Duration::from_millis(30);
    assert!(
        store
            .claim(grant, crashed, in_an_hour(), short)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(60)).await;

    assert!(store.claim(grant, next, in_an_hour(), LEASE).await.unwrap());
    // The old holder's keep-alive finds its claim gone and ends.
    tokio::time::timeout(Duration::from_secs(5), store.hold(grant, crashed, short))
        .await
        .unwrap();
    assert!(
        !store
            .complete(grant, crashed, FileId::new_random())
            .await
            .unwrap()
    );
    assert!(
        store
            .complete(grant, next, FileId::new_random())
            .await
            .unwrap()
    );
}

async fn dropping_a_hold_releases_an_abandoned_claim(store: SeaOrmUploadGrantStore) {
    let grant = UploadGrantId::new_random();
    let (abandoned, next) = (ClaimToken::new_random(), ClaimToken::new_random());
    assert!(
        store
            .claim(grant, abandoned, in_an_hour(), LEASE)
            .await
            .unwrap()
    );
    let hold = store.hold(grant, abandoned, LEASE);
    drop(hold);

    let mut taken = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if store.claim(grant, next, in_an_hour(), LEASE).await.unwrap() {
            taken = true;
            break;
        }
    }
    assert!(taken, "the abandoned claim was not released");

    // After completion a dropped hold changes nothing.
    let hold = store.hold(grant, next, LEASE);
    assert!(
        store
            .complete(grant, next, FileId::new_random())
            .await
            .unwrap()
    );
    drop(hold);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let other = ClaimToken::new_random();
    assert!(
        !store
            .claim(grant, other, in_an_hour(), LEASE)
            .await
            .unwrap()
    );
}

async fn an_expired_grant_cannot_be_claimed(store: SeaOrmUploadGrantStore) {
    let past = OffsetDateTime::now_utc() - Duration::from_secs(1);

    // No row yet (or `gc` removed it): the database's clock refuses the claim all the same.
    let claimed = store
        .claim(
            UploadGrantId::new_random(),
            ClaimToken::new_random(),
            past,
            LEASE,
        )
        .await
        .unwrap();

    assert!(!claimed);
}

async fn expired_grants_are_removed_but_running_claims_kept(store: SeaOrmUploadGrantStore) {
    // Claimable only before their expiry: claimed now, expired after a short wait.
    let soon = OffsetDateTime::now_utc() + Duration::from_secs(1);
    let past = OffsetDateTime::now_utc() - Duration::from_secs(60);
    let (used, running, live) = (
        UploadGrantId::new_random(),
        UploadGrantId::new_random(),
        UploadGrantId::new_random(),
    );
    let token = ClaimToken::new_random();
    assert!(store.claim(used, token, soon, LEASE).await.unwrap());
    assert!(
        store
            .complete(used, token, FileId::new_random())
            .await
            .unwrap()
    );
    assert!(store.claim(running, token, soon, LEASE).await.unwrap());
    assert!(store.claim(live, token, in_an_hour(), LEASE).await.unwrap());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let now = OffsetDateTime::now_utc();

    assert_eq!(store.remove_expired(now, true).await.unwrap(), 1);
    assert_eq!(store.remove_expired(now, false).await.unwrap(), 1);
    assert_eq!(store.remove_expired(now, false).await.unwrap(), 0);
    // The used grant's record is gone; the others still hold.
    let other = ClaimToken::new_random();
    assert!(!store.claim(running, other, past, LEASE).await.unwrap());
    assert!(!store.claim(live, other, in_an_hour(), LEASE).await.unwrap());
}

macro_rules! suite {
    ($setup:path; $(#[$attr:meta])*) => {
        suite!(@one $setup, [$(#[$attr])*], claims_are_exclusive_until_released_or_used);
        suite!(@one $setup, [$(#[$attr])*], a_lapsed_claim_is_taken_over_and_its_holder_told);
        suite!(@one $setup, [$(#[$attr])*], dropping_a_hold_releases_an_abandoned_claim);
        suite!(@one $setup, [$(#[$attr])*], an_expired_grant_cannot_be_claimed);
        suite!(@one $setup, [$(#[$attr])*], expired_grants_are_removed_but_running_claims_kept);
    };
    (@one $setup:path, [$(#[$attr:meta])*], $name:ident) => {
        #[tokio::test]
        $(#[$attr])*
        async fn $name() {
            let (store, _dir) = $setup().await;
            super::$name(store).await;
        }
    };
}

mod on_sqlite {
    suite!(super::sqlite;);
}

mod on_postgres {
    suite!(super::postgres; #[ignore = "needs Postgres: make test-integration"]);
}
