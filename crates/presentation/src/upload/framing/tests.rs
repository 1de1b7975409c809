//! Unit tests of the framing guard.

use super::*;
use futures_util::{StreamExt, TryStreamExt};

const BOUNDARY: &str = "XyZ-42";
const CHUNKS: [usize; 4] = [1, 7, 4096, usize::MAX];

/// A part whose header block (from just after `--boundary` to the end of the blank line) is
/// `block` bytes long, padded with an `X-Pad` header.
fn part_with_block(name: &str, block: usize, data: &[u8]) -> Vec<u8> {
    let fixed = format!("\r\nContent-Disposition: form-data; name=\"{name}\"\r\nX-Pad: ");
    let pad = block - fixed.len() - "\r\n\r\n".len();
    let mut part = format!("--{BOUNDARY}{fixed}{}\r\n\r\n", "p".repeat(pad)).into_bytes();
    part.extend_from_slice(data);
    part.extend_from_slice(b"\r\n");
    part
}

fn close(mut form: Vec<u8>) -> Vec<u8> {
    form.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    form
}

/// Feeds `body` in `chunk`-byte pieces; on failure, how many bytes had been fed by the end of
/// the failing piece.
fn feed(body: &[u8], chunk: usize, limit: usize) -> Result<(), (usize, FramingTooLong)> {
    let mut framing = Framing::new(BOUNDARY, limit);
    let mut fed = 0;
    for piece in body.chunks(chunk.min(body.len()).max(1)) {
        fed += piece.len();
        framing.feed(piece).map_err(|e| (fed, e))?;
    }
    Ok(())
}

fn preamble_too_long(limit: usize) -> FramingTooLong {
    FramingTooLong {
        region: Region::Preamble,
        limit,
    }
}

fn headers_too_long(limit: usize) -> FramingTooLong {
    FramingTooLong {
        region: Region::PartHeaders,
        limit,
    }
}

/// File data that looks like framing without being any: a CRLF CRLF, a delimiter without its
/// CRLF, and a delimiter cut short.
fn tricky_data() -> Vec<u8> {
    let mut data = b"head\r\n\r\nmiddle\n".to_vec();
    data.extend_from_slice(format!("--{BOUNDARY}").as_bytes());
    data.extend_from_slice(format!("x\r\n--{}", &BOUNDARY[..4]).as_bytes());
    data.extend((0..5000u32).map(|i| (i % 251) as u8));
    data.extend_from_slice(b"\r\n-\r\n--\r");
    data
}

fn valid_forms() -> Vec<(&'static str, Vec<u8>)> {
    let mut several = b"a preamble\r\n".to_vec();
    several.extend(part_with_block("note", 120, b"x"));
    several.extend(part_with_block("empty", 60, b""));
    several.extend(part_with_block("file", 200, &tricky_data()));
    several.extend(part_with_block("late", 100, b"after the file"));
    let mut several = close(several);
    several.extend_from_slice(b"an epilogue, which the parser never reads");
    let mut padded =
        format!("--{BOUNDARY} \t \r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n")
            .into_bytes();
    padded.extend_from_slice(b"data\r\n");
    vec![
        ("several parts", several),
        (
            "one part",
            close(part_with_block("file", 80, b"0123456789")),
        ),
        ("transport padding", close(padded)),
        ("no parts", format!("--{BOUNDARY}--\r\n").into_bytes()),
    ]
}

