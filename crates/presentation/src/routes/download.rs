//! Downloads: a file's bytes (whole, ranged, conditional) or an image variant of them, to a
//! credential, a signed URL or, for a public file, anyone; and the signed URLs themselves.

use std::time::SystemTime;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::response::Builder;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use stowage_application::Error;
use stowage_application::events::RequestFacts;
use stowage_application::stream::ByteStream;
use stowage_domain::image::variant::VariantParams;
use stowage_domain::{ByteRange, FileRecord, Principal, RangeOutcome, resolve_range};

use super::variants::{requested, serve_variant};
use crate::client_limits::{Requester, Slot, requester_address};
use crate::dto::{
    DEFAULT_SIGNED_URL_SECONDS, Disposition, DownloadQuery, FileBytes, SignedUrlRequest,
    SignedUrlResponse,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Authenticated, FileIdPath, Reader};
use crate::headers::{content_disposition, etag_of, if_none_match_matches, if_range_matches};
use crate::state::AppState;
use crate::transfer::guarded_download;
use crate::validated::Validated;

const CACHE_CONTROL: &str = "private, max-age=0, must-revalidate";
/// A public file's bytes never change and anyone may read them: any cache may keep them a year.
const PUBLIC_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

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
        (status = 400, description = "`disposition` or a variant parameter not valid", body = ErrorBody),
        (status = 401, description = "No valid credential and no signed URL", body = ErrorBody),
        (status = 403, description = "Access refused, or the signed URL is invalid or has expired", body = ErrorBody),
        (status = 404, description = "No such file, or the id is not a lower-case UUID v4", body = ErrorBody),
        (status = 416, description = "The range starts at or past the end of the file", body = ErrorBody,
            headers(("Content-Range" = String, description = "`bytes */size`"))),
        (status = 422, description = "A variant of a file that is not a decodable image (`UNSUPPORTED_IMAGE`), or of one over the image limits (`IMAGE_TOO_LARGE`)", body = ErrorBody),
        (status = 429, description = "Rate limited, or too many downloads in flight from this client", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 501, description = "A variant format this deployment cannot write (`avif`)", body = ErrorBody),
        (status = 503, description = "Storage, database, credential or permission backend unavailable, or too many variants being made (`SERVICE_BUSY`, with `Retry-After`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait, when busy"))),
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
    let use_case = &state.services().download;
    let mut download = Download {
        use_case,
        state: &state,
        reader: None,
        facts: &facts,
        cache_control: CACHE_CONTROL,
    };
    // A bad query is answered before the file is looked up, except without a credential: then
    // only a public file is told apart from the rest (401 for all else).
    let (record, principal, query, variant) = match reader {
        Reader::Principal(principal) => {
            let Validated(Query(query)) = query?;
            let variant = requested(&download, &query.variant_params())?;
            let record = use_case.authorize(&principal, id, &facts).await?;
            (record, Some(principal), query, variant)
        }
        Reader::Signed { expires, signature } => {
            let Validated(Query(query)) = query?;
            // A signed URL is issued with valid parameters: one that fails to parse was changed.
            let variant = requested(&download, &query.variant_params())
                .map_err(|_| ApiError::App(Error::InvalidSignature))?;
            // The variant's parameters are signed too: none can be added or changed.
            let scope = variant.as_ref().map_or("", |v| v.canonical.as_str());
            let record = use_case
                .authorize_signed(id, expires, scope, &signature)
                .await?;
            (record, None, query, variant)
        }
        Reader::Anonymous => {
            let record = use_case.authorize_anonymous(id).await?;
            let Validated(Query(query)) = query?;
            let variant = requested(&download, &query.variant_params())?;
            (record, None, query, variant)
        }
    };
    let inline = query.disposition == Some(Disposition::Inline);
    if record.is_public() {
        download.cache_control = PUBLIC_CACHE_CONTROL;
    }
    download.reader = principal.as_ref();
    match variant {
        Some(variant) => {
            serve_variant(&download, &record, &variant, &method, &headers, inline).await
        }
        None => serve(&download, &record, &method, &headers, inline).await,
    }
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

