//! File keys, metadata, prefix listing and signed URLs by the batch, as clients meet them.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use stowage_tests::{
    TestServer, client, expect_error, file_id, header, json_with_status, run_subcommand, send,
};

const BY_KEY_CACHE_CONTROL: &str = "private, no-cache";

/// Uploads `data` to `/files{query}` with the text `fields` before the file and `after` behind it.
async fn upload(
    server: &TestServer,
    auth: &str,
    query: &str,
    fields: &[(&str, &str)],
    after: &[(&str, &str)],
    data: &[u8],
) -> Response {
    let boundary = format!("keys-{}", uuid::Uuid::new_v4().simple());
    let part = |name: &str, value: &str| {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    };
    let mut body: Vec<u8> = fields
        .iter()
        .map(|(n, v)| part(n, v))
        .collect::<String>()
        .into();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\nContent-Type: text/plain\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n");
    for (name, value) in after {
        body.extend_from_slice(part(name, value).as_bytes());
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    server
        .post_form(&format!("/files{query}"), &boundary)
        .header("Authorization", auth)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Uploads `data` under `key` and returns the `FileInfo`, asserting 201.
async fn put(server: &TestServer, auth: &str, key: &str, data: &[u8]) -> Value {
    json_with_status(
        upload(server, auth, "", &[("key", key)], &[], data).await,
        201,
    )
    .await
}

fn enc(key: &str) -> String {
    utf8_percent_encode(key, NON_ALPHANUMERIC).to_string()
}

async fn call(server: &TestServer, method: Method, auth: &str, path: &str) -> Response {
    send(server, method, path, &[("Authorization", auth)]).await
}

async fn listed(server: &TestServer, auth: &str, query: &str) -> Value {
    json_with_status(
        call(server, Method::GET, auth, &format!("/files?{query}")).await,
        200,
    )
    .await
}

fn keys_of(page: &Value) -> Vec<String> {
    let items = page["items"].as_array().unwrap();
    items
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn key_and_metadata_come_from_form_fields_or_the_query() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let fields = [
        ("key", "docs/a.txt"),
        ("note", "x"),
        ("metadata", r#"{ "b": 1, "a": ["x"] }"#),
    ];
    let info = json_with_status(upload(&server, &auth, "", &fields, &[], b"a").await, 201).await;
    assert_eq!(info["key"], "docs/a.txt");
    assert_eq!(info["metadata"], json!({"a": ["x"], "b": 1}));

    let query = format!("?key={}&metadata={}", enc("q/é 1"), enc(r#"{"k":"v"}"#));
    let info = json_with_status(upload(&server, &auth, &query, &[], &[], b"q").await, 201).await;
    assert_eq!(
        (&info["key"], &info["metadata"]),
        (&json!("q/é 1"), &json!({"k": "v"}))
    );
    let shown = call(
        &server,
        Method::GET,
        &auth,
        &format!("/files/{}/info", file_id(&info)),
    )
    .await;
    assert_eq!(json_with_status(shown, 200).await, info);

    // Without either, and with parts after the file (ignored as before).
    let after = [("key", "late"), ("metadata", "{\"late\":1}")];
    let plain = json_with_status(upload(&server, &auth, "", &[], &after, b"p").await, 201).await;
    assert_eq!(
        (&plain["key"], &plain["metadata"]),
        (&Value::Null, &json!({}))
    );
}

#[tokio::test]
async fn a_key_or_metadata_that_breaks_its_rule_is_refused() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let long = "k".repeat(513);
    let huge = format!("{{\"a\":\"{}\"}}", "x".repeat(8 * 1024));
    let bad_fields: Vec<Vec<(&str, &str)>> = vec![
        vec![("key", "")],
        vec![("key", "/a")],
        vec![("key", "a//b")],
        vec![("key", "a/../b")],
        vec![("key", "a\u{1}b")],
        vec![("key", &long)],
        vec![("metadata", "[1]")],
        vec![("metadata", "{")],
        vec![("metadata", &huge)],
        vec![("key", "a"), ("key", "b")],
    ];
    for fields in bad_fields {
        let response = upload(&server, &auth, "", &fields, &[], b"x").await;
        let body = expect_error(response, 400, "VALIDATION_ERROR").await;
        assert!(body["details"]["reason"].is_string(), "{fields:?}: {body}");
    }
    for query in ["?key=a%2F%2Fb", "?key=.", "?metadata=1", "?metadata=%7B"] {
        let response = upload(&server, &auth, query, &[], &[], b"x").await;
        expect_error(response, 400, "VALIDATION_ERROR").await;
    }
    let both = upload(&server, &auth, "?key=a", &[("key", "a")], &[], b"x").await;
    let body = expect_error(both, 400, "VALIDATION_ERROR").await;
    assert!(
        body["details"]["reason"].as_str().unwrap().contains("both"),
        "{body}"
    );
    let both = upload(
        &server,
        &auth,
        "?metadata=%7B%7D",
        &[("metadata", "{}")],
        &[],
        b"x",
    )
    .await;
    expect_error(both, 400, "VALIDATION_ERROR").await;
    assert_eq!(server.row_count().await, 0);
}

#[tokio::test]
async fn the_same_key_replaces_for_its_owner_and_conflicts_for_anyone_else() {
    let server = TestServer::spawn().await;
    let owner = server.bearer(Some(1), 1);
    let first = put(&server, &owner, "avatars/me.png", b"one").await;
    let second = put(&server, &owner, "avatars/me.png", b"two").await;
    assert_ne!(file_id(&first), file_id(&second));
    let old = call(
        &server,
        Method::GET,
        &owner,
        &format!("/files/{}", file_id(&first)),
    )
    .await;
    expect_error(old, 404, "FILE_NOT_FOUND").await;
    let now = call(&server, Method::GET, &owner, "/files/by-key/avatars/me.png").await;
    assert_eq!(now.bytes().await.unwrap().as_ref(), b"two");
    assert_eq!(
        keys_of(&listed(&server, &owner, "prefix=avatars/").await),
        ["avatars/me.png"]
    );
    assert_eq!(server.row_count().await, 1);
    assert_eq!(server.blob_files().len(), 1);

    let colleague = server.bearer(Some(2), 1);
    let taken = upload(
        &server,
        &colleague,
        "",
        &[("key", "avatars/me.png")],
        &[],
        b"3",
    )
    .await;
    expect_error(taken, 409, "KEY_EXISTS").await;
    let kept = call(
        &server,
        Method::GET,
        &owner,
        &format!("/files/{}", file_id(&second)),
    )
    .await;
    assert_eq!(kept.bytes().await.unwrap().as_ref(), b"two");
    assert_eq!(server.row_count().await, 1);

    // Keys are per account: another account's file may take the same one.
    let elsewhere = server.bearer(Some(3), 2);
    put(&server, &elsewhere, "avatars/me.png", b"other account").await;
    let mine = call(&server, Method::GET, &owner, "/files/by-key/avatars/me.png").await;
    assert_eq!(mine.bytes().await.unwrap().as_ref(), b"two");
}

#[tokio::test]
async fn a_file_is_served_by_its_key_like_by_its_id() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let key = "photos/été/☀ 1.txt";
    let info = put(&server, &auth, key, b"0123456789").await;
    let path = format!("/files/by-key/photos/{}/{}", enc("été"), enc("☀ 1.txt"));
    for path in [
        path.clone(),
        format!("/files/by-key/{}", enc(key)),
        format!("/by-key/{}", enc(key)),
    ] {
        let whole = call(&server, Method::GET, &auth, &path).await;
        assert_eq!(whole.status(), 200, "{path}");
        assert_eq!(
            header(&whole, "cache-control").as_deref(),
            Some(BY_KEY_CACHE_CONTROL)
        );
        assert_eq!(whole.bytes().await.unwrap().as_ref(), b"0123456789");
    }
    let headers = [("Authorization", auth.as_str()), ("Range", "bytes=2-4")];
    let part = send(&server, Method::GET, &path, &headers).await;
    assert_eq!(part.status(), 206);
    assert_eq!(
        header(&part, "content-range").as_deref(),
        Some("bytes 2-4/10")
    );
    let etag = header(&part, "etag").unwrap();
    assert_eq!(part.bytes().await.unwrap().as_ref(), b"234");
    let head = call(&server, Method::HEAD, &auth, &path).await;
    assert_eq!(
        (head.status().as_u16(), header(&head, "content-length")),
        (200, Some("10".into()))
    );
    assert_eq!(header(&head, "etag").as_deref(), Some(etag.as_str()));
    let headers = [
        ("Authorization", auth.as_str()),
        ("If-None-Match", etag.as_str()),
    ];
    assert_eq!(
        send(&server, Method::GET, &path, &headers).await.status(),
        304
    );
    expect_error(
        send(&server, Method::GET, &path, &[]).await,
        401,
        "UNAUTHENTICATED",
    )
    .await;

    for info_path in [
        format!("/files/info/by-key/{}", enc(key)),
        format!("/info/by-key/{}", enc(key)),
    ] {
        let shown = call(&server, Method::GET, &auth, &info_path).await;
        assert_eq!(
            header(&shown, "cache-control").as_deref(),
            Some(BY_KEY_CACHE_CONTROL)
        );
        assert_eq!(json_with_status(shown, 200).await, info);
    }
    // Another user of the account reads by the rules of reading by id; a key that is not one is 404.
    let other = call(&server, Method::GET, &server.bearer(Some(3), 2), &path).await;
    expect_error(other, 404, "FILE_NOT_FOUND").await;
    for bad in [
        "/files/by-key/a//b",
        "/files/by-key/a%2F..%2Fb",
        "/files/by-key/nope",
        "/files/info/by-key/a%0Ab",
    ] {
        let body = json_with_status(call(&server, Method::GET, &auth, bad).await, 404).await;
        assert_eq!(body["code"], "FILE_NOT_FOUND", "{bad}");
    }

    let deleted = call(&server, Method::DELETE, &auth, &path).await;
    assert_eq!(deleted.status(), 204);
    expect_error(
        call(&server, Method::GET, &auth, &path).await,
        404,
        "FILE_NOT_FOUND",
    )
    .await;
    let by_id = call(
        &server,
        Method::GET,
        &auth,
        &format!("/files/{}", file_id(&info)),
    )
    .await;
    expect_error(by_id, 404, "FILE_NOT_FOUND").await;
    assert!(server.blob_files().is_empty());
}

#[tokio::test]
async fn prefixes_match_literally_and_case_sensitively_page_by_page() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    for key in ["a_1", "ab1", "a%1", "A_2", "a_3", "a_4"] {
        put(&server, &auth, key, key.as_bytes()).await;
    }
    json_with_status(upload(&server, &auth, "", &[], &[], b"no key").await, 201).await;

    assert_eq!(
        keys_of(&listed(&server, &auth, "prefix=a_").await),
        ["a_4", "a_3", "a_1"]
    );
    assert_eq!(
        keys_of(&listed(&server, &auth, "prefix=a%25").await),
        ["a%1"]
    );
    assert_eq!(keys_of(&listed(&server, &auth, "prefix=A").await), ["A_2"]);
    assert!(keys_of(&listed(&server, &auth, "prefix=b").await).is_empty());
    assert_eq!(
        listed(&server, &auth, "").await["items"]
            .as_array()
            .unwrap()
            .len(),
        7
    );

    let mut seen = Vec::new();
    let mut query = "prefix=a_&limit=1".to_owned();
    loop {
        let page = listed(&server, &auth, &query).await;
        seen.extend(keys_of(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("prefix=a_&limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["a_4", "a_3", "a_1"]);
    let long = format!("prefix={}", "p".repeat(513));
    for bad in ["prefix=", long.as_str()] {
        let response = call(&server, Method::GET, &auth, &format!("/files?{bad}")).await;
        expect_error(response, 400, "VALIDATION_ERROR").await;
    }
}

#[tokio::test]
async fn signed_urls_come_by_the_batch_with_an_error_per_id() {
    let server = TestServer::spawn().await;
    let owner = server.bearer(Some(1), 1);
    let mine = file_id(&put(&server, &owner, "s/1", b"signed").await);
    let theirs = file_id(&put(&server, &server.bearer(Some(9), 2), "s/1", b"x").await);
    let missing = uuid::Uuid::new_v4().to_string();
    let ids = [
        mine.as_str(),
        missing.as_str(),
        "not-an-id",
        theirs.as_str(),
        mine.as_str(),
    ];
    for path in ["/files/signed-urls", "/signed-urls"] {
        let response = client()
            .post(server.url(path))
            .header("Authorization", &owner)
            .json(&json!({"file_ids": ids, "expires_in": 60}))
            .send()
            .await
            .unwrap();
        let items = json_with_status(response, 200).await["items"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(items.len(), 5);
        for (item, id) in items.iter().zip(ids) {
            assert_eq!(item["file_id"], id);
        }
        for signed in [&items[0], &items[4]] {
            assert!(signed.get("error").is_none(), "{signed}");
            assert!(signed["expires_at"].is_string());
            let url = signed["url"].as_str().unwrap();
            let fetched = client().get(url).send().await.unwrap();
            assert_eq!(fetched.bytes().await.unwrap().as_ref(), b"signed");
        }
        // As the single route answers: no such id, then another account's file.
        let codes = ["FILE_NOT_FOUND", "FILE_NOT_FOUND", "FILE_ACCESS_DENIED"];
        for (failed, code) in items[1..4].iter().zip(codes) {
            assert_eq!(failed["error"]["code"], code, "{failed}");
            assert!(failed["error"]["message"].is_string());
            assert!(failed.get("url").is_none());
        }
    }
    let many: Vec<String> = (0..101).map(|_| mine.clone()).collect();
    for body in [
        json!({"file_ids": many}),
        json!({"file_ids": []}),
        json!({"file_ids": [mine], "expires_in": 0}),
    ] {
        let response = client()
            .post(server.url("/files/signed-urls"))
            .header("Authorization", &owner)
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(response, 400, "VALIDATION_ERROR").await;
    }
}

#[tokio::test]
async fn concurrent_upserts_of_one_key_leave_one_file_and_no_orphan() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    for round in 0..3 {
        let key = format!("race/{round}");
        let fields = [("key", key.as_str())];
        let (a, b) = tokio::join!(
            upload(&server, &auth, "", &fields, &[], b"first"),
            upload(&server, &auth, "", &fields, &[], b"second"),
        );
        let a = json_with_status(a, 201).await;
        let b = json_with_status(b, 201).await;
        let held = json_with_status(
            call(
                &server,
                Method::GET,
                &auth,
                &format!("/files/info/by-key/{key}"),
            )
            .await,
            200,
        )
        .await;
        let (kept, gone) = if file_id(&held) == file_id(&a) {
            (a, b)
        } else {
            (b, a)
        };
        assert_eq!(file_id(&held), file_id(&kept));
        let gone = call(
            &server,
            Method::GET,
            &auth,
            &format!("/files/{}", file_id(&gone)),
        )
        .await;
        expect_error(gone, 404, "FILE_NOT_FOUND").await;
        assert_eq!(
            keys_of(&listed(&server, &auth, &format!("prefix={key}")).await),
            [key]
        );
    }
    assert_eq!(server.row_count().await, 3);
    assert_eq!(server.blob_files().len(), 3);
    let gc = run_subcommand(&server, "gc", &["--dry-run", "--grace", "0s"]);
    let report = String::from_utf8_lossy(&gc.stdout);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    for clean in ["orphan blobs 0", "records without blob 0", "would remove 0"] {
        assert!(report.contains(clean), "{report}");
    }
}
