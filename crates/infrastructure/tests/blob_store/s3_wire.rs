//! What the S3 adapter puts on the wire, seen by a stand-in server (no S3 store needed).

use stowage_application::ports::ResumableStore;
use stowage_infrastructure::{S3BlobStore, S3Layout, S3ResumableStore, S3Settings};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

fn store_on(server: &MockServer) -> S3BlobStore {
    S3BlobStore::new(&settings_on(server))
}

fn settings_on(server: &MockServer) -> S3Settings {
    S3Settings {
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
        buffer_bytes: 64 * 1024 * 1024,
        buffer_wait: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        operation_timeout: Duration::from_secs(10),
        max_attempts: 1,
        stream_uploads: true,
    }
}

async fn answering_puts() -> MockServer {
    let server = MockServer::start().await;
    answering_puts_on(&server).await;
    server
}

async fn answering_puts_on(server: &MockServer) -> &MockServer {
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).insert_header("ETag", "\"etag\""))
        .mount(server)
        .await;
    server
}

fn header<'r>(request: &'r wiremock::Request, name: &str) -> Option<&'r str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The payload of an aws-chunked body (`hex-size[;chunk-signature=…]\r\ndata\r\n`…).
fn decode_aws_chunked(mut raw: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let line = std::str::from_utf8(&raw[..line_end]).unwrap();
        let size = usize::from_str_radix(line.split(';').next().unwrap(), 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return data;
        }
        data.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

#[tokio::test]
async fn a_single_put_signs_the_sha256_of_exactly_its_body() {
    let server = answering_puts().await;
    let store = store_on(&server);
    let data = pseudo_random_bytes(300 * 1024);
    let stored = store
        .put(&new_key(), body_of(uneven_chunks(&data)), None)
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

/// Answers `HeadObject` as if the object held `len` bytes.
async fn answering_heads(server: &MockServer, len: usize) {
    Mock::given(method("HEAD"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Content-Length", len.to_string().as_str())
                .insert_header("ETag", "\"etag\""),
        )
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_hinted_put_streams_one_signed_aws_chunked_put_object_with_a_crc32_trailer() {
    let server = answering_puts().await;
    let store = store_on(&server);
    let data = pseudo_random_bytes(2 * 1024 * 1024 + 5);
    answering_heads(&server, data.len()).await;

    let stored = store
        .put(
            &new_key(),
            body_of(uneven_chunks(&data)),
            Some(data.len() as u64),
        )
        .await
        .unwrap();

    assert_eq!(stored, stored_blob_of(&data));
    let requests = server.received_requests().await.unwrap();
    let methods: Vec<&str> = requests.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods,
        ["PUT", "HEAD"],
        "one PutObject and the check of its size, no multipart upload"
    );
    let put = &requests[0];
    assert_eq!(header(put, "content-encoding"), Some("aws-chunked"));
    assert_eq!(
        header(put, "x-amz-decoded-content-length"),
        Some(data.len().to_string().as_str())
    );
    assert_eq!(header(put, "x-amz-trailer"), Some("x-amz-checksum-crc32"));
    assert_eq!(
        header(put, "x-amz-content-sha256"),
        Some("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"),
        "every chunk is signed over plain HTTP"
    );
    let contains = |needle: &[u8]| put.body.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b";chunk-signature="), "the chunks are signed");
    assert!(
        contains(b"x-amz-checksum-crc32:"),
        "the CRC32 trails the body"
    );
    let sent = decode_aws_chunked(&put.body);
    assert!(
        sent == data.as_ref(),
        "the decoded body differs from the data"
    );
}

#[tokio::test]
async fn a_store_that_keeps_the_chunk_framing_fails_the_upload_and_ends_streaming() {
    let server = answering_puts().await;
    let store = store_on(&server);
    let data = pseudo_random_bytes(2 * 1024 * 1024 + 5);
    answering_heads(&server, data.len() + 4096).await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;

    let first = store
        .put(
            &new_key(),
            body_of(uneven_chunks(&data)),
            Some(data.len() as u64),
        )
        .await;
    server.reset().await;
    let server_again = answering_puts_on(&server).await;
    let second = store
        .put(
            &new_key(),
            body_of(uneven_chunks(&data)),
            Some(data.len() as u64),
        )
        .await;

    assert!(matches!(first, Err(BlobError::Unavailable(_))), "{first:?}");
    assert_eq!(second.unwrap(), stored_blob_of(&data));
    let requests = server_again.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1, "one buffered PutObject");
    assert_eq!(header(&requests[0], "content-encoding"), None);
    assert_eq!(requests[0].body, data.as_ref());
}

