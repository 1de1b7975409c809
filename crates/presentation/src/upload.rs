//! `multipart/form-data` → the `file` part as a byte stream, never buffered whole.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use multer::{Constraints, Field, Multipart, SizeLimit};
use stowage_application::{BodyError, ByteStream};

use crate::error::ApiError;

pub(crate) mod framing;

pub use framing::DEFAULT_PART_HEADER_MAX;

/// Room for multipart framing (boundaries, part headers, small extra fields) on top of the file limit.
pub const FRAMING_ALLOWANCE: u64 = 64 * 1024;

/// The file part of an upload.
pub struct FilePart {
    /// The client's file name.
    pub filename: Option<String>,
    /// The client's declared type.
    pub content_type: Option<String>,
    /// The bytes.
    pub body: ByteStream,
    /// The part's length, when the request's `Content-Length` and framing announce it.
    pub length: Option<u64>,
    /// The text of a `key` part before the file, unchecked.
    pub key: Option<String>,
    /// The text of a `metadata` part before the file, unchecked.
    pub metadata: Option<String>,
    /// The text of a `visibility` part before the file, unchecked.
    pub visibility: Option<String>,
}

/// Longest `key`, `metadata` or `visibility` part read before the file.
pub const MAX_TEXT_FIELD: usize = 8 * 1024;

/// Refuses a request whose declared length already exceeds the limit, before its body is read.
///
/// # Errors
/// `413 FILE_TOO_LARGE`.
pub fn check_content_length(headers: &HeaderMap, max_bytes: u64) -> Result<(), ApiError> {
    match declared_length(headers) {
        Some(len) if len > max_bytes.saturating_add(FRAMING_ALLOWANCE) => {
            Err(ApiError::App(stowage_application::Error::TooLarge {
                limit: max_bytes,
            }))
        }
        _ => Ok(()),
    }
}

/// Finds the part named `file` in a multipart `body`, keeping the text of `key`, `metadata` and
/// `visibility` parts before it and skipping (and discarding) any other part.
///
/// # Errors
/// `400 VALIDATION_ERROR` when the body is not multipart, has no `file` part, has a preamble
/// or part header block longer than `part_header_max` bytes, or a kept text part that
/// is repeated, not UTF-8 or over [`MAX_TEXT_FIELD`] bytes; `413` when it is too large.
pub async fn file_part(
    headers: &HeaderMap,
    body: Body,
    max_bytes: u64,
    part_header_max: usize,
) -> Result<FilePart, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::validation("the body must be multipart/form-data with a boundary")
    })?;
    let constraints = Constraints::new()
        .size_limit(SizeLimit::new().whole_stream(max_bytes.saturating_add(FRAMING_ALLOWANCE)));
    let content_length = declared_length(headers);
    // The parser holds a preamble or part header whole until it ends: the guard bounds both.
    let raw = framing::bounded(body.into_data_stream(), &boundary, part_header_max);
    let starts = raw.part_starts();
    let mut multipart = Multipart::with_constraints(raw, boundary.clone(), constraints);
    let mut index = 0;
    let (mut key, mut metadata, mut visibility) = (None, None, None);
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::App(body_error(e, max_bytes).into()))?;
        let Some(mut field) = field else {
            return Err(ApiError::validation(
                "no part named 'file' in the multipart body",
            ));
        };
        if field.name() == Some("file") {
            // The file's length if the form ends with it: the rest less the closing delimiter.
            let length = content_length
                .zip(starts.get(index))
                .and_then(|(total, start)| total.checked_sub(start + closing_len(&boundary)));
            let filename = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(ToString::to_string);
            let body = file_then_rest(field, multipart)
                .map_err(move |e| body_error(e, max_bytes))
                .boxed();
            return Ok(FilePart {
                filename,
                content_type,
                body,
                length,
                key,
                metadata,
                visibility,
            });
        }
        index += 1;
        let kept = match field.name() {
            Some("key") => Some(("key", &mut key)),
            Some("metadata") => Some(("metadata", &mut metadata)),
            Some("visibility") => Some(("visibility", &mut visibility)),
            _ => None,
        };
        if let Some((name, slot)) = kept {
            if slot.is_some() {
                return Err(ApiError::validation(format!(
                    "the form has more than one '{name}' part"
                )));
            }
            *slot = Some(text_field(&mut field, name, max_bytes).await?);
            continue;
        }
        while field
            .chunk()
            .await
            .map_err(|e| ApiError::App(body_error(e, max_bytes).into()))?
            .is_some()
        {}
    }
}

