//! Request and response bodies of the HTTP API.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use stowage_application::ports::ListCursor;
use stowage_domain::{FileRecord, Visibility};
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::state::HttpSettings;

mod direct;
mod keys;
mod tus;
mod upload_urls;

pub use direct::{
    CompleteDirectUploadRequest, CompletedPartRequest, DEFAULT_DIRECT_UPLOAD_SECONDS, DirectPart,
    DirectUploadRequest, DirectUploadResponse,
};
pub use keys::{
    SignedUrlItem, SignedUrlItemError, SignedUrlsRequest, SignedUrlsResponse, check_prefix,
};
pub use tus::TusVersion;
pub use upload_urls::{
    DEFAULT_UPLOAD_URL_SECONDS, RawFileBody, UploadUrlRequest, UploadUrlResponse,
};

/// `FileInfo`: what the API says about a file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[schema(as = FileInfo)]
pub struct FileInfoResponse {
    /// Lower-case UUID v4.
    pub file_id: String,
    /// `{FILES_URL}/{file_id}`, or `{PUBLIC_FILES_URL}/{file_id}` for a public file when that
    /// is set.
    pub public_url: String,
    /// Sanitised name.
    pub filename: String,
    /// Stored content type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256; null for a legacy file whose digest is not known yet.
    pub sha256: Option<String>,
    /// Upload time, RFC 3339 UTC.
    pub created_at: String,
    /// Owning account.
    pub account_id: i64,
    /// Uploading user, null for account-level uploads.
    pub user_id: Option<i64>,
    /// The file's key in its account, null when it has none.
    #[schema(
        max_length = 512,
        pattern = "^(?:[^/.\\u0000-\\u001F\\u007F-\\u009F][^/\\u0000-\\u001F\\u007F-\\u009F]*|\\.[^/.\\u0000-\\u001F\\u007F-\\u009F][^/\\u0000-\\u001F\\u007F-\\u009F]*|\\.\\.[^/\\u0000-\\u001F\\u007F-\\u009F]+)(?:/(?:[^/.\\u0000-\\u001F\\u007F-\\u009F][^/\\u0000-\\u001F\\u007F-\\u009F]*|\\.[^/.\\u0000-\\u001F\\u007F-\\u009F][^/\\u0000-\\u001F\\u007F-\\u009F]*|\\.\\.[^/\\u0000-\\u001F\\u007F-\\u009F]+))*$"
    )]
    pub key: Option<String>,
    /// The client's metadata, a JSON object (`{}` when none was given).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `private` (the access rules decide every read) or `public` (anyone reads it, without a
    /// credential).
    #[schema(inline)]
    pub visibility: VisibilityName,
}

impl FileInfoResponse {
    /// The response for `record`, with its URL as `settings` place it.
    pub fn from_record(record: &FileRecord, settings: &HttpSettings) -> Self {
        let created_at = record
            .created_at()
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .unwrap_or_default();
        Self {
            file_id: record.id().to_string(),
            public_url: settings.file_url(record),
            filename: record.filename().as_str().to_owned(),
            content_type: record.content_type().as_str().to_owned(),
            size: record.size(),
            sha256: record.sha256().map(|digest| digest.to_hex()),
            created_at,
            account_id: record.account_id().get(),
            user_id: record.user_id().map(|u| u.get()),
            key: record.key().map(|k| k.as_str().to_owned()),
            // Stored as a checked JSON object; anything else would be a damaged row, shown empty.
            metadata: serde_json::from_str(record.metadata().as_str()).unwrap_or_default(),
            visibility: record.visibility().into(),
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

/// Largest page of `GET /files`.
pub const MAX_PAGE: u32 = 1000;
/// Page size of `GET /files` when `limit` is left out.
pub const DEFAULT_PAGE: u32 = 50;
/// Default lifetime of a signed URL, in seconds.
pub const DEFAULT_SIGNED_URL_SECONDS: u64 = 3600;

/// What a `limit` the listing cannot use is told.
const LIMIT_REASON: &str = "limit must be an integer from 1 to 1000";

/// `GET /files` query.
#[derive(Clone, Debug, Default, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1 to 1000 (default 50).
    #[serde(default, deserialize_with = "page_size")]
    #[param(minimum = 1, maximum = 1000)]
    #[validate(range(
        min = 1,
        max = 1000,
        message = "limit must be an integer from 1 to 1000"
    ))]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page, passed back as it came (empty: the first page).
    // The pattern is what `ListCursor::encode` writes: the hex of "{microseconds}:{file id}".
    #[serde(default, deserialize_with = "list_cursor")]
    #[param(value_type = Option<String>, pattern = "^$|^(2[dD])?(3[0-9]){1,17}3[aA](3[0-9]|6[1-6]){8}2[dD](3[0-9]|6[1-6]){4}2[dD]34(3[0-9]|6[1-6]){3}2[dD](38|39|6[12])(3[0-9]|6[1-6]){3}2[dD](3[0-9]|6[1-6]){12}$")]
    pub cursor: Option<ListCursor>,
    /// Only files whose key starts with this text (1 to 512 bytes), compared literally and
    /// case-sensitively; files without a key never match.
    #[param(min_length = 1, max_length = 512)]
    #[validate(custom(function = "check_prefix"))]
    pub prefix: Option<String>,
}

