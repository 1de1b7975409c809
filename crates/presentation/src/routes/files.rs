//! The `/files` routes that upload, list, describe, change and delete files; downloads live in
//! [`super::download`].

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use stowage_application::Error;
use stowage_application::use_cases::UploadRequest;
use stowage_domain::FileRecord;

use crate::client_limits::{Requester, requester_address};
use crate::dto::{
    DEFAULT_PAGE, FileInfoResponse, FilePatchRequest, ListQuery, ListResponse, UploadQuery,
    VisibilityName,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Authenticated, FileIdPath};
use crate::state::AppState;
use crate::upload::{check_content_length, file_part};
use crate::validated::Validated;

use super::keys::Labels;

/// What both upload routes answer, for the OpenAPI document (never built: the handlers answer
/// through [`ApiError`] and the success response below).
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "a type that only describes responses")]
pub enum UploadResponses {
    /// Stored.
    #[response(status = 201, description = "Stored",
        headers(("Location" = String, description = "`{FILES_URL}/{file_id}`, the file's `public_url`")))]
    Created(FileInfoResponse),
    /// A client mistake in the request.
    #[response(
        status = 400,
        description = "Not multipart, no `file` part, a malformed body, an unknown policy, a `key` or `metadata` that breaks its rule or is given twice"
    )]
    Invalid(ErrorBody<'static>),
    /// No credential.
    #[response(status = 401, description = "No valid credential")]
    Unauthorized(ErrorBody<'static>),
    /// The file to replace is not the caller's to delete.
    #[response(
        status = 403,
        description = "`replaces` names a file the caller may not delete (nothing is kept)"
    )]
    Forbidden(ErrorBody<'static>),
    /// The file to replace does not exist.
    #[response(
        status = 404,
        description = "`replaces` names no file (nothing is kept)"
    )]
    NoSuchFile(ErrorBody<'static>),
    /// The key is held by a file the caller may not replace.
    #[response(
        status = 409,
        description = "`KEY_EXISTS`: another file holds the key and the caller may not delete it"
    )]
    KeyTaken(ErrorBody<'static>),
    /// A stalled body.
    #[response(
        status = 408,
        description = "The body stopped arriving for longer than the idle timeout"
    )]
    TimedOut(ErrorBody<'static>),
    /// Too large.
    #[response(
        status = 413,
        description = "Over `MAX_UPLOAD_BYTES` (or the policy's limit)"
    )]
    TooLarge(ErrorBody<'static>),
    /// Refused type.
    #[response(
        status = 415,
        description = "The policy refuses the file's type (by its magic bytes)"
    )]
    UnsupportedType(ErrorBody<'static>),
    /// An image the policy refuses.
    #[response(
        status = 422,
        description = "`IMAGE_TOO_LARGE`: over the policy's pixels (read from the header); `UNSUPPORTED_IMAGE`: an image whose header or structure cannot be read"
    )]
    BadImage(ErrorBody<'static>),
    /// Too many requests.
    #[response(status = 429, description = "Rate limited, or too many uploads in flight from this client",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    TooMany(ErrorBody<'static>),
    /// A backend is down.
    #[response(
        status = 503,
        description = "Storage, database or credential backend unavailable"
    )]
    Unavailable(ErrorBody<'static>),
}

/// `POST /files`: one multipart upload.
#[utoipa::path(
    post, path = "/files", tag = "files", operation_id = "upload_file",
    params(UploadQuery),
    request_body(content = crate::dto::UploadForm, content_type = "multipart/form-data"),
    responses(UploadResponses),
)]
pub async fn upload_file(
    State(state): State<AppState>,
    Requester(facts): Requester,
    Authenticated(principal): Authenticated,
    Validated(Query(query)): Validated<Query<UploadQuery>>,
    request: Request,
) -> Result<Response, ApiError> {
    let max_bytes = state.services().upload.max_bytes();
    let from_query = Labels::parse(query.key.as_deref(), query.metadata.as_deref())?;
    check_content_length(request.headers(), max_bytes)?;
    let _slot = state.upload_slots().acquire(requester_address(&facts))?;
    let (parts, body) = request.into_parts();
    let part_header_max = state.settings().limits.part_header_max;
    let part = file_part(&parts.headers, body, max_bytes, part_header_max).await?;
    let labels = from_query.with_form(part.key.as_deref(), part.metadata.as_deref())?;
    let visibility = match (query.visibility, part.visibility.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "visibility is given both as a query parameter and as a form field",
            ));
        }
        (Some(asked), None) => Some(asked),
        (None, Some(text)) => {
            Some(VisibilityName::try_from(text.to_owned()).map_err(ApiError::validation)?)
        }
        (None, None) => None,
    };
    let record = state
        .services()
        .upload
        .execute(UploadRequest {
            principal,
            filename: part.filename,
            declared_type: part.content_type,
            policy: query.policy,
            body: part.body,
            length: part.length,
            key: labels.key,
            metadata: labels.metadata.unwrap_or_default(),
            visibility: visibility.map(Into::into),
            replaces: query.replaces,
            request: facts,
        })
        .await?;
    created(&state, &record)
}

/// `201` with the new file's `FileInfo` and its `Location`, as every upload answers; counts its
/// bytes.
pub(crate) fn created(state: &AppState, record: &FileRecord) -> Result<Response, ApiError> {
    metrics::counter!("stowage_upload_bytes_total").increment(record.size());
    file_created(state, record)
}

