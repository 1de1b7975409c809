//! Stowage behind the Pneumatic deployment's own nginx (`location /files/` with its include
//! verbatim, which strips `/files/` before it proxies), called as Pneumatic's frontend and its
//! Django backend call the file service.

use std::time::Duration;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use stowage_tests::nginx::PneumaticNginx;
use stowage_tests::{TestServer, client, free_port, multipart_body, pattern};

use crate::common::{
    PUBLIC_P5, USER_P2, expect_uploaded, json_with_status, opaque_token, redis_set, redis_url,
    store_user_token, unique_prefix,
};

const BOUNDARY: &str = "----WebKitFormBoundaryStowage";

/// A server configured as Pneumatic configures its file service (`AUTH_REDIS_URL`,
/// `KEY_PREFIX_REDIS`, `FASTAPI_BASE_URL` the nginx location, `BACKEND_PRIVATE_URL` the backend
/// that answers permission checks), and Pneumatic's nginx in front of it.
async fn behind_nginx(prefix: &str, backend: &str) -> (TestServer, PneumaticNginx) {
    let nginx_port = free_port();
    let files_url = format!("http://127.0.0.1:{nginx_port}/files");
    let server = TestServer::spawn_with(&[
        ("AUTH_REDIS_URL", &redis_url()),
        ("KEY_PREFIX_REDIS", prefix),
        ("TRUST_PROXY_HEADERS", "true"),
        ("FASTAPI_BASE_URL", &files_url),
        ("BACKEND_PRIVATE_URL", backend),
    ])
    .await;
    let nginx = PneumaticNginx::start_on(nginx_port, server.port);
    (server, nginx)
}

/// Pneumatic's backend answering `POST /attachments/check-permission` with `status`.
async fn backend(status: u16) -> MockServer {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/attachments/check-permission"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&mock)
        .await;
    mock
}

/// Posts a form as a browser's `FormData` with the field `file` does.
async fn post_form(
    url: &str,
    headers: &[(&str, &str)],
    name: &str,
    data: &[u8],
) -> reqwest::Response {
    let mut request = client()
        .post(url)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart_body(BOUNDARY, name, "application/pdf", data));
    for (header, value) in headers {
        request = request.header(*header, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
#[ignore = "needs Redis and nginx: make test-integration"]
async fn pneumatic_nginx_frontend_uploads_and_downloads_through_the_files_location() {
    let url = redis_url();
    let prefix = unique_prefix();
    let backend = backend(204).await;
    let (server, nginx) = behind_nginx(&prefix, &backend.uri()).await;
    let token = opaque_token();
    store_user_token(&server, &url, &prefix, &token, USER_P2).await;
    let data = pattern(300_000, 11);

    let response = post_form(
        &nginx.url("/files/upload"),
        &[("Authorization", &format!("Bearer {token}"))],
        "report.pdf",
        &data,
    )
    .await;

    assert_eq!(response.status(), 201, "{}", nginx.error_log());
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let info = expect_uploaded(response, Some(42), 7).await;
    let id = info["file_id"].as_str().unwrap().to_owned();
    let public_url = nginx.url(&format!("/files/{id}"));
    assert_eq!(info["public_url"], public_url.as_str());
    assert_eq!(location.as_deref(), Some(public_url.as_str()));

    // The frontend reads the file back by its public_url, with the cookie and a range.
    let ranged = client()
        .get(&public_url)
        .header("Cookie", format!("file_service_auth={token}"))
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(
        ranged
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok()),
        Some("bytes 1000-1999/300000")
    );
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &data[1000..2000]);

    let whole = client()
        .get(&public_url)
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.unwrap().as_ref(), data.as_slice());

    let info_again = client()
        .get(nginx.url(&format!("/files/{id}/info")))
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_with_status(info_again, 200).await["file_id"],
        id.as_str()
    );

    // Another user of the account reads it because Pneumatic's backend says so.
    let colleague = server.bearer(Some(43), 7);
    let shared = client()
        .get(&public_url)
        .header("Authorization", &colleague)
        .send()
        .await
        .unwrap();
    assert_eq!(shared.status(), 200);
    let checks = backend.received_requests().await.unwrap();
    assert_eq!(checks.len(), 1, "one permission check");
    assert_eq!(
        String::from_utf8_lossy(&checks[0].body),
        format!("file_id={id}")
    );
}

#[tokio::test]
#[ignore = "needs Redis and nginx: make test-integration"]
async fn pneumatic_nginx_public_and_guest_credentials_upload_through_the_files_location() {
    let url = redis_url();
    let prefix = unique_prefix();
    let (server, nginx) = behind_nginx(&prefix, &backend(204).await.uri()).await;
    redis_set(
        &url,
        &format!("{prefix}pubtok08"),
        PUBLIC_P5,
        Duration::from_secs(300),
    )
    .await;

    let public = post_form(
        &nginx.url("/files/upload"),
        &[("X-Public-Authorization", "Token pubtok08")],
        "form.pdf",
        b"%PDF-1.4 public form",
    )
    .await;
    expect_uploaded(public, None, 9).await;

    let guest = server.guest_token(Some(5), 3, 77);
    let response = post_form(
        &nginx.url("/files/upload"),
        &[("X-Guest-Authorization", &guest)],
        "guest.pdf",
        b"%PDF-1.4 guest",
    )
    .await;
    let info = expect_uploaded(response, Some(5), 3).await;
    let id = info["file_id"].as_str().unwrap();
    let read = client()
        .get(nginx.url(&format!("/files/{id}")))
        .header("Cookie", format!("guest-token={guest}"))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
}

/// Runs Python's `requests` as the Django backend's `FileServiceClient` does.
fn django_upload(file_service_url: &str, token: &str) -> serde_json::Value {
    let script = r#"
import json, sys, requests
base, token = sys.argv[1], sys.argv[2]
url = f'{base.rstrip("/")}/{"upload".lstrip("/")}'
response = requests.post(url, headers={"Authorization": f"Bearer {token}"},
                         files={"file": ("contract.pdf", b"%PDF-1.4 from django", "application/pdf")},
                         timeout=10)
print(json.dumps({"status": response.status_code, "body": response.json()}))
"#;
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(file_service_url)
        .arg(token)
        .output()
        .unwrap_or_else(|e| panic!("python3 does not run: {e}"));
    assert!(
        output.status.success(),
        "python3 failed (is requests installed?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
#[ignore = "needs Redis, nginx and Python requests: make test-integration"]
async fn pneumatic_django_backend_uploads_with_requests_directly_and_through_nginx() {
    let url = redis_url();
    let prefix = unique_prefix();
    let (server, nginx) = behind_nginx(&prefix, &backend(204).await.uri()).await;
    let token = opaque_token();
    store_user_token(&server, &url, &prefix, &token, USER_P2).await;

    for base in [
        format!("http://127.0.0.1:{}", server.port),
        nginx.url("/files"),
    ] {
        let answer = tokio::task::spawn_blocking({
            let token = token.clone();
            move || django_upload(base.as_str(), &token)
        })
        .await
        .unwrap();
        assert_eq!(answer["status"], 201, "{answer}");
        let body = &answer["body"];
        assert_eq!(body["user_id"], 42, "{answer}");
        assert_eq!(body["filename"], "contract.pdf", "{answer}");
        assert_eq!(body["content_type"], "application/pdf", "{answer}");
        let id = body["file_id"].as_str().unwrap();
        assert_eq!(
            body["public_url"],
            nginx.url(&format!("/files/{id}")).as_str()
        );
    }
}
