//! Upload URLs: `POST /files/upload-url` issues one, and `POST` (multipart) or `PUT` (raw body)
//! on `/files/upload-url/{token}` uploads once on it, with no credential.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use stowage_application::Error;
use stowage_application::ports::UploadGrant;
use stowage_application::use_cases::{UploadUrlOptions, UrlUpload};
use stowage_domain::PrincipalKind;

use super::files::created;
use super::keys::Labels;
use crate::client_limits::{Requester, requester_address};
use crate::dto::{
    DEFAULT_UPLOAD_URL_SECONDS, FileInfoResponse, RawFileBody, UploadUrlRequest, UploadUrlResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Authenticated;
use crate::state::AppState;
use crate::upload::{check_content_length, file_part, raw_body, stated_length};
use crate::validated::Validated;

mod disposition;

/// `POST /files/upload-url`: a URL on which one upload succeeds, as the caller.
#[utoipa::path(
    post, path = "/files/upload-url", tag = "files", operation_id = "create_upload_url",
    request_body(content = UploadUrlRequest, content_type = "application/json",
        description = "Optional: an empty body means every default (`null` is refused)"),
    responses(
        (status = 200, description = "The upload URL", body = UploadUrlResponse),
        (status = 400, description = "The body is not an `UploadUrlRequest`: `expires_in` or `max_bytes` out of range, an unknown policy, a key that breaks its rule, a visibility other than `private` or `public`", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 408, description = "The body stopped arriving for longer than the idle timeout", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Credential backend unavailable", body = ErrorBody),
    ),
)]
pub async fn create_upload_url(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Validated(Json(body)): Validated<Json<UploadUrlRequest>>,
) -> Result<Json<UploadUrlResponse>, ApiError> {
    let seconds = match body.expires_in {
        None => DEFAULT_UPLOAD_URL_SECONDS,
        // Validated to 1..=86400, so never negative.
        Some(seconds) => u64::try_from(seconds)
            .map_err(|_| ApiError::validation("expires_in must be from 1 to 86400 seconds"))?,
    };
    let key = Labels::parse(body.key.as_deref(), None)?.key;
    let issued = state.services().create_upload_url.execute(
        &principal,
        UploadUrlOptions {
            lifetime: std::time::Duration::from_secs(seconds),
            policy: body.policy,
            key,
            max_bytes: body.max_bytes,
            visibility: body.visibility.map(Into::into),
        },
    )?;
    let expires_at = issued
        .expires_at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| ApiError::App(Error::Internal(Box::new(e))))?;
    let url = format!("{}/upload-url/{}", state.settings().files_url, issued.token);
    Ok(Json(UploadUrlResponse { url, expires_at }))
}