/// `201` with the new file's `FileInfo` and its `Location`, for a file whose bytes did not pass
/// through this service (a direct upload).
pub(crate) fn file_created(state: &AppState, record: &FileRecord) -> Result<Response, ApiError> {
    let settings = state.settings();
    let info = FileInfoResponse::from_record(record, settings);
    // Where the file is served, `{FILES_URL}/{id}`, even when `public_url` names a CDN.
    let location = HeaderValue::from_str(&format!("{}/{}", settings.files_url, record.id()))
        .map_err(|e| ApiError::App(Error::Internal(Box::new(e))))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(info),
    )
        .into_response())
}

/// `GET /files`: the caller's own files, newest first.
#[utoipa::path(
    get, path = "/files", tag = "files", operation_id = "list_files",
    params(ListQuery),
    responses(
        (status = 200, description = "One page, newest first", body = ListResponse),
        (status = 400, description = "`limit`, `cursor` or `prefix` not valid, or another query parameter", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database or credential backend unavailable", body = ErrorBody),
    ),
)]
pub async fn list_files(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Validated(Query(query)): Validated<Query<ListQuery>>,
) -> Result<Json<ListResponse>, ApiError> {
    let page = state
        .services()
        .list
        .execute(
            &principal,
            query.limit.unwrap_or(DEFAULT_PAGE),
            query.cursor,
            query.prefix.as_deref(),
        )
        .await?;
    let settings = state.settings();
    Ok(Json(ListResponse {
        items: page
            .items
            .iter()
            .map(|r| FileInfoResponse::from_record(r, settings))
            .collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// `GET /files/{id}/info`: the file's `FileInfo`.
#[utoipa::path(
    get, path = "/files/{file_id}/info", tag = "files", operation_id = "file_info",
    params(("file_id" = String, Path, description = "Lower-case UUID v4; anything else is 404")),
    responses(
        (status = 200, description = "The file's `FileInfo`", body = FileInfoResponse),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "Access refused", body = ErrorBody),
        (status = 404, description = "No such file, or the id is not a lower-case UUID v4", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Storage, database, credential or permission backend unavailable", body = ErrorBody),
    ),
)]
pub async fn file_info(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    FileIdPath(id): FileIdPath,
    Requester(facts): Requester,
) -> Result<Json<FileInfoResponse>, ApiError> {
    let record = state
        .services()
        .info
        .execute(&principal, id, &facts)
        .await?;
    Ok(Json(FileInfoResponse::from_record(
        &record,
        state.settings(),
    )))
}

/// `PATCH /files/{id}`: makes the file public or private (the uploading user only).
#[utoipa::path(
    patch, path = "/files/{file_id}", tag = "files", operation_id = "update_file",
    params(("file_id" = String, Path, description = "Lower-case UUID v4; anything else is 404")),
    request_body(content = FilePatchRequest, content_type = "application/json",
        description = "Optional: an empty body (or `{}`) changes nothing and answers the file as it is"),
    responses(
        (status = 200, description = "The file's `FileInfo`, as changed", body = FileInfoResponse),
        (status = 400, description = "The body is not a `FilePatchRequest`", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "Not the uploading user", body = ErrorBody),
        (status = 404, description = "No such file, or the id is not a lower-case UUID v4", body = ErrorBody),
        (status = 408, description = "The body stopped arriving for longer than the idle timeout", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database or credential backend unavailable", body = ErrorBody),
    ),
)]
pub async fn update_file(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    FileIdPath(id): FileIdPath,
    Validated(Json(body)): Validated<Json<FilePatchRequest>>,
) -> Result<Json<FileInfoResponse>, ApiError> {
    let services = state.services();
    let record = match body.visibility {
        Some(visibility) => {
            services
                .set_visibility
                .execute(&principal, id, visibility.into())
                .await?
        }
        None => services.set_visibility.current(&principal, id).await?,
    };
    Ok(Json(FileInfoResponse::from_record(
        &record,
        state.settings(),
    )))
}

/// `DELETE /files/{id}`: removes the record and the blob (the uploading user only).
#[utoipa::path(
    delete, path = "/files/{file_id}", tag = "files", operation_id = "delete_file",
    params(("file_id" = String, Path, description = "Lower-case UUID v4; anything else is 404")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "Not the uploading user", body = ErrorBody),
        (status = 404, description = "No such file, or the id is not a lower-case UUID v4", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Storage, database, credential or permission backend unavailable", body = ErrorBody),
    ),
)]
pub async fn delete_file(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    FileIdPath(id): FileIdPath,
    Requester(facts): Requester,
) -> Result<StatusCode, ApiError> {
    state
        .services()
        .delete
        .execute(&principal, id, &facts)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /files/upload`: the same upload under its Pneumatic alias.
#[utoipa::path(
    post, path = "/files/upload", tag = "files", operation_id = "upload_file_alias",
    params(UploadQuery),
    request_body(content = crate::dto::UploadForm, content_type = "multipart/form-data"),
    responses(UploadResponses),
)]
pub async fn upload_file_alias(
    state: State<AppState>,
    requester: Requester,
    principal: Authenticated,
    query: Validated<Query<UploadQuery>>,
    request: Request,
) -> Result<Response, ApiError> {
    upload_file(state, requester, principal, query, request).await
}
