//! Resumable uploads over tus 1.0.0 (`/files/tus`): core, creation, creation-with-upload,
//! creation-defer-length, termination, checksum, expiration and concatenation. Protocol errors
//! use the contract's JSON error shape; every answer carries `Tus-Resumable`.

pub(crate) mod headers;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use stowage_application::Error;
use stowage_application::ports::ResumableId;
use stowage_application::use_cases::{
    AppendBody, AppendResumable, CreateResumable, ResumableStatus, ResumableUploads,
};

use self::headers::{
    OFFSET_OCTET_STREAM, TUS_RESUMABLE, TUS_VERSION, concat_of, creation_length, describe,
    optional_number, required_number, upload_checksum,
};
use crate::client_limits::{Requester, Slot, requester_address};
use crate::dto::{RawFileBody, TusVersion};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Authenticated;
use crate::state::AppState;
use crate::upload::{raw_body, stated_length};

/// Every answer of a tus route, errors included, with `Tus-Resumable`.
fn tus(result: Result<Response, ApiError>) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    let headers = response.headers_mut();
    headers.insert(TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    // tus: a 412 names the versions the server speaks.
    if response.status() == StatusCode::PRECONDITION_FAILED {
        response
            .headers_mut()
            .insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    }
    response
}

/// Runs the future `work` makes on a task of its own, which goes on when the client is gone: a
/// body cut off still commits what arrived, and the client's upload `slot` is held until the
/// work is done. Counts the bytes of a file it completed, as every upload does.
async fn detached<F, Fut>(
    state: &AppState,
    slot: Option<Slot>,
    work: F,
) -> Result<ResumableStatus, ApiError>
where
    F: FnOnce(AppState) -> Fut,
    Fut: std::future::Future<Output = Result<ResumableStatus, Error>> + Send + 'static,
{
    let task = work(state.clone());
    let status = tokio::spawn(async move {
        let _slot = slot;
        task.await
    })
    .await
    .map_err(|e| ApiError::App(Error::Internal(Box::new(e))))??;
    if let Some(file) = &status.file {
        metrics::counter!("stowage_upload_bytes_total").increment(file.size());
    }
    Ok(status)
}

fn service(state: &AppState) -> Result<&ResumableUploads, Error> {
    state.services().resumable.as_ref().ok_or_else(|| {
        Error::NotSupported("resumable uploads need STORAGE_BACKEND=fs, s3 or memory".to_owned())
    })
}

/// A tus request must speak tus 1.0.0.
fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(TUS_RESUMABLE).map(HeaderValue::as_bytes) {
        Some(version) if version == TUS_VERSION.as_bytes() => Ok(()),
        _ => Err(ApiError::TusVersionUnsupported),
    }
}

fn upload_id(id: Result<Path<String>, PathRejection>) -> Result<ResumableId, ApiError> {
    id.ok()
        .and_then(|Path(id)| ResumableId::parse(&id))
        .ok_or(ApiError::App(Error::UploadNotFound))
}

/// The body of a request that brings bytes (`PATCH`, creation-with-upload): only as
/// `application/offset+octet-stream`.
fn bytes_of(headers: &HeaderMap, body: axum::body::Body) -> Result<AppendBody, ApiError> {
    let octets = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
        });
    if !octets {
        return Err(ApiError::App(Error::UnsupportedMediaType(format!(
            "tus bytes are sent as {OFFSET_OCTET_STREAM}"
        ))));
    }
    Ok(AppendBody {
        bytes: raw_body(body),
        length: stated_length(headers)?,
        checksum: upload_checksum(headers)?,
    })
}

/// `OPTIONS /files/tus`: what this server speaks; no credential needed.
#[utoipa::path(
    options, path = "/files/tus", tag = "tus", operation_id = "tus_options",
    responses((status = 204, description = "`Tus-Version`, `Tus-Extension`, `Tus-Max-Size`, `Tus-Checksum-Algorithm`")),
)]
pub async fn tus_options(State(state): State<AppState>) -> Response {
    let max = state
        .services()
        .resumable
        .as_ref()
        .map(ResumableUploads::max_bytes);
    tus(Ok(headers::capabilities(max)))
}

