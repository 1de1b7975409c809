//! The format of a variant: kept from the source, asked for, or chosen by `Accept`; its quality;
//! the presets; the parameters refused; and the metadata a variant never carries.

use stowage_tests::TestServer;
use stowage_tests::images::{
    EXIF_SECRETS, contains, gif, jpeg, jpeg_oriented, metadata_containers, png_noise, png_rgba,
    webp, webp_with_exif,
};

use super::{STORED, assert_error, get_as_owner, image_of, spawn_with, upload};

#[tokio::test]
async fn variants_are_written_in_the_format_asked_for_and_named_by_it() {
    let (server, image) = spawn_with(&[], "photo.jpg", &jpeg(200, 100, 95)).await;

    for (query, format, name) in [
        ("w=100", "jpeg", "w100-q80.jpeg"),
        ("w=100&format=jpeg", "jpeg", "w100-q80.jpeg"),
        ("w=100&format=png", "png", "w100.png"),
        ("w=100&format=webp", "webp", "w100-q80.webp"),
        (
            "w=100&h=50&format=webp&q=60",
            "webp",
            "w100-h50-cover-q60.webp",
        ),
        (
            "w=100&h=50&fit=contain&format=png",
            "png",
            "w100-h50-contain.png",
        ),
        (
            "h=50&fit=fill&w=100&format=jpeg",
            "jpeg",
            "w100-h50-fill-q80.jpeg",
        ),
    ] {
        let got = get_as_owner(&server, &image, query, &[]).await;
        let variant = image_of(&got, format);
        assert_eq!((variant.width, variant.height), (100, 50), "{query}");
        assert_eq!(variant.quadrants(), STORED, "{query}");
        assert_eq!(got.header("etag"), Some(image.etag(name)), "{query}");
        assert_eq!(got.header("vary"), None, "{query}: only format=auto varies");
        assert_eq!(
            got.header("cache-control").as_deref(),
            Some(crate::common::CACHE_CONTROL),
            "{query}"
        );
        assert_eq!(
            got.header("content-length"),
            Some(got.body.len().to_string()),
            "{query}"
        );
        let disposition = got.header("content-disposition").unwrap_or_default();
        let extension = if format == "jpeg" { "jp" } else { format };
        assert!(
            disposition.starts_with("attachment;")
                && disposition.contains(&format!("filename=\"photo.{extension}")),
            "{query}: {disposition}"
        );
    }
}

#[tokio::test]
async fn variants_in_format_auto_follow_the_accept_header() {
    let server = TestServer::spawn().await;
    let from_jpeg = upload(&server, "photo.jpg", &jpeg(64, 32, 95)).await;
    let from_png = upload(&server, "glass.png", &png_rgba(64, 32)).await;
    let from_webp = upload(&server, "photo.webp", &webp(64, 32)).await;
    let from_gif = upload(&server, "anim.gif", &gif(64, 32)).await;
    let chromium = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";

    for (image, accept, format) in [
        (&from_jpeg, chromium, "webp"),
        (&from_jpeg, "image/webp", "webp"),
        (&from_jpeg, "*/*", "jpeg"),
        (&from_jpeg, "image/*", "jpeg"),
        // AVIF cannot be written here, so it is never chosen.
        (&from_jpeg, "image/avif", "jpeg"),
        (&from_png, chromium, "webp"),
        (&from_png, "image/png,*/*", "png"),
        (&from_webp, chromium, "webp"),
        // A WebP for a client that names neither WebP nor AVIF becomes a PNG.
        (&from_webp, "image/png,image/jpeg;q=0.9,*/*", "png"),
        (&from_webp, "*/*", "png"),
        (&from_gif, chromium, "webp"),
        (&from_gif, "*/*", "png"),
    ] {
        let got = get_as_owner(&server, image, "w=32&format=auto", &[("Accept", accept)]).await;
        let variant = image_of(&got, format);
        assert_eq!((variant.width, variant.height), (32, 16), "{accept}");
        assert!(
            got.header("vary")
                .is_some_and(|v| v.to_ascii_lowercase().contains("accept")),
            "{accept}: Vary is {:?}",
            got.header("vary")
        );
        let etag = got.header("etag").unwrap();
        assert!(etag.ends_with(&format!(".{format}\"")), "{accept}: {etag}");
    }
}

