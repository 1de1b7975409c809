//! Replicas that start together on a fresh database (`serve` migrates before it listens): each
//! waits its turn, all come up, and every migration is applied once. (`stowage-api migrate` run
//! from several processes at once is `storage.rs`'s.)

use std::collections::HashMap;
use std::process::Command;

use sea_orm::{ConnectionTrait, Database};
use stowage_tests::replicas::postgres;
use stowage_tests::{
    Replica, applied_migrations, assert_serves, binary, create_database, file_id, now, pattern,
    sign_jwt,
};

use crate::common::upload;

#[tokio::test]
async fn four_replicas_starting_together_on_a_fresh_database_migrate_it_once_and_all_serve() {
    let Some(server) = postgres() else {
        return;
    };
    let name = create_database(&server, "stowage_replicas").await;
    let url = format!("{server}/{name}");
    let data_dir = tempfile::tempdir().unwrap();
    let env: HashMap<String, String> = [
        ("DATABASE_URL", url.as_str()),
        ("DATA_DIR", &data_dir.path().display().to_string()),
        ("AUTH_SECRET_KEY", "replicas-migrate"),
        ("STORAGE_BACKEND", "fs"),
        ("RATE_LIMIT_ENABLED", "false"),
        ("LOG_FORMAT", "json"),
        ("LOG_LEVEL", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();

    let mut replicas: Vec<Replica> = (0..4).map(|_| Replica::spawn(&env)).collect();
    for replica in &mut replicas {
        replica.wait_until_live().await;
    }

    let (applied, versions) = applied_migrations(&url).await;
    assert!(applied > 0, "no migration was applied");
    assert_eq!(applied, versions, "a migration was applied twice");
    // Nothing was left for later: a migrate run now finds every migration applied.
    let output = Command::new(binary())
        .env_clear()
        .envs(&env)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(applied_migrations(&url).await, (applied, versions));

    // Each replica stores a file the next one serves.
    let auth = format!(
        "Bearer {}",
        sign_jwt(
            "replicas-migrate",
            &serde_json::json!({"user_id": 1, "account_id": 1, "exp": now() + 600}),
        )
    );
    for (i, replica) in replicas.iter().enumerate() {
        let data = pattern(10_000 + i, i as u64);
        let info = upload(&replica.base_url, &auth, "", "race.bin", &data).await;
        let next = &replicas[(i + 1) % replicas.len()];
        assert_serves(&next.base_url, &auth, &file_id(&info), &data).await;
    }

    drop(replicas);
    let admin = Database::connect(format!("{server}/postgres"))
        .await
        .unwrap();
    let _ = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
}