/// What an upload on an upload URL answers, for the OpenAPI document (never built).
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "a type that only describes responses")]
pub enum UploadWithUrlResponses {
    /// Stored.
    #[response(status = 201, description = "Stored; the URL is used up",
        headers(("Location" = String, description = "`{FILES_URL}/{file_id}`, the file's `public_url`")))]
    Created(FileInfoResponse),
    /// A client mistake in the request.
    #[response(
        status = 400,
        description = "A malformed body (not multipart, no `file` part), a `key` other than the signed one, `metadata` that breaks its rule; the URL stays usable"
    )]
    Invalid(ErrorBody<'static>),
    /// The URL does not grant this upload.
    #[response(
        status = 403,
        description = "`INVALID_SIGNATURE`: the URL was tampered with, has expired, is used, or another upload on it is in flight"
    )]
    InvalidSignature(ErrorBody<'static>),
    /// A stalled body.
    #[response(
        status = 408,
        description = "The body stopped arriving for longer than the idle timeout"
    )]
    TimedOut(ErrorBody<'static>),
    /// The key is held by a file the URL's principal may not replace.
    #[response(
        status = 409,
        description = "`KEY_EXISTS`: another file holds the signed key; the URL stays usable"
    )]
    KeyTaken(ErrorBody<'static>),
    /// Too large.
    #[response(
        status = 413,
        description = "Over the URL's `max_bytes`, the policy's limit or `MAX_UPLOAD_BYTES` (a stated length is refused before the body is read); the URL stays usable"
    )]
    TooLarge(ErrorBody<'static>),
    /// Refused type.
    #[response(
        status = 415,
        description = "The URL's policy refuses the file's type (by its magic bytes); the URL stays usable"
    )]
    UnsupportedType(ErrorBody<'static>),
    /// An image the policy refuses.
    #[response(
        status = 422,
        description = "`IMAGE_TOO_LARGE` or `UNSUPPORTED_IMAGE`: an image the URL's policy refuses by its header; the URL stays usable"
    )]
    BadImage(ErrorBody<'static>),
    /// Too many requests.
    #[response(status = 429, description = "Rate limited, or too many uploads in flight from this client",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    TooMany(ErrorBody<'static>),
    /// A backend is down.
    #[response(status = 503, description = "Storage or database unavailable")]
    Unavailable(ErrorBody<'static>),
}

/// `POST /files/upload-url/{token}`: the URL's one upload, as a multipart form like `POST /files`.
#[utoipa::path(
    post, path = "/files/upload-url/{token}", tag = "files", operation_id = "upload_with_url",
    params(("token" = String, Path, description = "The signed grant, as `POST /files/upload-url` wrote it in `url`")),
    request_body(content = crate::dto::UploadForm, content_type = "multipart/form-data",
        description = "The file in the part named `file`; a `key` part must be the signed key, a `visibility` part the signed visibility, a `metadata` part is kept"),
    responses(UploadWithUrlResponses),
)]
pub async fn upload_with_url(
    State(state): State<AppState>,
    Requester(facts): Requester,
    token: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let grant = granted(&state, token)?;
    let max_bytes = state.services().upload_with_url.max_bytes(&grant);
    check_content_length(request.headers(), max_bytes)?;
    let _slot = state.upload_slots().acquire(requester_address(&facts))?;
    let (parts, body) = request.into_parts();
    let part_header_max = state.settings().limits.part_header_max;
    let part = file_part(&parts.headers, body, max_bytes, part_header_max).await?;
    let labels = Labels::parse(part.key.as_deref(), part.metadata.as_deref())?;
    // The URL's visibility is signed into it: a form may repeat it, never change it.
    if let Some(asked) = part.visibility.as_deref()
        && grant.visibility.map(|v| v.as_str()) != Some(asked)
    {
        return Err(ApiError::validation(
            "visibility is set by the upload URL; a visibility part must repeat it",
        ));
    }
    let upload = UrlUpload {
        filename: part.filename,
        declared_type: part.content_type,
        body: part.body,
        length: part.length,
        key: labels.key,
        metadata: labels.metadata.unwrap_or_default(),
        request: facts,
    };
    let record = state
        .services()
        .upload_with_url
        .execute(grant, upload)
        .await?;
    created(&state, &record)
}

/// `PUT /files/upload-url/{token}`: the URL's one upload, as the raw body.
#[utoipa::path(
    put, path = "/files/upload-url/{token}", tag = "files", operation_id = "upload_with_url_raw",
    params(
        ("token" = String, Path, description = "The signed grant, as `POST /files/upload-url` wrote it in `url`"),
        ("Content-Disposition" = Option<String>, Header,
            description = "The file name: `attachment; filename*=UTF-8''<percent-encoded>` or `filename=\"…\"`"),
    ),
    request_body(content = RawFileBody, content_type = "*/*",
        description = "The file's bytes; `Content-Type` is its declared type, `Content-Length` (when sent) its exact length"),
    responses(UploadWithUrlResponses),
)]
pub async fn upload_with_url_raw(
    State(state): State<AppState>,
    Requester(facts): Requester,
    token: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let grant = granted(&state, token)?;
    let (parts, body) = request.into_parts();
    let length = stated_length(&parts.headers)?;
    if let Some(len) = length {
        let limit = state.services().upload_with_url.max_bytes(&grant);
        if len > limit {
            return Err(Error::TooLarge { limit }.into());
        }
    }
    let _slot = state.upload_slots().acquire(requester_address(&facts))?;
    let text = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let upload = UrlUpload {
        filename: text(header::CONTENT_DISPOSITION).and_then(disposition::filename_of),
        declared_type: text(header::CONTENT_TYPE).map(str::to_owned),
        body: raw_body(body),
        length,
        key: None,
        metadata: stowage_domain::Metadata::default(),
        request: facts,
    };
    let record = state
        .services()
        .upload_with_url
        .execute(grant, upload)
        .await?;
    created(&state, &record)
}

/// The grant `token` carries, recorded in the request's span like an authenticated caller; a
/// path segment that is not even text is no token either.
fn granted(
    state: &AppState,
    token: Result<Path<String>, PathRejection>,
) -> Result<UploadGrant, ApiError> {
    let token = token.map(|Path(t)| t).unwrap_or_default();
    let grant = state.services().upload_with_url.grant(&token)?;
    let span = tracing::Span::current();
    span.record("account_id", grant.principal.account_id.get());
    span.record(
        "principal",
        match grant.principal.kind {
            PrincipalKind::User => "user",
            PrincipalKind::Guest => "guest",
            PrincipalKind::Public => "public",
        },
    );
    Ok(grant)
}