fn page_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    let raw = String::deserialize(deserializer)?;
    raw.parse()
        .map(Some)
        .map_err(|_| de::Error::custom(LIMIT_REASON))
}

fn list_cursor<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<ListCursor>, D::Error> {
    let raw = String::deserialize(deserializer)?;
    if raw.is_empty() {
        return Ok(None);
    }
    ListCursor::decode(&raw)
        .map(Some)
        .ok_or_else(|| de::Error::custom("cursor is not valid"))
}

/// Who may read a file: `private` (the access rules decide) or `public` (anyone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", rename_all = "lowercase")]
pub enum VisibilityName {
    /// The access rules decide every read.
    Private,
    /// Anyone reads the file, without a credential.
    Public,
}

impl TryFrom<String> for VisibilityName {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Visibility::parse(&value)
            .map(VisibilityName::from)
            .ok_or_else(|| format!("visibility must be 'private' or 'public', not '{value}'"))
    }
}

impl From<Visibility> for VisibilityName {
    fn from(v: Visibility) -> Self {
        match v {
            Visibility::Private => VisibilityName::Private,
            Visibility::Public => VisibilityName::Public,
        }
    }
}

impl From<VisibilityName> for Visibility {
    fn from(v: VisibilityName) -> Self {
        match v {
            VisibilityName::Private => Visibility::Private,
            VisibilityName::Public => Visibility::Public,
        }
    }
}

/// `PATCH /files/{file_id}` body: what to change (an empty object changes nothing).
#[derive(Clone, Debug, Default, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct FilePatchRequest {
    /// The file's new visibility.
    #[schema(inline)]
    pub visibility: Option<VisibilityName>,
}

/// `POST /files` query.
#[derive(Clone, Debug, Default, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// An upload policy to apply (`avatar`, or one `UPLOAD_POLICIES` names); a name that is not
    /// one is `400`.
    #[param(max_length = 64, pattern = "^[a-z0-9_-]+$")]
    #[validate(length(max = 64, message = "policy must be at most 64 characters"))]
    pub policy: Option<String>,
    /// The file's key in the account (1 to 512 bytes of UTF-8, `/`-separated segments, none
    /// empty, `.` or `..`, no control character). A key another file holds replaces that file
    /// when the caller may delete it, else `409 KEY_EXISTS`. Not with a `key` form field.
    #[param(
        max_length = 512,
        pattern = "^(?:[^/.\\u0000-\\u001F\\u007F-\\u009F][^/\\u0000-\\u001F\\u007F-\\u009F]*|\\.[^/.\\u0000-\\u001F\\u007F-\\u009F][^/\\u0000-\\u001F\\u007F-\\u009F]*|\\.\\.[^/\\u0000-\\u001F\\u007F-\\u009F]+)(?:/(?:[^/.\\u0000-\\u001F\\u007F-\\u009F][^/\\u0000-\\u001F\\u007F-\\u009F]*|\\.[^/.\\u0000-\\u001F\\u007F-\\u009F][^/\\u0000-\\u001F\\u007F-\\u009F]*|\\.\\.[^/\\u0000-\\u001F\\u007F-\\u009F]+))*$"
    )]
    pub key: Option<String>,
    /// A JSON object of at most 8 KiB kept with the file. Not with a `metadata` form field.
    #[param(value_type = Option<Object>)]
    pub metadata: Option<String>,
    /// `private` or `public`; left out, the policy's (private without one). Not with a
    /// `visibility` form field.
    #[param(inline, value_type = Option<String>)]
    pub visibility: Option<VisibilityName>,
    /// A file of the caller's (lower-case UUID v4) deleted once this one is stored: `403` when
    /// the caller may not delete it, `404` when there is none, and the upload is then not kept.
    #[param(value_type = Option<String>, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")]
    #[serde(default, deserialize_with = "file_id")]
    pub replaces: Option<stowage_domain::FileId>,
}

