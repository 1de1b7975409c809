//! What the S3 adapter puts on the wire, seen by a stand-in server (no S3 store needed).

use stowage_infrastructure::{S3BlobStore, S3Layout, S3Settings};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

fn store_on(server: &MockServer) -> S3BlobStore {
    S3BlobStore::new(&S3Settings {
        endpoint: Some(server.uri()),
        region: "us-east-1".into(),
        access_key: "AKWIRE".into(),
        secret_key: "SKWIRESECRET".into(),
        force_path_style: true,
        layout: S3Layout::Single {
            bucket: "wire".into(),
        },
        part_size: 5 * 1024 * 1024,
        pipelined_uploads: 1,
        connect_timeout: Duration::from_secs(2),
        operation_timeout: Duration::from_secs(10),
        max_attempts: 1,
    })
}

async fn answering_puts() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).insert_header("ETag", "\"etag\""))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_single_put_signs_the_sha256_of_exactly_its_body() {
    let server = answering_puts().await;
    let store = store_on(&server);
    let data = pseudo_random_bytes(300 * 1024);
    let stored = store
        .put(&new_key(), body_of(uneven_chunks(&data)))
        .await
        .unwrap();

    assert_eq!(stored, stored_blob_of(&data));
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "one PutObject");
    let put = &requests[0];
    assert_eq!(put.body, data.as_ref());
    assert_eq!(
        put.headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok()),
        Some(stored.sha256.to_hex().as_str()),
        "the signed payload hash is the body's SHA-256"
    );
    let authorization = put
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        authorization.contains("x-amz-content-sha256"),
        "the payload hash is one of the signed headers: {authorization}"
    );
}
