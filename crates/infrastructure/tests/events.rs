//! The audit stream publisher against a real Redis (`STOWAGE_TEST_REDIS_URL`), and against a
//! Redis that is down or stops answering.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use stowage_application::events::{Actor, ActorKind, EventKind, FileEvent, RequestFacts};
use stowage_application::ports::EventPublisher;
use stowage_domain::{AccountId, FileId, UserId};
use stowage_infrastructure::{RedisStreamPublisher, RedisStreamSettings};
use stowage_tests::free_port;
use tokio::net::{TcpListener, TcpStream};

const NEEDS_REDIS: &str =
    "STOWAGE_TEST_REDIS_URL must point at a Redis server (make test-integration sets it)";

const TIMEOUT: Duration = Duration::from_millis(400);
const COOLDOWN: Duration = Duration::from_millis(300);
/// What a publish may take beyond its timeout (scheduling on a loaded machine).
const MARGIN: Duration = Duration::from_millis(500);

fn redis_url() -> String {
    std::env::var("STOWAGE_TEST_REDIS_URL").expect(NEEDS_REDIS)
}

/// `host:port` and the database path (`/9` or empty) of a `redis://host:port[/db]` URL.
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("redis://").expect("a redis:// URL");
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    match rest.split_once('/') {
        Some((host, db)) => (host.to_owned(), format!("/{db}")),
        None => (rest.to_owned(), String::new()),
    }
}

fn settings(url: &str, stream: &str, maxlen: u64) -> RedisStreamSettings {
    RedisStreamSettings {
        url: url.into(),
        stream: stream.to_owned(),
        maxlen,
        service: "stowage-it".to_owned(),
        timeout: TIMEOUT,
        cooldown: COOLDOWN,
    }
}

fn stream_name() -> String {
    format!("it:events:{}", uuid::Uuid::new_v4().simple())
}

fn event(kind: EventKind) -> FileEvent {
    FileEvent {
        id: uuid::Uuid::new_v4(),
        kind,
        at: time::macros::datetime!(2026-11-23 19:10:15.051622 UTC),
        actor: Actor {
            kind: ActorKind::User,
            user_id: Some(UserId::new(3)),
            account_id: AccountId::new(9),
        },
        file_id: FileId::parse("7c0e2a52-8f0b-4c39-9f77-2b0d5c1e4a10").unwrap(),
        filename: "report.pdf".to_owned(),
        size: 48_213,
        content_type: "application/pdf".to_owned(),
        file_account_id: AccountId::new(7),
        is_owner: (kind == EventKind::Download).then_some(false),
        request: RequestFacts::new(
            Some("203.0.113.9".to_owned()),
            Some("curl/8.5"),
            Some("req-1".to_owned()),
        ),
    }
}

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every entry of `stream`: its `type` and its `data` parsed.
async fn entries(stream: &str) -> Vec<(String, Value)> {
    let mut con = redis().await;
    let raw: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut con)
        .await
        .unwrap();
    raw.into_iter()
        .map(|(_id, fields)| {
            assert_eq!(fields.len(), 4, "{fields:?}");
            assert_eq!((fields[0].as_str(), fields[2].as_str()), ("type", "data"));
            (fields[1].clone(), serde_json::from_str(&fields[3]).unwrap())
        })
        .collect()
}

async fn delete(stream: &str) {
    let _: i64 = redis::cmd("DEL")
        .arg(stream)
        .query_async(&mut redis().await)
        .await
        .unwrap();
}

