//! Request and response bodies of the HTTP API.

use serde::{Deserialize, Serialize};
use stowage_domain::FileRecord;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

/// `FileInfo`: what the API says about a file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[schema(as = FileInfo)]
pub struct FileInfoResponse {
    /// Lower-case UUID v4.
    pub file_id: String,
    /// `{PUBLIC_URL}/files/{file_id}`.
    pub public_url: String,
    /// Sanitised name.
    pub filename: String,
    /// Stored content type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Upload time, RFC 3339 UTC.
    pub created_at: String,
    /// Owning account.
    pub account_id: i64,
    /// Uploading user, null for account-level uploads.
    pub user_id: Option<i64>,
}

impl FileInfoResponse {
    /// The response for `record`, with URLs under `public_url` (no trailing slash).
    pub fn from_record(record: &FileRecord, public_url: &str) -> Self {
        let created_at = record
            .created_at()
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .unwrap_or_default();
        Self {
            file_id: record.id().to_string(),
            public_url: format!("{public_url}/files/{}", record.id()),
            filename: record.filename().as_str().to_owned(),
            content_type: record.content_type().as_str().to_owned(),
            size: record.size(),
            sha256: record.sha256().to_hex(),
            created_at,
            account_id: record.account_id().get(),
            user_id: record.user_id().map(|u| u.get()),
        }
    }
}

/// `GET /files` answer.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ListResponse {
    /// Newest first.
    pub items: Vec<FileInfoResponse>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /files` query.
#[derive(Clone, Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1 to 1000 (default 50).
    pub limit: Option<String>,
    /// Opaque position from a previous page.
    pub cursor: Option<String>,
}

/// `POST /files` query.
#[derive(Clone, Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// Name of an upload policy, e.g. `avatar`.
    pub policy: Option<String>,
}

/// `GET /files/{id}` query.
#[derive(Clone, Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// `attachment` (default) or `inline`.
    pub disposition: Option<String>,
    /// Signed URL expiry, Unix seconds.
    pub expires: Option<String>,
    /// Signed URL signature, hex.
    pub signature: Option<String>,
}

/// `POST /files/{id}/signed-url` body.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedUrlRequest {
    /// Lifetime in seconds, 1 to 604800 (default 3600).
    pub expires_in: Option<u64>,
}

/// `POST /files/{id}/signed-url` answer.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct SignedUrlResponse {
    /// Absolute URL granting GET/HEAD of the file until `expires_at`.
    pub url: String,
    /// Expiry, RFC 3339 UTC.
    pub expires_at: String,
}

/// `GET /health/live` and the top of `/health/ready`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// Each dependency's state (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<ComponentsResponse>,
}

/// Each dependency's state.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ComponentsResponse {
    /// The metadata database.
    pub database: &'static str,
    /// The blob store.
    pub storage: &'static str,
    /// Redis, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<&'static str>,
}

/// `POST /files` body: `multipart/form-data` with the file in the part named `file`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file; its part's file name and content type are kept (sanitised and checked).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

impl std::fmt::Debug for SignedUrlResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedUrlResponse")
            .field("url", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}
