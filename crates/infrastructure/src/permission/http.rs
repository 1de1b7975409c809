//! [`PermissionChecker`] calling the application backend over HTTP.
//!
//! `POST {url}` with form `file_id=<id>` and the caller's credential in its header form; only `204`
//! allows, `401`/`403`/`404` deny, anything else (or a timeout) is "unavailable" and the caller fails closed.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use stowage_application::BoxError;
use stowage_application::ports::{PermissionChecker, PermissionError, PermissionVerdict};
use stowage_domain::{CredentialForm, FileId, Principal};

/// Where and how long to ask.
#[derive(Clone, Debug)]
pub struct PermissionSettings {
    /// `PERMISSION_CHECK_URL`.
    pub url: String,
    /// `PERMISSION_CHECK_TIMEOUT_MS`, for connecting and for the whole call.
    pub timeout: Duration,
}

/// The HTTP client of the permission service could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct PermissionClientError(#[source] BoxError);

/// The permission service's answer was neither allow nor deny.
#[derive(Debug, thiserror::Error)]
#[error("permission service answered {0}")]
struct UnexpectedStatus(StatusCode);

/// Asks the permission service with one shared, pooled HTTP client.
#[derive(Clone, Debug)]
pub struct HttpPermissionChecker {
    client: reqwest::Client,
    url: String,
}

impl HttpPermissionChecker {
    /// A checker for `settings`.
    ///
    /// # Errors
    /// [`PermissionClientError`] when the HTTP client cannot be built.
    pub fn new(settings: &PermissionSettings) -> Result<Self, PermissionClientError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| PermissionClientError(Box::new(e.without_url())))?;
        Ok(Self {
            client,
            url: settings.url.clone(),
        })
    }
}

#[async_trait]
impl PermissionChecker for HttpPermissionChecker {
    async fn check(
        &self,
        principal: &Principal,
        file_id: FileId,
    ) -> Result<PermissionVerdict, PermissionError> {
        let credential = principal.credential();
        let (name, value) = match credential.form() {
            CredentialForm::Bearer => (
                "authorization",
                format!("Bearer {}", credential.expose_secret()),
            ),
            CredentialForm::Guest => (
                "x-guest-authorization",
                credential.expose_secret().to_owned(),
            ),
            CredentialForm::Public => (
                "x-public-authorization",
                format!("Token {}", credential.expose_secret()),
            ),
        };
        let response = self
            .client
            .post(&self.url)
            .header(name, value)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("file_id={file_id}"))
            .send()
            .await
            .map_err(|e| PermissionError::Unavailable(Box::new(e.without_url())))?;
        match response.status() {
            StatusCode::NO_CONTENT => Ok(PermissionVerdict::Allowed),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => {
                Ok(PermissionVerdict::Denied)
            }
            other => Err(PermissionError::Unavailable(Box::new(UnexpectedStatus(
                other,
            )))),
        }
    }
}
