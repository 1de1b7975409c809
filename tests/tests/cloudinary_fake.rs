//! The fake Cloudinary itself: it must refuse what Cloudinary refuses, or the adapter's tests
//! prove nothing. Signatures are computed here from the documented rules, not by the fake.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use serde_json::Value;
use sha2::Digest;
use stowage_tests::FakeCloudinary;
use stowage_tests::cloudinary::{Algorithm, Route};

const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

fn digest(algorithm: Algorithm, data: &str) -> Vec<u8> {
    match algorithm {
        Algorithm::Sha1 => sha1::Sha1::digest(data.as_bytes()).to_vec(),
        Algorithm::Sha256 => sha2::Sha256::digest(data.as_bytes()).to_vec(),
    }
}

fn now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

/// `fields` plus `api_key` and `signature`, signed the way Cloudinary documents.
fn signed(cloud: &FakeCloudinary, fields: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut sorted: Vec<_> = fields.to_vec();
    sorted.sort();
    let to_sign: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let to_sign = format!("{}{}", to_sign.join("&"), cloud.api_secret);
    let signature: String = digest(cloud.algorithm, &to_sign)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut all: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.push(("api_key".into(), cloud.api_key.clone()));
    all.push(("signature".into(), signature));
    all
}

fn delivery_url(cloud: &FakeCloudinary, resource_type: &str, public_id: &str) -> String {
    let hash = digest(cloud.algorithm, &format!("{public_id}{}", cloud.api_secret));
    let encoded = base64::engine::general_purpose::URL_SAFE.encode(hash);
    let length = if cloud.algorithm == Algorithm::Sha1 {
        8
    } else {
        32
    };
    let signature = &encoded[..length];
    format!(
        "{}/{}/{resource_type}/authenticated/s--{signature}--/{public_id}",
        cloud.url(),
        cloud.cloud_name
    )
}

fn multipart(fields: &[(String, String)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "fake-cloudinary-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(
    cloud: &FakeCloudinary,
    resource_type: &str,
    fields: &[(String, String)],
    file: &[u8],
    headers: &[(&str, String)],
) -> (u16, Value) {
    let (content_type, body) = multipart(fields, file);
    let url = format!(
        "{}/v1_1/{}/{resource_type}/upload",
        cloud.url(),
        cloud.cloud_name
    );
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn upload_fields<'a>(public_id: &'a str, timestamp: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("public_id", public_id),
        ("type", "authenticated"),
        ("timestamp", timestamp),
    ]
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap()
}

