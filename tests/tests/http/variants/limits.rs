//! What no variant is made of: files that are not decodable images, decompression bombs and
//! sources over the configured limits, all refused from what the header says; and the bound on
//! variants made at once.

use std::time::{Duration, Instant};

use stowage_tests::images::{
    NOT_AN_IMAGE, PNG, avif_header_only, gif, gif_bomb, jpeg, jpeg_bomb, png_bomb, png_noise,
    truncated, webp,
};
use stowage_tests::{TestServer, fetch};

use super::{assert_error, get_as_owner, image_of, owner, spawn_with, upload};
use crate::common::PDF;

#[tokio::test]
async fn variants_of_files_that_are_not_decodable_images_are_422() {
    let server = TestServer::spawn().await;

    for (name, data) in [
        ("notes.jpg", NOT_AN_IMAGE.to_vec()),
        ("paper.jpg", PDF.to_vec()),
        ("cut.jpg", truncated(&jpeg(256, 256, 90))),
        ("cut.png", truncated(&png_noise(64, 64, 3))),
        ("cut.webp", truncated(&webp(64, 64))),
        // This build decodes no AVIF: an AVIF source is no decodable image, whatever is asked.
        ("photo.avif", avif_header_only(64, 64)),
    ] {
        let image = upload(&server, name, &data).await;
        for query in ["w=10", "variant=small", "w=10&h=10&fit=fill&format=png"] {
            let got = get_as_owner(&server, &image, query, &[]).await;
            assert_error(&got, 422, "UNSUPPORTED_IMAGE");
        }
        // The file itself is served as it was stored.
        let plain = get_as_owner(&server, &image, "disposition=attachment", &[]).await;
        assert_eq!(plain.status, 200, "{name}");
        assert_eq!(plain.body, data, "{name}");
    }
}

#[tokio::test]
async fn variants_of_decompression_bombs_are_refused_from_the_header_at_once() {
    let server = TestServer::spawn().await;

    for (name, bomb) in [
        ("bomb.gif", gif_bomb()),
        ("bomb.jpg", jpeg_bomb()),
        ("bomb.png", png_bomb()),
    ] {
        assert!(bomb.len() < 300, "{name} is a tiny file");
        let image = upload(&server, name, &bomb).await;
        for query in ["w=10", "variant=small", "w=10&h=10&format=webp"] {
            let started = Instant::now();
            let got = get_as_owner(&server, &image, query, &[]).await;
            assert_error(&got, 422, "IMAGE_TOO_LARGE");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{name} {query} took {:?}",
                started.elapsed()
            );
        }
    }
    assert!(
        server
            .blob_files()
            .iter()
            .all(|p| !p.to_string_lossy().contains(".variants")),
        "nothing is stored for a refused variant: {:?}",
        server.blob_files()
    );
}

#[tokio::test]
async fn variants_keep_the_configured_source_limits() {
    let (pixels, big) = spawn_with(
        &[("IMAGE_MAX_SOURCE_PIXELS", "100")],
        "16x16.jpg",
        &jpeg(16, 16, 90),
    )
    .await;
    let got = get_as_owner(&pixels, &big, "w=8", &[]).await;
    assert_error(&got, 422, "IMAGE_TOO_LARGE");
    let at_limit = upload(&pixels, "10x10.jpg", &jpeg(10, 10, 90)).await;
    let got = get_as_owner(&pixels, &at_limit, "w=5", &[]).await;
    assert_eq!(image_of(&got, "jpeg").width, 5);

    let noise = png_noise(64, 64, 5);
    assert!(noise.len() > 2000);
    let (bytes, big) = spawn_with(&[("IMAGE_MAX_SOURCE_BYTES", "2000")], "noise.png", &noise).await;
    let got = get_as_owner(&bytes, &big, "w=8", &[]).await;
    assert_error(&got, 422, "IMAGE_TOO_LARGE");
    let small = upload(&bytes, "dot.png", &PNG).await;
    let got = get_as_owner(&bytes, &small, "w=1", &[]).await;
    assert_eq!(image_of(&got, "png").width, 1);
    let gif = upload(&bytes, "small.gif", &gif(16, 16)).await;
    let got = get_as_owner(&bytes, &gif, "w=8", &[]).await;
    assert_eq!(image_of(&got, "png").width, 8);
}

#[tokio::test]
async fn variants_made_at_once_are_bounded_and_the_rest_wait_or_get_503() {
    // One variant at a time, of a source whose decoding takes a while: a burst of distinct
    // variants fills the slot and its queue, and what does not fit is refused at once.
    let (server, image) =
        spawn_with(&[("IMAGE_CONCURRENCY", "1")], "huge.gif", &gif(1000, 1000)).await;
    let auth = owner(&server);
    let requests = (0..24).map(|i| {
        let path = image.path(&format!("w={}", 10 + i));
        let server = &server;
        let auth = auth.clone();
        async move { fetch(server, &path, &[("Authorization", &auth)]).await }
    });
    let answers = futures_util::future::join_all(requests).await;

    let mut refused = 0;
    for got in &answers {
        match got.status {
            200 => {
                image_of(got, "png");
            }
            503 => {
                assert_error(got, 503, "SERVICE_BUSY");
                let retry: u64 = got.header("retry-after").unwrap().parse().unwrap();
                assert!(retry >= 1);
                refused += 1;
            }
            other => panic!("{other}: {}", String::from_utf8_lossy(&got.body)),
        }
    }
    assert!(refused > 0, "24 variants at once on one slot: none refused");
    assert!(refused < answers.len(), "every variant was refused");
    // Once the burst is over, a refused variant is made.
    let again = get_as_owner(&server, &image, "w=33", &[]).await;
    assert_eq!(image_of(&again, "png").width, 33);
}
