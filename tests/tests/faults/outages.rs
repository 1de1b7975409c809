//! A dependency (Postgres, Redis, S3) taken down and brought back on the same address while
//! uploads, downloads and listings run. The service reaches it through a [`TcpProxy`]; going down
//! closes every connection and refuses new ones.
//!
//! While it is down every request that needs it answers `503` with its code (never `500`, never
//! a hang past the configured timeouts) and readiness says which; once it is back the service
//! answers in full within a deadline, every upload acknowledged with `201` downloads byte for
//! byte, no blob is left without a file unless the service said it left it for `gc` (whose run
//! then leaves exactly the acknowledged files), and the process holds no more descriptors and no
//! more connections to the dependency than before.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use stowage_tests::{
    TcpProxy, TestServer, client, expect_error, fetch, file_id, free_port, header, multipart_body,
    postgres_server, readiness, redis_connection, redis_server, redis_set, s3_mode, sha256_hex,
    user_token_key,
};

use crate::common::{
    ACCOUNT, Ledger, MIB, address_of, assert_nothing_lost_nothing_left, assert_serves, owner,
    postgres_count, through, unaccounted, upload_recorded, wait_for_fds_at_most,
};
use crate::traffic::{Caller, Phase, Tally, Traffic};

/// Longest any request may take: far past every timeout the servers here are configured with
/// (a second or two), so only a hang reaches it.
const HANG: Duration = Duration::from_secs(20);

/// How long the service may take to answer in full once the dependency is back.
const RECOVERY: Duration = Duration::from_secs(30);

/// Descriptors the process may hold past its idle count once the traffic is over: its pools'
/// connections to the dependency, which may have grown under the traffic.
const FD_SLACK: usize = 16;

/// Workers sending requests at once.
const WORKERS: usize = 4;

/// One dependency's outage.
struct Outage {
    /// The readiness component that names it.
    component: &'static str,
    /// The code of a `503` it causes.
    code: &'static str,
    /// The workers' callers.
    callers: Vec<Caller>,
    /// `Authorization` of a caller whose requests need the dependency.
    affected: String,
    /// Most connections the service may hold to it at once.
    max_connections: usize,
    /// How the dependency itself counts the service's connections.
    counter: Counter,
}

/// Who counts the connections the service holds to a dependency.
enum Counter {
    /// Postgres' `pg_stat_activity`, for the test database, asked through `admin`.
    Postgres { admin: String, database: String },
    /// Redis' `CLIENT LIST`: its clients whose address is a connection the proxy forwards.
    Redis { url: String },
    /// Only the proxy.
    Proxy,
}

impl Counter {
    async fn count(&self, proxy: &TcpProxy) -> usize {
        match self {
            Counter::Postgres { admin, database } => {
                let sql = "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE datname = $1";
                postgres_count(admin, sql, database).await
            }
            Counter::Redis { url } => {
                let through_proxy = proxy.outbound_addresses();
                let mut redis = redis_connection(url).await;
                let clients: String = redis::cmd("CLIENT")
                    .arg("LIST")
                    .query_async(&mut redis)
                    .await
                    .unwrap();
                clients
                    .lines()
                    .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("addr=")))
                    .filter(|addr| through_proxy.iter().any(|a| a.to_string() == *addr))
                    .count()
            }
            Counter::Proxy => proxy.outbound_addresses().len(),
        }
    }
}

impl Caller {
    /// A caller with `Authorization: auth`.
    fn bearer(auth: &str, affected: bool) -> Caller {
        Caller {
            headers: vec![("Authorization".to_owned(), auth.to_owned())],
            affected,
        }
    }
}

impl Outage {
    /// The outage of a dependency every request needs, sent by workers with the owner's JWT.
    fn of_every_request(
        server: &TestServer,
        component: &'static str,
        code: &'static str,
        max_connections: usize,
        counter: Counter,
    ) -> Outage {
        let auth = owner(server);
        Outage {
            component,
            code,
            callers: vec![Caller::bearer(&auth, true); WORKERS],
            affected: auth,
            max_connections,
            counter,
        }
    }
}

