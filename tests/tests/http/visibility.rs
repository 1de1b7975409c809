//! Visibility: public files are served to anyone without a credential and cached for a year;
//! only their uploading user changes who may read them.

use reqwest::Method;
use serde_json::{Value, json};
use stowage_tests::TestServer;

use crate::common::{
    CACHE_CONTROL, PNG, expect_error, file_id, header, json_with_status, send, upload_to,
};

const PUBLIC_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Uploads the PNG as user 1 of account 1 to `path` (query included); returns the answer.
async fn upload(server: &TestServer, path: &str) -> reqwest::Response {
    let auth = server.bearer(Some(1), 1);
    upload_to(
        server,
        path,
        &[("Authorization", &auth)],
        "logo.png",
        "image/png",
        &PNG,
    )
    .await
}

/// `PATCH /files/{id}` with a JSON `body` as `auth`.
async fn patch(server: &TestServer, auth: &str, id: &str, body: &str) -> reqwest::Response {
    stowage_tests::client()
        .patch(server.url(&format!("/files/{id}")))
        .header("Authorization", auth)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// An anonymous `GET` (no credential at all, or `extra` headers only).
async fn anonymous(server: &TestServer, path: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    send(server, Method::GET, path, extra).await
}

#[tokio::test]
async fn visibility_a_public_upload_is_served_to_anyone_with_year_long_caching() {
    let server = TestServer::spawn().await;
    let info = json_with_status(upload(&server, "/files?visibility=public").await, 201).await;
    assert_eq!(info["visibility"], "public");
    let id = file_id(&info);
    assert_eq!(info["public_url"], server.url(&format!("/files/{id}")));

    for path in [format!("/files/{id}"), format!("/{id}")] {
        for extra in [
            &[][..],
            // A credential that does not authenticate (a stale cookie) does not stand in the way.
            &[("Authorization", "Bearer not-a-token")][..],
            &[("Cookie", "token=expired")][..],
        ] {
            let got = anonymous(&server, &path, extra).await;
            assert_eq!(got.status(), 200, "{path} {extra:?}");
            assert_eq!(
                header(&got, "cache-control").as_deref(),
                Some(PUBLIC_CACHE_CONTROL)
            );
            assert_eq!(got.bytes().await.unwrap().as_ref(), &PNG[..]);
        }
    }
    let head = send(&server, Method::HEAD, &format!("/files/{id}"), &[]).await;
    assert_eq!(head.status(), 200);
    assert_eq!(
        header(&head, "content-length").as_deref(),
        Some(PNG.len().to_string().as_str())
    );
    let range = anonymous(&server, &format!("/files/{id}"), &[("Range", "bytes=0-7")]).await;
    assert_eq!(range.status(), 206);
    assert_eq!(range.bytes().await.unwrap().as_ref(), &PNG[..8]);
    // Another account's user reads it too, and its info, without the permission rules.
    let stranger = server.bearer(Some(9), 9);
    let got = send(
        &server,
        Method::GET,
        &format!("/files/{id}/info"),
        &[("Authorization", &stranger)],
    )
    .await;
    assert_eq!(json_with_status(got, 200).await["visibility"], "public");
}

#[tokio::test]
async fn visibility_without_a_credential_a_private_file_and_a_missing_one_are_both_401() {
    let server = TestServer::spawn().await;
    let info = json_with_status(upload(&server, "/files").await, 201).await;
    assert_eq!(info["visibility"], "private");
    let id = file_id(&info);

    let private = anonymous(&server, &format!("/files/{id}"), &[]).await;
    expect_error(private, 401, "UNAUTHENTICATED").await;
    let missing = uuid::Uuid::new_v4().to_string();
    let missing = anonymous(&server, &format!("/files/{missing}"), &[]).await;
    expect_error(missing, 401, "UNAUTHENTICATED").await;
    // The owner still reads it, privately cached.
    let owner = server.bearer(Some(1), 1);
    let got = send(
        &server,
        Method::GET,
        &format!("/files/{id}"),
        &[("Authorization", &owner)],
    )
    .await;
    assert_eq!(got.status(), 200);
    assert_eq!(
        header(&got, "cache-control").as_deref(),
        Some(CACHE_CONTROL)
    );
}

#[tokio::test]
async fn visibility_the_owner_makes_a_file_public_then_private_again() {
    let server = TestServer::spawn().await;
    let info = json_with_status(upload(&server, "/files").await, 201).await;
    let id = file_id(&info);
    let owner = server.bearer(Some(1), 1);

    let changed = json_with_status(
        patch(&server, &owner, &id, r#"{"visibility":"public"}"#).await,
        200,
    )
    .await;
    assert_eq!(changed["visibility"], "public");
    assert_eq!(changed["file_id"], info["file_id"]);
    assert_eq!(changed["sha256"], info["sha256"]);
    assert_eq!(
        anonymous(&server, &format!("/files/{id}"), &[])
            .await
            .status(),
        200
    );
    let listed = send(&server, Method::GET, "/files", &[("Authorization", &owner)]).await;
    assert_eq!(
        json_with_status(listed, 200).await["items"][0]["visibility"],
        "public"
    );

    // The root alias, as Pneumatic's nginx forwards it.
    let root = stowage_tests::client()
        .patch(server.url(&format!("/{id}")))
        .header("Authorization", &owner)
        .json(&json!({"visibility": "private"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_status(root, 200).await["visibility"], "private");
    let private = anonymous(&server, &format!("/files/{id}"), &[]).await;
    expect_error(private, 401, "UNAUTHENTICATED").await;

    // An empty object changes nothing.
    let same = json_with_status(patch(&server, &owner, &id, "{}").await, 200).await;
    assert_eq!(same["visibility"], "private");
}

#[tokio::test]
async fn visibility_only_the_uploading_user_changes_it_and_bad_bodies_are_400() {
    let server = TestServer::spawn().await;
    let info = json_with_status(upload(&server, "/files").await, 201).await;
    let id = file_id(&info);
    let public = r#"{"visibility":"public"}"#;

    for other in [
        server.bearer(Some(2), 1),
        server.bearer(Some(1), 2),
        server.bearer(None, 1),
    ] {
        expect_error(
            patch(&server, &other, &id, public).await,
            403,
            "FILE_ACCESS_DENIED",
        )
        .await;
    }
    let unsigned = stowage_tests::client()
        .patch(server.url(&format!("/files/{id}")))
        .json(&json!({"visibility": "public"}))
        .send()
        .await
        .unwrap();
    expect_error(unsigned, 401, "UNAUTHENTICATED").await;
    let owner = server.bearer(Some(1), 1);
    for bad in [
        r#"{"visibility":"shared"}"#,
        r#"{"visibility":"PUBLIC"}"#,
        r#"{"visibility":null,"extra":1}"#,
        r#"{"visibility":true}"#,
        "[]",
        "not json",
    ] {
        expect_error(
            patch(&server, &owner, &id, bad).await,
            400,
            "VALIDATION_ERROR",
        )
        .await;
    }
    let missing = uuid::Uuid::new_v4().to_string();
    expect_error(
        patch(&server, &owner, &missing, public).await,
        404,
        "FILE_NOT_FOUND",
    )
    .await;
    expect_error(
        patch(&server, &owner, "nope", public).await,
        404,
        "FILE_NOT_FOUND",
    )
    .await;
    // Nothing of it changed the file.
    let still = anonymous(&server, &format!("/files/{id}"), &[]).await;
    expect_error(still, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn visibility_is_taken_from_the_form_or_the_policy_and_refused_when_unknown_or_twice() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let boundary = "stowage-visibility";
    let form = |visibility: &str| {
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"visibility\"\r\n\r\n{visibility}\r\n"
        )
        .into_bytes();
        body.extend(stowage_tests::multipart_body(
            boundary,
            "logo.png",
            "image/png",
            &PNG,
        ));
        body
    };
    let post = |path: &str, visibility: &str| {
        server
            .post_form(path, boundary)
            .header("Authorization", &auth)
            .body(form(visibility))
            .send()
    };

    let from_form = json_with_status(post("/files", "public").await.unwrap(), 201).await;
    assert_eq!(from_form["visibility"], "public");
    // The built-in avatar policy makes public files unless the upload says otherwise.
    let avatar = json_with_status(upload(&server, "/files?policy=avatar").await, 201).await;
    assert_eq!(avatar["visibility"], "public");
    let private_avatar = json_with_status(
        upload(&server, "/files?policy=avatar&visibility=private").await,
        201,
    )
    .await;
    assert_eq!(private_avatar["visibility"], "private");

    let rows_before = server.row_count().await;
    let twice = post("/files?visibility=public", "public").await.unwrap();
    expect_error(twice, 400, "VALIDATION_ERROR").await;
    let unknown = post("/files", "everyone").await.unwrap();
    expect_error(unknown, 400, "VALIDATION_ERROR").await;
    let unknown = upload(&server, "/files?visibility=everyone").await;
    expect_error(unknown, 400, "VALIDATION_ERROR").await;
    assert_eq!(
        server.row_count().await,
        rows_before,
        "a refused upload keeps nothing"
    );
}

#[tokio::test]
async fn visibility_public_files_get_their_url_under_public_files_url() {
    let server =
        TestServer::spawn_with(&[("PUBLIC_FILES_URL", "https://cdn.example.com/files/")]).await;
    let public = upload(&server, "/files?visibility=public").await;
    let public_location = header(&public, "location");
    let public = json_with_status(public, 201).await;
    let id = file_id(&public);
    // `Location` is where Stowage serves it; only `public_url` names the CDN.
    assert_eq!(public_location, Some(server.url(&format!("/files/{id}"))));
    assert_eq!(
        public["public_url"],
        Value::from(format!("https://cdn.example.com/files/{id}"))
    );
    let private = upload(&server, "/files").await;
    let location = header(&private, "location");
    let private = json_with_status(private, 201).await;
    let private_id = file_id(&private);
    assert_eq!(
        private["public_url"],
        server.url(&format!("/files/{private_id}"))
    );
    assert_eq!(location.as_deref(), private["public_url"].as_str());
}
