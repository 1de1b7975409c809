//! Rate limits behind nginx: requests nginx passes to one replica, then the other, are counted
//! together in Redis, so a client is refused after the configured limit, not after twice it;
//! each client (the `X-Real-IP` nginx sets) is counted apart.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use reqwest::Body;
use stowage_tests::replicas::postgres;
use stowage_tests::{
    ReplicaPair, expect_error, file_id, json_with_status, multipart_body, redis_server,
};

use crate::common::{get, post_file, upload};

const UPLOADS: usize = 3;
const DOWNLOADS: usize = 4;

/// Requests nginx passed to each replica since `before`.
fn since(pair: &ReplicaPair, before: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    pair.served()
        .into_iter()
        .map(|(replica, n)| {
            let earlier = before.get(&replica).copied().unwrap_or_default();
            (replica, n - earlier)
        })
        .collect()
}

/// Asserts that both replicas took part in what happened since `before`.
fn assert_both(pair: &ReplicaPair, before: &BTreeMap<String, usize>, what: &str) {
    let share = since(pair, before);
    assert!(
        share.values().all(|n| *n >= 1),
        "{what} did not reach both replicas: {share:?}"
    );
}

#[tokio::test]
async fn requests_alternating_between_replicas_are_counted_once_against_the_shared_limit() {
    if postgres().is_none() {
        return;
    }
    let redis = redis_server().expect(
        "STOWAGE_TEST_REDIS_URL is not set: replicas share their rate limits through Redis \
         (make test-integration sets it)",
    );
    let prefix = format!(":1:t{}:", uuid::Uuid::new_v4().simple());
    let pair = ReplicaPair::start(&[
        ("RATE_LIMIT_ENABLED", "true"),
        ("RATE_LIMIT_UPLOAD", &format!("{UPLOADS}/60s")),
        ("RATE_LIMIT_DOWNLOAD", &format!("{DOWNLOADS}/60s")),
        ("REDIS_URL", &redis),
        ("REDIS_KEY_PREFIX", &prefix),
    ])
    .await;
    let auth = pair.first.bearer(Some(1), 1);
    let nginx = pair.url("");

    // Round robin: each replica admits fewer than the limit, so a replica counting alone would
    // admit every one of the next uploads.
    let start = pair.served();
    let mut id = String::new();
    for _ in 0..UPLOADS {
        id = file_id(&upload(&nginx, &auth, "", "limited.txt", b"limited").await);
    }
    assert_both(&pair, &start, "the admitted uploads");
    let admitted = pair.served();
    for n in UPLOADS + 1..=2 * UPLOADS {
        let response = post_file(&nginx, &auth, "", "over.txt", b"over", Body::from)
            .await
            .unwrap();
        assert_eq!(response.status(), 429, "upload {n} of {UPLOADS} allowed");
        expect_error(response, 429, "RATE_LIMITED").await;
    }
    assert_both(&pair, &admitted, "the refused uploads");

    let start = pair.served();
    let path = format!("/files/{id}");
    for n in 1..=DOWNLOADS {
        let response = get(&nginx, &auth, &path, &[]).await;
        assert_eq!(
            response.status(),
            200,
            "download {n} of {DOWNLOADS} allowed"
        );
    }
    assert_both(&pair, &start, "the admitted downloads");
    let admitted = pair.served();
    for n in DOWNLOADS + 1..=2 * DOWNLOADS {
        let response = get(&nginx, &auth, &path, &[]).await;
        assert_eq!(
            response.status(),
            429,
            "download {n} of {DOWNLOADS} allowed"
        );
        expect_error(response, 429, "RATE_LIMITED").await;
    }
    assert_both(&pair, &admitted, "the refused downloads");

    // Another client, as nginx reports it in X-Real-IP, has counts of its own.
    let other = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap();
    let boundary = "another-client";
    let response = other
        .post(pair.url("/files"))
        .header("Authorization", &auth)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(multipart_body(
            boundary,
            "other.txt",
            "text/plain",
            b"other",
        ))
        .send()
        .await
        .unwrap();
    json_with_status(response, 201).await;
    let response = other
        .get(pair.url(&path))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "another client's first download");
}