#[tokio::test]
async fn variants_in_avif_are_not_supported_by_this_build() {
    let (server, image) = spawn_with(&[], "photo.jpg", &jpeg(64, 32, 90)).await;

    for query in [
        "w=32&format=avif",
        "format=avif",
        "variant=small&format=avif",
    ] {
        let got = get_as_owner(&server, &image, query, &[("Accept", "image/avif")]).await;
        assert_error(&got, 400, "VALIDATION_ERROR");
    }
    // The file itself is still served.
    let got = get_as_owner(&server, &image, "disposition=inline", &[]).await;
    assert_eq!(got.status, 200);
}

#[tokio::test]
async fn variants_lossy_quality_changes_the_bytes_and_png_ignores_it() {
    let (server, image) = spawn_with(&[], "noise.png", &png_noise(256, 256, 7)).await;
    let size_of = |got: &stowage_tests::Fetched, format: &str| {
        image_of(got, format);
        got.body.len()
    };

    for format in ["jpeg", "webp"] {
        let low = get_as_owner(&server, &image, &format!("w=200&format={format}&q=10"), &[]).await;
        let high = get_as_owner(&server, &image, &format!("w=200&format={format}&q=90"), &[]).await;
        let (low, high_len) = (size_of(&low, format), size_of(&high, format));
        assert!(
            low * 3 < high_len * 2,
            "{format}: q=10 is {low} bytes, q=90 {high_len}"
        );
        assert_eq!(
            high.header("etag"),
            Some(image.etag(&format!("w200-q90.{format}")))
        );
        // q defaults to 80.
        let default = get_as_owner(&server, &image, &format!("w=200&format={format}"), &[]).await;
        let explicit =
            get_as_owner(&server, &image, &format!("w=200&format={format}&q=80"), &[]).await;
        assert_eq!(default.header("etag"), explicit.header("etag"));
        assert_eq!(default.body, explicit.body);
    }
    let plain = get_as_owner(&server, &image, "w=200", &[]).await;
    let with_q = get_as_owner(&server, &image, "w=200&q=10", &[]).await;
    image_of(&plain, "png");
    assert_eq!(plain.header("etag"), Some(image.etag("w200.png")));
    assert_eq!(with_q.header("etag"), plain.header("etag"));
    assert_eq!(with_q.body, plain.body);
}

#[tokio::test]
async fn variants_presets_are_named_boxes_and_unknown_names_are_refused() {
    let (server, image) = spawn_with(&[], "photo.jpg", &jpeg(400, 320, 95)).await;

    for (query, format, side, name) in [
        ("variant=small", "jpeg", 32, "w32-h32-cover-q80.jpeg"),
        ("variant=medium", "jpeg", 150, "w150-h150-cover-q80.jpeg"),
        ("variant=large", "jpeg", 300, "w300-h300-cover-q80.jpeg"),
        (
            "variant=small&format=webp",
            "webp",
            32,
            "w32-h32-cover-q80.webp",
        ),
        (
            "variant=medium&format=png",
            "png",
            150,
            "w150-h150-cover.png",
        ),
        (
            "variant=large&q=50",
            "jpeg",
            300,
            "w300-h300-cover-q50.jpeg",
        ),
    ] {
        let got = get_as_owner(&server, &image, query, &[]).await;
        let variant = image_of(&got, format);
        assert_eq!((variant.width, variant.height), (side, side), "{query}");
        assert_eq!(variant.quadrants(), STORED, "{query}");
        assert_eq!(got.header("etag"), Some(image.etag(name)), "{query}");
    }
    // A preset and the box it names are one variant.
    let preset = get_as_owner(&server, &image, "variant=medium", &[]).await;
    let by_size = get_as_owner(&server, &image, "w=150&h=150", &[]).await;
    assert_eq!(preset.header("etag"), by_size.header("etag"));
    assert_eq!(preset.body, by_size.body);

    for query in [
        "variant=huge",
        "variant=SMALL",
        "variant=",
        "variant=small%00",
    ] {
        let got = get_as_owner(&server, &image, query, &[]).await;
        assert_error(&got, 400, "VALIDATION_ERROR");
    }
}

