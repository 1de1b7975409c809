//! What a variant's pixels are: its size for each fit, never larger than the source, the EXIF
//! orientation applied, a GIF's first frame, alpha and gray kept.

use stowage_tests::TestServer;
use stowage_tests::images::{
    Colour, gif, gif_animated, jpeg, jpeg_oriented, orientation_swaps_sides, oriented_quadrants,
    png_gray, png_rgba,
};

use super::{STORED, get_as_owner, image_of, spawn_with, upload};

#[tokio::test]
async fn variants_are_sized_by_their_fit_and_one_side_keeps_the_aspect_ratio() {
    let (server, image) = spawn_with(&[], "wide.jpg", &jpeg(400, 200, 95)).await;

    for (query, size) in [
        // Both sides: cover is the default, and crops the overflow around the centre.
        ("w=100&h=100", (100, 100)),
        ("w=100&h=100&fit=cover", (100, 100)),
        ("w=50&h=100", (50, 100)),
        ("w=100&h=100&fit=contain", (100, 50)),
        ("w=60&h=20&fit=contain", (40, 20)),
        ("w=100&h=100&fit=fill", (100, 100)),
        ("w=300&h=50&fit=fill", (300, 50)),
        // One side: the other follows the source's aspect ratio.
        ("w=100", (100, 50)),
        ("h=50", (100, 50)),
        ("w=399", (399, 200)),
    ] {
        let got = get_as_owner(&server, &image, &format!("{query}&format=png"), &[]).await;
        let variant = image_of(&got, "png");
        assert_eq!((variant.width, variant.height), size, "{query}");
        // Every fit keeps each quadrant where it was (cover crops the middle of the image).
        assert_eq!(variant.quadrants(), STORED, "{query}");
    }
}

#[tokio::test]
async fn variants_are_never_larger_than_their_source() {
    let (server, image) = spawn_with(&[], "small.jpg", &jpeg(120, 60, 95)).await;

    for (query, size) in [
        ("w=1000", (120, 60)),
        ("h=1000", (120, 60)),
        ("w=2500&h=2500&fit=contain", (120, 60)),
        ("w=2500&h=2500&fit=fill", (120, 60)),
        ("w=240&h=30&fit=fill", (120, 30)),
        // Cover keeps the box's shape while it shrinks to fit inside the source.
        ("w=2500&h=2500", (60, 60)),
        ("w=240&h=60&fit=cover", (120, 30)),
    ] {
        let got = get_as_owner(&server, &image, &format!("{query}&format=png"), &[]).await;
        let variant = image_of(&got, "png");
        assert_eq!((variant.width, variant.height), size, "{query}");
    }
}

#[tokio::test]
async fn variants_apply_each_of_the_eight_exif_orientations() {
    let server = TestServer::spawn().await;

    for orientation in 1..=8 {
        // Stored 128 × 64: flat quadrants on whole 16-pixel blocks, so the JPEG keeps them flat.
        let source = jpeg_oriented(128, 64, orientation);
        let image = upload(&server, &format!("o{orientation}.jpg"), &source).await;

        // Lossless, and in the source's format at a size whose quadrants fill whole blocks.
        for (query, format, w) in [("w=32&format=png", "png", 32), ("w=64", "jpeg", 64)] {
            let got = get_as_owner(&server, &image, query, &[]).await;
            let variant = image_of(&got, format);
            let size = if orientation_swaps_sides(orientation) {
                (w, 2 * w)
            } else {
                (w, w / 2)
            };
            assert_eq!(
                (variant.width, variant.height),
                size,
                "orientation {orientation}, {query}"
            );
            assert_eq!(
                variant.quadrants(),
                oriented_quadrants(orientation).map(Some),
                "orientation {orientation}, {query}: corners {:?}",
                variant.quadrant_pixels()
            );
        }
    }
}

#[tokio::test]
async fn variants_of_a_gif_are_its_first_frame_as_png() {
    let server = TestServer::spawn().await;
    let still = upload(&server, "still.gif", &gif(80, 40)).await;
    let animated = upload(&server, "blink.gif", &gif_animated(80, 40)).await;

    for image in [&still, &animated] {
        let got = get_as_owner(&server, image, "w=40", &[]).await;
        let variant = image_of(&got, "png");
        assert_eq!((variant.width, variant.height), (40, 20));
        // The first frame (the quadrants), not the black second one.
        assert_eq!(variant.quadrants(), STORED);
        let got = get_as_owner(&server, image, "w=40&h=40&format=webp", &[]).await;
        let variant = image_of(&got, "webp");
        assert_eq!((variant.width, variant.height), (40, 40));
        assert_eq!(variant.quadrants(), STORED);
    }
}

#[tokio::test]
async fn variants_of_png_keep_alpha_and_gray() {
    let server = TestServer::spawn().await;
    let rgba = upload(&server, "glass.png", &png_rgba(64, 64)).await;
    let gray = upload(&server, "gray.png", &png_gray(64, 64)).await;

    let got = get_as_owner(&server, &rgba, "w=32", &[]).await;
    let variant = image_of(&got, "png");
    assert_eq!((variant.width, variant.height), (32, 32));
    assert_eq!(variant.quadrants(), STORED);
    let alpha = variant.quadrant_pixels().map(|p| p[3]);
    assert_eq!(alpha[..2], [255, 255], "the opaque half stays opaque");
    for a in &alpha[2..] {
        assert!(
            a.abs_diff(128) <= 8,
            "the translucent half keeps its alpha: {alpha:?}"
        );
    }
    // JPEG has no alpha: the pixels are still there.
    let got = get_as_owner(&server, &rgba, "w=32&format=jpeg", &[]).await;
    assert_eq!(image_of(&got, "jpeg").width, 32);

    let got = get_as_owner(&server, &gray, "w=16", &[]).await;
    let variant = image_of(&got, "png");
    assert_eq!((variant.width, variant.height), (16, 16));
    let [left, right, _, _] = variant.quadrant_pixels();
    assert_eq!(Colour::of([left[0], left[1], left[2]]), Some(Colour::Black));
    assert_eq!(
        Colour::of([right[0], right[1], right[2]]),
        Some(Colour::White)
    );
}
