//! The `/files` routes.

use std::time::SystemTime;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use stowage_application::Error;
use stowage_application::ports::ListCursor;
use stowage_application::use_cases::UploadRequest;
use stowage_domain::{ByteRange, FileRecord, RangeOutcome, resolve_range};

use crate::client_limits::ClientAddress;
use crate::dto::{
    DownloadQuery, FileInfoResponse, ListQuery, ListResponse, SignedUrlRequest, SignedUrlResponse,
    UploadQuery,
};
use crate::error::ApiError;
use crate::extract::{ApiQuery, Authenticated, FileIdPath, OptionalJson, Reader};
use crate::headers::{content_disposition, etag_of, if_none_match_matches, if_range_matches};
use crate::state::AppState;
use crate::transfer::guarded_download;
use crate::upload::{check_content_length, file_part};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 1000;
const CACHE_CONTROL: &str = "private, max-age=0, must-revalidate";

/// `POST /files`: one multipart upload.
#[utoipa::path(
    post, path = "/files", tag = "files", operation_id = "upload_file",
    params(UploadQuery),
    request_body(content = crate::dto::UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored; `Location: /files/{file_id}`", body = FileInfoResponse),
        (status = 400, description = "Not multipart, no `file` part, bad query", body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody),
    ),
    security(("bearer" = []), ("guest" = []), ("public" = []), ("cookie_user" = []), ("cookie_guest" = []), ("cookie_public" = []))
)]
pub async fn upload_file(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Authenticated(principal): Authenticated,
    ApiQuery(query): ApiQuery<UploadQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let max_bytes = state.services().upload.max_bytes();
    check_content_length(request.headers(), max_bytes)?;
    let _slot = state.upload_slots().acquire(&client)?;
    let (parts, body) = request.into_parts();
    let part_header_max = state.settings().limits.part_header_max;
    let part = file_part(&parts.headers, body, max_bytes, part_header_max).await?;
    let record = state
        .services()
        .upload
        .execute(UploadRequest {
            principal,
            filename: part.filename,
            declared_type: part.content_type,
            policy: query.policy,
            body: part.body,
            len_hint: part.len_hint,
        })
        .await?;
    metrics::counter!("stowage_upload_bytes_total").increment(record.size());
    let info = FileInfoResponse::from_record(&record, &state.settings().public_url);
    let location = HeaderValue::from_str(&format!("/files/{}", record.id()))
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
        (status = 200, body = ListResponse),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody),
    ),
    security(("bearer" = []), ("guest" = []), ("public" = []), ("cookie_user" = []), ("cookie_guest" = []), ("cookie_public" = []))
)]
pub async fn list_files(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse>, ApiError> {
    let limit = match query.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::validation(format!("limit must be an integer from 1 to {MAX_PAGE}"))
            })?,
    };
    let cursor = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(
            ListCursor::decode(raw).ok_or_else(|| ApiError::validation("cursor is not valid"))?,
        ),
    };
    let page = state
        .services()
        .list
        .execute(&principal, limit, cursor)
        .await?;
    let public_url = &state.settings().public_url;
    Ok(Json(ListResponse {
        items: page
            .items
            .iter()
            .map(|r| FileInfoResponse::from_record(r, public_url))
            .collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}

/// `GET /files/{id}/info`: the file's `FileInfo`.
#[utoipa::path(
    get, path = "/files/{file_id}/info", tag = "files", operation_id = "file_info",
    params(("file_id" = String, Path, description = "Lower-case UUID v4; anything else is 404")),
    responses(
        (status = 200, body = FileInfoResponse),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody),
    ),
    security(("bearer" = []), ("guest" = []), ("public" = []), ("cookie_user" = []), ("cookie_guest" = []), ("cookie_public" = []))
)]
pub async fn file_info(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    FileIdPath(id): FileIdPath,
) -> Result<Json<FileInfoResponse>, ApiError> {
    let record = state.services().info.execute(&principal, id).await?;
    Ok(Json(FileInfoResponse::from_record(
        &record,
        &state.settings().public_url,
    )))
}

