//! `GET`/`HEAD /files/{id}?w=&h=&fit=&format=&q=` (or `?variant=NAME`): an image variant, served
//! with its source's access rules and caching.

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use stowage_application::use_cases::ChosenVariant;
use stowage_domain::image::variant::{VariantParams, VariantRequest};
use stowage_domain::{FileRecord, Filename};

use super::download::{Download, build, last_modified, not_modified};
use crate::error::ApiError;
use crate::headers::{content_disposition, etag_of};

/// The variant a download query asks for, `None` for the file itself.
///
/// # Errors
/// `400 VALIDATION_ERROR` naming the parameter at fault.
pub(super) fn requested(
    download: &Download<'_>,
    params: &VariantParams<'_>,
) -> Result<Option<VariantRequest>, ApiError> {
    Ok(download.state.services().variants.parse(params)?)
}

/// Serves the variant `request` of an authorised `record`: `304` on a matching `If-None-Match`
/// before anything is read, else the stored variant, made first when it is not stored yet.
/// Variants are small and made whole, so `Range` is not honoured: the answer is the whole
/// variant, which HTTP allows.
pub(super) async fn serve_variant(
    download: &Download<'_>,
    record: &FileRecord,
    request: &VariantRequest,
    method: &Method,
    headers: &HeaderMap,
    inline: bool,
) -> Result<Response, ApiError> {
    let variants = &download.state.services().variants;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let chosen = variants.choose(record, request.spec, accept)?;
    let etag = etag_of(&chosen.etag(record));
    let mut response = download.head(&etag, last_modified(record).as_deref());
    if chosen.varies_by_accept() {
        response = response.header(header::VARY, "Accept");
    }
    if not_modified(headers, &[&etag]) {
        return build(response.status(StatusCode::NOT_MODIFIED), Body::empty());
    }
    response = response
        .header(header::CONTENT_TYPE, chosen.format.media_type())
        .header(
            header::CONTENT_DISPOSITION,
            content_disposition(inline, &variant_filename(record, &chosen)),
        );
    if *method == Method::HEAD {
        let size = variants.size(record, &chosen).await?;
        return build(response.header(header::CONTENT_LENGTH, size), Body::empty());
    }
    let slot = download.slot()?;
    let body = variants.open(record, &chosen).await?;
    // A variant is a download of the file like any other, for the audit trail.
    download
        .use_case
        .report(record, download.reader, download.facts)
        .await;
    build(
        response.header(header::CONTENT_LENGTH, body.len),
        download.body(body.stream, slot),
    )
}

/// The source's name with the variant's extension: `photo.jpg` → `photo.webp`.
fn variant_filename(record: &FileRecord, chosen: &ChosenVariant) -> Filename {
    let name = record.filename().as_str();
    let stem = match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => name,
    };
    Filename::sanitize(&format!("{stem}.{}", chosen.format.as_str()))
}