fn file_id<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<stowage_domain::FileId>, D::Error> {
    let raw = String::deserialize(deserializer)?;
    stowage_domain::FileId::parse(&raw)
        .map(Some)
        .map_err(|_| de::Error::custom("replaces must be a file id (a lower-case UUID v4)"))
}

/// How a download is presented: saved (`attachment`) or shown (`inline`, for images, audio,
/// video and PDF only; other types stay `attachment`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(try_from = "String", rename_all = "lowercase")]
pub enum Disposition {
    /// `Content-Disposition: attachment`.
    #[default]
    Attachment,
    /// `Content-Disposition: inline`.
    Inline,
}

impl TryFrom<String> for Disposition {
    type Error = &'static str;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "attachment" => Ok(Disposition::Attachment),
            "inline" => Ok(Disposition::Inline),
            _ => Err("disposition must be 'attachment' or 'inline'"),
        }
    }
}

/// `GET /files/{id}` query.
#[derive(Clone, Debug, Default, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// `attachment` (default) or `inline`.
    #[param(inline)]
    pub disposition: Option<Disposition>,
    /// Signed URL expiry, Unix seconds, in plain decimal (with `signature`).
    #[param(value_type = Option<String>, pattern = "^(0|[1-9][0-9]{0,18})$")]
    pub expires: Option<String>,
    /// Signed URL signature, hex (with `expires`).
    pub signature: Option<String>,
    /// Image variant: width in pixels, 1 to `IMAGE_MAX_OUTPUT_PX` (default 2500).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 16383)]
    pub w: Option<String>,
    /// Image variant: height in pixels, 1 to `IMAGE_MAX_OUTPUT_PX` (default 2500).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 16383)]
    pub h: Option<String>,
    /// Image variant: `cover` (default), `contain` or `fill`; needs both `w` and `h`.
    #[param(value_type = Option<String>, pattern = "^(cover|contain|fill)$")]
    pub fit: Option<String>,
    /// Image variant: `jpeg`, `png`, `webp`, `avif` or `auto` (the best `Accept` allows); `avif`
    /// is a 400 in a build without the `avif` feature.
    #[param(value_type = Option<String>, pattern = "^(jpeg|png|webp|avif|auto)$")]
    pub format: Option<String>,
    /// Image variant: quality of lossy output, 1 to 100 (default 80).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub q: Option<String>,
    /// Image variant: a preset of `IMAGE_PRESETS` (default `small`, `medium`, `large`).
    #[param(value_type = Option<String>, pattern = "^[a-z0-9_-]{1,32}$")]
    pub variant: Option<String>,
}

