//! `stowage-api` killed with SIGKILL while it makes an image variant: after a restart the variant
//! is made and served, and the store holds variants of live files only.

use std::time::{Duration, Instant};

use stowage_tests::images::{decode, format_of, jpeg, jpeg_noise};
use stowage_tests::{TestServer, client, fetch, send_as};

use crate::common::{
    ACCOUNT, Ledger, assert_nothing_lost_nothing_left, assert_store_holds_exactly, collect_garbage,
    owner, upload_recorded,
};

const VARIANT: &str = "w=300&h=300&format=webp";

/// CPU time (in clock ticks, 10 ms each on Linux) the server spends on the variant before it is
/// killed: well into decoding a source that takes far longer to decode.
const BUSY_TICKS: u64 = 20;

/// Asserts the variant of `id` is served: a 300 × 300 WebP.
async fn assert_variant_served(server: &TestServer, id: &str) {
    let got = fetch(
        server,
        &format!("/files/{id}?{VARIANT}"),
        &[("Authorization", &owner(server))],
    )
    .await;
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(got.header("content-type").as_deref(), Some("image/webp"));
    assert_eq!(format_of(&got.body), Some("webp"));
    let image = decode(&got.body);
    assert_eq!((image.width, image.height), (300, 300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_a_variant_is_made_then_it_is_made_after_restart() {
    let mut server = TestServer::process().await;
    let auth = owner(&server);
    let mut ledger = Ledger::new();
    let small = upload_recorded(&server, &auth, &mut ledger, "small.jpg", jpeg(640, 480, 90)).await;
    assert_variant_served(&server, &small).await;
    // Every block detail: its decoding takes long, even at a reduced scale.
    let noise = jpeg_noise(3000, 3000, 90, 3);
    let large = upload_recorded(&server, &auth, &mut ledger, "large.jpg", noise).await;

    let before = server.cpu_ticks();
    let request = tokio::spawn(
        client()
            .get(server.url(&format!("/files/{large}?{VARIANT}")))
            .header("Authorization", &auth)
            .send(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.cpu_ticks() - before < BUSY_TICKS {
        assert!(
            !request.is_finished(),
            "the variant was answered before it could be killed"
        );
        assert!(Instant::now() < deadline, "the server never got busy");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !request.is_finished(),
        "the variant was answered before the kill"
    );
    server.kill();
    let cut = request.await.unwrap();
    assert!(
        cut.as_ref().map_or(true, |r| r.status() != 200),
        "a killed server served the variant: {cut:?}"
    );
    server.start().await;
    assert_variant_served(&server, &large).await;
    assert_nothing_lost_nothing_left(&server, &ledger).await;

    // Deleting a file takes its variants with it, and gc finds nothing to do.
    let deleted = send_as(
        &server,
        reqwest::Method::DELETE,
        &format!("/files/{small}"),
        &auth,
    )
    .await;
    assert_eq!(deleted.status(), 204);
    ledger.remove(&small);
    assert_store_holds_exactly(&server, &ledger);
    let report = collect_garbage(&server);
    assert!(
        report.contains("orphan blobs 0, unfinished uploads 0"),
        "{report}"
    );
    assert!(
        server
            .stored_keys()
            .iter()
            .any(|p| p.starts_with(&format!("{ACCOUNT}/{large}.variants/"))),
        "the variant of the live file is kept: {:?}",
        server.stored_keys()
    );
}
