//! Multipart framing the parser would hold whole: a part header or a preamble that never ends is
//! refused with `400 VALIDATION_ERROR` after some 16 KiB, however much more the client sends, and
//! a server under four such uploads at once stays within a few MiB of its idle memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use stowage_tests::{TestServer, pattern};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::common::{assert_error_shape, assert_nothing_stored, connect, json_with_status};

const BOUNDARY: &str = "stowage-framing-boundary";
/// The server's default limit on a preamble and on one part's header block.
const PART_HEADER_MAX: usize = 16 * 1024;
/// How much filler one attacking connection sends at most (made as it goes, never held).
const ATTACK_BYTES: usize = 64 * 1024 * 1024;
/// Attacking connections open at once.
const ATTACKERS: usize = 4;

/// How one attacking connection ended.
struct Outcome {
    /// Status and JSON body of the answer, if one came in time.
    answer: Option<(u16, Value)>,
    /// From the first byte sent to the end of the answer.
    elapsed: Duration,
    /// Filler bytes written by then (most of them into socket buffers, never read).
    sent: usize,
}

/// Sends `POST /files` with a chunked body of `start` and then up to [`ATTACK_BYTES`] of `A`,
/// never ending it, and reads the answer while still sending.
async fn attack(server: &TestServer, auth: &str, start: &[u8]) -> Outcome {
    let (mut reader, mut writer) = connect(server).await.into_split();
    let head = format!(
        "POST /files HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: {auth}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.port
    );
    let mut first = head.into_bytes();
    // An empty chunk would end the body.
    if !start.is_empty() {
        first.extend_from_slice(format!("{:x}\r\n", start.len()).as_bytes());
        first.extend_from_slice(start);
        first.extend_from_slice(b"\r\n");
    }
    let (stop, mut stopped) = watch::channel(false);
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        let filler = [b'A'; 16 * 1024];
        let mut frame = format!("{:x}\r\n", filler.len()).into_bytes();
        frame.extend_from_slice(&filler);
        frame.extend_from_slice(b"\r\n");
        let mut sent = 0;
        if writer.write_all(&first).await.is_ok() {
            while sent < ATTACK_BYTES {
                tokio::select! {
                    written = writer.write_all(&frame) => if written.is_err() { break },
                    _ = stopped.changed() => break,
                }
                sent += filler.len();
            }
        }
        let sent_by_then = sent;
        // The body stays open until the answer is in: only a server that answers before the
        // body ends answers at all.
        let _ = stopped.wait_for(|stop| *stop).await;
        drop(writer);
        sent_by_then
    });
    let answer = read_answer(&mut reader, Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    let sent = sender.await.unwrap();
    Outcome {
        answer,
        elapsed,
        sent,
    }
}

/// Reads one HTTP/1.1 response with a `Content-Length` body; `None` if none came within `within`.
async fn read_answer(
    reader: &mut (impl AsyncRead + Unpin),
    within: Duration,
) -> Option<(u16, Value)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))?
                .trim()
                .parse()
                .ok()?;
            if buf.len() >= end + 4 + length {
                let body = serde_json::from_slice(&buf[end + 4..end + 4 + length]).ok()?;
                return Some((status, body));
            }
        }
        match tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// Runs [`ATTACKERS`] attacks starting with `start` at once and asserts each is answered `400
