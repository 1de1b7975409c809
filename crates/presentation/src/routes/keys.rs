//! The key routes: a file addressed by its key in the caller's account, and signed URLs by the
//! batch.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use stowage_application::events::RequestFacts;
use stowage_domain::{FileId, FileKey, Metadata};

use super::download::{Download, serve, signed_url_of};
use super::variants::{requested, serve_variant};
use crate::client_limits::Requester;
use crate::dto::{
    DEFAULT_SIGNED_URL_SECONDS, Disposition, FileBytes, FileInfoResponse, KeyDownloadQuery,
    SignedUrlItem, SignedUrlItemError, SignedUrlsRequest, SignedUrlsResponse,
};
use crate::error::{ApiError, ErrorBody, ErrorInfo};
use crate::extract::{Authenticated, FileKeyPath};
use crate::state::AppState;
use crate::validated::Validated;

/// A key may move to another file at any time: a cache must ask again before each use.
const BY_KEY_CACHE_CONTROL: &str = "private, no-cache";

/// An upload's key and metadata, from the query string or the form (not both).
#[derive(Debug, Default)]
pub(super) struct Labels {
    pub(super) key: Option<FileKey>,
    pub(super) metadata: Option<Metadata>,
}

impl Labels {
    /// Checks the raw texts against the key and metadata rules.
    ///
    /// # Errors
    /// `400 VALIDATION_ERROR` with the rule broken.
    pub(super) fn parse(key: Option<&str>, metadata: Option<&str>) -> Result<Self, ApiError> {
        let invalid = |e: stowage_domain::InvalidKey| ApiError::validation(e.to_string());
        Ok(Labels {
            key: key.map(FileKey::parse).transpose().map_err(invalid)?,
            metadata: metadata.map(Metadata::parse).transpose().map_err(invalid)?,
        })
    }

    /// These (from the query string) with the form's parts.
    ///
    /// # Errors
    /// `400 VALIDATION_ERROR` when a part breaks its rule or repeats a query parameter.
    pub(super) fn with_form(
        self,
        key: Option<&str>,
        metadata: Option<&str>,
    ) -> Result<Self, ApiError> {
        let form = Labels::parse(key, metadata)?;
        let twice = |name: &str| {
            ApiError::validation(format!(
                "{name} is given both as a query parameter and as a form field"
            ))
        };
        if self.key.is_some() && form.key.is_some() {
            return Err(twice("key"));
        }
        if self.metadata.is_some() && form.metadata.is_some() {
            return Err(twice("metadata"));
        }
        Ok(Labels {
            key: self.key.or(form.key),
            metadata: self.metadata.or(form.metadata),
        })
    }
}

/// `GET`/`HEAD /files/by-key/{key}`: the bytes of the file holding the key, as by id.
#[utoipa::path(
    method(get, head), path = "/files/by-key/{*key}", tag = "files", operation_id = "download_by_key",
    params(
        ("key" = String, Path, description = "The key, percent-encoded UTF-8 (`/` may stay as it is); one that is not a valid key is 404",
            min_length = 1, max_length = 512),
        KeyDownloadQuery,
        ("Range" = Option<String>, Header, description = "`bytes=a-b`, `bytes=a-` or `bytes=-n`"),
        ("If-None-Match" = Option<String>, Header, description = "ETag from a previous answer: 304 when it matches"),
        ("If-Range" = Option<String>, Header, description = "Apply Range only if the ETag still matches"),
    ),
    responses(
        (status = 200, description = "The whole file, under its stored content type (any type)",
            content_type = "*/*", body = FileBytes, headers(
                ("ETag" = String, description = "`\"<sha256>\"`, or `\"<file_id>\"` while the digest is unknown"),
                ("Cache-Control" = String, description = "`private, no-cache`: the key may move to another file"),
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
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "Access refused", body = ErrorBody),
        (status = 404, description = "No file holds the key in the caller's account, or it is not a valid key", body = ErrorBody),
        (status = 416, description = "The range starts at or past the end of the file", body = ErrorBody,
            headers(("Content-Range" = String, description = "`bytes */size`"))),
        (status = 422, description = "A variant of a file that is not a decodable image (`UNSUPPORTED_IMAGE`), or of one over the image limits (`IMAGE_TOO_LARGE`)", body = ErrorBody),
        (status = 429, description = "Rate limited, or too many downloads in flight from this client", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 501, description = "A variant format this deployment cannot write", body = ErrorBody),
        (status = 503, description = "Storage, database, credential or permission backend unavailable, or too many variants being made (`SERVICE_BUSY`, with `Retry-After`)", body = ErrorBody),
    ),
)]
pub async fn download_by_key(
    State(state): State<AppState>,
    Requester(facts): Requester,
    method: Method,
    Authenticated(principal): Authenticated,
    FileKeyPath(key): FileKeyPath,
    Validated(Query(query)): Validated<Query<KeyDownloadQuery>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let inline = query.disposition == Some(Disposition::Inline);
    let use_case = &state.services().download;
    let download = Download {
        use_case,
        state: &state,
        reader: Some(&principal),
        facts: &facts,
        cache_control: BY_KEY_CACHE_CONTROL,
    };
    let variant = requested(&download, &query.variant_params())?;
    let record = use_case.authorize_by_key(&principal, &key, &facts).await?;
    match variant {
        Some(variant) => {
            serve_variant(&download, &record, &variant, &method, &headers, inline).await
        }
        None => serve(&download, &record, &method, &headers, inline).await,
    }
}

