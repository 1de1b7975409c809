//! The `/files` routes.

use std::time::SystemTime;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use stowage_application::Error;
use stowage_application::events::RequestFacts;
use stowage_application::use_cases::UploadRequest;
use stowage_domain::{ByteRange, FileRecord, Principal, RangeOutcome, resolve_range};

use crate::client_limits::{Requester, requester_address};
use crate::dto::FileBytes;
use crate::dto::{
    DEFAULT_PAGE, DEFAULT_SIGNED_URL_SECONDS, Disposition, DownloadQuery, FileInfoResponse,
    FilePatchRequest, ListQuery, ListResponse, SignedUrlRequest, SignedUrlResponse, UploadQuery,
    VisibilityName,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Authenticated, FileIdPath, Reader};
use crate::headers::{content_disposition, etag_of, if_none_match_matches, if_range_matches};
use crate::state::AppState;
use crate::transfer::guarded_download;
use crate::upload::{check_content_length, file_part};
use crate::validated::Validated;

use super::keys::Labels;

const CACHE_CONTROL: &str = "private, max-age=0, must-revalidate";
/// A public file's bytes never change and anyone may read them: any cache may keep them a year.
const PUBLIC_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

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

/// `GET`/`HEAD /files/{id}`: the bytes, with conditional and range requests; a credential or a signed URL.
#[utoipa::path(
    method(get, head), path = "/files/{file_id}", tag = "files", operation_id = "download_file",
    params(
        ("file_id" = String, Path, description = "Lower-case UUID v4; anything else is 404"),
        DownloadQuery,
        ("Range" = Option<String>, Header, description = "`bytes=a-b`, `bytes=a-` or `bytes=-n`"),
        ("If-None-Match" = Option<String>, Header, description = "ETag from a previous answer: 304 when it matches"),
        ("If-Range" = Option<String>, Header, description = "Apply Range only if the ETag still matches"),
    ),
    responses(
        (status = 200, description = "The whole file, under its stored content type (any type)",
            content_type = "*/*", body = FileBytes, headers(
                ("ETag" = String, description = "`\"<sha256>\"`, or `\"<file_id>\"` while the digest is unknown"),
                ("Content-Disposition" = String, description = "`attachment` (or `inline`), with the file name"),
                ("Accept-Ranges" = String, description = "`bytes`"),
            )),
        (status = 206, description = "One range of the file, under its stored content type (any type)",
            content_type = "*/*", body = FileBytes, headers(
                ("Content-Range" = String, description = "`bytes a-b/size`"),
                ("ETag" = String, description = "`\"<sha256>\"`, or `\"<file_id>\"` while the digest is unknown"),
            )),
        (status = 304, description = "Not modified: `If-None-Match` matches the ETag"),
        (status = 400, description = "`disposition` not valid", body = ErrorBody),
        (status = 401, description = "No valid credential and no signed URL", body = ErrorBody),
        (status = 403, description = "Access refused, or the signed URL is invalid or has expired", body = ErrorBody),
        (status = 404, description = "No such file, or the id is not a lower-case UUID v4", body = ErrorBody),
        (status = 416, description = "The range starts at or past the end of the file", body = ErrorBody,
            headers(("Content-Range" = String, description = "`bytes */size`"))),
        (status = 429, description = "Rate limited, or too many downloads in flight from this client", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Storage, database, credential or permission backend unavailable", body = ErrorBody),
    ),
)]
pub async fn download_file(
    State(state): State<AppState>,
    Requester(facts): Requester,
    method: Method,
    reader: Reader,
    FileIdPath(id): FileIdPath,
    query: Result<Validated<Query<DownloadQuery>>, ApiError>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let download = &state.services().download;
    // A bad query is answered before the file is looked up, except without a credential: then
    // only a public file is told apart from the rest (401 for all else).
    let (record, principal, query) = match reader {
        Reader::Principal(principal) => {
            let query = query?;
            let record = download.authorize(&principal, id, &facts).await?;
            (record, Some(principal), query)
        }
        Reader::Signed { expires, signature } => {
            let query = query?;
            let record = download.authorize_signed(id, expires, &signature).await?;
            (record, None, query)
        }
        Reader::Anonymous => (download.authorize_anonymous(id).await?, None, query?),
    };
    let Validated(Query(query)) = query;
    let inline = query.disposition == Some(Disposition::Inline);
    let cache_control = if record.is_public() {
        PUBLIC_CACHE_CONTROL
    } else {
        CACHE_CONTROL
    };
    let download = Download {
        use_case: download,
        state: &state,
        reader: principal.as_ref(),
        facts: &facts,
        cache_control,
    };
    serve(&download, &record, &method, &headers, inline).await
}

/// What serving one download needs beside the record and the request.
pub(super) struct Download<'a> {
    pub(super) use_case: &'a stowage_application::use_cases::DownloadFile,
    pub(super) state: &'a AppState,
    /// Who reads: `None` for the holder of a signed URL.
    pub(super) reader: Option<&'a Principal>,
    pub(super) facts: &'a RequestFacts,
    /// The `Cache-Control` of the answer.
    pub(super) cache_control: &'static str,
}

