//! What operators run the service with: `/metrics`, `/openapi.json`, `/docs`, request ids, logs.

use serde_json::Value;
use stowage_tests::{TestServer, client, pattern};

use crate::common::{file_id, get, header};

/// Every route of the contract, as `METHOD path`.
const CONTRACT_ROUTES: &[&str] = &[
    "POST /files",
    "GET /files",
    "POST /files/upload",
    "GET /files/{file_id}",
    "HEAD /files/{file_id}",
    "DELETE /files/{file_id}",
    "GET /files/{file_id}/info",
    "POST /files/{file_id}/signed-url",
    "POST /files/signed-urls",
    "POST /files/upload-url",
    "POST /files/upload-url/{token}",
    "PUT /files/upload-url/{token}",
    "POST /files/direct",
    "POST /files/direct/{upload_id}/complete",
    "POST /files/tus",
    "HEAD /files/tus/{upload_id}",
    "PATCH /files/tus/{upload_id}",
    "PATCH /files/{file_id}",
    "DELETE /files/tus/{upload_id}",
    "GET /files/by-key/{key}",
    "HEAD /files/by-key/{key}",
    "DELETE /files/by-key/{key}",
    "GET /files/info/by-key/{key}",
    "GET /health/live",
    "GET /health/ready",
    "GET /metrics",
    "GET /openapi.json",
    "GET /docs",
];

async fn openapi(server: &TestServer) -> Value {
    let response = client()
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("application/json")
    );
    response.json().await.unwrap()
}

fn documented_routes(doc: &Value) -> Vec<String> {
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "head", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                routes.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    routes.sort();
    routes
}

#[tokio::test]
async fn openapi_documents_exactly_the_routes_of_the_contract() {
    let server = TestServer::spawn().await;
    let doc = openapi(&server).await;
    let mut expected: Vec<String> = CONTRACT_ROUTES.iter().map(|r| (*r).to_owned()).collect();
    expected.sort();

    assert_eq!(documented_routes(&doc), expected);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for schema in [
        "FileInfo",
        "ListResponse",
        "SignedUrlRequest",
        "SignedUrlResponse",
        "Error",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "schema {schema}"
        );
    }
}

#[tokio::test]
async fn openapi_routes_are_all_served() {
    let server = TestServer::spawn().await;
    let doc = openapi(&server).await;
    let id = uuid::Uuid::new_v4().to_string();
    for route in documented_routes(&doc) {
        let (method, path) = route.split_once(' ').unwrap();
        let url = server.url(&path.replace("{file_id}", &id));
        let response = client()
            .request(method.parse().unwrap(), url)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_ne!(status, 405, "{route} is documented but not served");
        assert_ne!(
            body["code"], "NOT_FOUND",
            "{route} is documented but not routed"
        );
    }
}

#[tokio::test]
async fn openapi_declares_every_credential_of_the_contract() {
    let server = TestServer::spawn().await;
    let doc = openapi(&server).await;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["guest"]["name"], "X-Guest-Authorization");
    assert_eq!(schemes["public"]["name"], "X-Public-Authorization");
    assert_eq!(schemes["cookie_user"]["in"], "cookie");
    assert_eq!(schemes["cookie_guest"]["name"], "guest-token");
    assert_eq!(schemes["cookie_public"]["name"], "public-token");
    assert_eq!(schemes["signed_url"]["in"], "query");
    let download = &doc["paths"]["/files/{file_id}"]["get"]["security"];
    assert!(download.to_string().contains("signed_url"), "{download}");
}

