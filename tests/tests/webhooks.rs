//! Webhooks from the outbox: every event `POST`ed signed, once it was taken, in order per file;
//! retried with backoff, left dead when out of attempts and sent again on `events retry-dead`;
//! kept across a crash; never sent by two replicas at once.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use stowage_tests::{TestServer, client, file_id, postgres_server, run_subcommand, scrape_metrics};

const SECRET: &str = "whsec-test-secret";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Delivery {
    body: serde_json::Value,
    signed: bool,
    status: u16,
}

#[derive(Default)]
struct Shared {
    deliveries: Mutex<Vec<Delivery>>,
    /// Status of the next answers (200 by default).
    status: AtomicU16,
    /// Answer `status` to this many requests, then 200.
    failing: AtomicUsize,
    delay: Mutex<Duration>,
    in_flight: Mutex<HashSet<String>>,
    overlaps: AtomicUsize,
}

/// A webhook receiver in the test's process that checks each signature with [`SECRET`].
struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    async fn start() -> Receiver {
        let shared = Arc::new(Shared {
            status: AtomicU16::new(200),
            ..Shared::default()
        });
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, shared }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers `status` from now on.
    fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.shared.deliveries.lock().unwrap().clone()
    }

    /// Bodies of the deliveries answered 2xx.
    fn taken(&self) -> Vec<serde_json::Value> {
        self.deliveries()
            .into_iter()
            .filter(|d| d.status == 200)
            .map(|d| d.body)
            .collect()
    }

    /// Waits until `n` deliveries were taken; returns them.
    async fn wait_for(&self, n: usize, within: Duration) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + within;
        loop {
            let taken = self.taken();
            if taken.len() >= n {
                return taken;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} webhooks delivered: {:#?}",
                taken.len(),
                self.deliveries()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let text = String::from_utf8(body.to_vec()).unwrap();
    let signed = headers
        .get("stowage-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| verify(v, &text));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let id = json["id"].as_str().unwrap_or_default().to_owned();
    if !shared.in_flight.lock().unwrap().insert(id.clone()) {
        shared.overlaps.fetch_add(1, Ordering::SeqCst);
    }
    let delay = *shared.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    shared.in_flight.lock().unwrap().remove(&id);
    let failing = shared
        .failing
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if failing {
        500
    } else {
        shared.status.load(Ordering::SeqCst)
    };
    let is_json = headers
        .get("content-type")
        .is_some_and(|v| v == "application/json");
    shared.deliveries.lock().unwrap().push(Delivery {
        body: json,
        signed: signed && is_json,
        status,
    });
    StatusCode::from_u16(status).unwrap()
}

/// Checks `t={t},v1={hex}` against the HMAC-SHA256 of `{t}.{body}`, as a receiver would.
fn verify(header: &str, body: &str) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(seconds) = t.parse::<i64>() else {
        return false;
    };
    if (stowage_tests::now() - seconds).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == v1
}

fn webhook_env(receiver: &Receiver) -> Vec<(String, String)> {
    vec![
        ("WEBHOOK_URL".to_owned(), receiver.url()),
        ("WEBHOOK_SECRET".to_owned(), SECRET.to_owned()),
        ("WEBHOOK_RETRY_BASE_MS".to_owned(), "50".to_owned()),
        ("WEBHOOK_TIMEOUT_MS".to_owned(), "2000".to_owned()),
    ]
}

async fn server_with(receiver: &Receiver, extra: &[(&str, &str)]) -> TestServer {
    let env = webhook_env(receiver);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(extra);
    TestServer::process_with(&all).await
}

/// Uploads, downloads and deletes one file through `server`; returns its id.
async fn upload_download_delete(server: &TestServer, delete: bool) -> String {
    let auth = server.bearer(Some(1), 1);
    let info = server
        .upload_ok(&auth, "hook.txt", "text/plain", b"hello".to_vec())
        .await;
    let id = file_id(&info);
    let path = format!("/files/{id}");
    let got = client()
        .get(server.url(&path))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let _ = got.bytes().await.unwrap();
    if delete {
        let gone = client()
            .delete(server.url(&path))
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 204);
    }
    id
}

/// The types taken for each file, in delivery order.
fn types_per_file(taken: &[serde_json::Value]) -> HashMap<String, Vec<String>> {
    let mut per_file: HashMap<String, Vec<String>> = HashMap::new();
    for body in taken {
        per_file
            .entry(
                body["data"]["object"]["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
            .or_default()
            .push(body["type"].as_str().unwrap().to_owned());
    }
    per_file
}

/// The first delivery of each event, in the order they were taken.
fn first_takes(taken: &[serde_json::Value]) -> Vec<serde_json::Value> {
    let mut seen = HashSet::new();
    taken
        .iter()
        .filter(|body| seen.insert(body["id"].as_str().unwrap_or_default().to_owned()))
        .cloned()
        .collect()
}

fn assert_each_taken_once(taken: &[serde_json::Value]) {
    let mut seen = HashSet::new();
    for body in taken {
        let id = body["id"].as_str().unwrap();
        assert!(seen.insert(id.to_owned()), "{id} taken twice");
    }
}

#[tokio::test]
async fn upload_download_and_delete_are_posted_signed() {
    let receiver = Receiver::start().await;
    let server = server_with(&receiver, &[]).await;

    let id = upload_download_delete(&server, true).await;

    let taken = receiver.wait_for(3, Duration::from_secs(15)).await;
    assert!(
        receiver.deliveries().iter().all(|d| d.signed),
        "bad signature"
    );
    let types: Vec<&str> = taken.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["file.upload", "file.download", "file.delete"]);
    for body in &taken {
        let keys: HashSet<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            HashSet::from(["id", "type", "created_at", "data"]),
            "{body}"
        );
        assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
        assert_eq!(body["data"]["type"], body["type"]);
        assert_eq!(body["data"]["object"]["id"], id.as_str(), "{body}");
        assert_eq!(body["data"]["service"], "stowage");
    }
    let log = server.log();
    assert!(!log.contains(SECRET), "the secret leaked into the log");
}

