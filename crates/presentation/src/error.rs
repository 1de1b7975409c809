//! The one place that turns errors into HTTP: status, contract code, headers and JSON body.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stowage_application::Error;

/// An error on its way to the client.
#[derive(Debug)]
pub enum ApiError {
    /// A use case's error.
    App(Error),
    /// No route matches the path.
    RouteNotFound,
    /// The path exists, the method does not.
    MethodNotAllowed,
    /// A tus request without `Tus-Resumable: 1.0.0`.
    TusVersionUnsupported,
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::App(e)
    }
}

impl ApiError {
    /// A `400 VALIDATION_ERROR` with `reason` for the client.
    pub fn validation(reason: impl Into<String>) -> Self {
        ApiError::App(Error::Validation(reason.into()))
    }
}

/// What the logging and redirect middleware learn about an error response.
#[derive(Clone, Debug)]
pub struct ErrorInfo {
    /// The contract code, e.g. `FILE_NOT_FOUND`.
    pub code: &'static str,
    /// The human message of the body.
    pub message: &'static str,
    /// The error and its source chain, for logs (and for 5xx bodies when `DEBUG=true`).
    pub chain: String,
}

/// Every error's body.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// Contract code, e.g. `FILE_NOT_FOUND`.
    code: &'a str,
    /// Human text.
    message: &'a str,
    /// More about the cause (never for 5xx unless `DEBUG=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
}

/// `details` of an error body.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Details {
    /// Why, in words for the client.
    pub reason: String,
}