#[tokio::test]
async fn a_put_object_whose_answer_never_comes_leaves_the_key_as_it_is() {
    let server = MockServer::start().await;
    // The store takes the whole object, then its answer is lost.
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let store = S3BlobStore::new(&S3Settings {
        operation_timeout: Duration::from_millis(500),
        ..settings_on(&server)
    });
    let data = pseudo_random_bytes(300 * 1024);

    let put = store
        .put(&new_key(), body_of(uneven_chunks(&data)), None)
        .await;

    assert!(matches!(put, Err(BlobError::Unavailable(_))), "{put:?}");
    // No DELETE: the key may hold the object this put was replacing (a policy's rewrite),
    // which a failed rewrite must leave in place; a new key's orphan is gc's.
    let methods: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.method.to_string())
        .collect();
    assert!(methods.iter().all(|m| m == "PUT"), "{methods:?}");
}

/// A body that sends `first`, then stalls as a client that stops sending; `stalled` fires when
/// the store asks for more, so once `first` is in the store's hands.
fn stalling_after(first: Bytes) -> (ByteStream, tokio::sync::oneshot::Receiver<()>) {
    let (stalled, asked) = tokio::sync::oneshot::channel();
    let body = stream::unfold(
        (Some(first), Some(stalled)),
        |(first, stalled)| async move {
            if let Some(first) = first {
                return Some((Ok(first), (None, stalled)));
            }
            if let Some(stalled) = stalled {
                let _ = stalled.send(());
            }
            std::future::pending().await
        },
    )
    .boxed();
    (body, asked)
}

#[tokio::test]
async fn uploads_of_unknown_length_share_the_buffer_budget_and_are_refused_past_it() {
    let server = answering_puts().await;
    // One part's worth of buffers for everyone, waited for briefly.
    let store = S3BlobStore::new(&S3Settings {
        buffer_bytes: 5 * 1024 * 1024,
        buffer_wait: Duration::from_millis(200),
        ..settings_on(&server)
    });
    // A client sends all but 16 KiB of a part, then stalls: its buffer holds that much.
    let (body, stalled) = stalling_after(pseudo_random_bytes(5 * 1024 * 1024 - 16 * 1024));
    let holding = tokio::spawn({
        let store = store.clone();
        async move { store.put(&new_key(), body, None).await }
    });
    stalled.await.unwrap();

    // A small upload fits in what is left; a larger one does not, and is refused.
    let small = pseudo_random_bytes(8 * 1024);
    let stored = store
        .put(&new_key(), body_of(vec![small.clone()]), None)
        .await
        .unwrap();
    assert_eq!(stored, stored_blob_of(&small));
    let refused = store
        .put(
            &new_key(),
            body_of(vec![pseudo_random_bytes(100 * 1024)]),
            None,
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(BlobError::Busy {
                retry_after_secs: 1
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "only the small upload was sent"
    );

    // A stalled upload that is given up (its client gone) gives its buffer back.
    holding.abort();
    let _ = holding.await;
    let data = pseudo_random_bytes(300 * 1024);
    let stored = store
        .put(&new_key(), body_of(uneven_chunks(&data)), None)
        .await
        .unwrap();
    assert_eq!(stored, stored_blob_of(&data));
}

#[tokio::test]
async fn an_upload_larger_than_the_budget_goes_through_one_part_at_a_time() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::query_param("uploadId", "up-1"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "<CompleteMultipartUploadResult><Bucket>wire</Bucket><Key>k</Key>\
             <ETag>\"etag\"</ETag></CompleteMultipartUploadResult>",
        ))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "<InitiateMultipartUploadResult><Bucket>wire</Bucket><Key>k</Key>\
             <UploadId>up-1</UploadId></InitiateMultipartUploadResult>",
        ))
        .mount(&server)
        .await;
    answering_puts_on(&server).await;
    let store = S3BlobStore::new(&S3Settings {
        buffer_bytes: 5 * 1024 * 1024,
        buffer_wait: Duration::from_secs(5),
        ..settings_on(&server)
    });
    // Three parts' worth through a budget of one: each part waits for the previous one's share.
    let data = pseudo_random_bytes(12 * 1024 * 1024);

    let stored = store
        .put(&new_key(), body_of(uneven_chunks(&data)), None)
        .await
        .unwrap();

    assert_eq!(stored, stored_blob_of(&data));
    let parts = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == "PUT")
        .count();
    assert_eq!(parts, 3);
}