/// `GET /files/info/by-key/{key}`: the `FileInfo` of the file holding the key.
#[utoipa::path(
    get, path = "/files/info/by-key/{*key}", tag = "files", operation_id = "file_info_by_key",
    params(("key" = String, Path, description = "The key, percent-encoded UTF-8 (`/` may stay as it is); one that is not a valid key is 404",
        min_length = 1, max_length = 512)),
    responses(
        (status = 200, description = "The file's `FileInfo`", body = FileInfoResponse,
            headers(("Cache-Control" = String, description = "`private, no-cache`: the key may move to another file"))),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "Access refused", body = ErrorBody),
        (status = 404, description = "No file holds the key in the caller's account, or it is not a valid key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Storage, database, credential or permission backend unavailable", body = ErrorBody),
    ),
)]
pub async fn file_info_by_key(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    FileKeyPath(key): FileKeyPath,
    Requester(facts): Requester,
) -> Result<Response, ApiError> {
    let record = state
        .services()
        .info
        .execute_by_key(&principal, &key, &facts)
        .await?;
    let info = FileInfoResponse::from_record(&record, state.settings());
    Ok((
        [(axum::http::header::CACHE_CONTROL, BY_KEY_CACHE_CONTROL)],
        Json(info),
    )
        .into_response())
}