/// A text part of at most [`MAX_TEXT_FIELD`] bytes of UTF-8.
async fn text_field(
    field: &mut Field<'static>,
    name: &str,
    max_bytes: u64,
) -> Result<String, ApiError> {
    let mut text = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::App(body_error(e, max_bytes).into()))?
    {
        if text.len() + chunk.len() > MAX_TEXT_FIELD {
            return Err(ApiError::validation(format!(
                "the '{name}' part must be at most 8 KiB"
            )));
        }
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text)
        .map_err(|_| ApiError::validation(format!("the '{name}' part must be UTF-8 text")))
}

/// The `file` part's bytes; the stream ends only once the rest of the form has been read (and
/// discarded), so a body cut off or over the limit after the file still fails the upload, and
/// whatever follows the file has arrived before the file counts as complete.
fn file_then_rest(
    field: Field<'static>,
    multipart: Multipart<'static>,
) -> impl futures_util::Stream<Item = Result<Bytes, multer::Error>> + Send + 'static {
    futures_util::stream::unfold(Some((field, multipart)), |state| async move {
        let (mut field, mut multipart) = state?;
        match field.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some((field, multipart)))),
            Ok(None) => {
                drop(field);
                let rest = async {
                    while let Some(mut other) = multipart.next_field().await? {
                        while other.chunk().await?.is_some() {}
                    }
                    Ok::<(), multer::Error>(())
                };
                rest.await.err().map(|e| (Err(e), None))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Length of the closing delimiter as clients write it: `CRLF--boundary--CRLF`.
fn closing_len(boundary: &str) -> u64 {
    boundary.len() as u64 + 8
}

fn body_error(e: multer::Error, max_bytes: u64) -> BodyError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            BodyError::TooLarge { limit: max_bytes }
        }
        multer::Error::StreamReadFailed(source) if crate::transfer::is_body_idle(&*source) => {
            BodyError::TimedOut
        }
        multer::Error::StreamReadFailed(source) => {
            match source.downcast::<framing::FramingTooLong>() {
                Ok(too_long) => BodyError::Malformed(too_long.to_string()),
                Err(source) => BodyError::ClientAborted(source),
            }
        }
        multer::Error::IncompleteFieldData { .. } | multer::Error::IncompleteStream => {
            BodyError::Malformed("the multipart body ended before it was complete".to_owned())
        }
        other => BodyError::Malformed(format!("malformed multipart body: {other}")),
    }
}

/// The raw body's exact length: its `Content-Length`, unless it is sent in chunks.
pub(crate) fn stated_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Ok(None);
    }
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::validation("Content-Length must be a whole number"))
        })
        .transpose()
}

