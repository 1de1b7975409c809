//! Upload policies that name presets: their variants are made before the upload is answered.

use stowage_tests::images::{
    gif, jpeg, jpeg_oriented, oriented_quadrants, png_noise, png_rgba, truncated,
};
use stowage_tests::{TestServer, fetch, s3_mode};

use super::{Image, image_of, stored_variants, upload_image};
use crate::common::upload_to;

const PUBLIC_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn variants_of_the_avatar_policy_exist_before_the_upload_is_answered() {
    let server = TestServer::spawn().await;

    for (name, source, presets, format) in [
        (
            "me.jpg",
            jpeg(400, 320, 90),
            [
                "w32-h32-cover-q80.jpeg",
                "w150-h150-cover-q80.jpeg",
                "w300-h300-cover-q80.jpeg",
            ],
            "jpeg",
        ),
        (
            "me.png",
            png_rgba(200, 200),
            [
                "w32-h32-cover.png",
                "w150-h150-cover.png",
                "w300-h300-cover.png",
            ],
            "png",
        ),
    ] {
        let info = upload_image(&server, "/files?policy=avatar", name, &source).await;
        assert_eq!(info["visibility"], "public");
        let image = Image::of(&info);
        // Nothing has asked for a variant yet: the upload made them.
        assert_eq!(
            stored_variants(&server, &image.id),
            sorted(&presets),
            "{name}"
        );
        let folder = server
            .data_dir
            .path()
            .join("blobs/1")
            .join(format!("{}.variants", image.id));
        if !s3_mode() {
            for preset in presets {
                assert!(folder.join(preset).is_file(), "{name}: {preset}");
            }
        }

        for (preset, stored, side) in [
            ("small", presets[0], 32),
            ("medium", presets[1], 150),
            // Never larger than the source: the 200 × 200 PNG stays 200 × 200.
            ("large", presets[2], if format == "png" { 200 } else { 300 }),
        ] {
            let got = fetch(&server, &image.path(&format!("variant={preset}")), &[]).await;
            let variant = image_of(&got, format);
            assert_eq!(
                (variant.width, variant.height),
                (side, side),
                "{name} {preset}"
            );
            assert_eq!(got.header("etag"), Some(image.etag(stored)));
            assert_eq!(
                got.header("cache-control").as_deref(),
                Some(PUBLIC_CACHE_CONTROL)
            );
            if !s3_mode() {
                assert_eq!(std::fs::read(folder.join(stored)).unwrap(), got.body);
            }
        }
    }

    // The avatar keeps its orientation, which its variants apply: stored 128 × 64 and turned
    // a quarter, it shows 64 × 128, and `large` (300 × 300) takes its middle 64 × 64.
    let turned = upload_image(
        &server,
        "/files?policy=avatar",
        "turned.jpg",
        &jpeg_oriented(128, 64, 6),
    )
    .await;
    let image = Image::of(&turned);
    let got = fetch(&server, &image.path("variant=large"), &[]).await;
    let variant = image_of(&got, "jpeg");
    assert_eq!((variant.width, variant.height), (64, 64));
    assert_eq!(variant.quadrants(), oriented_quadrants(6).map(Some));
}

#[tokio::test]
async fn variants_of_configured_policies_use_the_configured_presets() {
    let presets = "small=32x32,medium=150x150,large=300x300,thumb=64x64,wide=120x";
    let policies = r#"{"gallery": {"types": ["image/png", "image/gif", "image/webp"], "variants": ["thumb", "wide"]}}"#;
    let server =
        TestServer::spawn_with(&[("IMAGE_PRESETS", presets), ("UPLOAD_POLICIES", policies)]).await;

    let info = upload_image(
        &server,
        "/files?policy=gallery",
        "strip.gif",
        &gif(240, 120),
    )
    .await;
    let image = Image::of(&info);
    assert_eq!(
        stored_variants(&server, &image.id),
        sorted(&["w64-h64-cover.png", "w120.png"])
    );
    let auth = server.bearer(Some(1), 1);
    for (preset, size, name) in [
        ("thumb", (64, 64), "w64-h64-cover.png"),
        ("wide", (120, 60), "w120.png"),
        ("small", (32, 32), "w32-h32-cover.png"),
    ] {
        let got = fetch(
            &server,
            &image.path(&format!("variant={preset}")),
            &[("Authorization", &auth)],
        )
        .await;
        let variant = image_of(&got, "png");
        assert_eq!((variant.width, variant.height), size, "{preset}");
        assert_eq!(got.header("etag"), Some(image.etag(name)));
    }
    assert_eq!(stored_variants(&server, &image.id).len(), 3);

    // An image whose variants cannot be made is refused, and nothing of it is kept.
    let blobs_before = server.blob_files().len();
    let broken = upload_to(
        &server,
        "/files?policy=gallery",
        &[("Authorization", &auth)],
        "cut.png",
        "image/png",
        &truncated(&png_noise(64, 64, 9)),
    )
    .await;
    crate::common::expect_error(broken, 422, "UNSUPPORTED_IMAGE").await;
    assert_eq!(server.row_count().await, 1);
    assert_eq!(
        server.blob_files().len(),
        blobs_before,
        "{:?}",
        server.blob_files()
    );
}