/// What a request's body holds, aws-chunked or not.
fn payload(request: &wiremock::Request) -> Vec<u8> {
    if header(request, "content-encoding").is_some_and(|e| e.contains("aws-chunked")) {
        decode_aws_chunked(&request.body)
    } else {
        request.body.clone()
    }
}

#[tokio::test]
async fn a_tus_append_reads_its_kept_tail_back_only_once_the_budget_has_room_for_it() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            "<InitiateMultipartUploadResult><Bucket>wire</Bucket><Key>k</Key>\
             <UploadId>up-1</UploadId></InitiateMultipartUploadResult>",
        ))
        .mount(&server)
        .await;
    answering_puts_on(&server).await;
    let tail = pseudo_random_bytes(100 * 1024);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(tail.to_vec()))
        .mount(&server)
        .await;
    let blobs = S3BlobStore::new(&S3Settings {
        buffer_bytes: 5 * 1024 * 1024,
        buffer_wait: Duration::from_millis(200),
        ..settings_on(&server)
    });
    let resumable = S3ResumableStore::new(blobs.clone());
    let key = new_key();
    let begun = resumable.begin(&key).await.unwrap();
    // A PATCH of unknown length too short for a part: its bytes are kept as the tail object.
    let kept = resumable
        .append(&key, &begun, 0, None, None, body_of(vec![tail.clone()]))
        .await
        .unwrap();
    assert!(kept.interrupted.is_none(), "{:?}", kept.interrupted);
    let offset = tail.len() as u64;
    assert_eq!(kept.written, offset);
    // Another upload holds all but 16 KiB of the budget, less than the tail.
    let (body, stalled) = stalling_after(pseudo_random_bytes(5 * 1024 * 1024 - 16 * 1024));
    let holding = tokio::spawn({
        let blobs = blobs.clone();
        async move { blobs.put(&new_key(), body, None).await }
    });
    stalled.await.unwrap();

    // The next PATCH waits for room for the tail, then is refused without reading it back.
    let more = pseudo_random_bytes(1024);
    let refused = resumable
        .append(
            &key,
            &kept.progress,
            offset,
            None,
            None,
            body_of(vec![more.clone()]),
        )
        .await
        .unwrap();
    assert!(
        matches!(refused.interrupted, Some(BlobError::Busy { .. })),
        "{:?}",
        refused.interrupted
    );
    assert_eq!(refused.written, 0);
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests.iter().all(|r| r.method.as_str() != "GET"),
        "the tail was read back"
    );

    // With room again, the tail leads the new bytes into the next tail.
    holding.abort();
    let _ = holding.await;
    let appended = resumable
        .append(
            &key,
            &kept.progress,
            offset,
            None,
            None,
            body_of(vec![more.clone()]),
        )
        .await
        .unwrap();
    assert!(appended.interrupted.is_none(), "{:?}", appended.interrupted);
    assert_eq!(appended.written, more.len() as u64);
    let requests = server.received_requests().await.unwrap();
    let put = requests
        .iter()
        .rev()
        .find(|r| r.method.as_str() == "PUT")
        .unwrap();
    assert_eq!(payload(put), [tail.as_ref(), more.as_ref()].concat());
}
