//! The HTTP section: the listener, the connections it accepts, and the HTTP layer's settings.

use std::net::SocketAddr;
use std::time::Duration;

use stowage_presentation::{HttpSettings, RequestLimits};

use super::ConfigError;
use super::values::{Vars, invalid, url_without_slash};
use crate::serve::ConnectionLimits;

/// HTTP settings.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// `BIND_ADDR`.
    pub bind_addr: SocketAddr,
    /// `SHUTDOWN_GRACE_SECONDS`.
    pub shutdown_grace: Duration,
    /// `MAX_CONNECTIONS` and `MAX_CONNECTIONS_PER_CLIENT`.
    pub connections: ConnectionLimits,
    /// The HTTP layer's settings: `PUBLIC_URL`, `PUBLIC_FILES_URL`, `FRONTEND_URL`, `DEBUG`, `HSTS_ENABLED`,
    /// `TRUST_PROXY_HEADERS`, `ALLOWED_ORIGINS` and the request limits. Its `public_url` is empty
    /// when `PUBLIC_URL` is unset (see [`HttpConfig::public_url`]), and its `files_url` when
    /// `FILES_URL` is (it is then `{public_url}/files`).
    pub settings: HttpSettings,
}

impl HttpConfig {
    /// `PUBLIC_URL`, no trailing slash; `None` means `http://{bound address}`.
    pub fn public_url(&self) -> Option<&str> {
        Some(self.settings.public_url.as_str()).filter(|url| !url.is_empty())
    }
}

/// The HTTP section.
pub(super) fn http(vars: Vars<'_>) -> Result<HttpConfig, ConfigError> {
    let bind_addr = vars.parse_or("BIND_ADDR", "127.0.0.1:8080")?;
    let public_url = vars
        .get("PUBLIC_URL")
        .map(|u| url_without_slash(u, "PUBLIC_URL"))
        .transpose()?;
    let files_url = vars
        .get("FILES_URL")
        .map(|u| url_without_slash(u, "FILES_URL"))
        .transpose()?;
    let public_files_url = vars
        .get("PUBLIC_FILES_URL")
        .map(|u| url_without_slash(u, "PUBLIC_FILES_URL"))
        .transpose()?;
    let frontend_url = vars
        .get("FRONTEND_URL")
        .map(|u| url_without_slash(u, "FRONTEND_URL"))
        .transpose()?;
    let allowed_origins = allowed_origins(vars)?;
    let trust_proxy_headers = vars.flag("TRUST_PROXY_HEADERS", false)?;
    let connections = ConnectionLimits {
        total: vars.parse_or("MAX_CONNECTIONS", "4096")?,
        // Behind a proxy every connection comes from the proxy's address.
        per_client: vars.parse_or(
            "MAX_CONNECTIONS_PER_CLIENT",
            if trust_proxy_headers { "0" } else { "256" },
        )?,
    };
    if connections.total == 0 {
        return Err(invalid("MAX_CONNECTIONS", "must be at least 1".to_owned()));
    }
    let limits = request_limits(vars)?;
    Ok(HttpConfig {
        bind_addr,
        settings: HttpSettings {
            public_url: public_url.unwrap_or_default(),
            files_url: files_url.unwrap_or_default(),
            public_files_url,
            frontend_url,
            debug: vars.flag("DEBUG", false)?,
            hsts: vars.flag("HSTS_ENABLED", false)?,
            trust_proxy_headers,
            allowed_origins,
            limits,
        },
        shutdown_grace: Duration::from_secs(vars.parse_or("SHUTDOWN_GRACE_SECONDS", "30")?),
        connections,
    })
}

/// `ALLOWED_ORIGINS`, comma-separated.
fn allowed_origins(vars: Vars<'_>) -> Result<Vec<String>, ConfigError> {
    let Some(list) = vars.get("ALLOWED_ORIGINS") else {
        return Ok(Vec::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            if o == "*" {
                return Err(invalid(
                    "ALLOWED_ORIGINS",
                    "'*' cannot be combined with credentials; list the origins".to_owned(),
                ));
            }
            url_without_slash(o, "ALLOWED_ORIGINS")
        })
        .collect()
}

/// What one client may hold at once, and the transfer timeouts.
fn request_limits(vars: Vars<'_>) -> Result<RequestLimits, ConfigError> {
    let seconds = |name: &'static str, default: &str| -> Result<Duration, ConfigError> {
        let secs: u64 = vars.parse_or(name, default)?;
        if secs == 0 {
            return Err(invalid(name, "must be at least 1".to_owned()));
        }
        Ok(Duration::from_secs(secs))
    };
    let requests = RequestLimits {
        uploads_per_client: vars.parse_or("MAX_UPLOADS_PER_CLIENT", "16")?,
        downloads_per_client: vars.parse_or("MAX_DOWNLOADS_PER_CLIENT", "64")?,
        body_idle_timeout: seconds("BODY_IDLE_TIMEOUT_SECONDS", "30")?,
        response_stall_timeout: seconds("RESPONSE_STALL_TIMEOUT_SECONDS", "60")?,
        part_header_max: vars.parse_or("MULTIPART_HEADER_MAX_BYTES", "16384")?,
    };
    if requests.part_header_max < 1024 {
        return Err(invalid(
            "MULTIPART_HEADER_MAX_BYTES",
            "must be at least 1024".to_owned(),
        ));
    }
    Ok(requests)
}