/// `POST /files/tus`: creates an upload; with `application/offset+octet-stream` bytes, appends
/// them at once; with `Upload-Concat: final;…`, joins complete partial uploads into a file.
#[utoipa::path(
    post, path = "/files/tus", tag = "tus", operation_id = "tus_create",
    params(
        ("Tus-Resumable" = TusVersion, Header, description = "The tus version spoken"),
        ("Upload-Length" = Option<u64>, Header, description = "The upload's length in bytes"),
        ("Upload-Defer-Length" = Option<u8>, Header, description = "`1`: the length comes with a later `PATCH`"),
        ("Upload-Metadata" = Option<String>, Header, description = "`filename`, `filetype` (or `contentType`), `policy`, `key`, `visibility`, values in base64"),
        ("Upload-Concat" = Option<String>, Header, description = "`partial`, or `final;<url> <url> …`"),
        ("Upload-Checksum" = Option<String>, Header, description = "`<sha1|sha256|md5> <base64>` of the bytes sent with the creation"),
    ),
    request_body(content = RawFileBody, content_type = "application/offset+octet-stream",
        description = "Optional: the upload's first bytes"),
    responses(
        (status = 201, description = "Created: `Location` is the upload's URL; `Upload-Offset`, `Upload-Expires`; `Stowage-File-Id` and `Stowage-File-Url` when the file is complete"),
        (status = 400, description = "No or both of `Upload-Length` and `Upload-Defer-Length`, bad metadata, an unknown policy, a bad `Upload-Concat` or `Upload-Checksum`", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 409, description = "The key belongs to a file the caller may not replace", body = ErrorBody),
        (status = 412, description = "No `Tus-Resumable: 1.0.0`", body = ErrorBody),
        (status = 413, description = "`Upload-Length` over the upload limit (or the policy's)", body = ErrorBody),
        (status = 415, description = "Bytes not sent as `application/offset+octet-stream`, or refused by the policy", body = ErrorBody),
        (status = 422, description = "`IMAGE_TOO_LARGE` or `UNSUPPORTED_IMAGE`: an image the policy refuses by its header (the upload is over)", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody),
        (status = 460, description = "The bytes do not match `Upload-Checksum`", body = ErrorBody),
        (status = 501, description = "The storage backend keeps no unfinished uploads", body = ErrorBody),
        (status = 503, description = "Storage or database unavailable", body = ErrorBody),
    ),
)]
pub async fn tus_create(
    State(state): State<AppState>,
    principal: Result<Authenticated, ApiError>,
    Requester(facts): Requester,
    request: Request,
) -> Response {
    tus(create(state, principal, facts, request).await)
}

async fn create(
    state: AppState,
    principal: Result<Authenticated, ApiError>,
    facts: stowage_application::events::RequestFacts,
    request: Request,
) -> Result<Response, ApiError> {
    let Authenticated(principal) = principal?;
    let (parts, body) = request.into_parts();
    check_version(&parts.headers)?;
    service(&state)?;
    let concat = concat_of(&parts.headers)?;
    let length = creation_length(&parts.headers, concat.as_ref())?;
    let metadata = headers::text(&parts.headers, "upload-metadata")?;
    let has_body = parts.headers.contains_key(header::TRANSFER_ENCODING)
        || stated_length(&parts.headers)?.is_some_and(|len| len > 0);
    let body = if has_body {
        Some(bytes_of(&parts.headers, body)?)
    } else {
        None
    };
    let slot = match body {
        Some(_) => Some(state.upload_slots().acquire(requester_address(&facts))?),
        None => None,
    };
    let create = CreateResumable {
        principal,
        length,
        metadata,
        concat,
        body,
        request: facts,
    };
    let status = detached(&state, slot, |state| async move {
        service(&state)?.create(create).await
    })
    .await?;
    let mut response = describe(&state, &status, StatusCode::CREATED)?;
    let location = format!("{}/tus/{}", state.settings().files_url, status.id);
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location)
            .map_err(|e| ApiError::App(Error::Internal(Box::new(e))))?,
    );
    Ok(response)
}

/// `HEAD /files/tus/{upload_id}`: where the upload stands.
#[utoipa::path(
    head, path = "/files/tus/{upload_id}", tag = "tus", operation_id = "tus_status",
    params(
        ("upload_id" = String, Path, description = "The upload's id, from its `Location`"),
        ("Tus-Resumable" = TusVersion, Header, description = "The tus version spoken"),
    ),
    responses(
        (status = 200, description = "`Upload-Offset`, `Upload-Length` (or `Upload-Defer-Length: 1`), `Upload-Metadata`, `Upload-Concat`, `Upload-Expires`"),
        (status = 401, description = "No valid credential"),
        (status = 404, description = "No such upload for this caller"),
        (status = 410, description = "The upload expired"),
        (status = 412, description = "No `Tus-Resumable: 1.0.0`"),
    ),
)]
pub async fn tus_status(
    State(state): State<AppState>,
    principal: Result<Authenticated, ApiError>,
    Requester(facts): Requester,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    tus(async {
        let Authenticated(principal) = principal?;
        check_version(&headers)?;
        let id = upload_id(id)?;
        let status = service(&state)?.status(&principal, id, &facts).await?;
        let mut response = describe(&state, &status, StatusCode::OK)?;
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        Ok(response)
    }
    .await)
}

