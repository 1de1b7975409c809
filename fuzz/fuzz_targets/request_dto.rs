//! Query strings and JSON control bodies as the handlers receive them: through the public
//! `Validated<Query<T>>` and `Validated<Json<T>>` extractors, deserialised and then validated, for
//! every request DTO. What is accepted keeps the DTO's documented bounds.
//!
//! Input: a mode byte choosing the DTO (`mode % 10`), then the query string (modes 0 to 3) or
//! the body (modes 4 to 9).

#![no_main]

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::Uri;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use stowage_presentation::dto::{
    CompleteDirectUploadRequest, DirectUploadRequest, DownloadQuery, FilePatchRequest,
    KeyDownloadQuery, ListQuery, MAX_PAGE, SignedUrlRequest, SignedUrlsRequest, UploadQuery,
    UploadUrlRequest,
};
use stowage_presentation::validated::Validated;
use validator::Validate;

const MAX_SIGNED_URL_SECONDS: i64 = 604_800;

fn query<T: DeserializeOwned + Validate + Send>(raw: &[u8]) -> Option<T> {
    let uri: Uri = format!("/files?{}", String::from_utf8_lossy(raw))
        .parse()
        .ok()?;
    let request = Request::builder().uri(uri).body(()).ok()?;
    let (mut parts, ()) = request.into_parts();
    let extracted = stowage_fuzz::ready(Validated::<Query<T>>::from_request_parts(&mut parts, &()));
    let Some(extracted) = extracted else {
        panic!("a query extractor waited");
    };
    extracted.ok().map(|Validated(Query(value))| value)
}

fn body<T: DeserializeOwned + Validate + Default + Send>(raw: &[u8]) -> Option<T> {
    let request = Request::builder()
        .method("POST")
        .uri("/files")
        .body(Body::from(raw.to_vec()))
        .ok()?;
    let Some(extracted) = stowage_fuzz::ready(Validated::<Json<T>>::from_request(request, &()))
    else {
        panic!("a JSON extractor waited over an in-memory body");
    };
    extracted.ok().map(|Validated(Json(value))| value)
}

fn lifetime_in_bounds(expires_in: Option<i64>) {
    assert!(
        expires_in.is_none_or(|s| (1..=MAX_SIGNED_URL_SECONDS).contains(&s)),
        "{expires_in:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, raw)) = data.split_first() else {
        return;
    };
    match mode % 10 {
        0 => {
            if let Some(list) = query::<ListQuery>(raw) {
                assert!(
                    list.limit.is_none_or(|l| (1..=MAX_PAGE).contains(&l)),
                    "{list:?}"
                );
                assert!(
                    list.prefix
                        .as_ref()
                        .is_none_or(|p| (1..=512).contains(&p.len())),
                    "{list:?}"
                );
            }
        }
        1 => {
            let _ = query::<UploadQuery>(raw);
        }
        2 => {
            let _ = query::<DownloadQuery>(raw);
        }
        3 => {
            let _ = query::<KeyDownloadQuery>(raw);
        }
        4 => {
            if let Some(request) = body::<SignedUrlRequest>(raw) {
                lifetime_in_bounds(request.expires_in);
            }
        }
        5 => {
            if let Some(request) = body::<SignedUrlsRequest>(raw) {
                assert!((1..=100).contains(&request.file_ids.len()), "{request:?}");
                lifetime_in_bounds(request.expires_in);
            }
        }
        6 => {
            let _ = body::<FilePatchRequest>(raw);
        }
        7 => {
            if let Some(request) = body::<UploadUrlRequest>(raw) {
                assert!(request.expires_in.is_none_or(|s| (1..=86_400).contains(&s)));
                assert!(request.max_bytes.is_none_or(|m| m >= 1));
            }
        }
        8 => {
            if let Some(request) = body::<DirectUploadRequest>(raw) {
                assert!((1..=1024).contains(&request.filename.chars().count()));
                assert!((1..=255).contains(&request.content_type.chars().count()));
                assert!(request.expires_in.is_none_or(|s| (1..=86_400).contains(&s)));
            }
        }
        _ => {
            let _ = body::<CompleteDirectUploadRequest>(raw);
        }
    }
});
