//! Cloudinary failures as the application sees them: the operation and what went wrong, never a
//! credential, a signature or a signed URL.

use stowage_application::ports::BlobError;

/// A failed Cloudinary call.
#[derive(Debug, thiserror::Error)]
pub enum CloudinaryError {
    /// Cloudinary answered with an error status.
    #[error("Cloudinary {operation} failed: HTTP {status}{hint}: {message}")]
    Status {
        /// The API call (`upload`, `delivery`, `destroy`, `ping`, `list`, `delete_resources`).
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// Cloudinary's `error.message`, when it sent one.
        message: String,
        /// What to check, when the status says it.
        hint: &'static str,
    },
    /// The request could not be sent or its answer not read.
    #[error("Cloudinary {operation} failed: {what}")]
    Transport {
        /// The API call.
        operation: &'static str,
        /// `timed out`, `could not connect`, …
        what: &'static str,
        /// The HTTP client's error, without its URL.
        #[source]
        source: Option<stowage_application::BoxError>,
    },
    /// Cloudinary answered something this adapter cannot use.
    #[error("Cloudinary {operation} answered unexpectedly: {detail}")]
    Unexpected {
        /// The API call.
        operation: &'static str,
        /// What was wrong with the answer.
        detail: String,
    },
    /// The HTTP client could not be built.
    #[error("the Cloudinary HTTP client could not be built")]
    Client(#[source] stowage_application::BoxError),
}

impl From<CloudinaryError> for BlobError {
    fn from(e: CloudinaryError) -> Self {
        BlobError::Unavailable(Box::new(e))
    }
}

pub(super) fn transport(operation: &'static str, e: reqwest::Error) -> CloudinaryError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "unreadable answer"
    } else {
        "could not send the request"
    };
    CloudinaryError::Transport {
        operation,
        what,
        source: Some(Box::new(e.without_url())),
    }
}

pub(super) fn timed_out(operation: &'static str) -> CloudinaryError {
    CloudinaryError::Transport {
        operation,
        what: "timed out",
        source: None,
    }
}

/// The error of a non-success answer, with Cloudinary's `{"error": {"message"}}` when present.
pub(super) async fn status_error(
    operation: &'static str,
    response: reqwest::Response,
) -> CloudinaryError {
    let status = response.status().as_u16();
    let message = response
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|body| {
            body.pointer("/error/message")
                .and_then(serde_json::Value::as_str)
                .map(|m| m.chars().take(200).collect::<String>())
        })
        .unwrap_or_default();
    let hint = match status {
        401 | 403 => " (check CLOUDINARY_URL and CLOUDINARY_SIGNATURE_ALGORITHM)",
        420 | 429 => " (rate limited)",
        _ => "",
    };
    // Cloudinary quotes the string it signed, which holds no secret but is of no use to a caller.
    let message = message
        .split(". String to sign")
        .next()
        .unwrap_or_default()
        .to_owned();
    CloudinaryError::Status {
        operation,
        status,
        message,
        hint,
    }
}