/// VALIDATION_ERROR` early, after the server read at most a few KiB past the limit, with the
/// server's memory bounded meanwhile and nothing stored.
async fn assert_refused_early(start: &[u8]) {
    // Shared with the memory sampler, which runs as a task of its own.
    let server = Arc::new(TestServer::process().await);
    let auth = server.bearer(Some(1), 1);
    // Warm the upload path up so that what it allocates once is part of the idle figure.
    server
        .upload_ok(
            &auth,
            "warm.bin",
            "application/octet-stream",
            pattern(1000, 1),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = server.rss_kib();

    let (done, mut finished) = watch::channel(false);
    let sampled = Arc::clone(&server);
    let sampler = tokio::spawn(async move {
        let mut peak = sampled.rss_kib();
        while !*finished.borrow_and_update() {
            peak = peak.max(sampled.rss_kib());
            let _ = tokio::time::timeout(Duration::from_millis(5), finished.changed()).await;
        }
        peak.max(sampled.rss_kib())
    });
    let outcomes =
        futures_util::future::join_all((0..ATTACKERS).map(|_| attack(&server, &auth, start))).await;
    let _ = done.send(true);
    let peak = sampler.await.unwrap();

    let summary: Vec<String> = outcomes
        .iter()
        .map(|o| {
            format!(
                "answer {:?} after {:?}, {} KiB sent",
                o.answer.as_ref().map(|(status, _)| status),
                o.elapsed,
                o.sent / 1024
            )
        })
        .collect();
    assert!(
        peak < idle + 32 * 1024,
        "server memory went from {idle} KiB idle to {peak} KiB under {ATTACKERS} attacks: {summary:?}"
    );
    for outcome in &outcomes {
        let Some((status, body)) = &outcome.answer else {
            panic!("no answer within 5 s while the body went on: {summary:?}");
        };
        assert_eq!(*status, 400, "{body}");
        assert_error_shape(body);
        assert_eq!(body["code"], "VALIDATION_ERROR", "{body}");
        let reason = body["details"]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(&format!("longer than {PART_HEADER_MAX} bytes")),
            "{body}"
        );
        assert!(
            outcome.elapsed < Duration::from_secs(5),
            "answered only after {:?}",
            outcome.elapsed
        );
    }
    // What the server read of each body, from its request log lines.
    let deadline = Instant::now() + Duration::from_secs(10);
    let read: Vec<u64> = loop {
        let read: Vec<u64> = server
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["fields"]["code"] == "VALIDATION_ERROR")
            .filter_map(|l| l["fields"]["bytes_in"].as_u64())
            .collect();
        if read.len() == ATTACKERS || Instant::now() > deadline {
            break read;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(read.len(), ATTACKERS, "request log lines: {read:?}");
    for bytes_in in read {
        assert!(
            bytes_in <= (PART_HEADER_MAX + 64 * 1024) as u64,
            "the server read {bytes_in} bytes of a body it should have refused after {PART_HEADER_MAX}"
        );
    }
    assert_nothing_stored_but_warm_up(&server).await;
}

/// Only the warm-up upload is stored.
async fn assert_nothing_stored_but_warm_up(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (blobs, rows) = (server.blob_files().len(), server.row_count().await);
        if blobs == 1 && rows == 1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{blobs} blob file(s) and {rows} row(s) besides the warm-up upload's one"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn framing_an_endless_part_header_is_refused_early_with_memory_bounded() {
    let start = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nX-Pad: "
    );
    assert_refused_early(start.as_bytes()).await;
}

#[tokio::test]
async fn framing_an_endless_preamble_is_refused_early_with_memory_bounded() {
    assert_refused_early(b"").await;
}

#[tokio::test]
async fn framing_a_part_header_and_a_preamble_of_8_kib_are_accepted() {
    let server = TestServer::spawn().await;
    let data = pattern(100_000, 2);
    let mut body = "p".repeat(8 * 1024).into_bytes();
    body.extend_from_slice(
        format!(
            "\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"padded.bin\"\r\nContent-Type: application/octet-stream\r\nX-Pad: {}\r\n\r\n",
            "h".repeat(8 * 1024)
        )
        .as_bytes(),
    );
    body.extend_from_slice(&data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());

    let response = server
        .post_form("/files", BOUNDARY)
        .header("Authorization", server.bearer(Some(1), 1))
        .body(body)
        .send()
        .await
        .unwrap();

    let info = json_with_status(response, 201).await;
    assert_eq!(info["filename"], "padded.bin", "{info}");
    assert_eq!(info["size"], data.len(), "{info}");
}

/// A form whose file part has a header block (from just after the boundary to the end of the
/// blank line) of `block` bytes.
fn form_with_header_block(block: usize, data: &[u8]) -> Vec<u8> {
    let fixed = "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nX-Pad: ";
    let pad = block - fixed.len() - "\r\n\r\n".len();
    let mut body = format!("--{BOUNDARY}{fixed}{}\r\n\r\n", "h".repeat(pad)).into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

#[tokio::test]
async fn framing_a_part_header_at_the_limit_is_accepted_and_one_byte_more_stores_nothing() {
    let server = TestServer::spawn().await;
    let auth = server.bearer(Some(1), 1);
    let data = pattern(1000, 3);
    let post = |body: Vec<u8>| {
        server
            .post_form("/files", BOUNDARY)
            .header("Authorization", &auth)
            .body(body)
            .send()
    };

    let over = post(form_with_header_block(PART_HEADER_MAX + 1, &data))
        .await
        .unwrap();
    let body = json_with_status(over, 400).await;
    assert_eq!(body["code"], "VALIDATION_ERROR", "{body}");
    assert_nothing_stored(&server, Duration::from_secs(2)).await;

    let at_limit = post(form_with_header_block(PART_HEADER_MAX, &data))
        .await
        .unwrap();
    let info = json_with_status(at_limit, 201).await;
    assert_eq!(info["size"], data.len(), "{info}");
}

#[tokio::test]
async fn framing_the_header_limit_follows_its_setting() {
    let server = TestServer::spawn_with(&[("MULTIPART_HEADER_MAX_BYTES", "2048")]).await;
    let auth = server.bearer(Some(1), 1);
    let data = pattern(1000, 4);
    let post = |body: Vec<u8>| {
        server
            .post_form("/files", BOUNDARY)
            .header("Authorization", &auth)
            .body(body)
            .send()
    };

    let over = post(form_with_header_block(2049, &data)).await.unwrap();
    let body = json_with_status(over, 400).await;
    assert_eq!(body["code"], "VALIDATION_ERROR", "{body}");

    let at_limit = post(form_with_header_block(2048, &data)).await.unwrap();
    json_with_status(at_limit, 201).await;
}