#[tokio::test]
async fn variants_with_bad_parameters_are_400() {
    let (server, image) = spawn_with(&[], "photo.jpg", &jpeg(64, 64, 90)).await;

    for query in [
        "w=0",
        "w=-1",
        "w=abc",
        "w=1.5",
        "w=",
        "w=2501",
        "w=99999999999999999999",
        "h=0",
        "h=2501",
        "w=10&h=x",
        "fit=cover",
        "w=10&fit=contain",
        "h=10&fit=fill",
        "w=10&h=10&fit=stretch",
        "w=10&h=10&fit=COVER",
        "w=10&format=gif",
        "w=10&format=jpg",
        "w=10&format=",
        "w=10&format=WEBP",
        "w=10&q=0",
        "w=10&q=101",
        "w=10&q=high",
        "q=",
        "variant=small&w=10",
        "variant=small&h=10",
        "variant=small&fit=cover",
    ] {
        let got = get_as_owner(&server, &image, query, &[]).await;
        let body = assert_error(&got, 400, "VALIDATION_ERROR");
        assert!(body["message"].is_string(), "{query}: {body}");
    }
    // The largest side a variant may ask for is IMAGE_MAX_OUTPUT_PX.
    assert_eq!(
        get_as_owner(&server, &image, "w=2500", &[]).await.status,
        200
    );
    // The presets must fit within it too.
    let limits = [
        ("IMAGE_MAX_OUTPUT_PX", "100"),
        ("IMAGE_PRESETS", "small=32x32,medium=64x64,large=100x100"),
    ];
    let (small, image) = spawn_with(&limits, "photo.jpg", &jpeg(64, 64, 90)).await;
    for query in ["w=101", "h=101", "w=10&h=101&fit=fill"] {
        let got = get_as_owner(&small, &image, query, &[]).await;
        assert_error(&got, 400, "VALIDATION_ERROR");
    }
    assert_eq!(get_as_owner(&small, &image, "w=100", &[]).await.status, 200);
}

#[tokio::test]
async fn variants_carry_no_metadata() {
    let server = TestServer::spawn().await;
    let sources = [
        ("photo.jpg", jpeg_oriented(64, 32, 6)),
        ("glass.png", png_rgba(64, 32)),
        ("photo.webp", webp_with_exif(64, 32)),
    ];

    for (name, source) in &sources {
        assert!(
            !metadata_containers(source).is_empty(),
            "{name} has metadata"
        );
        let image = upload(&server, name, source).await;
        for format in ["", "&format=jpeg", "&format=png", "&format=webp"] {
            let query = format!("w=16{format}");
            let got = get_as_owner(&server, &image, &query, &[]).await;
            assert_eq!(got.status, 200, "{name} {query}");
            let kind = stowage_tests::images::format_of(&got.body).unwrap();
            image_of(&got, kind);
            assert_eq!(
                metadata_containers(&got.body),
                Vec::<String>::new(),
                "{name} {query}"
            );
            for secret in EXIF_SECRETS.iter().chain(&[b"Exif".as_slice(), b"xmpmeta"]) {
                assert!(
                    !contains(&got.body, secret),
                    "{name} {query} keeps {:?}",
                    String::from_utf8_lossy(secret)
                );
            }
        }
    }
}
