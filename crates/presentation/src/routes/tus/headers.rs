//! tus headers: reading a request's, writing an answer's.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use stowage_application::Error;
use stowage_application::checksum::{Checksum, ChecksumAlgorithm};
use stowage_application::ports::{Concat, ResumableId};
use stowage_application::use_cases::ResumableStatus;

use crate::dto::FileInfoResponse;
use crate::error::ApiError;
use crate::state::AppState;

/// The protocol version this server speaks.
pub const TUS_VERSION: &str = "1.0.0";
/// The header naming the version, on every request and answer.
pub const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
/// The only content type bytes are sent as.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// The extensions this server speaks.
const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation";

fn invalid(reason: impl Into<String>) -> ApiError {
    ApiError::validation(reason)
}

fn internal(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    ApiError::App(Error::Internal(Box::new(e)))
}

/// The text of header `name`, when sent.
pub fn text(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| invalid(format!("{name} must be ASCII text")))
        })
        .transpose()
}

/// Header `name` as a whole number, when sent.
pub fn optional_number(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    text(headers, name)?
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| invalid(format!("{name} must be a whole number")))
        })
        .transpose()
}

/// Header `name` as a whole number; it must be sent.
pub fn required_number(headers: &HeaderMap, name: &str) -> Result<u64, ApiError> {
    optional_number(headers, name)?.ok_or_else(|| invalid(format!("{name} is required")))
}

/// `Upload-Concat`: `partial`, or `final;` and the URLs of the partial uploads.
pub fn concat_of(headers: &HeaderMap) -> Result<Option<Concat>, ApiError> {
    let Some(value) = text(headers, "upload-concat")? else {
        return Ok(None);
    };
    let value = value.trim();
    if value == "partial" {
        return Ok(Some(Concat::Partial));
    }
    let Some(urls) = value.strip_prefix("final;") else {
        return Err(invalid("Upload-Concat must be partial or final;<urls>"));
    };
    let ids = urls
        .split_whitespace()
        .map(|url| {
            // A URL or a path: the upload's id is its last segment.
            let last = url
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default();
            ResumableId::parse(last)
                .ok_or_else(|| invalid("Upload-Concat names something that is no upload URL"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Concat::Final(ids)))
}

/// A creation's length: `Upload-Length`, or none with `Upload-Defer-Length: 1`; a final
/// concatenation's comes from its partial uploads.
pub fn creation_length(
    headers: &HeaderMap,
    concat: Option<&Concat>,
) -> Result<Option<u64>, ApiError> {
    let length = optional_number(headers, "upload-length")?;
    let deferred = match text(headers, "upload-defer-length")?
        .as_deref()
        .map(str::trim)
    {
        None => false,
        Some("1") => true,
        Some(_) => return Err(invalid("Upload-Defer-Length must be 1")),
    };
    match (concat, length, deferred) {
        (Some(Concat::Final(_)), None, false) => Ok(None),
        (Some(Concat::Final(_)), _, _) => Err(invalid(
            "a final upload takes its length from its partial uploads",
        )),
        (_, Some(length), false) => Ok(Some(length)),
        (_, None, true) => Ok(None),
        (_, Some(_), true) => Err(invalid(
            "send Upload-Length or Upload-Defer-Length, not both",
        )),
        (_, None, false) => Err(invalid(
            "Upload-Length or Upload-Defer-Length: 1 is required",
        )),
    }
}

/// `Upload-Checksum`: an algorithm and the base64 of the digest.
pub fn upload_checksum(headers: &HeaderMap) -> Result<Option<Checksum>, ApiError> {
    let Some(value) = text(headers, "upload-checksum")? else {
        return Ok(None);
    };
    let (name, digest) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| invalid("Upload-Checksum must be '<algorithm> <base64>'"))?;
    let algorithm = ChecksumAlgorithm::from_name(name).ok_or_else(|| {
        invalid(format!(
            "Upload-Checksum algorithm '{name}' is not one of sha1, sha256, md5"
        ))
    })?;
    let expected = STANDARD
        .decode(digest.trim())
        .map_err(|_| invalid("Upload-Checksum digest must be base64"))?;
    Ok(Some(Checksum {
        algorithm,
        expected,
    }))
}

/// The `OPTIONS` answer: what this server speaks.
pub fn capabilities(max_bytes: Option<u64>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    headers.insert("tus-extension", HeaderValue::from_static(EXTENSIONS));
    let algorithms = ChecksumAlgorithm::ALL
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(",");
    if let Ok(value) = HeaderValue::from_str(&algorithms) {
        headers.insert("tus-checksum-algorithm", value);
    }
    if let Some(max) = max_bytes {
        headers.insert("tus-max-size", HeaderValue::from(max));
    }
    response
}

/// An answer with `code` describing `status`: offset, length, metadata, concatenation, expiry,
/// and the file once the upload became one.
pub fn describe(
    state: &AppState,
    status: &ResumableStatus,
    code: StatusCode,
) -> Result<Response, ApiError> {
    let mut response = code.into_response();
    let headers = response.headers_mut();
    headers.insert("upload-offset", HeaderValue::from(status.offset));
    match status.length {
        Some(length) => headers.insert("upload-length", HeaderValue::from(length)),
        None => headers.insert("upload-defer-length", HeaderValue::from_static("1")),
    };
    if let Some(metadata) = &status.metadata {
        headers.insert(
            "upload-metadata",
            HeaderValue::from_str(metadata).map_err(internal)?,
        );
    }
    let files_url = &state.settings().files_url;
    match &status.concat {
        None => {}
        Some(Concat::Partial) => {
            headers.insert("upload-concat", HeaderValue::from_static("partial"));
        }
        Some(Concat::Final(ids)) => {
            let urls = ids
                .iter()
                .map(|id| format!("{files_url}/tus/{id}"))
                .collect::<Vec<_>>()
                .join(" ");
            headers.insert(
                "upload-concat",
                HeaderValue::from_str(&format!("final;{urls}")).map_err(internal)?,
            );
        }
    }
    let expires = httpdate::fmt_http_date(status.expires_at.into());
    headers.insert(
        "upload-expires",
        HeaderValue::from_str(&expires).map_err(internal)?,
    );
    if let Some(file) = &status.file {
        let info = FileInfoResponse::from_record(file, state.settings());
        headers.insert(
            "stowage-file-id",
            HeaderValue::from_str(&file.id().to_string()).map_err(internal)?,
        );
        headers.insert(
            "stowage-file-url",
            HeaderValue::from_str(&info.public_url).map_err(internal)?,
        );
    }
    Ok(response)
}
