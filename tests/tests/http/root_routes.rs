//! Every file route is also served at the root, as Pneumatic's nginx (which strips `/files/`) and
//! its backend (`{FILE_SERVICE_URL}/upload`) call it; `FILES_URL` is where clients reach them.

use reqwest::Method;
use stowage_tests::{TestServer, client, pattern, send, send_as, upload_to};

use crate::common::json_with_status;

#[tokio::test]
async fn root_routes_serve_every_file_route_without_the_files_prefix() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let data = pattern(5000, 1);

    for path in ["/upload", "/"] {
        let response = upload_to(
            &server,
            path,
            &[("Authorization", &auth)],
            "root.bin",
            "application/octet-stream",
            &data,
        )
        .await;
        json_with_status(response, 201).await;
    }
    let response = upload_to(
        &server,
        "/upload",
        &[("Authorization", &auth)],
        "root.bin",
        "application/octet-stream",
        &data,
    )
    .await;
    let info = json_with_status(response, 201).await;
    let id = info["file_id"].as_str().unwrap().to_owned();
    assert_eq!(
        info["public_url"],
        server.url(&format!("/files/{id}")).as_str()
    );

    let list = send_as(&server, Method::GET, "/?limit=2", &auth).await;
    let list = json_with_status(list, 200).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");

    let ranged = send(
        &server,
        Method::GET,
        &format!("/{id}"),
        &[("Authorization", &auth), ("Range", "bytes=10-19")],
    )
    .await;
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &data[10..20]);

    let head = send_as(&server, Method::HEAD, &format!("/{id}"), &auth).await;
    assert_eq!(head.status(), 200);
    let info = send_as(&server, Method::GET, &format!("/{id}/info"), &auth).await;
    assert_eq!(json_with_status(info, 200).await["file_id"], id.as_str());

    let signed = client()
        .post(server.url(&format!("/{id}/signed-url")))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    let signed = json_with_status(signed, 200).await;
    let url = signed["url"].as_str().unwrap();
    assert!(
        url.starts_with(&server.url(&format!("/files/{id}?expires="))),
        "{url}"
    );
    let by_signature = client().get(url).send().await.unwrap();
    assert_eq!(by_signature.status(), 200);

    let deleted = send_as(&server, Method::DELETE, &format!("/{id}"), &auth).await;
    assert_eq!(deleted.status(), 204);
    let gone = send_as(&server, Method::GET, &format!("/{id}"), &auth).await;
    assert_eq!(gone.status(), 404);

    // Health, metrics and documentation stay where they are.
    for path in ["/health/live", "/metrics", "/openapi.json", "/docs"] {
        let response = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn root_routes_a_files_url_builds_public_urls_locations_and_signed_urls() {
    let server = TestServer::spawn_with(&[("FILES_URL", "https://example.com/files/")]).await;
    let auth = server.bearer(Some(1), 1);

    let response = upload_to(
        &server,
        "/upload",
        &[("Authorization", &auth)],
        "a.txt",
        "text/plain",
        b"hello",
    )
    .await;
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let info = json_with_status(response, 201).await;
    let id = info["file_id"].as_str().unwrap();
    let expected = format!("https://example.com/files/{id}");
    assert_eq!(info["public_url"], expected.as_str());
    assert_eq!(location.as_deref(), Some(expected.as_str()));

    let signed = client()
        .post(server.url(&format!("/files/{id}/signed-url")))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    let signed = json_with_status(signed, 200).await;
    assert!(
        signed["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{expected}?expires=")),
        "{signed}"
    );
}