/// `DELETE /files/by-key/{key}`: deletes the file holding the key (the uploading user only).
#[utoipa::path(
    delete, path = "/files/by-key/{*key}", tag = "files", operation_id = "delete_by_key",
    params(("key" = String, Path, description = "The key, percent-encoded UTF-8 (`/` may stay as it is); one that is not a valid key is 404",
        min_length = 1, max_length = 512)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 403, description = "Not the uploading user", body = ErrorBody),
        (status = 404, description = "No file holds the key in the caller's account, or it is not a valid key", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Storage, database, credential or permission backend unavailable", body = ErrorBody),
    ),
)]
pub async fn delete_by_key(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    FileKeyPath(key): FileKeyPath,
    Requester(facts): Requester,
) -> Result<StatusCode, ApiError> {
    state
        .services()
        .delete
        .execute_by_key(&principal, &key, &facts)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /files/signed-urls`: signed URLs for up to 100 files, each id answered on its own.
#[utoipa::path(
    post, path = "/files/signed-urls", tag = "files", operation_id = "create_signed_urls",
    request_body(content = SignedUrlsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One item per id, in order: a URL, or the error the single route would answer", body = SignedUrlsResponse),
        (status = 400, description = "The body is not a `SignedUrlsRequest`: no ids or more than 100, or `expires_in` out of range", body = ErrorBody),
        (status = 401, description = "No valid credential", body = ErrorBody),
        (status = 408, description = "The body stopped arriving for longer than the idle timeout", body = ErrorBody),
        (status = 429, description = "Rate limited", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database, credential or permission backend unavailable", body = ErrorBody),
    ),
)]
pub async fn create_signed_urls(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Requester(facts): Requester,
    Validated(Json(body)): Validated<Json<SignedUrlsRequest>>,
) -> Result<Json<SignedUrlsResponse>, ApiError> {
    let seconds = match body.expires_in {
        None => DEFAULT_SIGNED_URL_SECONDS,
        Some(seconds) => u64::try_from(seconds)
            .map_err(|_| ApiError::validation("expires_in must be from 1 to 604800 seconds"))?,
    };
    let lifetime = std::time::Duration::from_secs(seconds);
    let parsed: Vec<Option<FileId>> = body
        .file_ids
        .iter()
        .map(|raw| FileId::parse(raw).ok())
        .collect();
    let ids: Vec<FileId> = parsed.iter().flatten().copied().collect();
    let mut signed = sign_all(&state, &principal, &ids, lifetime, &facts)
        .await?
        .into_iter();
    let files_url = &state.settings().files_url;
    let mut items = Vec::with_capacity(body.file_ids.len());
    for (raw, id) in body.file_ids.into_iter().zip(parsed) {
        let outcome = match id {
            None => Err(ApiError::App(stowage_application::Error::NotFound)),
            Some(id) => match signed.next() {
                Some(Ok(grant)) => signed_url_of(files_url, id, "", &grant),
                Some(Err(e)) => Err(ApiError::App(e)),
                None => Err(ApiError::App(stowage_application::Error::Internal(
                    "fewer signed URLs than ids".into(),
                ))),
            },
        };
        items.push(match outcome {
            Ok((url, expires_at)) => SignedUrlItem::Signed {
                file_id: raw,
                url,
                expires_at,
            },
            Err(e) => SignedUrlItem::Failed {
                file_id: raw,
                error: item_error(e),
            },
        });
    }
    Ok(Json(SignedUrlsResponse { items }))
}

async fn sign_all(
    state: &AppState,
    principal: &stowage_domain::Principal,
    ids: &[FileId],
    lifetime: std::time::Duration,
    facts: &RequestFacts,
) -> Result<
    Vec<Result<stowage_application::use_cases::SignedUrl, stowage_application::Error>>,
    ApiError,
> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(state
        .services()
        .signed_url
        .execute_many(principal, ids, lifetime, facts)
        .await?)
}

/// The code and message the one error → HTTP table gives `error`.
fn item_error(error: ApiError) -> SignedUrlItemError {
    let response = error.into_response();
    match response.extensions().get::<ErrorInfo>() {
        Some(info) => SignedUrlItemError {
            code: info.code.to_owned(),
            message: info.message.to_owned(),
        },
        None => SignedUrlItemError {
            code: "INTERNAL_ERROR".to_owned(),
            message: "Something went wrong on our side".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::extract::FileKeyPath;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn key_of(path: &str) -> (u16, String) {
        let app: Router = Router::new().route(
            "/files/by-key/{*key}",
            get(|FileKeyPath(key): FileKeyPath| async move { key.as_str().to_owned() }),
        );
        let request = axum::http::Request::builder()
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn the_key_is_the_percent_decoded_tail() {
        assert_eq!(key_of("/files/by-key/a").await, (200, "a".to_owned()));
        assert_eq!(
            key_of("/files/by-key/avatars/7.png").await,
            (200, "avatars/7.png".to_owned())
        );
        assert_eq!(
            key_of("/files/by-key/avatars%2F7.png").await,
            (200, "avatars/7.png".to_owned())
        );
        assert_eq!(
            key_of("/files/by-key/%C3%A9t%C3%A9/%E2%9C%93%20x").await,
            (200, "été/✓ x".to_owned())
        );
        assert_eq!(key_of("/files/by-key/a%25b").await, (200, "a%b".to_owned()));
    }

    #[tokio::test]
    async fn a_tail_that_is_not_a_key_is_not_found() {
        for path in [
            "/files/by-key/a//b",
            "/files/by-key/a/",
            "/files/by-key/a/../b",
            "/files/by-key/a%2F%2Fb",
            "/files/by-key/%2E%2E",
            "/files/by-key/a%0Ab",
            "/files/by-key/%FF",
        ] {
            let (status, body) = key_of(path).await;
            assert_eq!(status, 404, "{path}");
            assert!(body.contains("FILE_NOT_FOUND"), "{path}: {body}");
        }
    }
}