fn chain_of(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Builds the contract's error JSON; `details` only for client errors (5xx details are added by
/// the debug middleware when `DEBUG=true`).
pub fn error_response(
    status: StatusCode,
    code: &'static str,
    message: &str,
    details: Option<String>,
) -> Response {
    let body = ErrorBody {
        code,
        message,
        details: details.map(|reason| Details { reason }),
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, reason): (
            StatusCode,
            &'static str,
            &'static str,
            Option<String>,
        ) = match &self {
            ApiError::RouteNotFound => (StatusCode::NOT_FOUND, "NOT_FOUND", "No such route", None),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "Method not allowed on this route",
                None,
            ),
            ApiError::TusVersionUnsupported => (
                StatusCode::PRECONDITION_FAILED,
                "TUS_VERSION_UNSUPPORTED",
                "This server speaks tus 1.0.0: send Tus-Resumable: 1.0.0",
                None,
            ),
            ApiError::App(e) => match e {
                Error::NotFound => (
                    StatusCode::NOT_FOUND,
                    "FILE_NOT_FOUND",
                    "File not found",
                    None,
                ),
                Error::KeyExists => (
                    StatusCode::CONFLICT,
                    "KEY_EXISTS",
                    "The key belongs to a file you may not replace",
                    None,
                ),
                Error::AccessDenied => (
                    StatusCode::FORBIDDEN,
                    "FILE_ACCESS_DENIED",
                    "Access to this file is denied",
                    None,
                ),
                Error::InvalidSignature => (
                    StatusCode::FORBIDDEN,
                    "INVALID_SIGNATURE",
                    "The signed URL is invalid or has expired",
                    None,
                ),
                Error::Unauthenticated => (
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHENTICATED",
                    "A valid credential is required",
                    None,
                ),
                Error::Validation(reason) => (
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "The request is invalid",
                    Some(reason.clone()),
                ),
                Error::ClientAborted => (
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                    "The request is invalid",
                    Some("the request body ended early".to_owned()),
                ),
                Error::RequestTimeout => (
                    StatusCode::REQUEST_TIMEOUT,
                    "REQUEST_TIMEOUT",
                    "The request body stopped arriving",
                    Some("the client sent nothing for longer than the idle timeout".to_owned()),
                ),
                Error::TooLarge { limit } => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "FILE_TOO_LARGE",
                    "The file is too large",
                    Some(format!("the limit is {limit} bytes")),
                ),
                Error::UnsupportedMediaType(reason) => (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UNSUPPORTED_MEDIA_TYPE",
                    "This type of file is not accepted here",
                    Some(reason.clone()),
                ),
                Error::ImageTooLarge(reason) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "IMAGE_TOO_LARGE",
                    "The image is over the limits",
                    Some(reason.clone()),
                ),
                Error::UnsupportedImage(reason) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "UNSUPPORTED_IMAGE",
                    "The file is not an image that can be read",
                    Some(reason.clone()),
                ),
                Error::RangeNotSatisfiable { .. } => (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "RANGE_NOT_SATISFIABLE",
                    "The requested range is not satisfiable",
                    None,
                ),
                Error::RateLimited { .. } => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "RATE_LIMITED",
                    "Too many requests",
                    None,
                ),
                Error::StorageUnavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "STORAGE_UNAVAILABLE",
                    "File storage is temporarily unavailable",
                    None,
                ),
                Error::StorageFull(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "STORAGE_UNAVAILABLE",
                    "File storage is full: nothing was kept",
                    None,
                ),
                Error::DatabaseUnavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "DATABASE_UNAVAILABLE",
                    "The database is temporarily unavailable",
                    None,
                ),
                Error::AuthBackendUnavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "AUTH_BACKEND_UNAVAILABLE",
                    "Credentials cannot be checked right now",
                    None,
                ),
                Error::PermissionServiceUnavailable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "PERMISSION_SERVICE_UNAVAILABLE",
                    "Permissions cannot be checked right now",
                    None,
                ),
                Error::NotSupported(_) => (
                    StatusCode::NOT_IMPLEMENTED,
                    "NOT_SUPPORTED",
                    "This deployment does not support this (its storage backend or its build)",
                    None,
                ),
                Error::ServiceBusy { .. } => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SERVICE_BUSY",
                    "Too many images are being processed; try again shortly",
                    None,
                ),
                Error::DirectUploadInvalid(reason) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "DIRECT_UPLOAD_INVALID",
                    "The uploaded object is not what was announced",
                    Some(reason.clone()),
                ),
                Error::UploadNotFound => (
                    StatusCode::NOT_FOUND,
                    "UPLOAD_NOT_FOUND",
                    "Upload not found",
                    None,
                ),
                Error::UploadCompleted => (
                    StatusCode::CONFLICT,
                    "UPLOAD_COMPLETED",
                    "The upload was already completed",
                    None,
                ),
                Error::UploadLocked => (
                    StatusCode::CONFLICT,
                    "UPLOAD_LOCKED",
                    "Another request is writing this upload",
                    None,
                ),
                Error::UploadOffsetMismatch { offset } => (
                    StatusCode::CONFLICT,
                    "UPLOAD_OFFSET_MISMATCH",
                    "Upload-Offset differs from the upload's offset",
                    Some(format!("the upload is at offset {offset}")),
                ),
                Error::UploadExpired => (
                    StatusCode::GONE,
                    "UPLOAD_EXPIRED",
                    "The upload has expired",
                    None,
                ),
                Error::ChecksumMismatch => (
                    // tus's checksum extension answers 460, which has no name in HTTP.
                    StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
                    "CHECKSUM_MISMATCH",
                    "The bytes do not match Upload-Checksum; they were not kept",
                    None,
                ),
                Error::Internal(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL_ERROR",
                    "Something went wrong on our side",
                    None,
                ),
            },
        };
        let chain = match &self {
            ApiError::App(e) => chain_of(e),
            ApiError::RouteNotFound => "no such route".to_owned(),
            ApiError::MethodNotAllowed => "method not allowed".to_owned(),
            ApiError::TusVersionUnsupported => "unsupported tus version".to_owned(),
        };
        let mut response = error_response(status, code, message, reason);
        let headers = response.headers_mut();
        match &self {
            ApiError::App(Error::RangeNotSatisfiable { size }) => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
            }
            ApiError::App(Error::RateLimited { retry_after }) => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            ApiError::App(Error::ServiceBusy { retry_after_secs }) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from((*retry_after_secs).max(1)),
                );
            }
            ApiError::App(Error::Unauthenticated) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response.extensions_mut().insert(ErrorInfo {
            code,
            message,
            chain,
        });
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn body_json(response: Response) -> serde_json::Value {
        use futures_util::StreamExt;
        let mut stream = response.into_body().into_data_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn every_error_has_its_status_and_code() {
        let cases: Vec<(Error, u16, &str)> = vec![
            (Error::NotFound, 404, "FILE_NOT_FOUND"),
            (Error::AccessDenied, 403, "FILE_ACCESS_DENIED"),
            (Error::InvalidSignature, 403, "INVALID_SIGNATURE"),
            (Error::Unauthenticated, 401, "UNAUTHENTICATED"),
            (Error::Validation("x".into()), 400, "VALIDATION_ERROR"),
            (Error::ClientAborted, 400, "VALIDATION_ERROR"),
            (Error::RequestTimeout, 408, "REQUEST_TIMEOUT"),
            (Error::TooLarge { limit: 1 }, 413, "FILE_TOO_LARGE"),
            (
                Error::UnsupportedMediaType("x".into()),
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            ),
            (Error::ImageTooLarge("x".into()), 422, "IMAGE_TOO_LARGE"),
            (
                Error::UnsupportedImage("x".into()),
                422,
                "UNSUPPORTED_IMAGE",
            ),
            (
                Error::RangeNotSatisfiable { size: 5 },
                416,
                "RANGE_NOT_SATISFIABLE",
            ),
            (
                Error::RateLimited {
                    retry_after: Duration::from_millis(1500),
                },
                429,
                "RATE_LIMITED",
            ),
            (
                Error::StorageUnavailable("s3 bucket-secret".into()),
                503,
                "STORAGE_UNAVAILABLE",
            ),
            (Error::KeyExists, 409, "KEY_EXISTS"),
            (
                Error::StorageFull("memory store of 100 bytes".into()),
                503,
                "STORAGE_UNAVAILABLE",
            ),
            (
                Error::DatabaseUnavailable("SELECT secret".into()),
                503,
                "DATABASE_UNAVAILABLE",
            ),
            (
                Error::AuthBackendUnavailable("redis".into()),
                503,
                "AUTH_BACKEND_UNAVAILABLE",
            ),
            (
                Error::PermissionServiceUnavailable("x".into()),
                503,
                "PERMISSION_SERVICE_UNAVAILABLE",
            ),
            (Error::NotSupported("x".into()), 501, "NOT_SUPPORTED"),
            (
                Error::ServiceBusy {
                    retry_after_secs: 2,
                },
                503,
                "SERVICE_BUSY",
            ),
            (
                Error::DirectUploadInvalid("x".into()),
                422,
                "DIRECT_UPLOAD_INVALID",
            ),
            (Error::UploadNotFound, 404, "UPLOAD_NOT_FOUND"),
            (Error::UploadCompleted, 409, "UPLOAD_COMPLETED"),
            (Error::UploadLocked, 409, "UPLOAD_LOCKED"),
            (
                Error::UploadOffsetMismatch { offset: 5 },
                409,
                "UPLOAD_OFFSET_MISMATCH",
            ),
            (Error::UploadExpired, 410, "UPLOAD_EXPIRED"),
            (Error::ChecksumMismatch, 460, "CHECKSUM_MISMATCH"),
            (Error::Internal("bug".into()), 500, "INTERNAL_ERROR"),
        ];
        for (error, status, code) in cases {
            let response = ApiError::App(error).into_response();
            assert_eq!(response.status().as_u16(), status, "{code}");
            let json = body_json(response).await;
            assert_eq!(json["code"], code);
            assert!(json["message"].is_string());
            if status >= 500 {
                assert!(
                    json.get("details").is_none(),
                    "5xx bodies carry no details: {json}"
                );
            }
        }
    }

    #[test]
    fn range_rate_limit_and_busy_errors_carry_their_headers() {
        let r = ApiError::App(Error::RangeNotSatisfiable { size: 42 }).into_response();
        assert_eq!(r.headers()[header::CONTENT_RANGE], "bytes */42");
        let r = ApiError::App(Error::RateLimited {
            retry_after: Duration::from_millis(1500),
        })
        .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let r = ApiError::App(Error::ServiceBusy {
            retry_after_secs: 3,
        })
        .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
    }
}
