//! Authenticated delivery: signed `GET`/`HEAD` of a stored resource, with byte ranges.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use bytes::Bytes;

use super::{Algorithm, Refusal, Reply, Route, Shared};

/// Frames a delivery body is streamed in.
const FRAME: usize = 64 * 1024;

impl Shared {
    pub(super) fn delivery_signature(&self, public_id: &str) -> String {
        let digest = self
            .algorithm
            .digest(format!("{public_id}{}", self.api_secret).as_bytes());
        let length = if self.algorithm == Algorithm::Sha1 {
            8
        } else {
            32
        };
        URL_SAFE.encode(digest)[..length].to_owned()
    }
}

/// A single `bytes=` range of `size` bytes: `None` to ignore it, `Some(None)` when unsatisfiable.
fn parse_range(value: &str, size: u64) -> Option<Option<(u64, u64)>> {
    let (first, last) = value.strip_prefix("bytes=")?.trim().split_once('-')?;
    if first.is_empty() {
        let n: u64 = last.parse().ok()?;
        return Some((n > 0).then(|| (size.saturating_sub(n), size - 1)));
    }
    let first: u64 = first.parse().ok()?;
    let last: u64 = if last.is_empty() {
        u64::MAX
    } else {
        last.parse().ok()?
    };
    if first > last {
        return None;
    }
    Some((first < size).then(|| (first, last.min(size - 1))))
}

pub(super) async fn deliver(
    State(s): State<Arc<Shared>>,
    Path((cloud, resource_type, signature, rest)): Path<(String, String, String, String)>,
    request: Request,
) -> Reply {
    let (parts, _) = request.into_parts();
    s.begin(Route::Delivery, &parts, &cloud, BTreeMap::new(), None)?;
    let public_id = match rest.split_once('/') {
        Some((v, id))
            if v.len() > 1 && v.starts_with('v') && v[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            id
        }
        _ => rest.as_str(),
    };
    let given = signature
        .strip_prefix("s--")
        .and_then(|s| s.strip_suffix("--"));
    if given != Some(s.delivery_signature(public_id).as_str()) {
        return Err(Refusal::Cdn(StatusCode::UNAUTHORIZED, "Invalid signature"));
    }
    let bytes = {
        let store = s.store.lock().unwrap();
        let found = store
            .resources
            .get(&(resource_type.clone(), public_id.to_owned()));
        found.map(|r| (r.bytes.clone(), r.format.clone()))
    };
    let Some((bytes, format)) = bytes else {
        return Err(Refusal::Cdn(StatusCode::NOT_FOUND, "Resource not found"));
    };
    let size = bytes.len() as u64;
    let content_type = match (resource_type.as_str(), format) {
        ("image", Some(format)) => {
            format!("image/{}", if format == "jpg" { "jpeg" } else { &format })
        }
        _ => "application/octet-stream".to_owned(),
    };
    let ignore_ranges = s.store.lock().unwrap().ignore_ranges;
    let range = parts
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| !ignore_ranges)
        .and_then(|v| parse_range(v, size));
    let (status, first, last) = match range {
        None => (StatusCode::OK, 0, size - 1),
        Some(Some((first, last))) => (StatusCode::PARTIAL_CONTENT, first, last),
        Some(None) => {
            return Err(Refusal::Unsatisfiable(size));
        }
    };
    let body = bytes.slice(first as usize..=last as usize);
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {first}-{last}/{size}"),
        );
    }
    let frames: Vec<Result<Bytes, Infallible>> = (0..body.len())
        .step_by(FRAME)
        .map(|i| Ok(body.slice(i..(i + FRAME).min(body.len()))))
        .collect();
    Ok(response
        .body(Body::from_stream(futures_util::stream::iter(frames)))
        .unwrap())
}