#[tokio::test]
async fn a_signed_upload_is_delivered_whole_and_by_range() {
    let cloud = FakeCloudinary::spawn();
    let file: Vec<u8> = PNG
        .iter()
        .copied()
        .chain((0..200_000u32).map(|i| i as u8))
        .collect();
    let ts = now();
    let fields = signed(&cloud, &upload_fields("stowage/1/abc", &ts));
    let (status, body) = upload(&cloud, "image", &fields, &file, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["public_id"], "stowage/1/abc");
    assert_eq!(body["bytes"], file.len());
    assert_eq!(body["format"], "png");
    assert_eq!(cloud.resources(), ["image/stowage/1/abc"]);
    assert_eq!(cloud.resource("image", "stowage/1/abc").unwrap(), file);

    let url = delivery_url(&cloud, "image", "stowage/1/abc");
    let client = reqwest::Client::new();
    let whole = client.get(&url).send().await.unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.content_length(), Some(file.len() as u64));
    assert_eq!(whole.bytes().await.unwrap(), file);
    let secure = body["secure_url"].as_str().unwrap();
    assert_eq!(client.get(secure).send().await.unwrap().status(), 200);

    for (range, first, last) in [
        ("bytes=10-19", 10, 19),
        ("bytes=199990-", 199_990, file.len() - 1),
        ("bytes=-5", file.len() - 5, file.len() - 1),
    ] {
        let part = client
            .get(&url)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), 206, "{range}");
        let expected = format!("bytes {first}-{last}/{}", file.len());
        assert_eq!(part.headers()["content-range"], expected.as_str());
        assert_eq!(part.bytes().await.unwrap(), file[first..=last]);
    }
    let beyond = client
        .get(&url)
        .header("range", format!("bytes={}-", file.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    let head = client.head(&url).send().await.unwrap();
    assert_eq!(
        head.headers()["content-length"],
        file.len().to_string().as_str()
    );

    let missing = client
        .get(delivery_url(&cloud, "image", "stowage/1/none"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let forged = url.replace("/s--", "/s--x");
    assert_eq!(client.get(forged).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn a_bad_signature_a_stale_timestamp_or_a_wrong_key_is_refused() {
    let cloud = FakeCloudinary::spawn();
    let ts = now();
    let mut fields = signed(&cloud, &upload_fields("a", &ts));
    fields[0].1 = "b".into();
    let (status, body) = upload(&cloud, "raw", &fields, b"data", &[]).await;
    assert_eq!(status, 401);
    assert!(message(&body).starts_with("Invalid Signature "), "{body}");
    assert!(
        message(&body).contains("String to sign - 'public_id=b&timestamp="),
        "{body}"
    );

    let stale = (ts.parse::<u64>().unwrap() - 7200).to_string();
    let fields = signed(&cloud, &upload_fields("a", &stale));
    let (status, body) = upload(&cloud, "raw", &fields, b"data", &[]).await;
    assert_eq!(status, 400);
    assert!(message(&body).starts_with("Stale request"), "{body}");

    let mut fields = signed(&cloud, &upload_fields("a", &ts));
    fields.iter_mut().find(|(k, _)| k == "api_key").unwrap().1 = "1".into();
    assert_eq!(upload(&cloud, "raw", &fields, b"data", &[]).await.0, 401);
    let fields = signed(
        &cloud,
        &[("public_id", "a"), ("type", "upload"), ("timestamp", &ts)],
    );
    assert_eq!(upload(&cloud, "raw", &fields, b"data", &[]).await.0, 400);
    let fields = signed(&cloud, &upload_fields("a", &ts));
    let (status, body) = upload(&cloud, "raw", &fields, b"", &[]).await;
    assert_eq!((status, message(&body)), (400, "Empty file"));
    assert!(cloud.resources().is_empty());
}

#[tokio::test]
async fn a_chunked_upload_with_unknown_total_completes_on_its_last_chunk() {
    let cloud = FakeCloudinary::spawn_with(Algorithm::Sha256);
    let file: Vec<u8> = (0..10_001_234u32).map(|i| (i % 251) as u8).collect();
    let ts = now();
    let fields = signed(&cloud, &upload_fields("big.bin", &ts));
    let id = ("x-unique-upload-id", "up-1".to_owned());
    let range =
        |a: usize, b: usize, total: &str| ("content-range", format!("bytes {a}-{b}/{total}"));

    let (status, body) = upload(
        &cloud,
        "raw",
        &fields,
        &file[..1000],
        &[id.clone(), range(0, 999, "-1")],
    )
    .await;
    assert_eq!((status, message(&body)), (400, "Chunk size is too small"));
    let (status, _) = upload(&cloud, "raw", &fields, &file[..10], &[range(0, 9, "10")]).await;
    assert_eq!(status, 400, "a Content-Range needs an upload id");
    let (status, body) = upload(
        &cloud,
        "raw",
        &fields,
        &file[..5_000_000],
        &[id.clone(), range(0, 4_999_999, "-1")],
    )
    .await;
    assert_eq!(
        (status, body["done"].as_bool(), body["bytes"].as_u64()),
        (200, Some(false), Some(5_000_000))
    );
    assert_eq!(cloud.pending_uploads(), 1);
    let (status, _) = upload(
        &cloud,
        "raw",
        &fields,
        &file[..5_000_000],
        &[id.clone(), range(0, 4_999_999, "-1")],
    )
    .await;
    assert_eq!(status, 400, "a repeated chunk is out of order");
    let (status, _) = upload(
        &cloud,
        "raw",
        &fields,
        &file[5_000_000..10_000_000],
        &[id.clone(), range(5_000_000, 9_999_999, "-1")],
    )
    .await;
    assert_eq!(status, 200);
    let total = file.len().to_string();
    let (status, body) = upload(
        &cloud,
        "raw",
        &fields,
        &file[10_000_000..],
        &[id.clone(), range(10_000_000, file.len() - 1, &total)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bytes"], file.len());
    assert_eq!(body["format"], "bin");
    assert_eq!(cloud.pending_uploads(), 0);
    assert_eq!(cloud.resource("raw", "big.bin").unwrap(), file);

    let recorded = cloud.requests();
    let last = recorded.last().unwrap();
    assert_eq!(last.headers["x-unique-upload-id"], "up-1");
    assert_eq!(last.file_len, Some(1234));
    assert!(!last.fields.contains_key("file"));
    let delivered = reqwest::get(delivery_url(&cloud, "raw", "big.bin"))
        .await
        .unwrap();
    assert_eq!(delivered.bytes().await.unwrap().len(), file.len());
}

#[tokio::test]
async fn a_non_image_is_refused_as_an_image_but_taken_as_raw() {
    let cloud = FakeCloudinary::spawn();
    let ts = now();
    let fields = signed(&cloud, &upload_fields("notes.txt", &ts));
    let (status, body) = upload(&cloud, "image", &fields, b"plain text", &[]).await;
    assert_eq!((status, message(&body)), (400, "Invalid image file"));
    let (status, _) = upload(&cloud, "video", &fields, b"plain text", &[]).await;
    assert_eq!(status, 400);
    let (status, body) = upload(&cloud, "raw", &fields, b"plain text", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resource_type"], "raw");
    assert_eq!(cloud.resources(), ["raw/notes.txt"]);
}

async fn destroy(cloud: &FakeCloudinary, public_id: &str) -> (u16, Value) {
    let ts = now();
    let fields = signed(
        cloud,
        &[
            ("public_id", public_id),
            ("type", "authenticated"),
            ("invalidate", "true"),
            ("timestamp", &ts),
        ],
    );
    let url = format!("{}/v1_1/{}/raw/destroy", cloud.url(), cloud.cloud_name);
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('/', "%2F")))
        .collect();
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.join("&"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn destroy_removes_once_then_finds_nothing() {
    let cloud = FakeCloudinary::spawn();
    cloud.insert("raw", "f/1", bytes::Bytes::from_static(b"x"));
    assert_eq!(
        destroy(&cloud, "f/1").await,
        (200, serde_json::json!({"result": "ok"}))
    );
    assert_eq!(
        destroy(&cloud, "f/1").await,
        (200, serde_json::json!({"result": "not found"}))
    );
    assert!(cloud.resources().is_empty());
    cloud.fail_next(Route::Destroy, 503, 1);
    let (status, body) = destroy(&cloud, "f/1").await;
    assert_eq!((status, message(&body)), (503, "injected"));
    assert_eq!(destroy(&cloud, "f/1").await.0, 200);
}

#[tokio::test]
async fn ping_needs_the_right_basic_credentials_and_cloud_name() {
    let cloud = FakeCloudinary::spawn();
    let client = reqwest::Client::new();
    let url = format!("{}/v1_1/{}/ping", cloud.url(), cloud.cloud_name);
    let ok = client
        .get(&url)
        .basic_auth(&cloud.api_key, Some(&cloud.api_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["status"], "ok");
    let wrong = client
        .get(&url)
        .basic_auth(&cloud.api_key, Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.json::<Value>().await.unwrap()["error"]["message"].is_string());
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    let other = format!("{}/v1_1/other/ping", cloud.url());
    let other = client
        .get(other)
        .basic_auth(&cloud.api_key, Some(&cloud.api_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    cloud.fail_next(Route::Ping, 420, 2);
    for _ in 0..2 {
        let limited = client
            .get(&url)
            .basic_auth(&cloud.api_key, Some(&cloud.api_secret))
            .send()
            .await
            .unwrap();
        assert_eq!(limited.status(), 420);
    }
    let ok = client
        .get(&url)
        .basic_auth(&cloud.api_key, Some(&cloud.api_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(cloud.requests().len(), 7);
}

#[tokio::test]
async fn listing_pages_through_a_prefix_in_public_id_order() {
    let cloud = FakeCloudinary::spawn();
    for i in 0..25 {
        cloud.insert(
            "raw",
            &format!("f/1/{i:02}"),
            bytes::Bytes::from(vec![1; i + 1]),
        );
    }
    cloud.insert("raw", "f/2/00", bytes::Bytes::from_static(b"x"));
    cloud.insert("image", "f/1/zz", bytes::Bytes::from_static(PNG));
    let client = reqwest::Client::new();
    let base = format!(
        "{}/v1_1/{}/resources/raw/authenticated",
        cloud.url(),
        cloud.cloud_name
    );
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let mut query = vec![
            ("prefix", "f/1/".to_owned()),
            ("max_results", "10".to_owned()),
        ];
        query.extend(cursor.iter().map(|c| ("next_cursor", c.clone())));
        let response = client
            .get(&base)
            .query(&query)
            .basic_auth(&cloud.api_key, Some(&cloud.api_secret))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        pages += 1;
        for resource in body["resources"].as_array().unwrap() {
            assert_eq!(resource["type"], "authenticated");
            seen.push(resource["public_id"].as_str().unwrap().to_owned());
        }
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("f/1/{i:02}")).collect();
    assert_eq!((pages, seen), (3, expected));
    let response = client
        .get(&base)
        .basic_auth(&cloud.api_key, Some(&cloud.api_secret))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["resources"].as_array().unwrap().len(),
        10,
        "ten by default"
    );
    let too_many = client
        .get(&base)
        .query(&[("max_results", "501")])
        .basic_auth(&cloud.api_key, Some(&cloud.api_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(too_many.status(), 400);
    assert_eq!(client.get(&base).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn an_injected_upload_failure_passes_after_its_count() {
    let cloud = FakeCloudinary::spawn();
    cloud.fail_next(Route::Upload, 500, 1);
    let ts = now();
    let fields = signed(&cloud, &upload_fields("a", &ts));
    let (status, body) = upload(&cloud, "raw", &fields, b"data", &[]).await;
    assert_eq!((status, message(&body)), (500, "injected"));
    assert_eq!(upload(&cloud, "raw", &fields, b"data", &[]).await.0, 200);
    assert_eq!(cloud.requests()[0].fields["public_id"], "a");
}

#[test]
fn works_from_a_synchronous_test_and_names_its_account() {
    let cloud = FakeCloudinary::spawn();
    let expected = format!(
        "cloudinary://{}:{}@{}",
        cloud.api_key, cloud.api_secret, cloud.cloud_name
    );
    assert_eq!(cloud.cloudinary_url(), expected);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        let url = format!("{}/v1_1/{}/ping", cloud.url(), cloud.cloud_name);
        let response = reqwest::Client::new()
            .get(url)
            .basic_auth(&cloud.api_key, Some(&cloud.api_secret))
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    });
    assert_eq!(status, 200);
}

#[tokio::test]
async fn deleting_by_prefix_removes_that_type_s_matches_a_thousand_at_a_time() {
    let cloud = FakeCloudinary::spawn();
    for id in ["f/1/a/x", "f/1/a/y", "f/1/ab"] {
        cloud.insert("raw", id, bytes::Bytes::from_static(b"x"));
    }
    cloud.insert("image", "f/1/a/z", bytes::Bytes::from_static(PNG));
    for i in 0..1001 {
        cloud.insert("raw", &format!("g/{i:04}"), bytes::Bytes::from_static(b"x"));
    }
    let client = reqwest::Client::new();
    let base = format!(
        "{}/v1_1/{}/resources/raw/authenticated",
        cloud.url(),
        cloud.cloud_name
    );
    let delete = |query: Vec<(&'static str, String)>| {
        client
            .delete(&base)
            .query(&query)
            .basic_auth(&cloud.api_key, Some(&cloud.api_secret))
            .send()
    };

    let response = delete(vec![("prefix", "f/1/a/".into())]).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["partial"], false);
    assert_eq!(
        body["deleted"],
        serde_json::json!({ "f/1/a/x": "deleted", "f/1/a/y": "deleted" })
    );
    assert_eq!(cloud.resources(), {
        let mut left = vec!["image/f/1/a/z".to_owned(), "raw/f/1/ab".to_owned()];
        left.extend((0..1001).map(|i| format!("raw/g/{i:04}")));
        left
    });

    let first: Value = delete(vec![("prefix", "g/".into())])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["partial"], true);
    assert_eq!(first["deleted"].as_object().unwrap().len(), 1000);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second: Value = delete(vec![("prefix", "g/".into()), ("next_cursor", cursor)])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["partial"], false);
    assert_eq!(
        second["deleted"],
        serde_json::json!({ "g/1000": "deleted" })
    );

    assert_eq!(delete(vec![]).await.unwrap().status(), 400, "no prefix");
    assert_eq!(
        delete(vec![("prefix", String::new())])
            .await
            .unwrap()
            .status(),
        400
    );
    let anonymous = client
        .delete(&base)
        .query(&[("prefix", "f/")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(cloud.resources().len(), 2);
}