async fn pass_through(body: &[u8], chunk: usize, limit: usize) -> Result<Vec<u8>, BoxError> {
    let pieces: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(chunk.min(body.len()).max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let out: Vec<Bytes> = bounded(futures_util::stream::iter(pieces), BOUNDARY, limit)
        .try_collect()
        .await?;
    Ok(out.concat())
}

#[tokio::test]
async fn valid_forms_pass_through_byte_identical_however_they_are_cut() {
    for (name, form) in valid_forms() {
        for chunk in CHUNKS {
            let out = pass_through(&form, chunk, 200).await;
            assert!(
                out.as_deref().is_ok_and(|out| out == form),
                "{name}, {chunk}-byte chunks: {:?}",
                out.err()
            );
        }
    }
}

#[test]
fn a_header_block_of_the_limit_passes_and_one_byte_more_fails() {
    let limit = 300;
    for index in [0, 2] {
        let form = |block: usize| {
            let mut form = Vec::new();
            for i in 0..3 {
                let size = if i == index { block } else { 100 };
                form.extend(part_with_block(&format!("p{i}"), size, b"data\r\n\r\n"));
            }
            close(form)
        };
        for chunk in CHUNKS {
            assert_eq!(
                feed(&form(limit), chunk, limit),
                Ok(()),
                "part {index}, {chunk}"
            );
            let over = form(limit + 1);
            let err = feed(&over, chunk, limit).map_err(|(_, e)| e);
            assert_eq!(err, Err(headers_too_long(limit)), "part {index}, {chunk}");
        }
    }
}

#[test]
fn a_preamble_of_the_limit_passes_and_one_byte_more_fails() {
    let limit = 300;
    let part = close(part_with_block("file", 100, b"data"));
    // A preamble ending like the boundary's beginning, so the guard cannot count its last
    // bytes as preamble until the boundary proper arrives.
    let form = |len: usize| {
        let mut form = "a".repeat(len - 3).into_bytes();
        form.extend_from_slice(b"-\r-");
        form.extend_from_slice(&part);
        form
    };
    for chunk in CHUNKS {
        assert_eq!(feed(&form(limit), chunk, limit), Ok(()), "{chunk}");
        let err = feed(&form(limit + 1), chunk, limit).map_err(|(_, e)| e);
        assert_eq!(err, Err(preamble_too_long(limit)), "{chunk}");
    }
}

#[test]
fn an_endless_part_header_fails_at_its_limit_plus_first_byte() {
    let limit = 500;
    let start = format!(
        "pre\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nX-Pad: "
    );
    let mut body = start.clone().into_bytes();
    body.resize(100_000, b'A');
    let block_start = "pre\r\n".len() + 2 + BOUNDARY.len();
    for chunk in [1, 7] {
        let (fed, err) = feed(&body, chunk, limit).unwrap_err();
        assert_eq!(err, headers_too_long(limit));
        // The failing piece holds the block's byte limit + 1.
        let first_byte_over = block_start + limit + 1;
        assert!(
            (fed - chunk..fed).contains(&(first_byte_over - 1)),
            "{chunk}: failed after {fed} bytes"
        );
    }
    // Header lines that each end in a CRLF never make the blank line either.
    let mut lines = start.into_bytes();
    while lines.len() < 100_000 {
        lines.extend_from_slice(b"X: y\r\n");
    }
    assert_eq!(
        feed(&lines, 4096, limit).map_err(|(_, e)| e),
        Err(headers_too_long(limit))
    );
}

#[test]
fn an_endless_preamble_fails_at_its_limit_plus_first_byte() {
    let limit = 500;
    for filler in [b'A', b'-', b'\r'] {
        let body = vec![filler; 100_000];
        for chunk in [1, 7, 4096] {
            let (fed, err) = feed(&body, chunk, limit).unwrap_err();
            assert_eq!(err, preamble_too_long(limit));
            assert!(
                fed - chunk.min(fed) <= limit + 2 * BOUNDARY.len(),
                "{filler}, {chunk}: failed after {fed} bytes"
            );
        }
    }
    let (fed, _) = feed(&vec![b'A'; 10_000], 1, limit).unwrap_err();
    assert_eq!(fed, limit + 1);
}

#[test]
fn an_empty_header_block_ends_only_at_a_blank_line_after_the_delimiter_line() {
    // The parser looks for CRLF CRLF after the delimiter line's own CRLF, so it would still be
    // reading headers here: the guard must be too.
    let mut body = format!("--{BOUNDARY}\r\n\r\n").into_bytes();
    body.resize(10_000, b'A');
    for chunk in CHUNKS {
        let err = feed(&body, chunk, 500).map_err(|(_, e)| e);
        assert_eq!(err, Err(headers_too_long(500)), "{chunk}");
    }
}

#[test]
fn a_part_after_the_file_data_is_bounded_too() {
    let mut body = part_with_block("file", 100, &tricky_data());
    body.extend_from_slice(format!("--{BOUNDARY}\r\nX: ").as_bytes());
    body.resize(body.len() + 10_000, b'A');
    for chunk in CHUNKS {
        let err = feed(&body, chunk, 500).map_err(|(_, e)| e);
        assert_eq!(err, Err(headers_too_long(500)), "{chunk}");
    }
}

#[test]
fn after_the_closing_delimiter_nothing_is_counted() {
    let mut body = close(part_with_block("file", 100, b"x"));
    body.resize(body.len() + 10_000, b'A');
    for chunk in CHUNKS {
        assert_eq!(feed(&body, chunk, 500), Ok(()), "{chunk}");
    }
}

#[test]
fn the_scan_finds_the_first_match_across_any_chunk_edges() {
    let needle = Needle::new(b"\r\n--ab\r\n-".to_vec());
    let alphabet = b"\r\n-ab";
    let mut seed = 7u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for _ in 0..2000 {
        let text: Vec<u8> = (0..next() % 80).map(|_| alphabet[next() % 5]).collect();
        let expected = text
            .windows(needle.len())
            .position(|w| w == needle.bytes.as_slice())
            .map(|at| at + needle.len());
        let mut found = None;
        let (mut at, mut pending) = (0, 0);
        while at < text.len() && found.is_none() {
            let piece = &text[at..text.len().min(at + 1 + next() % 12)];
            match needle.scan(pending, piece) {
                Scan::Found(end) => found = Some(at + end),
                Scan::Partial(p) => pending = p,
            }
            at += piece.len();
        }
        assert_eq!(found, expected, "{:?}", String::from_utf8_lossy(&text));
    }
}

async fn upload_error(body: Vec<u8>, chunk: usize) -> Option<crate::error::ApiError> {
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_str(&format!("multipart/form-data; boundary={BOUNDARY}"))
            .unwrap(),
    );
    let pieces: Vec<Result<Bytes, std::io::Error>> = body
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let body = axum::body::Body::from_stream(futures_util::stream::iter(pieces));
    match super::super::file_part(&headers, body, 1 << 30, DEFAULT_PART_HEADER_MAX).await {
        Ok(part) => part
            .body
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .find_map(Result::err)
            .map(|e| crate::error::ApiError::App(e.into())),
        Err(e) => Some(e),
    }
}