impl Download<'_> {
    /// The headers every download answer carries, the file's or a variant's.
    pub(super) fn head(&self, etag: &str, last_modified: Option<&str>) -> Builder {
        let response = Response::builder()
            .header(header::ETAG, etag)
            .header(header::CACHE_CONTROL, self.cache_control)
            .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        match last_modified {
            Some(date) => response.header(header::LAST_MODIFIED, date),
            None => response,
        }
    }

    /// One of the client's download slots, taken before the bytes are opened.
    ///
    /// # Errors
    /// `429` when the client has as many downloads in flight as it may.
    pub(super) fn slot(&self) -> Result<Slot, ApiError> {
        self.state
            .download_slots()
            .acquire(requester_address(self.facts))
    }

    /// The body streaming `bytes`: counted, holding `slot` until done, and cut off when the
    /// client stops reading.
    pub(super) fn body(&self, bytes: ByteStream, slot: Slot) -> Body {
        let sent = metrics::counter!("stowage_download_bytes_total");
        let counted = bytes.inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                sent.increment(bytes.len() as u64);
            }
        });
        let stall = self.state.settings().limits.response_stall_timeout;
        guarded_download(counted.boxed(), slot, stall)
    }
}

/// A file's `Last-Modified`. HTTP dates cover 1970 to 9999 (the formatter panics outside); a
/// stored time outside that range, only possible in imported data, simply gets none.
pub(super) fn last_modified(record: &FileRecord) -> Option<String> {
    (1970..=9999)
        .contains(&record.created_at().year())
        .then(|| httpdate::fmt_http_date(SystemTime::from(record.created_at())))
}

/// Whether the request's `If-None-Match` names one of `etags`.
pub(super) fn not_modified(headers: &HeaderMap, etags: &[&str]) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|h| etags.iter().any(|etag| if_none_match_matches(h, etag)))
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
    let (w, h, q) = (
        body.w.map(|v| v.to_string()),
        body.h.map(|v| v.to_string()),
        body.q.map(|v| v.to_string()),
    );
    let params = VariantParams {
        w: w.as_deref(),
        h: h.as_deref(),
        fit: body.fit.as_deref(),
        format: body.format.as_deref(),
        q: q.as_deref(),
        variant: body.variant.as_deref(),
    };
    let variant = state.services().variants.parse(&params)?;
    let scope = variant.as_ref().map_or("", |v| v.canonical.as_str());
    let signed = state
        .services()
        .signed_url
        .execute(&principal, id, lifetime, scope, &facts)
        .await?;
    let (url, expires_at) = signed_url_of(&state.settings().files_url, id, scope, &signed)?;
    Ok(Json(SignedUrlResponse { url, expires_at }))
}

/// The URL of a signed grant for `id` (with the variant parameters `scope` it was signed with,
/// empty for the file itself) and its expiry in RFC 3339.
pub(super) fn signed_url_of(
    files_url: &str,
    id: stowage_domain::FileId,
    scope: &str,
    signed: &stowage_application::use_cases::SignedUrl,
) -> Result<(String, String), ApiError> {
    let expires_at = signed
        .expires_at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| ApiError::App(Error::Internal(Box::new(e))))?;
    // The canonical parameters are URL-safe: digits and the lower-case names of the contract.
    let variant = if scope.is_empty() {
        String::new()
    } else {
        format!("{scope}&")
    };
    let url = format!(
        "{files_url}/{id}?{variant}expires={}&signature={}",
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
    let last_modified = last_modified(record);
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };

    let mut response = download.head(&etag, last_modified.as_deref());
    if not_modified(headers, &[&etag, &id_etag]) {
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
    let slot = download.slot()?;
    let blob = download
        .use_case
        .open(record, range, download.reader, download.facts)
        .await?;
    build(response, download.body(blob.stream, slot))
}

/// The response, or a `500` when a header value could not be set.
pub(super) fn build(builder: Builder, body: Body) -> Result<Response, ApiError> {
    builder
        .body(body)
        .map_err(|e| ApiError::App(Error::Internal(Box::new(e))))
}