/// `PATCH /files/tus/{upload_id}`: the next bytes, at `Upload-Offset`.
#[utoipa::path(
    patch, path = "/files/tus/{upload_id}", tag = "tus", operation_id = "tus_append",
    params(
        ("upload_id" = String, Path, description = "The upload's id, from its `Location`"),
        ("Tus-Resumable" = TusVersion, Header, description = "The tus version spoken"),
        ("Upload-Offset" = u64, Header, description = "The offset the bytes start at: the upload's offset"),
        ("Upload-Length" = Option<u64>, Header, description = "The length of an upload created with `Upload-Defer-Length`"),
        ("Upload-Checksum" = Option<String>, Header, description = "`<sha1|sha256|md5> <base64>` of this request's bytes"),
    ),
    request_body(content = RawFileBody, content_type = "application/offset+octet-stream"),
    responses(
        (status = 204, description = "Kept: the new `Upload-Offset`, `Upload-Expires`; `Stowage-File-Id` and `Stowage-File-Url` when the file is complete"),
        (status = 400, description = "No or a bad `Upload-Offset`, a changed `Upload-Length`, a bad `Upload-Checksum`", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "A final concatenation takes no bytes", body = ErrorBody),
        (status = 404, description = "No such upload for this caller", body = ErrorBody),
        (status = 409, description = "`UPLOAD_OFFSET_MISMATCH`, or `UPLOAD_LOCKED` while another request writes the upload", body = ErrorBody),
        (status = 410, description = "The upload expired", body = ErrorBody),
        (status = 412, description = "No `Tus-Resumable: 1.0.0`", body = ErrorBody),
        (status = 413, description = "More bytes than the upload's length (or the limit)", body = ErrorBody),
        (status = 415, description = "Not `application/offset+octet-stream`, or the file refused by the policy", body = ErrorBody),
        (status = 422, description = "`IMAGE_TOO_LARGE` or `UNSUPPORTED_IMAGE`: an image the policy refuses by its header (the upload is over)", body = ErrorBody),
        (status = 460, description = "The bytes do not match `Upload-Checksum`; nothing was kept", body = ErrorBody),
        (status = 503, description = "Storage or database unavailable", body = ErrorBody),
    ),
)]
pub async fn tus_append(
    State(state): State<AppState>,
    principal: Result<Authenticated, ApiError>,
    Requester(facts): Requester,
    id: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    tus(append(state, principal, facts, id, request).await)
}

async fn append(
    state: AppState,
    principal: Result<Authenticated, ApiError>,
    facts: stowage_application::events::RequestFacts,
    id: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Authenticated(principal) = principal?;
    let (parts, body) = request.into_parts();
    check_version(&parts.headers)?;
    service(&state)?;
    let id = upload_id(id)?;
    let offset = required_number(&parts.headers, "upload-offset")?;
    let length = optional_number(&parts.headers, "upload-length")?;
    let body = bytes_of(&parts.headers, body)?;
    let slot = state.upload_slots().acquire(requester_address(&facts))?;
    let append = AppendResumable {
        principal,
        id,
        offset,
        length,
        body,
        request: facts,
    };
    let status = detached(&state, Some(slot), |state| async move {
        service(&state)?.append(append).await
    })
    .await?;
    describe(&state, &status, StatusCode::NO_CONTENT)
}

/// `DELETE /files/tus/{upload_id}`: ends the upload and drops its bytes.
#[utoipa::path(
    delete, path = "/files/tus/{upload_id}", tag = "tus", operation_id = "tus_terminate",
    params(
        ("upload_id" = String, Path, description = "The upload's id, from its `Location`"),
        ("Tus-Resumable" = TusVersion, Header, description = "The tus version spoken"),
    ),
    responses(
        (status = 204, description = "Ended; a completed upload's file stays"),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 404, description = "No such upload for this caller", body = ErrorBody),
        (status = 409, description = "Another request is writing the upload", body = ErrorBody),
        (status = 412, description = "No `Tus-Resumable: 1.0.0`", body = ErrorBody),
    ),
)]
pub async fn tus_terminate(
    State(state): State<AppState>,
    principal: Result<Authenticated, ApiError>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    tus(async {
        let Authenticated(principal) = principal?;
        check_version(&headers)?;
        let id = upload_id(id)?;
        service(&state)?.terminate(&principal, id).await?;
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await)
}

/// `OPTIONS /files/tus/{upload_id}`: as `OPTIONS /files/tus`.
#[utoipa::path(
    options, path = "/files/tus/{upload_id}", tag = "tus", operation_id = "tus_upload_options",
    params(("upload_id" = String, Path, description = "The upload's id")),
    responses((status = 204, description = "As `OPTIONS /files/tus`")),
)]
pub async fn tus_upload_options(state: State<AppState>) -> Response {
    tus_options(state).await
}