/// The request body as the upload's byte stream, never buffered whole.
pub(crate) fn raw_body(body: axum::body::Body) -> ByteStream {
    body.into_data_stream()
        .map_err(|e| {
            if crate::transfer::is_body_idle(&e) {
                BodyError::TimedOut
            } else {
                BodyError::ClientAborted(Box::new(e))
            }
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const BOUNDARY: &str = "XyZ-42";

    fn form(preamble: &str, before: &[(&str, &str)], file: &[u8], after: &str) -> Vec<u8> {
        let mut body = preamble.as_bytes().to_vec();
        for (name, value) in before {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(after.as_bytes());
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        body
    }

    /// The hint and the bytes of the `file` part of `raw`, sent in `chunk`-byte pieces.
    async fn parse(raw: Vec<u8>, chunk: usize, content_length: bool) -> (Option<u64>, Vec<u8>) {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&format!("multipart/form-data; boundary={BOUNDARY}")).unwrap(),
        );
        if content_length {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(raw.len()));
        }
        let pieces: Vec<Result<Bytes, std::io::Error>> = raw
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let body = Body::from_stream(futures_util::stream::iter(pieces));
        let part = file_part(&headers, body, 1 << 30, DEFAULT_PART_HEADER_MAX)
            .await
            .unwrap();
        let data: Vec<Bytes> = part.body.try_collect().await.unwrap();
        (part.length, data.concat())
    }

    #[tokio::test]
    async fn the_hint_is_the_file_length_when_the_file_ends_the_form() {
        let file: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let forms = [
            ("alone", form("", &[], &file, "")),
            (
                "after fields",
                form("", &[("note", "x"), ("tag", "")], &file, ""),
            ),
            (
                "after a preamble",
                form("ignored\r\n", &[("note", "x")], &file, ""),
            ),
            (
                "after a preamble without CRLF",
                form("ignored", &[], &file, ""),
            ),
        ];
        for (name, raw) in forms {
            for chunk in [1, 7, 4096, raw.len()] {
                let (hint, data) = parse(raw.clone(), chunk, true).await;
                assert!(
                    data == file,
                    "{name}, {chunk}-byte chunks: the bytes differ"
                );
                assert_eq!(hint, Some(file.len() as u64), "{name}, {chunk}-byte chunks");
            }
        }
    }

    #[tokio::test]
    async fn a_part_after_the_file_makes_the_hint_too_long_but_not_the_file() {
        let after = format!(
            "\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"late\"\r\n\r\nvalue"
        );
        let raw = form("", &[], b"0123456789", &after);

        let (hint, data) = parse(raw, 5, true).await;

        assert_eq!(data, b"0123456789");
        assert_eq!(hint, Some(10 + after.len() as u64));
    }

    #[tokio::test]
    async fn there_is_no_hint_without_a_content_length_or_after_too_many_parts() {
        let file = vec![7u8; 1000];
        let (hint, data) = parse(form("", &[], &file, ""), 100, false).await;
        assert_eq!((hint, data.len()), (None, 1000));

        let fields: Vec<(&str, &str)> = vec![("n", "v"); 1024];
        let (hint, data) = parse(form("", &fields, &file, ""), 4096, true).await;
        assert_eq!((hint, data.len()), (None, 1000));
    }

    #[tokio::test]
    async fn a_long_field_before_the_file_still_gives_the_hint() {
        let file = vec![7u8; 1000];
        let long_field = "v".repeat(FRAMING_ALLOWANCE as usize);
        let raw = form("", &[("note", &long_field)], &file, "");
        let (hint, data) = parse(raw, 4096, true).await;
        assert_eq!((hint, data.len()), (Some(1000), 1000));
    }

    async fn fields_of(before: &[(&str, &str)]) -> Result<(Option<String>, Option<String>), u16> {
        let raw = form("", before, b"data", "");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&format!("multipart/form-data; boundary={BOUNDARY}")).unwrap(),
        );
        match file_part(&headers, Body::from(raw), 1 << 20, DEFAULT_PART_HEADER_MAX).await {
            Ok(part) => Ok((part.key, part.metadata)),
            Err(e) => Err(axum::response::IntoResponse::into_response(e)
                .status()
                .as_u16()),
        }
    }

    #[tokio::test]
    async fn key_and_metadata_parts_before_the_file_are_kept_as_text() {
        let got = fields_of(&[("key", "a/b"), ("note", "x"), ("metadata", "{}")]).await;
        assert_eq!(got, Ok((Some("a/b".to_owned()), Some("{}".to_owned()))));
        assert_eq!(fields_of(&[("note", "x")]).await, Ok((None, None)));
        let longest = "k".repeat(MAX_TEXT_FIELD);
        assert_eq!(
            fields_of(&[("key", &longest)]).await,
            Ok((Some(longest.clone()), None))
        );
        let over = "k".repeat(MAX_TEXT_FIELD + 1);
        assert_eq!(fields_of(&[("key", &over)]).await, Err(400));
        assert_eq!(
            fields_of(&[("metadata", "{}"), ("metadata", "{}")]).await,
            Err(400)
        );
    }

    #[tokio::test]
    async fn the_file_stream_fails_when_the_form_breaks_after_the_file() {
        let mut raw = form("", &[], b"0123456789", "");
        raw.truncate(raw.len() - format!("--{BOUNDARY}--\r\n").len());
        raw.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"late\"\r\n\r\ncut off")
                .as_bytes(),
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&format!("multipart/form-data; boundary={BOUNDARY}")).unwrap(),
        );
        let part = file_part(&headers, Body::from(raw), 1 << 20, DEFAULT_PART_HEADER_MAX)
            .await
            .unwrap();

        let read: Result<Vec<Bytes>, BodyError> = part.body.try_collect().await;

        assert!(matches!(read, Err(BodyError::Malformed(_))), "{read:?}");
    }
}
