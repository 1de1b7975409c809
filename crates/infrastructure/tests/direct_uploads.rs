//! The direct upload repository: a claim is held under its token, so a holder whose lease lapsed
//! (or anyone else) can neither release nor complete a later claim. On SQLite always, on Postgres
//! under `make test-integration` (server URL in `STOWAGE_TEST_DATABASE_URL`).

#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test"
)]

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};
use stowage_application::ports::{
    Claim, ClaimToken, DirectUpload, DirectUploadId, DirectUploadRepository,
};
use stowage_domain::{AccountId, FileId, Filename, PrincipalKind, UserId};
use stowage_infrastructure::SeaOrmDirectUploadRepository;
use stowage_infrastructure::db::{DatabaseSettings, connect, migrate};
use tempfile::TempDir;
use time::OffsetDateTime;

async fn repository(url: &str) -> SeaOrmDirectUploadRepository {
    let pool = connect(&DatabaseSettings {
        url: url.into(),
        max_connections: 4,
        connect_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    migrate(&pool).await.unwrap();
    SeaOrmDirectUploadRepository::new(&pool)
}

fn upload() -> DirectUpload {
    DirectUpload {
        id: DirectUploadId::new_random(),
        file_id: FileId::new_random(),
        account_id: AccountId::new(1),
        user_id: Some(UserId::new(2)),
        principal_kind: PrincipalKind::User,
        filename: Filename::sanitize("a.txt"),
        declared_type: "text/plain".into(),
        size: 5,
        sha256: None,
        policy: None,
        key: None,
        // Read back as written: the column this upload's file takes its visibility from.
        visibility: Some(stowage_domain::Visibility::Public),
        multipart: None,
        expires_at: OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
            + Duration::from_secs(60),
    }
}

fn kind(claim: &Claim) -> &'static str {
    match claim {
        Claim::Claimed(_) => "claimed",
        Claim::Completed(_) => "completed",
        Claim::Busy(_) => "busy",
    }
}

async fn claims_are_held_by_their_token(repo: &SeaOrmDirectUploadRepository) {
    let up = upload();
    repo.insert(&up).await.unwrap();
    assert_eq!(repo.get(up.id).await.unwrap(), up);
    let (first, second) = (ClaimToken::new_random(), ClaimToken::new_random());
    let lease = Duration::from_secs(60);

    assert_eq!(
        kind(&repo.claim(up.id, first, lease).await.unwrap()),
        "claimed"
    );
    assert_eq!(
        kind(&repo.claim(up.id, second, lease).await.unwrap()),
        "busy"
    );
    // Another token neither frees nor completes it.
    repo.release(up.id, second).await.unwrap();
    repo.mark_completed(up.id, Some(second)).await.unwrap();
    assert_eq!(
        kind(&repo.claim(up.id, second, lease).await.unwrap()),
        "busy"
    );
    // Its holder frees it; then the next claim holds it and completes it.
    repo.release(up.id, first).await.unwrap();
    assert_eq!(
        kind(&repo.claim(up.id, second, lease).await.unwrap()),
        "claimed"
    );
    repo.mark_completed(up.id, Some(first)).await.unwrap();
    assert_eq!(
        kind(&repo.claim(up.id, first, lease).await.unwrap()),
        "busy"
    );
    repo.mark_completed(up.id, Some(second)).await.unwrap();
    assert_eq!(
        kind(&repo.claim(up.id, first, lease).await.unwrap()),
        "completed"
    );

    // A lapsed lease is taken over; the holder's late completion then changes nothing.
    let up = upload();
    repo.insert(&up).await.unwrap();
    assert_eq!(
        kind(&repo.claim(up.id, first, Duration::ZERO).await.unwrap()),
        "claimed"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        kind(&repo.claim(up.id, second, lease).await.unwrap()),
        "claimed"
    );
    repo.mark_completed(up.id, Some(first)).await.unwrap();
    assert_eq!(
        kind(&repo.claim(up.id, first, lease).await.unwrap()),
        "busy"
    );
    // gc settles an upload whose file was recorded whatever holds it.
    repo.mark_completed(up.id, None).await.unwrap();
    assert_eq!(
        kind(&repo.claim(up.id, first, lease).await.unwrap()),
        "completed"
    );
}

#[tokio::test]
async fn on_sqlite_claims_are_held_by_their_token() {
    let dir: TempDir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    claims_are_held_by_their_token(&repository(&url).await).await;
}

#[tokio::test]
#[ignore = "needs Postgres: make test-integration"]
async fn on_postgres_claims_are_held_by_their_token() {
    let server = std::env::var("STOWAGE_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("STOWAGE_TEST_DATABASE_URL is not set"));
    let server = server.trim_end_matches('/').to_owned();
    let database = format!("stowage_du_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(format!("{server}/postgres"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!(r#"CREATE DATABASE "{database}""#))
        .await
        .unwrap();
    claims_are_held_by_their_token(&repository(&format!("{server}/{database}")).await).await;
    let _ = admin
        .execute_unprepared(&format!(
            r#"DROP DATABASE IF EXISTS "{database}" WITH (FORCE)"#
        ))
        .await;
}
