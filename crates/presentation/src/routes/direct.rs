//! Direct uploads: the client sends the bytes to the bucket on presigned URLs, then asks for the
//! object to be checked and recorded (S3 only).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use stowage_application::Error;
use stowage_application::ports::{DirectUploadId, UploadedPart};
use stowage_application::use_cases::{DirectTarget, StartDirectRequest};
use stowage_domain::{FileKey, Sha256Digest};
use time::format_description::well_known::Rfc3339;

use crate::client_limits::Requester;
use crate::dto::{
    CompleteDirectUploadRequest, DEFAULT_DIRECT_UPLOAD_SECONDS, DirectPart, DirectUploadRequest,
    DirectUploadResponse, FileInfoResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Authenticated;
use crate::state::AppState;
use crate::validated::Validated;

fn not_supported() -> ApiError {
    ApiError::App(Error::NotSupported(
        "direct uploads need STORAGE_BACKEND=s3".to_owned(),
    ))
}

/// `POST /files/direct`: presigned `PUT` (or part) URLs straight to the bucket.
#[utoipa::path(
    post, path = "/files/direct", tag = "files", operation_id = "start_direct_upload",
    request_body(content = DirectUploadRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The upload's id and where to send the bytes: `method` `PUT` (one presigned `PUT` of exactly `size` bytes to `url`, with `headers`) or `MULTIPART` (one presigned `PUT` per entry of `parts`, each `part_size` bytes but the last; completion then takes every part's `ETag`, or none to use the store's own list)", body = DirectUploadResponse),
        (status = 400, description = "The body is not a `DirectUploadRequest`: a missing field, `expires_in` out of range, `sha256` not 64 hex digits, an unknown policy, a key that breaks its rule, a visibility other than `private` or `public`", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 409, description = "The key belongs to a file the caller may not replace", body = ErrorBody),
        (status = 413, description = "`size` is over the upload limit (or the policy's)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 501, description = "The storage backend is not S3", body = ErrorBody),
        (status = 503, description = "Storage, database or credential backend unavailable", body = ErrorBody),
    ),
)]
pub async fn start_direct_upload(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Validated(Json(body)): Validated<Json<DirectUploadRequest>>,
) -> Result<Json<DirectUploadResponse>, ApiError> {
    let start = state
        .services()
        .start_direct
        .as_ref()
        .ok_or_else(not_supported)?;
    let seconds = match body.expires_in {
        None => DEFAULT_DIRECT_UPLOAD_SECONDS,
        Some(seconds) => u64::try_from(seconds)
            .map_err(|_| ApiError::validation("expires_in must be from 1 to 86400 seconds"))?,
    };
    let sha256 = body
        .sha256
        .as_deref()
        .map(|hex| Sha256Digest::parse_hex(&hex.to_ascii_lowercase()))
        .transpose()
        .map_err(|_| ApiError::validation("sha256 must be 64 hex digits"))?;
    let key = body
        .key
        .as_deref()
        .map(FileKey::parse)
        .transpose()
        .map_err(|e| ApiError::validation(e.to_string()))?;
    let valid_type = body.content_type.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !body.content_type.starts_with(' ');
    if !valid_type {
        return Err(ApiError::validation("content_type must be printable ASCII"));
    }
    let ticket = start
        .execute(StartDirectRequest {
            principal,
            filename: body.filename,
            content_type: body.content_type,
            size: body.size,
            sha256,
            lifetime: std::time::Duration::from_secs(seconds),
            policy: body.policy,
            key,
            visibility: body.visibility.map(Into::into),
            multipart: body.multipart,
        })
        .await?;
    let expires_at = ticket
        .expires_at
        .format(&Rfc3339)
        .map_err(|e| ApiError::App(Error::Internal(Box::new(e))))?;
    let response = match ticket.target {
        DirectTarget::Put(put) => DirectUploadResponse {
            upload_id: ticket.id.to_string(),
            method: "PUT",
            url: Some(put.url),
            headers: put.headers.into_iter().collect::<BTreeMap<_, _>>(),
            part_size: None,
            parts: None,
            expires_at,
        },
        DirectTarget::Multipart { part_size, parts } => DirectUploadResponse {
            upload_id: ticket.id.to_string(),
            method: "MULTIPART",
            url: None,
            headers: BTreeMap::new(),
            part_size: Some(part_size),
            parts: Some(
                parts
                    .into_iter()
                    .map(|(part_number, put)| DirectPart {
                        part_number,
                        url: put.url,
                    })
                    .collect(),
            ),
            expires_at,
        },
    };
    Ok(Json(response))
}

/// `POST /files/direct/{upload_id}/complete`: checks the stored object and records the file.
#[utoipa::path(
    post, path = "/files/direct/{upload_id}/complete", tag = "files", operation_id = "complete_direct_upload",
    params(("upload_id" = String, Path, description = "The `upload_id` `POST /files/direct` answered")),
    request_body(content = CompleteDirectUploadRequest, content_type = "application/json",
        description = "Empty for a `PUT` upload; for a `MULTIPART` one `parts` (every part's number and `ETag`), or empty to assemble every part the store holds"),
    responses(
        (status = 201, description = "The file is recorded", body = FileInfoResponse,
            headers(("Location" = String, description = "`{FILES_URL}/{file_id}`, the file's `public_url`"))),
        (status = 400, description = "Not a `CompleteDirectUploadRequest`, or an `upload_id` that is not valid percent-encoded UTF-8", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "`UPLOAD_NOT_FOUND`: no such upload, or another principal started it", body = ErrorBody),
        (status = 409, description = "`UPLOAD_COMPLETED`: the upload was completed already (or is being completed); or `KEY_EXISTS`", body = ErrorBody),
        (status = 413, description = "The object is over the upload limit (it is deleted)", body = ErrorBody),
        (status = 415, description = "The policy refuses the object's type by its magic bytes (it is deleted)", body = ErrorBody),
        (status = 422, description = "`IMAGE_TOO_LARGE` or `UNSUPPORTED_IMAGE`: an image the policy refuses by its header (it is deleted); `DIRECT_UPLOAD_INVALID`: no object, a size other than announced, a checksum that does not match, parts that cannot be assembled (the object is deleted; the upload is over); or a list of parts the store refuses (a part missing, a wrong `ETag`, out of order: the upload stays open)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 501, description = "The storage backend is not S3", body = ErrorBody),
        (status = 503, description = "Storage, database or credential backend unavailable (the upload may be completed again)", body = ErrorBody),
    ),
)]
pub async fn complete_direct_upload(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Requester(facts): Requester,
    upload_id: Result<Path<String>, PathRejection>,
    Validated(Json(body)): Validated<Json<CompleteDirectUploadRequest>>,
) -> Result<Response, ApiError> {
    let complete = state
        .services()
        .complete_direct
        .as_ref()
        .ok_or_else(not_supported)?;
    // A segment that is not valid percent-encoded UTF-8 gets the JSON error, not axum's text.
    let Path(upload_id) = upload_id
        .map_err(|_| ApiError::App(Error::Validation("upload_id is not valid UTF-8".into())))?;
    let id = DirectUploadId::parse(&upload_id).ok_or(ApiError::App(Error::UploadNotFound))?;
    let parts = body.parts.map(|parts| {
        parts
            .into_iter()
            .map(|p| UploadedPart {
                number: p.part_number,
                etag: p.etag,
            })
            .collect()
    });
    let record = complete.execute(&principal, id, parts, &facts).await?;
    super::files::file_created(&state, &record)
}
