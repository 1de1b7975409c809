//! The S3 adapter's settings.

use std::time::Duration;

use secrecy::SecretString;

use super::S3Layout;

/// Everything the S3 adapter needs.
#[derive(Clone, Debug)]
pub struct S3Settings {
    /// Endpoint of an S3-compatible store; `None` for AWS.
    pub endpoint: Option<String>,
    /// Region (`us-east-1` for most S3-compatible stores).
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key (redacted in `Debug`).
    pub secret_key: SecretString,
    /// Path-style addressing (`http://host/bucket/key`), which most self-hosted stores need.
    pub force_path_style: bool,
    /// Bucket layout.
    pub layout: S3Layout,
    /// Multipart part size in bytes (at least 5 MiB).
    pub part_size: usize,
    /// Uploads that may receive their next part while sending the previous one (two parts in
    /// memory); the others hold one part at a time.
    pub pipelined_uploads: usize,
    /// Bytes all uploads together may hold in part buffers (`UPLOAD_BUFFER_BYTES`, at least one
    /// part); an upload that finds them all in use waits up to `buffer_wait`, then is refused.
    pub buffer_bytes: u64,
    /// How long an upload waits for a part buffer.
    pub buffer_wait: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one attempt of one operation (a part upload included).
    pub operation_timeout: Duration,
    /// Attempts per operation (transient errors only are retried, with backoff).
    pub max_attempts: u32,
    /// Stream uploads of announced length into one `PutObject` (aws-chunked with a trailing
    /// checksum); off for stores that do not decode aws-chunked bodies.
    pub stream_uploads: bool,
}
