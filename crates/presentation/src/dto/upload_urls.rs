//! Bodies of the upload URL routes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use super::{VisibilityName, whole_seconds};

/// Default lifetime of an upload URL, in seconds.
pub const DEFAULT_UPLOAD_URL_SECONDS: u64 = 3600;

/// `POST /files/upload-url` body; an empty body means every default.
#[derive(Clone, Debug, Default, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UploadUrlRequest {
    /// Lifetime in seconds, 1 to 86400 (default 3600 when left out or null).
    #[serde(default, deserialize_with = "whole_seconds")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 86400)]
    #[validate(range(
        min = 1,
        max = 86400,
        message = "expires_in must be from 1 to 86400 seconds"
    ))]
    pub expires_in: Option<i64>,
    /// An upload policy the upload must satisfy; a name that is not one is `400`.
    #[schema(max_length = 64, pattern = "^[a-z0-9_-]+$")]
    #[validate(length(max = 64, message = "policy must be at most 64 characters"))]
    pub policy: Option<String>,
    /// The key the file is stored under (1 to 512 bytes of UTF-8, `/`-separated segments, none
    /// empty, `.` or `..`, no control character), replacing the file holding it as an upload
    /// would. A form `key` on the upload must then be this one; without it, none is taken.
    #[schema(
        max_length = 512,
        pattern = "^(?:[^/.\\u0000-\\u001F\\u007F-\\u009F][^/\\u0000-\\u001F\\u007F-\\u009F]*|\\.[^/.\\u0000-\\u001F\\u007F-\\u009F][^/\\u0000-\\u001F\\u007F-\\u009F]*|\\.\\.[^/\\u0000-\\u001F\\u007F-\\u009F]+)(?:/(?:[^/.\\u0000-\\u001F\\u007F-\\u009F][^/\\u0000-\\u001F\\u007F-\\u009F]*|\\.[^/.\\u0000-\\u001F\\u007F-\\u009F][^/\\u0000-\\u001F\\u007F-\\u009F]*|\\.\\.[^/\\u0000-\\u001F\\u007F-\\u009F]+))*$"
    )]
    pub key: Option<String>,
    /// `private` or `public`; left out, the policy's (private without one).
    #[schema(inline)]
    pub visibility: Option<VisibilityName>,
    /// The largest file accepted in bytes, 1 to `MAX_UPLOAD_BYTES` (a policy's limit, when
    /// lower, still applies).
    #[schema(minimum = 1)]
    #[validate(range(min = 1, message = "max_bytes must be at least 1"))]
    pub max_bytes: Option<u64>,
}

/// `POST /files/upload-url` answer.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct UploadUrlResponse {
    /// Absolute URL (`{FILES_URL}/upload-url/{token}`) taking one multipart `POST` or raw `PUT`
    /// until `expires_at`, with no credential.
    pub url: String,
    /// Expiry, RFC 3339 UTC.
    pub expires_at: String,
}

impl std::fmt::Debug for UploadUrlResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadUrlResponse")
            .field("url", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A raw upload's body: the file's bytes, under the `Content-Type` the client declares.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct RawFileBody(Vec<u8>);
