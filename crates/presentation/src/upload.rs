//! `multipart/form-data` → the `file` part as a byte stream, never buffered whole.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use futures_util::{StreamExt, TryStreamExt};
use multer::{Constraints, Multipart, SizeLimit};
use stowage_application::{BodyError, ByteStream};

use crate::error::ApiError;

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
}

/// Refuses a request whose declared length already exceeds the limit, before its body is read.
///
/// # Errors
/// `413 FILE_TOO_LARGE`.
pub fn check_content_length(headers: &HeaderMap, max_bytes: u64) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(len) if len > max_bytes.saturating_add(FRAMING_ALLOWANCE) => {
            Err(ApiError::App(stowage_application::Error::TooLarge {
                limit: max_bytes,
            }))
        }
        _ => Ok(()),
    }
}

/// Finds the part named `file` in a multipart `body`, skipping (and discarding) any other part.
///
/// # Errors
/// `400 VALIDATION_ERROR` when the body is not multipart or has no `file` part; `413` when it is too large.
pub async fn file_part(
    headers: &HeaderMap,
    body: Body,
    max_bytes: u64,
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
    let mut multipart = Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
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
            let filename = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(ToString::to_string);
            let body = field.map_err(move |e| body_error(e, max_bytes)).boxed();
            return Ok(FilePart {
                filename,
                content_type,
                body,
            });
        }
        while field
            .chunk()
            .await
            .map_err(|e| ApiError::App(body_error(e, max_bytes).into()))?
            .is_some()
        {}
    }
}

fn body_error(e: multer::Error, max_bytes: u64) -> BodyError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            BodyError::TooLarge { limit: max_bytes }
        }
        multer::Error::StreamReadFailed(source) => BodyError::ClientAborted(source),
        multer::Error::IncompleteFieldData { .. } | multer::Error::IncompleteStream => {
            BodyError::Malformed("the multipart body ended before it was complete".to_owned())
        }
        other => BodyError::Malformed(format!("malformed multipart body: {other}")),
    }
}