/// `POST /files/{id}/signed-url`: a URL that grants GET/HEAD of the file until it expires.
#[utoipa::path(
    post, path = "/files/{file_id}/signed-url", tag = "files", operation_id = "create_signed_url",
    params(("file_id" = String, Path, description = "Lower-case UUID v4; anything else is 404")),
    request_body(content = SignedUrlRequest, content_type = "application/json",
        description = "Optional: an empty body means every default (`null` is refused)"),
    responses(
        (status = 200, description = "The signed URL", body = SignedUrlResponse),
        (status = 400, description = "The body is not a `SignedUrlRequest`, or `expires_in` is out of range", body = ErrorBody),
        (status = 408, description = "The body stopped arriving for longer than the idle timeout", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "Access refused", body = ErrorBody),
        (status = 404, description = "No such file, or the id is not a lower-case UUID v4", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Storage, database, credential or permission backend unavailable", body = ErrorBody),
    ),
)]
pub async fn create_signed_url(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    FileIdPath(id): FileIdPath,
    Requester(facts): Requester,
    Validated(Json(body)): Validated<Json<SignedUrlRequest>>,
) -> Result<Json<SignedUrlResponse>, ApiError> {
    let seconds = match body.expires_in {
        None => DEFAULT_SIGNED_URL_SECONDS,
        // Validated to 1..=604800, so never negative.
        Some(seconds) => u64::try_from(seconds)
            .map_err(|_| ApiError::validation("expires_in must be from 1 to 604800 seconds"))?,
    };
    let lifetime = std::time::Duration::from_secs(seconds);
    let signed = state
        .services()
        .signed_url
        .execute(&principal, id, lifetime, &facts)
        .await?;
    let (url, expires_at) = signed_url_of(&state.settings().files_url, id, &signed)?;
    Ok(Json(SignedUrlResponse { url, expires_at }))
}

/// The URL of a signed grant for `id` and its expiry in RFC 3339.
pub(super) fn signed_url_of(
    files_url: &str,
    id: stowage_domain::FileId,
    signed: &stowage_application::use_cases::SignedUrl,
) -> Result<(String, String), ApiError> {
    let expires_at = signed
        .expires_at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| ApiError::App(Error::Internal(Box::new(e))))?;
    let url = format!(
        "{files_url}/{id}?expires={}&signature={}",
        signed.expires, signed.signature
    );
    Ok((url, expires_at))
}

pub(super) async fn serve(
    download: &Download<'_>,
    record: &FileRecord,
    method: &Method,
    headers: &HeaderMap,
    inline: bool,
) -> Result<Response, ApiError> {
    let etag = etag_of(&record.etag());
    // A legacy file's ETag was its id until its digest was known: the same bytes, still valid.
    let id_etag = etag_of(&record.id().to_string());
    // HTTP dates cover 1970 to 9999 (the formatter panics outside); a stored time outside that
    // range, only possible in imported data, simply gets no Last-Modified.
    let last_modified = (1970..=9999)
        .contains(&record.created_at().year())
        .then(|| httpdate::fmt_http_date(SystemTime::from(record.created_at())));
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };

    let mut response = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, download.cache_control)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if let Some(date) = &last_modified {
        response = response.header(header::LAST_MODIFIED, date);
    }

    if header_str(header::IF_NONE_MATCH)
        .is_some_and(|h| if_none_match_matches(h, &etag) || if_none_match_matches(h, &id_etag))
    {
        return build(response.status(StatusCode::NOT_MODIFIED), Body::empty());
    }

    let size = record.size();
    let range = match header_str(header::RANGE) {
        Some(range)
            if header_str(header::IF_RANGE).is_none_or(|h| {
                if_range_matches(h, &etag, last_modified.as_deref())
                    || if_range_matches(h, &id_etag, None)
            }) =>
        {
            match resolve_range(range, size) {
                RangeOutcome::Full => None,
                RangeOutcome::Partial(r) => Some(r),
                RangeOutcome::Unsatisfiable => {
                    return Err(Error::RangeNotSatisfiable { size }.into());
                }
            }
        }
        _ => None,
    };
    let inline = inline && record.content_type().is_inline_safe();
    response = response
        .header(header::CONTENT_TYPE, record.content_type().as_str())
        .header(header::ACCEPT_RANGES, "bytes")
        .header(
            header::CONTENT_DISPOSITION,
            content_disposition(inline, record.filename()),
        );
    let len = range.map_or(size, |r: ByteRange| r.len());
    response = response.header(header::CONTENT_LENGTH, len);
    if let Some(r) = range {
        response = response.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{size}", r.start(), r.end()),
        );
    }
    if *method == Method::HEAD {
        // The same answer as GET would give: a record whose blob is gone is not found.
        download.use_case.check(record).await?;
        return build(response, Body::empty());
    }
    let slot = download
        .state
        .download_slots()
        .acquire(requester_address(download.facts))?;
    let blob = download
        .use_case
        .open(record, range, download.reader, download.facts)
        .await?;
    let sent = metrics::counter!("stowage_download_bytes_total");
    let counted = futures_util::StreamExt::inspect(blob.stream, move |chunk| {
        if let Ok(bytes) = chunk {
            sent.increment(bytes.len() as u64);
        }
    });
    let stall = download.state.settings().limits.response_stall_timeout;
    build(response, guarded_download(counted.boxed(), slot, stall))
}

fn build(builder: axum::http::response::Builder, body: Body) -> Result<Response, ApiError> {
    builder
        .body(body)
        .map_err(|e| ApiError::App(Error::Internal(Box::new(e))))
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