/// `DELETE /files/{id}`: removes the record and the blob (the uploading user only).
#[utoipa::path(
    delete, path = "/files/{file_id}", tag = "files", operation_id = "delete_file",
    params(("file_id" = String, Path, description = "Lower-case UUID v4; anything else is 404")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody),
    ),
    security(("bearer" = []), ("guest" = []), ("public" = []), ("cookie_user" = []), ("cookie_guest" = []), ("cookie_public" = []))
)]
pub async fn delete_file(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    FileIdPath(id): FileIdPath,
) -> Result<StatusCode, ApiError> {
    state.services().delete.execute(&principal, id).await?;
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
        (status = 200, description = "The whole file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "One range, with `Content-Range`", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 304, description = "Not modified"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 416, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody),
    ),
    security(("bearer" = []), ("guest" = []), ("public" = []), ("cookie_user" = []), ("cookie_guest" = []), ("cookie_public" = []), ("signed_url" = []))
)]
pub async fn download_file(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    method: Method,
    reader: Reader,
    FileIdPath(id): FileIdPath,
    ApiQuery(query): ApiQuery<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let inline = match query.disposition.as_deref() {
        None | Some("attachment") => false,
        Some("inline") => true,
        Some(_) => {
            return Err(ApiError::validation(
                "disposition must be 'attachment' or 'inline'",
            ));
        }
    };
    let download = &state.services().download;
    let record = match reader {
        Reader::Principal(principal) => download.authorize(&principal, id).await?,
        Reader::Signed { expires, signature } => {
            download.authorize_signed(id, expires, &signature).await?
        }
    };
    let download = Download {
        use_case: download,
        state: &state,
        client: &client,
    };
    serve(&download, &record, &method, &headers, inline).await
}

/// What serving one download needs beside the record and the request.
struct Download<'a> {
    use_case: &'a stowage_application::use_cases::DownloadFile,
    state: &'a AppState,
    client: &'a str,
}

/// `POST /files/{id}/signed-url`: a URL that grants GET/HEAD of the file until it expires.
#[utoipa::path(
    post, path = "/files/{file_id}/signed-url", tag = "files", operation_id = "create_signed_url",
    params(("file_id" = String, Path, description = "Lower-case UUID v4; anything else is 404")),
    request_body(content = Option<SignedUrlRequest>, description = "`expires_in` seconds, 1 to 604800 (default 3600)"),
    responses(
        (status = 200, body = SignedUrlResponse),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody),
    ),
    security(("bearer" = []), ("guest" = []), ("public" = []), ("cookie_user" = []), ("cookie_guest" = []), ("cookie_public" = []))
)]
pub async fn create_signed_url(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    FileIdPath(id): FileIdPath,
    OptionalJson(body): OptionalJson<SignedUrlRequest>,
) -> Result<Json<SignedUrlResponse>, ApiError> {
    let lifetime = std::time::Duration::from_secs(body.expires_in.unwrap_or(3600));
    let signed = state
        .services()
        .signed_url
        .execute(&principal, id, lifetime)
        .await?;
    let expires_at = signed
        .expires_at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| ApiError::App(Error::Internal(Box::new(e))))?;
    Ok(Json(SignedUrlResponse {
        url: format!(
            "{}/files/{id}?expires={}&signature={}",
            state.settings().public_url,
            signed.expires,
            signed.signature
        ),
        expires_at,
    }))
}

async fn serve(
    download: &Download<'_>,
    record: &FileRecord,
    method: &Method,
    headers: &HeaderMap,
    inline: bool,
) -> Result<Response, ApiError> {
    let etag = etag_of(&record.sha256().to_hex());
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
        .header(header::CACHE_CONTROL, CACHE_CONTROL)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if let Some(date) = &last_modified {
        response = response.header(header::LAST_MODIFIED, date);
    }

    if header_str(header::IF_NONE_MATCH).is_some_and(|h| if_none_match_matches(h, &etag)) {
        return build(response.status(StatusCode::NOT_MODIFIED), Body::empty());
    }

    let size = record.size();
    let range = match header_str(header::RANGE) {
        Some(range)
            if header_str(header::IF_RANGE)
                .is_none_or(|h| if_range_matches(h, &etag, last_modified.as_deref())) =>
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
    let slot = download.state.download_slots().acquire(download.client)?;
    let blob = download.use_case.open(record, range).await?;
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
    responses(
        (status = 201, description = "Stored; `Location: /files/{file_id}`", body = FileInfoResponse),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody),
        (status = 429, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody),
    ),
    security(("bearer" = []), ("guest" = []), ("public" = []), ("cookie_user" = []), ("cookie_guest" = []), ("cookie_public" = []))
)]
pub async fn upload_file_alias(
    state: State<AppState>,
    client: ClientAddress,
    principal: Authenticated,
    query: ApiQuery<UploadQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    upload_file(state, client, principal, query, request).await
}