#[tokio::test]
async fn failed_deliveries_are_retried_until_taken_in_order_per_file() {
    let receiver = Receiver::start().await;
    receiver.shared.failing.store(5, Ordering::SeqCst);
    let server = server_with(&receiver, &[]).await;

    let first = upload_download_delete(&server, true).await;
    let second = upload_download_delete(&server, false).await;

    let taken = receiver.wait_for(5, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let taken_later = receiver.taken();
    assert_eq!(taken_later.len(), 5, "{taken_later:#?}");
    assert_each_taken_once(&taken);
    let per_file = types_per_file(&taken_later);
    assert_eq!(
        per_file[&first],
        ["file.upload", "file.download", "file.delete"]
    );
    assert_eq!(per_file[&second], ["file.upload", "file.download"]);
    assert!(
        receiver.deliveries().iter().any(|d| d.status == 500),
        "nothing was retried"
    );
}

#[tokio::test]
async fn events_out_of_attempts_are_dead_until_retried() {
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let server = server_with(&receiver, &[("WEBHOOK_MAX_ATTEMPTS", "2")]).await;
    let auth = server.bearer(Some(1), 1);
    let info = server
        .upload_ok(&auth, "dead.txt", "text/plain", b"dead".to_vec())
        .await;
    let id = file_id(&info);

    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let out = run_subcommand(&server, "events", &["list", "--dead"]);
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        if text.contains(&id) {
            break text;
        }
        assert!(Instant::now() < deadline, "never dead: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        listed.contains("file.upload") && listed.contains("dead"),
        "{listed}"
    );
    assert!(listed.contains("HTTP 500"), "{listed}");
    assert_eq!(receiver.deliveries().len(), 2, "more attempts than allowed");
    let metrics = scrape_metrics(&server.base_url).await;
    assert!(
        metrics.contains(r#"webhook_deliveries_total{result="dead"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("webhook_outbox_dead 1"), "{metrics}");

    receiver.answer(200);
    let out = run_subcommand(&server, "events", &["retry-dead"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with('1'),
        "{out:?}"
    );

    let taken = receiver.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(taken[0]["data"]["object"]["id"], id.as_str());
    let out = run_subcommand(&server, "events", &["list"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 events"),
        "{out:?}"
    );
}

#[tokio::test]
async fn a_killed_server_delivers_its_outbox_after_restart() {
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let mut server = server_with(&receiver, &[]).await;
    let ids = [
        upload_download_delete(&server, false).await,
        upload_download_delete(&server, true).await,
    ];
    while receiver.deliveries().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.child_mut().kill().unwrap();
    server.child_mut().wait().unwrap();
    let out = run_subcommand(&server, "events", &["list"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("5 events"),
        "{out:?}"
    );
    receiver.answer(200);
    server.start().await;

    // Delivery is at least once: on a loaded machine an answer that comes after the delivery's
    // timeout has it sent again, so each event counts once, at its first delivery.
    let deadline = Instant::now() + Duration::from_secs(30);
    let taken = loop {
        let firsts = first_takes(&receiver.taken());
        if firsts.len() >= 5 {
            break firsts;
        }
        assert!(
            Instant::now() < deadline,
            "{} of 5 events delivered",
            firsts.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let per_file = types_per_file(&taken);
    assert_eq!(per_file[&ids[0]], ["file.upload", "file.download"]);
    assert_eq!(
        per_file[&ids[1]],
        ["file.upload", "file.download", "file.delete"]
    );
}

#[tokio::test]
#[ignore = "needs Postgres: make test-integration"]
async fn two_replicas_never_deliver_one_event_at_once() {
    postgres_server().expect("needs Postgres: make test-integration");
    let receiver = Receiver::start().await;
    *receiver.shared.delay.lock().unwrap() = Duration::from_millis(300);
    let one = server_with(&receiver, &[]).await;
    let two = server_with(&receiver, &[("DATABASE_URL", one.database_url.as_str())]).await;

    let mut files = Vec::new();
    for i in 0..6 {
        let server = if i % 2 == 0 { &one } else { &two };
        files.push(upload_download_delete(server, false).await);
    }

    let taken = receiver.wait_for(12, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.shared.overlaps.load(Ordering::SeqCst), 0);
    assert_each_taken_once(&receiver.taken());
    let per_file = types_per_file(&taken);
    for id in &files {
        assert_eq!(per_file[id], ["file.upload", "file.download"], "{id}");
    }
}
