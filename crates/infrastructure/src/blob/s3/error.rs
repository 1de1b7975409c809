//! S3 failures as the application sees them: the operation and the S3 error code.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use stowage_application::ports::BlobError;

/// A failed S3 call: the operation and what went wrong, without bucket, key or credential.
#[derive(Debug, thiserror::Error)]
#[error("S3 {operation} failed: {kind}")]
pub struct S3Failure {
    pub(super) operation: &'static str,
    pub(super) kind: String,
}

pub(super) fn failure<E>(operation: &'static str, e: &SdkError<E, HttpResponse>) -> S3Failure
where
    E: ProvideErrorMetadata,
{
    let kind = match e {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let hint = match (service.err().code(), status) {
                (Some("SignatureDoesNotMatch" | "InvalidAccessKeyId" | "AccessDenied"), _)
                | (None, 401 | 403) => ": check S3_ACCESS_KEY and S3_SECRET_KEY",
                (Some("NoSuchBucket"), _) | (None, 404) => ": the bucket does not exist",
                _ => "",
            };
            let code = service.err().code().unwrap_or(match status {
                401 | 403 => "AccessDenied",
                404 => "NotFound",
                _ => "error",
            });
            format!("{code} (HTTP {status}){hint}")
        }
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(d) if d.is_timeout() => "timed out".to_owned(),
        SdkError::DispatchFailure(d) if d.is_io() => "could not connect".to_owned(),
        SdkError::DispatchFailure(_) => "could not send the request".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        SdkError::ConstructionFailure(_) => "request could not be built".to_owned(),
        _ => "unknown failure".to_owned(),
    };
    S3Failure { operation, kind }
}

pub(super) fn unavailable<E: ProvideErrorMetadata>(
    operation: &'static str,
    e: &SdkError<E, HttpResponse>,
) -> BlobError {
    BlobError::Unavailable(Box::new(failure(operation, e)))
}

pub(super) fn error_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

pub(super) fn is_not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(
        error_code(e),
        Some("NoSuchKey" | "NoSuchBucket" | "NotFound")
    )
}