/// `GET /files/by-key/{key}` query (a key is read with a credential only, never a signed URL).
#[derive(Clone, Debug, Default, Deserialize, IntoParams, Validate)]
#[into_params(parameter_in = Query)]
pub struct KeyDownloadQuery {
    /// `attachment` (default) or `inline`.
    #[param(inline)]
    pub disposition: Option<Disposition>,
    /// Image variant: width in pixels, 1 to `IMAGE_MAX_OUTPUT_PX` (default 2500).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 16383)]
    pub w: Option<String>,
    /// Image variant: height in pixels, 1 to `IMAGE_MAX_OUTPUT_PX` (default 2500).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 16383)]
    pub h: Option<String>,
    /// Image variant: `cover` (default), `contain` or `fill`; needs both `w` and `h`.
    #[param(value_type = Option<String>, pattern = "^(cover|contain|fill)$")]
    pub fit: Option<String>,
    /// Image variant: `jpeg`, `png`, `webp`, `avif` or `auto` (the best `Accept` allows); `avif`
    /// is a 400 in a build without the `avif` feature.
    #[param(value_type = Option<String>, pattern = "^(jpeg|png|webp|avif|auto)$")]
    pub format: Option<String>,
    /// Image variant: quality of lossy output, 1 to 100 (default 80).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub q: Option<String>,
    /// Image variant: a preset of `IMAGE_PRESETS` (default `small`, `medium`, `large`).
    #[param(value_type = Option<String>, pattern = "^[a-z0-9_-]{1,32}$")]
    pub variant: Option<String>,
}

/// `POST /files/{id}/signed-url` body; an empty body means every default.
#[derive(Clone, Debug, Default, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct SignedUrlRequest {
    /// Lifetime in seconds, 1 to 604800 (default 3600 when left out or null); a number with a
    /// fraction is refused, `60.0` is 60.
    #[serde(default, deserialize_with = "whole_seconds")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 604800)]
    #[validate(range(
        min = 1,
        max = 604800,
        message = "expires_in must be from 1 to 604800 seconds"
    ))]
    pub expires_in: Option<i64>,
    /// Image variant width, as `GET /files/{id}?w=` takes it; signed into the URL.
    #[schema(minimum = 1, maximum = 16383)]
    pub w: Option<u32>,
    /// Image variant height; signed into the URL.
    #[schema(minimum = 1, maximum = 16383)]
    pub h: Option<u32>,
    /// Image variant fit (`cover`, `contain`, `fill`); signed into the URL.
    pub fit: Option<String>,
    /// Image variant format (`jpeg`, `png`, `webp`, `avif`, `auto`); signed into the URL.
    pub format: Option<String>,
    /// Image variant quality, 1 to 100; signed into the URL.
    #[schema(minimum = 1, maximum = 100)]
    pub q: Option<u32>,
    /// Image variant preset; signed into the URL.
    pub variant: Option<String>,
}

/// Any JSON number without a fraction, as JSON Schema's `integer` reads it (`60` and `60.0`
/// alike); one past the range of `i64` saturates, for the range check to refuse.
pub(crate) fn whole_seconds<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_i64() {
        return Ok(Some(n));
    }
    if number.as_u64().is_some() {
        return Ok(Some(i64::MAX));
    }
    match number.as_f64() {
        // `as` saturates: a float past either end of i64 becomes its end, out of range.
        #[allow(clippy::cast_possible_truncation)]
        Some(f) if f.fract() == 0.0 => Ok(Some(f as i64)),
        _ => Err(de::Error::custom(
            "expires_in must be a whole number of seconds",
        )),
    }
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

/// A download's body: the file's bytes, under its stored content type.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct FileBytes(Vec<u8>);

/// `POST /files` body: `multipart/form-data` with the file in the part named `file`. Text parts
/// `key` and `metadata` (each at most 8 KiB) before it set the file's key and metadata, as the
/// query parameters of the same names do (not both); parts after the file are ignored.
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

/// The raw variant parameters of a download query.
macro_rules! variant_params {
    ($query:ty) => {
        impl $query {
            /// The variant parameters as the query spelled them.
            pub fn variant_params(&self) -> stowage_domain::image::variant::VariantParams<'_> {
                stowage_domain::image::variant::VariantParams {
                    w: self.w.as_deref(),
                    h: self.h.as_deref(),
                    fit: self.fit.as_deref(),
                    format: self.format.as_deref(),
                    q: self.q.as_deref(),
                    variant: self.variant.as_deref(),
                }
            }
        }
    };
}

variant_params!(DownloadQuery);
variant_params!(KeyDownloadQuery);