#[tokio::test]
async fn docs_page_renders_the_document_without_the_network() {
    let server = TestServer::spawn().await;
    let response = client().get(server.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        header(&response, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let csp = header(&response, "content-security-policy").unwrap();
    assert!(
        csp.contains("connect-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("fetch(\"/openapi.json\")"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN or external asset"
    );
}

#[tokio::test]
async fn metrics_count_requests_bytes_and_backend_calls_without_ids_or_tokens() {
    // Exact counts: the metrics recorder is process-wide, so no other server may share it.
    let server = TestServer::process().await;
    let auth = server.bearer(Some(1), 1);
    let data = pattern(10_000, 3);
    let info = server
        .upload_ok(&auth, "m.bin", "application/octet-stream", data)
        .await;
    let id = file_id(&info);
    assert_eq!(
        get(&server, &auth, &format!("/files/{id}")).await.status(),
        200
    );
    assert_eq!(
        client()
            .get(server.url(&format!("/files/{id}")))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let response = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        header(&response, "content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();

    let backend = if stowage_tests::s3_mode() { "s3" } else { "fs" };
    let storage_put =
        format!(r#"storage_operations_total{{backend="{backend}",operation="put",status="ok"}} 1"#);
    for expected in [
        r#"http_requests_total{route="/files",method="POST",status="201"} 1"#,
        r#"http_requests_total{route="/files/{file_id}",method="GET",status="200"} 1"#,
        r#"http_requests_total{route="/files/{file_id}",method="GET",status="401"} 1"#,
        "stowage_upload_bytes_total 10000",
        "stowage_download_bytes_total 10000",
        storage_put.as_str(),
        r#"auth_attempts_total{method="jwt",result="ok"} 2"#,
        "http_request_duration_seconds_bucket{",
        "storage_operation_duration_seconds_bucket{",
        r#"db_operation_duration_seconds_count{operation="insert"} 1"#,
        "http_requests_in_flight",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    assert!(!text.contains(&id), "no file id in a label");
    assert!(
        !text.contains(auth.trim_start_matches("Bearer ")),
        "no token in a label"
    );
}

#[tokio::test]
async fn request_id_is_returned_and_taken_from_the_proxy_only_when_trusted() {
    let untrusted = TestServer::spawn().await;
    let response = client()
        .get(untrusted.url("/health/live"))
        .header("X-Request-Id", "client-chosen-id")
        .send()
        .await
        .unwrap();
    let id = header(&response, "x-request-id").unwrap();
    assert_ne!(id, "client-chosen-id");
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");

    let trusted = TestServer::spawn_with(&[("TRUST_PROXY_HEADERS", "true")]).await;
    let response = client()
        .get(trusted.url("/health/live"))
        .header("X-Request-Id", "nginx-0123")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&response, "x-request-id").as_deref(),
        Some("nginx-0123")
    );
}

/// The "request served" line of the request `request_id`.
async fn request_line(server: &TestServer, request_id: &str) -> Value {
    server
        .log_line(|l| {
            l["span"]["request_id"] == request_id && l["fields"]["message"] == "request served"
        })
        .await
}

#[tokio::test]
async fn log_has_one_json_line_per_request_with_its_context_and_no_token() {
    let server = TestServer::process_with(&[("LOG_LEVEL", "info")]).await;
    let auth = server.bearer(Some(5), 9);
    let upload = server
        .upload(&auth, "l.txt", "text/plain", b"logged".to_vec())
        .await;
    assert_eq!(upload.status(), 201);
    let upload_id = header(&upload, "x-request-id").unwrap();
    let info: Value = upload.json().await.unwrap();
    let response = get(&server, &auth, &format!("/files/{}", file_id(&info))).await;
    let request_id = header(&response, "x-request-id").unwrap();
    assert_eq!(response.bytes().await.unwrap().len(), 6);

    let line = request_line(&server, &request_id).await;
    assert_eq!(line["span"]["matched_path"], "/files/{file_id}");
    assert_eq!(line["span"]["method"], "GET");
    assert_eq!(line["span"]["principal"], "user");
    assert_eq!(line["span"]["account_id"], 9);
    assert_eq!(line["fields"]["status"], 200);
    assert_eq!(line["fields"]["bytes"], 6);
    assert_eq!(line["fields"]["bytes_in"], 0);
    assert!(line["fields"]["latency_ms"].as_f64().unwrap() >= 0.0);

    // An upload's line counts the form it read and the JSON it answered.
    let line = request_line(&server, &upload_id).await;
    assert_eq!(line["span"]["matched_path"], "/files");
    assert_eq!(line["fields"]["status"], 201);
    let form = stowage_tests::multipart_body("b", "l.txt", "text/plain", b"logged").len();
    let bytes_in = line["fields"]["bytes_in"].as_u64().unwrap();
    assert!(
        (form as u64..form as u64 + 200).contains(&bytes_in),
        "{bytes_in} bytes in for a form of about {form}"
    );
    let answer = serde_json::to_vec(&info).unwrap().len() as u64;
    assert_eq!(line["fields"]["bytes"].as_u64().unwrap(), answer);
    let log = server.log();
    assert!(
        !log.contains(auth.trim_start_matches("Bearer ")),
        "no token in the log"
    );
}

#[tokio::test]
async fn a_download_the_client_abandons_is_logged_with_the_bytes_actually_sent() {
    let server = TestServer::process_with(&[("LOG_LEVEL", "info")]).await;
    let auth = server.bearer(Some(5), 9);
    let size = 32 * 1024 * 1024;
    let info = server
        .upload_ok(
            &auth,
            "big.bin",
            "application/octet-stream",
            pattern(size, 7),
        )
        .await;
    let mut response = get(&server, &auth, &format!("/files/{}", file_id(&info))).await;
    assert_eq!(response.status(), 200);
    let request_id = header(&response, "x-request-id").unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(response);

    let line = request_line(&server, &request_id).await;
    assert_eq!(line["fields"]["status"], 200);
    let sent = line["fields"]["bytes"].as_u64().unwrap();
    assert!(
        sent >= first.len() as u64 && sent < size as u64,
        "{sent} bytes logged for an abandoned download of {size}"
    );
}
