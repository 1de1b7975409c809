//! A variant is served like its source: its own `ETag`, the source's access rules and caching,
//! signed URLs that sign its parameters; it is made once, kept beside the source in the store,
//! and removed with it.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use stowage_tests::images::{jpeg, png_rgba};
use stowage_tests::{Fetched, TestServer, client, fetch, s3_mode, send};

use super::{
    Image, assert_error, get_as_owner, image_of, owner, spawn_with, stored_variants, upload_image,
};
use crate::common::CACHE_CONTROL;

const PUBLIC_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// `GET url` (absolute), with no credential.
async fn get_url(url: &str) -> Fetched {
    let response = client().get(url).send().await.unwrap();
    Fetched {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

#[tokio::test]
async fn variants_have_their_own_etag_answer_304_and_ignore_ranges() {
    let (server, image) = spawn_with(&[], "glass.png", &png_rgba(64, 64)).await;
    let query = "w=32&h=32";

    let first = get_as_owner(&server, &image, query, &[]).await;
    image_of(&first, "png");
    let etag = image.etag("w32-h32-cover.png");
    assert_eq!(first.header("etag").as_deref(), Some(etag.as_str()));

    for matching in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
    ] {
        let got = get_as_owner(&server, &image, query, &[("If-None-Match", &matching)]).await;
        assert_eq!(got.status, 304, "{matching}");
        assert!(got.body.is_empty());
        assert_eq!(got.header("etag").as_deref(), Some(etag.as_str()));
    }
    // The source's ETag, or another variant's, is not this variant's.
    let source_etag = format!("\"{}\"", image.sha256);
    let other = image.etag("w16-h16-cover.png");
    for stale in [source_etag.as_str(), other.as_str()] {
        let got = get_as_owner(&server, &image, query, &[("If-None-Match", stale)]).await;
        assert_eq!(got.status, 200, "{stale}");
        assert_eq!(got.body, first.body);
    }
    // A variant is always sent whole.
    let ranged = get_as_owner(&server, &image, query, &[("Range", "bytes=0-9")]).await;
    assert_eq!(ranged.status, 200);
    assert_eq!(ranged.header("content-range"), None);
    assert_eq!(ranged.body, first.body);
    // HEAD says what GET would send.
    let auth = owner(&server);
    let head = send(
        &server,
        Method::HEAD,
        &image.path(query),
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(head.status(), 200);
    let length = head.headers()["content-length"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(length, first.body.len().to_string());
    assert_eq!(head.headers()["content-type"], "image/png");
}

#[tokio::test]
async fn variants_are_made_once_and_kept_beside_their_source() {
    // Without the in-memory cache of small blobs, every answer is read from the store.
    let (server, image) =
        spawn_with(&[("BLOB_CACHE_BYTES", "0")], "photo.jpg", &jpeg(64, 64, 90)).await;
    assert!(stored_variants(&server, &image.id).is_empty());

    let first = get_as_owner(&server, &image, "w=20", &[]).await;
    image_of(&first, "jpeg");
    assert_eq!(stored_variants(&server, &image.id), ["w20-q80.jpeg"]);
    let second = get_as_owner(&server, &image, "w=20", &[]).await;
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("etag"), first.header("etag"));
    let webp = get_as_owner(&server, &image, "w=20&format=webp", &[]).await;
    image_of(&webp, "webp");
    assert_eq!(
        stored_variants(&server, &image.id),
        ["w20-q80.jpeg", "w20-q80.webp"]
    );

    if !s3_mode() {
        // On disk, beside the source: what is stored there is what is served.
        let folder = server
            .data_dir
            .path()
            .join("blobs/1")
            .join(format!("{}.variants", image.id));
        assert!(server.blob_path(1, &image.id).is_file());
        let stored = std::fs::read(folder.join("w20-q80.jpeg")).unwrap();
        assert_eq!(stored, first.body);
        let marked = jpeg(20, 20, 50);
        std::fs::write(folder.join("w20-q80.jpeg"), &marked).unwrap();
        let third = get_as_owner(&server, &image, "w=20", &[]).await;
        assert_eq!(
            third.body, marked,
            "the stored variant is served, not made again"
        );
    }
}

#[tokio::test]
async fn variants_follow_the_access_rules_of_their_source() {
    let (server, image) = spawn_with(&[], "private.jpg", &jpeg(64, 64, 90)).await;
    let same_account = server.bearer(Some(2), 1);
    let other_account = server.bearer(Some(9), 9);

    let mine = get_as_owner(&server, &image, "w=16", &[]).await;
    image_of(&mine, "jpeg");
    assert_eq!(mine.header("cache-control").as_deref(), Some(CACHE_CONTROL));

    for (who, headers) in [
        (
            "a user of the same account",
            vec![("Authorization", same_account.as_str())],
        ),
        (
            "a user of another account",
            vec![("Authorization", other_account.as_str())],
        ),
        (
            "an invalid token",
            vec![("Authorization", "Bearer not-a-token")],
        ),
        ("no credential", vec![]),
    ] {
        let plain = fetch(&server, &format!("/files/{}", image.id), &headers).await;
        for query in ["w=16", "variant=small", "w=16&format=webp"] {
            let variant = fetch(&server, &image.path(query), &headers).await;
            assert_eq!(variant.status, plain.status, "{who} {query}");
            if plain.status != 200 {
                assert_eq!(
                    variant.json()["code"],
                    plain.json()["code"],
                    "{who} {query}"
                );
            }
        }
    }
    let anonymous = fetch(&server, &image.path("w=16"), &[]).await;
    assert_error(&anonymous, 401, "UNAUTHENTICATED");
    let stranger = fetch(
        &server,
        &image.path("w=16"),
        &[("Authorization", &other_account)],
    )
    .await;
    assert!(
        [403, 404].contains(&stranger.status),
        "another account: {}",
        stranger.status
    );
    let missing = Image {
        id: uuid::Uuid::new_v4().to_string(),
        sha256: String::new(),
    };
    let got = get_as_owner(&server, &missing, "w=16", &[]).await;
    assert_error(&got, 404, "FILE_NOT_FOUND");
}

#[tokio::test]
async fn variants_of_a_public_file_are_served_to_anyone_and_cached_for_a_year() {
    let server = TestServer::spawn().await;
    let info = upload_image(
        &server,
        "/files?visibility=public",
        "logo.png",
        &png_rgba(64, 64),
    )
    .await;
    assert_eq!(info["visibility"], "public");
    let image = Image::of(&info);
    let stranger = server.bearer(Some(9), 9);

    for headers in [vec![], vec![("Authorization", stranger.as_str())]] {
        for (query, side) in [("w=16", 16), ("variant=small", 32)] {
            let got = fetch(&server, &image.path(query), &headers).await;
            assert_eq!(image_of(&got, "png").width, side, "{query}");
            assert_eq!(
                got.header("cache-control").as_deref(),
                Some(PUBLIC_CACHE_CONTROL),
                "{query}"
            );
            assert!(got.header("etag").is_some());
        }
    }
    let bad = fetch(&server, &image.path("w=0"), &[]).await;
    assert_error(&bad, 400, "VALIDATION_ERROR");
}

/// `POST /files/{id}/signed-url` with `body` as the owner; returns the answer.
async fn sign(server: &TestServer, id: &str, body: &Value) -> reqwest::Response {
    client()
        .post(server.url(&format!("/files/{id}/signed-url")))
        .header("Authorization", owner(server))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The URL of a signed grant of `body`, asserting `200`.
async fn signed(server: &TestServer, id: &str, body: Value) -> String {
    let answer = crate::common::json_with_status(sign(server, id, &body).await, 200).await;
    answer["url"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn variants_signed_urls_sign_every_variant_parameter() {
    let (server, image) = spawn_with(&[], "photo.jpg", &jpeg(200, 100, 90)).await;
    let id = &image.id;
    let files = format!("{}/files/{id}", server.base_url);

    let url = signed(
        &server,
        id,
        json!({"expires_in": 600, "w": 50, "h": 50, "format": "webp", "q": 70}),
    )
    .await;
    assert!(
        url.starts_with(&format!("{files}?w=50&h=50&format=webp&q=70&expires=")),
        "{url}"
    );
    let got = get_url(&url).await;
    let variant = image_of(&got, "webp");
    assert_eq!((variant.width, variant.height), (50, 50));
    assert_eq!(
        got.header("etag"),
        Some(image.etag("w50-h50-cover-q70.webp"))
    );

    // Changing, adding or removing a parameter breaks the signature.
    for tampered in [
        url.replacen("w=50", "w=51", 1),
        url.replacen("format=webp", "format=png", 1),
        url.replacen("q=70", "q=20", 1),
        url.replacen("format=webp&", "", 1),
        url.replacen("q=70&", "", 1),
        format!("{url}&fit=fill"),
        url.replacen('?', "?fit=cover&", 1),
    ] {
        assert_error(&get_url(&tampered).await, 403, "INVALID_SIGNATURE");
    }

    let fitted = signed(&server, id, json!({"w": 40, "h": 30, "fit": "contain"})).await;
    assert!(
        fitted.starts_with(&format!("{files}?w=40&h=30&fit=contain&expires=")),
        "{fitted}"
    );
    let variant = image_of(&get_url(&fitted).await, "jpeg");
    assert_eq!((variant.width, variant.height), (40, 20));

    let preset = signed(&server, id, json!({"variant": "small"})).await;
    assert!(
        preset.starts_with(&format!("{files}?variant=small&expires=")),
        "{preset}"
    );
    let variant = image_of(&get_url(&preset).await, "jpeg");
    assert_eq!((variant.width, variant.height), (32, 32));
    for tampered in [
        preset.replacen("variant=small", "variant=large", 1),
        format!("{preset}&format=webp"),
        format!("{preset}&q=10"),
    ] {
        assert_error(&get_url(&tampered).await, 403, "INVALID_SIGNATURE");
    }

    // A signed URL of the file itself grants the file, not a variant of it.
    let plain = signed(&server, id, json!({})).await;
    assert!(plain.starts_with(&format!("{files}?expires=")), "{plain}");
    assert_eq!(get_url(&plain).await.status, 200);
    for tampered in [
        format!("{plain}&w=10"),
        format!("{plain}&variant=small"),
        format!("{plain}&format=webp"),
    ] {
        assert_error(&get_url(&tampered).await, 403, "INVALID_SIGNATURE");
    }

    for bad in [
        json!({"w": 0}),
        json!({"w": 2501}),
        json!({"q": 101}),
        json!({"w": 10, "fit": "stretch"}),
        json!({"fit": "cover"}),
        json!({"format": "gif"}),
        json!({"variant": "huge"}),
        json!({"variant": "small", "w": 10}),
    ] {
        let answer = sign(&server, id, &bad).await;
        crate::common::expect_error(answer, 400, "VALIDATION_ERROR").await;
    }
}

#[tokio::test]
async fn variants_are_removed_with_their_source() {
    let (server, image) = spawn_with(&[], "photo.jpg", &jpeg(64, 64, 90)).await;
    for (query, format) in [
        ("w=20", "jpeg"),
        ("variant=small", "jpeg"),
        ("w=20&format=png", "png"),
    ] {
        image_of(&get_as_owner(&server, &image, query, &[]).await, format);
    }
    assert_eq!(stored_variants(&server, &image.id).len(), 3);

    let auth = owner(&server);
    let path = format!("/files/{}", image.id);
    let deleted = send(&server, Method::DELETE, &path, &[("Authorization", &auth)]).await;
    assert_eq!(deleted.status(), 204);

    for query in ["w=20", "variant=small", "w=21"] {
        let got = get_as_owner(&server, &image, query, &[]).await;
        assert_error(&got, 404, "FILE_NOT_FOUND");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.blob_files().is_empty() {
        assert!(
            Instant::now() < deadline,
            "left in the store: {:?}",
            server.blob_files()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !s3_mode() {
        let account = server.data_dir.path().join("blobs/1");
        let left: Vec<_> = std::fs::read_dir(&account)
            .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "left under {}: {left:?}",
            account.display()
        );
    }
}