/// Publishes `event`, checking it returns within the timeout (and the margin).
async fn publish_in_time(publisher: &RedisStreamPublisher, event: &FileEvent) -> Duration {
    let started = Instant::now();
    publisher.publish(event).await;
    let took = started.elapsed();
    assert!(took <= TIMEOUT + MARGIN, "publish took {took:?}");
    took
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn each_kind_but_delete_is_added_with_its_envelope() {
    let stream = stream_name();
    let publisher = RedisStreamPublisher::new(&settings(&redis_url(), &stream, 1000)).unwrap();
    for kind in EventKind::ALL {
        publisher.publish(&event(kind)).await;
    }

    let entries = entries(&stream).await;
    let types: Vec<&str> = entries.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        ["file.upload", "file.download", "file.access_denied"],
        "a deletion is not written"
    );
    let mut payload = json!({
        "filename": "report.pdf",
        "size": 48_213,
        "content_type": "application/pdf",
    });
    for (kind, data) in &entries {
        payload
            .as_object_mut()
            .unwrap()
            .retain(|k, _| !matches!(k.as_str(), "is_owner" | "file_account_id"));
        match kind.as_str() {
            "file.download" => payload["is_owner"] = json!(false),
            "file.access_denied" => payload["file_account_id"] = json!(7),
            _ => {}
        }
        assert_eq!(
            data,
            &json!({
                "type": kind,
                "category": "audit",
                "service": "stowage-it",
                "ts": "2026-11-23T19:10:15.051622Z",
                "account_id": 9,
                "actor": {"type": "user", "id": 3, "email": null},
                "object": {"type": "file", "id": "7c0e2a52-8f0b-4c39-9f77-2b0d5c1e4a10"},
                "workflow_id": null,
                "task_id": null,
                "ip": "203.0.113.9",
                "user_agent": "curl/8.5",
                "request_id": "req-1",
                "payload": payload,
                "pii": ["ip", "user_agent", "payload.filename"],
            })
        );
    }
    assert_eq!(publisher.dropped(), 0);
    delete(&stream).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn the_stream_is_trimmed_to_about_its_maxlen() {
    let stream = stream_name();
    let publisher = RedisStreamPublisher::new(&settings(&redis_url(), &stream, 10)).unwrap();
    let upload = event(EventKind::Upload);
    for _ in 0..600 {
        publisher.publish(&upload).await;
    }
    let len: u64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut redis().await)
        .await
        .unwrap();
    // `~` trims whole stream nodes (100 entries by default), never below the bound.
    assert!((10..=10 + 100).contains(&len), "XLEN {len}");
    assert_eq!(publisher.dropped(), 0);
    delete(&stream).await;
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn a_closed_port_drops_events_in_time() {
    let url = format!("redis://127.0.0.1:{}/0", free_port());
    let publisher = RedisStreamPublisher::new(&settings(&url, &stream_name(), 10)).unwrap();
    for n in 1..=5 {
        publish_in_time(&publisher, &event(EventKind::Upload)).await;
        assert_eq!(publisher.dropped(), n);
    }
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn a_redis_that_never_answers_costs_one_timeout_per_cooldown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts, reads nothing, answers nothing.
    let hung = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            held.push(socket);
        }
    });
    let url = format!("redis://127.0.0.1:{port}/0");
    let publisher = RedisStreamPublisher::new(&settings(&url, &stream_name(), 10)).unwrap();

    let first = publish_in_time(&publisher, &event(EventKind::Download)).await;
    assert!(first >= TIMEOUT, "the first publish waited {first:?}");
    assert_eq!(publisher.dropped(), 1);
    let second = publish_in_time(&publisher, &event(EventKind::Download)).await;
    assert!(
        second < Duration::from_millis(100),
        "dropped without a try: {second:?}"
    );
    assert_eq!(publisher.dropped(), 2);
    tokio::time::sleep(COOLDOWN).await;
    publish_in_time(&publisher, &event(EventKind::AccessDenied)).await;
    assert_eq!(publisher.dropped(), 3, "the probe failed too");
    hung.abort();
}

/// Forwards every connection on `listener` to Redis at `target`.
async fn forward(listener: TcpListener, target: String) {
    loop {
        let (mut client, _) = listener.accept().await.unwrap();
        let target = target.clone();
        tokio::spawn(async move {
            if let Ok(mut server) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
    }
}

#[tokio::test]
#[ignore = "needs Redis: make test-integration"]
async fn events_are_written_again_after_the_cooldown() {
    let (target, db) = split_url(&redis_url());
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}{db}");
    let stream = stream_name();
    let publisher = RedisStreamPublisher::new(&settings(&url, &stream, 100)).unwrap();

    publish_in_time(&publisher, &event(EventKind::Upload)).await;
    assert_eq!(publisher.dropped(), 1, "Redis is not there yet");

    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let proxy = tokio::spawn(forward(listener, target));
    publish_in_time(&publisher, &event(EventKind::Upload)).await;
    assert_eq!(publisher.dropped(), 2, "no try during the cooldown");
    assert!(entries(&stream).await.is_empty());

    tokio::time::sleep(COOLDOWN).await;
    publish_in_time(&publisher, &event(EventKind::Download)).await;
    publish_in_time(&publisher, &event(EventKind::AccessDenied)).await;
    assert_eq!(publisher.dropped(), 2);
    let types: Vec<String> = entries(&stream).await.into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, ["file.download", "file.access_denied"]);

    proxy.abort();
    delete(&stream).await;
}
