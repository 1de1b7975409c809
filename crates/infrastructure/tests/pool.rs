//! The Postgres connection pool: opening it, and what it does with connections the server
//! closed. The tests that need a server run under `make test-integration` (server URL in
//! `STOWAGE_TEST_DATABASE_URL`).

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use stowage_application::ports::FileRepository;
use stowage_infrastructure::SeaOrmFileRepository;
use stowage_infrastructure::db::{DatabaseSettings, PING_WHEN_IDLE_FOR, connect};
use stowage_tests::{create_database, free_port, postgres_server};

fn settings(url: String) -> DatabaseSettings {
    DatabaseSettings {
        url: url.into(),
        max_connections: 4,
        connect_timeout: Duration::from_millis(500),
        statement_timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn connect_fails_when_nothing_listens() {
    let url = format!("postgres://postgres@127.0.0.1:{}/stowage", free_port());

    let connected = connect(&settings(url)).await;

    assert!(connected.is_err());
}

#[tokio::test]
async fn connect_gives_up_when_the_server_never_answers() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "postgres://postgres@{}/stowage",
        silent.local_addr().unwrap()
    );

    let connected = tokio::time::timeout(Duration::from_secs(10), connect(&settings(url)))
        .await
        .expect("connect ignored its 500 ms connect timeout");

    assert!(connected.is_err());
}

#[tokio::test]
#[ignore = "needs Postgres: make test-integration"]
async fn connections_the_server_closed_while_idle_are_replaced_before_a_query_uses_them() {
    let server = postgres_server().unwrap_or_else(|| {
        panic!("STOWAGE_TEST_DATABASE_URL is not set; run `make test-integration`")
    });
    let server = server.trim_end_matches('/');
    let database = create_database(server, "stowage_pool").await;
    let pool = connect(&settings(format!("{server}/{database}")))
        .await
        .unwrap();
    let repo = SeaOrmFileRepository::new(pool.clone());
    // Queries at once open up to four connections, all idle afterwards.
    for checked in futures_util::future::join_all((0..4).map(|_| repo.health())).await {
        checked.unwrap();
    }
    let admin = Database::connect(format!("{server}/postgres"))
        .await
        .unwrap();
    let closed = admin
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{database}'"
            ),
        ))
        .await
        .unwrap();
    assert!(!closed.is_empty(), "no pooled connection to close");

    tokio::time::sleep(PING_WHEN_IDLE_FOR + Duration::from_millis(100)).await;
    let after: Vec<_> = futures_util::future::join_all((0..8).map(|_| repo.health())).await;

    pool.close().await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .await
        .unwrap();
    admin.close().await.unwrap();
    for checked in after {
        checked.unwrap();
    }
}
