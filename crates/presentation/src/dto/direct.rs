//! Bodies of the direct upload routes (`POST /files/direct`, `POST /files/direct/{id}/complete`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use validator::Validate;

use super::{VisibilityName, whole_seconds};

/// Default lifetime of a direct upload's URLs, in seconds.
pub const DEFAULT_DIRECT_UPLOAD_SECONDS: u64 = 3600;

/// `POST /files/direct` body.
#[derive(Clone, Debug, Default, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct DirectUploadRequest {
    /// The file's name (sanitised as an upload's is).
    #[validate(length(min = 1, max = 1024, message = "filename must be 1 to 1024 characters"))]
    #[schema(min_length = 1, max_length = 1024)]
    pub filename: String,
    /// The content type the bytes are sent with (the `PUT` must carry exactly this); the file's
    /// type is decided from it and the magic bytes at completion, as for an upload.
    #[validate(length(
        min = 1,
        max = 255,
        message = "content_type must be 1 to 255 characters"
    ))]
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[\\x21-\\x7E][\\x20-\\x7E]*$"
    )]
    pub content_type: String,
    /// The exact size in bytes; more than the upload limit (or the policy's) is `413`.
    #[schema(minimum = 0)]
    pub size: u64,
    /// The SHA-256 of the bytes, 64 hex digits: signed into the `PUT`, so the store refuses other
    /// bytes.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: Option<String>,
    /// Lifetime of the URLs in seconds, 1 to 86400 (default 3600).
    #[serde(default, deserialize_with = "whole_seconds")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 86400)]
    #[validate(range(
        min = 1,
        max = 86400,
        message = "expires_in must be from 1 to 86400 seconds"
    ))]
    pub expires_in: Option<i64>,
    /// An upload policy the file must satisfy at completion.
    #[schema(max_length = 64, pattern = "^[a-z0-9_-]+$")]
    #[validate(length(max = 64, message = "policy must be at most 64 characters"))]
    pub policy: Option<String>,
    /// The key the file is stored under at completion (the rules of an upload's `key`).
    #[schema(max_length = 512)]
    pub key: Option<String>,
    /// `private` or `public`; left out, the policy's (private without one).
    #[schema(inline)]
    pub visibility: Option<VisibilityName>,
    /// Presigned multipart part URLs even when the file fits one `PUT` (files over
    /// `S3_PART_SIZE`·1000 bytes are always multipart).
    #[serde(default)]
    pub multipart: bool,
}

/// One presigned part `PUT`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DirectPart {
    /// Its number, from 1.
    pub part_number: u32,
    /// The presigned URL; the part is `part_size` bytes (the last one the rest).
    pub url: String,
}

/// `POST /files/direct` answer.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct DirectUploadResponse {
    /// The id to complete the upload with.
    pub upload_id: String,
    /// `PUT`: one request to `url` with `headers` and exactly `size` bytes. `MULTIPART`: one
    /// `PUT` per entry of `parts`, then completion (with each part's `ETag`, or none).
    #[schema(example = "PUT")]
    pub method: &'static str,
    /// The presigned URL (`PUT` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Headers the `PUT` must carry exactly (they are signed): `content-type`, and
    /// `x-amz-checksum-sha256` when `sha256` was given. Parts need none.
    pub headers: std::collections::BTreeMap<String, String>,
    /// Bytes per part (`MULTIPART` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    /// The part URLs (`MULTIPART` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<DirectPart>>,
    /// When the URLs stop working (RFC 3339 UTC); an upload not completed by then is removed.
    pub expires_at: String,
}

impl std::fmt::Debug for DirectUploadResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectUploadResponse")
            .field("upload_id", &self.upload_id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// One uploaded part, for the completion of a multipart direct upload.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletedPartRequest {
    /// The part's number.
    pub part_number: u32,
    /// The `ETag` the store answered the part's `PUT` with (quotes included or not).
    pub etag: String,
}

/// `POST /files/direct/{upload_id}/complete` body: empty for a `PUT` upload; for a `MULTIPART`
/// one the parts, or empty to assemble every part the store holds.
#[derive(Clone, Debug, Default, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CompleteDirectUploadRequest {
    /// Every part uploaded, in order (a multipart upload only; left out, the store's own list).
    #[validate(length(min = 1, max = 10000, message = "parts must hold 1 to 10000 parts"))]
    #[schema(min_items = 1, max_items = 10000)]
    pub parts: Option<Vec<CompletedPartRequest>>,
}