fn validation_reason(e: Option<crate::error::ApiError>) -> String {
    match e {
        Some(crate::error::ApiError::App(stowage_application::Error::Validation(reason))) => reason,
        other => panic!("not a validation error: {other:?}"),
    }
}

#[tokio::test]
async fn the_parser_reads_the_file_of_the_valid_form_with_several_parts() {
    let (_, form) = valid_forms().swap_remove(0);
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_str(&format!("multipart/form-data; boundary={BOUNDARY}"))
            .unwrap(),
    );
    let body = axum::body::Body::from(form);
    let part = super::super::file_part(&headers, body, 1 << 30, 200)
        .await
        .unwrap();
    let data: Vec<Bytes> = part.body.try_collect().await.unwrap();
    assert!(data.concat() == tricky_data());
}

#[tokio::test]
async fn the_upload_refuses_an_over_long_part_header_as_invalid() {
    let limit = DEFAULT_PART_HEADER_MAX;
    let at_limit = close(part_with_block("file", limit, b"data"));
    assert!(upload_error(at_limit, 4096).await.is_none());

    let over = close(part_with_block("file", limit + 1, b"data"));
    let reason = validation_reason(upload_error(over, 4096).await);
    assert_eq!(reason, "multipart part headers longer than 16384 bytes");

    let mut after_file = part_with_block("file", 100, b"data");
    after_file.extend(part_with_block("late", limit + 1, b""));
    let reason = validation_reason(upload_error(close(after_file), 4096).await);
    assert_eq!(reason, "multipart part headers longer than 16384 bytes");

    let mut preamble = vec![b'A'; limit + 1];
    preamble.extend(close(part_with_block("file", 100, b"data")));
    let reason = validation_reason(upload_error(preamble, 4096).await);
    assert!(reason.starts_with("multipart preamble"), "{reason}");
    assert!(reason.ends_with("longer than 16384 bytes"), "{reason}");
}