/// Restarts `server` reaching the dependency at `url` (its setting `variable`) through a proxy.
async fn behind_a_proxy(server: &mut TestServer, variable: &str, url: &str) -> TcpProxy {
    let proxy = TcpProxy::start(address_of(url)).await;
    server.set_env(variable, &through(url, proxy.port));
    server.stop();
    server.start().await;
    proxy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_during_traffic_answers_503_then_recovers_losing_nothing() {
    let Some(admin) = postgres_server() else {
        eprintln!("skipped: the Postgres outage needs STOWAGE_TEST_DATABASE_URL");
        return;
    };
    let mut server = TestServer::process_with(&[
        ("DATABASE_MAX_CONNECTIONS", "4"),
        ("DATABASE_CONNECT_TIMEOUT_MS", "1000"),
        ("DATABASE_STATEMENT_TIMEOUT_MS", "5000"),
    ])
    .await;
    let direct = server.database_url.clone();
    let mut proxy = behind_a_proxy(&mut server, "DATABASE_URL", &direct).await;
    let database = direct.rsplit('/').next().unwrap().to_owned();
    let counter = Counter::Postgres { admin, database };
    let outage = Outage::of_every_request(&server, "database", "DATABASE_UNAVAILABLE", 4, counter);
    run(&mut server, &mut proxy, &outage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_during_traffic_answers_503_for_redis_tokens_then_recovers_losing_nothing() {
    let Some(url) = redis_server() else {
        eprintln!("skipped: the Redis outage needs STOWAGE_TEST_REDIS_URL");
        return;
    };
    let mut proxy = TcpProxy::start(address_of(&url)).await;
    let prefix = format!(":1:f{}:", uuid::Uuid::new_v4().simple());
    let mut server = TestServer::process_with(&[
        ("REDIS_URL", &through(&url, proxy.port)),
        ("REDIS_KEY_PREFIX", &prefix),
        ("REDIS_TIMEOUT_MS", "500"),
    ])
    .await;
    let token = format!("opaque{}", uuid::Uuid::new_v4().simple());
    let key = user_token_key(&prefix, &server.secret, &token, 1);
    let value = format!(r#"{{"user_id": 1, "account_id": {ACCOUNT}}}"#);
    redis_set(&url, &key, value.as_bytes(), Duration::from_secs(600)).await;

    let opaque = format!("Bearer {token}");
    let mut callers = vec![Caller::bearer(&opaque, true); WORKERS - 1];
    // A JWT needs no Redis: the outage must never reach its requests.
    callers.push(Caller::bearer(&owner(&server), false));
    let outage = Outage {
        component: "redis",
        code: "AUTH_BACKEND_UNAVAILABLE",
        callers,
        affected: opaque,
        max_connections: 2,
        counter: Counter::Redis { url },
    };
    run(&mut server, &mut proxy, &outage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_outage_during_traffic_answers_503_then_recovers_losing_nothing() {
    if !s3_mode() {
        eprintln!("skipped: the S3 outage runs with STOWAGE_TEST_STORAGE=s3");
        return;
    }
    let mut server = TestServer::process_with(&[
        ("S3_CONNECT_TIMEOUT_MS", "500"),
        ("S3_TIMEOUT_MS", "5000"),
        ("S3_MAX_ATTEMPTS", "2"),
        // Every download reads the store.
        ("BLOB_CACHE_BYTES", "0"),
    ])
    .await;
    let endpoint = server.s3.as_ref().unwrap().endpoint();
    let mut proxy = behind_a_proxy(&mut server, "S3_ENDPOINT", &endpoint).await;
    // One per request in flight, and the probes'.
    let most = WORKERS + 4;
    let outage = Outage::of_every_request(
        &server,
        "storage",
        "STORAGE_UNAVAILABLE",
        most,
        Counter::Proxy,
    );
    run(&mut server, &mut proxy, &outage).await;
}

#[tokio::test]
async fn an_upload_refused_by_an_outage_before_its_body_is_read_closes_its_connection_saying_so() {
    // Redis unreachable: an opaque token is refused before any byte of the body is read.
    let closed = format!("redis://127.0.0.1:{}/0", free_port());
    let server =
        TestServer::spawn_with(&[("REDIS_URL", &closed), ("REDIS_TIMEOUT_MS", "300")]).await;
    let opaque = format!("Bearer opaque{}", uuid::Uuid::new_v4().simple());
    let boundary = "refused-early";
    let form = multipart_body(
        boundary,
        "refused.bin",
        "application/octet-stream",
        &stowage_tests::pattern(MIB, 1),
    );
    // One client keeps one connection: the next request goes where the refused one went.
    let client = client();
    for _ in 0..5 {
        let refused = client
            .post(server.url("/files"))
            .header("Authorization", &opaque)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(form.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            header(&refused, "connection").as_deref(),
            Some("close"),
            "{:?}",
            refused.headers()
        );
        expect_error(refused, 503, "AUTH_BACKEND_UNAVAILABLE").await;
        let next = client.get(server.url("/health/live")).send().await;
        assert_eq!(next.map(|r| r.status()).unwrap(), 200);
    }
}

/// The outage: traffic, down, `503`s, up, full service, then the checks.
async fn run(server: &mut TestServer, proxy: &mut TcpProxy, outage: &Outage) {
    let mut ledger = Ledger::new();
    for n in 0..3 {
        let data = stowage_tests::pattern(64 * 1024 + n, n as u64);
        upload_recorded(server, &owner(server), &mut ledger, "seed.bin", data).await;
    }
    let idle_fds = server.open_fds();

    let traffic = Traffic::start(&server.base_url, &outage.callers, ledger, outage.code, HANG);
    traffic
        .wait_until("traffic before the outage", Duration::from_secs(60), |t| {
            t.fewest_ok(Phase::Before) >= 3
        })
        .await;

    traffic.enter(Phase::Down);
    proxy.down().await;
    traffic
        .wait_until("503s while it is down", Duration::from_secs(60), |t| {
            t.unavailable(Phase::Down) >= 20
        })
        .await;
    let (status, ready) = readiness(server).await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(
        ready["components"][outage.component], "unavailable",
        "{ready}"
    );

    proxy.up().await;
    traffic.enter(Phase::Recovering);
    let (probed, mut unconfirmed) = wait_for_full_service(server, &outage.affected).await;
    traffic.enter(Phase::After);
    traffic
        .wait_until("traffic after the recovery", Duration::from_secs(60), |t| {
            t.fewest_ok(Phase::After) >= 5
        })
        .await;
    assert_connections_bounded(proxy, outage, true).await;
    let (tally, mut ledger) = traffic.stop().await;
    ledger.extend(probed);

    assert_tally(&tally);
    unconfirmed.extend(tally.unconfirmed.iter().cloned());
    let ledger = assert_serves(server, &owner(server), &ledger, &unconfirmed).await;
    // What a failed request wrote is removed at once, or when the store cannot be reached to
    // remove it (it stored the bytes but its answer was lost), left for gc with a warning saying
    // so: nothing is left behind unannounced.
    let left = unaccounted(server, &ledger);
    let announced = server.log().matches("gc will").count();
    assert!(
        left.len() <= announced,
        "{} left behind, {announced} announced: {left:?}",
        left.len()
    );
    assert_nothing_lost_nothing_left(server, &ledger).await;
    wait_for_fds_at_most(server, idle_fds + FD_SLACK).await;
    assert_connections_bounded(proxy, outage, false).await;
}

/// Asserts what the traffic got: `503`s only while the dependency was away, and nothing the
/// contract does not allow.
fn assert_tally(tally: &Tally) {
    assert!(tally.violations.is_empty(), "{:#?}", tally.violations);
    assert_eq!(
        tally.unavailable(Phase::Before),
        0,
        "503s before the outage: {tally:?}"
    );
    assert_eq!(
        tally.unavailable(Phase::After),
        0,
        "503s once the service had answered in full again: {tally:?}"
    );
}

/// Waits until an upload, its download, a listing and readiness all succeed for `auth`; returns
/// the uploads acknowledged, and the digests of those that were not.
async fn wait_for_full_service(server: &TestServer, auth: &str) -> (Ledger, BTreeSet<String>) {
    let deadline = Instant::now() + RECOVERY;
    let (mut acknowledged, mut unconfirmed) = (Ledger::new(), BTreeSet::new());
    for attempt in 0_u64.. {
        let data = stowage_tests::pattern(300 * 1024, 10_000 + attempt);
        let sha = sha256_hex(&data);
        let upload = server
            .upload(auth, "probe.bin", "application/octet-stream", data)
            .await;
        let status = upload.status().as_u16();
        let body = upload.text().await.unwrap();
        let whole = if status == 201 {
            let id = file_id(&serde_json::from_str(&body).unwrap());
            acknowledged.insert(id.clone(), sha.clone());
            let got = fetch(server, &format!("/files/{id}"), &[("Authorization", auth)]).await;
            let listed = fetch(server, "/files?limit=5", &[("Authorization", auth)]).await;
            let (ready, _) = readiness(server).await;
            got.status == 200
                && sha256_hex(&got.body) == sha
                && listed.status == 200
                && ready == 200
        } else {
            assert_eq!(status, 503, "while recovering: {body}");
            unconfirmed.insert(sha);
            false
        };
        if whole {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the service is not whole {RECOVERY:?} after the dependency came back: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (acknowledged, unconfirmed)
}

/// Asserts the service holds at most its bound of connections to the dependency: as the proxy
/// counts them and, where it can say, as the dependency does; `in_use`, while traffic runs, at
/// least one (so the count is known to see the service at all). Polled: a connection the service
/// dropped may take a moment to be closed on the other side.
async fn assert_connections_bounded(proxy: &TcpProxy, outage: &Outage, in_use: bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let least = usize::from(in_use && !matches!(outage.counter, Counter::Proxy));
    loop {
        let forwarded = proxy.outbound_addresses().len();
        let counted = outage.counter.count(proxy).await;
        let bound = least..=outage.max_connections;
        if bound.contains(&forwarded) && bound.contains(&counted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the service holds {forwarded} connections to its {} (it counts {counted}), not {bound:?}",
            outage.component,
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
